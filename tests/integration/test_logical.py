"""test_logical.py - seatcast --source logical against a real PostgreSQL 15
with wal_level=logical (pg.py LOGICAL_SETTINGS).

Run:  /usr/bin/python3 -m pytest tests/integration/test_logical.py

Part one: sql/logical.sql itself (idempotent, no triggers, the publication
and the replica identity the mapping needs), checked with PostgreSQL's own
decoding functions.  Part two: the server following the slot.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import BookingDb, Client, check_message  # noqa: E402
from pg import BOOKING_TEMPLATE, booking_cluster  # noqa: E402
from server import (async_wait_for, wait_for, ws_closed, ws_open,  # noqa
                    ws_ping)

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
    lcluster.start()   # a fault test may have left it stopped
    lcluster.dropdb(name)   # its slots first (pg.py)


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
        # only the columns seatcast reads (and the keys) are published
        cols = q(lcluster, name, "SELECT tablename || ':' || array_to_string("
                 "ARRAY(SELECT unnest(attnames) ORDER BY 1), ',') FROM "
                 "pg_publication_tables WHERE pubname = 'seatcast' AND "
                 "tablename IN ('bookings', 'events') ORDER BY tablename")
        assert cols.split("\n") == [
            "bookings:event_id,id,status",
            "events:available_seats,id,seat_capacity,version"], cols
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


# ---------------------------------------------------------------- server

K_EVENT = ["type", "eventId", "timestamp"]
K_SEATS = ["type", "eventId", "availableSeats", "seatCapacity", "timestamp"]
K_BOOKING = ["type", "eventId", "availableSeats", "timestamp"]


def run(coro):
    return asyncio.run(coro)


def healthz(srv):
    status, _, body = srv.http_get("/healthz")
    return status, json.loads(body)


async def subscribe_new(c, e, timeout=10):
    """Subscribes to an event just inserted: not_found until its change
    has come through the stream (WAL is sent once flushed)."""
    deadline = time.monotonic() + timeout
    while True:
        m = await c.request({"type": "subscribe_event", "eventId": e})
        if m["type"] == "subscribed":
            return await c.next()   # its seat_update
        assert m["code"] == "not_found", m
        assert time.monotonic() < deadline, "event %d never known" % e
        await asyncio.sleep(0.02)


def logical_server(make_server, db, args=(), wait=True, workers=2):
    """seatcast --source logical -d CONNINFO; waits for the stream."""
    srv = make_server(workers=workers, database=db.conninfo(),
                      args=["--source", "logical"] + [str(a) for a in args])
    if wait:
        wait_for(lambda: healthz(srv)[0] == 200, 20, "/healthz 200")
        wait_for(lambda: srv.stats()["listener"].get("slot_active"), 10,
                 "the slot streaming")
    srv.tok = srv.token()
    return srv


@pytest.fixture
def bdb(lcluster, ldb):
    lcluster.start()
    return BookingDb(lcluster, ldb)


def slot_of(srv, db):
    """The slot's row: (active, confirmed_flush_lsn, plugin)."""
    return db.value("SELECT active, confirmed_flush_lsn, plugin FROM "
                    "pg_replication_slots WHERE database = '%s'" % db.name)


def test_logical_booking_cancel_capacity_delete(bdb, make_server):
    e, keep = bdb.event(10), bdb.event(5)
    srv = logical_server(make_server, bdb)
    # the slot is this instance's: created with pgoutput, in use
    assert slot_of(srv, bdb).split("|")[0] == "t"
    assert slot_of(srv, bdb).split("|")[2] == "pgoutput"

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        b = bdb.book(e, 2, user=4242)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=8)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=8, seatCapacity=10)
        await c.quiet()
        bdb.cancel(b)
        check_message(await c.next(), "booking_cancelled", K_BOOKING,
                      eventId=e, availableSeats=10)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=10, seatCapacity=10)
        await c.quiet()
        # updating a cancelled booking again moves no seat: nothing
        bdb.psql("UPDATE bookings SET user_id = 1 WHERE id = %d" % b)
        # a capacity change: seat_update alone; a rename: nothing
        bdb.psql("UPDATE events SET seat_capacity = 25 WHERE id = %d" % e)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=25, seatCapacity=25)
        bdb.psql("UPDATE events SET name = 'renamed' WHERE id = %d" % e)
        bdb.book(e, 5)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=20)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=20, seatCapacity=25)
        await c.quiet()
        # two bookings of one transaction: both, in order
        bdb.psql("BEGIN; INSERT INTO bookings (event_id, user_id) VALUES "
                 "(%d, 1); INSERT INTO bookings (event_id, user_id, seats) "
                 "VALUES (%d, 2, 3); COMMIT;" % (e, e))
        got = [await c.next() for _ in range(4)]
        assert [(m["type"], m["availableSeats"]) for m in got] == [
            ("booking_created", 19), ("seat_update", 19),
            ("booking_created", 16), ("seat_update", 16)]
        await c.quiet()
        # a new event can be followed; a deleted one unsubscribes
        n = bdb.event(7)
        check_message(await subscribe_new(c, n), "seat_update", K_SEATS,
                      eventId=n, availableSeats=7, seatCapacity=7)
        await c.subscribe(keep)
        bdb.psql("DELETE FROM events WHERE id = %d" % e)
        check_message(await c.next(), "unsubscribed", K_EVENT, eventId=e)
        await c.quiet()
        m = await c.request({"type": "subscribe_event", "eventId": e})
        assert m["type"] == "error" and m["code"] == "not_found"
        bdb.book(keep, 1)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=keep, availableSeats=4)
        await c.next()
        await c.close()

    run(body())
    st = srv.stats()["listener"]
    assert st["source"] == "logical"
    # the position is confirmed: the slot has caught up with the server
    wait_for(lambda: srv.stats()["listener"]["slot_lag_bytes"] == 0, 15,
             "slot lag 0")


