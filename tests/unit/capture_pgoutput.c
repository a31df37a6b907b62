/*
 * capture_pgoutput.c - record a real replication stream for the tests
 *
 *   capture_pgoutput CONNINFO SLOT PUBLICATION COMMITS
 *
 * Connects with replication=database (CONNINFO is a libpq conninfo
 * string), starts START_REPLICATION SLOT ... LOGICAL 0/0 with pgoutput
 * protocol version 1 (and messages 'true'), and prints every CopyData the
 * server sends, as one line of hex, until COMMITS Commit messages were
 * seen.  After each commit it asks for a keepalive (a status update with
 * the reply flag, flushing nothing), so that the record holds 'k' frames
 * too.  Used by gen_pgoutput_vectors.py; not part of make check.  Blocking
 * libpq, no seatcast code: the bytes are PostgreSQL's, not ours.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        *p++ = (unsigned char)(v >> (i * 8));
    }
}

int
main(int argc, char **argv)
{
    char conninfo[1024], sql[512];
    PGconn *pg;
    PGresult *r;
    long want, commits = 0;

    if (argc != 5) {
        fprintf(stderr, "usage: %s CONNINFO SLOT PUBLICATION COMMITS\n",
                argv[0]);
        return 2;
    }
    want = strtol(argv[4], NULL, 10);
    snprintf(conninfo, sizeof(conninfo), "%s replication=database",
             argv[1]);
    pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(pg));
        return 1;
    }
    snprintf(sql, sizeof(sql),
             "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '1', "
             "publication_names '\"%s\"', messages 'true')",
             argv[2], argv[3]);
    r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        fprintf(stderr, "START_REPLICATION: %s", PQerrorMessage(pg));
        return 1;
    }
    PQclear(r);
    while (commits < want) {
        char *buf;
        int n = PQgetCopyData(pg, &buf, 0);
        if (n < 0) {
            fprintf(stderr, "stream ended: %s", PQerrorMessage(pg));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            printf("%02x", (unsigned char)buf[i]);
        }
        printf("\n");
        if (n > 25 && buf[0] == 'w' && buf[25] == 'C') {
            unsigned char st[34] = {'r'};
            commits++;
            put64(st + 25, 0);
            st[33] = 1; /* reply requested: the server sends a keepalive */
            if (PQputCopyData(pg, (const char *)st, sizeof(st)) != 1 ||
                PQflush(pg) != 0) {
                fprintf(stderr, "status: %s", PQerrorMessage(pg));
                return 1;
            }
        }
        PQfreemem(buf);
    }
    fflush(stdout);
    PQfinish(pg);
    return 0;
}
