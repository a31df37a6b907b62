"""test_load.py - seatcast under load: a slow consumer among 1000
subscribers, and connection churn (issue 7; SPEC sections 5 and 6).

Real processes: one PostgreSQL 15 cluster for the module (pg.PgCluster,
sql/schema.sql + sql/notify.sql), seatcast from make_server, bookings by
psql.  Thousands of clients cannot each be a websockets client in one
Python process on a loaded 2-core machine, so they are raw clients in one
selectors loop (rawws.Swarm): a real RFC 6455 client side (random key,
Sec-WebSocket-Accept checked, masked frames, pings answered), frames
checked byte for byte.  Loopback only; every wait polls a condition;
every loop is bounded in count and in time.

Numbers used, and why (both files must stay under ~150 s):
  slow consumer      1000 raw subscribers of event A plus one raw client
                     with SO_RCVBUF 1024 that follows A and B and never
                     reads; --send-buffer-limit 65536.  300 bookings on A
                     (one per transaction, 10 ms apart) reach everyone;
                     bookings on B (100 rows per statement, at most
                     40 000) are the flood that only the slow client
                     follows, stopped as soon as it is closed.  Why B:
                     on loopback Linux autotunes the server's send buffer
                     up to 4 MB, so a frozen reader holds ~1.6 MB of
                     frames in the kernel before seatcast's own queue
                     grows (measured: closed after ~8000 bookings of B,
                     ~7000 of them read from the kernel after the close);
                     pushing that through A alone would mean ~14 million
                     frames to the 1000 subscribers.
  churn              2 workers, the issue's 5000 connections paced over
                     10 s instead of 30 s (budget), stopped at 15 s
                     whatever the count: batches of 100, of which 40
                     complete the upgrade on /ws/events/E and close
                     politely, 30 complete it and vanish without a close
                     frame, 20 send half a request and go, 10 connect and
                     go.  Before it, 200 warm-up connections, so that the
                     allocator's first growth is not taken for a leak.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import BookingDb, metrics, percentile  # noqa: E402
from pg import BOOKING_TEMPLATE  # noqa: E402
from rawws import OP_TEXT, RawWs, Swarm, ws_request  # noqa: E402
from server import ROOT, wait_for  # noqa: E402

SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
NOTIFY = os.path.join(ROOT, "sql", "notify.sql")
TEMPLATE = BOOKING_TEMPLATE  # made by the conftest fixture `cluster`


_dbs = [0]


@pytest.fixture
def db(cluster):
    _dbs[0] += 1
    name = "l%d" % _dbs[0]
    cluster.createdb(name, template=TEMPLATE)
    yield BookingDb(cluster, name)
    cluster.dropdb(name)


def db_server(db, make_server, workers=2, args=()):
    srv = make_server(workers=workers, database=db.conninfo(),
                      args=list(args))
    wait_for(lambda: srv.http_get("/healthz")[0] == 200, 20,
             "/healthz 200")
    return srv


def psql_writer(db, script):
    p = subprocess.Popen(db.cluster.psql_argv(db.name),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)

    def feed():
        try:
            p.stdin.write(script)
            p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
    threading.Thread(target=feed, daemon=True).start()
    return p


def memory_kb(srv):
    """{pid: Pss KiB} of the server's processes (smaps_rollup)."""
    out = {}
    for pid in sorted(srv.tree_pids()):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        out[pid] = int(line.split()[1])
        except OSError:
            pass
    return out


def fd_counts(srv):
    pids = [srv.master_pid] + srv.child_pids()
    return {p: len(os.listdir("/proc/%d/fd" % p)) for p in pids}


def iso_ms(ts):
    """Epoch seconds of an ISO 8601 UTC millisecond timestamp."""
    import calendar
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + \
        int(ts[20:23]) / 1000.0


# ------------------------------------------------------------------ #
# 1. A slow consumer among 1000 subscribers                            #

SUBSCRIBERS = 1000
SAMPLE = 50
A_BOOKINGS = 300
B_MAX = 40000


