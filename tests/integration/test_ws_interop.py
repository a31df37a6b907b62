"""test_ws_interop.py - seatcast against WebSocket clients nobody here wrote
(issue 3; SPEC sections 2, 3, 4, 5).

Three real clients, each in its own process or library:

  npm ws        node/client.mjs, a small driver: JSON commands on stdin,
                one JSON line per observed event on stdout (NodeClient)
  wscat         node_modules/.bin/wscat -c URL, run on a pseudo-terminal:
                only on a tty does wscat prefix received messages with
                "< " and print "Disconnected (code: N, reason: "...")"
                (with stdout a pipe it drops both); --slash gives /ping and
                /close, -P prints "Received pong (data: ...)".  One test
                also runs it the scripted way (-x, stdout a pipe).
  websockets    Debian's python3-websockets 10.4 (asyncio)

No database: subscribe answers not_found, which nothing here needs.  One
server per module (--max-message-size 1024); after every test the
`server_unharmed` fixture checks that the master and the workers are the
same processes and that a fresh client is still greeted.

Run:
    make && make node-deps && SEATCAST_BIN=$PWD/build/seatcast \\
        /usr/bin/python3 -m pytest -v -p no:cacheprovider \\
        tests/integration/test_ws_interop.py
"""

import asyncio
import datetime
import json
import os
import pty
import queue
import re
import select
import shutil
import signal
import subprocess
import threading
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from server import (ROOT, Seatcast, SeatcastError, pid_alive, run_seatcast,
                    wait_for, ws_closed, ws_open, ws_ping, ws_recv_json)

