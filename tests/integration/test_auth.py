"""test_auth.py - seatcast's authentication, end to end (SPEC sections 2, 3,
5 and 8; issue 5).

Real servers (server.Seatcast), real PostgreSQL where the database takes
part (pg.PgCluster with sql/schema.sql and sql/notify.sql), and tokens made
by tools nobody here wrote: npm jsonwebtoken (node/mint.mjs) signs HS*,
RS256 and ES256 tokens with keys from `openssl genpkey`.  Two kinds of
client:

- RawWs, a WebSocket client on a plain socket that records the HTTP answer
  and every frame the server sends, so that "101, then exactly one close
  frame 1008 + reason, then EOF" is checked byte for byte;
- websockets 10.4 (Debian's), a third-party client, for the happy paths.

Every wait polls (server.wait_for / async_wait_for) against a deadline;
every server is killed with its whole tree at teardown.  Figures
(revocation latency, expiry timing, repair time) are printed: pytest shows
them with -s or -rP, and for failures.

Run:
    make && make node-deps && SEATCAST_BIN=$PWD/build/seatcast \
        /usr/bin/python3 -m pytest -v -p no:cacheprovider \
        tests/integration/test_auth.py
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.parse

import pytest
import websockets

from pg import PgCluster
from server import (ROOT, Seatcast, SeatcastError, run_seatcast,
                    seatcast_bin, tcp_peer_ports, wait_for, ws_closed, ws_open,
                    ws_ping, ws_recv_json)

NODE_DIR = os.path.join(ROOT, "tests", "integration", "node")
MINT = os.path.join(NODE_DIR, "mint.mjs")
SECRET = ("test-secret-0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123")  # Seatcast's default SEATCAST_JWT_SECRET
# secret files' contents (HS256 needs 32 bytes at least: RFC 7518 3.2)
KEY_A = "secret-A-0123456789-0123456789abcdef0123456789abcdef"
KEY_B = "secret-B-9876543210-0123456789abcdef0123456789abcdef"
KEY_FILE = "file-secret-xyz-0123456789abcdef0123456789abcdef"
ISSUER = "https://booking.example.test"
AUDIENCE = "seatcast"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


# ------------------------------------------------------------------ #
# Tokens from npm jsonwebtoken                                         #

def node_ok():
    return os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "jsonwebtoken"))


def mint_many(jobs, timeout=30):
    """Runs node/mint.mjs on a list of jobs (see that file); the results."""
    if not node_ok():
        raise SeatcastError("npm jsonwebtoken is not installed: run "
                            "`make node-deps`")
    p = subprocess.run(["node", MINT], input=json.dumps(jobs),
                       capture_output=True, text=True, timeout=timeout,
                       cwd=NODE_DIR)
    if p.returncode != 0:
        raise SeatcastError("mint.mjs failed: %s" % p.stderr.strip())
    out = json.loads(p.stdout)
    assert len(out) == len(jobs)
    return out


def mint(payload, alg="HS256", key=SECRET, key_file=None, header=None):
    job = {"alg": alg, "payload": payload}
    if key_file is not None:
        job["keyFile"] = str(key_file)
    elif alg != "none":
        job["key"] = key
    if header:
        job["header"] = header
    return mint_many([job])[0]


def verify_with_node(token, key=SECRET, algorithms=("HS256",)):
    """Claims of token as jsonwebtoken verifies them."""
    return mint_many([{"verify": token, "key": key,
                       "algorithms": list(algorithms)}])[0]


def now():
    return int(time.time())


def claims_of(token):
    """The payload of a JWT, decoded here (no verification)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def openssl_keypair(tmp_path, kind):
    """(private PEM path, public PEM path) made by `openssl genpkey`."""
    priv = tmp_path / ("%s-private.pem" % kind)
    pub = tmp_path / ("%s-public.pem" % kind)
    if kind == "rsa":
        gen = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    else:
        gen = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "genpkey"] + gen + ["-out", str(priv)],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out",
                    str(pub)], check=True, capture_output=True, timeout=30)
    return priv, pub


# ------------------------------------------------------------------ #
# A recording WebSocket client on a raw socket                         #

class RawWs:
    """One upgrade on a plain TCP socket.  .status, .headers (lowercase
    name -> list of values), .head (the raw response head); for a 101,
    frames are read with recv_frame()."""

    def __init__(self, srv, path="/ws", token=None, headers=(), timeout=5):
        self.key = base64.b64encode(os.urandom(16)).decode()
        target = path
        if token is not None:
            target += ("&" if "?" in path else "?") + "token=" + \
                urllib.parse.quote(token, safe="")
        lines = ["GET %s HTTP/1.1" % target,
                 "Host: 127.0.0.1:%d" % srv.port,
                 "Upgrade: websocket",
                 "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % self.key,
                 "Sec-WebSocket-Version: 13"]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock = socket.create_connection(("127.0.0.1", srv.port),
                                             timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise SeatcastError("connection closed before the response "
                                    "head: %r" % self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        status_line, *hlines = self.head.split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hlines:
            k, v = h.split(":", 1)
            self.headers.setdefault(k.strip().lower(), []).append(v.strip())

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def accept_ok(self):
        want = base64.b64encode(hashlib.sha1(
            (self.key + WS_GUID).encode()).digest()).decode()
        return self.headers.get("sec-websocket-accept") == [want]

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _need(self, n):
        while len(self.buf) < n:
            if not self._fill():
                return False
        return True

    def recv_frame(self):
        """(opcode, fin, payload) of the next server frame, None at EOF.
        A socket timeout raises."""
        if not self._need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "the server masked a frame"
        n, off = b1 & 0x7F, 2
        if n == 126:
            if not self._need(4):
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if not self._need(10):
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not self._need(off + n):
            return None
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return (b0 & 0x0F, bool(b0 & 0x80), payload)

    def send_frame(self, opcode, payload=b""):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        else:
            hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + body)

    def send_json(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj).encode())

    def recv_json(self):
        f = self.recv_frame()
        if f is None:
            raise SeatcastError("EOF instead of a message")
        if f[0] != OP_TEXT:
            raise SeatcastError("expected a text frame, got %r" % (f,))
        return json.loads(f[2])

    def frames_until_eof(self):
        """Every frame up to EOF; a close frame is echoed (as a client
        does), after which the server must close TCP."""
        frames = []
        while True:
            f = self.recv_frame()
            if f is None:
                return frames
            frames.append(f)
            if f[0] == OP_CLOSE:
                try:
                    self.send_frame(OP_CLOSE, f[2][:2])
                except OSError:
                    pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def close_payload(code, reason):
    return struct.pack("!H", code) + reason.encode()


def expect_refused(srv, reason, why=None, path="/ws", token=None,
                   headers=(), addr="127.0.0.1"):
    """Upgrades with the given credentials and checks SPEC 3's refusal:
    101 (with a right Sec-WebSocket-Accept), then exactly one frame, close
    1008 `reason`, then EOF; with `why`, the log says that cause (a regex)
    for this connection.  Returns the RawWs."""
    mark = srv.log_mark()
    ws = RawWs(srv, path=path, token=token, headers=headers)
    try:
        assert ws.status == 101, ws.head
        assert ws.accept_ok(), ws.head
        frames = ws.frames_until_eof()
    finally:
        ws.close()
    assert frames == [(OP_CLOSE, True, close_payload(1008, reason))], frames
    assert ws.eof
    if why is not None:
        srv.wait_log(r"authentication failed for %s: (%s)$"
                     % (re.escape(addr), why), since=mark)
    return ws


def expect_accepted(srv, path="/ws", token=None, headers=()):
    """Upgrades and reads connection_established; the open RawWs."""
    ws = RawWs(srv, path=path, token=token, headers=headers)
    assert ws.status == 101, ws.head
    assert ws.accept_ok(), ws.head
    hello = ws.recv_json()
    assert hello["type"] == "connection_established", hello
    ws.hello = hello
    return ws


