"""test_forged_notify.py - --source notify is unforgeable (issue 11)

Any role that can connect may NOTIFY any channel.  These tests reproduce
the forged notifications of the issue, sent by a role that has nothing but
LOGIN and CONNECT, and check that a client sees nothing of them: a payload
is only a hint, the listener re-reads seatcast_seat_state and
seatcast_revoked_tokens (one query per drain) and ignores what the
database contradicts.

Run:  /usr/bin/python3 -m pytest tests/integration/test_forged_notify.py
"""

import asyncio
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import BookingDb, Client, check_message, metrics  # noqa: E402
from pg import BOOKING_TEMPLATE, _clean_env  # noqa: E402
from server import wait_for, ws_open, ws_ping  # noqa: E402
import subprocess  # noqa: E402

K_SEATS = ["type", "eventId", "availableSeats", "seatCapacity", "timestamp"]
K_BOOKING = ["type", "eventId", "availableSeats", "timestamp"]
K_EVENT = ["type", "eventId", "timestamp"]

_counter = [0]


@pytest.fixture
def db(cluster):
    _counter[0] += 1
    name = "forged%d" % _counter[0]
    cluster.start()
    cluster.createdb(name, template=BOOKING_TEMPLATE)
    cluster.psql("DROP ROLE IF EXISTS forger; CREATE ROLE forger LOGIN",
                 db="postgres")
    yield BookingDb(cluster, name)
    cluster.dropdb(name)


def forge(db, *payloads):
    """NOTIFY seatcast as role forger (LOGIN and CONNECT only)."""
    argv = db.cluster.psql_argv(db.name)
    argv[argv.index("-U") + 1] = "forger"
    sql = "".join("NOTIFY seatcast, '%s';\n" % p.replace("'", "''")
                  for p in payloads)
    subprocess.run(argv, input=sql, env=_clean_env(), check=True,
                   capture_output=True, text=True, timeout=30)


def run(coro):
    return asyncio.run(coro)


def server(make_server, db, args=()):
    srv = make_server(workers=2, database=db.conninfo(), args=list(args))
    wait_for(lambda: srv.http_get("/healthz")[0] == 200, 20, "/healthz 200")
    srv.tok = srv.token()
    return srv


def forged_count(srv):
    return metrics(srv)["seatcast_notifications_forged_total"]


def test_forged_seat_update_changes_nothing_and_holds_nothing_back(
        db, make_server):
    e = db.event(100)
    db.book(e, 3)
    srv = server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        # the reproduction: 0 seats at the largest version
        forge(db, json.dumps({"type": "seat_update", "eventId": e,
                              "availableSeats": 0, "seatCapacity": 100,
                              "version": 9223372036854775807}),
              # the current version with other seats; the next version
              json.dumps({"type": "booking_created", "eventId": e,
                          "availableSeats": 1, "seatCapacity": 100,
                          "version": 1}),
              json.dumps({"type": "seat_update", "eventId": e,
                          "availableSeats": 2, "seatCapacity": 100,
                          "version": 2}))
        wait_for(lambda: forged_count(srv) >= 2, 10, "forgeries counted")
        await c.quiet()        # nothing reached the client
        # a real booking still arrives (nothing was held back as stale)
        db.book(e, 2)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=95)
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=95, seatCapacity=100)
        await c.quiet()
        # and a new subscriber is shown the database's count
        d = await Client.open(srv, srv.tok)
        _, snap = await d.subscribe(e)
        check_message(snap, "seat_update", K_SEATS, eventId=e,
                      availableSeats=95, seatCapacity=100)
        await c.close()
        await d.close()

    run(body())


def test_forged_token_revoked_locks_nobody_out(db, make_server):
    srv = server(make_server, db)

    async def body():
        tok = srv.token(sub="5", jti="victim-jti")
        ws, _ = await ws_open(srv, tok)
        f0 = forged_count(srv)
        forge(db, json.dumps({"type": "token_revoked", "jti": "victim-jti"}))
        wait_for(lambda: forged_count(srv) == f0 + 1, 10, "forgery counted")
        await ws_ping(ws)                     # still open
        ws2, _ = await ws_open(srv, tok)      # and accepted again
        await ws_ping(ws2)
        # a real revocation still works
        db.psql("INSERT INTO seatcast_revoked_tokens (jti) VALUES "
                "('victim-jti')")
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert (ws.close_code, ws.close_reason) == (1008, "Token revoked")
        await ws2.close()

    run(body())


def test_forged_ids_take_no_registry_slot(db, make_server):
    srv = server(make_server, db, ["--max-events", "16"])
    used = srv.stats()["totals"]["events"]

    async def body():
        forge(db, *[json.dumps({"type": "seat_update", "eventId": 1000 + i,
                                "availableSeats": 1, "seatCapacity": 2,
                                "version": 1}) for i in range(40)])
        wait_for(lambda: srv.stats()["listener"]["unknown_events"] >= 40,
                 10, "40 unknown ids counted")
        # a real event created now is followed, not refused as full
        e = db.event(9)
        c = await Client.open(srv, srv.tok)
        for _ in range(250):
            m = await c.request({"type": "subscribe_event", "eventId": e})
            if m["type"] == "subscribed":
                break
            assert m["code"] == "not_found", m
            await asyncio.sleep(0.02)
        assert m["type"] == "subscribed"
        check_message(await c.next(), "seat_update", K_SEATS, eventId=e,
                      availableSeats=9, seatCapacity=9)
        m = await c.request({"type": "subscribe_event", "eventId": 1000})
        assert m["type"] == "error" and m["code"] == "not_found"
        await c.close()

    run(body())
    assert srv.stats()["totals"]["events"] == used + 1


def test_forged_event_deleted_unsubscribes_nobody(db, make_server):
    e = db.event(10)
    srv = server(make_server, db)

    async def body():
        c = await Client.open(srv, srv.tok)
        await c.subscribe(e)
        f0 = forged_count(srv)
        forge(db, json.dumps({"type": "event_deleted", "eventId": e,
                              "version": 50}))
        wait_for(lambda: forged_count(srv) == f0 + 1, 10, "forgery counted")
        await c.quiet()
        db.book(e, 1)
        check_message(await c.next(), "booking_created", K_BOOKING,
                      eventId=e, availableSeats=9)
        await c.next()
        # the real deletion still unsubscribes
        db.psql("DELETE FROM events WHERE id = %d" % e)
        check_message(await c.next(), "unsubscribed", K_EVENT, eventId=e)
        await c.close()

    run(body())
