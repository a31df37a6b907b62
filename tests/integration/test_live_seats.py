"""test_live_seats.py - seatcast end to end: PostgreSQL NOTIFY to WebSocket
clients (SPEC sections 4, 6, 7; issue 4).

A real PostgreSQL 15 cluster per module (pg.PgCluster) with the project's
own sql/schema.sql then sql/notify.sql applied to a template; every test
gets a fresh database cloned from it and its own
`seatcast --workers 2 -d CONNINFO` (make_server), so that counts
(notifications, events, subscriptions) are exact.  Bookings are made as
the booking application would: psql INSERT/UPDATE on bookings and events.
Clients are Python websockets (10.4); which worker holds which client is
read from /proc (server.tcp_peer_ports).  An independent psql LISTEN
session (booking.NotifyTap) records what the database sent, in commit
order: the reference the clients are compared with.

Every wait polls a condition against a deadline.  Figures (latencies,
counts, repair times) are printed: `pytest -s` or -rP shows them.

Run:
    make && SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest \
        -v -p no:cacheprovider tests/integration/test_live_seats.py
"""

import asyncio
import collections
import json
import os
import re
import signal
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import (BookingDb, Client, NotifyTap, PsqlSession,  # noqa: E402
                     check_message, metrics, percentile, start_writers,
                     wait_writers, workers_of)
from pg import BOOKING_TEMPLATE  # noqa: E402
from server import async_wait_for, pid_alive, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
NOTIFY = os.path.join(ROOT, "sql", "notify.sql")
TEMPLATE = BOOKING_TEMPLATE  # made by the conftest fixture `cluster`

K_HELLO = ["type", "clientId", "timestamp"]
K_HELLO_EV = ["type", "clientId", "eventId", "timestamp"]
K_EVENT = ["type", "eventId", "timestamp"]           # (un)subscribed
K_SEATS = ["type", "eventId", "availableSeats", "seatCapacity", "timestamp"]
K_BOOKING = ["type", "eventId", "availableSeats", "timestamp"]
K_PONG = ["type", "timestamp"]
K_STATS = ["type", "data", "timestamp"]
K_ERROR = ["type", "code", "message", "timestamp"]
PRIVATE = {"bookingId", "userId", "booking_id", "user_id", "user", "sub"}


# ------------------------------------------------------------------ #
# Fixtures and helpers                                                 #

# The suite also runs with SEATCAST_TEST_SOURCE=logical (conftest.py); these
# tests check what only the NOTIFY path does (its resync summary, payload
# parsing); test_logical.py checks the logical source's counterparts.
notify_only = pytest.mark.skipif(
    os.environ.get("SEATCAST_TEST_SOURCE") == "logical",
    reason="NOTIFY path only (see test_logical.py)")

_counter = [0]


@pytest.fixture
def db(cluster):
    """A fresh booking database (schema.sql + notify.sql applied)."""
    _counter[0] += 1
    name = "live%d" % _counter[0]
    cluster.start()  # a test that stopped it may have failed midway
    cluster.createdb(name, template=TEMPLATE)
    yield BookingDb(cluster, name)
    cluster.start()
    cluster.dropdb(name)


def healthz(srv):
    status, headers, body = srv.http_get("/healthz")
    return status, json.loads(body)


def wait_healthy(srv, timeout=10):
    return wait_for(lambda: healthz(srv)[0] == 200 and healthz(srv),
                    timeout, "/healthz 200")


def live_server(make_server, db, args=()):
    """seatcast --workers 2 -d CONNINFO, connected (snapshot loaded)."""
    srv = make_server(workers=2, database=db.conninfo(),
                      args=[str(a) for a in args])
    wait_healthy(srv)
    srv.tok = srv.token()
    return srv


async def open_spread(srv, per_worker, path="/ws"):
    """Opens clients until each of the 2 workers holds per_worker of them;
    returns {worker index: [Client]}."""
    by = {0: [], 1: []}
    spare = []
    for _ in range(4 * per_worker + 8):
        if all(len(v) >= per_worker for v in by.values()):
            break
        c = await Client.open(srv, srv.tok, path)
        w = workers_of(srv, [c])[0]
        (by[w] if len(by[w]) < per_worker else spare).append(c)
    for c in spare:
        await c.close()
    assert all(len(v) == per_worker for v in by.values()), \
        "could not get %d clients on each worker: %r" % (
            per_worker, {k: len(v) for k, v in by.items()})
    return by


def walk_keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from walk_keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_keys(v)


def assert_nothing_private(clients):
    for c in clients:
        for _, m in c.msgs:
            leaked = PRIVATE.intersection(walk_keys(m))
            assert not leaked, "private field %s in %r" % (leaked, m)


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients))


def run(coro):
    return asyncio.run(coro)


def seat_msgs(c, event_id, start=0):
    """(type, availableSeats) of the seat messages of event_id received."""
    return [(m["type"], m["availableSeats"]) for _, m in c.msgs[start:]
            if m.get("eventId") == event_id and "availableSeats" in m]


def booking_script(event_id, writer, n, seats_of, pause=None):
    lines = []
    for i in range(n):
        lines.append("INSERT INTO bookings (event_id, user_id, seats) "
                     "VALUES (%d, %d, %d);" % (event_id, 1000 * writer + i,
                                               seats_of(writer, i)))
        if pause:
            lines.append("SELECT pg_sleep(%s);" % pause)
    return "\n".join(lines) + "\n"


async def final_seat_update(clients, avail, timeout=20):
    """Until every client has received a seat_update showing avail."""
    for c in clients:
        await c.wait_for(
            lambda ms: any(m.get("type") == "seat_update" and
                           m.get("availableSeats") == avail for m in ms),
            timeout, "the final seat_update (%d)" % avail)


def check_stream(c, event_id, ref, capacity, start):
    """The messages of c from index start on: for each reference booking
    (availableSeats in commit order), booking_created then seat_update
    with the same seats.  Returns a list of problems (empty: fine).

    These clients read all the time: SPEC section 5 lets the server merge
    pending seat_updates only for a client that is not reading, so none
    may be missing here."""
    got = [m for _, m in c.msgs[start:] if m.get("eventId") == event_id]
    want = []
    for a in ref:
        want.append(("booking_created", a, None))
        want.append(("seat_update", a, capacity))
    have = [(m["type"], m.get("availableSeats"), m.get("seatCapacity"))
            for m in got]
    if have == want:
        return []
    created = [m["availableSeats"] for m in got
               if m["type"] == "booking_created"]
    updates = [m["availableSeats"] for m in got if m["type"] == "seat_update"]
    problems = []
    if created != ref:
        missing = sorted(set(ref) - set(created), reverse=True)
        dup = [a for a, n in collections.Counter(created).items() if n > 1]
        problems.append("booking_created: %d of %d, missing %s, twice %s, "
                        "in order %s" % (len(created), len(ref), missing[:10],
                                         dup[:10], created == sorted(
                                             created, reverse=True)))
    if updates != ref:
        missing = sorted(set(ref) - set(updates), reverse=True)
        problems.append("seat_update: %d of %d, missing %s" % (
            len(updates), len(ref), missing[:10]))
    for i, (h, w) in enumerate(zip(have, want)):
        if h != w:
            problems.append("first difference at message %d: got %r, want "
                            "%r" % (i, h, w))
            break
    return problems