def raw_ping(ws):
    """{"type":"ping"} -> pong, skipping other messages."""
    ws.send_json({"type": "ping"})
    while True:
        m = ws.recv_json()
        if m["type"] == "pong":
            return m


def assert_no_token_in_log(srv, tokens):
    """No token, and no signature part of one, anywhere in the log file
    (every start of this server appends to its own file)."""
    with open(srv.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    for tok in tokens:
        assert tok not in log, "a token reached the log"
        parts = tok.split(".")
        if len(parts) == 3 and len(parts[2]) >= 8:
            assert parts[2] not in log, "a token's signature reached the log"
        if len(parts) >= 2 and len(parts[1]) >= 8:
            assert parts[1] not in log, "a token's payload reached the log"


def worker_of(srv, local_port):
    """Index of the worker that holds the client whose port is local_port."""
    for w in srv.stats()["workers"]:
        if local_port in tcp_peer_ports(w["pid"], srv.port):
            return w["index"]
    return None


def run(coro):
    return asyncio.run(coro)


def teardown_server(srv):
    srv.finish(timeout=15)


# ------------------------------------------------------------------ #
# Fixtures                                                             #

@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    cluster = PgCluster(tmp_path_factory.mktemp("pg"))
    try:
        cluster.start()
        cluster.psql_file(os.path.join(ROOT, "sql", "schema.sql"))
        cluster.psql_file(os.path.join(ROOT, "sql", "notify.sql"))
        yield cluster
    finally:
        cluster.cleanup()


def add_event(pg, name, capacity=100):
    return int(pg.query_value(
        "INSERT INTO events (name, starts_at, seat_capacity) VALUES "
        "('%s', now() + interval '1 day', %d) RETURNING id"
        % (name, capacity)))


def wait_db(srv, timeout=15):
    """Until /healthz is 200: the listener is connected and has read the
    seat state and the revoked tokens (listener.c sets db_state last)."""
    wait_for(lambda: srv.http_get("/healthz")[0] == 200, timeout,
             "the listener to connect to PostgreSQL")


@pytest.fixture(scope="module")
def strict_srv(tmp_path_factory):
    """An HS256 server that checks issuer and audience with no leeway, and
    logs at debug level (so that even debug lines are searched for
    tokens)."""
    srv = Seatcast(tmp_path_factory.mktemp("strict"), workers=2,
                   binary=seatcast_bin(),
                   args=["--jwt-leeway", "0", "--jwt-issuer", ISSUER,
                         "--jwt-audience", AUDIENCE, "--log-level", "debug"])
    srv.start()
    yield srv
    teardown_server(srv)


def good_claims(**over):
    c = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}
    c.update(over)
    return c


# ------------------------------------------------------------------ #
# 1. Every failure: 101, one close frame 1008 + reason, a logged cause  #

