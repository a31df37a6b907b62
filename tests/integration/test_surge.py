"""test_surge.py - an event's changes that waited too long are merged
(--max-lag; SPEC section 4 "Surges", section 8; issue 12).

A worker that reads a change of an event more than --max-lag ms after the
listener put it in the ring merges that change and the event's later
changes of the same drain: its subscribers get one booking_created and/or
one booking_cancelled carrying "bookings": N (only when N > 1) and the
newest availableSeats, then one seat_update with the newest counts.  A
worker that keeps up sends every change as it is.

How a wait is made deterministic: the worker is SIGSTOPped (as a loaded
machine deschedules it), the changes are committed by psql, the test waits
until the listener has published all of them (the registry's ring_head,
read by `seatcast stats --json`, which needs no worker), then until more
than --max-lag has passed since it saw the last one published (a clock
condition), and SIGCONTs the worker: its next drain reads every change
with a wait over --max-lag.  With --workers 1, HTTP goes through the
stopped worker, so counters are read from the registry while it is
stopped, and /metrics only while it runs.  Nothing here asserts timing,
so the file also runs against the sanitizer build (make integration-asan).

A real PostgreSQL cluster per module (conftest.py `cluster`), a fresh
database per test, psql for bookings as the booking application would
make them; SEATCAST_TEST_SOURCE=logical runs the same tests against
--source logical.

Run:
    make && /usr/bin/python3 -m pytest -v -p no:cacheprovider \
        tests/integration/test_surge.py
"""

import asyncio
import json
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import (BookingDb, Client, check_message, metrics,  # noqa: E402
                     workers_of)
from pg import BOOKING_TEMPLATE  # noqa: E402
from server import (free_port, proc_info, run_seatcast,  # noqa: E402
                    wait_for)

K_SEATS = ["type", "eventId", "availableSeats", "seatCapacity", "timestamp"]
K_BOOKING = ["type", "eventId", "availableSeats", "timestamp"]
# a merged booking message: "bookings" before the timestamp (SPEC 4)
K_MERGED = ["type", "eventId", "availableSeats", "bookings", "timestamp"]

WAIT = "seatcast_ring_wait_seconds"
MERGED = "seatcast_merged_changes_total"
# how much longer than --max-lag the changes wait before the worker runs
# again (past the lag is all that counts; the margin covers the poll)
MARGIN = 0.1
TIMEOUT = 15  # seconds for a message; the sanitizer build is slower

_counter = [0]


@pytest.fixture
def db(cluster):
    """A fresh booking database (schema.sql + notify.sql applied)."""
    _counter[0] += 1
    name = "surge%d" % _counter[0]
    cluster.start()
    cluster.createdb(name, template=BOOKING_TEMPLATE)
    yield BookingDb(cluster, name)
    cluster.start()
    cluster.dropdb(name)


def healthz(srv):
    status, _, body = srv.http_get("/healthz")
    return status, json.loads(body)


def surge_server(make_server, db, workers=1, args=()):
    """seatcast -d CONNINFO, connected (snapshot loaded), with a token."""
    srv = make_server(workers=workers, database=db.conninfo(),
                      args=[str(a) for a in args])
    wait_for(lambda: healthz(srv)[0] == 200, 20, "/healthz 200")
    srv.tok = srv.token()
    return srv


class stopped_worker:
    """SIGSTOPs worker `index` of srv once it has read the whole ring, and
    SIGCONTs it on exit whatever happened."""

    def __init__(self, srv, index):
        self.srv = srv
        self.index = index

    def __enter__(self):
        def caught_up():
            s = self.srv.stats()
            w = s["workers"][self.index]
            return s if w["ring_seq"] == s["totals"]["ring_head"] else None
        st = wait_for(caught_up, 10,
                      "worker %d to have read the ring" % self.index)
        self.pid = st["workers"][self.index]["pid"]
        os.kill(self.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: proc_info(self.pid)["state"] == "T", 5,
                     "worker %d to be stopped" % self.index)
        except BaseException:
            os.kill(self.pid, signal.SIGCONT)
            raise
        return self

    def __exit__(self, *exc):
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


