"""bench.py - seatcast's benchmark driver (make bench, make bench-smoke)

Standard library only; run with Debian's /usr/bin/python3, as root (the
cluster runs as the postgres user through runuser).  Descriptors: the
server gets min(N + 4096, hard limit) and enough workers for each to hold
its share within the hard limit, which root cannot raise here (no
CAP_SYS_RESOURCE); the loadgen forks client processes for the same reason.

    bench.py --seatcast build/seatcast --loadgen build/bench/loadgen \\
             --out build/bench --n "1000 10000 50000 100000"
    bench.py ... --smoke          # N=200, short; exit 1 on loss/dup/reorder
    bench.py ... --onsale "10000 3000 1000" --repeat 3
                                  # N subscribers, K bookings at R/s

It starts a throwaway PostgreSQL 15 cluster (tests/integration/pg.py),
applies sql/schema.sql and sql/notify.sql, creates the events (capacity
--capacity each), mints ONE token with `seatcast token`, then for each N
starts a fresh seatcast (so that its memory baseline is its own), runs
build/bench/loadgen against it, stops it, and keeps the loadgen's JSON.
At the end it writes, under --out:
    results.json   one object per N (the loadgen's report plus the setup)
    results.txt    the table
    results.dat    the table's numbers for gnuplot
    bench.png      deliveries/s and p99 latency against N (not in --smoke)
and with --perf, perf-N.txt: where the server's CPU went (perf record -g
on every seatcast process during the run).

--onsale "N K R[, N K R ...]" runs the onsale scenario instead: N
subscribers of one event, K bookings committed at R per second, each
scenario --repeat times with a fresh seatcast; it writes onsale.json (every
run and the median) and onsale.txt (the table).  Freshness, for each
booking and subscriber: from the booking's COMMIT to the first message
showing its count or a newer one (counts may be skipped by a server that
merges, SPEC 4 "Surges").

The bench reports and asserts nothing, except --smoke: zero lost,
duplicated or reordered deliveries, every connection opened; and
--onsale ... --check: every subscriber opened, none dropped, none saw an
older count after a newer one or missed a booking, all end on the
database's count, and the "bookings" fields add up.
"""

import argparse
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from pg import PgCluster  # noqa: E402  (after the path is set)

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nofile_for(n):
    """Descriptors for a process holding n sockets, within the hard limit
    (raising the hard limit needs CAP_SYS_RESOURCE, which root may lack:
    it does on the bench machine, where the hard limit is 20000)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return n + 4096
    return min(n + 4096, hard)


def workers_for(args, n):
    """--workers, or 2, or as many as needed for each to hold its share of
    n connections within the descriptor limit (seatcast spreads them
    evenly: least-loaded worker first), with a quarter to spare."""
    if args.workers > 0:
        return args.workers
    per = nofile_for(10 ** 9) * 3 // 4
    return max(2, -(-n // per))


def clean_env():
    """The environment without PG* and SEATCAST_* variables."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("PG") and not k.startswith("SEATCAST_")}


# ------------------------------------------------------------------ #
# Database and token                                                   #

def setup_db(pg, events, capacity):
    pg.psql_file(os.path.join(ROOT, "sql", "schema.sql"))
    pg.psql_file(os.path.join(ROOT, "sql", "notify.sql"))
    pg.psql("INSERT INTO events (name, seat_capacity) "
            "SELECT 'bench ' || g, %d FROM generate_series(1, %d) g"
            % (capacity, events))
    first = int(pg.query_value("SELECT min(id) FROM events"))
    return first


def mint_token(seatcast, workdir):
    secret = os.path.join(workdir, "jwt-secret")
    with open(secret, "w") as f:
        f.write(secrets.token_hex(32))
    os.chmod(secret, 0o600)
    res = subprocess.run([seatcast, "token", "--sub", "1", "--ttl", "86400",
                          "--jwt-secret-file", secret],
                         env=clean_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, check=True)
    token = os.path.join(workdir, "token")
    with open(token, "w") as f:
        f.write(res.stdout.strip() + "\n")
    return secret, token


# ------------------------------------------------------------------ #
# The server                                                           #

