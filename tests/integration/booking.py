"""booking.py - the booking side and the client side of test_live_seats.py.

Standard library plus Debian's python3-websockets (10.4); run with
/usr/bin/python3.

Database side (psql only, as a booking application would use it):

    db = BookingDb(cluster, "t1")             # one database of a PgCluster
    e = db.event(100)                         # INSERT INTO events ... id
    b = db.book(e, seats=2)                   # INSERT INTO bookings ... id
    db.cancel(b)                              # status = 'cancelled'
    db.seats(e)                               # (available, capacity, version)

    s = PsqlSession(cluster, "t1")            # one long-lived connection
    s.send("BEGIN;") ... s.sync()             # statements fed on stdin

    tap = NotifyTap(cluster, "t1")            # an independent LISTENer:
    tap.wait(lambda ps: len(ps) >= 10)        # the payloads in commit order

    procs = start_writers(cluster, "t1", scripts)   # concurrent psql
    wait_writers(procs)

Client side (asyncio, websockets):

    c = await Client.open(srv, token)         # greeted, reading in the back
    m = await c.next()                        # next unread message (a dict)
    await c.quiet()                           # ping; the next one is pong
    workers_of(srv, clients)                  # worker index of each client
"""

import asyncio
import collections
import datetime
import json
import queue
import re
import subprocess
import threading
import time

import websockets

from server import SeatcastError, tcp_peer_ports, ws_open

__all__ = [
    "BookingDb", "PsqlSession", "NotifyTap", "start_writers", "wait_writers",
    "Client", "workers_of", "strict_json", "check_message", "ISO_MS",
    "metrics", "percentile",
]

# ------------------------------------------------------------------ #
# Database                                                             #