def test_logical_revocation_closes_1008(bdb, make_server):
    srv = logical_server(make_server, bdb)

    async def body():
        tok = srv.token(sub="9", jti="jti-logical-1")
        other = srv.token(sub="9", jti="jti-logical-2")
        ws, _ = await ws_open(srv, tok)
        ws2, _ = await ws_open(srv, other)
        bdb.psql("INSERT INTO seatcast_revoked_tokens (jti) VALUES "
                 "('jti-logical-1')")
        code, reason = await ws_closed(ws, 10)
        assert (code, reason) == (1008, "Token revoked")
        await ws_ping(ws2)
        await ws2.close()

    run(body())


def test_logical_twice_the_same_slot_is_refused(bdb, make_server):
    srv = logical_server(make_server, bdb)
    slot = bdb.value("SELECT slot_name FROM pg_replication_slots WHERE "
                     "database = '%s'" % bdb.name)
    other = logical_server(make_server, bdb, args=["--slot", slot],
                           wait=False)
    other.wait_log(r"replication slot \"%s\" is in use by another process "
                   r"\(pid \d+\)" % slot, timeout=15)
    assert healthz(other)[0] == 503
    # the first goes on
    assert healthz(srv)[0] == 200


@pytest.mark.parametrize("case", ["publication", "wal_level", "role"])
def test_logical_clear_errors(case, lcluster, bdb, make_server, tmp_path):
    if case == "publication":
        bdb.psql("DROP PUBLICATION seatcast")
        srv = logical_server(make_server, bdb, wait=False)
        srv.wait_log(r'publication "seatcast" does not exist in database '
                     r'"%s" \(apply sql/logical.sql' % bdb.name, timeout=15)
        return
    if case == "role":
        bdb.psql("DROP ROLE IF EXISTS norepl; CREATE ROLE norepl LOGIN; "
                 "GRANT SELECT ON ALL TABLES IN SCHEMA public TO norepl")
        srv = make_server(workers=1, database=bdb.conninfo().replace(
            "user=postgres", "user=norepl"), args=["--source", "logical"])
        srv.wait_log(r"the role lacks the REPLICATION attribute that "
                     r"--source logical needs", timeout=15)
        return
    # wal_level replica: a cluster of its own
    from pg import PgCluster
    pg = PgCluster()
    try:
        pg.start()
        srv = make_server(workers=1, database=pg.conninfo(),
                          args=["--source", "logical"])
        srv.wait_log(r'wal_level is "replica": --source logical needs '
                     r'wal_level = logical', timeout=15)
    finally:
        pg.cleanup()


# ---------------------------------------------------------------- faults


def stream_problems(c, e, ref, capacity, start):
    """c's messages for event e from index start: exactly booking_created
    then seat_update per booking in commit order (ref: available seats
    after each); [] if so, else what differs."""
    have = [(m["type"], m.get("availableSeats"), m.get("seatCapacity"))
            for _, m in c.msgs[start:] if m.get("eventId") == e]
    want = []
    for a in ref:
        want += [("booking_created", a, None), ("seat_update", a, capacity)]
    if have == want:
        return []
    created = [a for t, a, _ in have if t == "booking_created"]
    missing = sorted(set(ref) - set(created), reverse=True)
    twice = sorted(a for a in set(created) if created.count(a) > 1)
    first = next((i for i, (h, w) in enumerate(zip(have, want)) if h != w),
                 min(len(have), len(want)))
    return ["%d messages, want %d; booking_created missing %s, twice %s; "
            "first difference at %d: %r vs %r" % (
                len(have), len(want), missing[:8], twice[:8], first,
                have[first:first + 2], want[first:first + 2])]


