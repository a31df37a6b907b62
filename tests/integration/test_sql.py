"""test_sql.py - sql/schema.sql and sql/notify.sql against a real PostgreSQL 15

Run:  /usr/bin/python3 -m pytest tests/integration/test_sql.py

One cluster per module (pg.py); each test gets a fresh database cloned from
a template that has both files applied, so tests may break things (replace
seatcast_channel(), the view) without affecting each other.

Notifications are observed with psql: after every command psql prints the
notifications that arrived as
    Asynchronous notification "seatcast" with payload "..." received ...
A session sees its own notifications after each commit; the Listener below
keeps a psql session open on a pipe and sends it a marker query to poll.
"""

import collections
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg import BOOKING_TEMPLATE  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
NOTIFY = os.path.join(ROOT, "sql", "notify.sql")
TEMPLATE = BOOKING_TEMPLATE  # made by the conftest fixture `cluster`

SEAT_KEYS = ["type", "eventId", "availableSeats", "seatCapacity", "version",
             "ts"]
NOTIFY_RE = re.compile(r'^Asynchronous notification "([^"]*)" with payload '
                       r'"(.*)" received from server process with PID \d+\.$')


_db_counter = [0]


@pytest.fixture
def db(cluster):
    """A fresh database with schema.sql and notify.sql applied."""
    _db_counter[0] += 1
    name = "t%d" % _db_counter[0]
    cluster.createdb(name, template=TEMPLATE)
    yield Db(cluster, name)
    cluster.dropdb(name)


def parse_notifications(text):
    """[(channel, payload dict)] from psql output, payload key order kept."""
    out = []
    for line in text.splitlines():
        m = NOTIFY_RE.match(line)
        if m:
            payload = json.loads(m.group(2),
                                 object_pairs_hook=collections.OrderedDict)
            out.append((m.group(1), payload, m.group(2)))
    return out


class Db:
    """One test database: psql helpers bound to it."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name

    def psql(self, sql, check=True):
        return self.cluster.psql(sql, db=self.name, check=check)

    def run(self, sql, check=True):
        return self.cluster.run_psql(sql, db=self.name, check=check)

    def value(self, sql):
        return self.psql(sql).strip()

    def row(self, sql):
        return self.value(sql).split("|")

    def event(self, capacity, name="gig"):
        return int(self.value(
            "INSERT INTO events (name, seat_capacity) VALUES ('%s', %d) "
            "RETURNING id" % (name, capacity)))

    def book(self, event_id, seats=1, user=1):
        return int(self.value(
            "INSERT INTO bookings (event_id, user_id, seats) "
            "VALUES (%d, %d, %d) RETURNING id" % (event_id, user, seats)))

    def seats(self, event_id):
        """(available_seats, seat_capacity, version) of an event."""
        a, c, v = self.row("SELECT available_seats, seat_capacity, version "
                           "FROM events WHERE id = %d" % event_id)
        return int(a), int(c), int(v)

    def notified(self, sql, check=True):
        """Runs sql in a LISTENing session; (notifications, result)."""
        res = self.run("LISTEN seatcast;\n" + sql, check=check)
        notes = parse_notifications(res.stdout)
        for channel, _, raw in notes:
            assert channel == "seatcast"
            assert len(raw.encode()) < 8000
        return [p for _, p, _ in notes], res

    def listener(self):
        return Listener(self.cluster, self.name)


class Session:
    """An open psql session fed on a pipe, polled with marker queries.

    Notifications psql prints are collected in .payloads; other output in
    .output.
    """

    def __init__(self, cluster, db):
        self.proc = subprocess.Popen(
            cluster.psql_argv(db), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            bufsize=1)
        self.lines = queue.Queue()
        self.payloads = []
        self.output = []
        self.marks = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def send(self, sql):
        """Sends sql and waits until the session has run it."""
        self._send(sql)
        self.sync()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _send(self, sql):
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()

    def sync(self, timeout=10.0):
        """Round trip through the session; collects what has arrived."""
        self.marks += 1
        mark = "sync-%d" % self.marks
        self._send("SELECT '%s';" % mark)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "listener: no answer to %s" % mark
            line = self.lines.get(timeout=left)
            assert line is not None, "listener psql exited"
            if line == mark:
                return
            notes = parse_notifications(line)
            if notes:
                self.payloads += [p for _, p, _ in notes]
            else:
                self.output.append(line)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Listener(Session):
    """A session that LISTENs on the channel."""

    def __init__(self, cluster, db, channel="seatcast"):
        super().__init__(cluster, db)
        self.send("LISTEN %s;" % channel)

    def wait_for(self, count, timeout=10.0):
        """Polls until count payloads arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while len(self.payloads) < count:
            assert time.monotonic() < deadline, \
                "listener: %d of %d notifications" % (len(self.payloads),
                                                      count)
            self.sync()
        # one more round trip: anything extra would show up now
        self.sync()
        self.sync()
        return self.payloads


