"""test_hostile.py - what a token holder (or anyone) can make a worker do.

Each test reproduces an attack an audit found against an earlier build
(docs/PROTOCOL.md, limits):
  - pings and requests sent by a client that never reads: replies count
    toward --send-buffer-limit, the worker stops reading a client whose
    output is backed up and answers only the latest of several pending
    pings, so a client's memory stays bounded whatever it sends;
  - request heads held half-sent: sockets still in the handshake count
    toward --max-connections, so one address cannot hold more.
"""

import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from rawws import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawWs, encode_frame
from server import wait_for


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def queues(port, client_port):
    """(Recv-Q of the server's side, Send-Q of the client's side) of the
    connection between client_port and port, from ss: what the server has
    not read, and what the client's kernel still holds for it."""
    def one(sport, dport, col):
        out = subprocess.run(["ss", "-tnH", "state", "established",
                              "( sport = :%d and dport = :%d )" % (
                                  sport, dport)],
                             capture_output=True, text=True,
                             check=True).stdout.split("\n")
        if not out or not out[0].strip():
            raise ValueError("no such connection in ss")
        return int(out[0].split()[col])
    return one(port, client_port, 0), one(client_port, port, 1)


def push(sock, data, seconds):
    """Sends as much of data as the peer takes within `seconds` (it may
    stop reading): the number of bytes sent."""
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(view[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            break
    sock.setblocking(True)
    return sent


def connect_reader_less(srv, token):
    """A client whose receive buffer is 4 KiB, greeted."""
    c = RawWs.connect(srv.port, "/ws", token, rcvbuf=4096)
    hello = c.recv_json(timeout=5)
    assert hello["type"] == "connection_established"
    return c


@pytest.mark.deadline(120)
def test_ping_flood_from_a_client_that_never_reads(make_server):
    """4.2 MB of numbered pings from a client that reads nothing: the
    worker keeps one pending pong, stops reading the client, and does not
    grow (an earlier build queued a pong per ping: +37 MB, never
    returned)."""
    srv = make_server(workers=1)
    worker = srv.worker_pids()[0]
    c = connect_reader_less(srv, srv.token())
    before = rss_kib(worker)
    count = 420000                       # 10-byte frames: 4.2 MB
    flood = b"".join(encode_frame(OP_PING, struct.pack(">I", i))
                     for i in range(count))
    sent = push(c.sock, flood, 10)
    sent += push(c.sock, encode_frame(OP_PING, b"last"), 5)
    grown = rss_kib(worker) - before
    print("sent %d of %d bytes; worker RSS +%d KiB" % (
        sent, len(flood), grown))
    assert grown < 8 * 1024, "worker grew by %d KiB" % grown
    # its output backed up, the worker stopped reading it: what the
    # client sent waits in the kernels, unread, for as long as the client
    # does not read (watched for 2 s: a worker that kept reading would
    # drain the megabytes the client's kernel still holds)
    port = c.sock.getsockname()[1]
    samples, until = [], time.monotonic() + 2
    while time.monotonic() < until:
        samples.append(queues(srv.port, port))
        time.sleep(0.05)
    print("unread by the worker: %s .. %s (server Recv-Q, client Send-Q)"
          % (min(samples), max(samples)))
    assert min(r for r, _ in samples) > 0, samples
    assert min(q for _, q in samples) > 1024 * 1024, samples
    # now the client reads: each pong names the ping it answers.  They
    # come in order, the last one answers the last ping, and the
    # connection is still usable
    answered, skipped, last = [], 0, None
    deadline = time.monotonic() + 60
    while last != b"last":
        assert time.monotonic() < deadline, "no pong for the last ping"
        op, payload = c.recv_frame(timeout=10)
        assert op != OP_CLOSE, "closed: %r" % (c.close_frame,)
        if op != OP_PONG:
            continue
        last = bytes(payload)
        if last != b"last":
            n, = struct.unpack(">I", last)
            assert not answered or n > answered[-1], (answered[-1], n)
            skipped += n - (answered[-1] if answered else -1) - 1
            answered.append(n)
    # a ping that arrived while the output was backed up took the pending
    # pong's place: the pings between two pongs went unanswered (none
    # would, had every ping queued a pong of its own).  How many depends
    # on where in a read the socket filled, and on how fast each side is
    print("%d pongs for %d pings, %d pings answered by a later pong"
          % (len(answered) + 1, count + 1, skipped))
    assert skipped > 0
    assert answered[-1] < count
    c.send_text('{"type":"ping"}')
    assert c.recv_json(timeout=10)["type"] == "pong"
    c.close()


@pytest.mark.deadline(120)
def test_replies_count_toward_the_send_buffer_limit(make_server):
    """Requests whose answers are never read (here ping messages, each
    answered with a pong message): past --send-buffer-limit the client is
    closed with 1008 Slow consumer, like one that does not read
    broadcasts, while other clients are served."""
    srv = make_server(workers=1, args=["--send-buffer-limit", "32k",
                                       "--max-message-rate", "1000000"])
    worker = srv.worker_pids()[0]
    tok = srv.token()
    c = connect_reader_less(srv, tok)
    other = RawWs.connect(srv.port, "/ws", tok)
    assert other.recv_json()["type"] == "connection_established"
    # 2 857 pings (60 KB) reach the worker in one read: it is stopped
    # until they all wait in its socket.  Their ~160 KB of answers are
    # more than the kernels hold (~50 KB) plus the 32 KiB limit, whatever
    # the timing (the worker stops reading a client that is backed up, so
    # only the answers to one read can pile up)
    msg = encode_frame(OP_TEXT, b'{"type":"ping"}') * 2857
    port = c.sock.getsockname()[1]
    os.kill(worker, signal.SIGSTOP)
    try:
        sent = push(c.sock, msg, 10)
        wait_for(lambda: queues(srv.port, port)[0] == len(msg), 10,
                 "the pings waiting unread in the worker's socket")
    finally:
        os.kill(worker, signal.SIGCONT)
    print("sent %d of %d bytes" % (sent, len(msg)))
    # the other client of the same worker is answered meanwhile
    other.send_text('{"type":"ping"}')
    assert other.recv_json(timeout=10)["type"] == "pong"
    frames = c.drain(idle=5, limit=60)
    closes = [p for op, p in frames if op == OP_CLOSE]
    texts = sum(1 for op, _ in frames if op == OP_TEXT)
    print("%d answers read, then %r" % (texts, c.close_frame))
    assert c.close_frame == (1008, "Slow consumer"), c.close_frame
    assert len(closes) == 1
    # the limit held: far fewer answers than requests were queued
    assert texts < 2857 // 2
    srv.wait_log(r"closing a slow consumer")
    wait_for(lambda: b"\nseatcast_slow_consumers_total 1\n" in
             srv.http_get("/metrics")[2], 10, "the slow consumer counted")
    c.close()
    other.close()


@pytest.mark.deadline(120)
def test_half_sent_requests_count_toward_max_connections(make_server):
    """--max-connections 5: sockets that never finish their request head
    take the places; the sixth socket is answered 503 without being read,
    and a place frees when a holder goes."""
    srv = make_server(workers=2, args=["--max-connections", "5",
                                       "--handshake-timeout", "60"])
    holders = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")   # never finished
        holders.append(s)
    wait_for(lambda: srv.stats()["totals"]["connections"] == 5, 10,
             "five sockets open")
    extra = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        extra.append(s)
    for s in extra:
        # answered at once, though nothing was sent
        s.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, "closed without an answer: %r" % head
            head += chunk
        assert head.startswith(b"HTTP/1.1 503"), head
        s.close()
    srv.wait_log(r"connection refused with 503 unread")
    # no more than the limit were ever open
    assert srv.stats()["totals"]["connections"] <= 5 + 20
    wait_for(lambda: srv.stats()["totals"]["connections"] == 5, 10,
             "the refused sockets closed")
    # a place frees: a real client gets in
    holders.pop().close()
    wait_for(lambda: srv.stats()["totals"]["connections"] == 4, 10,
             "a holder gone")
    c = RawWs.connect(srv.port, "/ws", srv.token())
    assert c.recv_json()["type"] == "connection_established"
    c.close()
    for s in holders:
        s.close()
