"""test_ws_rules.py - SPEC section 5 (RFC 6455 rules and limits) and the
HTTP rows of section 2, one test per row, over raw sockets: the inputs
here are ones that real clients will not produce.

RawWS is a tiny client of our own: handshake, a frame builder (masking,
RSV bits, any opcode, any length form) and a frame reader; expect_close()
parses the server's close frame and then waits for the TCP close.
Every check reads the exact close code (or HTTP status).

Servers: `srv` (module scope, --max-message-size 1024) serves most tests;
`timing_srv` (module scope, --ping-interval 1 --handshake-timeout 1
--allowed-origin http://good.example) the timing and origin rows; a
function-scoped one (--max-connections 3) the connection limit.  After
every test on a module server, `server_unharmed` asserts the master and
the workers are the same processes and a fresh client is served.

Run:
    make && SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest \\
        -v -p no:cacheprovider tests/integration/test_ws_rules.py
"""

import asyncio
import base64
import hashlib
import json
import os
import random
import select
import socket
import struct
import threading
import time

import pytest

from server import Seatcast, SeatcastError, wait_for, ws_open, ws_ping

MAX_MSG = 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
IO_TIMEOUT = 5

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


# ------------------------------------------------------------------ #
# A raw WebSocket client                                               #

def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None,
          form=None, key=None):
    """Bytes of one client frame.  length: the announced payload length
    (default: len(payload)); form: 7, 16 or 64 to force a length form
    (even a non-minimal one); rsv: bits 0x70 of byte 0."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if mask else 0
    if form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def mask_bytes(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^
            int.from_bytes(k, "big")).to_bytes(n, "big")


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def http_request(method="GET", path="/ws", headers=None, version="1.1"):
    """A request head; headers is a list of (name, value) pairs."""
    lines = ["%s %s HTTP/%s" % (method, path, version)]
    lines += ["%s: %s" % kv for kv in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade_headers(port, key=None, extra=()):
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    return [("Host", "127.0.0.1:%d" % port), ("Upgrade", "websocket"),
            ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13")] + list(extra)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Response:
    def __init__(self, head, body):
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for ln in lines[1:]:
            name, _, value = ln.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(
                value.strip())
        self.body = body

    def header(self, name):
        v = self.headers.get(name.lower())
        assert v is not None and len(v) == 1, (name, self.headers)
        return v[0]

    def __repr__(self):
        return "<%s %r %r>" % (self.status_line, self.headers, self.body)


def read_until_eof(s, timeout=IO_TIMEOUT, reset_ok=True):
    """Everything until the server closes.  A reset counts as a close
    unless reset_ok is false: then it is a failure (the server closed
    with our bytes unread, and a client still writing may lose what the
    server sent last: RFC 9112 9.6, nginx's lingering_close)."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SeatcastError("no EOF within %s s (got %r)" % (timeout,
                                                                 data[:200]))
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            if reset_ok:
                return data
            raise SeatcastError("connection reset by the server instead "
                                "of an orderly close (after %r)"
                                % data[-200:]) from None
        if not chunk:
            return data
        data += chunk


def http_exchange(port, raw, timeout=IO_TIMEOUT):
    """Sends raw bytes; the response the server sends before closing."""
    with connect(port) as s:
        s.sendall(raw)
        data = read_until_eof(s, timeout)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no complete response head: %r" % data
    r = Response(head, body)
    if "content-length" in r.headers:
        assert len(body) == int(r.header("content-length")), r
    if r.headers.get("content-type", [""])[0].startswith("application/json"):
        try:
            doc = json.loads(body.decode("utf-8"))
        except ValueError as e:
            raise AssertionError("%s: the body is not JSON (%s): %r"
                                 % (r.status_line, e, body)) from None
        if r.status >= 400:
            assert "error" in doc or "status" in doc, r
    return r