def assert_seat_payload(p, kind, event_id, available, capacity, version):
    assert list(p.keys()) == SEAT_KEYS
    assert p["type"] == kind
    assert p["eventId"] == event_id
    assert p["availableSeats"] == available
    assert p["seatCapacity"] == capacity
    assert p["version"] == version
    assert isinstance(p["ts"], int)
    assert abs(p["ts"] - time.time() * 1000) < 60000


# ---------------------------------------------------------------- schema


def test_apply_twice(cluster):
    name = "apply_twice"
    cluster.createdb(name)
    try:
        for _ in range(2):
            cluster.psql_file(SCHEMA, db=name)
            cluster.psql_file(NOTIFY, db=name)
        d = Db(cluster, name)
        e = d.event(5)
        d.book(e, 2)
        # again, with data in place: nothing lost, nothing doubled
        cluster.psql_file(SCHEMA, db=name)
        cluster.psql_file(NOTIFY, db=name)
        assert d.seats(e) == (3, 5, 1)
        triggers = d.psql(
            "SELECT tgrelid::regclass || '.' || tgname FROM pg_trigger "
            "WHERE NOT tgisinternal ORDER BY 1").split()
        assert len(triggers) == len(set(triggers))
        notes, _ = d.notified("INSERT INTO bookings (event_id, user_id) "
                              "VALUES (%d, 2);" % e)
        assert [p["type"] for p in notes] == ["booking_created"]
    finally:
        cluster.dropdb(name)


def test_schema_alone_needs_no_seatcast(cluster):
    name = "schema_only"
    cluster.createdb(name)
    try:
        cluster.psql_file(SCHEMA, db=name)
        d = Db(cluster, name)
        e = d.event(2)
        d.book(e, 2)
        assert d.seats(e) == (0, 2, 1)
        assert d.value("SELECT count(*) FROM pg_proc "
                       "WHERE proname LIKE 'seatcast%'") == "0"
    finally:
        cluster.dropdb(name)


def test_available_defaults_to_capacity(db):
    e = db.event(100)
    assert db.seats(e) == (100, 100, 0)
    # an explicit value is kept, within the constraints
    e2 = int(db.value("INSERT INTO events (name, seat_capacity, "
                      "available_seats) VALUES ('x', 10, 4) RETURNING id"))
    assert db.seats(e2) == (4, 10, 0)
    res = db.run("INSERT INTO events (name, seat_capacity, available_seats) "
                 "VALUES ('x', 10, 11);", check=False)
    assert res.returncode != 0 and "events_available_seats_check" in res.stderr
    res = db.run("INSERT INTO events (name, seat_capacity) VALUES ('x', -1);",
                 check=False)
    assert res.returncode != 0 and "violates check constraint" in res.stderr


