#!/usr/bin/python3
"""gen_pgoutput_vectors.py - record a real pgoutput stream for check_pgoutput.c

Regenerates tests/unit/pgoutput_vectors.h and the fuzz seeds in
tests/fuzz/corpus/pgoutput/.  Run by hand from the repository root (as
root: the cluster runs as the postgres user, see tests/integration/pg.py);
make check never runs it:

    tests/unit/gen_pgoutput_vectors.py

It starts a throwaway PostgreSQL 15 cluster with wal_level=logical, applies
sql/schema.sql and sql/logical.sql, adds two capture-only tables (an enum
column for Type messages, REPLICA IDENTITY FULL for old rows, a TOASTed
value for 'u' columns, a key change for 'K' old keys), creates a pgoutput
slot, runs the SCENARIO below one transaction at a time, and records with
capture_pgoutput (libpq, built here) every CopyData frame the walsender
sends.  The bytes are PostgreSQL's; check_pgoutput.c asserts what the
scenario did, so after a regeneration it still passes unchanged (ids start
at 1 in a fresh cluster; times and LSNs are only checked for consistency).
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pg import LOGICAL_SETTINGS, PgCluster  # noqa: E402

OUT = os.path.join(ROOT, "tests", "unit", "pgoutput_vectors.h")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "corpus", "pgoutput")

SETUP = """
CREATE TYPE cap_mood AS ENUM ('calm', 'busy');
CREATE TABLE cap_full (id int PRIMARY KEY, mood cap_mood, note text,
                       n int);
ALTER TABLE cap_full REPLICA IDENTITY FULL;
CREATE TABLE cap_key (id int PRIMARY KEY, big text, n int);
CREATE PUBLICATION cap FOR TABLE events, bookings, seatcast_revoked_tokens,
    cap_full, cap_key;