async def commit_while_stopped(srv, db, index, sql, nchanges, lag_ms,
                               running=(), during=None):
    """Stops worker `index`, commits sql (one transaction per statement,
    nchanges ring messages in all), waits until the listener has
    published them all (and the workers in `running` have read them),
    then until more than lag_ms has passed since the last was seen
    published, and resumes the worker.  during(), a coroutine function,
    runs once the worker is stopped and the changes are committed.
    Returns the registry's stats seen just before the SIGCONT."""
    head0 = srv.stats()["totals"]["ring_head"]
    with stopped_worker(srv, index):
        db.psql(sql)
        if during is not None:
            await during()
        want = head0 + nchanges

        def published():
            s = srv.stats()
            ok = s["totals"]["ring_head"] >= want and all(
                s["workers"][i]["ring_seq"] >= want for i in running)
            return s if ok else None
        wait_for(published, 20, "%d changes in the ring" % nchanges)
        seen = time.monotonic()
        wait_for(lambda: time.monotonic() - seen > lag_ms / 1000.0 + MARGIN,
                 5, "the changes to wait longer than %d ms" % lag_ms)
        st = srv.stats()
        # the precondition of every test here: the stopped worker has
        # read none of them, and nothing else went through the ring
        assert st["totals"]["ring_head"] == want, st["totals"]
        assert st["workers"][index]["ring_seq"] == head0, st["workers"]
    return st


def book_sql(e, seats, user=1):
    return ("INSERT INTO bookings (event_id, user_id, seats) VALUES "
            "(%d, %d, %d);\n" % (e, user, seats))


def cancel_sql(booking):
    return "UPDATE bookings SET status = 'cancelled' WHERE id = %d;\n" % \
        booking


def capacity_sql(e, cap):
    return "UPDATE events SET seat_capacity = %d WHERE id = %d;\n" % (cap, e)


def mixed_ops(e, avail, cancellable, f=None):
    """20 bookings of e (1 to 3 seats) and 3 cancellations of the
    bookings `cancellable` ({id: seats}) in mixed order, plus one booking
    of f among them: (sql, [(type, availableSeats of e after it)])."""
    sql, want = "", []
    cancels = dict(zip((3, 11, 17), cancellable.items()))
    for i in range(20):
        seats = 1 + i % 3
        sql += book_sql(e, seats, user=100 + i)
        avail -= seats
        want.append(("booking_created", avail))
        if i in cancels:
            b, seats = cancels[i]
            sql += cancel_sql(b)
            avail += seats
            want.append(("booking_cancelled", avail))
        if i == 8 and f is not None:
            sql += book_sql(f, 1, user=7)
    return sql, want


def histogram(m, name):
    """{le: cumulative count} of a histogram in metrics(srv)."""
    pre = name + '_bucket{le="'
    return {k[len(pre):-2]: v for k, v in m.items() if k.startswith(pre)}


def waits_over(m0, m1, le="0.1"):
    """How many ring waits measured between the two /metrics readings
    were longer than le seconds (and the count of all of them)."""
    h0, h1 = histogram(m0, WAIT), histogram(m1, WAIT)
    count = m1[WAIT + "_count"] - m0[WAIT + "_count"]
    assert h1["+Inf"] - h0["+Inf"] == count, (h0, h1)
    return count - (h1[le] - h0[le]), count


def no_bookings_key(c):
    return [m for _, m in c.msgs if "bookings" in m]


async def expect_pairs(c, e, want, cap):
    """The next messages of c: for each (type, available) of want, that
    message (no "bookings") then its seat_update; nothing else after."""
    for kind, avail in want:
        check_message(await c.next(TIMEOUT), kind, K_BOOKING, eventId=e,
                      availableSeats=avail)
        check_message(await c.next(TIMEOUT), "seat_update", K_SEATS,
                      eventId=e, availableSeats=avail, seatCapacity=cap)
    await c.quiet(TIMEOUT)