def test_booking_lifecycle_keeps_seats(db):
    e = db.event(10)
    b = db.book(e, 3)
    assert db.seats(e) == (7, 10, 1)
    db.psql("UPDATE bookings SET status = 'cancelled' WHERE id = %d" % b)
    assert db.seats(e) == (10, 10, 2)
    assert db.value("SELECT cancelled_at IS NOT NULL FROM bookings "
                    "WHERE id = %d" % b) == "t"
    db.psql("UPDATE bookings SET status = 'confirmed' WHERE id = %d" % b)
    assert db.seats(e) == (7, 10, 3)
    assert db.value("SELECT cancelled_at IS NULL FROM bookings "
                    "WHERE id = %d" % b) == "t"
    db.psql("UPDATE bookings SET seats = 5 WHERE id = %d" % b)
    assert db.seats(e) == (5, 10, 4)
    db.psql("UPDATE bookings SET seats = 1 WHERE id = %d" % b)
    assert db.seats(e) == (9, 10, 5)
    db.psql("DELETE FROM bookings WHERE id = %d" % b)
    assert db.seats(e) == (10, 10, 6)
    # a cancelled booking holds nothing: deleting it changes nothing
    b2 = db.book(e, 2)
    db.psql("UPDATE bookings SET status = 'cancelled' WHERE id = %d" % b2)
    db.psql("DELETE FROM bookings WHERE id = %d" % b2)
    assert db.seats(e) == (10, 10, 8)
    # other columns of a booking do not touch the event
    b3 = db.book(e, 1)
    db.psql("UPDATE bookings SET user_id = 99 WHERE id = %d" % b3)
    assert db.seats(e) == (9, 10, 9)


def test_booking_moved_between_events(db):
    a, b = db.event(5), db.event(5)
    bk = db.book(a, 2)
    db.psql("UPDATE bookings SET event_id = %d WHERE id = %d" % (b, bk))
    assert db.seats(a) == (5, 5, 2)
    assert db.seats(b) == (3, 5, 1)


def test_overbooking_refused(db):
    e = db.event(2)
    db.book(e, 2)
    before = db.psql("SELECT * FROM bookings ORDER BY id")
    res = db.run("\\set VERBOSITY verbose\n"
                 "INSERT INTO bookings (event_id, user_id) VALUES (%d, 7);"
                 % e, check=False)
    assert res.returncode != 0
    assert "23514" in res.stderr
    assert ("not enough seats for event %d: 1 requested, 0 available" % e
            in res.stderr)
    assert db.seats(e) == (0, 2, 1)
    assert db.psql("SELECT * FROM bookings ORDER BY id") == before

    # a multi-row insert that does not fit as a whole leaves nothing
    e2 = db.event(3)
    res = db.run("INSERT INTO bookings (event_id, user_id, seats) VALUES "
                 "(%d, 1, 2), (%d, 2, 2);" % (e2, e2), check=False)
    assert "not enough seats for event %d: 2 requested, 1 available" % e2 \
        in res.stderr
    assert db.seats(e2) == (3, 3, 0)
    assert db.value("SELECT count(*) FROM bookings WHERE event_id = %d"
                    % e2) == "0"


def test_overbooking_by_update_refused(db):
    e = db.event(3)
    b1 = db.book(e, 2)
    db.psql("UPDATE bookings SET status = 'cancelled' WHERE id = %d" % b1)
    db.book(e, 2)
    res = db.run("UPDATE bookings SET status = 'confirmed' WHERE id = %d;"
                 % b1, check=False)
    assert "not enough seats for event %d: 2 requested, 1 available" % e \
        in res.stderr
    b3 = db.book(e, 1)
    res = db.run("UPDATE bookings SET seats = 2 WHERE id = %d;" % b3,
                 check=False)
    assert "not enough seats for event %d: 1 requested, 0 available" % e \
        in res.stderr
    assert db.seats(e) == (0, 3, 4)