# ------------------------------------------------------------------ #
# 1. The client protocol, message by message (SPEC section 4)          #

def test_connection_established_fields(db, make_server):
    e = db.event(40)
    db.book(e, 3)
    srv = live_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        check_message(c.hello, "connection_established", K_HELLO)
        m = re.match(r"^ws_(\d+)_([0-9a-z]+)$", c.hello["clientId"])
        assert m, c.hello
        assert abs(int(m.group(1)) / 1000.0 - time.time()) < 10
        await c.quiet()  # nothing follows the greeting on /ws

        d = await Client.open(srv, srv.tok, "/ws/events/%d" % e)
        check_message(d.hello, "connection_established", K_HELLO_EV,
                      eventId=e)
        check_message(await d.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=37, seatCapacity=40)
        await d.quiet()
        db.book(e, 2)  # /ws/events/{id} is subscribed
        check_message(await d.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=35)
        check_message(await d.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=35, seatCapacity=40)
        await d.quiet()
        await c.quiet()  # /ws without subscription got nothing

        more = [await Client.open(srv, srv.tok) for _ in range(6)]
        everyone = [c, d] + more
        ids = [x.hello["clientId"] for x in everyone]
        where = workers_of(srv, everyone)
        print("clientIds on workers %s: %s" % (where, ids))
        assert len(set(ids)) == len(ids)
        assert set(where) == {0, 1}
        assert_nothing_private(everyone)
        await close_all(everyone)

    run(body())


def test_subscribe_snapshot_and_unsubscribe(db, make_server):
    e, other = db.event(50), db.event(7)
    db.book(e, 3)
    db.book(e, 4)
    srv = live_server(make_server, db)
    assert db.available(e) == 43

    async def body():
        c = await Client.open(srv, srv.tok)
        sub = await c.request({"type": "subscribe_event", "eventId": e})
        check_message(sub, "subscribed", K_EVENT, eventId=e)
        # the snapshot right after, with the seats of the database
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=43, seatCapacity=50)
        await c.quiet()

        # eventId as a string of digits
        s = await Client.open(srv, srv.tok)
        sub = await s.request({"type": "subscribe_event", "eventId": str(e)})
        check_message(sub, "subscribed", K_EVENT, eventId=e)
        check_message(await s.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=43, seatCapacity=50)

        db.book(e, 1)
        for x in (c, s):
            check_message(await x.next(), "booking_created", K_BOOKING,
                          eventId=e, availableSeats=42)
            check_message(await x.next(), "seat_update", K_SEATS, eventId=e,
                          availableSeats=42, seatCapacity=50)
            await x.quiet()

        # unsubscribe; again; from an event never followed; as a string
        for ev in (e, e, other, str(e)):
            m = await c.request({"type": "unsubscribe_event", "eventId": ev})
            check_message(m, "unsubscribed", K_EVENT, eventId=int(ev))
            await c.quiet()
        db.book(e, 1)
        check_message(await s.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=41)
        check_message(await s.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=41, seatCapacity=50)
        await c.quiet()  # the unsubscribed client got nothing
        assert srv.stats()["totals"]["subscriptions"] == 1
        assert_nothing_private([c, s])
        await close_all([c, s])

    run(body())


@notify_only
@pytest.mark.deadline(60)
def test_channel_option_is_listened_on(db, make_server):
    """--channel NAME: the listener LISTENs on NAME, the channel the
    triggers were given (sql/notify.sql seatcast_channel()), and nothing
    else.  A valid payload NOTIFYd on "seatcast" before a booking must not
    reach the client; the booking, on other_chan, must."""
    e = db.event(10)
    db.psql("CREATE OR REPLACE FUNCTION seatcast_channel() RETURNS text "
            "LANGUAGE sql STABLE AS $$ SELECT 'other_chan'::text $$")
    srv = live_server(make_server, db, args=["--channel", "other_chan"])
    srv.wait_log(r'listening for notifications on "other_chan"')

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        forged = ('{"type":"booking_created","eventId":%d,'
                  '"availableSeats":3,"seatCapacity":10,"version":%d}'
                  % (e, 10 ** 12))
        db.psql("SELECT pg_notify('seatcast', $p$%s$p$)" % forged)
        db.book(e, 2, user=77)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=8)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=8, seatCapacity=10)
        await c.quiet()
        seen = [m for _, m in c.msgs if m.get("availableSeats") == 3]
        assert seen == [], "heard a NOTIFY on \"seatcast\": %r" % seen
        await c.close()

    run(body())
    lst = srv.stats()["listener"]
    print("--channel other_chan: listener notifications %d, malformed %d"
          % (lst["notifications"], lst["malformed"]))
    assert lst["notifications"] == 1 and lst["malformed"] == 0, lst


def test_booking_cancel_and_capacity_messages(db, make_server):
    e = db.event(10)
    srv = live_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        b = db.book(e, 2, user=4242)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=8)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=8, seatCapacity=10)
        await c.quiet()

        db.cancel(b)
        check_message(await c.next(), "booking_cancelled", K_BOOKING,
                      eventId=e, availableSeats=10)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=10, seatCapacity=10)
        await c.quiet()

        # a capacity change: seat_update alone
        db.psql("UPDATE events SET seat_capacity = 25 WHERE id = %d" % e)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=25, seatCapacity=25)
        await c.quiet()
        # a change of something else than seats: nothing
        db.psql("UPDATE events SET name = 'renamed' WHERE id = %d" % e)
        db.book(e, 5, user=4243)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=20)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=20, seatCapacity=25)
        await c.quiet()
        assert_nothing_private([c])
        for _, m in c.msgs:
            assert "4242" not in json.dumps(m) and "4243" not in json.dumps(m)
        await c.close()

    run(body())


