"""rawws.py - a small raw WebSocket client for fault and load tests.

Standard library only.  Two shapes:

    c = RawWs.connect(port, "/ws/events/7", token, rcvbuf=1024)
    c.send_text('{"type":"ping"}')            # masked text frame
    op, payload = c.recv_frame(timeout=5)      # one frame, blocking
    c.stop_reading() ... c.drain()             # a client that lags

    swarm = Swarm()                            # thousands of clients in
    swarm.open(port, path, token, n=1000)      # one selectors loop
    swarm.run_until(lambda: ..., timeout=20, what="...")

The client side of RFC 6455 as a careful, minimal client does it: a
random Sec-WebSocket-Key, the 101 checked (Sec-WebSocket-Accept), every
frame it sends masked, server pings answered with a pong, close frames
parsed into (code, reason).  Nothing is validated beyond that: the tests
check what the server sends.  parse_frames() never trusts a length it
has not got the bytes for.
"""

import base64
import errno
import hashlib
import json
import os
import selectors
import socket
import struct
import time

__all__ = ["RawWs", "Swarm", "SwarmConn", "parse_frames", "encode_frame",
           "ws_request", "OP_TEXT", "OP_CLOSE", "OP_PING", "OP_PONG"]

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_request(port, path, token=None, key=None, host="127.0.0.1"):
    """The upgrade request (bytes) and its key."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    if token:
        path += ("&" if "?" in path else "?") + "token=" + token
    req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key))
    return req.encode(), key


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())


def _mask(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^
            int.from_bytes(k, "big")).to_bytes(n, "big")


def encode_frame(op, payload=b"", fin=True, mask=True):
    """One client frame (masked unless mask=False)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _mask(payload, key)


def parse_frames(buf):
    """Complete server frames at the start of buf: ([(op, payload)], the
    bytes left over).  Server frames are unmasked; a masked one is still
    decoded."""
    out = []
    pos, n = 0, len(buf)
    while n - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        ln = b1 & 0x7F
        hdr = 2
        if ln == 126:
            if n - pos < 4:
                break
            ln = struct.unpack_from("!H", buf, pos + 2)[0]
            hdr = 4
        elif ln == 127:
            if n - pos < 10:
                break
            ln = struct.unpack_from("!Q", buf, pos + 2)[0]
            hdr = 10
        key = None
        if b1 & 0x80:
            if n - pos < hdr + 4:
                break
            key = bytes(buf[pos + hdr:pos + hdr + 4])
            hdr += 4
        if n - pos < hdr + ln:
            break
        payload = bytes(buf[pos + hdr:pos + hdr + ln])
        if key is not None:
            payload = _mask(payload, key)
        out.append((b0 & 0x0F, payload))
        pos += hdr + ln
    return out, buf[pos:]


def close_info(payload):
    """(code, reason) of a close frame's payload; (None, "") if empty.
    A reason that is not UTF-8 (RFC 6455 7.1.6) fails the test: the
    server must never send one."""
    if len(payload) < 2:
        return None, ""
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise WsError("the server sent a close reason that is not UTF-8: "
                      "%r (%s)" % (payload[2:], e)) from None
    return struct.unpack("!H", payload[:2])[0], reason


class WsError(AssertionError):
    pass


# ------------------------------------------------------------------ #
# One blocking client                                                  #