class RawWS:
    """A connected, upgraded socket; frames are read from self.buf."""

    def __init__(self, sock, buf=b""):
        self.s = sock
        self.buf = buf

    @classmethod
    def open(cls, srv, path="/ws", token=None, greet=True, extra=()):
        sock = connect(srv.port)
        key = base64.b64encode(os.urandom(16)).decode()
        if token is None:
            token = srv.tok
        if token:
            path += "?token=" + token
        sock.sendall(http_request("GET", path,
                                  upgrade_headers(srv.port, key, extra)))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                sock.close()
                raise SeatcastError("no upgrade: %r" % data)
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        r = Response(head, b"")
        assert r.status == 101, (r, rest)
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        assert r.header("sec-websocket-accept") == want.decode()
        ws = cls(sock, rest)
        ws.response = r
        if greet:
            op, fin, text = ws.recv_frame()
            assert op == OP_TEXT and fin
            assert json.loads(text)["type"] == "connection_established"
        return ws

    def send(self, data):
        self.s.sendall(data)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SeatcastError("timed out reading a frame (have %r)"
                                    % self.buf[:64])
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue  # the deadline check above reports it
            if not chunk:
                raise EOFError("server closed TCP (buffer %r)" % self.buf)
            self.buf += chunk

    def recv_frame(self, timeout=IO_TIMEOUT):
        """(opcode, fin, payload) of the next server frame, checked for
        what RFC 6455 asks of a server: unmasked, no RSV, minimal length."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert b0 & 0x70 == 0, "server frame with RSV bits %#x" % b0
        assert b1 & 0x80 == 0, "masked server frame"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            assert n >= 126, "non-minimal length from the server"
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            assert n >= 65536, "non-minimal length from the server"
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, bool(b0 & 0x80), payload

    def pump(self):
        """One recv() (the socket must be readable) and the complete frames
        it gives, as (opcode, fin, payload); EOFError once TCP is closed."""
        try:
            chunk = self.s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("server closed TCP")
        self.buf += chunk
        frames = []
        while True:
            try:
                frames.append(self.recv_frame(timeout=0))
            except SeatcastError:  # incomplete: wait for more
                return frames

    def expect_close(self, timeout=IO_TIMEOUT, reply=False, reset_ok=False):
        """Reads up to the server's close frame, then (after sending a
        close frame back if reply) the TCP close, which must be orderly
        (FIN, not RST) unless reset_ok.  Returns (code or None, reason
        bytes, frames before it)."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                op, fin, payload = self.recv_frame(
                    max(0.0, deadline - time.monotonic()))
            except ConnectionResetError:
                raise SeatcastError("connection reset before a close frame "
                                    "(frames so far %r)" % before) from None
            except EOFError:
                raise SeatcastError("TCP closed without a close frame "
                                    "(frames so far %r)" % before) from None
            if op == OP_CLOSE:
                break
            before.append((op, payload))
        assert fin
        assert self.buf == b"", "bytes after the close frame: %r" % self.buf
        if reply:
            self.send(frame(OP_CLOSE, payload[:2]))
        tail = read_until_eof(self.s, max(0.5, deadline - time.monotonic()),
                              reset_ok=reset_ok)
        assert tail == b"", "bytes after the close frame: %r" % tail
        self.s.close()
        if not payload:
            return None, b"", before
        assert len(payload) >= 2
        return struct.unpack("!H", payload[:2])[0], payload[2:], before

    def close(self):
        self.s.close()


def close_code(ws):
    code, _, _ = ws.expect_close()
    return code


# ------------------------------------------------------------------ #
# Servers and the after-test check                                     #

def module_server(tmp_path_factory, name, args, workers=2):
    s = Seatcast(tmp_path_factory.mktemp(name), workers=workers, args=args)
    s.start()
    s.tok = s.token(sub="1")
    return s


def stop_server(s):
    s.finish(timeout=15)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = None
    try:
        s = module_server(tmp_path_factory, "rules",
                          ["--max-message-size", str(MAX_MSG)])
        yield s
    finally:
        if s is not None:
            stop_server(s)


@pytest.fixture(scope="module")
def timing_srv(tmp_path_factory):
    s = None
    try:
        s = module_server(tmp_path_factory, "timing",
                          ["--ping-interval", "1", "--handshake-timeout", "1",
                           "--allowed-origin", "http://good.example"])
        yield s
    finally:
        if s is not None:
            stop_server(s)


def assert_serving(s, before):
    """Same master and workers as `before`, and a new client is greeted
    and answered."""
    assert s.running(), "the master exited:\n" + s.log_tail()

    async def fresh():
        ws, _ = await ws_open(s, token=s.tok)
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


@pytest.fixture(autouse=True)
def server_unharmed(request):
    servers = [request.getfixturevalue(n) for n in ("srv", "timing_srv")
               if n in request.fixturenames]
    before = [(s.master_pid, s.worker_pids()) for s in servers]
    yield
    for s, b in zip(servers, before):
        assert_serving(s, b)


# ------------------------------------------------------------------ #
# SPEC 5, row 1: protocol errors -> 1002                               #

