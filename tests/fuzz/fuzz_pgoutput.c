/*
 * fuzz_pgoutput.c - libFuzzer entry point for the pgoutput decoder
 *
 * Each input is decoded twice: as a CopyData frame of the replication
 * stream (and, for 'w', its pgoutput message), and as a bare pgoutput
 * message.  On success every tuple and Relation column is walked to its
 * end, checking the promises of pgoutput.h: values and names inside the
 * input, exactly ncols of them, Truncate relids readable.  Built by
 * "make build/fuzz/fuzz_pgoutput"; seeds in tests/fuzz/corpus/pgoutput/
 * (the real stream of tests/unit/pgoutput_vectors.h, one frame a file).
 */
#include "pgoutput.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *lo, *hi;

static void
inside(const void *p, size_t n)
{
    const uint8_t *b = p;

    if (b < lo || b > hi || (size_t)(hi - b) < n) {
        abort();
    }
}

static void
walk_tuple(const struct sc_pgo_tuple *t)
{
    struct sc_pgo_iter it;
    struct sc_pgo_value v;
    unsigned n = 0;

    sc_pgo_tuple_iter(t, &it);
    while (sc_pgo_tuple_next(&it, &v) == 1) {
        if (v.kind != 'n' && v.kind != 'u' && v.kind != 't' &&
            v.kind != 'b') {
            abort();
        }
        if (v.kind == 't' || v.kind == 'b') {
            inside(v.data, v.len);
        }
        n++;
    }
    if (n != t->ncols) {
        abort();
    }
}

static void
check_msg(const uint8_t *data, size_t size)
{
    struct sc_pgo_msg m;
    const char *why = NULL;
    struct sc_pgo_iter it;
    struct sc_pgo_column col;
    unsigned n = 0;

    if (sc_pgo_decode(data, size, &m, &why) != 0) {
        if (why == NULL || m.type != 0) {
            abort();
        }
        return;
    }
    if (why != NULL) {
        abort();
    }
    switch (m.type) {
    case SC_PGO_RELATION:
        inside(m.u.relation.relname, strlen(m.u.relation.relname) + 1);
        sc_pgo_columns_iter(&m, &it);
        while (sc_pgo_column_next(&it, &col) == 1) {
            inside(col.name, strlen(col.name) + 1);
            n++;
        }
        if (n != m.u.relation.ncols) {
            abort();
        }
        break;
    case SC_PGO_INSERT:
    case SC_PGO_UPDATE:
    case SC_PGO_DELETE:
        walk_tuple(&m.u.change.old_tuple);
        walk_tuple(&m.u.change.new_tuple);
        break;
    case SC_PGO_TRUNCATE:
        for (uint32_t i = 0; i < m.u.truncate.nrels; i++) {
            (void)sc_pgo_truncate_relid(&m, i);
        }
        break;
    case SC_PGO_MESSAGE:
        inside(m.u.message.content, m.u.message.len);
        break;
    default:
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sc_pgo_copy c;
    const char *why = NULL;
    uint8_t st[SC_PGO_STATUS_LEN];

    lo = data;
    hi = data + size;
    if (sc_pgo_copy_decode(data, size, &c, &why) == 0) {
        if (why != NULL) {
            abort();
        }
        if (c.type == 'w') {
            inside(c.data, c.len);
            check_msg(c.data, c.len);
        }
        sc_pgo_status_build(st, c.wal_end, c.wal_end, c.wal_end,
                            c.send_time, c.reply);
        if (st[0] != 'r') {
            abort();
        }
    } else if (why == NULL) {
        abort();
    }
    check_msg(data, size);
    return 0;
}