def test_pong_and_stats_count_all_workers(db, make_server):
    e1, e2 = db.event(5), db.event(6)
    srv = live_server(make_server, db)

    async def body():
        by = await open_spread(srv, 2)
        a0, b0 = by[0]
        a1, b1 = by[1]
        pong = await a0.request({"type": "ping"})
        check_message(pong, "pong", K_PONG)
        # a TCP connection that never upgrades is no client
        raw = socket.create_connection(("127.0.0.1", srv.port))
        try:
            await a0.subscribe(e1)
            await a0.subscribe(e2)
            await a1.subscribe(e2)

            async def stats(c):
                m = await c.request({"type": "get_stats"})
                check_message(m, "stats", K_STATS)
                assert list(m["data"].keys())[:2] == ["totalClients",
                                                      "eventSubscriptions"]
                return m["data"]["totalClients"], \
                    m["data"]["eventSubscriptions"]

            for c in (a0, b0, a1, b1):
                assert await stats(c) == (4, 2)
            await a1.request({"type": "unsubscribe_event", "eventId": e2})
            assert await stats(b1) == (4, 2)  # a0 still follows e2
            await a0.request({"type": "unsubscribe_event", "eventId": e1})
            assert await stats(b0) == (4, 1)
            await b0.close()
            await async_wait_for(
                lambda: srv.stats()["totals"]["clients"] == 3, 5,
                "the closed client to be gone")
            assert await stats(b1) == (3, 1)
            await a0.request({"type": "unsubscribe_event", "eventId": e2})
            assert await stats(a1) == (3, 0)
            print("stats: 4 clients over 2 workers, then 3; subscriptions "
                  "2 -> 1 -> 0 events")
        finally:
            raw.close()
        await close_all([a0, a1, b1])

    run(body())


ERRORS = [
    # (client text, code, message)
    ("not json", "invalid_json", "Invalid message format"),
    ("{\"type\":\"ping\"", "invalid_json", "Invalid message format"),
    ("[1, 2]", "invalid_json", "Invalid message format"),
    ("[{\"type\":\"ping\"}]", "invalid_json", "Invalid message format"),
    ("\"ping\"", "invalid_json", "Invalid message format"),
    ("{}", "invalid_json", "Invalid message format"),
    ("{\"eventId\":1}", "invalid_json", "Invalid message format"),
    ("{\"type\":5}", "invalid_json", "Invalid message format"),
    ("{\"type\":null}", "invalid_json", "Invalid message format"),
    ("{\"type\":[\"ping\"]}", "invalid_json", "Invalid message format"),
    ("{\"type\":\"dance\"}", "unknown_type", "Unknown message type: dance"),
    ("{\"type\":\"Ping\"}", "unknown_type", "Unknown message type: Ping"),
    ("{\"type\":\"subscribe_event\"}", "missing_field",
     "Missing required field: eventId"),
    ("{\"type\":\"unsubscribe_event\"}", "missing_field",
     "Missing required field: eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":0}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":-3}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":\"abc\"}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":1.5}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":\"0\"}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":\"-3\"}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"unsubscribe_event\",\"eventId\":0}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"unsubscribe_event\",\"eventId\":\"1.5\"}", "invalid_field",
     "Invalid eventId"),
    ("{\"type\":\"subscribe_event\",\"eventId\":999}", "not_found",
     "Event 999 not found"),
    ("{\"type\":\"subscribe_event\",\"eventId\":\"999\"}", "not_found",
     "Event 999 not found"),
]


def test_error_messages_keep_the_connection(db, make_server):
    e = db.event(3)
    srv = live_server(make_server, db)
    assert db.value("SELECT count(*) FROM events WHERE id = 999") == "0"

    async def body():
        c = await Client.open(srv, srv.tok)
        for text, code, message in ERRORS:
            m = await c.request(text)
            try:
                check_message(m, "error", K_ERROR, code=code,
                              message=message)
            except AssertionError as err:
                raise AssertionError("after sending %s: %s" % (text, err))
            await c.quiet()  # still open, nothing else sent
        assert not c.closed.is_set()
        # and it still works
        await c.subscribe(e)
        db.book(e, 1)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=2)
        print("%d error cases answered, connection kept" % len(ERRORS))
        await c.close()

    run(body())


def test_limit_exceeded_at_max_subscriptions(db, make_server):
    e1, e2, e3 = db.event(5), db.event(5), db.event(5)
    srv = live_server(make_server, db, ["--max-subscriptions", 2])

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e1)
        await c.subscribe(e2)
        m = await c.request({"type": "subscribe_event", "eventId": e3})
        check_message(m, "error", K_ERROR, code="limit_exceeded",
                      message="Subscription limit reached")
        await c.quiet()
        # subscribing again to one already followed is no error
        await c.subscribe(e1)
        # e3 was not subscribed: a booking there reaches nobody
        db.book(e3, 1)
        db.book(e1, 1)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e1, availableSeats=4)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e1,
                      availableSeats=4, seatCapacity=5)
        await c.quiet()
        await c.request({"type": "unsubscribe_event", "eventId": e2})
        await c.subscribe(e3)  # room again
        assert srv.stats()["totals"]["subscriptions"] == 2
        await c.close()

    run(body())


def test_rate_limited_burst(db, make_server):
    srv = live_server(make_server, db, ["--max-message-rate", 5])

    async def body():
        c = await Client.open(srv, srv.tok)
        t0 = time.monotonic()
        for _ in range(30):
            await c.send('{"type":"ping"}')
        sent_in = time.monotonic() - t0
        answers = [await c.next() for _ in range(30)]
        pongs = [m for m in answers if m["type"] == "pong"]
        errors = [m for m in answers if m["type"] == "error"]
        print("burst of 30 pings at 5/s (bursts of 10): %d pongs, %d "
              "rate_limited in %.0f ms" % (len(pongs), len(errors),
                                           (time.monotonic() - t0) * 1000))
        assert len(pongs) + len(errors) == 30
        assert all(m["type"] == "pong" for m in answers[:10]), answers[:10]
        # 10 at once, then 5/s for as long as the sending took
        assert 10 <= len(pongs) <= 11 + int(sent_in * 5), (len(pongs),
                                                           sent_in)
        for m in errors:
            check_message(m, "error", K_ERROR, code="rate_limited",
                          message="Too many messages")
        assert not c.closed.is_set()
        # the bucket refills: a ping is answered again, on the same socket
        t1 = time.monotonic()
        while True:
            m = await c.request('{"type":"ping"}')
            if m["type"] == "pong":
                break
            assert m["code"] == "rate_limited"
            assert time.monotonic() - t1 < 1.5, "no pong after 1.5 s"
            await asyncio.sleep(0.05)
        assert not c.closed.is_set()
        await c.close()

    run(body())