def test_unmasked_client_frame_1002(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":"ping"}', mask=False))
    assert close_code(ws) == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_rsv_bit_1002(srv, rsv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":"ping"}', rsv=rsv))
    assert close_code(ws) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_1002(srv, opcode):
    ws = RawWS.open(srv)
    ws.send(frame(opcode, b"x"))
    assert close_code(ws) == 1002


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_1002(srv, opcode):
    ws = RawWS.open(srv)
    ws.send(frame(opcode, b"", fin=False))
    assert close_code(ws) == 1002


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_bytes_1002(srv, opcode):
    ws = RawWS.open(srv)
    # the header alone proves it: the close comes before any payload
    ws.send(frame(opcode, b"", length=126)[:4])
    assert close_code(ws) == 1002


def test_continuation_without_start_1002(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_CONT, b'{"type":"ping"}'))
    assert close_code(ws) == 1002


def test_continuation_after_complete_message_1002(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":"ping"}'))
    ws.send(frame(OP_CONT, b" "))
    code, _, before = ws.expect_close()
    assert code == 1002
    assert [op for op, _ in before] == [OP_TEXT]  # the pong


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BIN])
def test_new_data_frame_inside_fragmented_message_1002(srv, opcode):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":', fin=False) +
            frame(opcode, b'"ping"}'))
    assert close_code(ws) == 1002


@pytest.mark.parametrize("form,n", [(16, 100), (16, 0), (64, 200),
                                    (64, 65535)])
def test_non_minimal_length_1002(srv, form, n):
    ws = RawWS.open(srv)
    # header and key only: the length form alone is the violation
    data = frame(OP_TEXT, b"", length=n, form=form)
    ws.send(data)
    assert close_code(ws) == 1002


def test_64bit_length_with_top_bit_set_1002(srv):
    ws = RawWS.open(srv)
    ws.send(struct.pack("!BBQ", 0x81, 0xFF, 1 << 63))
    assert close_code(ws) == 1002


# ------------------------------------------------------------------ #
# SPEC 5, row 2: invalid UTF-8 -> 1007                                 #

@pytest.mark.parametrize("bad", [
    b"\xff", b"\xfe", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf",
    b"\xe0\x9f\xbf", b"\xf0\x80\x80\xaf", b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xbf",
    b"\xe2\x82A", b"\xce",  # the last: cut at the end of the message
], ids=lambda b: b.hex())
def test_invalid_utf8_text_1007(srv, bad):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":"' + bad))
    assert close_code(ws) == 1007


@pytest.mark.parametrize("good", [
    "\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\ufffd", "\ufffe",
    "\uffff", "\U00010000", "\U0010ffff", "κόσμε",
], ids=lambda c: "U+%04X" % ord(c[0]))
def test_valid_utf8_boundaries_accepted(srv, good):
    """RFC 3629 boundaries (Autobahn 6.x): each is accepted and comes
    back intact in the unknown_type error."""
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, json.dumps({"type": good},
                                      ensure_ascii=False).encode()))
    op, _, payload = ws.recv_frame()
    assert op == OP_TEXT
    assert json.loads(payload)["message"] == "Unknown message type: " + good
    ws.close()


def test_utf8_split_across_fragments_is_accepted(srv):
    ws = RawWS.open(srv)
    raw = '{"type":"pingé€😀"}'.encode()
    cuts = [raw.index("é".encode()) + 1, raw.index("€".encode()) + 2,
            raw.index("😀".encode()) + 1, raw.index("😀".encode()) + 3]
    parts = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]
    data = frame(OP_TEXT, parts[0], fin=False)
    for p in parts[1:-1]:
        data += frame(OP_CONT, p, fin=False)
    data += frame(OP_CONT, parts[-1])
    # one byte at a time, too: the parser resumes anywhere
    for i in range(len(data)):
        ws.send(data[i:i + 1])
    op, fin, payload = ws.recv_frame()
    msg = json.loads(payload)
    assert msg["message"] == "Unknown message type: pingé€😀"
    ws.send(frame(OP_CLOSE, close_payload(1000)))
    assert close_code(ws) == 1000


def test_invalid_utf8_across_fragments_fails_fast_1007(srv):
    """The bad byte comes in the second fragment; the message is never
    finished, so only checking as the bytes come can see it."""
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":"\xce', fin=False))
    ws.send(frame(OP_CONT, b'A"}', fin=False))  # 0xCE needs 0x80-0xBF
    assert close_code(ws) == 1007


def test_surrogate_split_across_fragments_fails_fast_1007(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":"\xed', fin=False))
    ws.send(frame(OP_CONT, b"\xa0", fin=False))  # ED A0: a surrogate
    assert close_code(ws) == 1007


def test_invalid_utf8_fails_before_the_frame_ends_1007(srv):
    """A frame announcing 1000 bytes whose 10th is bad: the close comes
    although the other 990 are never sent."""
    ws = RawWS.open(srv)
    key = os.urandom(4)
    full = frame(OP_TEXT, b'{"type":"\xff' + b"x" * 990, key=key)
    ws.send(full[:4 + 4 + 10])
    assert close_code(ws) == 1007


# ------------------------------------------------------------------ #
# SPEC 5, rows 3-4: binary -> 1003, too big -> 1009                    #

def test_binary_message_1003(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_BIN, b'{"type":"ping"}'))
    assert close_code(ws) == 1003


