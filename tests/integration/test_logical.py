"""test_logical.py - seatcast --source logical against a real PostgreSQL 15
with wal_level=logical (pg.py LOGICAL_SETTINGS).

Run:  /usr/bin/python3 -m pytest tests/integration/test_logical.py

Part one: sql/logical.sql itself (idempotent, no triggers, the publication
and the replica identity the mapping needs), checked with PostgreSQL's own
decoding functions.  Part two: the server following the slot.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg import BOOKING_TEMPLATE, booking_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
LOGICAL = os.path.join(ROOT, "sql", "logical.sql")

_db_counter = [0]


@pytest.fixture(scope="module")
def lcluster():
    """A wal_level=logical cluster whose template has schema.sql and
    logical.sql (no notify.sql: no trigger of seatcast's)."""
    yield from booking_cluster(ROOT, logical=True,
                               files=("schema.sql", "logical.sql"))


@pytest.fixture
def ldb(lcluster):
    _db_counter[0] += 1
    name = "l%d" % _db_counter[0]
    lcluster.createdb(name, template=BOOKING_TEMPLATE)
    yield name
    # slots of this database first, or DROP DATABASE refuses
    lcluster.psql("SELECT pg_drop_replication_slot(slot_name) FROM "
                  "pg_replication_slots WHERE database = '%s' AND NOT active"
                  % name, db="postgres")
    lcluster.dropdb(name)


def q(cluster, db, sql):
    return cluster.psql(sql, db=db).strip()


# ---------------------------------------------------------------- sql


def test_logical_sql_apply_twice(lcluster):
    name = "lapply"
    lcluster.createdb(name)
    try:
        for _ in range(2):
            lcluster.psql_file(SCHEMA, db=name)
            lcluster.psql_file(LOGICAL, db=name)
        e = int(q(lcluster, name, "INSERT INTO events (name, seat_capacity) "
                  "VALUES ('x', 5) RETURNING id"))
        q(lcluster, name, "INSERT INTO bookings (event_id, user_id, seats) "
          "VALUES (%d, 1, 2)" % e)
        lcluster.psql_file(LOGICAL, db=name)
        assert q(lcluster, name, "SELECT available_seats, seat_capacity, "
                 "version FROM seatcast_seat_state WHERE event_id = %d"
                 % e) == "3|5|1"
        tables = q(lcluster, name, "SELECT string_agg(tablename, ',' ORDER "
                   "BY tablename) FROM pg_publication_tables WHERE pubname "
                   "= 'seatcast'")
        assert tables == "bookings,events,seatcast_revoked_tokens"
        # no trigger of seatcast's: only schema.sql's own
        trig = q(lcluster, name, "SELECT count(*) FROM pg_trigger WHERE "
                 "NOT tgisinternal AND tgname LIKE 'seatcast%'")
        assert trig == "0"
        # a publication whose table list was changed is set back
        q(lcluster, name, "ALTER PUBLICATION seatcast DROP TABLE bookings")
        lcluster.psql_file(LOGICAL, db=name)
        assert q(lcluster, name, "SELECT count(*) FROM pg_publication_tables "
                 "WHERE pubname = 'seatcast'") == "3"
    finally:
        lcluster.dropdb(name)


def test_logical_sql_refuses_table_without_identity(lcluster):
    name = "lnoident"
    lcluster.createdb(name)
    try:
        lcluster.psql_file(SCHEMA, db=name)
        q(lcluster, name, "ALTER TABLE bookings REPLICA IDENTITY NOTHING")
        res = lcluster.run_psql(path=LOGICAL, db=name, check=False)
        assert res.returncode != 0
        assert "table bookings has no replica identity" in res.stderr
    finally:
        lcluster.dropdb(name)


def test_logical_sql_stream_carries_the_mapping(lcluster, ldb):
    """What the listener maps is in the stream: a booking's event row after
    it, a cancellation's new status, an event delete's id, a revocation."""
    e = int(q(lcluster, ldb, "INSERT INTO events (name, seat_capacity) "
              "VALUES ('x', 5) RETURNING id"))
    q(lcluster, ldb, "SELECT pg_create_logical_replication_slot('t_%s', "
      "'test_decoding')" % ldb)
    b = int(q(lcluster, ldb, "INSERT INTO bookings (event_id, user_id) "
              "VALUES (%d, 1) RETURNING id" % e))
    q(lcluster, ldb, "UPDATE bookings SET status = 'cancelled' WHERE id = %d"
      % b)
    q(lcluster, ldb, "INSERT INTO seatcast_revoked_tokens (jti) VALUES "
      "('j1')")
    # the cluster runs with synchronous_commit off; decoding reads flushed
    # WAL only, so the last change is committed with a flush
    q(lcluster, ldb, "SET synchronous_commit = on; "
      "DELETE FROM events WHERE id = %d" % e)
    out = q(lcluster, ldb, "SELECT data FROM pg_logical_slot_get_changes("
            "'t_%s', NULL, NULL)" % ldb).splitlines()
    changes = [ln for ln in out if ln.startswith("table ")]
    assert changes[0].startswith("table public.bookings: INSERT:")
    assert "status[text]:'confirmed'" in changes[0]
    assert changes[1].startswith("table public.events: UPDATE:")
    assert "available_seats[integer]:4" in changes[1]
    assert "version[bigint]:1" in changes[1]
    assert changes[2].startswith("table public.bookings: UPDATE:")
    assert "status[text]:'cancelled'" in changes[2]
    assert "available_seats[integer]:5" in changes[3]
    assert changes[4].startswith("table public.seatcast_revoked_tokens: "
                                 "INSERT: jti[text]:'j1'")
    assert changes[5] == "table public.events: DELETE: id[bigint]:%d" % e