def test_subscribing_twice_is_one_stream(db, make_server):
    e = db.event(20)
    srv = live_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        for ev in (e, e, str(e)):
            sub, snap = await c.subscribe(ev)
            check_message(sub, "subscribed", K_EVENT, eventId=e)
            check_message(snap, "seat_update", K_SEATS, eventId=e,
                          availableSeats=20, seatCapacity=20)
        await c.quiet()
        assert srv.stats()["totals"]["subscriptions"] == 1
        st = await c.request({"type": "get_stats"})
        assert st["data"]["eventSubscriptions"] == 1
        for s in (1, 2, 3):
            db.book(e, s)
        got = [await c.next() for _ in range(6)]
        assert [(m["type"], m["availableSeats"]) for m in got] == [
            ("booking_created", 19), ("seat_update", 19),
            ("booking_created", 17), ("seat_update", 17),
            ("booking_created", 14), ("seat_update", 14)]
        await c.quiet()  # not a second copy of each
        await c.request({"type": "unsubscribe_event", "eventId": e})
        db.book(e, 1)
        await c.quiet()  # one unsubscribe ends the one stream
        assert srv.stats()["totals"]["subscriptions"] == 0
        await c.close()

    run(body())


# ------------------------------------------------------------------ #
# 2. Fan-out across workers                                            #

def test_booking_reaches_both_workers_and_nobody_else(db, make_server):
    e, other = db.event(30), db.event(30)
    srv = live_server(make_server, db)

    async def body():
        by = await open_spread(srv, 2)
        (s0, n0), (s1, n1) = by[0], by[1]
        for s in (s0, s1):
            await s.subscribe(e)
        for n in (n0, n1):
            await n.subscribe(other)
        assert workers_of(srv, [s0, n0, s1, n1]) == [0, 0, 1, 1]
        t0 = time.time()
        db.book(e, 3)
        t1 = time.time()
        got = {}
        for s in (s0, s1):
            a = check_message(await s.next(), "booking_created", K_BOOKING,
                              eventId=e, availableSeats=27)
            b = check_message(await s.next(), "seat_update", K_SEATS,
                              eventId=e, availableSeats=27, seatCapacity=30)
            got[s] = s.msgs[s.pos - 1][0]
            assert a["eventId"] == b["eventId"]
        # every receiver has it: a non-subscriber's next message is pong
        for n in (n0, n1):
            await n.quiet()
        for s in (s0, s1):
            await s.quiet()
        print("booking psql %.1f ms; received %.1f / %.1f ms after the "
              "psql returned (worker 0 / worker 1)" % (
                  (t1 - t0) * 1000, (got[s0] - t1) * 1000,
                  (got[s1] - t1) * 1000))
        await close_all([s0, n0, s1, n1])

    run(body())


# ------------------------------------------------------------------ #
# 3. 200 concurrent bookings, in commit order                          #

@pytest.mark.deadline(120)
def test_200_concurrent_bookings_in_commit_order(db, make_server):
    capacity = 1000
    e = db.event(capacity)
    srv = live_server(make_server, db)
    writers, per_writer = 4, 50

    def seats_of(w, i):
        return 1 + (w * per_writer + i) % 3

    booked = sorted(seats_of(w, i) for w in range(writers)
                    for i in range(per_writer))
    total = writers * per_writer

    async def body():
        by = await open_spread(srv, 3)
        clients = by[0] + by[1]
        for c in clients:
            await c.subscribe(e)
        for _ in range(2):
            c = await Client.open(srv, srv.tok, "/ws/events/%d" % e)
            await c.next()  # the snapshot
            clients.append(c)
        starts = [c.pos for c in clients]
        where = workers_of(srv, clients)
        tap = NotifyTap(db.cluster, db.name)
        try:
            t0 = time.time()
            procs = start_writers(db.cluster, db.name, [
                booking_script(e, w, per_writer, seats_of)
                for w in range(writers)])
            await async_wait_for(
                lambda: all(p.poll() is not None for p in procs), 60,
                "the %d psql writers" % writers)
            t_done = time.time()
            wait_writers(procs)
            final = db.available(e)
            await final_seat_update(clients, final)
            payloads = tap.wait(
                lambda ps: sum(1 for p in ps if p["eventId"] == e) >= total,
                20, "%d booking notifications" % total)
        finally:
            tap.close()
        ref_p = [p for p in payloads if p["eventId"] == e]
        # the reference itself: versions 1..200, seats strictly down
        assert [p["type"] for p in ref_p] == ["booking_created"] * total
        assert [p["version"] for p in ref_p] == list(range(1, total + 1))
        ref = [p["availableSeats"] for p in ref_p]
        deltas = [a - b for a, b in zip([capacity] + ref, ref)]
        assert sorted(deltas) == booked
        assert final == ref[-1] == capacity - sum(booked)

        problems = {}
        lat = []
        last_rx = 0
        complete = [[m["availableSeats"] for _, m in c.msgs[starts[i]:]
                     if m["type"] == "booking_created"] == ref
                    for i, c in enumerate(clients)]
        updates = [sum(1 for _, m in c.msgs[starts[i]:]
                       if m["type"] == "seat_update")
                   for i, c in enumerate(clients)]
        print("booking_created complete and in commit order for %d of %d "
              "clients; seat_update per client %s (want %d each)" % (
                  sum(complete), len(clients), updates, total))
        for i, c in enumerate(clients):
            p = check_stream(c, e, ref, capacity, starts[i])
            if p:
                problems["client %d (worker %d)" % (i, where[i])] = p
            created = [(t, m) for t, m in c.msgs[starts[i]:]
                       if m["type"] == "booking_created"]
            by_seats = {m["availableSeats"]: t for t, m in created}
            for pl in ref_p:
                if pl["availableSeats"] in by_seats:
                    lat.append(by_seats[pl["availableSeats"]] * 1000 -
                               pl["ts"])
            last_rx = max(last_rx, c.msgs[-1][0])
        last_ts = max(p["ts"] for p in ref_p) / 1000.0
        print("%d bookings (%d seats) from %d psql connections in %.0f ms "
              "(%.0f bookings/s); %d subscribers on workers %s" % (
                  total, sum(booked), writers, (t_done - t0) * 1000,
                  total / (t_done - t0), len(clients), where))
        print("commit-to-client latency over %d deliveries: p50 %.1f ms, "
              "p95 %.1f ms, max %.1f ms; last commit to last message "
              "%.1f ms" % (len(lat), percentile(lat, 50),
                           percentile(lat, 95), max(lat),
                           (last_rx - last_ts) * 1000))
        m = metrics(srv)
        print("server: notifications %d, delivery latency count %d, "
              "mean %.2f ms" % (
                  m["seatcast_notifications_total"],
                  m["seatcast_delivery_latency_seconds_count"],
                  1000 * m["seatcast_delivery_latency_seconds_sum"] /
                  max(1, m["seatcast_delivery_latency_seconds_count"])))
        assert_nothing_private(clients)
        await close_all(clients)
        assert not problems, "\n".join(
            "%s: %s" % (k, "; ".join(v)) for k, v in problems.items())

    run(body())