def test_booking_unknown_event_refused(db):
    res = db.run("INSERT INTO bookings (event_id, user_id) VALUES (424242, 1);",
                 check=False)
    assert res.returncode != 0
    assert "foreign key" in res.stderr or "does not exist" in res.stderr


def test_capacity_change_moves_available(db):
    e = db.event(10)
    db.book(e, 4)
    db.psql("UPDATE events SET seat_capacity = 20 WHERE id = %d" % e)
    assert db.seats(e) == (16, 20, 2)
    db.psql("UPDATE events SET seat_capacity = 4 WHERE id = %d" % e)
    assert db.seats(e) == (0, 4, 3)
    res = db.run("UPDATE events SET seat_capacity = 3 WHERE id = %d;" % e,
                 check=False)
    assert res.returncode != 0
    assert ("cannot set capacity of event %d to 3: 4 seats are booked" % e
            in res.stderr)
    assert db.seats(e) == (0, 4, 3)


def test_version_counts_seat_changes_only(db):
    e = db.event(10)
    assert db.seats(e)[2] == 0
    db.psql("UPDATE events SET name = 'renamed' WHERE id = %d" % e)
    assert db.seats(e)[2] == 0
    db.psql("UPDATE events SET version = 1000 WHERE id = %d" % e)
    assert db.seats(e)[2] == 0
    for i in range(1, 6):
        db.book(e)
        assert db.seats(e) == (10 - i, 10, i)
    db.psql("UPDATE events SET available_seats = available_seats + 1, "
            "version = 1 WHERE id = %d" % e)
    assert db.seats(e) == (6, 10, 6)


def test_seat_state_view(db):
    a, b = db.event(5), db.event(7)
    db.book(a, 2)
    rows = db.psql("SELECT event_id, available_seats, seat_capacity, version "
                   "FROM seatcast_seat_state ORDER BY event_id").split()
    assert rows == ["%d|3|5|1" % a, "%d|7|7|0" % b]