class Tally:
    """What one subscriber of A saw: booking_created count and seats
    (kept in full for the sample), the last seat_update, and for the
    sample the delay between the frame's timestamp and its arrival."""

    __slots__ = ("full", "created", "count", "last_update", "lags",
                 "prefix", "bad")

    def __init__(self, event_id, full):
        self.full = full
        self.created = []
        self.count = 0
        self.last_update = None
        self.lags = []
        self.bad = []
        self.prefix = b'{"type":"booking_created","eventId":%d,' % event_id

    def on_text(self, conn, payload):
        if payload.startswith(self.prefix):
            self.count += 1
            if self.full:
                m = json.loads(payload)
                self.created.append(m["availableSeats"])
                self.lags.append(time.time() - iso_ms(m["timestamp"]))
        elif payload.startswith(b'{"type":"seat_update"'):
            self.last_update = payload
        elif not payload.startswith(b'{"type":"connection_established"'):
            self.bad.append(payload)


@pytest.mark.deadline(150)
def test_slow_consumer_closed_1008_while_1000_subscribers_keep_receiving(
        db, make_server, record_property):
    cap_a, cap_b = 100000, 1000000
    a, b = db.event(cap_a), db.event(cap_b)
    # --max-lag 0: every subscriber of A must get every booking, which a
    # loaded machine's stall past --max-lag would merge (test_surge.py)
    srv = db_server(db, make_server, workers=2,
                    args=["--send-buffer-limit", "65536",
                          "--max-connections", "5000", "--max-lag", "0"])
    token = srv.token(sub="load")
    swarm = Swarm()
    slow = None
    writers = []
    try:
        t0 = time.monotonic()
        conns = swarm.open(srv.port, "/ws/events/%d" % a, token, SUBSCRIBERS)
        tallies = []
        for i, c in enumerate(conns):
            t = Tally(a, full=i < SAMPLE)
            c.on_text = t.on_text
            tallies.append(t)
        swarm.run_until(lambda: all(t.last_update is not None
                                    for t in tallies), 60,
                        "%d subscribers greeted" % SUBSCRIBERS)
        t_open = time.monotonic() - t0

        slow = RawWs.connect(srv.port, "/ws/events/%d" % a, token,
                             rcvbuf=1024)
        assert slow.recv_json()["type"] == "connection_established"
        assert slow.recv_json()["type"] == "seat_update"
        slow.send_text('{"type":"subscribe_event","eventId":%d}' % b)
        assert slow.recv_json()["type"] == "subscribed"
        assert slow.recv_json()["availableSeats"] == cap_b
        st = srv.stats()
        assert st["totals"]["clients"] == SUBSCRIBERS + 1
        mem0, fds0 = memory_kb(srv), fd_counts(srv)

        # the flood only the slow client follows, and the bookings of A
        writers.append(psql_writer(db, (
            "INSERT INTO bookings (event_id, user_id, seats) SELECT %d, 3, 1"
            " FROM generate_series(1, 100);\n" % b) * (B_MAX // 100)))
        writers.append(psql_writer(db, (
            "INSERT INTO bookings (event_id, user_id, seats) VALUES "
            "(%d, 4, 1);\nSELECT pg_sleep(0.01);\n" % a) * A_BOOKINGS))
        t1 = time.monotonic()

        def slow_closed():
            return metrics(srv)["seatcast_slow_consumers_total"] >= 1
        last_check = [0.0]

        def closed_or_done():
            now = time.monotonic()
            if now - last_check[0] < 0.25:
                return False
            last_check[0] = now
            return slow_closed() or writers[0].poll() is not None
        swarm.run_until(closed_or_done, 90, "the slow consumer's close")
        t_slow = time.monotonic() - t1
        b_booked = cap_b - db.available(b)
        writers[0].send_signal(signal.SIGINT)   # stop the flood
        writers[0].kill()
        writers[0].wait(10)

        swarm.run_until(lambda: writers[1].poll() is not None, 90,
                        "the %d bookings of A" % A_BOOKINGS)
        assert writers[1].returncode == 0, writers[1].stderr.read()
        final_a = db.available(a)
        assert final_a == cap_a - A_BOOKINGS
        want = b'"availableSeats":%d,' % final_a
        t2 = time.monotonic()
        swarm.run_until(lambda: all(
            t.last_update is not None and want in t.last_update
            for t in tallies), 30, "every subscriber on %d seats" % final_a)
        t_conv = time.monotonic() - t2
        mem1 = memory_kb(srv)

        # the slow one, drained: what it had, then 1008
        frames = slow.drain(idle=2.0, limit=60)
        texts = [json.loads(p) for op, p in frames if op == OP_TEXT]
        created_b = [m["availableSeats"] for m in texts
                     if m["type"] == "booking_created" and m["eventId"] == b]
        updates_b = [m["availableSeats"] for m in texts
                     if m["type"] == "seat_update" and m["eventId"] == b]
        st = srv.stats()
        m = metrics(srv)
        lags = [x for t in tallies if t.full for x in t.lags]
        counts = sorted(t.count for t in tallies)
        print("%d subscribers of A opened in %.2f s; slow client (SO_RCVBUF "
              "%d) closed %.2f s into the flood after %d bookings of B; it "
              "read %d frames: %d booking_created and %d seat_updates of B "
              "(merged %d), then %r" % (
                  SUBSCRIBERS, t_open,
                  slow.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                  t_slow, b_booked, len(frames), len(created_b),
                  len(updates_b), len(created_b) - len(updates_b),
                  slow.close_frame))
        print("A: %d bookings; booking_created per subscriber %d..%d; all on "
              "%d seats %.2f s after the last booking; lag (frame timestamp "
              "to arrival, %d sample clients) p50 %.3f p99 %.3f max %.3f s"
              % (A_BOOKINGS, counts[0], counts[-1], final_a, t_conv, SAMPLE,
                 percentile(lags, 50), percentile(lags, 99), max(lags)))
        print("server memory (Pss KiB): before %s = %d, after %s = %d; fds "
              "%s -> %s; resyncs %d" % (
                  mem0, sum(mem0.values()), mem1, sum(mem1.values()), fds0,
                  fd_counts(srv), m["seatcast_ring_resyncs_total"]))
        record_property("slow_closed_after_b_bookings", b_booked)
        record_property("pss_kb_before", sum(mem0.values()))
        record_property("pss_kb_after", sum(mem1.values()))
        record_property("lag_p99_s", round(percentile(lags, 99), 3))

        assert slow.close_frame == (1008, "Slow consumer")
        # what it got before the close is a gapless prefix, updates merged
        assert created_b == list(range(cap_b - 1,
                                       cap_b - 1 - len(created_b), -1))
        assert all(x > y for x, y in zip(updates_b, updates_b[1:]))
        # never a seat_update ahead of the bookings it has been told of
        assert updates_b[-1] >= created_b[-1]
        assert m["seatcast_slow_consumers_total"] == 1
        # nobody else was touched
        assert all(c.open for c in conns), sum(1 for c in conns
                                               if not c.open)
        assert counts == [A_BOOKINGS] * SUBSCRIBERS
        for t in tallies:
            assert t.bad == [], t.bad[:3]
            if t.full:
                assert t.created == list(range(cap_a - 1, final_a - 1, -1))
        assert percentile(lags, 99) < 5.0
        wait_for(lambda: srv.stats()["totals"]["connections"] == SUBSCRIBERS,
                 10, "the slow consumer's socket closed")
        assert st["totals"]["worker_restarts"] == 0
        # bounded: the slow client's queue is capped at 64 KiB
        assert sum(mem1.values()) - sum(mem0.values()) < 64 * 1024
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
        if slow is not None:
            slow.close()
        swarm.close_all()


# ------------------------------------------------------------------ #
# 2. Connection churn                                                  #

CHURN_SECONDS = 10
CHURN_MAX = 5000
BATCH = 100


def churn_batch(srv, swarm, path, token, counts):
    """One batch of 100 connections of four kinds; returns when all are
    closed again."""
    polite = swarm.open(srv.port, path, token, 40)
    rude = swarm.open(srv.port, path, token, 30)
    upgraded = polite + rude
    halves = []
    req, _ = ws_request(srv.port, path, token)
    for i in range(30):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", srv.port))
        halves.append((s, i < 20))
    swarm.run_until(lambda: all(c.ntext >= 2 or c.state == "closed"
                                for c in upgraded), 30,
                    "a batch's upgrades")
    failed = [c for c in upgraded if c.ntext < 2]
    assert not failed, [c.error for c in failed[:3]]
    for s, half in halves:
        if half:
            try:
                s.send(req[:len(req) // 2])
            except OSError:
                pass
        s.close()
    for c in polite:
        swarm.close(c)
    for c in rude:
        swarm.close(c, abrupt=True)
    swarm.conns = [c for c in swarm.conns if c.state != "closed"]
    counts["polite"] += len(polite)
    counts["rude"] += len(rude)
    counts["half"] += 20
    counts["bare"] += 10


@pytest.mark.deadline(120)
def test_connection_churn_leaves_no_fd_memory_or_registry_count_behind(
        db, make_server, record_property):
    event = db.event(1000)
    srv = db_server(db, make_server, workers=2)
    token = srv.token(sub="churn")
    path = "/ws/events/%d" % event
    swarm = Swarm()
    counts = {"polite": 0, "rude": 0, "half": 0, "bare": 0}
    try:
        for _ in range(2):  # warm-up
            churn_batch(srv, swarm, path, token, counts)

        def settled(st):
            t = st["totals"]
            return (t["connections"] == 0 and t["clients"] == 0 and
                    t["subscriptions"] == 0 and t["events_watched"] == 0)

        wait_for(lambda: settled(srv.stats()), 15, "the warm-up to settle")
        fds0, mem0, st0 = fd_counts(srv), memory_kb(srv), srv.stats()
        counts = {k: 0 for k in counts}
        t0 = time.monotonic()
        slot = CHURN_SECONDS * BATCH / CHURN_MAX   # seconds per batch
        while (time.monotonic() - t0 < CHURN_SECONDS + 5 and
               sum(counts.values()) < CHURN_MAX):
            churn_batch(srv, swarm, path, token, counts)
            # paced: the 5000 spread over the whole 10 s
            swarm.run_for(t0 + slot * sum(counts.values()) / BATCH -
                          time.monotonic())
        elapsed = time.monotonic() - t0
        total = sum(counts.values())
        t1 = time.monotonic()
        st1 = wait_for(lambda: (lambda s: s if settled(s) else None)(
            srv.stats()), 20, "connections, clients and subscriptions "
            "back to 0")
        t_settle = time.monotonic() - t1
        fds1 = wait_for(lambda: (lambda f: f if f == fds0 else None)(
            fd_counts(srv)), 10, "fds back to %s" % fds0)
        mem1 = memory_kb(srv)
        grew = sum(mem1.values()) - sum(mem0.values())
        base = st0["totals"]["connections_total"]
        done = wait_for(lambda: (lambda n: n if n == total else None)(
            srv.stats()["totals"]["connections_total"] - base), 10,
            "every connection counted by a worker")
        print("churn: %d connections in %.2f s (%.0f/s: %s); registry "
              "settled %.2f s later: connections %d, clients %d, "
              "subscriptions %d, events watched %d; workers took %d "
              "connections" % (
                  total, elapsed, total / elapsed, counts, t_settle,
                  st1["totals"]["connections"], st1["totals"]["clients"],
                  st1["totals"]["subscriptions"],
                  st1["totals"]["events_watched"], done))
        print("fds before %s after %s; Pss KiB before %s = %d, after %s = "
              "%d (%+d)" % (fds0, fds1, mem0, sum(mem0.values()), mem1,
                            sum(mem1.values()), grew))
        record_property("churn_connections", total)
        record_property("pss_growth_kb", grew)
        assert total >= 2000, "only %d connections in %.1f s" % (
            total, elapsed)
        assert st1["totals"]["clients"] == 0
        assert done == total
        assert fds1 == fds0
        assert st1["totals"]["worker_restarts"] == 0
        assert st1["totals"]["accept_drops"] == st0["totals"]["accept_drops"]
        # the sanitizer build keeps freed memory in quarantine on purpose
        # (its leak check at exit is what holds it to account there)
        if os.environ.get("SEATCAST_SANITIZED") != "1":
            assert grew < 8 * 1024, "server memory grew by %d KiB" % grew
    finally:
        swarm.close_all()