def io_uring_fds(pid):
    """How many io_uring instances process pid holds."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == \
                "anon_inode:[io_uring]"
        except FileNotFoundError:
            pass
    return n


@pytest.mark.deadline(120)
@pytest.mark.parametrize("io_uring", ["on", "off"])
def test_300_subscribers_get_every_booking_through_io_uring_or_writev(
        db, make_server, io_uring):
    """One worker, 300 subscribers of one event (more sockets than one
    io_uring submission takes: 256), 30 bookings: every subscriber gets
    every booking_created and seat_update, in commit order.  --io-uring
    on (the default): the worker writes through a ring it holds; off: it
    holds none and writes with writev, the same stream.  --max-lag 0:
    nothing merges, whatever the machine's speed."""
    capacity = 1000
    e = db.event(capacity)
    srv = make_server(workers=1, database=db.conninfo(),
                      args=["--max-lag", "0", "--io-uring", io_uring])
    wait_healthy(srv)
    srv.tok = srv.token()
    assert io_uring_fds(srv.worker_pids()[0]) == (io_uring == "on")
    n = 30

    async def body():
        clients = []
        for _ in range(300):
            c = await Client.open(srv, srv.tok)
            await c.subscribe(e)
            clients.append(c)
        starts = [c.pos for c in clients]
        db.psql(booking_script(e, 1, n, lambda w, i: 1 + i % 3))
        ref = []
        avail = capacity
        for i in range(n):
            avail -= 1 + i % 3
            ref.append(avail)
        assert db.available(e) == avail
        await final_seat_update(clients, avail)
        problems = {i: p for i, p in (
            (i, check_stream(c, e, ref, capacity, starts[i]))
            for i, c in enumerate(clients)) if p}
        assert not problems, "%d of 300 clients: %r" % (
            len(problems), list(problems.items())[:3])
        await close_all(clients)

    run(body())
    assert "io_uring unavailable" not in srv.log()


@pytest.mark.deadline(90)
def test_subscribing_during_a_burst_takes_nothing_from_others(db,
                                                              make_server):
    """Clients that subscribe while bookings stream in must not make the
    clients already subscribed on the same worker miss a change."""
    capacity = 2000
    e = db.event(capacity)
    srv = live_server(make_server, db, ["--max-message-rate", 10000])
    writers, per_writer = 4, 50
    total = writers * per_writer

    async def body():
        by = await open_spread(srv, 4)
        observers = by[0][:2] + by[1][:2]
        churners = by[0][2:] + by[1][2:]
        for c in observers:
            await c.subscribe(e)
        starts = [c.pos for c in observers]
        tap = NotifyTap(db.cluster, db.name)
        rounds = [0] * len(churners)
        try:
            procs = start_writers(db.cluster, db.name, [
                booking_script(e, w, per_writer, lambda w, i: 1)
                for w in range(writers)])

            async def churn(k, c):
                pair = (json.dumps({"type": "subscribe_event",
                                    "eventId": e}),
                        json.dumps({"type": "unsubscribe_event",
                                    "eventId": e}))
                while any(p.poll() is None for p in procs):
                    for _ in range(10):  # pipelined: 10 pairs at once
                        await c.send(pair[0])
                        await c.send(pair[1])
                    done = 0
                    while done < 10:  # broadcasts may come in between
                        m = await c.next()
                        assert m["type"] != "error", m
                        done += m["type"] == "unsubscribed"
                    rounds[k] += 10

            await asyncio.gather(*(churn(k, c)
                                   for k, c in enumerate(churners)))
            wait_writers(procs)
            payloads = tap.wait(
                lambda ps: sum(1 for p in ps if p["eventId"] == e) >= total,
                20, "%d notifications" % total)
        finally:
            tap.close()
        ref = [p["availableSeats"] for p in payloads if p["eventId"] == e]
        assert ref == list(range(capacity - 1, capacity - 1 - total, -1))
        stuck = {}
        for i, c in enumerate(observers):
            try:
                await c.wait_for(lambda ms: any(
                    m.get("availableSeats") == ref[-1] for m in ms), 3,
                    "the final count")
            except AssertionError:
                stuck[i] = [m for _, m in c.msgs if "availableSeats" in m
                            ][-1]["availableSeats"]
        missing = {}
        for i, c in enumerate(observers):
            got = [m["availableSeats"] for _, m in c.msgs[starts[i]:]
                   if m["type"] == "booking_created"]
            if got != ref:
                missing[i] = sorted(set(ref) - set(got), reverse=True)
        print("%d subscribe/unsubscribe rounds by %d churning clients "
              "during %d bookings; observers missing booking_created: %s; "
              "observers left on a stale count (theirs, the database's %d): "
              "%s" % (sum(rounds), len(churners), total,
                      {i: len(v) for i, v in missing.items()}, ref[-1],
                      stuck))
        assert sum(rounds) >= 10, "too few rounds to mean anything"
        await close_all(observers + churners)
        assert not missing and not stuck, \
            "observers missed bookings (availableSeats of the missed " \
            "ones): %s; observers stuck on a stale count: %s" % (
                {i: v[:10] for i, v in missing.items()}, stuck)

    run(body())


# ------------------------------------------------------------------ #
# 4. PostgreSQL goes away                                              #

@pytest.mark.deadline(90)
def test_postgres_restart_keeps_clients(db, make_server):
    e = db.event(12)
    srv = live_server(make_server, db)
    pg = db.cluster

    async def body():
        by = await open_spread(srv, 1)
        clients = by[0] + by[1]
        for c in clients:
            await c.subscribe(e)
        m0 = metrics(srv)
        try:
            t0 = time.monotonic()
            pg.stop()
            t_stopped = time.monotonic()
            status, body_ = await async_wait_for(
                lambda: (lambda r: r if r[0] == 503 else None)(healthz(srv)),
                10, "/healthz 503")
            t_503 = time.monotonic()
            print("healthz while down: %d %s" % (status, body_))
            assert body_["status"] == "degraded"
            assert "listener not connected to PostgreSQL" in \
                body_["reasons"]
            assert body_["database"] == "disconnected"
            assert srv.stats()["listener"]["database"] != "connected"
            # clients stay, answer, and a new one is served from the
            # registry (its seats are known)
            for c in clients:
                await c.quiet()
                assert not c.closed.is_set()
            late = await Client.open(srv, srv.tok)
            _, snap = await late.subscribe(e)
            check_message(snap, "seat_update", K_SEATS, eventId=e,
                          availableSeats=12, seatCapacity=12)
            clients.append(late)
        finally:
            t_start = time.monotonic()
            pg.start()
        t_up = time.monotonic()
        await async_wait_for(lambda: healthz(srv)[0] == 200, 15,
                             "/healthz 200 after PostgreSQL came back")
        t_ok = time.monotonic()
        print("postgres stop %.0f ms, /healthz 503 %.0f ms after; start "
              "%.0f ms; listener back %.0f ms after postgres was up" % (
                  (t_stopped - t0) * 1000, (t_503 - t_stopped) * 1000,
                  (t_up - t_start) * 1000, (t_ok - t_up) * 1000))
        for c in clients:
            assert not c.closed.is_set()
            await c.quiet()  # nothing was sent for an unchanged event
        db.book(e, 5)
        for c in clients:
            check_message(await c.next(), "booking_created", K_BOOKING,
                          eventId=e, availableSeats=7)
            check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                          availableSeats=7, seatCapacity=12)
            await c.quiet()
        m1 = metrics(srv)
        assert m1["seatcast_db_reconnects_total"] >= \
            m0["seatcast_db_reconnects_total"] + 1
        assert m1["seatcast_db_connected"] == 1
        await close_all(clients)

    run(body())