async def expect_merge(c, e, created, cancelled, avail, cap):
    """The next messages of c: one merge of `created` and `cancelled`
    bookings ending on avail/cap, then nothing."""
    await expect_merge_then(c, e, created, avail, cap, cancelled)
    await c.quiet(TIMEOUT)


async def expect_merge_then(c, e, created, avail, cap, cancelled=0):
    """The next messages of c: one merge of `created` and `cancelled`
    bookings ending on avail/cap (more may follow)."""
    for kind, n in (("booking_created", created),
                    ("booking_cancelled", cancelled)):
        if n == 0:
            continue
        m = await c.next(TIMEOUT)
        if n > 1:
            check_message(m, kind, K_MERGED, eventId=e, availableSeats=avail,
                          bookings=n)
        else:
            check_message(m, kind, K_BOOKING, eventId=e, availableSeats=avail)
    check_message(await c.next(TIMEOUT), "seat_update", K_SEATS, eventId=e,
                  availableSeats=avail, seatCapacity=cap)


# ------------------------------------------------------------------ #
# Merging                                                              #

@pytest.mark.deadline(120)
def test_changes_that_waited_are_merged(db, make_server):
    """20 bookings and 3 cancellations of E wait in the ring for a stopped
    worker: its subscriber of E gets one booking_created {bookings: 20},
    one booking_cancelled {bookings: 3}, both with the final count, then
    one seat_update, and nothing else.  The subscriber of F, whose one
    booking waited too, gets it as a plain pair; both get the changes
    made once the worker runs again unmerged.  A client that subscribed
    to E while the worker was stopped gets the final snapshot and none
    of the merge.  The merged counter counts 23 (once, not per message),
    the ring-wait histogram every wait."""
    cap, fcap = 200, 50
    e, f = db.events([cap, fcap])
    pre = {db.book(e, s, user=9): s for s in (2, 3, 4)}
    avail = cap - 9
    srv = surge_server(make_server, db)
    sql, want = mixed_ops(e, avail, pre, f=f)
    final = want[-1][1]
    assert [k for k, _ in want].count("booking_created") == 20
    assert [k for k, _ in want].count("booking_cancelled") == 3

    async def body():
        a = await Client.open(srv, srv.tok)
        b = await Client.open(srv, srv.tok)
        _, snap = await a.subscribe(e)
        assert snap["availableSeats"] == avail
        await b.subscribe(f)
        m0 = metrics(srv)
        merged0 = srv.stats()["totals"]["merged"]

        late = await Client.open(srv, srv.tok)

        async def subscribe_late():
            # read by the worker when it runs again, before or after its
            # drain: either way its snapshot holds every change already
            await late.send({"type": "subscribe_event", "eventId": e})

        st = await commit_while_stopped(srv, db, 0, sql, len(want) + 1, 100,
                                        during=subscribe_late)
        assert st["totals"]["merged"] == merged0  # nothing read yet
        assert db.available(e) == final
        assert db.available(f) == fcap - 1

        await expect_merge(a, e, 20, 3, final, cap)
        check_message(await late.next(TIMEOUT), "subscribed",
                      ["type", "eventId", "timestamp"], eventId=e)
        check_message(await late.next(TIMEOUT), "seat_update", K_SEATS,
                      eventId=e, availableSeats=final, seatCapacity=cap)
        await late.quiet(TIMEOUT)
        await expect_merge(b, f, 1, 0, fcap - 1, fcap)
        st = srv.stats()
        assert st["totals"]["merged"] == merged0 + 23, st["totals"]
        assert st["workers"][0]["merged"] == merged0 + 23, st["workers"]

        # the worker keeps up again: changes go out as they are
        db.book(e, 1, user=11)
        db.book(f, 2, user=12)
        await expect_pairs(a, e, [("booking_created", final - 1)], cap)
        await expect_pairs(b, f, [("booking_created", fcap - 3)], fcap)
        await expect_pairs(late, e, [("booking_created", final - 1)], cap)

        m1 = metrics(srv)
        over, count = waits_over(m0, m1)
        print("23 changes of E and 1 of F waited for a stopped worker: "
              "merged counter +%d; ring waits measured %d, over 100 ms %d"
              % (m1[MERGED] - m0[MERGED], count, over))
        assert m1[MERGED] - m0[MERGED] == 23
        assert count == len(want) + 1 + 2  # each change read, once
        assert over >= len(want) + 1, "the waits of the stopped worker " \
            "are missing from %s" % WAIT
        assert db.available(e) == final - 1
        for c in (a, b, late):
            await c.close()

    asyncio.run(body())