NODE_DIR = os.path.join(ROOT, "tests", "integration", "node")
CLIENT_MJS = os.path.join(NODE_DIR, "client.mjs")
WSCAT = os.path.join(NODE_DIR, "node_modules", ".bin", "wscat")
MAX_MSG = 1024
CLIENT_ID_RE = re.compile(r"^ws_\d+_[0-9a-z]+$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CLIENT_TIMEOUT = 10


def node_bin():
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed (Node 20 is needed)")
    for p in (CLIENT_MJS, WSCAT,
              os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
        if not os.path.exists(p):
            pytest.fail("%s missing: run `make node-deps`" % p)
    return path


# ------------------------------------------------------------------ #
# Checks of server messages                                            #

def check_timestamp(ts):
    """ISO 8601 UTC with milliseconds, and about now."""
    assert TS_RE.match(ts), ts
    when = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(when - time.time()) < 30, "timestamp %s is not now" % ts


def check_established(text, event_id=None):
    """The exact connection_established of SPEC section 4: type first,
    clientId, eventId only on /ws/events/{id}, timestamp last."""
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in pairs]
    want = ["type", "clientId", "timestamp"]
    if event_id is not None:
        want = ["type", "clientId", "eventId", "timestamp"]
    assert keys == want, text
    msg = dict(pairs)
    assert msg["type"] == "connection_established"
    assert CLIENT_ID_RE.match(msg["clientId"]), msg["clientId"]
    ms = int(msg["clientId"].split("_")[1])
    assert abs(ms / 1000 - time.time()) < 30, msg["clientId"]
    if event_id is not None:
        assert msg["eventId"] == event_id and type(msg["eventId"]) is int
    check_timestamp(msg["timestamp"])
    return msg


def check_pong(text):
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    assert [k for k, _ in pairs] == ["type", "timestamp"], text
    assert dict(pairs)["type"] == "pong"
    check_timestamp(dict(pairs)["timestamp"])


# ------------------------------------------------------------------ #
# npm ws, through node/client.mjs                                      #

class NodeClient:
    """One `node client.mjs URL` process.  Events are read by a thread;
    next()/wait() take them in order, keeping every one in `seen`."""

    def __init__(self, url, *flags):
        self.url = url
        self.proc = subprocess.Popen(
            [node_bin(), CLIENT_MJS, url] + list(flags),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=NODE_DIR,
            start_new_session=True)
        self.q = queue.Queue()
        self.seen = []
        self._t = threading.Thread(target=self._reader, daemon=True)
        self._t.start()

    def _reader(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line:
                try:
                    self.q.put(json.loads(line))
                except ValueError:
                    self.q.put({"ev": "garbage", "line": line})
        self.q.put(None)

    def do(self, op, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()

    def next(self, timeout=CLIENT_TIMEOUT):
        try:
            ev = self.q.get(timeout=timeout)
        except queue.Empty:
            raise SeatcastError("npm ws client: nothing within %s s; seen %r"
                                % (timeout, self.seen)) from None
        if ev is None:
            raise SeatcastError("npm ws client exited; seen %r, stderr %r"
                                % (self.seen, self.stderr()))
        self.seen.append(ev)
        return ev

    def wait(self, kind, timeout=CLIENT_TIMEOUT, pred=lambda ev: True):
        """The next event of that kind (matching pred); others are
        skipped (still in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.0, deadline - time.monotonic()))
            if ev["ev"] == kind and pred(ev):
                return ev

    def messages(self):
        return [e["text"] for e in self.seen
                if e["ev"] == "message" and not e["binary"]]

    def stderr(self):
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


# ------------------------------------------------------------------ #
# wscat on a pseudo-terminal                                           #

class Wscat:
    """`wscat -c URL --no-color ARGS` with its stdin and stdout on a pty.
    lines() are the printed lines with colours, prompts and echo
    redraws stripped: "< {...}" for a message, "< Received pong (data:
    ...)" with -P, "Connected ...", "Disconnected (code: N, reason: ...)"."""

    def __init__(self, url, *args):
        node_bin()
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [WSCAT, "-c", url, "--no-color"] + list(args),
            stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=NODE_DIR,
            start_new_session=True)
        os.close(slave)
        self.master = master
        self._raw = ""
        self._lines = []
        self._eof = False

    def _pump(self, timeout):
        if self._eof:
            return False
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed
            data = b""
        if not data:
            self._eof = True
            data = b"\n"
        self._raw += data.decode("utf-8", "replace")
        *done, self._raw = self._raw.split("\n")
        for seg in done:
            for piece in ANSI_RE.sub("", seg).split("\r"):
                piece = piece.strip()
                while piece.startswith(">"):
                    piece = piece[1:].lstrip()
                if piece:
                    self._lines.append(piece)
        return True

    def lines(self):
        while self._pump(0):
            pass
        return list(self._lines)

    def wait_line(self, pred, what, timeout=CLIENT_TIMEOUT, start=0):
        """The first line (index >= start) for which pred holds."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self._lines)):
                if pred(self._lines[i]):
                    return i, self._lines[i]
            left = deadline - time.monotonic()
            if left <= 0 or (self._eof and not self._pump(0)):
                raise SeatcastError("wscat: no %s within %s s; lines %r, "
                                    "stderr %r" % (what, timeout, self._lines,
                                                   self._stderr()))
            self._pump(min(left, 0.1))

    def received(self, start=0, timeout=CLIENT_TIMEOUT):
        """(index, text) of the next "< " line at or after start."""
        i, line = self.wait_line(lambda ln: ln.startswith("< "),
                                 "received message", timeout, start)
        return i, line[2:]

    def disconnected(self, timeout=CLIENT_TIMEOUT):
        """(index, code, reason) of the Disconnected line."""
        i, line = self.wait_line(lambda ln: ln.startswith("Disconnected"),
                                 "Disconnected line", timeout)
        m = re.match(r'Disconnected \(code: (\d+), reason: "(.*)"\)$', line)
        assert m, line
        return i, int(m.group(1)), m.group(2)

    def type(self, text):
        os.write(self.master, text.encode() + b"\r")

    def _stderr(self):
        return self.proc.stderr.read().decode() if \
            self.proc.poll() is not None else ""

    def wait_exit(self, timeout=CLIENT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.05)
        return self.proc.poll()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self.proc.stderr.close()
        try:
            os.close(self.master)
        except OSError:
            pass


# ------------------------------------------------------------------ #
# Fixtures                                                             #

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Seatcast(tmp_path_factory.mktemp("interop"), workers=2,
                 args=["--max-message-size", str(MAX_MSG)])
    try:
        s.start()
        s.tok = s.token(sub="1")
        yield s
    finally:
        s.finish(timeout=15)


@pytest.fixture(autouse=True)
def server_unharmed(request):
    """After each test on the module server: same master and workers (no
    crash, no respawn), and a fresh websockets client is still served."""
    if "srv" not in request.fixturenames:
        yield
        return
    s = request.getfixturevalue("srv")
    before = (s.master_pid, s.worker_pids())
    yield
    assert s.running(), "the master exited:\n" + s.log_tail()

    async def fresh():
        ws, hello = await ws_open(s, token=s.tok)
        await ws_ping(ws)
        await ws.close()
    problems = []
    try:
        asyncio.run(fresh())
    except Exception as e:  # reported with the pids and the log below
        problems.append("a fresh client was not served: %r" % e)
    now = (s.master_pid, s.worker_pids())
    if now != before:
        problems.append("a worker died and was replaced: master and "
                        "workers %s, now %s" % (before, now))
    if s.tok in s.log():
        problems.append("a token was written to the log")
    assert not problems, "; ".join(problems) + "\nlog tail:\n" + \
        s.log_tail(60)


@pytest.fixture
def clients():
    """Registers NodeClient/Wscat objects; all are killed at teardown."""
    made = []
    yield made
    for c in made:
        c.stop()


def node_client(clients, url, *flags):
    c = NodeClient(url, *flags)
    clients.append(c)
    return c


def wscat(clients, url, *args):
    c = Wscat(url, *args)
    clients.append(c)
    return c


def other_secret_token():
    p = run_seatcast(["token", "--sub", "1", "--ttl", "3600"],
                     secret="not-the-server-secret" + "x" * 32)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


BAD_TOKENS = {
    "garbage": "not.a.jwt",
    "wrong-secret": None,  # made by other_secret_token()
}


def bad_token(kind):
    return BAD_TOKENS[kind] or other_secret_token()


# ------------------------------------------------------------------ #
# Python websockets                                                    #

def test_websockets_handshake_and_connection_established(srv):
    async def body():
        ws = await websockets.connect(srv.ws_url("/ws", srv.tok),
                                      ping_interval=None, open_timeout=10)
        try:
            check_established(await asyncio.wait_for(ws.recv(), 5))
            assert ws.subprotocol is None
            assert "sec-websocket-extensions" not in ws.response_headers
        finally:
            await ws.close()
        # /ws/events/{id}: eventId between clientId and timestamp
        ws = await websockets.connect(srv.ws_url("/ws/events/42", srv.tok),
                                      ping_interval=None, open_timeout=10)
        try:
            check_established(await asyncio.wait_for(ws.recv(), 5), 42)
        finally:
            await ws.close()
    asyncio.run(body())


def test_websockets_client_ids_are_unique(srv):
    async def body():
        got = await asyncio.gather(*(ws_open(srv, token=srv.tok)
                                     for _ in range(20)))
        ids = [hello["clientId"] for _, hello in got]
        await asyncio.gather(*(ws.close() for ws, _ in got))
        assert len(set(ids)) == len(ids), ids
    asyncio.run(body())


def test_websockets_ping_frame_and_json_ping(srv):
    async def body():
        ws, _ = await ws_open(srv, token=srv.tok)
        try:
            for payload in (b"seatcast-ping", b"", bytes(range(125))):
                waiter = await ws.ping(payload)  # websockets matches it
                await asyncio.wait_for(waiter, 5)
            await ws.send('{"type":"ping"}')
            check_pong(await asyncio.wait_for(ws.recv(), 5))
        finally:
            await ws.close()
    asyncio.run(body())


def test_websockets_fragmented_messages(srv):
    async def body():
        ws, _ = await ws_open(srv, token=srv.tok)
        try:
            # str fragments: one text frame, then continuations
            await ws.send(iter(['{"ty', 'pe":', '"ping"', '}']))
            check_pong(await asyncio.wait_for(ws.recv(), 5))
            # a UTF-8 sequence cut between two frames: websockets will not
            # split a str, so its frame writer sends the raw fragments
            raw = '{"type":"pingé€😀"}'.encode()
            cut = raw.index("😀".encode()) + 2
            await ws.write_frame(False, 0x1, raw[:cut])
            await ws.write_frame(True, 0x0, raw[cut:])
            msg = await ws_recv_json(ws)
            assert msg["type"] == "error" and msg["code"] == "unknown_type"
            assert msg["message"] == "Unknown message type: pingé€😀"
            await ws_ping(ws)  # still open
        finally:
            await ws.close()
    asyncio.run(body())


def test_websockets_error_echo_of_long_non_ascii_type_is_valid_utf8(srv):
    """The server cuts an unknown type to fit its error message: the cut
    must not split a UTF-8 sequence (the client would fail with 1007)."""
    async def body():
        ws, _ = await ws_open(srv, token=srv.tok)
        try:
            for pad in range(56, 66):
                t = "a" * pad + "é€😀" * 4
                await ws.send(json.dumps({"type": t}, ensure_ascii=False))
                msg = await ws_recv_json(ws)  # ConnectionClosed if 1007
                assert msg["code"] == "unknown_type"
                shown = msg["message"][len("Unknown message type: "):]
                assert t.startswith(shown) and len(shown) >= 32, shown
        finally:
            await ws.close()
    asyncio.run(body())


def test_websockets_close_1000_is_echoed(srv):
    async def body():
        ws, _ = await ws_open(srv, token=srv.tok)
        await ws.close(1000, "bye")
        assert ws.close_code == 1000  # the code of the server's frame
        # a close code in the private range comes back as well
        ws, _ = await ws_open(srv, token=srv.tok)
        await ws.close(4321)
        assert ws.close_code == 4321
    asyncio.run(body())


@pytest.mark.parametrize("kind", ["none"] + sorted(BAD_TOKENS))
def test_websockets_auth_failure_1008(srv, kind):
    token = "" if kind == "none" else bad_token(kind)
    reason = "Authentication required" if kind == "none" else "Invalid token"

    async def body():
        ws, _ = await ws_open(srv, token=token, greet=False)
        with pytest.raises(ConnectionClosed):
            msg = await asyncio.wait_for(ws.recv(), 5)
            pytest.fail("a message before the close: %r" % msg)
        code, why = await ws_closed(ws)
        assert (code, why) == (1008, reason)
    asyncio.run(body())
    assert token == "" or token not in srv.log(), "token in the log"


def test_websockets_too_big_1009_and_limit_itself_accepted(srv):
    async def body():
        ws, _ = await ws_open(srv, token=srv.tok)
        # exactly the limit is fine (an unknown type of that size)
        msg = '{"type":"%s"}' % ("x" * (MAX_MSG - 11))
        assert len(msg) == MAX_MSG
        await ws.send(msg)
        assert (await ws_recv_json(ws))["code"] == "unknown_type"
        await ws.send('{"type":"ping","pad":"%s"}' % ("x" * MAX_MSG))
        assert (await ws_closed(ws))[0] == 1009
        # the same limit over fragments
        ws, _ = await ws_open(srv, token=srv.tok)
        await ws.send(iter(["x" * 600, "x" * 600]))
        assert (await ws_closed(ws))[0] == 1009
    asyncio.run(body())


def test_websockets_binary_1003(srv):
    async def body():
        ws, _ = await ws_open(srv, token=srv.tok)
        await ws.send(b'{"type":"ping"}')
        assert (await ws_closed(ws))[0] == 1003
    asyncio.run(body())


def test_websockets_subprotocol_bearer_token(srv):
    tok = srv.token(sub="subproto-user")

    async def body():
        ws = await websockets.connect(
            srv.ws_url("/ws"), subprotocols=["seatcast.v1", "bearer." + tok],
            ping_interval=None, open_timeout=10)
        try:
            assert ws.subprotocol == "seatcast.v1"
            raw = "\r\n".join("%s: %s" % kv
                              for kv in ws.response_headers.raw_items())
            assert tok not in raw and "bearer" not in raw.lower(), raw
            assert ws.response_headers.get_all("Sec-WebSocket-Protocol") == \
                ["seatcast.v1"]
            check_established(await asyncio.wait_for(ws.recv(), 5))
            await ws_ping(ws)
        finally:
            await ws.close()
        # bearer.X without seatcast.v1 is no token: 1008, and the client
        # got no subprotocol (websockets would refuse any it did not offer)
        ws = await websockets.connect(
            srv.ws_url("/ws"), subprotocols=["bearer." + tok],
            ping_interval=None, open_timeout=10)
        assert ws.subprotocol is None
        assert await ws_closed(ws) == (1008, "Authentication required")
    asyncio.run(body())
    assert tok not in srv.log()


# ------------------------------------------------------------------ #
# npm ws                                                               #

def test_npm_ws_handshake_and_connection_established(srv, clients):
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    up = c.wait("upgrade")
    assert up["status"] == 101
    assert "sec-websocket-extensions" not in up["headers"]
    assert c.wait("open")["extensions"] == ""
    check_established(c.wait("message")["text"])
    assert [e["ev"] for e in c.seen] == ["upgrade", "open", "message"]
    c.do("close", code=1000)
    assert c.wait("close")["code"] == 1000

    c = node_client(clients, srv.ws_url("/ws/events/7", srv.tok))
    check_established(c.wait("message")["text"], 7)


def test_npm_ws_ping_frame_and_json_ping(srv, clients):
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    c.do("ping", text="ping-from-npm-ws")
    c.do("send", text='{"type":"ping"}')
    pong = c.wait("pong")
    assert pong["text"] == "ping-from-npm-ws"
    check_pong(c.wait("message")["text"])
    # SPEC 5: the pong comes before the answer to the following message
    kinds = [e["ev"] for e in c.seen]
    assert kinds == ["upgrade", "open", "message", "pong", "message"], kinds


def test_npm_ws_fragmented_messages(srv, clients):
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    # ws.send(data, {fin:false}): a text frame, then continuations
    c.do("send", text='{"type"', fin=False)
    c.do("send", text=':"pi', fin=False)
    c.do("send", text='ng"}', fin=True)
    check_pong(c.wait("message")["text"])
    # a control frame between fragments is allowed (RFC 6455 5.4)
    c.do("send", text='{"type":', fin=False)
    c.do("ping", text="between")
    c.do("send", text='"ping"}', fin=True)
    assert c.wait("pong")["text"] == "between"
    check_pong(c.wait("message")["text"])
    # a UTF-8 sequence split between fragments (raw bytes sent as text)
    raw = '{"type":"pingé€😀"}'.encode()
    cut1 = raw.index("é".encode()) + 1
    cut2 = raw.index("😀".encode()) + 3
    c.do("send", hex=raw[:cut1].hex(), fin=False)
    c.do("send", hex=raw[cut1:cut2].hex(), fin=False)
    c.do("send", hex=raw[cut2:].hex(), fin=True)
    msg = json.loads(c.wait("message")["text"])
    assert msg["message"] == "Unknown message type: pingé€😀"
    c.do("send", text='{"type":"ping"}')
    check_pong(c.wait("message")["text"])


def test_npm_ws_close_1000_is_echoed(srv, clients):
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    c.do("close", code=1000, reason="done")
    ev = c.wait("close")
    assert ev["code"] == 1000
    assert [e for e in c.seen if e["ev"] == "error"] == []
    # ws.close() without a code sends an empty close: the echo is empty
    # too, which ws reports as 1005 (no status received)
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    c.do("close")
    assert c.wait("close")["code"] == 1005
    assert [e for e in c.seen if e["ev"] == "error"] == []


@pytest.mark.parametrize("kind", ["none"] + sorted(BAD_TOKENS))
def test_npm_ws_auth_failure_1008(srv, clients, kind):
    token = None if kind == "none" else bad_token(kind)
    c = node_client(clients, srv.ws_url("/ws", token))
    ev = c.wait("close")
    assert (ev["code"], ev["reason"]) == (
        1008, "Authentication required" if kind == "none"
        else "Invalid token")
    # the upgrade completed, then only the close (SPEC 3)
    assert [e["ev"] for e in c.seen] == ["upgrade", "open", "close"]


def test_npm_ws_too_big_1009(srv, clients):
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    c.do("send", text="x" * (MAX_MSG + 1))
    assert c.wait("close")["code"] == 1009
    # and fragments adding up past the limit
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    c.do("send", text="y" * 700, fin=False)
    c.do("send", text="y" * 700, fin=True)
    assert c.wait("close")["code"] == 1009


def test_npm_ws_large_message_sees_1009(srv, clients):
    """A message far over the limit is refused from its header, while ws
    is still writing it: ws must still see the close frame 1009 (not
    1006 with ECONNRESET, which is what a RST from the server causes)."""
    seen = []
    for _ in range(5):
        c = node_client(clients, srv.ws_url("/ws", srv.tok))
        c.wait("message")
        c.do("send", text="w" * (4 << 20))
        ev = c.wait("close")
        seen.append((ev["code"], [e.get("message") for e in c.seen
                                  if e["ev"] == "error"]))
    assert all(code == 1009 for code, _ in seen), seen


def test_npm_ws_binary_1003(srv, clients):
    c = node_client(clients, srv.ws_url("/ws", srv.tok))
    c.wait("message")
    c.do("send", hex=b'{"type":"ping"}'.hex(), binary=True)
    assert c.wait("close")["code"] == 1003
    assert c.messages()[1:] == []


def test_npm_ws_subprotocol_bearer_token(srv, clients):
    tok = srv.token(sub="npm-subproto")
    c = node_client(clients, srv.ws_url("/ws"), "--protocol", "seatcast.v1",
                    "--protocol", "bearer." + tok)
    up = c.wait("upgrade")
    assert up["headers"].get("sec-websocket-protocol") == "seatcast.v1"
    assert tok not in json.dumps(up["headers"])
    assert c.wait("open")["protocol"] == "seatcast.v1"
    check_established(c.wait("message")["text"])


def test_npm_ws_authorization_header_token(srv, clients):
    c = node_client(clients, srv.ws_url("/ws"), "--header",
                    "Authorization: Bearer " + srv.tok)
    check_established(c.wait("message")["text"])


# ------------------------------------------------------------------ #
# wscat                                                                #

def test_wscat_handshake_ping_pong_and_close(srv, clients):
    w = wscat(clients, srv.ws_url("/ws", srv.tok), "-P", "--slash")
    w.wait_line(lambda ln: ln.startswith("Connected"), "Connected")
    i, text = w.received()
    check_established(text)
    w.type("/ping wscat-payload")
    i, text = w.received(i + 1)
    assert text == 'Received pong (data: "wscat-payload")'
    w.type('{"type":"ping"}')
    i, text = w.received(i + 1)
    check_pong(text)
    w.type("/close 1000")
    _, code, reason = w.disconnected()
    assert (code, reason) == (1000, "")
    assert w.wait_exit() == 0


def test_wscat_scripted_execute(srv):
    """wscat the way scripts run it: -x, stdout a pipe (no "< " prefix:
    one message per line).  Its stdin stays open: at end of input wscat
    leaves at once, before the server has answered."""
    node_bin()
    p = subprocess.Popen(
        [WSCAT, "-c", srv.ws_url("/ws", srv.tok), "-x", '{"type":"ping"}',
         "-w", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=NODE_DIR,
        start_new_session=True)
    try:
        rc = p.wait(CLIENT_TIMEOUT)  # the output is far below a pipe's size
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.stdin.close()
    out, err = p.stdout.read(), p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, (lines, err)
    check_established(lines[0])
    check_pong(lines[1])


@pytest.mark.parametrize("kind", ["none"] + sorted(BAD_TOKENS))
def test_wscat_auth_failure_1008(srv, clients, kind):
    token = None if kind == "none" else bad_token(kind)
    w = wscat(clients, srv.ws_url("/ws", token))
    i, code, reason = w.disconnected()
    assert (code, reason) == (
        1008, "Authentication required" if kind == "none"
        else "Invalid token")
    assert not any(ln.startswith("< ") for ln in w.lines()), w.lines()
    assert any(ln.startswith("Connected") for ln in w.lines()[:i])


def test_wscat_too_big_1009(srv, clients):
    w = wscat(clients, srv.ws_url("/ws", srv.tok))
    w.received()
    w.type("z" * (MAX_MSG + 100))
    _, code, _ = w.disconnected()
    assert code == 1009


def test_wscat_subprotocol_bearer_token(srv, clients):
    tok = srv.token(sub="wscat-subproto")
    w = wscat(clients, srv.ws_url("/ws"), "-s", "seatcast.v1",
              "-s", "bearer." + tok)
    _, text = w.received()
    check_established(text)


def test_wscat_sees_server_pings(make_server, clients):
    s = make_server(workers=1, args=["--ping-interval", "1"])
    w = wscat(clients, s.ws_url("/ws", s.token()), "-P")
    i, text = w.received()
    check_established(text)
    # one ping a second; wscat (ws) answers them, so two pings later
    # (past 2 x the interval) it is still connected
    for _ in range(2):
        i, text = w.received(i + 1, timeout=3)
        assert text == 'Received ping (data: "")'
    assert w.proc.poll() is None
    assert not any(ln.startswith("Disconnected") for ln in w.lines())


# ------------------------------------------------------------------ #
# SIGTERM: every kind of client sees 1001                              #

@pytest.mark.deadline(60)
def test_sigterm_closes_every_client_1001(make_server, clients):
    s = make_server(workers=2, args=["--shutdown-timeout", "5"])
    tok = s.token()
    n = node_client(clients, s.ws_url("/ws", tok))
    n.wait("message")
    w = wscat(clients, s.ws_url("/ws", tok))
    w.received()

    async def body():
        ws, _ = await ws_open(s, token=tok)
        children = s.child_pids()
        t0 = time.monotonic()
        s.send_signal(signal.SIGTERM)
        code, reason = await ws_closed(ws, 10)
        assert (code, reason) == (1001, "Server shutting down")
        rc = await asyncio.get_running_loop().run_in_executor(
            None, s.wait, 10)
        elapsed = time.monotonic() - t0
        assert rc == 0, s.log_tail()
        assert elapsed < 5, "exit took %.1f s" % elapsed
        wait_for(lambda: not any(pid_alive(p) for p in children), 5,
                 "children to exit")
    asyncio.run(body())

    ev = n.wait("close")
    assert (ev["code"], ev["reason"]) == (1001, "Server shutting down")
    _, code, reason = w.disconnected()
    assert (code, reason) == (1001, "Server shutting down")