def sized_token(target_len):
    """An HS256 token (good claims) of exactly target_len bytes, padded
    with a "pad" claim whose size is worked out from jsonwebtoken's
    output."""
    base = good_claims(pad="")
    probe = mint(base)
    pad = 0
    length = len(probe)
    # each 3 bytes of JSON are 4 characters of base64url
    while length < target_len:
        pad += max(1, (target_len - length) * 3 // 4)
        length = len(mint(good_claims(pad="p" * pad)))
    while length > target_len:
        pad -= 1
        length = len(mint(good_claims(pad="p" * pad)))
    tok = mint(good_claims(pad="p" * pad))
    if len(tok) != target_len:   # base64 rounding: try one more byte
        tok = mint(good_claims(pad="p" * (pad + 1)))
    return tok


REFUSALS = {
    # name: (token maker, reason, logged cause[, where the token goes:
    #        "query" (default), "header", "subprotocol", or a raw header])
    "no_token": (None, "Authentication required", "no token"),
    "empty_query_token": ("raw:", "Authentication required", "no token"),
    "basic_auth_is_no_token": ("raw:dXNlcjpwYXNz", "Authentication required",
                               "no token", ("Authorization", "Basic %s")),
    "garbage": ("raw:not-a-jwt-garbage-7f3a9c", "Invalid token",
                "not three parts"),
    "garbage_three_parts": ("raw:x!y.zzz.www", "Invalid token",
                            "bad base64url in header"),
    "bad_signature": ("wrong-secret", "Invalid token", "signature mismatch"),
    "bad_signature_header": ("wrong-secret", "Invalid token",
                             "signature mismatch", "header"),
    "bad_signature_subprotocol": ("wrong-secret", "Invalid token",
                                  "signature mismatch", "subprotocol"),
    "tampered_payload": ("tampered", "Invalid token", "signature mismatch"),
    "expired": ({"exp": -30}, "Invalid token", "expired"),
    "expired_one_second_ago": ({"exp": -1}, "Invalid token", "expired"),
    "not_yet_valid": ({"nbf": 60}, "Invalid token", "token not yet valid"),
    "wrong_issuer": ({"iss": "https://evil.example"}, "Invalid token",
                     "issuer mismatch"),
    "no_issuer": ({"iss": None}, "Invalid token", "issuer mismatch"),
    "wrong_audience": ({"aud": "other-service"}, "Invalid token",
                       "audience mismatch"),
    "alg_none": ("none", "Invalid token", "alg none refused"),
    "no_user_claim": ({"sub": None}, "Invalid token", "no user claim"),
    "too_long_query": ("long", "Invalid token", "token too long"),
    "too_long_header": ("long", "Invalid token", "token too long", "header"),
    "too_long_subprotocol": ("long", "Invalid token", "token too long",
                             "subprotocol"),
}


def make_refusal_token(kind):
    if kind is None:
        return None
    if isinstance(kind, str) and kind.startswith("raw:"):
        return kind[4:]
    if kind == "wrong-secret":
        return mint(good_claims(), key="not-the-server-secret")
    if kind == "tampered":
        good = mint(good_claims())
        h, _, s = good.split(".")
        evil = base64.urlsafe_b64encode(json.dumps(
            good_claims(sub="admin")).encode()).decode().rstrip("=")
        return "%s.%s.%s" % (h, evil, s)
    if kind == "none":
        return mint(good_claims(), alg="none")
    if kind == "long":
        return sized_token(4097)
    claims = good_claims()
    for k, v in kind.items():
        if v is None:
            claims.pop(k)
        elif k in ("exp", "nbf"):
            claims[k] = now() + v
        else:
            claims[k] = v
    return mint(claims)


@pytest.mark.deadline(60)
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal_is_101_then_one_close_frame(strict_srv, case):
    kind, reason, why, *where = REFUSALS[case]
    where = where[0] if where else "query"
    token = make_refusal_token(kind)
    headers, query = (), None
    if where == "query":
        query = token
    elif where == "header":
        headers = [("Authorization", "Bearer " + token)]
    elif where == "subprotocol":
        headers = [("Sec-WebSocket-Protocol", "seatcast.v1, bearer." + token)]
    else:
        headers = [(where[0], where[1] % token)]
    if kind == "long":
        assert len(token) == 4097
    r = expect_refused(strict_srv, reason, why=re.escape(why), token=query,
                       headers=headers)
    if where == "subprotocol":
        assert r.headers["sec-websocket-protocol"] == ["seatcast.v1"]
    if token:
        assert token not in r.head
        assert_no_token_in_log(strict_srv, [token])
    # the server still serves a good token
    ws = expect_accepted(strict_srv, token=mint(good_claims()))
    ws.close()


@pytest.mark.deadline(60)
def test_refusal_on_an_event_path_sends_nothing_else(strict_srv):
    """/ws/events/{id} greets and subscribes at once when accepted; when
    refused, neither connection_established nor an error for the event
    may come before or after the close frame."""
    bad = mint(good_claims(), key="wrong")
    for token, headers, reason in (
            (None, (), "Authentication required"),
            (bad, (), "Invalid token"),
            (None, [("Sec-WebSocket-Protocol", "seatcast.v1, bearer." + bad)],
             "Invalid token")):
        expect_refused(strict_srv, reason, path="/ws/events/42",
                       token=token, headers=headers)
    assert_no_token_in_log(strict_srv, [bad])


@pytest.mark.deadline(60)
def test_token_of_4096_bytes_is_accepted(strict_srv):
    tok = sized_token(4096)
    assert len(tok) == 4096
    for headers, query in (((), tok),
                           ([("Authorization", "Bearer " + tok)], None)):
        ws = expect_accepted(strict_srv, token=query, headers=headers)
        raw_ping(ws)
        ws.close()
    assert_no_token_in_log(strict_srv, [tok])


@pytest.mark.deadline(60)
def test_no_token_reaches_the_log_of_a_busy_server(strict_srv):
    """After all the cases above, good tokens and bad ones: the whole log
    (debug level) holds none of them, while it names each cause."""
    good = mint(good_claims(sub="log-check", jti="jti-log-check"))
    bad = mint(good_claims(sub="log-check"), key="wrong")
    before = strict_srv.stats()["totals"]["auth_failures"]
    ws = expect_accepted(strict_srv, token=good)
    ws.close()
    expect_accepted(strict_srv,
                    headers=[("Authorization", "Bearer " + good)]).close()
    expect_refused(strict_srv, "Invalid token", token=bad,
                   why="signature mismatch")
    log = strict_srv.log()
    assert "user log-check" in log
    assert_no_token_in_log(strict_srv, [good, bad])
    st = strict_srv.stats()
    print("auth failures counted: %r (before this test's refusal: %r)"
          % (st["totals"]["auth_failures"], before))
    assert st["totals"]["auth_failures"] == before + 1


def auth_failures_metric(srv):
    status, _, body = srv.http_get("/metrics")
    assert status == 200, status
    m = re.search(rb"^seatcast_auth_failures_total (\d+)$", body, re.M)
    assert m, body
    return int(m.group(1))


@pytest.mark.deadline(60)
def test_auth_failures_are_counted_in_metrics(make_server):
    """SPEC 8: every refused handshake counts once in
    seatcast_auth_failures_total (and `seatcast stats` totals); an
    accepted one does not."""
    srv = make_server(workers=2)
    assert auth_failures_metric(srv) == 0
    assert srv.stats()["totals"]["auth_failures"] == 0
    good = mint({"sub": "counted", "exp": now() + 600})
    bad = mint({"sub": "counted", "exp": now() + 600}, key="wrong")
    expired = mint({"sub": "counted", "exp": now() - 600})
    expect_accepted(srv, token=good).close()
    n = 0
    for _ in range(2):
        expect_refused(srv, "Authentication required", why="no token")
        expect_refused(srv, "Invalid token", token=bad,
                       why="signature mismatch")
        expect_refused(srv, "Invalid token", token="not.a.jwt")
        expect_refused(srv, "Invalid token", token=expired)
        n += 4
    wait_for(lambda: auth_failures_metric(srv) >= n, 5,
             "%d auth failures in /metrics" % n)
    expect_accepted(srv, token=good).close()
    got, st = auth_failures_metric(srv), srv.stats()
    print("%d refused handshakes: seatcast_auth_failures_total %d, stats "
          "totals %d, per worker %s" % (
              n, got, st["totals"]["auth_failures"],
              [w["auth_failures"] for w in st["workers"]]))
    assert got == n
    assert st["totals"]["auth_failures"] == n
    assert sum(w["auth_failures"] for w in st["workers"]) == n


def http_raw(srv, request, timeout=5):
    """Sends raw request bytes; (status, whole answer) once TCP closes."""
    with socket.create_connection(("127.0.0.1", srv.port),
                                  timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.deadline(60)
def test_token_not_logged_when_the_request_is_refused(strict_srv):
    """Requests that never reach the JWT check (wrong version, path,
    method, escape...) still carry tokens: none reaches the log, at debug
    level, and none is echoed in the answer."""
    tok = mint(good_claims(sub="http-error"))
    key = base64.b64encode(os.urandom(16)).decode()
    up = ("Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: %s\r\n" % key)
    cases = [
        (426, "GET /ws?token=%s HTTP/1.1\r\n%sSec-WebSocket-Version: 12"
              "\r\n\r\n" % (tok, up)),
        (404, "GET /wsx?token=%s HTTP/1.1\r\n%sSec-WebSocket-Version: 13"
              "\r\n\r\n" % (tok, up)),
        (400, "GET /ws/events/abc?token=%s HTTP/1.1\r\n%s"
              "Sec-WebSocket-Version: 13\r\n\r\n" % (tok, up)),
        (405, "POST /ws?token=%s HTTP/1.1\r\n%sSec-WebSocket-Version: 13"
              "\r\nContent-Length: 0\r\n\r\n" % (tok, up)),
        (400, "GET /ws?token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % tok),
        (400, "GET /ws?token=%%zz%s HTTP/1.1\r\n%sSec-WebSocket-Version: "
              "13\r\n\r\n" % (tok, up)),
        (200, "GET /healthz?token=%s HTTP/1.1\r\nHost: x\r\n"
              "Authorization: Bearer %s\r\n\r\n" % (tok, tok)),
        (426, "GET /ws HTTP/1.1\r\n%sAuthorization: Bearer %s\r\n"
              "Sec-WebSocket-Protocol: seatcast.v1, bearer.%s\r\n"
              "Sec-WebSocket-Version: 8\r\n\r\n" % (up, tok, tok)),
    ]
    for want, req in cases:
        status, answer = http_raw(strict_srv, req.encode())
        if want == 200:   # no database: /healthz says 503 degraded
            assert status in (200, 503), answer
        else:
            assert status == want, answer
        assert tok.encode() not in answer
        assert tok.split(".")[2].encode() not in answer
    strict_srv.wait_log(r"refused with 426")
    assert_no_token_in_log(strict_srv, [tok])


# ------------------------------------------------------------------ #
# 2. Where the token travels                                           #

@pytest.mark.deadline(60)
def test_token_in_query_header_and_subprotocol(make_server):
    srv = make_server(workers=2)
    tok = mint({"sub": "traveller", "exp": now() + 600})
    bad = mint({"sub": "traveller", "exp": now() + 600}, key="wrong")

    # ?token=
    ws = expect_accepted(srv, token=tok)
    assert "sec-websocket-protocol" not in ws.headers
    ws.close()
    # Authorization: Bearer
    ws = expect_accepted(srv, headers=[("Authorization", "Bearer " + tok)])
    assert "sec-websocket-protocol" not in ws.headers
    ws.close()
    # subprotocol pair: the answer names seatcast.v1 only
    ws = expect_accepted(srv, headers=[
        ("Sec-WebSocket-Protocol", "seatcast.v1, bearer." + tok)])
    assert ws.headers["sec-websocket-protocol"] == ["seatcast.v1"], ws.head
    assert tok not in ws.head and tok.split(".")[2] not in ws.head
    ws.close()
    # the pair on two header lines, bearer first
    ws = expect_accepted(srv, headers=[
        ("Sec-WebSocket-Protocol", "bearer." + tok),
        ("Sec-WebSocket-Protocol", "seatcast.v1")])
    assert ws.headers["sec-websocket-protocol"] == ["seatcast.v1"], ws.head
    assert tok not in ws.head
    ws.close()
    # the scheme is case-insensitive (RFC 9110 11.1)
    expect_accepted(srv, headers=[("Authorization", "bearer " + tok)]).close()
    # the query value is percent-decoded
    enc = "".join("%%%02X" % ord(ch) if ch in ".-_" else ch for ch in tok)
    mark = srv.log_mark()
    ws = RawWs(srv, path="/ws?token=" + enc)
    assert ws.status == 101 and ws.recv_json()["type"] == \
        "connection_established"
    ws.close()
    srv.wait_log(r"connected: user traveller", since=mark)
    # bearer.X without seatcast.v1 is no credential
    r = expect_refused(srv, "Authentication required", why="no token",
                       headers=[("Sec-WebSocket-Protocol", "bearer." + tok)])
    assert "sec-websocket-protocol" not in r.headers

    # precedence: query > header > subprotocol
    expect_refused(srv, "Invalid token", why="signature mismatch",
                   token=bad, headers=[("Authorization", "Bearer " + tok)])
    expect_accepted(srv, token=tok,
                    headers=[("Authorization", "Bearer " + bad)]).close()
    expect_refused(srv, "Invalid token", why="signature mismatch",
                   headers=[("Authorization", "Bearer " + bad),
                            ("Sec-WebSocket-Protocol",
                             "seatcast.v1, bearer." + tok)])
    ws = expect_accepted(srv, headers=[
        ("Authorization", "Bearer " + tok),
        ("Sec-WebSocket-Protocol", "seatcast.v1, bearer." + bad)])
    assert ws.headers["sec-websocket-protocol"] == ["seatcast.v1"]
    ws.close()
    r = expect_refused(srv, "Invalid token", why="signature mismatch",
                       token=bad, headers=[("Sec-WebSocket-Protocol",
                                            "seatcast.v1, bearer." + tok)])
    assert r.headers["sec-websocket-protocol"] == ["seatcast.v1"]
    assert_no_token_in_log(srv, [tok, bad])


@pytest.mark.deadline(60)
def test_subprotocol_with_a_third_party_client(make_server):
    """websockets 10.4 offers the pair as a browser does and checks the
    server's choice itself."""
    srv = make_server(workers=2)
    tok = mint({"userId": "browser-like", "exp": now() + 600})

    async def go():
        ws = await websockets.connect(
            srv.ws_url(), subprotocols=["seatcast.v1", "bearer." + tok],
            ping_interval=None, open_timeout=10)
        try:
            assert ws.subprotocol == "seatcast.v1"
            hello = await ws_recv_json(ws)
            assert hello["type"] == "connection_established"
            assert (await ws_ping(ws))["type"] == "pong"
        finally:
            await ws.close()
    run(go())
    srv.wait_log(r"connected: user browser-like, from 127\.0\.0\.1$")
    assert_no_token_in_log(srv, [tok])


# ------------------------------------------------------------------ #
# 3. RS256 and ES256 with --jwt-public-key                             #

@pytest.mark.deadline(120)
@pytest.mark.parametrize("kind,alg,other", [("rsa", "RS256", "ES256"),
                                            ("ec", "ES256", "RS256")])
def test_public_key_algorithms(make_server, tmp_path, kind, alg, other):
    priv, pub = openssl_keypair(tmp_path, kind)
    other_priv, _ = openssl_keypair(tmp_path, "ec" if kind == "rsa" else "rsa")
    # secret=None: no SEATCAST_JWT_SECRET, the public key is the only key
    srv = make_server(workers=2, secret=None,
                      args=["--jwt-public-key", pub, "--jwt-leeway", "0"])
    claims = {"sub": "pk-user", "exp": now() + 600}
    jobs = [
        {"alg": alg, "keyFile": str(priv), "payload": claims},
        {"alg": "HS256", "key": SECRET, "payload": claims},
        # the classic confusion: HMAC keyed with the public key's PEM
        {"alg": "HS256", "key": pub.read_text(), "payload": claims},
        {"alg": other, "keyFile": str(other_priv), "payload": claims},
        {"alg": alg, "keyFile": str(priv),
         "payload": {"sub": "pk-user", "exp": now() - 10}},
    ]
    if kind == "rsa":
        jobs.append({"alg": "RS512", "keyFile": str(priv), "payload": claims})
    good, hs, confused, wrong_kind, expired, *more = mint_many(jobs)

    ws = expect_accepted(srv, token=good)
    assert raw_ping(ws)["type"] == "pong"
    ws.close()
    srv.wait_log(r"connected: user pk-user, from 127\.0\.0\.1$")
    for tok in more:  # RS512 with the same RSA key
        expect_accepted(srv, token=tok).close()
    expect_refused(srv, "Invalid token", token=hs,
                   why="alg does not fit the configured key")
    expect_refused(srv, "Invalid token", token=confused,
                   why="alg does not fit the configured key")
    expect_refused(srv, "Invalid token", token=wrong_kind,
                   why="alg does not fit the configured key")
    expect_refused(srv, "Invalid token", token=expired, why="expired")
    # the same token forged with another key of the right kind
    forged_priv, _ = openssl_keypair(_subdir(tmp_path, "forged"), kind)
    forged = mint(claims, alg=alg, key_file=forged_priv)
    expect_refused(srv, "Invalid token", token=forged,
                   why="signature mismatch")
    assert_no_token_in_log(srv, [good, hs, confused, wrong_kind, expired,
                                 forged] + more)


def _subdir(path, name):
    d = path / name
    d.mkdir(exist_ok=True)
    return d


# ------------------------------------------------------------------ #
# 4. Other user claims                                                 #

@pytest.mark.deadline(60)
def test_user_from_userId_and_numeric_id(make_server):
    srv = make_server(workers=2)
    t_userid, t_id, t_both, t_strid = mint_many([
        {"alg": "HS256", "key": SECRET,
         "payload": {"userId": "u-778", "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"id": 4242, "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "the-sub", "userId": "ignored", "id": 1,
                     "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"id": "string-id", "exp": now() + 600}},
    ])
    for tok, user in ((t_userid, "u-778"), (t_id, "4242"),
                      (t_both, "the-sub"), (t_strid, "string-id")):
        mark = srv.log_mark()
        ws = expect_accepted(srv, token=tok)
        assert raw_ping(ws)["type"] == "pong"
        ws.close()
        srv.wait_log(r"connected: user %s, from 127\.0\.0\.1$"
                     % re.escape(user), since=mark)


# ------------------------------------------------------------------ #
# 5. exp passes while connected                                        #

@pytest.mark.deadline(60)
def test_token_expiring_while_connected(make_server):
    srv = make_server(workers=2, args=["--jwt-leeway", "0"])
    # start right after a wall-clock second turns, so that exp is 2 s ahead
    wait_for(lambda: time.time() % 1.0 < 0.2, 2, "a new second")
    exp = now() + 2
    tok = mint({"sub": "short-lived", "exp": exp})
    t0 = time.monotonic()
    ws = expect_accepted(srv, token=tok)
    t_open = time.time()
    assert raw_ping(ws)["type"] == "pong"
    ws.sock.settimeout(5)
    frames = ws.frames_until_eof()
    t_close = time.time()
    elapsed = time.monotonic() - t0
    ws.close()
    print("token exp %.3f s after connecting; closed %.3f s after "
          "connecting, %.3f s after exp" % (exp - t_open, elapsed,
                                            t_close - exp))
    assert frames == [(OP_CLOSE, True, close_payload(1008, "Token expired"))]
    assert t_close >= exp - 0.05, "closed before exp"
    assert t_close - exp <= 1.5, "closed %.2f s after exp" % (t_close - exp)
    assert 1.0 <= elapsed <= 3.5


# ------------------------------------------------------------------ #
# 6. The events claim                                                  #

@pytest.mark.deadline(90)
def test_events_claim_limits_subscriptions(make_server, pg):
    a = add_event(pg, "auth-A", 50)
    b = add_event(pg, "auth-B", 60)
    srv = make_server(workers=2, database=pg.conninfo())
    wait_db(srv)
    only_a, any_event = mint_many([
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "fan", "events": [a], "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "fan", "exp": now() + 600}},
    ])

    ws = expect_accepted(srv, token=only_a)
    ws.send_json({"type": "subscribe_event", "eventId": b})
    err = ws.recv_json()
    assert (err["type"], err["code"], err["message"]) == \
        ("error", "forbidden", "Access to event %d denied" % b), err
    ws.send_json({"type": "subscribe_event", "eventId": str(b)})
    assert ws.recv_json()["code"] == "forbidden"
    ws.send_json({"type": "subscribe_event", "eventId": a})
    m = ws.recv_json()
    assert (m["type"], m["eventId"]) == ("subscribed", a), m
    m = ws.recv_json()
    assert (m["type"], m["eventId"], m["availableSeats"],
            m["seatCapacity"]) == ("seat_update", a, 50, 50), m
    assert raw_ping(ws)["type"] == "pong"  # still open after the error
    ws.close()

    # /ws/events/B: greeted, then refused
    ws = expect_accepted(srv, path="/ws/events/%d" % b, token=only_a)
    assert ws.hello["eventId"] == b
    err = ws.recv_json()
    assert (err["type"], err["code"], err["message"]) == \
        ("error", "forbidden", "Access to event %d denied" % b), err
    assert raw_ping(ws)["type"] == "pong"
    ws.close()
    # /ws/events/A: greeted, then the seats
    ws = expect_accepted(srv, path="/ws/events/%d" % a, token=only_a)
    m = ws.recv_json()
    assert (m["type"], m["eventId"], m["availableSeats"]) == \
        ("seat_update", a, 50), m
    ws.close()
    # without the claim, B may be followed (so B exists: the error above
    # is about the claim, not a missing event)
    ws = expect_accepted(srv, token=any_event)
    ws.send_json({"type": "subscribe_event", "eventId": b})
    assert ws.recv_json()["type"] == "subscribed"
    m = ws.recv_json()
    assert (m["type"], m["eventId"], m["availableSeats"]) == \
        ("seat_update", b, 60), m
    ws.close()


# ------------------------------------------------------------------ #
# 7. Revocation                                                        #

@pytest.mark.deadline(120)
def test_revoked_jti_closes_connections_and_is_refused(make_server, pg):
    # with a per-user limit, to see that revoked connections leave the
    # user's count
    srv = make_server(workers=2, database=pg.conninfo(),
                      args=["--max-connections-per-user", "2"])
    wait_db(srv)
    jti_x = "revoke-me-%d" % os.getpid()
    jti_y = "keep-me-%d" % os.getpid()
    tok_x, tok_y, tok_z = mint_many([
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "rev", "jti": jti_x, "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "rev-y", "jti": jti_y, "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "rev", "jti": "fresh-%d" % os.getpid(),
                     "exp": now() + 600}},
    ])

    async def go():
        # the two X clients on both workers, so that both act on the ring
        for attempt in range(6):
            x1, _ = await ws_open(srv, token=tok_x)
            x2, _ = await ws_open(srv, token=tok_x)
            w1 = worker_of(srv, x1.local_address[1])
            w2 = worker_of(srv, x2.local_address[1])
            if w1 != w2:
                break
            await x1.close()
            await x2.close()
        else:
            pytest.fail("both X clients landed on one worker 6 times")
        y, _ = await ws_open(srv, token=tok_y)
        print("X clients on workers %s and %s" % (w1, w2))

        closed = {}

        async def watch(name, ws):
            code, reason = await ws_closed(ws, 10)
            closed[name] = (code, reason, time.monotonic())

        watchers = [asyncio.ensure_future(watch("x1", x1)),
                    asyncio.ensure_future(watch("x2", x2))]
        t0 = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(
            None, pg.psql, "INSERT INTO seatcast_revoked_tokens (jti) "
            "VALUES ('%s')" % jti_x)
        t_committed = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*watchers), 5)
        lat = {k: v[2] - t0 for k, v in closed.items()}
        print("revocation: x1 closed %.0f ms, x2 %.0f ms after the INSERT "
              "started (psql took %.0f ms)" % (
                  lat["x1"] * 1000, lat["x2"] * 1000,
                  (t_committed - t0) * 1000))
        for name in ("x1", "x2"):
            assert closed[name][:2] == (1008, "Token revoked"), closed
            assert lat[name] <= 1.0, lat
        # Y stays
        assert (await ws_ping(y))["type"] == "pong"
        await y.close()
    run(go())

    # a new connection with X is refused, with Y accepted
    expect_refused(srv, "Invalid token", token=tok_x, why="token revoked")
    expect_refused(srv, "Invalid token", token=tok_x, why="token revoked")
    expect_accepted(srv, token=tok_y).close()
    # the user's two revoked connections no longer count
    z = [expect_accepted(srv, token=tok_z) for _ in range(2)]
    expect_refused(srv, "Too many connections", token=tok_z)
    for c in z:
        c.close()

    # a new server on the same database still refuses X
    srv.stop()
    srv2 = make_server(workers=2, database=pg.conninfo())
    wait_db(srv2)
    expect_refused(srv2, "Invalid token", token=tok_x, why="token revoked")
    ws = expect_accepted(srv2, token=tok_y)
    assert raw_ping(ws)["type"] == "pong"
    ws.close()
    assert_no_token_in_log(srv, [tok_x, tok_y])
    assert_no_token_in_log(srv2, [tok_x, tok_y])


def revoke_while_listener_away(pg, jti, timeout=15):
    """Inserts the revocation while no seatcast session is on the database,
    so that its NOTIFY reaches nobody: a psql session is opened first (it
    outlives what follows), new sessions are then refused (ALLOW_CONNECTIONS
    false), the listener's session is cut (pg_terminate_backend waits until
    its backend is gone), the row is inserted and committed, and only then
    are sessions let in again."""
    db = pg.dbname
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGAPPNAME"] = "sc-test-revoker"
    sess = subprocess.Popen(pg.psql_argv(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)

    def ask(sql, marker):
        sess.stdin.write(sql + "\nSELECT '%s';\n" % marker)
        sess.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = sess.stdout.readline()
            if not line:
                raise SeatcastError("psql session ended: %s"
                                    % sess.stderr.read())
            if line.strip() == marker:
                return
        raise SeatcastError("psql session: no %s" % marker)
    try:
        ask("", "session-open")
        cut = pg.query_value(
            "ALTER DATABASE %s WITH ALLOW_CONNECTIONS false; "
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) "
            "  FROM pg_stat_activity WHERE datname = '%s' "
            "  AND backend_type = 'client backend' "
            "  AND application_name <> 'sc-test-revoker') t;" % (db, db),
            db="postgres")
        assert int(cut) >= 1, "expected to cut the listener's session"
        ask("INSERT INTO seatcast_revoked_tokens (jti) VALUES ('%s');" % jti,
            "revoked")
    finally:
        pg.psql("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true" % db,
                db="postgres")
        sess.stdin.close()
        sess.wait(timeout)


@pytest.mark.deadline(90)
def test_revocation_made_while_the_listener_is_away(make_server, pg):
    """The NOTIFY of a revocation is lost while the listener is
    disconnected; when it is back it reads seatcast_revoked_tokens again
    (SPEC 7), and the open connections with that jti must then be closed
    with 1008 Token revoked, as they are when the NOTIFY arrives (SPEC 3).
    Otherwise a revoked token keeps its connections until it expires."""
    srv = make_server(workers=2, database=pg.conninfo())
    wait_db(srv)
    jti = "revoked-while-away-%d" % os.getpid()
    tok = mint({"sub": "away", "jti": jti, "exp": now() + 600})
    c = expect_accepted(srv, token=tok)
    lid = srv.listener_pid()

    mark = srv.log_mark()
    revoke_while_listener_away(pg, jti)
    srv.wait_log(r"listener\[%d\]: database connection lost" % lid,
                 since=mark)
    srv.wait_log(r"listener\[%d\]: listening for notifications" % lid,
                 since=mark, timeout=10)
    wait_db(srv)
    t_back = time.monotonic()
    # new handshakes are refused at once: the table was read again
    expect_refused(srv, "Invalid token", token=tok, why="token revoked")
    # and the connection opened before is closed
    c.sock.settimeout(3)
    try:
        frames = c.frames_until_eof()
    except socket.timeout:
        frames = "still open %.1f s after the listener came back" % (
            time.monotonic() - t_back)
    finally:
        c.close()
    assert frames == [(OP_CLOSE, True, close_payload(1008, "Token revoked"))]


# ------------------------------------------------------------------ #
# 8, 9. Connection limits                                              #

@pytest.mark.deadline(120)
def test_max_connections_per_user(make_server):
    srv = make_server(workers=2, args=["--max-connections-per-user", "2"])
    tok_u, tok_v = mint_many([
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "limited", "exp": now() + 600}},
        {"alg": "HS256", "key": SECRET,
         "payload": {"sub": "someone-else", "exp": now() + 600}},
    ])

    # two connections of the user, one on each worker
    for attempt in range(6):
        c1 = expect_accepted(srv, token=tok_u)
        c2 = expect_accepted(srv, token=tok_u)
        w1, w2 = worker_of(srv, c1.local_port), worker_of(srv, c2.local_port)
        if {w1, w2} == {0, 1}:
            break
        c1.close()
        c2.close()
        wait_for(lambda: srv.stats()["totals"]["connections"] == 0, 5,
                 "the connections to go")
    else:
        pytest.fail("the user's two connections never spread over both "
                    "workers")
    print("the user's connections are on workers %d and %d" % (w1, w2))

    # the third, wherever it lands, is refused (try a few times)
    refusers = set()
    for _ in range(4):
        mark = srv.log_mark()
        expect_refused(srv, "Too many connections", token=tok_u)
        m = srv.wait_log(r"worker (\d+)\[\d+\]: refused user limited from "
                         r"127\.0\.0\.1: too many connections$", since=mark)
        refusers.add(int(m.group(1)))
    print("third connections refused by workers %s" % sorted(refusers))
    # another user is independent
    v1 = expect_accepted(srv, token=tok_v)
    v2 = expect_accepted(srv, token=tok_v)
    expect_refused(srv, "Too many connections", token=tok_v)

    # one closes (close handshake): a new one is accepted at once
    c1.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    assert c1.frames_until_eof()[-1][0] == OP_CLOSE
    c1.close()
    c3 = expect_accepted(srv, token=tok_u)
    expect_refused(srv, "Too many connections", token=tok_u)

    # kill -9 the worker holding c2: the master repairs the count
    victim_idx = worker_of(srv, c2.local_port)
    c3_survives = worker_of(srv, c3.local_port) != victim_idx
    victim = srv.stats()["workers"][victim_idx]["pid"]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    accepted = []

    def try_connect():
        ws = RawWs(srv, token=tok_u)
        assert ws.status == 101
        f = ws.recv_frame()
        if f is not None and f[0] == OP_TEXT:
            accepted.append(ws)
            return True
        # refused while the count was not yet repaired: finish the close
        # handshake (echo), or the server waits 2 s for it
        assert f == (OP_CLOSE, True,
                     close_payload(1008, "Too many connections")), f
        ws.send_frame(OP_CLOSE, f[2][:2])
        assert ws.frames_until_eof() == []
        ws.close()
        return False
    wait_for(try_connect, 5, "a connection of the user after the kill")
    repair = time.monotonic() - t0
    print("killed worker %d (pid %d); the user connected again %.0f ms "
          "later" % (victim_idx, victim, repair * 1000))
    assert repair <= 1.5
    # the count is right again, not merely cleared: exactly two live
    if not c3_survives:
        accepted.append(expect_accepted(srv, token=tok_u))
    expect_refused(srv, "Too many connections", token=tok_u)
    wait_for(lambda: all(w["pid"] > 0 and w["state"] == "running"
                         for w in srv.stats()["workers"]), 5,
             "the worker to be respawned")
    expect_refused(srv, "Too many connections", token=tok_u)
    for c in [c2, c3, v1, v2] + accepted:
        c.close()