@pytest.mark.deadline(120)
def test_max_lag_0_never_merges(db, make_server):
    """The same waiting changes with --max-lag 0: every booking and
    cancellation is its own message and seat_update, in commit order,
    no "bookings" anywhere, merged counter 0 (and the ring-wait
    histogram shows they did wait)."""
    cap = 200
    e, f = db.events([cap, 50])
    pre = {db.book(e, s, user=9): s for s in (2, 3, 4)}
    srv = surge_server(make_server, db, args=["--max-lag", "0"])
    sql, want = mixed_ops(e, cap - 9, pre, f=f)

    async def body():
        a = await Client.open(srv, srv.tok)
        b = await Client.open(srv, srv.tok)
        await a.subscribe(e)
        await b.subscribe(f)
        m0 = metrics(srv)
        await commit_while_stopped(srv, db, 0, sql, len(want) + 1, 100)
        assert db.available(e) == want[-1][1]
        await expect_pairs(a, e, want, cap)
        await expect_pairs(b, f, [("booking_created", 49)], 50)
        assert no_bookings_key(a) == [] and no_bookings_key(b) == []
        m1 = metrics(srv)
        over, _ = waits_over(m0, m1)
        print("--max-lag 0: %d changes waited over 100 ms, merged +%d"
              % (over, m1[MERGED] - m0[MERGED]))
        assert over >= len(want) + 1
        assert m1[MERGED] == m0[MERGED] == 0
        assert srv.stats()["totals"]["merged"] == 0
        await a.close()
        await b.close()

    asyncio.run(body())


async def seats_reached(c, db, e, avail, what):
    """The database holds avail seats of e; waits until c got the
    seat_update that says so."""
    assert db.available(e) == avail
    await c.wait_for(lambda ms: any(
        m.get("type") == "seat_update" and
        m.get("availableSeats") == avail for m in ms), 30, what)


@pytest.mark.deadline(120)
def test_a_worker_that_keeps_up_does_not_merge(db, make_server):
    """Default --max-lag, the worker running: 50 bookings committed back
    to back (one psql session, one transaction each) reach the one
    subscriber unmerged, 50 booking_created + 50 seat_update in commit
    order; merged counter 0.  Then 50 bookings in one transaction: they
    reach the ring together, so the worker reads them in the same drains,
    and still sends them one by one."""
    cap, n = 500, 50
    e = db.event(cap)
    srv = surge_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        m0 = metrics(srv)
        db.psql("".join(book_sql(e, 1 + i % 2, user=i) for i in range(n)))
        want, avail = [], cap
        for i in range(n):
            avail -= 1 + i % 2
            want.append(("booking_created", avail))
        await seats_reached(c, db, e, avail, "the final seat_update")
        m1 = metrics(srv)
        over, count = waits_over(m0, m1)
        print("%d bookings back to back to a worker that keeps up: ring "
              "waits %d, over 100 ms %d; merged +%d; messages %d" % (
                  n, count, over, m1[MERGED] - m0[MERGED],
                  len(c.msgs) - c.pos))
        assert no_bookings_key(c) == [], (
            "a worker that kept up merged (ring waits over 100 ms: %d of "
            "%d)" % (over, count))
        await expect_pairs(c, e, want, cap)
        assert m1[MERGED] - m0[MERGED] == 0
        assert srv.stats()["totals"]["merged"] == 0
        assert count == n

        want = []
        db.psql("BEGIN;\n" + "".join(book_sql(e, 1, user=i)
                                     for i in range(n)) + "COMMIT;\n")
        for i in range(n):
            avail -= 1
            want.append(("booking_created", avail))
        await seats_reached(c, db, e, avail,
                            "the one transaction's last seat_update")
        assert no_bookings_key(c) == []
        await expect_pairs(c, e, want, cap)
        assert srv.stats()["totals"]["merged"] == 0
        await c.close()

    asyncio.run(body())