class BookingDb:
    """One database of a PgCluster, with the booking verbs of sql/."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name

    def conninfo(self):
        return self.cluster.conninfo(self.name)

    def psql(self, sql, check=True, timeout=60):
        return self.cluster.psql(sql, db=self.name, check=check,
                                 timeout=timeout)

    def run(self, sql, check=True):
        return self.cluster.run_psql(sql, db=self.name, check=check)

    def value(self, sql):
        return self.psql(sql).strip()

    def event(self, capacity, name="gig"):
        return int(self.value(
            "INSERT INTO events (name, seat_capacity) VALUES ('%s', %d) "
            "RETURNING id" % (name, capacity)))

    def events(self, capacities, name="gig"):
        values = ", ".join("('%s %d', %d)" % (name, i, c)
                           for i, c in enumerate(capacities))
        out = self.psql("INSERT INTO events (name, seat_capacity) VALUES %s "
                        "RETURNING id" % values)
        return [int(x) for x in out.split()]

    def book(self, event_id, seats=1, user=1):
        return int(self.value(
            "INSERT INTO bookings (event_id, user_id, seats) "
            "VALUES (%d, %d, %d) RETURNING id" % (event_id, user, seats)))

    def cancel(self, booking_id):
        self.psql("UPDATE bookings SET status = 'cancelled' WHERE id = %d"
                  % booking_id)

    def seats(self, event_id):
        """(available_seats, seat_capacity, version) of an event."""
        a, c, v = self.value("SELECT available_seats, seat_capacity, version "
                             "FROM events WHERE id = %d" % event_id
                             ).split("|")
        return int(a), int(c), int(v)

    def available(self, event_id):
        return self.seats(event_id)[0]


NOTIFY_RE = re.compile(r'^Asynchronous notification "([^"]*)" with payload '
                       r'"(.*)" received from server process with PID \d+\.$')


class PsqlSession:
    """A psql process fed statements on stdin; one database connection.

    Output lines are gathered by a thread.  sync() sends a marker query
    and waits for its answer: every statement sent before it has then
    run, and psql has printed the notifications that arrived meanwhile
    (psql prints them after each query).
    """

    def __init__(self, cluster, db):
        self.proc = subprocess.Popen(
            cluster.psql_argv(db), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1)
        self.lines = queue.Queue()
        self.errors = []
        self._marker = 0
        threading.Thread(target=self._pump, args=(self.proc.stdout,
                                                  self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr,
                                                  self.errors.append),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def send(self, sql):
        self.proc.stdin.write(sql if sql.endswith("\n") else sql + "\n")
        self.proc.stdin.flush()

    def sync(self, timeout=10):
        """Lines printed before the marker (notifications included)."""
        self._marker += 1
        mark = "sync-%d" % self._marker
        self.send("SELECT '%s';" % mark)
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SeatcastError("psql did not answer %s within %s s "
                                    "(errors: %s)" % (mark, timeout,
                                                      self.errors))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line == mark:
                return out
            out.append(line)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class NotifyTap(PsqlSession):
    """An independent LISTEN on the channel: the reference of what the
    database sent, in commit order, each payload with the wall time psql
    printed it."""

    def __init__(self, cluster, db, channel="seatcast"):
        super().__init__(cluster, db)
        self.payloads = []
        self.send("LISTEN %s;" % channel)
        self.sync()

    def poll(self):
        for line in self.sync():
            m = NOTIFY_RE.match(line)
            if m:
                self.payloads.append(json.loads(m.group(2)))
        return self.payloads

    def wait(self, cond, timeout=20, what="notifications"):
        deadline = time.monotonic() + timeout
        while True:
            if cond(self.poll()):
                return self.payloads
            if time.monotonic() >= deadline:
                raise SeatcastError("timed out waiting for %s (have %d)" % (
                    what, len(self.payloads)))
            time.sleep(0.02)


def start_writers(cluster, db, scripts):
    """One psql process per script, all started before any is fed: the
    scripts run concurrently, each statement its own transaction."""
    procs = [subprocess.Popen(cluster.psql_argv(db), stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for _ in scripts]
    for p, script in zip(procs, scripts):
        p.stdin.write(script)
        p.stdin.close()
    return procs


def wait_writers(procs, timeout=60):
    errs = []
    for p in procs:
        err = p.stderr.read()
        p.wait(timeout)
        if p.returncode != 0:
            errs.append("psql exit %d: %s" % (p.returncode, err.strip()))
    if errs:
        raise SeatcastError("; ".join(errs))


# ------------------------------------------------------------------ #
# Messages                                                             #

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in %r" % keys)
    return collections.OrderedDict(pairs)


def strict_json(text):
    """json.loads keeping key order and refusing duplicate keys."""
    return json.loads(text, object_pairs_hook=_no_duplicates)


def check_message(m, mtype, keys, **values):
    """Asserts the exact key list (type first, timestamp last), the type,
    an ISO 8601 UTC millisecond timestamp close to now, and values."""
    assert list(m.keys()) == keys, "%s: keys %s, want %s" % (
        mtype, list(m.keys()), keys)
    assert m["type"] == mtype, m
    ts = m["timestamp"]
    assert isinstance(ts, str) and ISO_MS.match(ts), m
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(t - time.time()) < 10, "timestamp %s is not now" % ts
    for k, v in values.items():
        assert m[k] == v and type(m[k]) is type(v), \
            "%s: %s is %r, want %r" % (mtype, k, m[k], v)
    return m


# ------------------------------------------------------------------ #
# Clients                                                              #


class Client:
    """A websockets client whose messages are read by a background task
    into .msgs as (wall time, dict) pairs; next() consumes them in
    order."""

    def __init__(self, ws, hello):
        self.ws = ws
        self.hello = hello
        self.msgs = []
        self.pos = 0
        self.closed = asyncio.Event()
        self._new = asyncio.Event()
        self.error = None
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, srv, token, path="/ws"):
        ws, hello = await ws_open(srv, token=token, path=path)
        return cls(ws, hello)

    @property
    def port(self):
        return self.ws.local_address[1]

    async def _read(self):
        try:
            async for raw in self.ws:
                self.msgs.append((time.time(), strict_json(raw)))
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # a bad message: the test reports it
            self.error = e
        finally:
            self.closed.set()
            self._new.set()

    async def next(self, timeout=5):
        deadline = time.monotonic() + timeout
        while self.pos >= len(self.msgs):
            if self.error is not None:
                raise self.error
            if self.closed.is_set():
                raise SeatcastError("connection closed (%s %r) while "
                                    "waiting for a message" % (
                                        self.ws.close_code,
                                        self.ws.close_reason))
            left = deadline - time.monotonic()
            if left <= 0:
                raise SeatcastError("no message within %s s" % timeout)
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass
        m = self.msgs[self.pos][1]
        self.pos += 1
        return m

    def unread(self):
        return [m for _, m in self.msgs[self.pos:]]

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def request(self, obj, timeout=5):
        await self.send(obj)
        return await self.next(timeout)

    async def quiet(self, timeout=5):
        """Sends ping; the very next message must be pong (nothing else
        was queued for this client before it)."""
        await self.send('{"type":"ping"}')
        m = await self.next(timeout)
        assert m["type"] == "pong", "expected pong, got %r (then %d more: "\
            "%r)" % (m, len(self.unread()), self.unread()[:3])
        return m

    async def subscribe(self, event_id, timeout=5):
        """subscribe_event; returns (subscribed, seat_update)."""
        a = await self.request({"type": "subscribe_event",
                                "eventId": event_id}, timeout)
        assert a["type"] == "subscribed", a
        b = await self.next(timeout)
        assert b["type"] == "seat_update", b
        return a, b

    async def wait_for(self, cond, timeout=10, what="messages"):
        """Waits until cond(list of all dicts received) is true."""
        deadline = time.monotonic() + timeout
        while True:
            got = [m for _, m in self.msgs]
            if cond(got):
                return got
            if self.error is not None:
                raise self.error
            left = deadline - time.monotonic()
            if left <= 0 or self.closed.is_set():
                raise SeatcastError("%s: %s (have %d, last %r)" % (
                    "closed" if self.closed.is_set() else "timed out",
                    what, len(got), got[-3:]))
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:
            pass
        self.task.cancel()


def workers_of(srv, clients):
    """Worker index of each client (by its local port among the worker's
    peer ports); fails if a client is on no worker or on two."""
    st = srv.stats()
    ports = {w["index"]: tcp_peer_ports(w["pid"], srv.port)
             for w in st["workers"]}
    out = []
    for c in clients:
        where = [i for i, ps in ports.items() if c.port in ps]
        assert len(where) == 1, "client port %d on workers %r" % (
            c.port, where)
        out.append(where[0])
    return out


def metrics(srv):
    """/metrics as {name or name{labels}: float}."""
    status, headers, body = srv.http_get("/metrics")
    assert status == 200, (status, body)
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]