def test_fragmented_binary_message_1003(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_BIN, b'{"type":', fin=False))
    assert close_code(ws) == 1003


def test_too_big_single_frame_1009_from_the_header(srv):
    ws = RawWS.open(srv)
    # 126-form header of a 1025-byte text frame, no key, no payload
    ws.send(struct.pack("!BBH", 0x81, 0x80 | 126, MAX_MSG + 1))
    assert close_code(ws) == 1009


def test_too_big_64bit_length_1009(srv):
    ws = RawWS.open(srv)
    ws.send(struct.pack("!BBQ", 0x81, 0x80 | 127, (1 << 63) - 1))
    assert close_code(ws) == 1009


def test_max_message_size_itself_is_accepted(srv):
    ws = RawWS.open(srv)
    msg = b'{"type":"ping"}' + b" " * (MAX_MSG - 15)
    assert len(msg) == MAX_MSG
    ws.send(frame(OP_TEXT, msg[:500], fin=False) +
            frame(OP_CONT, msg[500:]))
    op, _, payload = ws.recv_frame()
    assert json.loads(payload)["type"] == "pong"
    ws.close()


def test_one_byte_fragments_and_empty_fragments(srv):
    """A message in 1-byte fragments with empty ones between, up to the
    size limit, is one message."""
    ws = RawWS.open(srv)
    msg = b'{"type":"ping"}' + b" " * (MAX_MSG - 15)
    data = frame(OP_TEXT, b"", fin=False)
    for i in range(len(msg)):
        data += frame(OP_CONT, msg[i:i + 1], fin=False)
        if i % 100 == 0:
            data += frame(OP_CONT, b"", fin=False)
    data += frame(OP_CONT, b"")
    ws.send(data)
    op, _, payload = ws.recv_frame()
    assert op == OP_TEXT and json.loads(payload)["type"] == "pong"
    ws.close()


def test_too_big_over_fragments_1009(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b"[" + b" " * 599, fin=False))
    ws.send(frame(OP_CONT, b" " * 400, fin=False))  # 1000 so far
    # the third fragment's header pushes it over: no key, no payload
    ws.send(struct.pack("!BB", 0x00, 0x80 | 25))
    assert close_code(ws) == 1009


def send_in_background(sock, data):
    """sendall(data) from a thread (the test reads meanwhile); errors
    once the server has closed are expected and ignored."""
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("opcode,code", [(OP_TEXT, 1009), (OP_BIN, 1003)],
                         ids=["too-big-1009", "binary-1003"])
def test_close_while_client_still_sends_is_orderly(srv, opcode, code):
    """A client still writing a large message when the server refuses it
    must get the close frame and then a FIN.  Closing the socket with the
    client's bytes unread sends a RST instead, and a client that is
    writing may lose the close frame (npm ws then reports 1006 and
    ECONNRESET: test_ws_interop.py::test_npm_ws_large_message_sees_1009).
    Whether bytes are still unread when the server closes is a race, so
    five attempts: every one must end orderly."""
    data = frame(opcode, b"x" * (2 << 20))
    for attempt in range(5):
        ws = RawWS.open(srv)
        sender = send_in_background(ws.s, data)
        try:
            got, _, _ = ws.expect_close(timeout=10)
            assert got == code, "attempt %d" % attempt
        finally:
            ws.close()
            sender.join(5)


# ------------------------------------------------------------------ #
# SPEC 5, row 6: close frames                                          #

@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4999])
def test_close_code_is_echoed(srv, code):
    ws = RawWS.open(srv)
    ws.send(frame(OP_CLOSE, close_payload(code, "bye, é")))
    got, reason, before = ws.expect_close()
    # SPEC 6: the code is echoed, the reason is not (sc_ws_close_frame()
    # with no reason): anything else, such as our reason or bytes from
    # elsewhere, is a fault
    assert (got, reason) == (code, b"")
    assert before == []


def test_empty_close_is_echoed_empty(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_CLOSE, b""))
    code, reason, _ = ws.expect_close()
    assert (code, reason) == (None, b"")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016,
                                  2000, 2999, 5000, 65535])
def test_invalid_close_code_1002(srv, code):
    ws = RawWS.open(srv)
    ws.send(frame(OP_CLOSE, close_payload(code)))
    assert close_code(ws) == 1002


def test_close_reason_invalid_utf8_1002(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_CLOSE, close_payload(1000, b"bad \xff reason")))
    assert close_code(ws) == 1002


def test_one_byte_close_payload_1002(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_CLOSE, b"\x03"))
    assert close_code(ws) == 1002


