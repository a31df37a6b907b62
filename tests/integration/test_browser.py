"""test_browser.py - a real browser is a seatcast client (SPEC sections 2-4).

Debian's Chromium, headless, driven by npm playwright-core
(node/browser.mjs; no browser download: executablePath /usr/bin/chromium),
opens new WebSocket(url, ["seatcast.v1", "bearer." + jwt]) from a page,
subscribes to an event, and receives booking_created + seat_update when
this test books seats in a real PostgreSQL with psql.  The page is saved
as a PNG under the test's tmp_path (its path is printed).

Skipped only when /usr/bin/chromium is absent (`make deps` installs it).

Run:
    make && make node-deps && SEATCAST_BIN=$PWD/build/seatcast \
        /usr/bin/python3 -m pytest -v -p no:cacheprovider \
        tests/integration/test_browser.py
"""

import json
import os
import selectors
import subprocess
import time

import pytest

from pg import PgCluster
from server import ROOT, SeatcastError, wait_for

NODE_DIR = os.path.join(ROOT, "tests", "integration", "node")
CHROMIUM = "/usr/bin/chromium"
SECRET = ("test-secret-0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123")  # Seatcast's default SEATCAST_JWT_SECRET


def mint(payload):
    """An HS256 token signed by npm jsonwebtoken (node/mint.mjs)."""
    p = subprocess.run(
        ["node", os.path.join(NODE_DIR, "mint.mjs")],
        input=json.dumps([{"alg": "HS256", "key": SECRET,
                           "payload": payload}]),
        capture_output=True, text=True, timeout=30, cwd=NODE_DIR)
    if p.returncode != 0:
        raise SeatcastError("mint.mjs failed: %s" % p.stderr.strip())
    return json.loads(p.stdout)[0]


class LineReader:
    """JSON lines from a child's stdout, each awaited with a deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def next(self, timeout, what):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SeatcastError("timed out after %s s waiting for the "
                                    "browser: %s" % (timeout, what))
            if not self.sel.select(left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise SeatcastError("the browser script exited (%s) "
                                    "before %s" % (self.proc.wait(5), what))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if msg.get("step") == "error":
            raise SeatcastError("browser script: %s" % msg["error"])
        return msg


@pytest.fixture
def pg(tmp_path):
    cluster = PgCluster(tmp_path)
    try:
        cluster.start()
        cluster.psql_file(os.path.join(ROOT, "sql", "schema.sql"))
        cluster.psql_file(os.path.join(ROOT, "sql", "notify.sql"))
        yield cluster
    finally:
        cluster.cleanup()


@pytest.mark.deadline(180)
def test_chromium_subprotocol_client_gets_live_seats(make_server, pg,
                                                     tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("%s is absent (apt-get install chromium, or make deps)"
                    % CHROMIUM)
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "playwright-core")):
        pytest.fail("npm playwright-core is not installed: run "
                    "`make node-deps`")
    event = int(pg.query_value(
        "INSERT INTO events (name, starts_at, seat_capacity) VALUES "
        "('browser concert', now() + interval '1 day', 100) RETURNING id"))
    srv = make_server(workers=2, database=pg.conninfo())
    wait_for(lambda: srv.http_get("/healthz")[0] == 200, 15,
             "the listener to connect to PostgreSQL")
    token = mint({"sub": "browser-user", "events": [event],
                  "exp": int(time.time()) + 600})

    shot = tmp_path / "browser.png"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    stderr_path = tmp_path / "browser.stderr"
    args = {"url": "ws://127.0.0.1:%d/ws" % srv.port, "token": token,
            "eventId": event, "screenshot": str(shot),
            "userDataDir": str(profile), "executablePath": CHROMIUM,
            "timeoutMs": 60000}
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(["node", os.path.join(NODE_DIR,
                                                      "browser.mjs"),
                                 json.dumps(args)],
                                cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
    try:
        lines = LineReader(proc)
        t0 = time.monotonic()
        first = lines.next(90, "the page to subscribe")
        print("browser connected and subscribed in %.1f s"
              % (time.monotonic() - t0))
        assert first["step"] == "subscribed"
        assert first["protocol"] == "seatcast.v1"
        msgs = first["messages"]
        assert msgs[0]["type"] == "connection_established"
        assert msgs[0]["clientId"].startswith("ws_")
        assert "eventId" not in msgs[0]
        assert [m["type"] for m in msgs[1:3]] == ["subscribed", "seat_update"]
        assert (msgs[2]["eventId"], msgs[2]["availableSeats"],
                msgs[2]["seatCapacity"]) == (event, 100, 100)

        t_book = time.monotonic()
        pg.psql("INSERT INTO bookings (event_id, user_id, seats) "
                "VALUES (%d, 7, 3)" % event)
        done = lines.next(30, "booking_created and seat_update")
        print("the page had the booking %.0f ms after psql started"
              % ((time.monotonic() - t_book) * 1000))
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(10)
        with open(stderr_path, "rb") as f:
            tail = f.read()[-2000:].decode("utf-8", "replace")
        if tail.strip():
            print("browser.mjs stderr:\n" + tail)

    later = done["messages"][len(msgs):]
    kinds = [m["type"] for m in later]
    assert kinds == ["booking_created", "seat_update"], later
    created, update = later
    assert (created["eventId"], created["availableSeats"]) == (event, 97)
    assert (update["eventId"], update["availableSeats"],
            update["seatCapacity"]) == (event, 97, 100)
    for m in done["messages"]:
        assert "userId" not in m and "bookingId" not in m
        assert m["timestamp"].endswith("Z")
    assert done["state"]["protocol"] == "seatcast.v1"
    assert done["state"]["readyState"] == 1   # OPEN until the page closed it
    assert token not in done["state"]["url"]

    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print("screenshot: %s" % shot)
    srv.wait_log(r"connected: user browser-user, from 127\.0\.0\.1$")
    with open(srv.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    assert token not in log and token.split(".")[2] not in log