class RawWs:
    """A client on a blocking socket.  rcvbuf (bytes) is set before
    connect(), so that the TCP window is small from the start."""

    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.close_frame = None  # (code, reason) once received
        self.eof = False

    @classmethod
    def connect(cls, port, path="/ws", token=None, rcvbuf=None,
                timeout=10, host="127.0.0.1"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, port))
        req, key = ws_request(port, path, token, host=host)
        s.sendall(req)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise WsError("no upgrade response within %s s" % timeout)
            chunk = s.recv(4096)
            if not chunk:
                raise WsError("closed during the upgrade: %r" % buf)
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise WsError("upgrade refused: %r" % head)
        if accept_of(key) not in head:
            raise WsError("bad Sec-WebSocket-Accept in %r" % head)
        return cls(s, rest)

    def send_frame(self, op, payload=b"", fin=True):
        self.sock.sendall(encode_frame(op, payload, fin))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_close(self, code=1000, reason=""):
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def recv_frame(self, timeout=5):
        """The next frame as (op, payload); pings are answered and
        returned too.  WsError on timeout or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2 and len(self.buf) >= _frame_size(self.buf):
                size = _frame_size(self.buf)
                (op, payload), = parse_frames(self.buf[:size])[0]
                del self.buf[:size]
                self._auto(op, payload)
                return op, payload
            if self.eof:
                raise WsError("EOF while waiting for a frame")
            left = deadline - time.monotonic()
            if left <= 0:
                raise WsError("no frame within %s s" % timeout)
            self._fill(left)

    def recv_json(self, timeout=5):
        """The next text message as a dict (control frames skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self.recv_frame(max(0.01,
                                              deadline - time.monotonic()))
            if op == OP_TEXT:
                return json.loads(payload)
            if op == OP_CLOSE:
                raise WsError("closed %r while waiting for a message"
                              % (close_info(payload),))

    def _auto(self, op, payload):
        if op == OP_CLOSE and self.close_frame is None:
            self.close_frame = close_info(payload)
        elif op == OP_PING:
            try:
                self.send_frame(OP_PONG, payload)
            except OSError:
                pass

    def drain(self, idle=1.0, limit=60.0):
        """Reads every frame until the server sends nothing for `idle` s,
        closes, or `limit` s pass: the list of (op, payload)."""
        out = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            frames, rest = parse_frames(self.buf)
            self.buf = bytearray(rest)
            for op, payload in frames:
                self._auto(op, payload)
                out.append((op, payload))
            if self.eof or self.close_frame is not None:
                # what follows a close frame is nothing but EOF
                if self.close_frame is not None and not self.eof:
                    self._fill(0.2)
                    frames, rest = parse_frames(self.buf)
                    self.buf = bytearray(rest)
                    out += frames
                break
            if not self._fill(idle):
                if not self.eof:
                    break
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _frame_size(buf):
    """Size in bytes of the first frame of buf (len(buf) >= 2), or a
    size larger than buf while its header is incomplete."""
    b1 = buf[1]
    ln, hdr = b1 & 0x7F, 2
    if ln == 126:
        if len(buf) < 4:
            return len(buf) + 1
        ln, hdr = struct.unpack_from("!H", buf, 2)[0], 4
    elif ln == 127:
        if len(buf) < 10:
            return len(buf) + 1
        ln, hdr = struct.unpack_from("!Q", buf, 2)[0], 10
    if b1 & 0x80:
        hdr += 4
    return hdr + ln


# ------------------------------------------------------------------ #
# Many clients in one loop                                             #

class SwarmConn:
    """One client of a Swarm.  By default its text payloads are kept in
    .texts (bytes); on_text, if set, is called instead.  Counters: .ntext,
    and .closed (code, reason) once a close frame came, .eof at EOF."""

    __slots__ = ("sock", "state", "req", "key", "inbuf", "out", "texts",
                 "on_text", "ntext", "close_frame", "eof", "error", "tag",
                 "established", "local_port")

    def __init__(self, sock, req, key, tag=None):
        self.sock = sock
        self.state = "connecting"
        self.req = req
        self.key = key
        self.inbuf = bytearray()
        self.out = bytearray()
        self.texts = []
        self.on_text = None
        self.ntext = 0
        self.close_frame = None
        self.eof = False
        self.error = None
        self.tag = tag
        self.established = False
        self.local_port = None

    @property
    def open(self):
        return self.state == "open"


class Swarm:
    """Non-blocking clients driven by one selectors loop in the calling
    thread (run_until / pump)."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.conns = []

    def open(self, port, path, token, n, tag=None, host="127.0.0.1"):
        """Starts n connections (handshakes complete in run_until)."""
        made = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                raise OSError(rc, os.strerror(rc))
            req, key = ws_request(port, path, token, host=host)
            c = SwarmConn(s, req, key, tag)
            self.sel.register(s, selectors.EVENT_WRITE, c)
            self.conns.append(c)
            made.append(c)
        return made

    def _want(self, c):
        ev = selectors.EVENT_READ
        if c.state == "connecting" or c.out:
            ev |= selectors.EVENT_WRITE
        try:
            self.sel.modify(c.sock, ev, c)
        except (KeyError, ValueError):
            pass

    def send(self, c, op, payload):
        c.out += encode_frame(op, payload)
        self._flush(c)

    def send_text(self, c, text):
        self.send(c, OP_TEXT, text)

    def _flush(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                break
            except OSError as e:
                self._drop(c, e)
                return
            del c.out[:n]
        self._want(c)

    def _drop(self, c, err=None):
        if c.state == "closed":
            return
        c.state = "closed"
        if err is not None and c.error is None:
            c.error = err
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def close(self, c, abrupt=False):
        """Sends a close frame (abrupt: none) and closes the socket."""
        if c.state == "open" and not abrupt:
            try:
                c.sock.send(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
            except OSError:
                pass
        self._drop(c)

    def close_all(self):
        for c in self.conns:
            self._drop(c)
        self.conns = []

    def _on_readable(self, c):
        for _ in range(8):
            try:
                chunk = c.sock.recv(262144)
            except BlockingIOError:
                return
            except OSError as e:
                c.eof = True
                self._drop(c, e)
                return
            if not chunk:
                c.eof = True
                self._drop(c)
                return
            c.inbuf += chunk
            if c.state == "handshake":
                end = c.inbuf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = bytes(c.inbuf[:end])
                del c.inbuf[:end + 4]
                if not head.startswith(b"HTTP/1.1 101") or \
                        accept_of(c.key) not in head:
                    self._drop(c, WsError("upgrade refused: %r" % head))
                    return
                c.state = "open"
            if c.state == "open":
                self._frames(c)
                if c.state != "open":
                    return
            if len(chunk) < 262144:
                return

    def _frames(self, c):
        frames, rest = parse_frames(c.inbuf)
        if not frames:
            return
        c.inbuf = bytearray(rest)
        for op, payload in frames:
            if op == OP_TEXT:
                c.ntext += 1
                if not c.established:
                    c.established = payload.startswith(
                        b'{"type":"connection_established"')
                if c.on_text is not None:
                    c.on_text(c, payload)
                else:
                    c.texts.append(payload)
            elif op == OP_PING:
                c.out += encode_frame(OP_PONG, payload)
                self._flush(c)
            elif op == OP_CLOSE:
                c.close_frame = close_info(payload)
                try:
                    c.sock.send(encode_frame(OP_CLOSE, payload[:2]))
                except OSError:
                    pass
                self._drop(c)
                return

    def pump(self, timeout=0.05):
        for key, ev in self.sel.select(timeout):
            c = key.data
            if c.state == "closed":
                continue
            if ev & selectors.EVENT_WRITE:
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET,
                                            socket.SO_ERROR)
                    if err:
                        self._drop(c, OSError(err, os.strerror(err)))
                        continue
                    c.local_port = c.sock.getsockname()[1]
                    c.state = "handshake"
                    c.out += c.req
                self._flush(c)
                if c.state == "closed":
                    continue
            if ev & selectors.EVENT_READ:
                self._on_readable(c)

    def run_until(self, cond, timeout, what, interval=0.02):
        """Pumps until cond() is true; WsError after timeout."""
        deadline = time.monotonic() + timeout
        last_check = 0.0
        while True:
            self.pump(interval)
            now = time.monotonic()
            if now - last_check >= interval:
                last_check = now
                if cond():
                    return
            if now >= deadline:
                raise WsError("timed out after %.1f s waiting for %s"
                              % (timeout, what))

    def run_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