@pytest.mark.deadline(120)
def test_changes_within_max_lag_are_not_merged(db, make_server):
    """--max-lag 5000: changes that waited some 400 ms for a stopped
    worker, over the default but within the option, go out one by one:
    the threshold is the option's, in milliseconds."""
    cap, n = 100, 10
    e = db.event(cap)
    srv = surge_server(make_server, db, args=["--max-lag", "5000ms"])

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        m0 = metrics(srv)
        sql = "".join(book_sql(e, 2, user=i) for i in range(n))
        await commit_while_stopped(srv, db, 0, sql, n, 300)
        await c.wait_for(lambda ms: any(
            m.get("type") == "seat_update" and
            m.get("availableSeats") == cap - 2 * n for m in ms), TIMEOUT,
            "the final seat_update")
        m1 = metrics(srv)
        over_lag, count = waits_over(m0, m1, le="5")
        over_250ms, _ = waits_over(m0, m1, le="0.25")
        print("--max-lag 5000: %d changes waited over 250 ms, %d over 5 s"
              % (over_250ms, over_lag))
        # the test's own premise: they waited longer than the default,
        # and the machine did not hold them past the option
        assert (count, over_250ms, over_lag) == (n, n, 0), \
            (count, over_250ms, over_lag)
        await expect_pairs(c, e, [("booking_created", cap - 2 * (i + 1))
                                  for i in range(n)], cap)
        assert no_bookings_key(c) == []
        assert srv.stats()["totals"]["merged"] == 0
        await c.close()

    asyncio.run(body())


async def open_spread(srv, per_worker):
    """Clients until each of the 2 workers holds per_worker: {index: [...]}.
    """
    by, spare = {0: [], 1: []}, []
    for _ in range(4 * per_worker + 8):
        if all(len(v) >= per_worker for v in by.values()):
            break
        c = await Client.open(srv, srv.tok)
        w = workers_of(srv, [c])[0]
        (by[w] if len(by[w]) < per_worker else spare).append(c)
    for c in spare:
        await c.close()
    assert all(len(v) == per_worker for v in by.values()), by
    return by


@pytest.mark.deadline(120)
def test_merged_sums_over_several_subscribers_and_workers(db, make_server):
    """2 workers, 3 subscribers of E on each; worker 0 is stopped while 30
    bookings pass, worker 1 runs.  Worker 0's subscribers each get one
    merge {bookings: 30}; worker 1's get 30 plain pairs; all end on the
    database's count.  The merged counter counts the 30 changes once for
    worker 0 (not once per subscriber), none for worker 1."""
    cap, n = 300, 30
    e = db.event(cap)
    srv = surge_server(make_server, db, workers=2)

    async def body():
        by = await open_spread(srv, 3)
        for c in by[0] + by[1]:
            await c.subscribe(e)
        m0 = metrics(srv)
        sql = "".join(book_sql(e, 1 + i % 3, user=i) for i in range(n))
        await commit_while_stopped(srv, db, 0, sql, n, 100, running=(1,))
        final = db.available(e)
        want, avail = [], cap
        for i in range(n):
            avail -= 1 + i % 3
            want.append(("booking_created", avail))
        assert final == avail
        for c in by[0]:
            await expect_merge(c, e, n, 0, final, cap)
        for c in by[1]:
            await expect_pairs(c, e, want, cap)
            assert no_bookings_key(c) == []
        st = srv.stats()
        m1 = metrics(srv)
        sums = [sum(m.get("bookings", 1) for _, m in c.msgs
                    if m["type"] == "booking_created")
                for c in by[0] + by[1]]
        print("worker 0 stopped, worker 1 running, %d bookings: bookings "
              "summed per subscriber %s; merged per worker %s, /metrics +%d"
              % (n, sums, [w["merged"] for w in st["workers"]],
                 m1[MERGED] - m0[MERGED]))
        assert sums == [n] * 6
        assert [w["merged"] for w in st["workers"]] == [n, 0]
        assert st["totals"]["merged"] == n
        assert m1[MERGED] - m0[MERGED] == n
        for c in by[0] + by[1]:
            await c.close()

    asyncio.run(body())