@pytest.mark.deadline(60)
def test_max_connections_gives_503(make_server):
    srv = make_server(workers=2, args=["--max-connections", "2"])
    tok = mint({"sub": "crowd", "exp": now() + 600})
    a = expect_accepted(srv, token=tok)
    b = expect_accepted(srv, token=tok)
    for _ in range(2):
        r = RawWs(srv, token=tok)
        while r._fill():
            pass
        r.close()
        assert r.status == 503, r.head
        assert "sec-websocket-accept" not in r.headers
        assert "upgrade" not in r.headers
        print(r.head.splitlines()[0], r.buf)
    # every open socket counts: the third is refused as it is accepted
    srv.wait_log(r"connection refused with 503 unread: over "
                 r"--max-connections 2 ")
    a.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    a.frames_until_eof()
    a.close()
    wait_for(lambda: srv.stats()["totals"]["connections"] <= 1, 5,
             "the closed client to be gone")
    c = expect_accepted(srv, token=tok)
    c.close()
    b.close()


# ------------------------------------------------------------------ #
# 10. SIGHUP rotates the secret                                        #

@pytest.mark.deadline(90)
def test_sighup_rotates_the_secret(make_server, tmp_path):
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_text(KEY_A + "\n")
    srv = make_server(workers=2, secret=None,
                      args=["--jwt-secret-file", secret_file])
    claims = {"sub": "rotator", "exp": now() + 600}
    tok_a1, tok_a2, tok_b = mint_many([
        {"alg": "HS256", "key": KEY_A, "payload": claims},
        {"alg": "HS256", "key": KEY_A,
         "payload": dict(claims, jti="second-a")},
        {"alg": "HS256", "key": KEY_B, "payload": claims},
    ])
    c1 = expect_accepted(srv, token=tok_a1)
    expect_refused(srv, "Invalid token", token=tok_b,
                   why="signature mismatch")

    secret_file.write_text(KEY_B + "\n")
    workers = {w["pid"] for w in srv.stats()["workers"]}
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    rx = re.compile(r"worker \d+\[(\d+)\]: configuration and keys reloaded$",
                    re.M)
    wait_for(lambda: {int(p) for p in rx.findall(srv.log()[mark:])} >=
             workers, 10, "every worker to log the reload")
    assert {w["pid"] for w in srv.stats()["workers"]} == workers

    b1 = expect_accepted(srv, token=tok_b)
    b2 = expect_accepted(srv, token=tok_b)
    for _ in range(2):
        expect_refused(srv, "Invalid token", token=tok_a2,
                       why="signature mismatch")
    assert raw_ping(c1)["type"] == "pong"
    for c in (c1, b1, b2):
        c.close()