def test_nothing_is_handled_after_a_close_frame(srv):
    """Data behind the client's close frame (same packet) is ignored."""
    ws = RawWS.open(srv)
    ws.send(frame(OP_CLOSE, close_payload(1000)) +
            frame(OP_TEXT, b'{"type":"ping"}') + frame(OP_PING, b"late"))
    code, _, before = ws.expect_close()
    assert (code, before) == (1000, [])


def test_close_inside_fragmented_message_is_echoed(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":', fin=False) +
            frame(OP_CLOSE, close_payload(1000)))
    assert close_code(ws) == 1000


# ------------------------------------------------------------------ #
# SPEC 5, row 5: ping -> pong with the same payload, before more data  #

@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125))],
                         ids=["empty", "hello", "125-bytes"])
def test_ping_pong_same_payload_before_next_answer(srv, payload):
    ws = RawWS.open(srv)
    ws.send(frame(OP_PING, payload) + frame(OP_TEXT, b'{"type":"ping"}'))
    op, fin, got = ws.recv_frame()
    assert (op, fin, got) == (OP_PONG, True, payload)
    op, _, text = ws.recv_frame()
    assert op == OP_TEXT and json.loads(text)["type"] == "pong"
    ws.close()


def test_ping_split_over_many_reads(srv):
    ws = RawWS.open(srv)
    data = frame(OP_PING, b"slowly")
    for i in range(len(data)):
        ws.send(data[i:i + 1])
    assert ws.recv_frame() == (OP_PONG, True, b"slowly")
    ws.close()


def test_ping_inside_fragmented_message(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_TEXT, b'{"type":', fin=False) +
            frame(OP_PING, b"mid") + frame(OP_CONT, b'"ping"}'))
    assert ws.recv_frame() == (OP_PONG, True, b"mid")
    op, _, text = ws.recv_frame()
    assert json.loads(text)["type"] == "pong"
    ws.close()


def test_unsolicited_pong_is_ignored(srv):
    ws = RawWS.open(srv)
    ws.send(frame(OP_PONG, b"unasked") + frame(OP_TEXT, b'{"type":"ping"}'))
    op, _, text = ws.recv_frame()
    assert op == OP_TEXT and json.loads(text)["type"] == "pong"
    ws.close()


# ------------------------------------------------------------------ #
# SPEC 5, row 7: server pings; silent clients are dropped              #

def run_clients(clients, seconds, answer):
    """Reads every client for `seconds` (select, no sleeping), answering
    pings with pongs for those in `answer`.  Returns {client: [times of
    the pings seen]} and {client: time TCP closed} (since the start)."""
    t0 = time.monotonic()
    pings = {c: [] for c in clients}
    closed = {}
    while time.monotonic() - t0 < seconds:
        live = [c for c in clients if c not in closed]
        if not live:
            break
        r, _, _ = select.select([c.s for c in live], [], [], 0.05)
        for c in live:
            if c.s not in r:
                continue
            now = time.monotonic() - t0
            try:
                frames = c.pump()
            except EOFError:
                closed[c] = now
                continue
            for op, fin, payload in frames:
                assert op == OP_PING and fin, (op, payload)
                pings[c].append(now)
                if c in answer:
                    c.send(frame(OP_PONG, payload))
    return pings, closed


def still_served(ws):
    ws.send(frame(OP_TEXT, b'{"type":"ping"}'))
    while True:
        op, _, payload = ws.recv_frame(timeout=3)
        if op == OP_TEXT:
            return json.loads(payload)["type"] == "pong"
        assert op == OP_PING, op


@pytest.mark.deadline(30)
def test_server_pings_every_interval(timing_srv):
    """--ping-interval 1: a ping each second, to every client."""
    clients = [RawWS.open(timing_srv) for _ in range(4)]
    pings, closed = run_clients(clients, 5.3, answer=set(clients))
    assert closed == {}, "clients answering every ping were dropped " \
        "after %s s (pings seen: %s)" % (sorted(closed.values()),
                                         list(pings.values()))
    for c in clients:
        gaps = [round(b - a, 2) for a, b in zip(pings[c], pings[c][1:])]
        assert pings[c] and pings[c][0] <= 2.2, pings[c]
        assert len(pings[c]) >= 4 and all(0.5 <= g <= 1.5 for g in gaps), \
            "ping times %s (gaps %s)" % (pings[c], gaps)
        assert still_served(c)
        c.close()


