"""test_valgrind.py - one end-to-end scenario under valgrind memcheck.

The whole tree (master, worker, listener: valgrind follows fork) runs under
memcheck while a client connects, subscribes, sees a booking, trips a
protocol error and leaves, another is refused for a bad token, and the
server stops on SIGTERM.  Every process must report zero errors and zero
definitely lost bytes.  Skipped in the sanitizer pass of `make check` (an
ASan binary cannot run under valgrind).
"""

import asyncio
import glob
import json
import os
import re
import shutil

import pytest
import websockets

from pg import PgCluster
from server import ROOT, Seatcast, wait_for

pytestmark = pytest.mark.skipif(
    os.environ.get("SEATCAST_SANITIZED") == "1" or not shutil.which("valgrind"),
    reason="valgrind run is for the plain build (needs valgrind)")


class ValgrindSeatcast(Seatcast):
    """A Seatcast whose master starts under valgrind memcheck."""

    def __init__(self, tmp_path, **kwargs):
        super().__init__(tmp_path, **kwargs)
        self.vg_dir = str(tmp_path)

    def argv(self):
        return ["valgrind", "--tool=memcheck", "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite", "--child-silent-after-fork=no",
                "--log-file=%s/vg.%%p.log" % self.vg_dir] + super().argv()


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    cluster = PgCluster(str(tmp_path_factory.mktemp("pgvg")))
    cluster.start()
    cluster.psql_file(os.path.join(ROOT, "sql", "schema.sql"))
    cluster.psql_file(os.path.join(ROOT, "sql", "notify.sql"))
    yield cluster
    cluster.stop()


async def scenario(srv, pg, event_id):
    token = srv.token(sub="vg-user")
    async with websockets.connect(srv.ws_url("/ws", token=token)) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert hello["type"] == "connection_established"
        await ws.send(json.dumps({"type": "subscribe_event",
                                  "eventId": event_id}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == \
            "subscribed"
        snap = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert snap["type"] == "seat_update"
        pg.psql("INSERT INTO bookings (event_id, user_id, seats) "
                "VALUES (%d, 1, 2)" % event_id)
        got = [json.loads(await asyncio.wait_for(ws.recv(), 30))
               for _ in range(2)]
        assert [m["type"] for m in got] == ["booking_created", "seat_update"]
        assert got[1]["availableSeats"] == snap["availableSeats"] - 2
        await ws.send("not json")
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["code"] == \
            "invalid_json"
        await ws.send(json.dumps({"type": "get_stats"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == \
            "stats"
    async with websockets.connect(srv.ws_url("/ws", token="bad")) as ws:
        with pytest.raises(websockets.ConnectionClosed) as e:
            await asyncio.wait_for(ws.recv(), 30)
        assert e.value.code == 1008


@pytest.mark.deadline(240)
def test_end_to_end_under_valgrind_has_no_errors_or_leaks(tmp_path, pg):
    event_id = int(pg.psql("INSERT INTO events (name, seat_capacity) "
                           "VALUES ('valgrind', 50) RETURNING id").split()[0])
    srv = ValgrindSeatcast(tmp_path, workers=1, database=pg.conninfo())
    try:
        srv.start(timeout=120)
        wait_for(lambda: srv.http_get("/healthz")[0] == 200, 60,
                 "the listener to connect under valgrind")
        asyncio.run(scenario(srv, pg, event_id))
        assert srv.stop(timeout=120) == 0
    finally:
        srv.kill_tree()
        srv.cleanup()
    logs = sorted(glob.glob(os.path.join(str(tmp_path), "vg.*.log")))
    # one log per process of the tree: master, listener, worker
    assert len(logs) >= 3, logs
    for path in logs:
        text = open(path).read()
        errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        assert errors, "no summary in %s:\n%s" % (path, text[-2000:])
        assert errors.group(1) == "0", "%s:\n%s" % (path, text[-4000:])
        lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
        assert lost is None or lost.group(1) == "0", \
            "%s:\n%s" % (path, text[-4000:])
        print("%s: 0 errors, %s definitely lost" % (
            os.path.basename(path), lost.group(1) if lost else "no leaks"))