@pytest.mark.deadline(90)
def test_sighup_reload_survives_a_worker_respawn(make_server, tmp_path):
    """SIGHUP applies a changed config file and secret file to new
    connections: a worker respawned after the reload (kill -9) must use
    the reloaded configuration and keys too, not the ones of the start."""
    conf = tmp_path / "seatcast.conf"
    secret_file = tmp_path / "jwt.secret"
    conf.write_text("jwt-issuer = issuer-A\njwt-secret-file = %s\n"
                    % secret_file)
    secret_file.write_text(KEY_A + "\n")
    srv = make_server(workers=2, secret=None, args=["-c", conf])
    claims = {"sub": "respawn", "exp": now() + 600}
    old, new_iss_old_key, new = mint_many([
        {"alg": "HS256", "key": KEY_A,
         "payload": dict(claims, iss="issuer-A")},
        {"alg": "HS256", "key": KEY_A,
         "payload": dict(claims, iss="issuer-B")},
        {"alg": "HS256", "key": KEY_B,
         "payload": dict(claims, iss="issuer-B")},
    ])
    expect_accepted(srv, token=old).close()

    conf.write_text("jwt-issuer = issuer-B\njwt-secret-file = %s\n"
                    % secret_file)
    secret_file.write_text(KEY_B + "\n")
    workers = {w["pid"] for w in srv.stats()["workers"]}
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    rx = re.compile(r"worker \d+\[(\d+)\]: configuration and keys "
                    r"reloaded$", re.M)
    wait_for(lambda: {int(p) for p in rx.findall(srv.log()[mark:])} >=
             workers, 10, "every worker to log the reload")

    # one worker dies after the reload and is respawned
    victim = srv.stats()["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: all(w["pid"] > 0 and w["pid"] != victim and
                         w["state"] == "running"
                         for w in srv.stats()["workers"][:1]), 10,
             "worker 0 to be respawned")

    # connections held open spread over both workers (least loaded first)
    held, seen = [], set()
    for _ in range(4):
        mark = srv.log_mark()
        r = RawWs(srv, token=new)
        assert r.status == 101
        f = r.recv_frame()
        m = srv.wait_log(r"worker (\d+)\[\d+\]: (client \S+ connected: "
                         r"user respawn, from .*|"
                         r"authentication failed for .*)$", since=mark)
        seen.add(int(m.group(1)))
        held.append(r)
        assert f is not None and f[0] == OP_TEXT, (
            "worker %s refused a token of the reloaded configuration: %r; "
            "log: %s" % (m.group(1), f, m.group(2)))
    assert seen == {0, 1}, seen
    for r in held:
        r.close()
    for tok, why in ((old, "issuer mismatch|signature mismatch"),
                     (new_iss_old_key, "signature mismatch")):
        for _ in range(2):
            expect_refused(srv, "Invalid token", token=tok, why=why)