@pytest.mark.deadline(120)
def test_capacity_changes_fold_into_the_merge(db, make_server):
    """Capacity changes fold in without adding bookings: capacity up, 2
    bookings, capacity down merge into booking_created {bookings: 2} and
    one seat_update with the newest capacity; 2 cancellations and a
    capacity change into booking_cancelled {bookings: 2} alone (no
    booking_created); 3 capacity changes into one seat_update alone."""
    cap = 40
    e = db.event(cap)
    old = [db.book(e, 2, user=i) for i in range(3)]
    srv = surge_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        merged = srv.stats()["totals"]["merged"]
        steps = [
            # (sql, changes, created, cancelled, available, capacity)
            (capacity_sql(e, 50) + book_sql(e, 3) + book_sql(e, 1) +
             capacity_sql(e, 45), 4, 2, 0, 45 - 6 - 4, 45),
            (cancel_sql(old[0]) + capacity_sql(e, 44) + cancel_sql(old[1]),
             3, 0, 2, 44 - 2 - 4, 44),
            (capacity_sql(e, 60) + capacity_sql(e, 70) +
             capacity_sql(e, 65), 3, 0, 0, 65 - 2 - 4, 65),
        ]
        for sql, k, created, cancelled, avail, capacity in steps:
            await commit_while_stopped(srv, db, 0, sql, k, 100)
            assert db.seats(e)[:2] == (avail, capacity)
            await expect_merge(c, e, created, cancelled, avail, capacity)
            merged += k
            assert srv.stats()["totals"]["merged"] == merged
        await c.close()

    asyncio.run(body())


def check_groups(msgs, e, states, kinds, cap):
    """The messages of event e in msgs, after its snapshot (states[0]),
    against the changes it went through: kinds[i] ("booking_created",
    "booking_cancelled" or None for a capacity-only change) took it from
    states[i] to states[i + 1].  They must be groups of an optional
    booking_created, an optional booking_cancelled, then a seat_update,
    each group covering the next changes in order (a group's counts are
    the newest of the changes it covers, "bookings" the number of its
    kind, present only when over 1), ending on the last state.  Returns
    the number of changes each group covers."""
    ms = [m for m in msgs if m.get("eventId") == e]
    assert ms and ms[0]["type"] == "subscribed", ms[:2]
    assert ms[1]["type"] == "seat_update", ms[:2]
    assert ms[1]["availableSeats"] == states[0], ms[1]
    at, covered, group = 0, [], []
    for m in ms[2:]:
        if m["type"] != "seat_update":
            group.append(m)
            continue
        # the first state after `at` with these counts; changes of one
        # event never give the same counts twice in these tests
        nxt = [j for j in range(at + 1, len(states))
               if states[j] == m["availableSeats"]]
        assert nxt, "event %d: seat_update %d is no state after %d: %s" % (
            e, m["availableSeats"], states[at], states)
        j = nxt[0]
        span = kinds[at:j]
        want = [(k, span.count(k)) for k in ("booking_created",
                                               "booking_cancelled")
                if span.count(k) > 0]
        got = [(g["type"], g.get("bookings", 1)) for g in group]
        assert got == want, "event %d, changes %d..%d: %s, want %s" % (
            e, at + 1, j, got, want)
        for g in group:
            assert g["availableSeats"] == states[j], (e, g, states[j])
            assert ("bookings" in g) == (g.get("bookings", 1) > 1), g
        assert m["seatCapacity"] == cap, m
        covered.append(j - at)
        at, group = j, []
    assert group == [] and at == len(states) - 1, (
        "event %d ends on %s, not on the last state %d (unsent %s)" % (
            e, states[at], states[-1], group))
    return covered


