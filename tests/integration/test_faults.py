"""test_faults.py - seatcast under faults and hostile input (issue 7;
SPEC sections 5, 6, 7).

Real processes throughout: one PostgreSQL 15 cluster for the module
(pg.PgCluster; every test gets its own database cloned from a template
holding sql/schema.sql + sql/notify.sql), seatcast servers from
make_server, clients from Python websockets (booking.Client) where a
well-behaved client is wanted, and raw sockets (rawws.py, or plain
sockets) for the slow reader, the slowloris and the flood, which no
polite client library can play.  Bookings are made by psql, as the
booking application would: the "burst" is one background psql process
running INSERT ...; SELECT pg_sleep(...); in a loop.

Every wait polls a condition (server.wait_for / Client.wait_for); the
machine is shared and loaded, so deadlines are generous, except where
SPEC states a figure (registry repaired within 1 s), which is asserted
as stated.  Figures a reader must see are printed (pytest -rA) and
recorded with record_property.

Numbers used, and why (everything must fit in `make check`; the two
files together take 60-75 s here):
  kill -9 tests      3 workers (2 for the listener and master kills), 24
                     clients on one event (8 for the master kill), a burst
                     of 300 bookings (one per transaction, 10 ms apart,
                     ~4 s); the kill comes once a client has seen 40 of
                     them, so it lands mid-burst.
  PostgreSQL stop    10 s, as the issue says (the listener's backoff
                     reaches its 5 s ceiling meanwhile).
  pg_terminate       first a plain terminate (back within one 100 ms
                     backoff step); then a terminate while the database
                     refuses new connections (ALLOW_CONNECTIONS false), so
                     that the outage lasts long enough to see /healthz 503
                     and to book meanwhile, through a psql session opened
                     before; then connections are allowed again and the
                     snapshot must report both changed events.
  slow consumer      one raw client with SO_RCVBUF 1024 (the kernel makes
                     it 2304) stops reading while 10 000 bookings (100
                     rows per statement) are made.  Linux autotunes the
                     server's send buffer on loopback up to 4 MB, so a
                     frozen reader absorbs ~1.6 MB (~7000 bookings) in the
                     kernel before seatcast's own queue starts and merges:
                     10 000 is enough for that, and stays under the
                     default 1 MiB --send-buffer-limit.  The 1008 close
                     with --send-buffer-limit 65536 beside 1000
                     subscribers is in test_load.py.
  worker stall       the workers are SIGSTOPped while 1000 (resp. 500)
                     bookings reach the ring, then SIGCONTed: the
                     deterministic form of a loaded machine descheduling
                     a worker; 20 (resp. 4) websockets clients.
  slowloris          2000 connections, the issue's number (the fd limit,
                     20000, allows it), one header byte per second each,
                     --handshake-timeout 2.
  message flood      one raw client, ~10 000 {"type":"ping"} per second
                     for at most 6 s (SPEC closes it after 2 s of errors).
  registry full      --max-events 16 against 20 events.
  payloads           31 malformed NOTIFY payloads, up to 7999 bytes (the
                     most NOTIFY carries) and 3000 levels of nesting.
  standby refusal    a cluster of its own restarted with standby.signal
                     (in recovery, hot_standby on).
"""

import asyncio
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import (BookingDb, Client, PsqlSession,  # noqa: E402
                     metrics, workers_of)
from pg import BOOKING_TEMPLATE, PgCluster  # noqa: E402
from rawws import (OP_CLOSE, OP_TEXT, RawWs, close_info,  # noqa: E402
                   encode_frame, parse_frames, ws_request)
from server import (ROOT, async_wait_for, free_port, pid_alive,  # noqa: E402
                    proc_info, run_seatcast, wait_for, ws_open, ws_ping)

SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
NOTIFY = os.path.join(ROOT, "sql", "notify.sql")
TEMPLATE = BOOKING_TEMPLATE  # made by the conftest fixture `cluster`
LISTENER_APP = "seatcast listener"


# ------------------------------------------------------------------ #
# Fixtures and helpers                                                 #

_dbs = [0]

# The suite also runs with SEATCAST_TEST_SOURCE=logical (conftest.py); these
# tests check what only the NOTIFY path does (its resync summary, notify.sql,
# payload parsing); test_logical.py checks the logical counterparts.
notify_only = pytest.mark.skipif(
    os.environ.get("SEATCAST_TEST_SOURCE") == "logical",
    reason="NOTIFY path only (see test_logical.py)")


@pytest.fixture
def db(cluster):
    """A fresh booking database (schema.sql + notify.sql)."""
    _dbs[0] += 1
    name = "f%d" % _dbs[0]
    cluster.createdb(name, template=TEMPLATE)
    yield BookingDb(cluster, name)
    if cluster.pid() is None:   # a test stopped it and failed
        cluster.start()
    cluster.psql("ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true" % name,
                  db="postgres")
    cluster.dropdb(name)


def healthz(srv):
    status, _, body = srv.http_get("/healthz", timeout=5)
    return status, json.loads(body)


def wait_healthy(srv, timeout=20):
    return wait_for(lambda: healthz(srv)[0] == 200, timeout,
                    "/healthz 200 (listener connected to PostgreSQL)")


def db_server(db, make_server, workers=2, args=()):
    srv = make_server(workers=workers, database=db.conninfo(),
                      args=list(args))
    wait_healthy(srv)
    return srv


def start_burst(db, event_id, n, pause=0.01, seats=1):
    """A background psql loop: n bookings on one event, one transaction
    each, pause seconds apart."""
    step = ("INSERT INTO bookings (event_id, user_id, seats) VALUES "
            "(%d, 7, %d);\n" % (event_id, seats))
    if pause:
        step += "SELECT pg_sleep(%g);\n" % pause
    p = subprocess.Popen(db.cluster.psql_argv(db.name),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    threading.Thread(target=_feed, args=(p, step * n), daemon=True).start()
    return p


def _feed(p, script):
    try:
        p.stdin.write(script)
        p.stdin.close()
    except (BrokenPipeError, ValueError):
        pass


def finish(p, timeout=60):
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise
    err = p.stderr.read()
    assert p.returncode == 0, "psql writer failed: %s" % err


def seats_of(msgs, mtype, event_id):
    return [m["availableSeats"] for m in msgs
            if m.get("type") == mtype and m.get("eventId") == event_id]


def all_msgs(c):
    return [m for _, m in c.msgs]


def check_full_stream(c, event_id, cap, final):
    """Every booking exactly once, in order: booking_created counts down
    from cap-1 to final with no gap and no duplicate; seat_updates never
    go back and end on final.  Returns how many seat_updates were not
    seen (merged)."""
    msgs = all_msgs(c)
    created = seats_of(msgs, "booking_created", event_id)
    assert created == list(range(cap - 1, final - 1, -1)), (
        "client %d: booking_created sequence has gaps or duplicates: "
        "%d messages, first %r, last %r" % (c.port, len(created),
                                            created[:3], created[-3:]))
    updates = seats_of(msgs, "seat_update", event_id)
    assert updates and updates[-1] == final, (c.port, updates[-3:])
    assert all(a > b for a, b in zip(updates, updates[1:])), \
        "seat_update went back or repeated: %r" % updates
    return (cap - final + 1) - len(updates)


def stats_where(srv, cond):
    def check():
        st = srv.stats()
        return st if st is not None and cond(st) else None
    return check


async def open_clients(srv, n, path, token, batch=25):
    out = []
    for i in range(0, n, batch):
        out += await asyncio.gather(*(Client.open(srv, token, path=path)
                                      for _ in range(min(batch, n - i))))
    return out


async def client_ping(c, timeout=10):
    """{"type":"ping"} through a booking.Client: waits for one more pong
    (the client must still be connected and served)."""
    n = sum(1 for _, m in c.msgs if m["type"] == "pong")
    await c.send('{"type":"ping"}')
    await c.wait_for(lambda ms: sum(1 for m in ms if m["type"] == "pong")
                     > n, timeout, "pong")


async def close_clients(clients):
    await asyncio.gather(*(c.close() for c in clients),
                         return_exceptions=True)


def listener_backends(cluster, dbname):
    return int(cluster.query_value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
        "'%s' AND datname = '%s'" % (LISTENER_APP, dbname)))