@pytest.mark.deadline(90)
def test_sighup_with_a_broken_secret_keeps_the_running_keys(make_server,
                                                            tmp_path):
    """A reload whose secret cannot be read is refused and the running
    keys stay (as nginx keeps its running configuration): for the workers
    that got SIGHUP, and for a worker respawned after it, which must come
    up with the keys in force rather than fail to start."""
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_text(KEY_A + "\n")
    srv = make_server(workers=2, secret=None,
                      args=["--jwt-secret-file", secret_file])
    tok_a, tok_b = mint_many([
        {"alg": "HS256", "key": KEY_A,
         "payload": {"sub": "broken-reload", "exp": now() + 600}},
        {"alg": "HS256", "key": KEY_B,
         "payload": {"sub": "broken-reload", "exp": now() + 600}},
    ])
    c1 = expect_accepted(srv, token=tok_a)

    secret_file.write_text("")        # an editor's half-saved file
    workers = {w["pid"] for w in srv.stats()["workers"]}
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    # the master validates the keys first and refuses the whole reload:
    # no worker is signalled, so none has anything to refuse
    srv.wait_log(r"master\[\d+\]: reload failed, keeping the running "
                 r"configuration and keys: .*is empty", 10, since=mark)
    assert {w["pid"] for w in srv.stats()["workers"]} == workers
    held = [expect_accepted(srv, token=tok_a) for _ in range(2)]
    assert raw_ping(c1)["type"] == "pong"

    # a worker dies now: its successor must run, with the running keys
    victim = srv.stats()["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    try:
        wait_for(lambda: all(w["state"] == "running" and w["pid"] > 0 and
                             w["pid"] != victim
                             for w in srv.stats()["workers"]), 5,
                 "worker 0 to be respawned and running")
    except SeatcastError:
        fails = re.findall(r"worker 0\[\d+\]: (.*)$", srv.log()[mark:],
                           re.M)
        pytest.fail("worker 0 cannot be respawned after a refused reload; "
                    "it says: %s" % sorted(set(fails)))
    fresh = [expect_accepted(srv, token=tok_a) for _ in range(3)]
    # the respawned worker (least loaded) takes new clients, with the keys
    assert 0 in {worker_of(srv, c.local_port) for c in fresh}

    # a good file and SIGHUP: the new secret is in force
    secret_file.write_text(KEY_B + "\n")
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    ok = re.compile(r"worker \d+\[(\d+)\]: configuration and keys "
                    r"reloaded$", re.M)
    workers = {w["pid"] for w in srv.stats()["workers"]}
    wait_for(lambda: {int(p) for p in ok.findall(srv.log()[mark:])} >=
             workers, 10, "every worker to reload")
    expect_accepted(srv, token=tok_b).close()
    expect_refused(srv, "Invalid token", token=tok_a,
                   why="signature mismatch")
    for c in held + fresh + [c1]:
        c.close()


@pytest.mark.deadline(60)
def test_unreadable_key_files_are_named(tmp_path):
    """SPEC 8: bad configuration is one line on stderr naming the problem,
    exit 2; for a secret or key file that is missing or empty, the
    problem is that file, not that no key option was given."""
    empty = tmp_path / "empty.secret"
    empty.write_text("")
    missing = tmp_path / "missing.secret"
    cases = [
        (["-t", "--jwt-secret-file", empty], [str(empty), "empty"]),
        (["-t", "--jwt-secret-file", missing],
         [str(missing), "No such file"]),
        (["-t", "--jwt-public-key", missing], [str(missing), "No such file"]),
        (["token", "--sub", "1", "--jwt-secret-file", empty],
         [str(empty), "empty"]),
        (["token", "--sub", "1", "--jwt-secret-file", missing],
         [str(missing), "No such file"]),
    ]
    problems = []
    for args, words in cases:
        p = run_seatcast(args, secret=None)
        lines = p.stderr.strip().splitlines()
        if p.returncode != 2 or len(lines) != 1 or \
                not all(w in lines[0] for w in words):
            problems.append("seatcast %s -> exit %d, stderr %r (wanted "
                            "one line naming %s)" % (
                                " ".join(str(a) for a in args),
                                p.returncode, p.stderr, words))
    assert not problems, "\n".join(problems)


@pytest.mark.deadline(60)
def test_short_secret_is_refused_naming_the_minimum(make_server, tmp_path):
    """RFC 7518 3.2: an HMAC key at least as long as the hash.  A secret
    under 32 bytes (HS256's) is a configuration error, exit 2, whether it
    comes from a file or the environment, for the server, -t and token."""
    short = tmp_path / "short.secret"
    short.write_text("abc\n")
    short.chmod(0o600)
    ok = tmp_path / "ok.secret"
    ok.write_text("x" * 32 + "\n")
    ok.chmod(0o600)
    cases = [
        (["-t", "--jwt-secret-file", short], None),
        (["token", "--sub", "1", "--jwt-secret-file", short], None),
        (["-t"], "abc"),
        (["-t"], "x" * 31),
        (["token", "--sub", "1"], "y" * 31),
    ]
    for args, env_secret in cases:
        p = run_seatcast(args, secret=env_secret)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (args, p.stderr)
        assert "at least 32" in lines[0] and "HS256" in lines[0], lines
        assert "abc" not in lines[0] and "yyyy" not in lines[0]
    # exactly 32 bytes is enough, from either source
    p = run_seatcast(["-t", "--jwt-secret-file", ok], secret=None)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    p = run_seatcast(["-t"], secret="z" * 32)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    # the server itself does not start on a short secret
    srv = make_server(workers=1, secret="abc", start=False)
    with pytest.raises(SeatcastError):
        srv.start(timeout=5)
    assert srv.proc.wait(10) == 2
    assert "at least 32" in srv.log()


@pytest.mark.deadline(60)
def test_secret_file_readable_by_others_is_warned_about(tmp_path):
    f = tmp_path / "jwt.secret"
    f.write_text(KEY_A + "\n")
    for mode, warned in ((0o644, True), (0o602, True), (0o640, False),
                         (0o600, False)):
        f.chmod(mode)
        p = run_seatcast(["-t", "--jwt-secret-file", f], secret=None)
        assert p.returncode == 0, p.stderr
        assert ("other users" in p.stderr) == warned, (oct(mode), p.stderr)
        if warned:
            assert str(f) in p.stderr


@pytest.mark.deadline(120)
def test_public_key_turns_off_an_inherited_env_secret(make_server, tmp_path):
    """With --jwt-public-key, HS* tokens are refused unless a secret file
    is configured explicitly: a SEATCAST_JWT_SECRET inherited from the
    environment does not keep HMAC on, and -t says it is ignored."""
    priv, pub = openssl_keypair(tmp_path, "rsa")
    claims = {"sub": "pk-env", "exp": now() + 600}
    rs, hs = mint_many([{"alg": "RS256", "keyFile": str(priv),
                         "payload": claims},
                        {"alg": "HS256", "key": SECRET, "payload": claims}])
    p = run_seatcast(["-t", "--jwt-public-key", pub], secret=SECRET)
    assert p.returncode == 0, p.stderr
    assert "SEATCAST_JWT_SECRET is ignored" in p.stderr
    srv = make_server(workers=1, secret=SECRET,
                      args=["--jwt-public-key", pub])
    expect_accepted(srv, token=rs).close()
    expect_refused(srv, "Invalid token", token=hs,
                   why="alg does not fit the configured key")
    # named explicitly, the secret file keeps both kinds
    f = tmp_path / "jwt.secret"
    f.write_text(SECRET + "\n")
    f.chmod(0o600)
    srv2 = make_server(workers=1, secret=SECRET,
                       args=["--jwt-public-key", pub,
                             "--jwt-secret-file", f])
    expect_accepted(srv2, token=rs).close()
    expect_accepted(srv2, token=hs).close()


# ------------------------------------------------------------------ #
# 11. --trusted-proxy and X-Forwarded-For                              #

@pytest.mark.deadline(60)
@pytest.mark.parametrize("trusted", [True, False])
def test_forwarded_for_only_from_a_trusted_proxy(make_server, trusted):
    args = ["--trusted-proxy", "127.0.0.1"] if trusted else []
    srv = make_server(workers=2, args=args)
    tok = mint({"sub": "proxied", "exp": now() + 600})
    xff = [("X-Forwarded-For", "203.0.113.7")]
    mark = srv.log_mark()
    ws = expect_accepted(srv, token=tok, headers=xff)
    ws.close()
    expected = r"203\.0\.113\.7 \(via 127\.0\.0\.1\)" if trusted \
        else r"127\.0\.0\.1"
    line = srv.wait_log(r"connected: user proxied, from %s$" % expected,
                        since=mark)
    print(line.group(0))
    # a refusal logs the same address
    expect_refused(srv, "Authentication required", headers=xff,
                   why="no token",
                   addr="203.0.113.7 (via 127.0.0.1)" if trusted
                   else "127.0.0.1")
    # header text that is no address never reaches the log
    mark = srv.log_mark()
    expect_accepted(srv, token=tok,
                    headers=[("X-Forwarded-For", "<evil>hostname")]).close()
    srv.wait_log(r"connected: user proxied, from 127\.0\.0\.1$", since=mark)
    assert "<evil>" not in srv.log()
    if not trusted:
        assert "203.0.113.7" not in srv.log()
        return
    # a chain is read from the right: the first address that is not a
    # trusted proxy is the client; a spoofed leftmost entry is not taken
    for chain, client in (("198.51.100.9, 203.0.113.7", "203.0.113.7"),
                          ("203.0.113.7, 127.0.0.1", "203.0.113.7"),
                          ("198.51.100.9,203.0.113.8", "203.0.113.8")):
        mark = srv.log_mark()
        expect_accepted(srv, token=tok,
                        headers=[("X-Forwarded-For", chain)]).close()
        srv.wait_log(r"connected: user proxied, from %s \(via 127\.0\.0\.1"
                     r"\)$" % re.escape(client), since=mark)
    assert "198.51.100.9" not in srv.log()


@pytest.mark.deadline(60)
def test_forwarded_for_long_chain_keeps_the_rightmost_entries(make_server):
    """More entries than the server looks at: the ones it keeps are the
    right-most (the nearest proxies'), never a client's padding."""
    srv = make_server(workers=1, args=["--trusted-proxy", "127.0.0.1",
                                       "--trusted-proxy", "10.0.0.0/8"])
    tok = mint({"sub": "proxied", "exp": now() + 600})
    for chain, client in (
            # sixteen spoofed entries, then the real client
            (["6.6.6.6"] * 16 + ["9.9.9.9"], "9.9.9.9"),
            (["6.6.6.6"] * 40 + ["9.9.9.9", "10.1.2.3"], "9.9.9.9"),
            # padding that is not even an address, left of the kept ones
            (["<junk>"] * 30 + ["203.0.113.5", "10.0.0.1", "10.0.0.2"],
             "203.0.113.5")):
        mark = srv.log_mark()
        expect_accepted(srv, token=tok, headers=[
            ("X-Forwarded-For", ", ".join(chain))]).close()
        srv.wait_log(r"connected: user proxied, from %s \(via 127\.0\.0\.1"
                     r"\)$" % re.escape(client), since=mark)
    assert "6.6.6.6" not in srv.log()


@pytest.mark.deadline(60)
def test_forwarded_for_over_a_unix_listener_is_trusted(make_server,
                                                       tmp_path):
    """man seatcast(8) LOGGING: a Unix-socket peer (only a local proxy
    reaches it) is trusted like a --trusted-proxy: the logged address is
    X-Forwarded-For's rightmost entry that is not a trusted proxy,
    followed by "(via unix)"; without the header, "unix"; header text
    that is no address is never logged."""
    path = str(tmp_path / "xff.sock")
    srv = make_server(workers=1, listen=["unix:" + path])
    tok = mint({"sub": "viaunix", "exp": now() + 600})

    async def connect(xff):
        headers = [("X-Forwarded-For", xff)] if xff is not None else []
        ws, hello = await ws_open(srv, token=tok, extra_headers=headers)
        await ws.close()

    for xff, logged in (("203.0.113.7", "203.0.113.7 (via unix)"),
                        ("198.51.100.9, 203.0.113.8",
                         "203.0.113.8 (via unix)"),
                        ("2001:db8::5", "2001:db8::5 (via unix)"),
                        (None, "unix"),
                        ("<evil>hostname", "unix")):
        mark = srv.log_mark()
        run(connect(xff))
        line = srv.wait_log(r"connected: user viaunix, from %s$"
                            % re.escape(logged), since=mark)
        print("X-Forwarded-For %r over unix: %s" % (xff, line.group(0)))
    assert "198.51.100.9" not in srv.log()
    assert "<evil>" not in srv.log()


# ------------------------------------------------------------------ #
# 12. seatcast token                                                   #

@pytest.mark.deadline(60)
def test_token_command(make_server, tmp_path):
    srv = make_server(workers=2)
    p = run_seatcast(["token", "--sub", "cli-user", "--ttl", "120",
                      "--events", "1,2", "--jti", "cli-jti-12"],
                     secret=SECRET)
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    assert p.stdout.count("\n") == 1 and tok.count(".") == 2
    # jsonwebtoken verifies it with the secret and reads the claims
    claims = verify_with_node(tok)
    assert claims["sub"] == "cli-user"
    assert claims["events"] == [1, 2]
    assert claims["jti"] == "cli-jti-12"
    assert claims["exp"] - claims["iat"] == 120
    assert abs(claims["iat"] - time.time()) < 30
    assert claims_of(tok) == claims
    ws = expect_accepted(srv, token=tok)
    assert raw_ping(ws)["type"] == "pong"
    ws.close()
    srv.wait_log(r"connected: user cli-user, from 127\.0\.0\.1$")

    # --jwt-secret-file, and without --jti a random one
    f = tmp_path / "other.secret"
    f.write_text(KEY_FILE + "\n")
    p = run_seatcast(["token", "--sub", "7", "--jwt-secret-file", f],
                     secret=None)
    assert p.returncode == 0, p.stderr
    claims = verify_with_node(p.stdout.strip(), key=KEY_FILE)
    assert claims["sub"] == "7" and len(claims["jti"]) >= 16
    assert "events" not in claims

    # bad --events: exit 2, a message, no token
    for bad in ("x", "1,x", "0", "1,,2", "-1"):
        p = run_seatcast(["token", "--sub", "u", "--events", bad],
                         secret=SECRET)
        assert p.returncode == 2, (bad, p.returncode, p.stdout, p.stderr)
        assert p.stdout == ""
        assert "events" in p.stderr
    p = run_seatcast(["token", "--events", "1"], secret=SECRET)
    assert p.returncode == 2 and "--sub" in p.stderr