def terminate_listener_sql():
    return ("SELECT count(pg_terminate_backend(pid, 5000)) "
            "FROM pg_stat_activity WHERE application_name = "
            "'seatcast listener' AND datname = current_database();")


@notify_only
@pytest.mark.deadline(60)
def test_bookings_missed_by_the_listener_are_resynced(db, make_server):
    e = db.event(100)
    srv = live_server(make_server, db)
    listener = srv.listener_pid()

    async def body():
        by = await open_spread(srv, 1)
        clients = by[0] + by[1]
        for c in clients:
            await c.subscribe(e)
        starts = [c.pos for c in clients]
        m0 = metrics(srv)
        mark = srv.log_mark()
        s = PsqlSession(db.cluster, db.name)
        try:
            # bookings committed right after the listener's backend is
            # gone: no LISTENer of this database is there to hear them
            s.send("BEGIN;")
            for i, seats in enumerate((1, 2, 3, 4, 5)):
                s.send("INSERT INTO bookings (event_id, user_id, seats) "
                       "VALUES (%d, %d, %d);" % (e, i, seats))
            s.send("UPDATE bookings SET status = 'cancelled' WHERE "
                   "event_id = %d AND seats = 2;" % e)
            s.send(terminate_listener_sql())
            s.send("COMMIT;")
            out = s.sync()
        finally:
            s.close()
        t_commit = time.time()
        assert out == ["1"], "terminated %r (errors %r)" % (out, s.errors)
        final = db.available(e)
        assert final == 100 - 13
        for c in clients:
            await c.wait_for(
                lambda ms: any(m.get("type") == "seat_update" and
                               m.get("availableSeats") == final
                               for m in ms), 15,
                "a seat_update with the final seats %d" % final)
        t_rx = time.time()
        await async_wait_for(lambda: healthz(srv)[0] == 200, 10,
                             "/healthz 200 again")
        # the snapshot after the reconnect is what repaired the count
        snap = srv.wait_log(r"snapshot: \d+ events, (\d+) changed", 5,
                            since=mark)
        assert int(snap.group(1)) >= 1, snap.group(0)
        for i, c in enumerate(clients):
            got = seat_msgs(c, e, starts[i])
            print("client %d received %s" % (i, got))
            assert got[-1] == ("seat_update", final)
            # never a count below the final one
            assert all(a >= final for _, a in got)
            c.pos = len(c.msgs)
            await c.quiet()
        m1 = metrics(srv)
        assert srv.listener_pid() == listener
        assert m1["seatcast_db_reconnects_total"] == \
            m0["seatcast_db_reconnects_total"] + 1
        print("resync: final seats %d delivered %.0f ms after the commit; "
              "%s" % (final, (t_rx - t_commit) * 1000, snap.group(0)))
        # and live delivery resumes from there
        db.book(e, 1)
        for c in clients:
            check_message(await c.next(), "booking_created", K_BOOKING,
                          eventId=e, availableSeats=final - 1)
            check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                          availableSeats=final - 1, seatCapacity=100)
        await close_all(clients)

    run(body())


# ------------------------------------------------------------------ #
# 5. A worker killed during a burst                                    #

@pytest.mark.deadline(90)
def test_worker_killed_during_burst(db, make_server):
    """kill -9 of a worker while 4 psql connections book: its clients are
    dropped, the other worker's clients get every change, and the master
    repairs the registry counts within 1 s.  The writers pause 5 ms
    between bookings (pg_sleep) only so that the burst lasts long enough
    to be interrupted."""
    e, only_victims = db.event(1000), db.event(10)
    srv = live_server(make_server, db)
    # 4 x 120 bookings, 5 ms apart: long enough to outlast the logical
    # source's delivery lag in a busy CI run (with 40 each, the first 20
    # reached the survivors only after the last commit)
    writers, per_writer = 4, 120
    total = writers * per_writer

    async def body():
        by = await open_spread(srv, 3)
        st = srv.stats()
        victim_pid = st["workers"][0]["pid"]
        victims, survivors = by[0], by[1]
        for c in victims:
            await c.subscribe(e)
            await c.subscribe(only_victims)
        for c in survivors:
            await c.subscribe(e)
        starts = [c.pos for c in survivors]
        st = srv.stats()
        assert st["totals"]["subscriptions"] == 9
        assert st["totals"]["events_watched"] == 2
        tap = NotifyTap(db.cluster, db.name)
        try:
            procs = start_writers(db.cluster, db.name, [
                booking_script(e, w, per_writer, lambda w, i: 1,
                               pause=0.005)
                for w in range(writers)])
            # kill when the burst is well under way (bookings, not
            # messages: a merged one stands for several)
            await survivors[0].wait_for(
                lambda ms: sum(m.get("bookings", 1) for m in ms
                               if m.get("type") == "booking_created") >= 20,
                20, "20 bookings delivered")
            t_kill = time.time()
            os.kill(victim_pid, signal.SIGKILL)
            k0 = time.monotonic()

            def repaired():
                s = srv.stats()
                t = s["totals"]
                return (t["subscriptions"] == 3 and
                        t["events_watched"] == 1 and
                        s["workers"][0]["pid"] != victim_pid) and s
            st = wait_for(repaired, 1.0, "registry repaired within 1 s")
            repair_ms = (time.monotonic() - k0) * 1000
            for c in victims:
                await asyncio.wait_for(c.closed.wait(), 5)
            victim_codes = [c.ws.close_code for c in victims]
            await async_wait_for(
                lambda: all(p.poll() is not None for p in procs), 60,
                "the psql writers")
            wait_writers(procs)
            payloads = tap.wait(
                lambda ps: sum(1 for p in ps if p["eventId"] == e) >= total,
                20, "%d notifications" % total)
        finally:
            tap.close()
        ref_p = [p for p in payloads if p["eventId"] == e]
        ref = [p["availableSeats"] for p in ref_p]
        assert ref == list(range(999, 999 - total, -1))
        after = sum(1 for p in ref_p if p["ts"] > t_kill * 1000)
        for c in survivors:
            await c.wait_for(
                lambda ms: any(m.get("availableSeats") == ref[-1] and
                               m["type"] == "seat_update" for m in ms), 15,
                "the last seat_update")
        problems = []
        for i, c in enumerate(survivors):
            problems += ["survivor %d: %s" % (i, p) for p in
                         check_stream(c, e, ref, 1000, starts[i])]
            c.pos = len(c.msgs)
            await c.quiet()
        print("killed worker 0 (pid %d) with %d of %d bookings still to "
              "commit; registry repaired in %.0f ms (subscriptions %d, "
              "events_watched %d); victims closed with %s" % (
                  victim_pid, after, total, repair_ms,
                  st["totals"]["subscriptions"],
                  st["totals"]["events_watched"], victim_codes))
        assert after > 0, "the burst was over before the kill"
        assert all(code == 1006 for code in victim_codes)
        assert not any(c.closed.is_set() for c in survivors)
        assert not pid_alive(victim_pid)
        wait_for(lambda: healthz(srv)[0] == 200, 10, "/healthz 200")
        st = srv.stats()
        print("worker 0 respawned as pid %d; worker_restarts %d" % (
            st["workers"][0]["pid"], st["totals"]["worker_restarts"]))
        assert st["totals"]["worker_restarts"] >= 1
        await close_all(victims + survivors)
        assert not problems, "\n".join(problems)

    run(body())