def writer(cluster, db, e, first, n, pause):
    """One psql session booking event e n times, seats 1..3, one
    transaction each, in order (so commit order is booking id order)."""
    script = "".join(
        "INSERT INTO bookings (event_id, user_id, seats) VALUES "
        "(%d, %d, %d);\nSELECT pg_sleep(%s);\n" % (e, first + i,
                                                  1 + (first + i) % 3, pause)
        for i in range(n))
    p = subprocess.Popen(cluster.psql_argv(db), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    p.stdin.write(script)
    p.stdin.close()
    return p


def committed_ref(db, e, capacity):
    """Available seats after each booking of e, in commit (= id) order."""
    seats = [int(x) for x in db.psql(
        "SELECT seats FROM bookings WHERE event_id = %d AND status = "
        "'confirmed' ORDER BY id" % e).split()]
    ref, a = [], capacity
    for s in seats:
        a -= s
        ref.append(a)
    return ref


def terminate_walsender(db):
    return int(db.value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE backend_type = 'walsender' AND application_name = "
        "'seatcast listener' AND datname = current_database()"))


@pytest.mark.deadline(150)
@pytest.mark.parametrize("fault", ["listener_kill9", "postgres_restart",
                                   "postgres_crash", "walsender_terminated"])
def test_logical_fault_loses_and_repeats_nothing(fault, bdb, make_server):
    """A burst of bookings; mid-burst the fault; every booking committed
    reaches every subscriber once, in commit order, and nothing else (no
    resync summary)."""
    capacity = 2000
    e = bdb.event(capacity)
    srv = logical_server(make_server, bdb)
    pg = bdb.cluster

    async def body():
        clients = [await Client.open(srv, srv.tok) for _ in range(3)]
        for c in clients:
            await c.subscribe(e)
        starts = [c.pos for c in clients]
        listener = srv.listener_pid()
        w = writer(pg, bdb.name, e, 0, 150, 0.005)
        await clients[0].wait_for(
            lambda ms: sum(1 for m in ms if m.get("type") ==
                           "booking_created") >= 20, 20, "20 bookings")
        extra = None
        if fault == "listener_kill9":
            os.kill(listener, signal.SIGKILL)
            await async_wait_for(
                lambda: srv.listener_pid() not in (None, listener) and
                srv.stats()["listener"]["slot_active"], 20,
                "a new listener streaming")
        elif fault == "walsender_terminated":
            assert terminate_walsender(bdb) == 1
        else:
            # the writer dies with its server; another books after
            if fault == "postgres_restart":
                pg.stop()
            else:
                pg.kill()
            w.wait(30)
            pg.start()
            extra = writer(pg, bdb.name, e, 1000, 60, 0.005)
        for p in (w, extra):
            if p is not None:
                await async_wait_for(lambda: p.poll() is not None, 60,
                                     "the writer")
        ref = committed_ref(bdb, e, capacity)
        assert len(ref) >= 40
        final = ref[-1]
        for c in clients:
            await c.wait_for(
                lambda ms: any(m.get("type") == "seat_update" and
                               m.get("availableSeats") == final for m in ms),
                30, "the last booking (%d left)" % final)
            c.pos = len(c.msgs)
            await c.quiet()   # a round trip: anything extra shows up
        problems = {i: stream_problems(c, e, ref, capacity, starts[i])
                    for i, c in enumerate(clients)}
        problems = {k: v for k, v in problems.items() if v}
        st = srv.stats()["listener"]
        print("%s: %d bookings, listener reconnects %d, transactions %d" % (
            fault, len(ref), st["reconnects"], st["transactions"]))
        for c in clients:
            await c.close()
        assert not problems, problems

    run(body())


@pytest.mark.deadline(120)
def test_logical_standby_is_refused(lcluster, bdb, make_server):
    """A streaming standby of the cluster: the listener says it is one."""
    import pwd
    from pg import LOGICAL_SETTINGS, PgCluster
    sb = PgCluster(settings=LOGICAL_SETTINGS)
    try:
        sb._as_postgres([sb._bin("pg_basebackup"), "-D", sb.datadir, "-h",
                         lcluster.host, "-p", str(lcluster.port), "-U",
                         "postgres", "-R", "-X", "stream", "-c", "fast"],
                        timeout=120)
        os.makedirs(sb.sockdir, exist_ok=True)
        pw = pwd.getpwnam("postgres")
        os.chown(sb.sockdir, pw.pw_uid, pw.pw_gid)
        sb._initialized = True
        sb.start()
        assert sb.query_value("SELECT pg_is_in_recovery()",
                              db=bdb.name) == "t"
        srv = make_server(workers=1, database=sb.conninfo(bdb.name),
                          args=["--source", "logical"])
        srv.wait_log(r"the server is a standby \(pg_is_in_recovery\): "
                     r"seatcast needs the primary", timeout=20)
        assert healthz(srv)[0] == 503
    finally:
        sb.cleanup()