# ------------------------------------------------------------------ #
# 1. kill -9 of a worker, the listener, the master, mid-burst          #

N_CLIENTS = 24
BURST = 300
CAP = 10000


@pytest.mark.deadline(120)
def test_kill9_worker_mid_burst_repairs_registry_and_spares_other_workers(
        db, make_server, record_property):
    event = db.event(CAP)
    srv = db_server(db, make_server, workers=3)
    token = srv.token(sub="burst")
    path = "/ws/events/%d" % event

    async def body():
        clients = await open_clients(srv, N_CLIENTS, path, token)
        try:
            await async_wait_for(lambda: all(
                seats_of(all_msgs(c), "seat_update", event) for c in clients),
                10, "every client's first seat_update")
            where = workers_of(srv, clients)
            per = [where.count(i) for i in range(3)]
            print("clients per worker: %s" % per)
            assert all(per), per
            victim = max(range(3), key=lambda i: per[i])
            victims = [c for c, w in zip(clients, where) if w == victim]
            survivors = [c for c, w in zip(clients, where) if w != victim]
            old_pid = srv.stats()["workers"][victim]["pid"]

            writer = start_burst(db, event, BURST)
            await clients[0].wait_for(
                lambda ms: len(seats_of(ms, "booking_created", event)) >= 40,
                30, "40 bookings before the kill")
            t0 = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
            await async_wait_for(stats_where(
                srv, lambda s: s["totals"]["connections"] == len(survivors)
                and s["totals"]["clients"] == len(survivors)),
                5, "totals == %d surviving clients" % len(survivors))
            t_repair = time.monotonic() - t0
            booked_at_kill = CAP - db.available(event)
            st = await async_wait_for(stats_where(
                srv, lambda s: s["workers"][victim]["pid"] not in (0, old_pid)
                and s["workers"][victim]["state"] == "running"),
                10, "worker %d respawned" % victim)
            t_respawn = time.monotonic() - t0
            await asyncio.gather(*(c.closed.wait() for c in victims))
            codes = {c.ws.close_code for c in victims}

            await asyncio.get_running_loop().run_in_executor(
                None, finish, writer)
            final = db.available(event)
            assert final == CAP - BURST
            await asyncio.gather(*(c.wait_for(
                lambda ms: final in seats_of(ms, "seat_update", event),
                30, "the final seat_update") for c in survivors))
            merged = [check_full_stream(c, event, CAP, final)
                      for c in survivors]
            open_now = sum(1 for c in clients if not c.closed.is_set())
            st = srv.stats()
            print("killed worker %d (pid %d, %d of %d clients) after ~%d "
                  "bookings: totals repaired to %d in %.3f s, respawned as "
                  "pid %d in %.3f s; %d survivors got all %d bookings in "
                  "order (seat_updates merged per client: max %d); victims "
                  "closed with %s" % (
                      victim, old_pid, len(victims), N_CLIENTS,
                      booked_at_kill, len(survivors), t_repair,
                      st["workers"][victim]["pid"], t_respawn,
                      len(survivors), BURST, max(merged), codes))
            record_property("repair_s", round(t_repair, 3))
            record_property("respawn_s", round(t_respawn, 3))
            assert booked_at_kill < BURST, "the kill came after the burst"
            assert t_repair < 1.0, "registry repaired in %.3f s" % t_repair
            # reading clients get a seat_update per booking too (SPEC 4)
            assert max(merged) == 0, merged
            assert codes == {1006}
            assert open_now == len(survivors)
            assert st["totals"]["connections"] == open_now
            assert st["totals"]["clients"] == open_now
            assert st["totals"]["subscriptions"] == open_now
            assert st["totals"]["worker_restarts"] == 1
        finally:
            await close_clients(clients)

    asyncio.run(body())


@pytest.mark.deadline(120)
def test_kill9_listener_mid_burst_clients_converge_after_respawn(
        db, make_server, record_property):
    event = db.event(CAP)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="burst")
    path = "/ws/events/%d" % event

    async def body():
        clients = await open_clients(srv, N_CLIENTS, path, token)
        try:
            old = srv.listener_pid()
            writer = start_burst(db, event, BURST)
            await clients[0].wait_for(
                lambda ms: len(seats_of(ms, "booking_created", event)) >= 40,
                30, "40 bookings before the kill")
            t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            booked_at_kill = CAP - db.available(event)
            st = await async_wait_for(stats_where(
                srv, lambda s: s["listener"]["pid"] not in (0, old) and
                s["listener"]["database"] == "connected"),
                15, "the listener respawned and connected")
            t_back = time.monotonic() - t0
            assert st["totals"]["connections"] == N_CLIENTS
            await asyncio.get_running_loop().run_in_executor(
                None, finish, writer)
            final = db.available(event)
            assert final == CAP - BURST
            t1 = time.monotonic()
            await asyncio.gather(*(c.wait_for(
                lambda ms: seats_of(ms, "seat_update", event)[-1:] == [final],
                30, "the final seat_update") for c in clients))
            t_conv = time.monotonic() - t1
            gaps = []
            for c in clients:
                msgs = all_msgs(c)
                created = seats_of(msgs, "booking_created", event)
                updates = seats_of(msgs, "seat_update", event)
                # never a duplicate, never a step back: the respawned
                # listener's snapshot only moves forward
                assert all(a > b for a, b in zip(created, created[1:])), \
                    created
                assert all(a > b for a, b in zip(updates, updates[1:])), \
                    updates
                assert updates[-1] == final
                gaps.append(BURST - len(created))
            st = srv.stats()
            print("killed the listener (pid %d) after %d of %d bookings: "
                  "back as pid %d and connected in %.3f s; all %d clients "
                  "converged on %d seats %.3f s after the last booking; "
                  "bookings missed as booking_created during the outage: "
                  "%d..%d" % (old, booked_at_kill, BURST,
                              st["listener"]["pid"], t_back, N_CLIENTS,
                              final, t_conv, min(gaps), max(gaps)))
            record_property("listener_back_s", round(t_back, 3))
            assert booked_at_kill < BURST, "the kill came after the burst"
            assert all(not c.closed.is_set() for c in clients)
            assert st["totals"]["connections"] == N_CLIENTS
            assert st["totals"]["listener_restarts"] == 1
            assert st["totals"]["worker_restarts"] == 0
            # the killed listener's session is gone, the new one is there
            wait_for(lambda: listener_backends(db.cluster, db.name) == 1,
                     10, "one listener session in pg_stat_activity")
        finally:
            await close_clients(clients)

    asyncio.run(body())


