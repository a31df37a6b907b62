"""dbcost.py - what following the booking database costs the database
(make bench-dbcost)

Standard library only; Debian's /usr/bin/python3, as root (the cluster runs
as the postgres user through runuser).

    dbcost.py --seatcast build/seatcast --out build/bench \\
              [--writers "1 8 32"] [--seconds 15] [--sources "none notify logical"]
              [--repeat 1]

One throwaway PostgreSQL 15 cluster with fsync ON and synchronous_commit on
(the cost of NOTIFY is a lock held through the commit's WAL flush, so a
cluster that does not flush would hide it), wal_level=logical.  For each
source it makes a fresh database from sql/schema.sql with 1000 events, then

    none     nothing else: the database's own booking rate
    notify   sql/notify.sql, and seatcast --source notify following it
    logical  sql/logical.sql, and seatcast --source logical following it

waits until /healthz says seatcast follows the database, and runs pgbench
with W concurrent writers, each transaction one booking (one row inserted
into bookings for a random one of the 1000 events), for --seconds.  A source
the binary or the tree does not have yet is reported as n/a.

With --repeat R the sources take turns R times (none, notify, logical,
none, ...), each round in fresh databases: this machine's neighbours move
the rates by a third from one minute to the next, and taking turns lets
each round compare sources under the same weather.  The table shows the
median rate of each cell and the median of the rounds' ratios.

Writes dbcost.json (every round) and dbcost.txt under --out: bookings/s
per source and writer count, and each source's ratio to `none`.  Asserts
nothing.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from pg import PgCluster  # noqa: E402  (after the path is set)
from bench import free_port  # noqa: E402  (same directory)

EVENTS = 1000
SOURCE_SQL = {"none": [], "notify": ["sql/notify.sql"],
              "logical": ["sql/logical.sql"]}
PGBENCH_SCRIPT = """\\set ev random(1, %d)
\\set u random(1, 1000000)
INSERT INTO bookings (event_id, user_id, seats) VALUES (:ev, :u, 1);
""" % EVENTS


def log(msg):
    print("dbcost: " + msg, file=sys.stderr, flush=True)


def healthz(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        return r.status
    except OSError:
        return None
    finally:
        conn.close()


def make_db(pg, name, source):
    """A fresh database with the schema, the source's SQL and the events;
    False if the tree has no SQL for that source yet."""
    files = ["sql/schema.sql"] + SOURCE_SQL[source]
    if not all(os.path.exists(os.path.join(ROOT, f)) for f in files):
        return False
    pg.createdb(name)
    for f in files:
        pg.psql_file(os.path.join(ROOT, f), db=name)
    pg.psql("INSERT INTO events (name, starts_at, seat_capacity) "
            "SELECT 'bench ' || g, now() + interval '30 days', 1000000000 "
            "FROM generate_series(1, %d) g" % EVENTS, db=name)
    pg.psql("VACUUM ANALYZE", db=name)
    return True


class Server:
    """seatcast following database `db` (extra: its --source)."""

    def __init__(self, args, pg, db, source, extra, work):
        self.port = free_port()
        self.log_path = os.path.join(work, "seatcast-%s.log" % source)
        argv = [args.seatcast, "-l", "127.0.0.1:%d" % self.port,
                "--workers", "2", "--shm-name", "/sc-dbcost-%d" % self.port,
                "-d", pg.conninfo(db)] + extra
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PG", "SEATCAST_"))}
        env["SEATCAST_JWT_SECRET"] = "dbcost-bench-secret-of-32-bytes!"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)

    def wait_following(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if healthz(self.port) == 200:
                return True
            time.sleep(0.05)
        return False

    def log_tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def pgbench(pg, db, writers, seconds, script):
    argv = [os.path.join(pg.bindir, "pgbench"), "-n", "-c", str(writers),
            "-j", str(min(writers, 4)), "-T", str(seconds), "-f", script,
            "-h", pg.sockdir, "-p", str(pg.port), "-U", "postgres", db]
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=seconds + 120)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection", p.stdout)
    if p.returncode != 0 or m is None:
        raise RuntimeError("pgbench failed (%d): %s %s" % (
            p.returncode, p.stdout[-1000:], p.stderr[-1000:]))
    return float(m.group(1))


def source_args(seatcast, source):
    """The seatcast arguments that select source, or None when the binary
    cannot follow it (a build from before --source follows notify by
    default)."""
    if source == "none":
        return []
    p = subprocess.run([seatcast, "-t", "--source", source], env={
        "SEATCAST_JWT_SECRET": "dbcost-bench-secret-of-32-bytes!",
        "PATH": os.environ.get("PATH", "")},
        capture_output=True, text=True, timeout=30)
    if p.returncode == 0:
        return ["--source", source]
    return [] if source == "notify" else None


def run(args):
    work = tempfile.mkdtemp(prefix="seatcast-dbcost-")
    script = os.path.join(work, "book.sql")
    with open(script, "w") as f:
        f.write(PGBENCH_SCRIPT)
    os.chmod(work, 0o755)
    os.chmod(script, 0o644)
    rows = []
    settings = {"fsync": "on", "synchronous_commit": "on",
                "full_page_writes": "on", "wal_level": "logical",
                "max_replication_slots": 8, "max_wal_senders": 8,
                "max_connections": 200}
    try:
        with PgCluster(settings=settings) as pg:
            for rnd in range(args.repeat):
                rows.append(run_round(args, pg, rnd, script, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def run_round(args, pg, rnd, script, work):
    """One turn of every source: [{"source", "tps": {writers: rate}}]."""
    rows = []
    for source in args.sources:
        db = "dbcost_%s_%d" % (source, rnd)
        extra = source_args(args.seatcast, source)
        if extra is None or not make_db(pg, db, source):
            log("%s: not in this tree/binary, n/a" % source)
            rows.append({"source": source, "tps": None})
            continue
        srv = None
        if source != "none":
            srv = Server(args, pg, db, source, extra, work)
            if not srv.wait_following():
                log("%s: seatcast did not follow the database:\n%s"
                    % (source, srv.log_tail()))
                srv.stop()
                rows.append({"source": source, "tps": None})
                continue
        tps = {}
        try:
            for w in args.writers:
                tps[w] = pgbench(pg, db, w, args.seconds, script)
                log("round %d: %-8s %3d writers: %8.0f bookings/s"
                    % (rnd + 1, source, w, tps[w]))
        finally:
            if srv is not None:
                srv.stop()
            # the next rounds start clean: no slot left holding WAL
            pg.psql("SELECT pg_drop_replication_slot(slot_name) "
                    "FROM pg_replication_slots WHERE NOT active")
            pg.psql("DROP DATABASE %s" % db)
        rows.append({"source": source, "tps": tps})
    return rows


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def report(args, rounds):
    def tps(rnd, source):
        return next((r["tps"] for r in rnd if r["source"] == source), None)

    lines = ["bookings/s committed by PostgreSQL 15 (fsync on), one booking "
             "per transaction, %d s per cell%s" % (
                 args.seconds,
                 "; median of %d rounds (rate; median of the rounds' "
                 "ratios)" % len(rounds) if len(rounds) > 1 else ""), "",
             "| writers | " + " | ".join(args.sources) + " |",
             "|---|" + "---|" * len(args.sources)]
    for w in args.writers:
        cells = []
        for source in args.sources:
            got = [(tps(r, source), tps(r, "none")) for r in rounds]
            got = [(t, b) for t, b in got if t is not None]
            if not got:
                cells.append("n/a")
                continue
            v = median([t[w] for t, _ in got])
            ratios = [t[w] / b[w] for t, b in got if b is not None and b[w]]
            if source != "none" and ratios:
                cells.append("%.0f (%.2fx)" % (v, median(ratios)))
            else:
                cells.append("%.0f" % v)
        lines.append("| %d | %s |" % (w, " | ".join(cells)))
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "dbcost.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "dbcost.json"), "w") as f:
        json.dump({"seconds": args.seconds, "writers": args.writers,
                   "rounds": rounds}, f, indent=1)
    print(text, end="")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seatcast", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--writers", default="1 8 32")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--sources", default="none notify logical")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    args.writers = [int(x) for x in args.writers.split()]
    args.sources = args.sources.split()
    args.seatcast = os.path.abspath(args.seatcast)
    if os.geteuid() != 0:
        log("must run as root (runuser for PostgreSQL)")
        return 2
    report(args, run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