@pytest.mark.deadline(180)
def test_merges_of_more_events_than_a_batch_holds(db, make_server):
    """150 events followed by one client, more than the 128 changes a
    drain batch holds before it is sent.  While the worker is stopped,
    each event is booked once (one statement of 150 rows), then the last
    11 are booked again and their first bookings cancelled: 172 changes
    in one drain.  Whatever the batches, each event's messages are
    groups covering its changes in order with the newest counts, the
    "bookings" sums are exact, each ends on the database's count, and
    the merged counter is the sum of the changes sent in groups of more
    than one (there are some: the last events' changes are close)."""
    nev, nlast, cap = 150, 11, 10
    events = db.events([cap] * nev)
    last = events[-nlast:]
    srv = surge_server(make_server, db, args=[
        "--max-subscriptions", "200", "--max-message-rate", "1000"])
    ids = ",".join(str(e) for e in events)
    last_ids = ",".join(str(e) for e in last)

    async def body():
        c = await Client.open(srv, srv.tok)
        for e in events:
            await c.subscribe(e)
        merged0 = srv.stats()["totals"]["merged"]
        sql = ("INSERT INTO bookings (event_id, user_id, seats) SELECT id, "
               "1, 1 FROM events WHERE id IN (%s) ORDER BY id;\n"
               "INSERT INTO bookings (event_id, user_id, seats) SELECT id, "
               "2, 2 FROM events WHERE id IN (%s) ORDER BY id;\n"
               "UPDATE bookings SET status = 'cancelled' WHERE user_id = 1 "
               "AND event_id IN (%s);\n" % (ids, last_ids, last_ids))
        await commit_while_stopped(srv, db, 0, sql, nev + 2 * nlast, 100)
        final = dict((int(a), int(b)) for a, b in (
            line.split("|") for line in db.psql(
                "SELECT id, available_seats FROM events WHERE id IN (%s)"
                % ids).split()))
        want = {e: cap - 2 if e in last else cap - 1 for e in events}
        assert final == want
        await c.wait_for(lambda ms: len(set(
            m["eventId"] for m in ms if m.get("type") == "seat_update" and
            m["availableSeats"] == want[m["eventId"]])) == nev, 30,
            "every event's final seat_update")
        c.pos = len(c.msgs)
        await c.quiet(TIMEOUT)
        msgs = [m for _, m in c.msgs]
        covered = {}
        for e in events:
            if e in last:
                covered[e] = check_groups(
                    msgs, e, [cap, cap - 1, cap - 3, cap - 2],
                    ["booking_created", "booking_created",
                     "booking_cancelled"], cap)
            else:
                covered[e] = check_groups(msgs, e, [cap, cap - 1],
                                          ["booking_created"], cap)
        in_merges = sum(n for cov in covered.values() for n in cov if n > 1)
        shapes = sorted(set(tuple(v) for v in covered.values()))
        st = srv.stats()
        print("%d events, %d changes in one drain: groups per event %s; "
              "changes in merges %d, merged counter +%d" % (
                  nev, nev + 2 * nlast, shapes, in_merges,
                  st["totals"]["merged"] - merged0))
        assert st["totals"]["merged"] - merged0 == in_merges
        assert in_merges > 0
        await c.close()

    asyncio.run(body())


@pytest.mark.deadline(120)
def test_a_merge_then_the_event_deleted(db, make_server):
    """5 bookings then the event's deletion wait for a stopped worker:
    its subscriber gets the merge, then unsubscribed, then nothing."""
    cap = 20
    e, other = db.events([cap, cap])
    srv = surge_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        await c.subscribe(other)
        head0 = srv.stats()["totals"]["ring_head"]

        async def delete():
            # once the bookings are in the ring: a listener that read all
            # six notifications at once would find the event gone, and
            # publish the deletion alone (seen under the sanitizers)
            wait_for(lambda: srv.stats()["totals"]["ring_head"] >= head0 + 5,
                     20, "the 5 bookings in the ring")
            db.psql("DELETE FROM events WHERE id = %d;" % e)

        sql = "".join(book_sql(e, 2, user=i) for i in range(5))
        await commit_while_stopped(srv, db, 0, sql, 6, 100, during=delete)
        await expect_merge_then(c, e, 5, cap - 10, cap)
        check_message(await c.next(TIMEOUT), "unsubscribed",
                      ["type", "eventId", "timestamp"], eventId=e)
        await c.quiet(TIMEOUT)
        db.book(other, 1)
        await expect_pairs(c, other, [("booking_created", cap - 1)], cap)
        await c.close()

    asyncio.run(body())