@pytest.mark.deadline(120)
def test_kill9_master_mid_burst_leaves_nothing_running(db, make_server):
    event = db.event(CAP)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="burst")
    path = "/ws/events/%d" % event

    async def body():
        clients = await open_clients(srv, 8, path, token)
        writer = None
        try:
            children = srv.child_pids()
            writer = start_burst(db, event, BURST)
            await clients[0].wait_for(
                lambda ms: len(seats_of(ms, "booking_created", event)) >= 40,
                30, "40 bookings before the kill")
            t0 = time.monotonic()
            os.kill(srv.master_pid, signal.SIGKILL)
            booked_at_kill = CAP - db.available(event)
            srv.wait(5)
            await async_wait_for(
                lambda: not any(pid_alive(p) for p in children), 10,
                "workers and listener %s to exit" % children)
            t_gone = time.monotonic() - t0
            await asyncio.gather(*(c.closed.wait() for c in clients))
            codes = {(c.ws.close_code, c.ws.close_reason) for c in clients}
            await async_wait_for(
                lambda: listener_backends(db.cluster, db.name) == 0, 10,
                "the listener's PostgreSQL session to end")
            await asyncio.get_running_loop().run_in_executor(
                None, finish, writer)
            writer = None
            left = srv.tree_pids()
            strays = [p for p in (proc_info(int(d)) for d in os.listdir(
                "/proc") if d.isdigit()) if p and p["pid"] in children]
            print("master killed after %d of %d bookings: children %s gone "
                  "after %.3f s; clients closed with %s; the burst went on "
                  "to %d bookings" % (booked_at_kill, BURST, children,
                                      t_gone, codes,
                                      CAP - db.available(event)))
            assert booked_at_kill < BURST, "the kill came after the burst"
            assert left == set(), [proc_info(p) for p in left]
            assert [s for s in strays if s["state"] not in "ZX"] == []
            # orphaned workers stop (gracefully or not), never linger
            assert codes <= {(1001, "Server shutting down"), (1006, "")}, \
                codes
            # the booking side never noticed
            assert db.available(event) == CAP - BURST
        finally:
            if writer is not None:
                writer.kill()
                writer.wait()
            await close_clients(clients)

    asyncio.run(body())


# ------------------------------------------------------------------ #
# 2. PostgreSQL away                                                   #

OUTAGE_S = 10


@pytest.mark.deadline(120)
def test_postgresql_stopped_and_started_keeps_clients_and_recovers(
        db, make_server, record_property):
    cluster = db.cluster
    a, b = db.event(500), db.event(300)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="outage")

    async def body():
        clients = (await open_clients(srv, 6, "/ws/events/%d" % a, token) +
                   await open_clients(srv, 6, "/ws/events/%d" % b, token))
        try:
            for _ in range(3):
                db.book(a)
            await asyncio.gather(*(c.wait_for(
                lambda ms: 497 in seats_of(ms, "seat_update", a), 10,
                "3 bookings") for c in clients[:6]))
            mark = srv.log_mark()
            t0 = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(
                None, cluster.stop)
            seen = []
            while time.monotonic() - t0 < OUTAGE_S:
                status, body_ = healthz(srv)
                seen.append(status)
                await asyncio.gather(*(client_ping(c) for c in clients))
                await asyncio.sleep(0.5)
            assert set(seen[2:]) == {503}, seen
            status, body_ = healthz(srv)
            assert status == 503 and body_["status"] == "degraded", body_
            assert body_["database"] == "disconnected"
            assert any("PostgreSQL" in r for r in body_["reasons"]), body_
            srv.wait_log(r"database connection lost or refused: .*retrying",
                         since=mark)
            await asyncio.get_running_loop().run_in_executor(
                None, cluster.start)
            t_up = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(
                None, wait_healthy, srv, 20)
            t_back = time.monotonic() - t_up
            db.book(a, seats=2)
            db.book(b, seats=5)
            await asyncio.gather(*(c.wait_for(
                lambda ms: 495 in seats_of(ms, "seat_update", a), 10,
                "the booking after the outage") for c in clients[:6]))
            await asyncio.gather(*(c.wait_for(
                lambda ms: 295 in seats_of(ms, "seat_update", b), 10,
                "the booking after the outage") for c in clients[6:]))
            st = srv.stats()
            m = metrics(srv)
            print("PostgreSQL stopped for %d s: /healthz %s meanwhile, 200 "
                  "again %.3f s after it was back; %d clients kept; db "
                  "reconnects %d" % (OUTAGE_S, sorted(set(seen)), t_back,
                                     len(clients),
                                     m["seatcast_db_reconnects_total"]))
            record_property("reconnect_after_start_s", round(t_back, 3))
            assert healthz(srv)[1]["status"] == "ok"
            assert all(not c.closed.is_set() for c in clients)
            assert st["totals"]["connections"] == len(clients)
            assert st["totals"]["worker_restarts"] == 0
            assert st["totals"]["listener_restarts"] == 0
            assert m["seatcast_db_reconnects_total"] >= 1
            for c in clients[:6]:
                assert seats_of(all_msgs(c), "seat_update", a)[-1] == \
                    db.available(a) == 495
            for c in clients[6:]:
                assert seats_of(all_msgs(c), "seat_update", b)[-1] == \
                    db.available(b) == 295
        finally:
            await close_clients(clients)

    asyncio.run(body())


def terminate_listener(cluster, dbname):
    return int(cluster.query_value(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM "
        "pg_stat_activity WHERE application_name = '%s' AND datname = '%s'"
        % (LISTENER_APP, dbname)))


@notify_only
@pytest.mark.deadline(120)
def test_pg_terminate_backend_of_listener_keeps_clients_and_resyncs(
        db, make_server, record_property):
    cluster = db.cluster
    a, b = db.event(100), db.event(100)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="term")

    async def body():
        ca = await open_clients(srv, 5, "/ws/events/%d" % a, token)
        cb = await open_clients(srv, 5, "/ws/events/%d" % b, token)
        clients = ca + cb
        session = PsqlSession(cluster, db.name)  # opened before the ban
        try:
            # a plain terminate: back within the first backoff step
            mark = srv.log_mark()
            assert terminate_listener(cluster, db.name) == 1
            srv.wait_log(r"database connection lost", since=mark)
            await asyncio.get_running_loop().run_in_executor(
                None, wait_healthy, srv, 15)
            db.book(a)
            await asyncio.gather(*(c.wait_for(
                lambda ms: 99 in seats_of(ms, "seat_update", a), 10,
                "a booking after the reconnect") for c in ca))

            # a longer one: the database refuses the listener meanwhile
            cluster.psql('ALTER DATABASE "%s" ALLOW_CONNECTIONS false'
                         % db.name, db="postgres")
            mark = srv.log_mark()
            t0 = time.monotonic()
            assert terminate_listener(cluster, db.name) == 1
            srv.wait_log(r"not currently accepting connections", since=mark,
                         timeout=10)
            status, body_ = healthz(srv)
            assert status == 503, body_
            assert body_["status"] == "degraded"
            # seats change while seatcast cannot hear
            session.send("INSERT INTO bookings (event_id, user_id, seats) "
                         "VALUES (%d, 1, 3);" % a)
            session.send("INSERT INTO bookings (event_id, user_id, seats) "
                         "VALUES (%d, 1, 4);" % b)
            session.send("UPDATE events SET seat_capacity = 150 "
                         "WHERE id = %d;" % b)
            session.sync()
            await asyncio.gather(*(client_ping(c) for c in clients))
            assert healthz(srv)[0] == 503
            cluster.psql('ALTER DATABASE "%s" ALLOW_CONNECTIONS true'
                         % db.name, db="postgres")
            await asyncio.get_running_loop().run_in_executor(
                None, wait_healthy, srv, 15)
            t_out = time.monotonic() - t0
            fa, fb = db.seats(a), db.seats(b)
            assert fa[0] == 96 and fb[0] == 146, (fa, fb)
            await asyncio.gather(*(c.wait_for(
                lambda ms: seats_of(ms, "seat_update", a)[-1:] == [96], 10,
                "the resync seat_update of %d" % a) for c in ca))
            await asyncio.gather(*(c.wait_for(
                lambda ms: seats_of(ms, "seat_update", b)[-1:] == [146], 10,
                "the resync seat_update of %d" % b) for c in cb))
            last_b = [m for m in all_msgs(cb[0])
                      if m["type"] == "seat_update"][-1]
            assert last_b["seatCapacity"] == 150
            st = srv.stats()
            snap = re.findall(r"snapshot: \d+ events, (\d+) changed",
                              srv.log()[mark:])
            print("listener backend terminated twice; second outage %.3f s "
                  "(database refusing it), /healthz 503 meanwhile; snapshot "
                  "after it reported %s changed events; %d clients kept; "
                  "final seats %d and %d/%d" % (t_out, snap, len(clients),
                                               fa[0], fb[0], fb[1]))
            record_property("outage_s", round(t_out, 3))
            assert snap and int(snap[-1]) == 2, snap
            assert all(not c.closed.is_set() for c in clients)
            assert st["totals"]["connections"] == len(clients)
            assert st["totals"]["listener_restarts"] == 0
            assert metrics(srv)["seatcast_db_reconnects_total"] >= 2
            assert healthz(srv)[1]["status"] == "ok"
        finally:
            session.close()
            await close_clients(clients)

    asyncio.run(body())