@pytest.mark.deadline(30)
def test_silent_client_dropped_answering_client_kept(timing_srv):
    """No frame for 2 x 1 s: dropped (TCP closed).  Clients answering the
    pings (and sending nothing else) stay."""
    silent = RawWS.open(timing_srv)
    answering = [RawWS.open(timing_srv) for _ in range(4)]
    pings, closed = run_clients([silent] + answering, 4.5,
                                answer=set(answering))
    assert silent in closed, "the silent client still connected at 4.5 s"
    # 2 x 1 s without a frame; the worker checks once a second
    assert 1.9 <= closed[silent] <= 3.5, \
        "dropped after %.2f s" % closed[silent]
    assert pings[silent], "the silent client was never pinged"
    dropped = [closed[c] for c in answering if c in closed]
    assert dropped == [], "clients answering every ping were dropped " \
        "after %s s (pings seen: %s)" % (dropped, [pings[c]
                                                   for c in answering])
    for c in answering:
        assert still_served(c)
        c.close()
    silent.close()


# ------------------------------------------------------------------ #
# SPEC 2: HTTP                                                         #

def test_healthz_degraded_503_without_database(srv):
    r = http_exchange(srv.port, http_request("GET", "/healthz", [
        ("Host", "127.0.0.1")]))
    assert r.status_line.startswith("HTTP/1.1 503 ")
    assert r.header("content-type").startswith("application/json")
    body = json.loads(r.body)
    assert body["status"] == "degraded"
    assert b'"status":"degraded"' in r.body


def test_metrics_200_prometheus_text(srv):
    r = http_exchange(srv.port, http_request("GET", "/metrics", [
        ("Host", "127.0.0.1")]))
    assert r.status_line.startswith("HTTP/1.1 200 ")
    ctype = r.header("content-type")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    text = r.body.decode()
    assert "# TYPE seatcast_connections gauge" in text.splitlines()
    assert text.endswith("\n")


def test_unknown_path_404(srv):
    r = http_exchange(srv.port, http_request("GET", "/nope", [
        ("Host", "127.0.0.1")]))
    assert r.status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "get"])
def test_non_get_405(srv, method):
    r = http_exchange(srv.port, http_request(
        method, "/ws", upgrade_headers(srv.port, extra=[
            ("Content-Length", "0")])))
    assert r.status == 405
    assert r.header("allow") == "GET"


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /ws\r\n\r\n",
    b"GET /ws HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET  /ws HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ws HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GET ws HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
], ids=["garbage", "no-version", "extra-token", "double-space", "http2",
        "relative-path", "no-colon", "space-in-name", "tls"])
def test_malformed_request_400(srv, raw):
    r = http_exchange(srv.port, raw)
    assert r.status == 400, r


def test_headers_over_8k_431(srv):
    head = http_request("GET", "/ws", upgrade_headers(srv.port) + [
        ("X-Filler", "a" * 8300)])
    r = http_exchange(srv.port, head)
    assert r.status == 431


def test_headers_far_over_8k_431_and_orderly_close(srv):
    """The 431 must reach a client that is still sending its (huge) head,
    and the connection must end with a FIN, not a RST (five attempts, as
    above)."""
    head = http_request("GET", "/ws", upgrade_headers(srv.port) + [
        ("X-Filler", "a" * (2 << 20))])
    for attempt in range(5):
        with connect(srv.port) as s:
            sender = send_in_background(s, head)
            try:
                data = read_until_eof(s, timeout=10, reset_ok=False)
            finally:
                s.close()
                sender.join(5)
        assert data.startswith(b"HTTP/1.1 431 "), data[:100]


def test_headers_just_under_8k_accepted(srv):
    hdrs = upgrade_headers(srv.port)
    base = len(http_request("GET", "/ws?token=" + srv.tok, hdrs +
                            [("X-Filler", "")]))
    filler = 8192 - base
    with connect(srv.port) as s:
        s.sendall(http_request("GET", "/ws?token=" + srv.tok, hdrs + [
            ("X-Filler", "a" * filler)]))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 101 "), data


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_websocket_version_not_13_426(srv, version):
    hdrs = [h for h in upgrade_headers(srv.port)
            if h[0] != "Sec-WebSocket-Version"]
    r = http_exchange(srv.port, http_request(
        "GET", "/ws?token=" + srv.tok,
        hdrs + [("Sec-WebSocket-Version", version)]))
    assert r.status == 426
    assert r.header("sec-websocket-version") == "13"


@pytest.mark.parametrize("drop,replace", [
    ("Upgrade", None),
    ("Upgrade", ("Upgrade", "h2c")),
    ("Connection", None),
    ("Connection", ("Connection", "keep-alive")),
    ("Host", None),
    ("Sec-WebSocket-Key", None),
    ("Sec-WebSocket-Version", None),
    (None, ("Content-Length", "5")),
    (None, ("Transfer-Encoding", "chunked")),
    (None, ("Host", "second.example")),
], ids=["no-upgrade", "upgrade-h2c", "no-connection", "connection-keepalive",
        "no-host", "no-key", "no-version", "body-length", "body-chunked",
        "two-hosts"])