def test_concurrent_bookings_never_overbook(db):
    capacity, sessions, attempts = 60, 4, 20
    e = db.event(capacity)
    listener = db.listener()
    try:
        # each booking holds the event's row lock for a moment, so that
        # the others queue on it and re-check the seats when it is released
        script = ("\\set ON_ERROR_STOP 0\n" + (
            "BEGIN;\n"
            "INSERT INTO bookings (event_id, user_id) VALUES (%d, 1);\n"
            "SELECT pg_sleep(0.002);\n"
            "COMMIT;\n" % e) * attempts)
        procs = [subprocess.Popen(db.cluster.psql_argv(db.name),
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for _ in range(sessions)]
        outs = [p.communicate(script, timeout=60) for p in procs]
        refused = sum(err.count("not enough seats for event %d" % e)
                      for _, err in outs)
        other = [line for _, err in outs for line in err.splitlines()
                 if "ERROR" in line and "not enough seats" not in line
                 and "current transaction is aborted" not in line]
        assert other == []
        confirmed = int(db.value(
            "SELECT coalesce(sum(seats), 0) FROM bookings "
            "WHERE event_id = %d AND status = 'confirmed'" % e))
        assert confirmed == capacity
        assert refused == sessions * attempts - capacity
        assert db.seats(e) == (0, capacity, capacity)

        # exactly one notification per booking, in commit order
        notes = [p for p in listener.wait_for(capacity)
                 if p["eventId"] == e]
        assert len(notes) == capacity
        assert [p["version"] for p in notes] == list(range(1, capacity + 1))
        for p in notes:
            assert_seat_payload(p, "booking_created", e,
                                capacity - p["version"], capacity,
                                p["version"])
    finally:
        listener.close()


def poll(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.01)


def test_last_seat_race_waits_and_refuses(db):
    """B waits on A's row lock for the last seat, then is refused cleanly.

    Under READ COMMITTED, B's UPDATE re-checks available_seats against the
    row A committed; a check made against B's own snapshot would instead
    book a seat that is gone (or trip the CHECK constraint).
    """
    e = db.event(1)
    a = Session(db.cluster, db.name)
    try:
        a.send("BEGIN;")
        a.send("INSERT INTO bookings (event_id, user_id) VALUES (%d, 1);" % e)
        b = subprocess.Popen(
            db.cluster.psql_argv(db.name), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        b.stdin.write("INSERT INTO bookings (event_id, user_id) "
                      "VALUES (%d, 2);\n" % e)
        b.stdin.close()
        poll(lambda: db.value("SELECT count(*) FROM pg_locks "
                              "WHERE NOT granted") != "0",
             what="the second booking to wait for the row lock")
        assert b.poll() is None
        a.send("COMMIT;")
        b.wait(timeout=10)
        err = b.stderr.read()
        assert b.returncode != 0
        assert ("not enough seats for event %d: 1 requested, 0 available" % e
                in err), err
        assert db.seats(e) == (0, 1, 1)
    finally:
        a.close()


def test_concurrent_mixed_sizes_and_cancels(db):
    """Bookings of 1-3 seats and cancellations race; the count stays exact."""
    capacity = 50
    e = db.event(capacity)
    scripts = []
    for s in range(4):
        lines = ["\\set ON_ERROR_STOP 0"]
        for i in range(25):
            lines.append("INSERT INTO bookings (event_id, user_id, seats) "
                         "VALUES (%d, %d, %d);" % (e, s, 1 + (i + s) % 3))
            if i % 5 == 4:
                lines.append(
                    "UPDATE bookings SET status = 'cancelled' WHERE id = "
                    "(SELECT min(id) FROM bookings WHERE user_id = %d "
                    "AND status = 'confirmed');" % s)
        scripts.append("\n".join(lines) + "\n")
    procs = [subprocess.Popen(db.cluster.psql_argv(db.name),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in scripts]
    for p, script in zip(procs, scripts):
        _, err = p.communicate(script, timeout=60)
        for line in err.splitlines():
            if "ERROR" in line:
                assert "not enough seats" in line, line
    held = int(db.value("SELECT coalesce(sum(seats), 0) FROM bookings "
                        "WHERE event_id = %d AND status = 'confirmed'" % e))
    avail, cap, _ = db.seats(e)
    assert cap == capacity and avail >= 0
    assert avail == capacity - held


# ---------------------------------------------------------- notifications


def test_notify_booking_created(db):
    e = db.event(100)
    notes, _ = db.notified("INSERT INTO bookings (event_id, user_id, seats) "
                           "VALUES (%d, 5, 3);" % e)
    assert len(notes) == 1
    assert_seat_payload(notes[0], "booking_created", e, 97, 100, 1)


def test_notify_booking_cancelled(db):
    e = db.event(100)
    b = db.book(e, 4)
    notes, _ = db.notified("UPDATE bookings SET status = 'cancelled' "
                           "WHERE id = %d;" % b)
    assert len(notes) == 1
    assert_seat_payload(notes[0], "booking_cancelled", e, 100, 100, 2)


def test_notify_direct_event_updates(db):
    e = db.event(100)
    db.book(e, 10)
    notes, _ = db.notified(
        "UPDATE events SET seat_capacity = 120 WHERE id = %d;\n"
        "UPDATE events SET available_seats = available_seats - 1 "
        "WHERE id = %d;\n"
        "UPDATE events SET name = 'no seat change' WHERE id = %d;" % (e, e, e))
    assert len(notes) == 2
    assert_seat_payload(notes[0], "seat_update", e, 110, 120, 2)
    assert_seat_payload(notes[1], "seat_update", e, 109, 120, 3)


def test_notify_other_booking_changes_are_seat_updates(db):
    e = db.event(10)
    b = db.book(e, 2)
    notes, _ = db.notified(
        "UPDATE bookings SET seats = 3 WHERE id = %d;\n"
        "UPDATE bookings SET status = 'cancelled' WHERE id = %d;\n"
        "UPDATE bookings SET status = 'confirmed' WHERE id = %d;\n"
        "UPDATE bookings SET user_id = 42 WHERE id = %d;\n"
        "DELETE FROM bookings WHERE id = %d;" % (b, b, b, b, b))
    assert [(p["type"], p["availableSeats"], p["version"]) for p in notes] == [
        ("seat_update", 7, 2),
        ("booking_cancelled", 10, 3),
        ("seat_update", 7, 4),
        ("seat_update", 10, 5),
    ]


def test_notify_new_event(db):
    notes, res = db.notified("INSERT INTO events (name, seat_capacity) "
                             "VALUES ('new', 30) RETURNING id;")
    e = int(res.stdout.splitlines()[0])
    assert len(notes) == 1
    assert_seat_payload(notes[0], "seat_update", e, 30, 30, 0)


def test_notify_event_deleted(db):
    e = db.event(10)
    db.book(e, 2)
    db.book(e, 3)
    notes, _ = db.notified("DELETE FROM events WHERE id = %d;" % e)
    # the cascade deletes the bookings too: still one notification
    assert len(notes) == 1
    p = notes[0]
    assert list(p.keys()) == ["type", "eventId", "version", "ts"]
    assert p["type"] == "event_deleted" and p["eventId"] == e
    assert p["version"] == 3
    assert db.value("SELECT count(*) FROM bookings") == "0"


def test_notify_token_revoked(db):
    notes, _ = db.notified(
        "INSERT INTO seatcast_revoked_tokens (jti, expires_at) "
        "VALUES ('4f1c2a9e-7d3b', now() + interval '1 hour');\n"
        "INSERT INTO seatcast_revoked_tokens (jti) "
        "VALUES ('quote\" back\\slash');")
    assert len(notes) == 2
    assert list(notes[0].keys()) == ["type", "jti", "ts"]
    assert notes[0]["type"] == "token_revoked"
    assert notes[0]["jti"] == "4f1c2a9e-7d3b"
    assert notes[1]["jti"] == 'quote" back\\slash'
    # a jti seatcast could not take is refused by the table
    for bad in ("''", "'%s'" % ("x" * 129), "'caf\u00e9'", "E'a\\nb'"):
        res = db.run("INSERT INTO seatcast_revoked_tokens (jti) VALUES (%s);"
                     % bad, check=False)
        assert res.returncode != 0, bad
        assert "seatcast_revoked_tokens_jti_check" in res.stderr
    # a repeated revocation is a no-op with ON CONFLICT
    notes, _ = db.notified(
        "INSERT INTO seatcast_revoked_tokens (jti) VALUES ('4f1c2a9e-7d3b') "
        "ON CONFLICT DO NOTHING;")
    assert notes == []
    assert db.value("SELECT seatcast_purge_revoked_tokens()") == "0"


def test_notify_multi_row_and_multi_statement_transactions(db):
    e = db.event(10)
    notes, _ = db.notified(
        "INSERT INTO bookings (event_id, user_id, seats) VALUES "
        "(%d, 1, 1), (%d, 2, 2), (%d, 3, 3);" % (e, e, e))
    assert [(p["type"], p["availableSeats"], p["version"]) for p in notes] == [
        ("booking_created", 9, 1), ("booking_created", 7, 2),
        ("booking_created", 4, 3)]

    # a booking, then a direct change, in one transaction: the marker of
    # the bookings statement does not outlive it
    notes, _ = db.notified(
        "BEGIN;\n"
        "INSERT INTO bookings (event_id, user_id) VALUES (%d, 4);\n"
        "UPDATE events SET seat_capacity = 12 WHERE id = %d;\n"
        "UPDATE bookings SET status = 'cancelled' WHERE user_id = 1;\n"
        "COMMIT;" % (e, e))
    assert [(p["type"], p["availableSeats"], p["seatCapacity"], p["version"])
            for p in notes] == [("booking_created", 3, 10, 4),
                                ("seat_update", 5, 12, 5),
                                ("booking_cancelled", 6, 12, 6)]


def test_notify_upsert_keeps_marker_balanced(db):
    """INSERT ... ON CONFLICT fires statement triggers for both verbs."""
    e = db.event(10)
    b = db.book(e, 1)
    notes, _ = db.notified(
        "BEGIN;\n"
        "INSERT INTO bookings (id, event_id, user_id, seats) "
        "VALUES (%d, %d, 1, 1) ON CONFLICT (id) DO UPDATE SET seats = 3;\n"
        "INSERT INTO bookings (event_id, user_id) VALUES (%d, 2) "
        "ON CONFLICT (id) DO NOTHING;\n"
        "UPDATE events SET seat_capacity = 11 WHERE id = %d;\n"
        "COMMIT;" % (b, e, e, e))
    assert [(p["type"], p["availableSeats"], p["version"]) for p in notes] == [
        ("seat_update", 7, 2), ("booking_created", 6, 3),
        ("seat_update", 7, 4)]


def test_notify_after_failed_booking_in_savepoint(db):
    e = db.event(1)
    db.book(e, 1)
    notes, res = db.notified(
        "\\set ON_ERROR_STOP 0\n"
        "BEGIN;\n"
        "SAVEPOINT s;\n"
        "INSERT INTO bookings (event_id, user_id) VALUES (%d, 2);\n"
        "ROLLBACK TO SAVEPOINT s;\n"
        "UPDATE events SET seat_capacity = 2 WHERE id = %d;\n"
        "COMMIT;" % (e, e))
    assert "not enough seats" in res.stderr
    assert len(notes) == 1
    assert_seat_payload(notes[0], "seat_update", e, 1, 2, 2)


def test_notify_refused_booking_sends_nothing(db):
    e = db.event(1)
    db.book(e, 1)
    notes, res = db.notified("INSERT INTO bookings (event_id, user_id) "
                             "VALUES (%d, 2);" % e, check=False)
    assert res.returncode != 0
    assert notes == []


def test_notify_booking_moved(db):
    a, b = db.event(5), db.event(5)
    bk = db.book(a, 2)
    notes, _ = db.notified("UPDATE bookings SET event_id = %d WHERE id = %d;"
                           % (b, bk))
    assert [(p["type"], p["eventId"], p["availableSeats"]) for p in notes] \
        == [("seat_update", a, 5), ("seat_update", b, 3)]


def test_notify_cross_session(db):
    e = db.event(5)
    listener = db.listener()
    try:
        b = db.book(e, 2)
        db.psql("UPDATE bookings SET status = 'cancelled' WHERE id = %d" % b)
        db.psql("UPDATE events SET seat_capacity = 8 WHERE id = %d" % e)
        db.psql("DELETE FROM events WHERE id = %d" % e)
        db.psql("INSERT INTO seatcast_revoked_tokens (jti) VALUES ('j1')")
        notes = listener.wait_for(5)
        assert [p["type"] for p in notes] == [
            "booking_created", "booking_cancelled", "seat_update",
            "event_deleted", "token_revoked"]
        assert [p.get("version") for p in notes] == [1, 2, 3, 4, None]
    finally:
        listener.close()


def test_notify_channel_is_configurable(db):
    db.psql("CREATE OR REPLACE FUNCTION seatcast_channel() RETURNS text "
            "LANGUAGE sql STABLE AS $$ SELECT 'booking_feed'::text $$")
    e = db.event(5)
    res = db.run("LISTEN booking_feed;\n"
                 "INSERT INTO bookings (event_id, user_id) VALUES (%d, 1);"
                 % e)
    notes = parse_notifications(res.stdout)
    assert [(c, p["type"]) for c, p, _ in notes] == [
        ("booking_feed", "booking_created")]


# ------------------------------------------- the triggers never fail a booking


def _assert_committed_with_warning(db, e, res, text):
    assert res.returncode == 0, res.stderr
    assert "WARNING:  seatcast:" in res.stderr
    assert text in res.stderr
    # committed: another session sees it
    assert db.seats(e)[0] == 4
    assert db.value("SELECT count(*) FROM bookings WHERE event_id = %d"
                    % e) == "1"


@pytest.mark.parametrize("channel,error", [
    ("''", "channel name cannot be empty"),
    ("repeat('x', 64)", "channel name too long"),
    ("NULL", "channel name cannot be empty"),
])
def test_bad_channel_does_not_fail_booking(db, channel, error):
    db.psql("CREATE OR REPLACE FUNCTION seatcast_channel() RETURNS text "
            "LANGUAGE sql STABLE AS $$ SELECT %s::text $$" % channel)
    e = db.event(5)
    notes, res = db.notified("INSERT INTO bookings (event_id, user_id) "
                             "VALUES (%d, 1);" % e)
    assert notes == []
    _assert_committed_with_warning(db, e, res, error)
    # the paths without seats are guarded the same way
    _, res = db.notified("INSERT INTO seatcast_revoked_tokens (jti) "
                         "VALUES ('j');\nDELETE FROM events WHERE id = %d;"
                         % e)
    assert res.stderr.count("WARNING:  seatcast: notification not sent") == 2
    assert db.value("SELECT count(*) FROM seatcast_revoked_tokens") == "1"
    assert db.value("SELECT count(*) FROM events") == "0"


def test_full_queue_sheds_notifications(db):
    # pretend the 8 GB queue is past its limit: usage (0) >= limit (0)
    db.psql("CREATE OR REPLACE FUNCTION seatcast_queue_limit() RETURNS "
            "double precision LANGUAGE sql STABLE AS $$ SELECT 0.0::float8 $$")
    e = db.event(5)
    notes, res = db.notified("INSERT INTO bookings (event_id, user_id) "
                             "VALUES (%d, 1);" % e)
    assert notes == []
    _assert_committed_with_warning(db, e, res, "NOTIFY queue is 0.0% full")


def test_payload_too_long_does_not_fail_booking(db):
    # a queue function that pads the payload past NOTIFY's 8000 bytes
    db.psql("""
        CREATE OR REPLACE FUNCTION seatcast_queue(payload json) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify(seatcast_channel(),
                              payload::text || repeat(' ', 8000));
        END $$""")
    e = db.event(5)
    notes, res = db.notified("INSERT INTO bookings (event_id, user_id) "
                             "VALUES (%d, 1);" % e)
    assert notes == []
    _assert_committed_with_warning(db, e, res, "payload string too long")


def test_broken_view_does_not_fail_booking(db):
    db.psql("CREATE OR REPLACE VIEW seatcast_seat_state AS "
            "SELECT id AS event_id, available_seats / 0 AS available_seats, "
            "seat_capacity, version FROM events")
    e = db.event(5)
    notes, res = db.notified("INSERT INTO bookings (event_id, user_id) "
                             "VALUES (%d, 1);" % e)
    assert notes == []
    _assert_committed_with_warning(db, e, res, "division by zero")


def test_notify_sql_reapplied_repairs_overrides(db):
    db.psql("CREATE OR REPLACE FUNCTION seatcast_channel() RETURNS text "
            "LANGUAGE sql STABLE AS $$ SELECT ''::text $$")
    db.cluster.psql_file(NOTIFY, db=db.name)
    e = db.event(5)
    notes, res = db.notified("INSERT INTO bookings (event_id, user_id) "
                             "VALUES (%d, 1);" % e)
    assert [p["type"] for p in notes] == ["booking_created"]
    assert "WARNING" not in res.stderr