# ------------------------------------------------------------------ #
# 3. A slow consumer                                                   #

def server_send_queue(srv, client_port):
    """Bytes the server's kernel still holds for a client (tx_queue of the
    server-side socket in /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            lport = int(cols[1].rsplit(":", 1)[1], 16)
            rport = int(cols[2].rsplit(":", 1)[1], 16)
            if lport == srv.port and rport == client_port:
                return int(cols[4].split(":")[0], 16)
    return None


def bulk_bookings(db, event_id, total, per_statement=50, pause=None):
    """total bookings, per_statement in each transaction, with pg_sleep(pause)
    between transactions if given."""
    script = ("INSERT INTO bookings (event_id, user_id, seats) SELECT %d, 9,"
              " 1 FROM generate_series(1, %d);\n" % (event_id, per_statement)
              + ("SELECT pg_sleep(%s);\n" % pause if pause else "")
              ) * (total // per_statement)
    p = subprocess.Popen(db.cluster.psql_argv(db.name),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    threading.Thread(target=_feed, args=(p, script), daemon=True).start()
    return p


@pytest.mark.deadline(120)
def test_slow_consumer_gets_merged_seat_updates_and_ends_on_db_count(
        db, make_server, record_property):
    n = 10000
    cap = 100000
    event = db.event(cap)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="slow")
    slow = RawWs.connect(srv.port, "/ws/events/%d" % event, token,
                         rcvbuf=1024)
    try:
        assert slow.recv_json()["type"] == "connection_established"
        assert slow.recv_json()["availableSeats"] == cap
        rcvbuf = slow.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

        async def body():
            fast = await Client.open(srv, token, path="/ws/events/%d" % event)
            try:
                writer = bulk_bookings(db, event, n, per_statement=100)
                await asyncio.get_running_loop().run_in_executor(
                    None, finish, writer)
                final = db.available(event)
                assert final == cap - n
                await fast.wait_for(
                    lambda ms: seats_of(ms, "seat_update", event)[-1:] ==
                    [final], 30, "the fast client's final seat_update")
                created = seats_of(all_msgs(fast), "booking_created", event)
                assert created == list(range(cap - 1, final - 1, -1))
                return final
            finally:
                await fast.close()

        final = asyncio.run(body())
        behind = server_send_queue(srv, slow.sock.getsockname()[1])
        frames = slow.drain(idle=1.5, limit=60)
        texts = [json.loads(p) for op, p in frames if op == OP_TEXT]
        created = seats_of(texts, "booking_created", event)
        updates = seats_of(texts, "seat_update", event)
        print("slow consumer (SO_RCVBUF %d): %d bytes held in the server's "
              "kernel buffer while it did not read; then read %d messages: "
              "%d booking_created, %d seat_updates for %d bookings (%d "
              "merged); last seat_update %r, DB %d" % (
                  rcvbuf, behind or 0, len(texts), len(created),
                  len(updates), n, n - len(updates),
                  updates[-1] if updates else None, final))
        record_property("merged_seat_updates", n - len(updates))
        assert slow.close_frame is None, slow.close_frame
        assert updates[-1] == final
        assert created == list(range(cap - 1, final - 1, -1))
        assert all(x > y for x, y in zip(updates, updates[1:]))
        assert len(updates) < n, "no seat_update was merged"
        assert srv.stats()["totals"]["connections"] == 1
    finally:
        slow.close()


class stalled_workers:
    """SIGSTOPs the workers (as a loaded machine may deschedule them) and
    SIGCONTs them on exit, whatever happened."""

    def __init__(self, srv):
        self.pids = srv.worker_pids()

    def __enter__(self):
        for p in self.pids:
            os.kill(p, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for p in self.pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def backlog_after_stall(srv, db, event, n):
    """Books n seats (one INSERT of n rows) while the workers are stopped,
    and resumes them once the listener has put all n in the ring: each
    worker then finds the n changes in one drain of the ring."""
    head = srv.stats()["totals"]["ring_head"]
    with stalled_workers(srv):
        db.psql("INSERT INTO bookings (event_id, user_id, seats) "
                "SELECT %d, 1, 1 FROM generate_series(1, %d)" % (event, n))
        wait_for(stats_where(srv, lambda s: s["totals"]["ring_head"] >=
                             head + n), 10, "%d changes in the ring" % n)
    return db.available(event)


@pytest.mark.deadline(90)
def test_reading_clients_survive_a_worker_stall_at_64k_send_limit(
        db, make_server):
    """Clients that read everything must never be taken for slow
    consumers.  The workers are stopped for the time 1000 bookings take
    to reach the ring (a loaded machine does this to any process), then
    resumed with --send-buffer-limit 65536: 1000 changes are ~95 KB per
    subscriber, and their sockets have megabytes of room.  --max-lag 0:
    changes that waited through the stall would be merged otherwise
    (test_surge.py), and this is about every one of them going out."""
    cap = 10000
    event = db.event(cap)
    srv = db_server(db, make_server, workers=2,
                    args=["--send-buffer-limit", "65536", "--max-lag", "0"])
    token = srv.token(sub="fast")

    async def body():
        clients = await open_clients(srv, 20, "/ws/events/%d" % event,
                                     token)
        try:
            final = backlog_after_stall(srv, db, event, 1000)
            assert final == cap - 1000
            await async_wait_for(lambda: all(
                c.closed.is_set() or
                seats_of(all_msgs(c), "seat_update", event)[-1:] == [final]
                for c in clients), 30, "every client done")
            closed = [(c.ws.close_code, c.ws.close_reason) for c in clients
                      if c.closed.is_set()]
            got = sorted(len(seats_of(all_msgs(c), "booking_created", event))
                         for c in clients)
            print("workers stalled during 1000 bookings, then resumed; 20 "
                  "reading clients, limit 64 KiB: %d closed %s; "
                  "booking_created received: min %d max %d; slow consumers "
                  "logged: %d" % (
                      len(closed), sorted(set(closed)), got[0], got[-1],
                      srv.log().count("closing a slow consumer")))
            assert closed == [], (
                "%d reading clients were closed as slow consumers: "
                "conn.c sc_conn_send_frame() checks --send-buffer-limit "
                "while worker.c drain_ring() is still batching, before a "
                "single write was tried" % len(closed))
            assert got[0] == 1000
        finally:
            await close_clients(clients)

    asyncio.run(body())


@pytest.mark.deadline(90)
def test_reading_clients_get_every_seat_update_after_a_worker_stall(
        db, make_server):
    """SPEC 4: a booking sends booking_created then seat_update, each once
    per subscription; SPEC 5 merges seat_updates only for a client that
    is not reading.  After a stall of the workers (as above, default
    --send-buffer-limit), clients that read everything must still get
    one seat_update per booking (with --max-lag 0: a stall past --max-lag
    merges, test_surge.py)."""
    cap = 10000
    n = 500
    event = db.event(cap)
    srv = db_server(db, make_server, workers=2, args=["--max-lag", "0"])
    token = srv.token(sub="fast")

    async def body():
        clients = await open_clients(srv, 4, "/ws/events/%d" % event, token)
        try:
            final = backlog_after_stall(srv, db, event, n)
            await asyncio.gather(*(c.wait_for(
                lambda ms: seats_of(ms, "seat_update", event)[-1:] == [final],
                30, "the final seat_update") for c in clients))
            merged = [check_full_stream(c, event, cap, final)
                      for c in clients]
            print("workers stalled during %d bookings, then resumed: "
                  "seat_updates missing per reading client: %s"
                  % (n, merged))
            assert merged == [0] * len(clients), (
                "reading clients lost seat_updates: conn.c "
                "sc_conn_send_frame() merges a queued seat_update whenever "
                "the queue is not empty, including the frames a batch of "
                "worker.c drain_ring() queues before writing")
        finally:
            await close_clients(clients)

    asyncio.run(body())


RING_SLOTS = 4096  # SC_SHM_RING_SLOTS, shm/sc_shm.h


@pytest.mark.deadline(120)
def test_worker_behind_the_ring_resyncs_its_subscribers(db, make_server):
    """SPEC 5 / shm/sc_shm.h: a worker that falls more than the ring's
    4096 slots behind resynchronises its events from the event table.
    One worker is SIGSTOPped while 5000 bookings (one INSERT, 5000
    notifications) pass through the ring, then SIGCONTed: its subscribers
    must get a seat_update with the database's final count, the other
    worker's subscribers the full stream, and the worker's resyncs
    counter (stats and /metrics) must move."""
    cap = 20000
    n = RING_SLOTS + 904
    event = db.event(cap)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="behind")

    async def body():
        clients = await open_clients(srv, 6, "/ws/events/%d" % event, token)
        try:
            await asyncio.gather(*(c.wait_for(
                lambda ms: seats_of(ms, "seat_update", event), 10,
                "the first seat_update") for c in clients))
            where = workers_of(srv, clients)
            assert sorted(set(where)) == [0, 1], where
            st = srv.stats()
            stopped = st["workers"][0]["pid"]
            resyncs0 = st["workers"][0]["resyncs"]
            m_before = metrics(srv)["seatcast_ring_resyncs_total"]
            head = st["totals"]["ring_head"]
            os.kill(stopped, signal.SIGSTOP)
            try:
                # in steps that the running worker takes in before the
                # next: only the stopped one may fall behind the ring
                step = 250
                for done in range(0, n, step):
                    db.psql("INSERT INTO bookings (event_id, user_id, seats) "
                            "SELECT %d, 1, 1 FROM generate_series(1, %d)"
                            % (event, min(step, n - done)))
                    want = head + min(done + step, n)
                    wait_for(stats_where(
                        srv, lambda s, want=want:
                        s["totals"]["ring_head"] >= want and
                        s["workers"][1]["ring_seq"] >= want), 30,
                        "worker 1 to take in %d changes" % (want - head))
            finally:
                os.kill(stopped, signal.SIGCONT)
            final = db.available(event)
            assert final == cap - n
            await asyncio.gather(*(c.wait_for(
                lambda ms: seats_of(ms, "seat_update", event)[-1:] ==
                [final], 30, "the final seat_update %d" % final)
                for c in clients))
            st = srv.stats()
            behind = [c for c, w in zip(clients, where) if w == 0]
            ahead = [c for c, w in zip(clients, where) if w == 1]
            got_behind = [len(seats_of(all_msgs(c), "booking_created",
                                       event)) for c in behind]
            print("worker 0 stopped while %d bookings passed a ring of %d "
                  "slots: its %d subscribers got %s booking_created and "
                  "then the resync seat_update %d; worker 0 resyncs %d -> "
                  "%d" % (n, RING_SLOTS, len(behind), got_behind, final,
                          resyncs0, st["workers"][0]["resyncs"]))
            assert st["workers"][0]["pid"] == stopped
            assert st["workers"][0]["resyncs"] == resyncs0 + 1
            assert st["workers"][1]["resyncs"] == 0
            assert metrics(srv)["seatcast_ring_resyncs_total"] == \
                m_before + 1
            assert srv.log().count("fell behind the broadcast ring") == 1
            # stopped before the first booking, the worker found the ring
            # overrun at its first read: one seat_update from the event
            # table, no booking_created
            assert got_behind == [0] * len(behind), got_behind
            for c in behind:
                assert seats_of(all_msgs(c), "seat_update", event) == \
                    [cap, final], "resync() sent no seat_update"
            for c in ahead:
                check_full_stream(c, event, cap, final)
        finally:
            await close_clients(clients)

    asyncio.run(body())


# ------------------------------------------------------------------ #
# 4. Slowloris                                                         #

SLOWLORIS = 2000


@pytest.mark.deadline(120)
def test_slowloris_dropped_at_handshake_timeout_new_clients_served(
        make_server, record_property):
    srv = make_server(workers=2, args=["--handshake-timeout", "2"])
    token = srv.token(sub="loris")
    req, _ = ws_request(srv.port, "/ws", token)
    fds_before = {p: len(os.listdir("/proc/%d/fd" % p))
                  for p in [srv.master_pid] + srv.worker_pids()}
    sel = selectors.DefaultSelector()
    socks = {}
    t0 = time.monotonic()
    try:
        for i in range(SLOWLORIS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks[s] = {"sent": 0, "dropped": None, "start": None}
            sel.register(s, selectors.EVENT_READ, s)
        t_open = time.monotonic() - t0
        st = wait_for(stats_where(srv, lambda s: s["totals"]["connections"]
                                  >= SLOWLORIS), 10,
                      "%d stalled connections in the workers" % SLOWLORIS)
        peak = st["totals"]["connections"]

        def trickle():
            """One more byte to every connection still open."""
            now = time.monotonic()
            for s, info in socks.items():
                if info["dropped"] is not None or info["sent"] >= len(req):
                    continue
                try:
                    s.send(req[info["sent"]:info["sent"] + 1])
                    if info["start"] is None:
                        info["start"] = now
                    info["sent"] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    info["dropped"] = now

        def poll(timeout):
            for key, _ in sel.select(timeout):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                assert data == b"", "a stalled client got an answer: %r" \
                    % data
                socks[s]["dropped"] = time.monotonic()
                sel.unregister(s)

        trickle()
        # a new client is served at once while 2000 are stalled
        t1 = time.monotonic()

        async def fresh():
            ws, hello = await ws_open(srv, token=token, timeout=10)
            elapsed = time.monotonic() - t1
            pong = await ws_ping(ws)
            await ws.close()
            return hello, elapsed, pong
        hello, t_fresh, pong = asyncio.run(fresh())
        assert hello["type"] == "connection_established"
        assert pong["type"] == "pong"
        stalled_then = sum(1 for i in socks.values() if i["dropped"] is None)

        next_tick = time.monotonic() + 1.0
        deadline = time.monotonic() + 15
        while any(i["dropped"] is None for i in socks.values()):
            assert time.monotonic() < deadline, "%d still open" % sum(
                1 for i in socks.values() if i["dropped"] is None)
            poll(max(0.0, min(0.1, next_tick - time.monotonic())))
            if time.monotonic() >= next_tick:
                trickle()
                next_tick += 1.0
        ages = sorted(i["dropped"] - t0 for i in socks.values())
        sent = sorted(i["sent"] for i in socks.values())
        st = wait_for(stats_where(srv, lambda s: s["totals"]["connections"]
                                  == 0), 10, "no connection left")
        fds_after = {p: len(os.listdir("/proc/%d/fd" % p))
                     for p in fds_before}
        print("slowloris: %d connections opened in %.2f s (registry peak "
              "%d); a fresh websockets client was greeted after %.3f s "
              "with %d still stalled; all dropped %.2f..%.2f s after the "
              "start having sent %d..%d header bytes; fds %s -> %s"
              % (SLOWLORIS, t_open, peak, t_fresh, stalled_then, ages[0],
                 ages[-1], sent[0], sent[-1], fds_before, fds_after))
        record_property("fresh_client_s", round(t_fresh, 3))
        assert stalled_then >= SLOWLORIS * 0.9
        assert t_fresh < 5.0
        assert ages[0] >= 1.5, "dropped before --handshake-timeout"
        assert ages[-1] <= 2 + 1 + t_open + 8, ages[-1]
        assert sent[-1] <= 12
        assert fds_after == fds_before
        assert srv.running()
        assert st["totals"]["worker_restarts"] == 0
    finally:
        for s in socks:
            s.close()
        sel.close()


# ------------------------------------------------------------------ #
# 5. A message flood                                                   #

@pytest.mark.deadline(60)
def test_message_flood_is_rate_limited_then_closed_1008(make_server,
                                                        record_property):
    srv = make_server(workers=1)
    c = RawWs.connect(srv.port, "/ws", srv.token(sub="flood"))
    assert c.recv_json()["type"] == "connection_established"
    stop = threading.Event()
    sent = [0]
    frame = encode_frame(OP_TEXT, b'{"type":"ping"}')
    batch = frame * 100

    def flood():
        """~10 000 messages per second, for at most 6 s."""
        t_end = time.monotonic() + 6
        nxt = time.monotonic()
        while not stop.is_set() and time.monotonic() < t_end:
            try:
                c.sock.sendall(batch)
            except OSError:
                return
            sent[0] += 100
            nxt += 0.01
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    th = threading.Thread(target=flood, daemon=True)
    t0 = time.monotonic()
    th.start()
    pongs = errors = other = 0
    first_error = closed_at = None
    buf = bytearray()
    c.sock.settimeout(0.5)
    try:
        while time.monotonic() - t0 < 6.5:
            try:
                chunk = c.sock.recv(262144)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            frames, rest = parse_frames(buf)
            buf = bytearray(rest)
            for op, payload in frames:
                if op == OP_CLOSE:
                    c.close_frame = close_info(payload)
                    closed_at = time.monotonic()
                    break
                if op != OP_TEXT:
                    continue
                m = json.loads(payload)
                if m["type"] == "pong":
                    pongs += 1
                elif m["type"] == "error" and m["code"] == "rate_limited":
                    errors += 1
                    assert m["message"] == "Too many messages"
                    if first_error is None:
                        first_error = time.monotonic()
                else:
                    other += 1
            if closed_at is not None:
                break
    finally:
        stop.set()
        th.join(5)
        c.close()
    elapsed = time.monotonic() - t0
    flooded = (closed_at or time.monotonic()) - t0
    m = metrics(srv)
    print("flood: sent %d pings in %.2f s (%.0f/s); got %d pongs, %d "
          "rate_limited errors, %d other; close %r %s" % (
              sent[0], elapsed, sent[0] / elapsed, pongs, errors, other,
              c.close_frame,
              "%.2f s after the first error" % (closed_at - first_error)
              if closed_at and first_error else "never"))
    record_property("pings_sent", sent[0])
    assert first_error is not None and errors > 100
    # 50/s with bursts of 100: the bucket allows ~100 + 50 per second
    assert pongs <= 100 + 50 * (flooded + 1), pongs
    assert c.close_frame == (1008, "Rate limit exceeded"), (
        "still flooding after %.1f s of rate_limited errors and not "
        "closed: conn.c rate_ok() resets flood_since_ms whenever one "
        "message fits the bucket (every 20 ms at 50/s), so a sustained "
        "flood never reaches 2 s of errors" % (time.monotonic() -
                                                first_error))
    assert 1.5 <= closed_at - first_error <= 6.0
    assert m["seatcast_rate_limited_total"] >= errors
    assert srv.stats()["totals"]["worker_restarts"] == 0


@pytest.mark.deadline(60)
def test_flood_of_bad_messages_closes_only_the_flooder(make_server):
    """The flood close with another message mix (malformed and unknown
    messages, which cost the server an error each) and a neighbour on the
    same worker: the flooder is closed 1008 "Rate limit exceeded", the
    polite client of that worker keeps getting its pongs."""
    srv = make_server(workers=1)
    token = srv.token(sub="flood2")
    c = RawWs.connect(srv.port, "/ws", token)
    assert c.recv_json()["type"] == "connection_established"
    batch = (encode_frame(OP_TEXT, b'{"type":"nonsense"}') +
             encode_frame(OP_TEXT, b'not json') +
             encode_frame(OP_TEXT, b'{"type":"ping"}')) * 40
    stop = threading.Event()

    def flood():
        t_end = time.monotonic() + 8
        while not stop.is_set() and time.monotonic() < t_end:
            try:
                c.sock.sendall(batch)
            except OSError:
                return
            time.sleep(0.01)

    async def body():
        polite = await Client.open(srv, token)
        th = threading.Thread(target=flood, daemon=True)
        th.start()
        try:
            loop = asyncio.get_running_loop()
            frames = await loop.run_in_executor(
                None, lambda: c.drain(idle=3, limit=10))
            # the neighbour is served during and after the flood
            for _ in range(3):
                await client_ping(polite)
            assert not polite.closed.is_set()
            return frames
        finally:
            stop.set()
            th.join(5)
            await polite.close()

    frames = asyncio.run(body())
    c.close()
    errors = [json.loads(p) for op, p in frames if op == OP_TEXT]
    limited = sum(1 for m in errors if m.get("code") == "rate_limited")
    print("flood of bad messages: %d frames back, %d rate_limited; close %r"
          % (len(frames), limited, c.close_frame))
    assert c.close_frame == (1008, "Rate limit exceeded"), c.close_frame
    assert limited > 0
    st = srv.stats()
    assert st["totals"]["worker_restarts"] == 0
    assert st["totals"]["clients"] == 0
    assert metrics(srv)["seatcast_rate_limited_total"] >= limited


@pytest.mark.deadline(120)
def test_slow_consumer_closed_1008_while_readers_get_every_message(
        db, make_server):
    """The slow-consumer close beside a reading client: a raw client that
    never reads, with --send-buffer-limit 65536, while 10 000 bookings
    flow, is closed 1008 "Slow consumer"; a reading subscriber of the same
    event on the same worker gets every booking_created, in order."""
    n = 10000
    cap = 100000
    event = db.event(cap)
    srv = db_server(db, make_server, workers=1,
                    args=["--send-buffer-limit", "65536"])
    token = srv.token(sub="slow2")
    slow = RawWs.connect(srv.port, "/ws/events/%d" % event, token,
                         rcvbuf=1024)
    try:
        assert slow.recv_json()["type"] == "connection_established"

        async def body():
            fast = await Client.open(srv, token, path="/ws/events/%d" % event)
            try:
                # 20 ms between transactions of 100: at most 5 000 bookings
                # a second, which a Python client reads without falling
                # 64 KiB behind (unpaced, the reading client itself was
                # closed about one run in six); the other never reads, so
                # its 2.3 MB pass the limit all the same
                writer = bulk_bookings(db, event, n, per_statement=100,
                                       pause=0.02)
                await asyncio.get_running_loop().run_in_executor(
                    None, finish, writer)
                final = db.available(event)
                await fast.wait_for(
                    lambda ms: seats_of(ms, "seat_update", event)[-1:] ==
                    [final], 30, "the fast client's final seat_update")
                await async_wait_for(
                    lambda: metrics(srv)["seatcast_slow_consumers_total"]
                    >= 1, 15, "the slow consumer closed")
                check_full_stream(fast, event, cap, final)
                assert not fast.closed.is_set()
                await client_ping(fast)
                return final
            finally:
                await fast.close()

        final = asyncio.run(body())
        frames = slow.drain(idle=2, limit=60)
        print("slow consumer beside a reader: %d frames read after the "
              "bookings, close %r; DB %d" % (len(frames), slow.close_frame,
                                             final))
        assert slow.close_frame == (1008, "Slow consumer"), slow.close_frame
        assert metrics(srv)["seatcast_slow_consumers_total"] == 1
        assert "closing a slow consumer" in srv.log()
    finally:
        slow.close()


# ------------------------------------------------------------------ #
# 6. Registry full                                                     #

@pytest.mark.deadline(90)
def test_registry_full_logs_and_answers_not_found_first_16_still_deliver(
        db, make_server):
    events = db.events([100] * 20)
    srv = db_server(db, make_server, workers=2, args=["--max-events", "16"])
    srv.wait_log(r"\[error\] listener\[\d+\]: registry full: event \d+ is "
                 r"not tracked \(--max-events 16\)")
    st = srv.stats()
    assert st["totals"]["events"] == 16
    assert st["listener"]["events_full"] >= 4
    token = srv.token(sub="full")
    pids = srv.child_pids()

    async def body():
        c = await Client.open(srv, token)
        try:
            tracked, missing = [], []
            for e in events:
                m = await c.request({"type": "subscribe_event",
                                     "eventId": e})
                if m["type"] == "subscribed":
                    su = await c.next()
                    assert su["type"] == "seat_update"
                    assert su["availableSeats"] == 100
                    tracked.append(e)
                else:
                    assert m["type"] == "error", m
                    assert m["code"] == "not_found", m
                    assert m["message"] == "Event %d not found" % e
                    missing.append(e)
            assert len(tracked) == 16 and len(missing) == 4, \
                (tracked, missing)
            # a booking on each of the 20, two on the tracked ones
            for i, e in enumerate(events):
                db.book(e, seats=1 + i % 3)
            for e in tracked:
                db.book(e)
            want = {e: db.available(e) for e in tracked}
            await c.wait_for(lambda ms: all(
                seats_of(ms, "seat_update", e)[-1:] == [want[e]]
                for e in tracked), 15, "the 16 events' last seats")
            await client_ping(c)
            got = all_msgs(c)
            for e in tracked:
                created = seats_of(got, "booking_created", e)
                i = events.index(e)
                assert created == [100 - (1 + i % 3), want[e]], (e, created)
            assert not any(m.get("eventId") in missing for m in got
                           if m["type"] != "error")
            return tracked, missing
        finally:
            await c.close()

    tracked, missing = asyncio.run(body())
    st = srv.stats()
    lines = re.findall(r"registry full: event (\d+)", srv.log())
    print("--max-events 16 with 20 events: tracked %d, not_found for %s; "
          "events_full %d; %d 'registry full' log lines (one per 10 s at "
          "most)" % (len(tracked), missing, st["listener"]["events_full"],
                     len(lines)))
    assert st["listener"]["events_full"] >= 8  # snapshot + 4 bookings
    assert srv.child_pids() == pids
    assert st["totals"]["events"] == 16


# ------------------------------------------------------------------ #
# 7. Bad configuration, bad databases, bad payloads                    #

BAD_CONF = [
    ("# seatcast\nworkers = 2\nworkers = lots\n", 3,
     'workers: not a number: "lots"'),
    ("frobnicate = 1\n", 1, 'unknown option "frobnicate"'),
    ("\n\nmax-events 16\n", 3, 'missing "="'),
    ("max-events = 0\n", 1, "max-events: must be between 16"),
    ("handshake-timeout = 2\nlisten = nowhere:99999\n", 2, "listen:"),
    ("send-buffer-limit = 1z\n", 1, "send-buffer-limit:"),
]


@pytest.mark.deadline(60)
@pytest.mark.parametrize("text,line,what", BAD_CONF,
                         ids=["bad-number", "unknown", "no-equals",
                              "out-of-range", "bad-listen", "bad-size"])
def test_bad_config_line_exits_2_naming_file_and_line(tmp_path, text, line,
                                                      what):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    port = free_port()
    shm = "/sc-test-badconf-%d" % port
    for args in (["-t", "-c", str(conf)],
                 ["-c", str(conf), "-l", "127.0.0.1:%d" % port,
                  "--shm-name", shm]):
        p = run_seatcast(args, timeout=10)
        print("%s: exit %d, %r" % (" ".join(args[:2]), p.returncode,
                                   p.stderr))
        assert p.returncode == 2
        err = p.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert "%s:%d:" % (conf, line) in err, err
        assert what in err, err
        assert not os.path.exists("/dev/shm" + shm)


@pytest.mark.deadline(60)
def test_database_on_closed_port_server_runs_degraded_and_retries(
        make_server):
    port = free_port()
    srv = make_server(workers=1, database="host=127.0.0.1 port=%d "
                      "dbname=nothing user=nobody connect_timeout=2" % port)
    lpid = srv.listener_pid()
    status, body = healthz(srv)
    assert status == 503 and body["status"] == "degraded", body
    assert "listener not connected to PostgreSQL" in body["reasons"]
    srv.wait_log(r"database connection lost or refused: .*[Cc]onnection "
                 r"refused.*; retrying in \d+ ms")
    wait_for(lambda: len(re.findall(r"retrying in", srv.log())) >= 4, 10,
             "four connection attempts")
    delays = [int(x) for x in re.findall(r"retrying in (\d+) ms",
                                         srv.log())]
    print("database on closed port %d: /healthz %d %s; retry delays %s ms"
          % (port, status, body["reasons"], delays))
    assert delays[:4] == [100, 200, 400, 800]
    assert srv.listener_pid() == lpid
    assert srv.stats()["totals"]["listener_restarts"] == 0

    async def body_():
        ws, hello = await ws_open(srv)
        try:
            assert (await ws_ping(ws))["type"] == "pong"
        finally:
            await ws.close()
    asyncio.run(body_())


@notify_only
@pytest.mark.deadline(60)
def test_database_without_notify_sql_is_named_in_log_and_degraded(
        make_server, cluster):
    name = "bare%d" % os.getpid()
    cluster.createdb(name)
    try:
        cluster.psql_file(SCHEMA, db=name)
        srv = make_server(workers=1, database=cluster.conninfo(name))
        srv.wait_log(r"seatcast_seat_state.*(does not exist|notify\.sql)",
                     timeout=10)
        line = re.search(r".*seatcast_seat_state.*", srv.log()).group(0)
        status, body = healthz(srv)
        print("without notify.sql: %r; /healthz %d %s" % (line, status,
                                                          body))
        assert "notify.sql" in line
        assert 'relation "seatcast_seat_state" does not exist' in line
        assert status == 503 and body["status"] == "degraded"
        # installing it is enough: the listener keeps retrying
        cluster.psql_file(NOTIFY, db=name)
        wait_healthy(srv, 15)
    finally:
        cluster.dropdb(name)


def bad_payloads(event_id):
    """(payload, why) pairs the listener must refuse."""
    ok = ('"type":"booking_created","eventId":%d,"availableSeats":10,'
          '"seatCapacity":100,"version":1000' % event_id)
    return [
        ("", "empty"),
        ("not json at all", "garbage"),
        ("\x01\x02\x7f", "control bytes"),
        ("{", "truncated"),
        ("[1,2,3]", "not an object"),
        ('"booking_created"', "a string"),
        ("{%s} trailing" % ok, "trailing data"),
        ("{%s," % ok, "unterminated"),
        ('{"type":"booking_created"}', "missing fields"),
        ('{"type":"teleported","eventId":%d}' % event_id, "unknown type"),
        ('{"type":42,"eventId":%d,"availableSeats":10,"seatCapacity":100,'
         '"version":1000}' % event_id, "type a number"),
        ('{"type":"booking_created","eventId":"%dx","availableSeats":10,'
         '"seatCapacity":100,"version":1000}' % event_id,
         "eventId a string, not digits"),
        ('{"type":"booking_created","eventId":true,"availableSeats":10,'
         '"seatCapacity":100,"version":1000}', "eventId a boolean"),
        ('{"type":"booking_created","eventId":0,"availableSeats":10,'
         '"seatCapacity":100,"version":1000}', "eventId 0"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":150,'
         '"seatCapacity":100,"version":1000}' % event_id,
         "more seats than capacity"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":10,'
         '"seatCapacity":100,"version":"1000"}' % event_id,
         "version a string"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":10,'
         '"seatCapacity":100}' % event_id, "no version"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":"10",'
         '"seatCapacity":100,"version":1000}' % event_id,
         "availableSeats a string"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":10.5,'
         '"seatCapacity":100,"version":1000}' % event_id, "a fraction"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":-1,'
         '"seatCapacity":100,"version":1000}' % event_id, "negative seats"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":1e2,'
         '"seatCapacity":100,"version":1000}' % event_id, "exponent"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":10,'
         '"seatCapacity":99999999999999999999,"version":1000}' % event_id,
         "capacity overflow"),
        ('{"type":"booking_created","eventId":-%d,"availableSeats":10,'
         '"seatCapacity":100,"version":1000}' % event_id, "negative id"),
        ('{"type":"booking_created","eventId":9007199254740993,'
         '"availableSeats":10,"seatCapacity":100,"version":1000}',
         "id above 2^53"),
        ('{"type":"booking_created","eventId":%d,"eventId":%d,%s}'
         % (event_id, event_id, ok.split(",", 2)[2]), "duplicate key"),
        ('{"type":null,"eventId":%d}' % event_id, "null type"),
        ('{"type":"token_revoked"}', "token_revoked without jti"),
        ('{"type":"token_revoked","jti":"%s"}' % ("j" * 300), "jti too long"),
        ("[" * 3000 + "]" * 3000, "nested 3000 deep"),
        ("x" * 7999, "7999 bytes of garbage"),
        ('{"type":"booking_created","eventId":%d,"availableSeats":[%s],'
         '"seatCapacity":100,"version":1000}'
         % (event_id, ",".join(["1"] * 3900)), "7.8 KB array for seats"),
    ]


@notify_only
@pytest.mark.deadline(60)
def test_malformed_notify_payloads_are_logged_counted_and_harmless(
        db, make_server, record_property):
    event = db.event(100)
    srv = db_server(db, make_server, workers=2)
    lpid = srv.listener_pid()
    token = srv.token(sub="payloads")
    payloads = bad_payloads(event)

    async def body():
        c = await Client.open(srv, token, path="/ws/events/%d" % event)
        try:
            await c.wait_for(lambda ms: seats_of(ms, "seat_update", event),
                             10, "the first seat_update")
            before = metrics(srv)["seatcast_notifications_malformed_total"]
            mark = srv.log_mark()
            sql = "".join("SELECT pg_notify('seatcast', %s);\n" % (
                "$p$%s$p$" % p) for p, _ in payloads)
            db.run(sql)
            await async_wait_for(
                lambda: metrics(srv)["seatcast_notifications_malformed_total"]
                >= before + len(payloads), 10,
                "%d malformed notifications counted" % len(payloads))
            after = metrics(srv)["seatcast_notifications_malformed_total"]
            logged = re.findall(r"\[warn\] listener\[\d+\]: ignored a "
                                r"malformed notification on \"seatcast\" "
                                r"\((\d+) bytes\): (.*)", srv.log()[mark:])
            # a real booking still goes through, nothing else arrived
            db.book(event, seats=2)
            await c.wait_for(lambda ms: seats_of(ms, "seat_update", event)
                             [-1:] == [98], 10, "the real booking")
            got = [m["type"] for m in all_msgs(c)]
            return before, after, logged, got
        finally:
            await c.close()

    before, after, logged, got = asyncio.run(body())
    print("%d malformed payloads: malformed_total %d -> %d; log reasons: %s"
          % (len(payloads), before, after,
             sorted(set(r for _, r in logged))))
    record_property("malformed_counted", after - before)
    assert after - before == len(payloads)
    assert len(logged) == len(payloads)
    # the greeting was read by Client.open: then only the first seat
    # update and the real booking's pair
    assert got == ["seat_update", "booking_created", "seat_update"], got
    assert srv.listener_pid() == lpid
    assert srv.stats()["totals"]["listener_restarts"] == 0
    assert healthz(srv)[0] == 200


@notify_only
@pytest.mark.deadline(120)
def test_standby_is_refused(make_server, tmp_path):
    """SPEC 7: seatcast needs the primary (a standby cannot LISTEN).  A
    cluster restarted with standby.signal stays in recovery, read-only
    with hot_standby on: the listener logs the refusal, keeps retrying,
    and /healthz stays 503 "listener not connected"."""
    pg = PgCluster(str(tmp_path))
    try:
        pg.start()
        pg.psql_file(SCHEMA)
        pg.psql_file(NOTIFY)
        pg.stop()
        signal_file = os.path.join(pg.datadir, "standby.signal")
        subprocess.run(["runuser", "-u", "postgres", "--", "touch",
                        signal_file], check=True, timeout=30)
        pg.start()
        assert pg.query_value("SELECT pg_is_in_recovery()") == "t"
        srv = make_server(workers=1, database=pg.conninfo())
        line = srv.wait_log(r"^.*the server is a standby "
                            r"\(pg_is_in_recovery\).*$", timeout=15)
        wait_for(lambda: srv.log().count("the server is a standby") >= 3,
                 15, "the listener to keep retrying the standby")
        status, body = healthz(srv)
        print("standby: %s; /healthz %d %s" % (line.group(0), status, body))
        assert status == 503 and body["status"] == "degraded", body
        assert body["reasons"] == ["listener not connected to PostgreSQL"]
        assert srv.stats()["listener"]["database"] != "connected"
        assert srv.stats()["totals"]["listener_restarts"] == 0
    finally:
        pg.cleanup()


class NotificationDroppingProxy:
    """A TCP proxy in front of PostgreSQL that forwards everything but
    the server's NotificationResponse messages ('A'): a stand-in for a
    pooler that does not pass LISTEN/NOTIFY through (a transaction-mode
    pgbouncer hands the session to other clients between transactions).
    Clients must connect with sslmode=disable (messages are parsed)."""

    def __init__(self, port):
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.dropped = 0
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            self.conns += [c, u]
            threading.Thread(target=self._raw, args=(c, u),
                             daemon=True).start()
            threading.Thread(target=self._filter, args=(u, c),
                             daemon=True).start()

    @staticmethod
    def _raw(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _filter(self, src, dst):
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while len(buf) >= 5:
                    n = int.from_bytes(buf[1:5], "big") + 1
                    if len(buf) < n:
                        break
                    msg, buf = buf[:n], buf[n:]
                    if msg[:1] == b"A":
                        self.dropped += 1
                    else:
                        out += msg
                if out:
                    dst.sendall(out)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass


@notify_only
@pytest.mark.deadline(90)
def test_listen_probe_names_a_path_that_loses_notifications(db, make_server):
    """The LISTEN round-trip probe (listener.c: LISTEN and NOTIFY a
    channel of its own, wait 5 s for the notification) guards against a
    pooler that does not carry notifications: through a proxy that drops
    them, the listener never reports connected, logs the suspected
    pooler, retries, and /healthz stays 503."""
    proxy = NotificationDroppingProxy(db.cluster.port)
    try:
        conninfo = "host=127.0.0.1 port=%d dbname=%s user=postgres " \
            "sslmode=disable" % (proxy.port, db.name)
        srv = make_server(workers=1, database=conninfo)
        line = srv.wait_log(r"^.*LISTEN/NOTIFY round trip did not complete "
                            r"in 5 s: is a transaction-mode pooler between "
                            r"seatcast and PostgreSQL\?.*$", timeout=20)
        status, body = healthz(srv)
        print("notifications dropped by the proxy: %d; %s; /healthz %d %s"
              % (proxy.dropped, line.group(0), status, body))
        assert proxy.dropped >= 1
        assert status == 503, body
        assert body["reasons"] == ["listener not connected to PostgreSQL"]
        assert "listening for notifications" not in srv.log()
        assert srv.stats()["listener"]["database"] != "connected"
    finally:
        proxy.close()