class Server:
    """One seatcast master and its children, for one N."""

    def __init__(self, args, n, conninfo, secret, logdir, tag=None,
                 extra=()):
        self.port = free_port()
        self.nofile = nofile_for(n)
        self.workers = workers_for(args, n)
        self.argv = [args.seatcast,
                     "--listen", "127.0.0.1:%d" % self.port,
                     "--workers", str(self.workers),
                     "--database", conninfo,
                     "--jwt-secret-file", secret,
                     "--max-connections", str(n + 1000),
                     "--shm-name", "/sc-bench-%d-%s" % (os.getpid(),
                                                         tag or n),
                     "--log-level", "warn"] + list(extra) + args.server_arg
        self.logpath = os.path.join(logdir, "seatcast-%s.log" % (tag or n))
        self.proc = None

    def _limits(self):
        # seatcast does not raise its own limit: its processes inherit this
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))

    def start(self, timeout=20):
        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(
                self.argv, env=clean_env(), stdin=subprocess.DEVNULL,
                stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=self._limits, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("seatcast exited with %d; see %s"
                                   % (self.proc.returncode, self.logpath))
            if self.healthy():
                return
            time.sleep(0.05)
        raise RuntimeError("seatcast not healthy after %d s; see %s"
                           % (timeout, self.logpath))

    def healthy(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def metrics(self):
        """{series: value} of /metrics ({} if it does not answer)."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
            c.close()
        except OSError:
            return {}
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def pids(self):
        """The master and its children (workers, listener)."""
        out = [self.proc.pid]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2:].split()[1] == str(self.proc.pid):
                out.append(int(d))
        return out

    def stop(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log("seatcast did not stop in %d s: killing it" % timeout)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


# ------------------------------------------------------------------ #
# One run                                                              #

def loadgen_argv(args, n, server, conninfo, token, first_event):
    return [args.loadgen,
            "--port", str(server.port),
            "--token-file", token,
            "--database", conninfo,
            "--server-pid", str(server.proc.pid),
            "--conns", str(n),
            "--window", str(args.window),
            "--events", str(args.events),
            "--first-event", str(first_event),
            "--burst", str(args.burst),
            "--paced-rate", str(args.paced_rate),
            "--paced-seconds", str(args.paced_seconds),
            "--settle", str(args.settle),
            "--procs", str(args.procs),
            "--per-source", str(args.per_source)]


def start_perf(args, server, n):
    if not args.perf:
        return None
    data = os.path.join(args.out, "perf-%s.data" % n)
    pids = ",".join(str(p) for p in server.pids())
    return subprocess.Popen(["perf", "record", "-q", "-g", "-F", "499",
                             "-o", data, "-p", pids],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_perf(args, perf, n):
    if perf is None:
        return
    perf.send_signal(signal.SIGINT)
    perf.wait()
    data = os.path.join(args.out, "perf-%s.data" % n)
    txt = os.path.join(args.out, "perf-%s.txt" % n)
    with open(txt, "w") as f:
        subprocess.run(["perf", "report", "-i", data, "--stdio",
                        "--no-children", "--sort", "comm,dso,symbol",
                        "-g", "none", "--percent-limit", "0.5"],
                       stdout=f, stderr=subprocess.DEVNULL)
    log("perf profile of the server: %s" % txt)


def run_one(args, n, pg, secret, token, first_event):
    # the burst counts every seat_update: it measures delivering all of
    # them, so nothing is merged (--max-lag 0; a 50-booking burst to
    # 10 000 subscribers would merge by default: bench-onsale measures that)
    server = Server(args, n, pg.conninfo(), secret, args.out,
                    extra=["--max-lag", "0"])
    log("N=%d: seatcast --workers %d on port %d (RLIMIT_NOFILE %d)"
        % (n, server.workers, server.port, server.nofile))
    server.start()
    perf = None
    try:
        perf = start_perf(args, server, n)
        res = subprocess.run(loadgen_argv(args, n, server, pg.conninfo(),
                                          token, first_event),
                             stdout=subprocess.PIPE, text=True,
                             timeout=args.timeout)
    finally:
        stop_perf(args, perf, n)
        server.stop()
    if res.returncode != 0 or not res.stdout.strip():
        raise RuntimeError("loadgen failed (exit %d) at N=%d"
                           % (res.returncode, n))
    out = json.loads(res.stdout)
    out["workers"] = server.workers
    return out


# ------------------------------------------------------------------ #
# Report                                                               #

COLUMNS = [
    # header, width, function of one result
    ("N", 7, lambda r: "%d" % r["n"]),
    ("open", 7, lambda r: "%d" % r["opened"]),
    ("fail", 5, lambda r: "%d" % r["failed"]),
    ("wrk", 3, lambda r: "%d" % r["workers"]),
    ("cli", 3, lambda r: "%d" % r["client_procs"]),
    ("hs/s", 7, lambda r: "%.0f" % r["handshake"]["per_sec"]),
    ("B/conn", 7, lambda r: "%.0f" % r["memory"]["bytes_per_conn"]),
    ("msg/s", 9, lambda r: "%.0f" % r["burst"]["messages_per_sec"]),
    ("upd/s", 9, lambda r: "%.0f" % r["burst"]["updates_per_sec"]),
    ("p50ms", 7, lambda r: "%.1f" % r["burst"]["latency_ms"]["p50"]),
    ("p90ms", 7, lambda r: "%.1f" % r["burst"]["latency_ms"]["p90"]),
    ("p99ms", 7, lambda r: "%.1f" % r["burst"]["latency_ms"]["p99"]),
    ("maxms", 7, lambda r: "%.1f" % r["burst"]["latency_ms"]["max"]),
    ("pcd99", 7, lambda r: "%.1f" % r["paced"]["latency_ms"]["p99"]),
    ("ns/msg", 7, lambda r: "%.0f" % r["burst"]["cpu_ns_per_message"]),
    ("ns/upd", 7, lambda r: "%.0f" % r["burst"]["cpu_ns_per_update"]),
    ("lost", 5, lambda r: "%d" % (r["burst"]["lost"] + r["paced"]["lost"])),
    ("dup", 4, lambda r: "%d" % (r["burst"]["duplicates"]
                                 + r["paced"]["duplicates"])),
    ("reord", 5, lambda r: "%d" % (r["burst"]["reordered"]
                                   + r["paced"]["reordered"])),
]

LEGEND = """\
wrk     seatcast workers; cli: loadgen client processes (fd limit 20000)
hs/s    handshakes per second opening N connections, 256 in flight
        (connect() to the snapshot seat_update)
B/conn  server Pss (all sc-* processes) after minus before, per connection
msg/s   burst: booking_created + seat_update frames received by all
        subscribers per second, first COMMIT returned -> last frame read
upd/s   the same for seat_update frames only (one per booking and client)
pNNms   burst: commit (PQexec of COMMIT returned) -> seat_update read
pcd99   paced run (2 bookings/s): p99 of the same latency
ns/msg  burst: server utime+stime (all sc-* processes) per message
ns/upd  the same per seat_update
lost/dup/reord  seat_updates missing, repeated, out of commit order
        (burst + paced; all must be 0)"""


def table(results):
    head = " ".join(h.rjust(w) for h, w, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(" ".join(f(r).rjust(w) for _, w, f in COLUMNS))
    return "\n".join(lines) + "\n\n" + LEGEND + "\n"


def write_reports(args, results):
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    text = table(results)
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.dat"), "w") as f:
        f.write("# N msg/s upd/s burst_p99_ms paced_p99_ms\n")
        for r in results:
            f.write("%d %.0f %.0f %.3f %.3f\n" % (
                r["n"], r["burst"]["messages_per_sec"],
                r["burst"]["updates_per_sec"],
                r["burst"]["latency_ms"]["p99"],
                r["paced"]["latency_ms"]["p99"]))
    print(text, end="")


def plot(args):
    if shutil.which("gnuplot") is None:
        log("gnuplot not found: no chart (make bench-deps installs it)")
        return
    png = os.path.join(args.out, "bench.png")
    subprocess.run(["gnuplot", "-e",
                    "datafile='%s'; outfile='%s'" % (
                        os.path.join(args.out, "results.dat"), png),
                    os.path.join(HERE, "bench.gp")], check=True)
    log("chart: %s" % png)


def smoke_failures(results):
    """What --smoke refuses: loss, duplicates, reordering, or nothing
    delivered at all (an empty run proves nothing)."""
    bad = []
    for r in results:
        for ph in ("burst", "paced"):
            p = r[ph]
            for key in ("lost", "lost_created", "duplicates", "reordered",
                        "unexpected"):
                if p[key] != 0:
                    bad.append("N=%d %s: %s=%d" % (r["n"], ph, key, p[key]))
            if p["committed"] == 0 or p["expected_updates"] == 0:
                bad.append("N=%d %s: nothing delivered (%s)"
                           % (r["n"], ph, p["error"] or "no connection"))
        if r["opened"] != r["n"]:
            bad.append("N=%d: %d of %d connections opened (%r)"
                       % (r["n"], r["opened"], r["n"], r["fail_reasons"]))
    return bad


# ------------------------------------------------------------------ #
# Onsale                                                               #

def parse_onsale(text):
    """ "N K R, N K R" -> [(N, K, R), ...] """
    out = []
    for part in text.replace(";", ",").split(","):
        f = part.split()
        if not f:
            continue
        if len(f) != 3:
            raise SystemExit("bench: --onsale: expected \"N K R\" triples, "
                             "got %r" % part.strip())
        out.append((int(f[0]), int(f[1]), float(f[2])))
    return out


def run_onsale_one(args, n, k, rate, run, pg, secret, token, first_event):
    tag = "onsale-%d-%d-%d" % (n, k, run)
    server = Server(args, n, pg.conninfo(), secret, args.out, tag)
    log("onsale N=%d K=%d R=%g run %d: seatcast --workers %d on port %d "
        "(RLIMIT_NOFILE %d)" % (n, k, rate, run, server.workers, server.port,
                                server.nofile))
    server.start()
    perf = None
    argv = [args.loadgen,
            "--port", str(server.port),
            "--token-file", token,
            "--database", pg.conninfo(),
            "--server-pid", str(server.proc.pid),
            "--conns", str(n),
            "--window", str(args.window),
            "--events", "1",
            "--first-event", str(first_event),
            "--onsale-bookings", str(k),
            "--onsale-rate", str(rate),
            "--onsale-dump", os.path.join(args.out, tag + ".dump"),
            "--read-pause-us", str(args.read_pause_us),
            "--settle", str(args.settle),
            "--drain-timeout", str(args.drain_timeout),
            "--procs", str(args.procs),
            "--per-source", str(args.per_source)]
    metrics = {}
    try:
        perf = start_perf(args, server, tag)
        res = subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                             timeout=args.timeout)
        metrics = server.metrics()
    finally:
        stop_perf(args, perf, tag)
        server.stop()
    if res.returncode != 0 or not res.stdout.strip():
        raise RuntimeError("loadgen failed (exit %d): onsale N=%d K=%d"
                           % (res.returncode, n, k))
    out = json.loads(res.stdout)
    out["workers"] = server.workers
    out["run"] = run
    o = out["onsale"]
    o["merged"] = int(metrics.get("seatcast_merged_changes_total", 0))
    o["ring_wait_p99_ms"] = hist_quantile(
        metrics, "seatcast_ring_wait_seconds", 0.99) * 1000
    log("onsale N=%d K=%d R=%g run %d: freshness p50 %.1f p99 %.1f max %.1f "
        "ms; %d/%d on the final count; bookings %d/%d; dropped %d"
        % (n, k, rate, run, o["freshness_ms"]["p50"],
           o["freshness_ms"]["p99"], o["freshness_ms"]["max"],
           o["final_count_subscribers"], o["connections"],
           o["bookings_sum"], o["bookings_expected"], o["dropped"]))
    return out


def hist_quantile(metrics, name, q):
    """The upper bound of the bucket holding quantile q of a /metrics
    histogram (the bounds are coarse: 1 2 5 10 25 50 100 250 ... ms); -1
    when nothing was observed."""
    count = metrics.get(name + "_count", 0)
    if count <= 0:
        return -1
    bounds = sorted((float(k.split('le="')[1].rstrip('"}')), v)
                    for k, v in metrics.items()
                    if k.startswith(name + "_bucket{") and "+Inf" not in k)
    for le, cum in bounds:
        if cum >= q * count:
            return le
    return float("inf")


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1]
                                                + v[len(v) // 2]) / 2


def onsale_summary(runs):
    """Medians of the timing figures, the worst of the checks."""
    o = [r["onsale"] for r in runs]
    fresh = {q: median([x["freshness_ms"][q] for x in o])
             for q in ("p50", "p90", "p99", "p999", "max", "mean")}
    return {
        "runs": len(runs),
        "freshness_ms": fresh,
        "commit_rate": median([x["commit_rate"] for x in o]),
        "messages": median([x["messages"] for x in o]),
        "server_cpu_ms": median([x["server_cpu_ms"] for x in o]),
        "client_cpu_ms": median([x["client_cpu_ms"] for x in o]),
        # the checks: the worst run
        "opened_min": min(r["opened"] for r in runs),
        "final_count_subscribers_min": min(x["final_count_subscribers"]
                                           for x in o),
        "bookings_sum_subscribers_min": min(x["bookings_sum_subscribers"]
                                            for x in o),
        "bookings_sums_equal": all(x["bookings_sum"] == x["bookings_expected"]
                                   for x in o),
        "older_after_newer_max": max(x["older_after_newer"] for x in o),
        "missing_max": max(x["missing"] for x in o),
        "dropped_max": max(x["dropped"] for x in o),
    }


ONSALE_COLUMNS = [
    ("N", 7, lambda r, o: "%d" % r["n"]),
    ("K", 6, lambda r, o: "%d" % o["bookings"]),
    ("R/s", 6, lambda r, o: "%g" % o["rate"]),
    ("run", 3, lambda r, o: "%s" % r["run"]),
    ("wrk", 3, lambda r, o: "%d" % r["workers"]),
    ("cli", 3, lambda r, o: "%d" % r["client_procs"]),
    ("com/s", 6, lambda r, o: "%.0f" % o["commit_rate"]),
    ("p50ms", 8, lambda r, o: "%.1f" % o["freshness_ms"]["p50"]),
    ("p90ms", 8, lambda r, o: "%.1f" % o["freshness_ms"]["p90"]),
    ("p99ms", 8, lambda r, o: "%.1f" % o["freshness_ms"]["p99"]),
    ("maxms", 8, lambda r, o: "%.1f" % o["freshness_ms"]["max"]),
    ("final", 7, lambda r, o: "%d" % o["final_count_subscribers"]),
    ("of", 7, lambda r, o: "%d" % o["connections"]),
    ("bookings", 10, lambda r, o: "%d" % o["bookings_sum"]),
    ("sum_ok", 6, lambda r, o: "yes" if o["bookings_sum"]
     == o["bookings_expected"] else "NO"),
    ("older", 5, lambda r, o: "%d" % o["older_after_newer"]),
    ("miss", 5, lambda r, o: "%d" % o["missing"]),
    ("drop", 4, lambda r, o: "%d" % o["dropped"]),
    ("msgs", 10, lambda r, o: "%d" % o["messages"]),
    ("merged", 8, lambda r, o: "%d" % o.get("merged", 0)),
    ("wait99", 6, lambda r, o: "%g" % o.get("ring_wait_p99_ms", -1)),
    ("srv_s", 6, lambda r, o: "%.1f" % (o["server_cpu_ms"] / 1e3)),
    ("cli_s", 6, lambda r, o: "%.1f" % (o["client_cpu_ms"] / 1e3)),
]

ONSALE_LEGEND = """\
N K R/s   subscribers of one event, bookings, bookings per second asked;
          wrk seatcast workers, cli loadgen client processes
com/s     bookings per second really committed (one session, one
          transaction each)
pNNms     freshness over every (subscriber, booking): from the booking's
          COMMIT returned to the read of the first message showing its
          count or a newer one (100 us buckets; max exact)
final     subscribers whose last seat_update shows the database's count,
          of the subscribers open when the bookings began
bookings  sum of "bookings" (absent = 1) of every booking_created received;
          sum_ok: equal to K x subscribers
older     messages showing an older count after a newer one (must be 0)
miss      (subscriber, booking) pairs no message ever covered (must be 0)
drop      connections lost during the bookings (must be 0)
msgs      seat_update + booking_created messages received
merged    changes the workers delivered inside merged messages (--max-lag;
          counted once per worker, not per subscriber)
wait99    p99 of how long changes waited in the ring for a worker, ms
          (the upper bound of its /metrics bucket: 1 2 5 10 25 50 100
          250 500 1000 2500 5000)
srv_s     server CPU (all sc-* processes, utime+stime) during the bookings
          and the drain; cli_s: the loadgen's client processes
median    row: the median of each timing column over the runs, and the
          worst run of each check (min final, max older/miss/drop)"""


def onsale_table(scenarios):
    head = " ".join(h.rjust(w) for h, w, _ in ONSALE_COLUMNS)
    lines = [head, "-" * len(head)]
    for sc in scenarios:
        for r in sc["runs"]:
            lines.append(" ".join(f(r, r["onsale"]).rjust(w)
                                  for _, w, f in ONSALE_COLUMNS))
        m = sc["median"]
        first = sc["runs"][0]
        row = dict(first["onsale"])
        row.update({
            "commit_rate": m["commit_rate"],
            "freshness_ms": m["freshness_ms"],
            "final_count_subscribers": m["final_count_subscribers_min"],
            "bookings_sum": min(r["onsale"]["bookings_sum"]
                                for r in sc["runs"]),
            "bookings_expected": (row["bookings_expected"]
                                  if m["bookings_sums_equal"] else -1),
            "older_after_newer": m["older_after_newer_max"],
            "missing": m["missing_max"],
            "dropped": m["dropped_max"],
            "messages": m["messages"],
            "merged": median([r["onsale"].get("merged", 0)
                              for r in sc["runs"]]),
            "ring_wait_p99_ms": median([r["onsale"].get("ring_wait_p99_ms",
                                                        -1)
                                        for r in sc["runs"]]),
            "server_cpu_ms": m["server_cpu_ms"],
            "client_cpu_ms": m["client_cpu_ms"],
        })
        if len(sc["runs"]) > 1:
            fake = dict(first, run="med")
            lines.append(" ".join(f(fake, row).rjust(w)
                                  for _, w, f in ONSALE_COLUMNS))
    return "\n".join(lines) + "\n\n" + ONSALE_LEGEND + "\n"


def onsale_failures(scenarios):
    """What --check refuses, run by run."""
    bad = []
    for sc in scenarios:
        for r in sc["runs"]:
            o = r["onsale"]
            what = "N=%d K=%d run %s" % (r["n"], o["bookings"], r["run"])
            if r["opened"] != r["n"]:
                bad.append("%s: %d of %d connections opened (%r)"
                           % (what, r["opened"], r["n"], r["fail_reasons"]))
            if o["committed"] != o["bookings"] or o["error"]:
                bad.append("%s: %d of %d bookings committed (%s)"
                           % (what, o["committed"], o["bookings"],
                              o["error"]))
            if o["final_count_subscribers"] != o["connections"]:
                bad.append("%s: %d of %d subscribers end on the final count"
                           % (what, o["final_count_subscribers"],
                              o["connections"]))
            if o["bookings_sum"] != o["bookings_expected"] or \
                    o["bookings_sum_subscribers"] != o["connections"]:
                bad.append("%s: bookings add up to %d, expected %d (%d of "
                           "%d subscribers right)"
                           % (what, o["bookings_sum"], o["bookings_expected"],
                              o["bookings_sum_subscribers"],
                              o["connections"]))
            for key in ("older_after_newer", "missing", "dropped",
                        "bookings_field_bad", "bookings_step_bad",
                        "booking_cancelled", "unexpected"):
                if o[key] != 0:
                    bad.append("%s: %s=%d" % (what, key, o[key]))
            if not r["db_consistent"]:
                bad.append("%s: the database's seats are not the expected "
                           "ones" % what)
    return bad


def main_onsale(args):
    scenarios = []
    work = tempfile.mkdtemp(prefix="seatcast-bench-")
    try:
        with PgCluster() as pg:
            first_event = setup_db(pg, 1, args.capacity)
            secret, token = mint_token(args.seatcast, work)
            for n, k, rate in args.onsale_list:
                runs = [run_onsale_one(args, n, k, rate, run, pg, secret,
                                       token, first_event)
                        for run in range(1, args.repeat + 1)]
                scenarios.append({"n": n, "bookings": k, "rate": rate,
                                  "runs": runs,
                                  "median": onsale_summary(runs)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(args.out, "onsale.json"), "w") as f:
        json.dump(scenarios, f, indent=1)
        f.write("\n")
    text = onsale_table(scenarios)
    with open(os.path.join(args.out, "onsale.txt"), "w") as f:
        f.write(text)
    print(text, end="")
    if args.check:
        bad = onsale_failures(scenarios)
        for b in bad:
            log("FAIL " + b)
        if bad:
            return 1
        log("onsale check: every subscriber fresh-tracked, on the final "
            "count, bookings add up, nothing older after newer")
    return 0


# ------------------------------------------------------------------ #
# Main                                                                 #

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seatcast", default=os.path.join(ROOT, "build",
                                                      "seatcast"))
    p.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench",
                                                     "loadgen"))
    p.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--n", default="1000 10000 50000 100000",
                   help="connection counts, space-separated")
    p.add_argument("--per-source", type=int, default=0,
                   help="connections per loopback source address (0: "
                   "auto, ~9 900)")
    p.add_argument("--workers", type=int, default=0,
                   help="seatcast workers (0: 2, or more when N needs "
                   "more descriptors than 2 workers may hold)")
    p.add_argument("--events", type=int, default=1,
                   help="spread connections over this many events")
    p.add_argument("--capacity", type=int, default=1000000)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--procs", type=int, default=0,
                   help="loadgen client processes (0: as few as the "
                   "descriptor limit allows)")
    p.add_argument("--burst", type=int, default=50)
    p.add_argument("--paced-rate", type=float, default=2)
    p.add_argument("--paced-seconds", type=float, default=5)
    p.add_argument("--settle", type=float, default=1)
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds allowed to one loadgen run")
    p.add_argument("--server-arg", action="append", default=[],
                   help="one more seatcast argument (repeatable)")
    p.add_argument("--perf", action="store_true",
                   help="profile the server with perf record -g")
    p.add_argument("--smoke", action="store_true",
                   help="N=200, 3 s paced; fail on loss/dup/reorder")
    p.add_argument("--onsale", default="",
                   help="onsale scenarios instead of the N sweep: \"N K R\" "
                   "(N subscribers of one event, K bookings at R/s), "
                   "several separated by commas")
    p.add_argument("--repeat", type=int, default=1,
                   help="onsale: runs of each scenario (a fresh seatcast "
                   "each); the table adds their median")
    p.add_argument("--read-pause-us", type=int, default=1000,
                   help="onsale: the loadgen's clients pause this long "
                   "after a wait that found few sockets ready (batches "
                   "their wake-ups; tests/bench/README.md)")
    p.add_argument("--check", action="store_true",
                   help="onsale: exit 1 unless every run is exact (no drop, "
                   "no older count, no miss, final counts, bookings sums)")
    p.add_argument("--drain-timeout", type=float, default=60,
                   help="onsale: seconds without a message that end the "
                   "wait for the last one")
    args = p.parse_args(argv)
    args.onsale_list = parse_onsale(args.onsale)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.smoke:
        args.n, args.paced_seconds, args.settle = "200", 3, 0.5
    args.ns = [int(x) for x in args.n.replace(",", " ").split()]
    args.seatcast = os.path.abspath(args.seatcast)
    args.loadgen = os.path.abspath(args.loadgen)
    args.out = os.path.abspath(args.out)
    return args


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        log("must run as root (runuser for PostgreSQL, RLIMIT_NOFILE)")
        return 2
    os.makedirs(args.out, exist_ok=True)
    if args.onsale_list:
        return main_onsale(args)
    work = tempfile.mkdtemp(prefix="seatcast-bench-")
    results = []
    try:
        with PgCluster() as pg:
            first_event = setup_db(pg, args.events, args.capacity)
            secret, token = mint_token(args.seatcast, work)
            for n in args.ns:
                results.append(run_one(args, n, pg, secret, token,
                                       first_event))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_reports(args, results)
    if args.smoke:
        bad = smoke_failures(results)
        for b in bad:
            log("FAIL " + b)
        if bad:
            return 1
        log("smoke: no loss, no duplicates, no reordering")
        return 0
    plot(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
