#!/usr/bin/python3
"""dbcost.py - what seatcast costs the booking database (issue 11)

Bookings per second the database commits, from N concurrent pgbench writers
(one booking per transaction on a random one of 1000 events), fsync and
synchronous_commit on, in three setups:

    none      schema.sql only, no seatcast
    notify    schema.sql + notify.sql, seatcast --source notify running
    logical   schema.sql + logical.sql, seatcast --source logical running

Each setup runs ROUNDS times, interleaved (none, notify, logical, none, ...),
so that load from elsewhere on the machine spreads over all three; the
medians are reported, and the median of each round's ratio to `none`.  Run as root from the repository root:

    tests/bench/dbcost.py [--seatcast build/seatcast] [--clients 32]
                          [--seconds 10] [--rounds 3]
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pg import LOGICAL_SETTINGS, PgCluster, _clean_env  # noqa: E402

SCRIPT = ("\\set e random(1, 1000)\n"
          "INSERT INTO bookings (event_id, user_id) VALUES (:e, 1);\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_seatcast(binary, conninfo, source, logdir):
    port = free_port()
    env = dict(_clean_env(), SEATCAST_JWT_SECRET="x" * 40)
    log = open(os.path.join(logdir, "seatcast-%s.log" % source), "ab")
    p = subprocess.Popen([binary, "-l", "127.0.0.1:%d" % port, "-w", "1",
                          "-d", conninfo, "--source", source,
                          "--shm-name", "/sc-dbcost-%d" % port],
                         env=env, stdout=log, stderr=log,
                         start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            out = subprocess.run(["curl", "-s", "http://127.0.0.1:%d/healthz"
                                  % port], capture_output=True, text=True,
                                 timeout=5).stdout
            if '"status":"ok"' in out.replace(" ", ""):
                return p
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    raise RuntimeError("seatcast --source %s did not become healthy" % source)


def stop_seatcast(p):
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def pgbench(pg, db, script, clients, seconds):
    res = subprocess.run([os.path.join(pg.bindir, "pgbench"), "-n", "-h",
                          pg.host, "-p", str(pg.port), "-U", "postgres",
                          "-c", str(clients), "-j", "2", "-T", str(seconds),
                          "-f", script, db], env=_clean_env(),
                         capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)",
                  res.stdout)
    if res.returncode != 0 or m is None:
        raise RuntimeError("pgbench failed: %s %s" % (res.stdout, res.stderr))
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seatcast", default=os.path.join(ROOT, "build",
                                                       "seatcast"))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="dbcost-")
    script = os.path.join(work, "book.sql")
    with open(script, "w") as f:
        f.write(SCRIPT)
    settings = dict(LOGICAL_SETTINGS, fsync="on", synchronous_commit="on",
                    full_page_writes="on", max_connections=100)
    pg = PgCluster(settings=settings)
    results = {"none": [], "notify": [], "logical": []}
    try:
        pg.start()
        for db, files in (("plain", ("schema.sql", "logical.sql")),
                          ("notified", ("schema.sql", "notify.sql"))):
            pg.createdb(db)
            for f in files:
                pg.psql_file(os.path.join(ROOT, "sql", f), db=db)
            pg.psql("INSERT INTO events (name, seat_capacity) SELECT 'e' || "
                    "i, 1000000000 FROM generate_series(1, 1000) i", db=db)
        for r in range(args.rounds):
            for setup in ("none", "notify", "logical"):
                db = "notified" if setup == "notify" else "plain"
                srv = None
                if setup != "none":
                    srv = start_seatcast(args.seatcast, pg.conninfo(db),
                                         setup, work)
                try:
                    tps = pgbench(pg, db, script, args.clients, args.seconds)
                finally:
                    if srv is not None:
                        stop_seatcast(srv)
                results[setup].append(tps)
                print("round %d %-8s %8.0f bookings/s" % (r + 1, setup, tps),
                      flush=True)
    finally:
        pg.cleanup()
    med = {k: statistics.median(v) for k, v in results.items()}
    print("\n%d writers, fsync on, median of %d x %d s:" % (
        args.clients, args.rounds, args.seconds))
    for k in ("none", "notify", "logical"):
        print("  %-8s %8.0f bookings/s  (%.2fx none)" % (k, med[k],
                                                        med[k] / med["none"]))
    print("  logical / notify = %.2fx" % (med["logical"] / med["notify"]))
    # each round's setups ran back to back: their ratios are less exposed
    # to load that comes and goes on a shared machine
    for k in ("notify", "logical"):
        ratios = [a / b for a, b in zip(results[k], results["none"])]
        print("  %-8s / none per round: %s, median %.2fx" % (
            k, " ".join("%.2f" % r for r in ratios),
            statistics.median(ratios)))


if __name__ == "__main__":
    main()