# ------------------------------------------------------------------ #
# The option                                                           #

@pytest.mark.deadline(60)
def test_max_lag_option_and_config_key(tmp_path):
    """--max-lag takes N or Nms, 0 to 60000; anything else is one line on
    stderr naming the option, exit 2; the config file key is max-lag."""
    for v in ("250ms", "0", "0ms", "60000", "100"):
        for args in (["-t", "--max-lag", v], ["-t", "--max-lag=" + v]):
            p = run_seatcast(args, timeout=10)
            assert p.returncode == 0, (args, p.stderr)
            assert "configuration ok" in p.stdout, p.stdout
    for v, why in (("60001", "must be between 0 and 60000"),
                   ("-1", "not a number"), ("1s", "not a number"),
                   ("100 ms", "not a number"), ("", "not a number"),
                   ("1e3", "not a number"), ("100msx", "not a number")):
        p = run_seatcast(["-t", "--max-lag", v], timeout=10)
        err = p.stderr.strip()
        print("--max-lag %r: exit %d, %s" % (v, p.returncode, err))
        assert p.returncode == 2, (v, p.returncode, p.stdout)
        assert len(err.splitlines()) == 1, err
        assert "--max-lag" in err and why in err, err

    conf = tmp_path / "seatcast.conf"
    conf.write_text("max-lag = 250ms   # a surge merges after this\n")
    p = run_seatcast(["-t", "-c", str(conf)], timeout=10)
    assert p.returncode == 0 and "configuration ok" in p.stdout, p.stderr
    for text, why in (("max-lag = 1s\n", 'max-lag: not a number: "1s"'),
                      ("\nmax-lag = 60001\n", "max-lag: must be between")):
        conf.write_text(text)
        port = free_port()
        shm = "/sc-test-maxlag-%d" % port
        for args in (["-t", "-c", str(conf)],
                     ["-c", str(conf), "-l", "127.0.0.1:%d" % port,
                      "--shm-name", shm]):
            p = run_seatcast(args, timeout=10)
            err = p.stderr.strip()
            assert p.returncode == 2, (args, err)
            assert len(err.splitlines()) == 1, err
            line = text[:text.index("max-lag")].count("\n") + 1
            assert "%s:%d:" % (conf, line) in err and why in err, err
            assert not os.path.exists("/dev/shm" + shm)


@pytest.mark.deadline(120)
def test_max_lag_from_the_config_file_and_sighup(db, make_server, tmp_path):
    """`max-lag = 0` in the config file: waiting changes go out one by
    one; the file changed to `max-lag = 100ms` and SIGHUP: the running
    worker merges the next waiting changes."""
    cap = 100
    e = db.event(cap)
    conf = tmp_path / "seatcast.conf"
    conf.write_text("max-lag = 0\n")
    srv = surge_server(make_server, db, args=["-c", str(conf)])

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        sql = "".join(book_sql(e, 1, user=i) for i in range(5))
        await commit_while_stopped(srv, db, 0, sql, 5, 100)
        await expect_pairs(c, e, [("booking_created", cap - 1 - i)
                                  for i in range(5)], cap)

        conf.write_text("max-lag = 100ms\n")
        worker = srv.worker_pids()[0]
        mark = srv.log_mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_log(r"worker 0\[%d\]: configuration and keys reloaded"
                     % worker, 10, since=mark)
        await commit_while_stopped(srv, db, 0, sql, 5, 100)
        await expect_merge(c, e, 5, 0, cap - 10, cap)
        assert srv.worker_pids() == [worker]  # the same worker, reloaded
        assert srv.stats()["totals"]["merged"] == 5
        await c.close()

    asyncio.run(body())