# ------------------------------------------------------------------ #
# 6. Bad notifications                                                 #

@notify_only
def test_bad_notifications_do_not_disturb_delivery(db, make_server):
    e = db.event(10)
    srv = live_server(make_server, db)
    listener = srv.listener_pid()

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        m0 = metrics(srv)
        mark = srv.log_mark()
        bad = [
            "garbage",
            '{"type":"seat_update","eventId":"x%d","availableSeats":1,'
            '"seatCapacity":2,"version":1}' % e,
            # about the followed event, impossible seats, a huge version:
            # applied, it would also hide every later booking as stale
            '{"type":"booking_created","eventId":%d,"availableSeats":-5,'
            '"seatCapacity":10,"version":999999}' % e,
        ]
        unknown = ('{"type":"seat_update","eventId":999999,'
                   '"availableSeats":1,"seatCapacity":2,"version":1}')
        db.psql("".join("SELECT pg_notify('seatcast', '%s');" % p
                        for p in bad + [unknown]))
        db.book(e, 2)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=8)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=8, seatCapacity=10)
        await c.quiet()
        m1 = metrics(srv)
        malformed = m1["seatcast_notifications_malformed_total"] - \
            m0["seatcast_notifications_malformed_total"]
        received = m1["seatcast_notifications_total"] - \
            m0["seatcast_notifications_total"]
        print("malformed counted %d of %d; notifications %d" % (
            malformed, len(bad), received))
        assert malformed == len(bad)
        assert received == len(bad) + 2
        assert srv.listener_pid() == listener
        assert srv.stats()["listener"]["reconnects"] == 0
        srv.wait_log(r"ignored a malformed notification", 5, since=mark)
        await c.close()

    run(body())


# ------------------------------------------------------------------ #
# 7. Event deleted                                                     #

def test_deleted_event_unsubscribes_its_clients(db, make_server):
    e, keep = db.event(10), db.event(10)
    db.book(e, 2)
    db.book(e, 1)
    srv = live_server(make_server, db)

    async def body():
        by = await open_spread(srv, 1)
        clients = by[0] + by[1]
        for c in clients:
            await c.subscribe(e)
        await clients[0].subscribe(keep)
        assert srv.stats()["totals"]["subscriptions"] == 3
        db.psql("DELETE FROM events WHERE id = %d" % e)
        assert db.value("SELECT count(*) FROM bookings WHERE event_id = %d"
                        % e) == "0"
        for c in clients:
            check_message(await c.next(), "unsubscribed", K_EVENT,
                          eventId=e)
            await c.quiet()
        st = srv.stats()["totals"]
        assert (st["subscriptions"], st["events_watched"]) == (1, 1)
        for c in clients:
            m = await c.request({"type": "subscribe_event", "eventId": e})
            check_message(m, "error", K_ERROR, code="not_found",
                          message="Event %d not found" % e)
        # the other subscription is intact
        db.book(keep, 4)
        check_message(await clients[0].next(), "booking_created", K_BOOKING,
                      eventId=keep, availableSeats=6)
        check_message(await clients[0].next(), "seat_update", K_SEATS,
                      eventId=keep, availableSeats=6, seatCapacity=10)
        await clients[1].quiet()
        await close_all(clients)

    run(body())


# ------------------------------------------------------------------ #
# 8. Registry full                                                     #

def test_registry_full_refuses_the_events_that_did_not_fit(db, make_server):
    events = db.events([50] * 20)
    srv = live_server(make_server, db, ["--max-events", 16])
    line = srv.wait_log(r"registry full: event (\d+) is not tracked", 5)
    print("log: %s" % line.group(0))

    async def body():
        c = await Client.open(srv, srv.tok, )
        ok, refused = [], []
        for ev in events:
            m = await c.request({"type": "subscribe_event", "eventId": ev})
            if m["type"] == "subscribed":
                snap = await c.next()
                check_message(snap, "seat_update", K_SEATS, eventId=ev,
                              availableSeats=50, seatCapacity=50)
                ok.append(ev)
            else:
                check_message(m, "error", K_ERROR, code="not_found",
                              message="Event %d not found" % ev)
                refused.append(ev)
        print("subscribed to %d events, refused %s" % (len(ok), refused))
        assert len(ok) == 16 and len(refused) == 4
        assert int(line.group(1)) in refused
        st = srv.stats()["totals"]
        assert st["events"] == 16 and st["max_events"] == 16
        # the others work; bookings of the untracked ones harm nothing
        db.book(refused[0], 1)
        db.book(ok[-1], 3)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=ok[-1], availableSeats=47)
        check_message(await c.next(), "seat_update", K_SEATS,
                      eventId=ok[-1], availableSeats=47, seatCapacity=50)
        await c.quiet()
        m = await c.request({"type": "subscribe_event",
                             "eventId": refused[0]})
        check_message(m, "error", K_ERROR, code="not_found",
                      message="Event %d not found" % refused[0])
        assert healthz(srv)[0] == 200
        await c.close()

    run(body())