SELECT pg_replication_origin_create('cap_origin');
"""

# (comment, sql): each item is one transaction with published changes
# (pgoutput skips empty ones), except the non-transactional message.
SCENARIO = [
    ("event 1 inserted",
     "INSERT INTO events (name, seat_capacity) VALUES ('Gig', 100)"),
    ("booking 1 of event 1 (2 seats): bookings insert, events update",
     "INSERT INTO bookings (event_id, user_id, seats) VALUES (1, 7, 2)"),
    ("booking 1 cancelled: bookings update, events update",
     "UPDATE bookings SET status = 'cancelled' WHERE id = 1"),
    ("two bookings in one transaction",
     "BEGIN; INSERT INTO bookings (event_id, user_id) VALUES (1, 8); "
     "INSERT INTO bookings (event_id, user_id) VALUES (1, 9); COMMIT"),
    ("token revoked",
     "INSERT INTO seatcast_revoked_tokens (jti) VALUES ('jti-1')"),
    ("enum column (Type), NULL, long text",
     "INSERT INTO cap_full VALUES (1, 'busy', repeat('x', 3000), NULL)"),
    ("update with the full old row",
     "UPDATE cap_full SET n = 5 WHERE id = 1"),
    ("delete with the full old row", "DELETE FROM cap_full WHERE id = 1"),
    ("toasted value",
     "INSERT INTO cap_key SELECT 1, string_agg(md5(i::text), '') , 0 "
     "FROM generate_series(1, 300) i"),
    ("unchanged toasted value", "UPDATE cap_key SET n = 1 WHERE id = 1"),
    ("key changed: old key", "UPDATE cap_key SET id = 2 WHERE id = 1"),
    ("truncate", "TRUNCATE cap_key, cap_full"),
    ("transactional message",
     "BEGIN; SELECT pg_logical_emit_message(true, 'seatcast', 'hello'); "
     "UPDATE events SET name = 'Gig 2' WHERE id = 1; COMMIT"),
    (None, "SELECT pg_logical_emit_message(false, 'seatcast', 'now')"),
    ("origin",
     "SELECT pg_replication_origin_session_setup('cap_origin'); BEGIN; "
     "SELECT pg_replication_origin_xact_setup('0/AB', now()); "
     "INSERT INTO seatcast_revoked_tokens (jti) VALUES ('jti-2'); COMMIT"),
    ("event 1 deleted: its bookings go by cascade (old keys)",
     "DELETE FROM events WHERE id = 1"),
]


def build_capture(workdir):
    exe = os.path.join(workdir, "capture_pgoutput")
    cflags = subprocess.run(["pkg-config", "--cflags", "libpq"], check=True,
                            capture_output=True, text=True).stdout.split()
    libs = subprocess.run(["pkg-config", "--libs", "libpq"], check=True,
                          capture_output=True, text=True).stdout.split()
    subprocess.run(["cc", "-O1", "-o", exe,
                    os.path.join(ROOT, "tests", "unit", "capture_pgoutput.c")]
                   + cflags + libs, check=True)
    return exe


def c_array(name, data):
    lines = []
    for i in range(0, len(data), 12):
        lines.append("    " + ", ".join("0x%02x" % b for b in data[i:i + 12])
                     + ",")
    return "static const unsigned char %s[] = {\n%s\n};\n" % (
        name, "\n".join(lines))


def main():
    work = tempfile.mkdtemp(prefix="pgoutput-gen-")
    exe = build_capture(work)
    pg = PgCluster(settings=LOGICAL_SETTINGS)
    try:
        pg.start()
        for f in ("schema.sql", "logical.sql"):
            pg.psql_file(os.path.join(ROOT, "sql", f))
        pg.psql(SETUP)
        pg.psql("SELECT pg_create_logical_replication_slot('cap', "
                "'pgoutput')")
        version = pg.query_value("SHOW server_version")
        for _, sql in SCENARIO:
            pg.psql("SET synchronous_commit = on; " + sql)
        commits = sum(1 for c, _ in SCENARIO if c is not None)
        out = subprocess.run([exe, pg.conninfo(), "cap", "cap",
                              str(commits)], check=True, timeout=60,
                             capture_output=True, text=True).stdout
    finally:
        pg.cleanup()
    frames = [bytes.fromhex(ln) for ln in out.split()]
    os.makedirs(SEEDS, exist_ok=True)
    for f in os.listdir(SEEDS):
        os.unlink(os.path.join(SEEDS, f))
    parts = []
    names = []
    for i, fr in enumerate(frames):
        kind = chr(fr[0]) + (chr(fr[25]) if fr[0] == ord("w") else "")
        names.append((kind, "pgov_%02d" % i))
        parts.append(c_array("pgov_%02d" % i, fr))
        with open(os.path.join(SEEDS, "%02d-%s" % (i, kind)), "wb") as f:
            f.write(fr)
    scenario = "\n".join(" *   %2d. %s" % (i + 1, c)
                         for i, (c, _) in enumerate(
                             [s for s in SCENARIO if s[0] is not None]))
    with open(OUT, "w") as f:
        f.write("/*\n * pgoutput_vectors.h - a real replication stream for "
                "check_pgoutput.c\n *\n * GENERATED by "
                "tests/unit/gen_pgoutput_vectors.py (PostgreSQL %s,\n"
                " * pgoutput proto_version 1, messages 'true'); do not edit, "
                "run the script\n * again.  Every CopyData frame the "
                "walsender sent, in order: 'w' frames\n * carry one pgoutput "
                "message, 'k' frames are keepalives the capture asked\n"
                " * for after each commit.  The transactions, in commit "
                "order (a\n * non-transactional message comes between 13 "
                "and 14):\n%s\n */\n" % (version, scenario))
        f.write("#ifndef SC_PGOUTPUT_VECTORS_H\n#define "
                "SC_PGOUTPUT_VECTORS_H\n\n#include <stddef.h>\n\n")
        for p in parts:
            f.write(p + "\n")
        f.write("struct pgov_frame {\n    const char *kind; /* 'k', or 'w' "
                "and the message type */\n    const unsigned char *bytes;\n"
                "    size_t len;\n};\n\n")
        f.write("static const struct pgov_frame pgov_frames[] = {\n")
        for kind, name in names:
            f.write("    {\"%s\", %s, sizeof(%s)},\n" % (kind, name, name))
        f.write("};\n\n#define PGOV_NFRAMES (sizeof(pgov_frames) / "
                "sizeof(pgov_frames[0]))\n\n#endif\n")
    print("%d frames, %d commits -> %s" % (len(frames), commits, OUT))


if __name__ == "__main__":
    main()