def test_invalid_upgrade_400(srv, drop, replace):
    hdrs = [h for h in upgrade_headers(srv.port) if h[0] != drop]
    if replace:
        hdrs.append(replace)
    r = http_exchange(srv.port, http_request("GET", "/ws?token=" + srv.tok,
                                             hdrs))
    assert r.status == 400, r


def test_upgrade_headers_case_insensitive_101(srv):
    hdrs = [("host", "x"), ("upgrade", "WebSocket"),
            ("connection", "keep-alive, UPGRADE"),
            ("sec-websocket-key", base64.b64encode(os.urandom(16)).decode()),
            ("sec-websocket-version", "13")]
    with connect(srv.port) as s:
        s.sendall(http_request("GET", "/ws?token=" + srv.tok, hdrs))
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 101 "), data


@pytest.mark.parametrize("key", [
    base64.b64encode(b"\x01" * 15).decode(),   # 15 bytes, 20 characters
    base64.b64encode(b"\x01" * 17).decode(),   # 17 bytes, 24 characters
    "!!!!!!!!!!!!!!!!!!!!!!==",                 # not base64
    "",
], ids=["15-bytes", "17-bytes", "not-base64", "empty"])
def test_bad_websocket_key_400(srv, key):
    r = http_exchange(srv.port, http_request(
        "GET", "/ws?token=" + srv.tok, upgrade_headers(srv.port, key=key)))
    assert r.status == 400, r


@pytest.mark.parametrize("eid", ["0", "abc", "9007199254740992", "-1",
                                 "01", "1.5", "", "99999999999999999999"])
def test_bad_event_id_400(srv, eid):
    r = http_exchange(srv.port, http_request(
        "GET", "/ws/events/%s?token=%s" % (eid, srv.tok),
        upgrade_headers(srv.port)))
    assert r.status == 400, r


def test_bad_escape_in_token_400(srv):
    r = http_exchange(srv.port, http_request(
        "GET", "/ws?token=%ZZ", upgrade_headers(srv.port)))
    assert r.status == 400, r


def test_largest_event_id_accepted(srv):
    ws = RawWS.open(srv, path="/ws/events/9007199254740991", greet=False)
    op, _, text = ws.recv_frame()
    msg = json.loads(text)
    assert msg["type"] == "connection_established"
    assert msg["eventId"] == 9007199254740991
    op, _, text = ws.recv_frame()  # no database: the event is unknown
    assert json.loads(text)["code"] == "not_found"
    ws.close()


def test_request_byte_by_byte_then_frames_in_the_same_packet(srv):
    """The head may come in any pieces; frames sent right behind it (in
    the same write) are not lost."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = http_request("GET", "/ws?token=" + srv.tok,
                        upgrade_headers(srv.port, key))
    with connect(srv.port) as s:
        for i in range(len(head) - 1):
            s.send(head[i:i + 1])
        s.sendall(head[-1:] + frame(OP_PING, b"early") +
                  frame(OP_TEXT, b'{"type":"ping"}'))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        head_resp, _, rest = data.partition(b"\r\n\r\n")
        assert head_resp.startswith(b"HTTP/1.1 101 "), data
        ws = RawWS(s, rest)
        op, _, text = ws.recv_frame()
        assert json.loads(text)["type"] == "connection_established"
        assert ws.recv_frame() == (OP_PONG, True, b"early")
        op, _, text = ws.recv_frame()
        assert json.loads(text)["type"] == "pong"


@pytest.mark.parametrize("token,reason", [
    ("", b"Authentication required"),
    ("e30.e30.", b"Invalid token"),
], ids=["none", "invalid"])
def test_auth_failure_close_1008_only(srv, token, reason):
    """SPEC 3: 101, then one close frame and nothing else; the server
    waits for the client's close and then closes TCP."""
    ws = RawWS.open(srv, token=token, greet=False)
    t0 = time.monotonic()
    code, got, before = ws.expect_close(reply=True)
    assert (code, got, before) == (1008, reason, [])
    assert time.monotonic() - t0 < 1.5


def test_server_close_without_client_reply_ends_tcp(srv):
    """A client that never answers the server's close frame is dropped
    (about 2 s later)."""
    ws = RawWS.open(srv, token="", greet=False)
    op, _, payload = ws.recv_frame()
    assert op == OP_CLOSE and payload[:2] == b"\x03\xf0"
    t0 = time.monotonic()
    tail = read_until_eof(ws.s, timeout=5)
    assert tail == b""
    assert time.monotonic() - t0 <= 3.5
    ws.close()