def lock_events(db):
    """A session holding events locked: the listener's first load of the
    event table waits for it.  COMMIT on it releases."""
    lock = PsqlSession(db.cluster, db.name)
    lock.send("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE;")
    lock.sync()
    return lock


def run_releasing(lock, coro):
    """run(coro), then the lock of lock_events() is released."""
    try:
        run(coro)
    finally:
        lock.send("ROLLBACK;")
        lock.close()


def wait_listener_blocked(db):
    """Until the listener's session waits for the lock (it is loading)."""
    wait_for(lambda: db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
        "'seatcast listener' AND wait_event_type = 'Lock'") == "1",
        15, "the listener waiting for the events lock")


@pytest.mark.deadline(60)
def test_clients_wait_until_the_events_are_loaded(db, make_server):
    """After a (re)start the event table is empty until the listener has
    loaded it: a client that resubscribed then was told not_found for an
    event that exists (and the JS client dropped the subscription).  The
    master accepts clients only once the events are loaded."""
    e = db.event(50)
    db.book(e, 2)
    lock = lock_events(db)
    srv = make_server(workers=2, database=db.conninfo())
    tok = srv.token()

    async def body():
        opening = asyncio.ensure_future(Client.open(srv, tok))
        wait_listener_blocked(db)
        # the listener cannot load the events: the client is not served
        # (a window of 1 s in which nothing may happen)
        done, _ = await asyncio.wait([opening], timeout=1)
        assert not done, "a client was served before the events were loaded"
        lock.send("COMMIT;")
        c = await asyncio.wait_for(opening, 10)
        sub = await c.request({"type": "subscribe_event", "eventId": e})
        check_message(sub, "subscribed", K_EVENT, eventId=e)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=48, seatCapacity=50)
        await c.close()

    run_releasing(lock, body())
    assert "events loaded; accepting clients" in srv.log()


@pytest.mark.deadline(60)
def test_clients_are_served_after_5_s_without_the_events(db, make_server):
    """The wait is bounded: a database that does not answer (here: the
    events locked) keeps clients out 5 s at most, with a warning; events
    not loaded yet are not_found, and found once loaded."""
    e = db.event(50)
    lock = lock_events(db)
    srv = make_server(workers=2, database=db.conninfo())
    tok = srv.token()

    async def body():
        t0 = time.monotonic()
        wait_listener_blocked(db)
        c = await asyncio.wait_for(Client.open(srv, tok), 15)
        waited = time.monotonic() - t0
        print("served after %.2f s without the events" % waited)
        assert waited > 4
        assert "has not loaded the events after 5000 ms" in srv.log()
        m = await c.request({"type": "subscribe_event", "eventId": e})
        check_message(m, "error", K_ERROR, code="not_found")
        lock.send("COMMIT;")
        m = None
        while m is None or m["type"] != "subscribed":
            m = await c.request({"type": "subscribe_event", "eventId": e})
            if m["type"] != "subscribed":
                check_message(m, "error", K_ERROR, code="not_found")
                assert time.monotonic() - t0 < 30, "never loaded"
                await asyncio.sleep(0.02)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=50, seatCapacity=50)
        await c.close()

    run_releasing(lock, body())


# ------------------------------------------------------------------ #
# 9. A new event                                                       #

def test_event_created_after_start_can_be_followed(db, make_server):
    srv = live_server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        t0 = time.monotonic()
        e = db.event(33, name="added later")
        t1 = time.monotonic()
        tries = 0
        while True:
            tries += 1
            m = await c.request({"type": "subscribe_event", "eventId": e})
            if m["type"] == "subscribed":
                break
            check_message(m, "error", K_ERROR, code="not_found",
                          message="Event %d not found" % e)
            assert time.monotonic() - t1 < 5, "never subscribable"
            await asyncio.sleep(0.02)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=33, seatCapacity=33)
        print("new event subscribable %.1f ms after its INSERT returned "
              "(insert %.1f ms, %d tries)" % (
                  (time.monotonic() - t1) * 1000, (t1 - t0) * 1000, tries))
        db.book(e, 3)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=30)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=30, seatCapacity=33)
        # and /ws/events/{id} for it
        d = await Client.open(srv, srv.tok, "/ws/events/%d" % e)
        check_message(await d.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=30, seatCapacity=33)
        await close_all([c, d])

    run(body())


# ------------------------------------------------------------------ #
# 10. /healthz and /metrics                                            #

def test_healthz_and_metrics_follow_bookings(db, make_server):
    e = db.event(50)
    srv = live_server(make_server, db)
    status, headers, body_ = srv.http_get("/healthz")
    h = json.loads(body_)
    print("healthz: %d %s" % (status, h))
    assert status == 200 and h["status"] == "ok"
    assert list(h.keys())[0] == "status"
    assert h["database"] == "connected"
    assert headers["content-type"].startswith("application/json")
    status, headers, _ = srv.http_get("/metrics")
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    n = 7

    async def body():
        by = await open_spread(srv, 1)
        clients = by[0] + by[1]
        for c in clients:
            await c.subscribe(e)
        m0 = metrics(srv)
        for i in range(n):
            db.book(e, 1, user=i)
        for c in clients:
            await c.wait_for(lambda ms: sum(
                1 for m in ms if m["type"] == "booking_created") == n, 10,
                "%d bookings" % n)
        m1 = metrics(srv)
        lat = "seatcast_delivery_latency_seconds"
        d_notes = m1["seatcast_notifications_total"] - \
            m0["seatcast_notifications_total"]
        d_lat = m1[lat + "_count"] - m0[lat + "_count"]
        print("after %d bookings: notifications +%d, latency count +%d "
              "(2 workers follow the event), mean %.2f ms" % (
                  n, d_notes, d_lat,
                  1000 * (m1[lat + "_sum"] - m0[lat + "_sum"]) /
                  max(1, d_lat)))
        assert d_notes == n
        assert d_lat == 2 * n  # measured once per worker per change
        buckets = [(k, v) for k, v in m1.items()
                   if k.startswith(lat + "_bucket")]
        values = [v for _, v in buckets]
        assert values == sorted(values)
        assert buckets[-1] == (lat + '_bucket{le="+Inf"}', m1[lat + "_count"])
        assert m1["seatcast_db_connected"] == 1
        assert m1["seatcast_subscriptions"] == 2
        assert m1["seatcast_events_watched"] == 1
        assert m1["seatcast_clients"] == 2
        await close_all(clients)

    run(body())