def test_origin_not_allowed_403_allowed_101(timing_srv):
    def upgrade(origin):
        return http_request("GET", "/ws?token=" + timing_srv.tok,
                            upgrade_headers(timing_srv.port, extra=[
                                ("Origin", origin)]))
    r = http_exchange(timing_srv.port, upgrade("http://evil.example"))
    assert r.status == 403
    with connect(timing_srv.port) as s:
        s.sendall(upgrade("http://good.example"))
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 101 "), data


def test_handshake_timeout_drops_a_stalled_request(timing_srv):
    with connect(timing_srv.port) as s:
        s.sendall(b"GET /ws?token=" + timing_srv.tok.encode() +
                  b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        t0 = time.monotonic()
        data = read_until_eof(s, timeout=5)
        elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed <= 2.5, "closed after %.2f s" % elapsed
    assert not data.startswith(b"HTTP/1.1 101"), data


@pytest.mark.deadline(60)
def test_max_connections_503(make_server):
    s = make_server(workers=2, args=["--max-connections", "3"])
    tok = s.token()
    s.tok = tok
    ws = [RawWS.open(s) for _ in range(3)]
    r = http_exchange(s.port, http_request("GET", "/ws?token=" + tok,
                                           upgrade_headers(s.port)))
    assert r.status == 503, r
    # one leaves: there is room again
    ws.pop().close()

    def try_open():
        try:
            return RawWS.open(s)
        except AssertionError:  # still 503
            return None
    ws.append(wait_for(try_open, 5, "a 101 once a client left"))
    for w in ws:
        w.close()


# ------------------------------------------------------------------ #
# Robustness: garbage                                                  #

def garbage_frames(rng):
    """Frames with random bits: opcodes, flags, masks, lengths."""
    out = b""
    for _ in range(rng.randint(1, 6)):
        b0 = rng.randrange(256)
        if rng.random() < 0.5:
            b0 &= 0x8F  # mostly no RSV bits, to get further in
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        masked = rng.random() < 0.9
        n = len(payload)
        if rng.random() < 0.2:
            n = rng.choice([126, 127, 125, 65536, 2 ** 40])
        form = rng.choice([None, None, None, 16, 64])
        if form == 16 and n >= 65536:
            form = 64
        out += frame(b0 & 0x0F, payload, fin=bool(b0 & 0x80), rsv=b0 & 0x70,
                     mask=masked, length=n, form=form)
    return out


def garbage_http(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
    if kind == 1:  # a plausible head with random bytes inside
        head = bytearray(http_request("GET", "/ws", upgrade_headers(1)))
        for _ in range(rng.randint(1, 8)):
            head[rng.randrange(len(head))] = rng.randrange(256)
        return bytes(head)
    if kind == 2:  # random tokens and separators
        alphabet = [b"GET", b" ", b"/", b"ws", b"\r\n", b":", b"\n", b"\r",
                    b"HTTP/1.1", b"Host", b"Upgrade", b"%", b"?", b"\x00",
                    b"token=", b"\xff", b"\t"]
        return b"".join(rng.choice(alphabet)
                        for _ in range(rng.randint(1, 80)))
    return b"GET /ws?token=%s HTTP/1.1\r\n" % bytes(
        rng.randrange(33, 127) for _ in range(rng.randint(0, 300)))


@pytest.mark.deadline(60)
def test_200_garbage_connections(srv):
    seed = int.from_bytes(os.urandom(4), "big")
    print("garbage seed: %d" % seed)
    rng = random.Random(seed)
    before = (srv.master_pid, srv.worker_pids())
    socks = []
    try:
        for i in range(200):
            s = connect(srv.port)
            if i % 2 == 0:
                data = garbage_http(rng)
            else:  # a real upgrade, then garbage frames
                s.sendall(http_request("GET", "/ws?token=" + srv.tok,
                                       upgrade_headers(srv.port)))
                data = garbage_frames(rng)
            # random splits
            pos = 0
            while pos < len(data):
                step = rng.randint(1, max(1, len(data) - pos))
                try:
                    s.sendall(data[pos:pos + step])
                except (BrokenPipeError, ConnectionResetError):
                    break
                pos += step
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            socks.append(s)
            if len(socks) >= 50:  # drain and close in batches
                for t in socks:
                    read_until_eof(t, timeout=IO_TIMEOUT)
                    t.close()
                socks = []
        for t in socks:
            read_until_eof(t, timeout=IO_TIMEOUT)
    finally:
        for t in socks:
            t.close()
    assert_serving(srv, before)
    # and no connection was left behind in the registry
    wait_for(lambda: srv.stats()["totals"]["connections"] == 0, 5,
             "no connection left in the registry")
