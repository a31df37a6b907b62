"""server.py - run a real seatcast server tree for integration tests.

Standard library plus Debian's python3-websockets (10.4); run the suite with
Debian's /usr/bin/python3.

    srv = Seatcast(tmp_path, workers=3)       # nothing runs yet
    srv.start()                               # waits until every child runs
    srv.stats()["totals"]["connections"]      # `seatcast stats --json`
    ws, hello = await ws_open(srv)            # a WebSocket client, greeted
    await ws_ping(ws)                         # {"type":"ping"} -> pong
    srv.stop()                                # SIGTERM; exit code

A Seatcast listens on 127.0.0.1 at a free port (bound to port 0 to pick
it) unless `listen=` names other addresses, uses the shared-memory name
/sc-test-PORT, and writes its stdout and stderr to tmp_path/seatcast-PORT.log.
It never connects to PostgreSQL unless `database=` is given: the listener
then retries forever and /healthz says "degraded", which process tests
expect.  kill_tree() SIGKILLs the master and every process of its tree
(found through the registry's pids, /proc ppid links and the process group,
as the master runs in a session of its own); the conftest fixture
make_server calls it for every server at teardown, whatever happened.

Polling, never fixed sleeps: wait_for(predicate, timeout, what) checks
every 20 ms and fails with `what` and the last value seen.
"""

import asyncio
import errno
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import websockets

__all__ = [
    "Seatcast", "SeatcastError", "wait_for", "async_wait_for", "procs_named",
    "proc_info", "pid_alive", "free_port", "run_seatcast", "seatcast_bin",
    "ws_open", "ws_ping", "ws_recv_json", "ws_closed", "tcp_peer_ports",
    "shm_path", "ROOT", "TEST_SECRET",
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
POLL = 0.02
# the default SEATCAST_JWT_SECRET of a test server: 64 bytes, enough for
# HS512 (RFC 7518 3.2 wants the key as long as the hash)
TEST_SECRET = ("test-secret-0123456789abcdef0123456789abcdef"
               "0123456789abcdef0123")


class SeatcastError(AssertionError):
    """A server did not do what a test waited for (an assertion failure)."""


# ------------------------------------------------------------------ #
# Polling                                                              #

def wait_for(predicate, timeout, what, interval=POLL):
    """Calls predicate() every `interval` s until it returns a true value,
    which is returned.  After `timeout` s fails with `what` and the last
    value (or exception) seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except (OSError, ValueError, KeyError, SeatcastError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise SeatcastError("timed out after %.1f s waiting for %s "
                                "(last: %r)" % (timeout, what, last))
        time.sleep(interval)


async def async_wait_for(predicate, timeout, what, interval=POLL):
    """wait_for() for coroutines: the event loop keeps running between
    polls (clients answer close frames meanwhile).  predicate is a plain
    function."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except (OSError, ValueError, KeyError, SeatcastError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise SeatcastError("timed out after %.1f s waiting for %s "
                                "(last: %r)" % (timeout, what, last))
        await asyncio.sleep(interval)


# ------------------------------------------------------------------ #
# Processes                                                            #

def proc_info(pid):
    """{pid, ppid, pgrp, state, starttime, comm, cmdline} of a process, or
    None if it is gone.  cmdline keeps its NULs stripped at the end and
    the inner ones turned into spaces."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        with open("/proc/%d/comm" % pid, "rb") as f:
            comm = f.read().decode("utf-8", "replace").rstrip("\n")
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as e:
        if e.errno in (errno.ESRCH, errno.ENOENT):
            return None
        raise
    rest = stat[stat.rindex(")") + 2:].split()
    return {
        "pid": pid,
        "state": rest[0],
        "ppid": int(rest[1]),
        "pgrp": int(rest[2]),
        "starttime": int(rest[19]),
        "comm": comm,
        "cmdline": raw.rstrip(b"\0").replace(b"\0", b" ").decode(
            "utf-8", "replace"),
    }


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def pid_alive(pid):
    """True if pid runs (a zombie counts as dead: init may be slow to
    reap orphans in containers)."""
    info = proc_info(pid)
    return info is not None and info["state"] not in ("Z", "X")


def procs_named(prefix, include_zombies=False):
    """Processes whose /proc/PID/comm or cmdline starts with prefix."""
    out = []
    for pid in all_pids():
        info = proc_info(pid)
        if info is None:
            continue
        if not include_zombies and info["state"] in ("Z", "X"):
            continue
        if info["comm"].startswith(prefix) or \
                info["cmdline"].startswith(prefix):
            out.append(info)
    return out


def descendants(root):
    """Live pids below root (ppid links), found in one /proc scan."""
    children = {}
    for pid in all_pids():
        info = proc_info(pid)
        if info is not None:
            children.setdefault(info["ppid"], []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def shm_path(name):
    return "/dev/shm/" + name.lstrip("/")


def seatcast_bin():
    """$SEATCAST_BIN, else build/seatcast of this checkout."""
    path = os.environ.get("SEATCAST_BIN") or os.path.join(
        ROOT, "build", "seatcast")
    if not os.access(path, os.X_OK):
        raise SeatcastError("seatcast binary not found at %s: run make "
                            "(or set SEATCAST_BIN)" % path)
    return path


def clean_env(secret=None, extra=None):
    """os.environ without PG* and SEATCAST_* (the caller's own database
    and secret must not leak in), plus SEATCAST_JWT_SECRET=secret and
    extra (a None value removes the variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and not k.startswith("SEATCAST_")}
    if secret is not None:
        env["SEATCAST_JWT_SECRET"] = secret
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run_seatcast(args, env=None, timeout=15, secret=TEST_SECRET,
                 binary=None):
    """Runs `seatcast ARGS` to completion (killed after timeout, which is
    then an error) and returns the CompletedProcess (text stdout/stderr)."""
    argv = [binary or seatcast_bin()] + [str(a) for a in args]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True,
                         env=clean_env(secret, env), start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(p.pid)
        out, err = p.communicate()
        raise SeatcastError("%s did not exit within %s s\nstdout: %s\n"
                            "stderr: %s" % (" ".join(argv), timeout, out, err))
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tcp_peer_ports(pid, local_port):
    """Remote ports of the TCP sockets that process pid holds whose local
    port is local_port: for a worker, the client ports of its connections
    (IPv4 and IPv6, from /proc/PID/fd and /proc/net/tcp*)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m:
            inodes.add(int(m.group(1)))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[9]) not in inodes:
                continue
            lport = int(cols[1].rsplit(":", 1)[1], 16)
            rport = int(cols[2].rsplit(":", 1)[1], 16)
            if lport == local_port and rport != 0:
                ports.add(rport)
    return ports


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


# ------------------------------------------------------------------ #
# The server                                                           #

class Seatcast:
    """One seatcast master and its children, started from tmp_path.

    listen: addresses for -l (default ["127.0.0.1:PORT"]); a "unix:PATH"
    one is used by ws_open/http_get when there is no TCP listener.
    """

    START_TIMEOUT = 10.0

    def __init__(self, tmp_path, workers=2, database=None, args=(), env=None,
                 secret=TEST_SECRET, port=None, shm_name=None, listen=None,
                 binary=None):
        self.tmp_path = str(tmp_path)
        self.workers = workers
        self.database = database
        self.args = [str(a) for a in args]
        self.extra_env = dict(env or {})
        self.secret = secret
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._fixed_shm = shm_name is not None
        self.shm_name = shm_name or "/sc-test-%d" % self.port
        self._listen = list(listen) if listen else None
        self.binary = binary or seatcast_bin()
        self.proc = None
        self.log_path = None
        self.log_paths = []  # every start's log, for check_all_logs()
        self.needed_kill = False  # stop() had to SIGKILL after its signal
        self._log_offset = 0
        self._seen = {}  # pid -> starttime of every tree process seen
        self.returncode = None

    # --- addresses ---------------------------------------------------- #

    @property
    def listen(self):
        return self._listen or ["127.0.0.1:%d" % self.port]

    @property
    def unix_path(self):
        """The first unix: listener's path, or None."""
        for a in self.listen:
            if a.startswith("unix:"):
                return a[5:]
        return None

    @property
    def has_tcp(self):
        return any(not a.startswith("unix:") for a in self.listen)

    def argv(self):
        argv = [self.binary]
        for a in self.listen:
            argv += ["-l", a]
        argv += ["--workers", str(self.workers), "--shm-name", self.shm_name]
        if self.database is not None:
            argv += ["-d", self.database]
            # SEATCAST_TEST_SOURCE=logical runs the suites against
            # --source logical (conftest.py makes the cluster for it)
            src = os.environ.get("SEATCAST_TEST_SOURCE")
            if src and not any(a.startswith("--source") for a in self.args):
                argv += ["--source", src]
        return argv + self.args

    def env(self):
        return clean_env(self.secret, self.extra_env)

    # --- lifecycle ---------------------------------------------------- #

    def start(self, timeout=None):
        """Starts the master and waits until the registry shows every
        worker running and a listener pid (deadline START_TIMEOUT s).  A
        free port taken by someone else meanwhile is retried with another
        one unless the port was given."""
        for attempt in range(3):
            try:
                return self._start_once(timeout or self.START_TIMEOUT)
            except SeatcastError:
                if (self._fixed_port or attempt == 2 or
                        "Address already in use" not in self.log()):
                    raise
                self.kill_tree()
                self.port = free_port()
                if not self._fixed_shm:
                    self.shm_name = "/sc-test-%d" % self.port

    def _start_once(self, timeout):
        if self.proc is not None and self.proc.poll() is None:
            raise SeatcastError("server already running")
        base = os.path.join(self.tmp_path, "seatcast-%d" % self.port)
        path, n = base + ".log", 1
        while os.path.exists(path):
            n += 1
            path = "%s-%d.log" % (base, n)
        self.log_path = path
        self.log_paths.append(path)
        self._log_offset = 0
        self.returncode = None
        with open(path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env(),
                start_new_session=True)
        self._remember(self.proc.pid)

        def ready():
            rc = self.proc.poll()
            if rc is not None:
                raise SeatcastError("seatcast exited with status %d during "
                                    "start" % rc)
            st = self.stats()
            if st is None or st["owner_pid"] != self.proc.pid:
                return False
            workers = st["workers"]
            ok = (len(workers) == self.workers and
                  all(w["state"] == "running" and w["pid"] > 0
                      for w in workers) and
                  st["listener"]["pid"] > 0)
            return st if ok else False

        try:
            wait_for(ready, timeout, "seatcast to start")
        except SeatcastError as e:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
            raise SeatcastError("%s\ncommand: %s\nlog tail:\n%s" % (
                e, " ".join(self.argv()), self.log_tail())) from None
        return self

    @property
    def master_pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the master to exit; its exit code (negative: signal)."""
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig to the master and waits for it to exit: its exit code.
        On timeout the tree is SIGKILLed (the code then says -9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print("seatcast master %d did not exit within %s s after "
                      "signal %d: killing the tree" % (
                          self.proc.pid, timeout, sig), file=sys.stderr)
                self.needed_kill = True
                self.kill_tree()
        self.returncode = self.proc.returncode
        self.check_sanitizers()
        return self.returncode

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer",
                       "==ERROR", "Invalid read", "Invalid write")

    def check_sanitizers(self):
        """Fails when the server's log holds a sanitizer or memory error
        report (the sanitizer build of `make check` runs this suite)."""
        try:
            text = self.log()
        except OSError:
            return
        self._scan(self.log_path, text)

    def check_all_logs(self):
        """check_sanitizers() over the whole of every log this server
        wrote (every start), whatever way it ended: teardown runs it also
        for a master that crashed, aborted or was killed mid-test."""
        for path in self.log_paths:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            self._scan(path, text)

    def _scan(self, path, text):
        for mark in self.SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                raise SeatcastError("sanitizer report in %s:\n%s" % (
                    path, text[max(0, i - 200):i + 3000]))

    def _remember(self, pid):
        info = proc_info(pid)
        if info is not None:
            self._seen[pid] = info["starttime"]

    def tree_pids(self):
        """Live pids of this server's tree: the master, its descendants,
        its process group (orphans keep it), and every registry pid seen
        that is still the same process."""
        pids = set()
        master = self.master_pid
        if master is None:
            return pids
        if pid_alive(master):
            pids.add(master)
            pids.update(p for p in descendants(master) if pid_alive(p))
        for pid in all_pids():
            info = proc_info(pid)
            if info is not None and info["pgrp"] == master and \
                    info["state"] not in ("Z", "X"):
                pids.add(pid)
        for pid, start in list(self._seen.items()):
            info = proc_info(pid)
            if info is not None and info["starttime"] == start and \
                    info["state"] not in ("Z", "X"):
                pids.add(pid)
        return pids

    def kill_tree(self, timeout=10):
        """SIGKILLs the master and every child at once, reaps the master
        and waits until none of them runs."""
        if self.proc is None:
            return
        try:
            self.stats()  # learn the current children's pids
        except SeatcastError:
            pass
        pids = self.tree_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.returncode = self.proc.returncode
        wait_for(lambda: not any(pid_alive(p) for p in pids), timeout,
                 "the killed seatcast tree %s to disappear" % sorted(pids))

    def cleanup(self):
        """Teardown: kill whatever still runs, remove a stale segment and
        a unix socket file left behind by a kill."""
        if self.proc is None:
            return
        leftovers = self.tree_pids()
        if leftovers:
            self.kill_tree()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        try:
            os.unlink(shm_path(self.shm_name))
        except FileNotFoundError:
            pass
        path = self.unix_path
        if path and os.path.exists(path):
            try:
                os.unlink(path)
            except OSError:
                pass
        return leftovers

    def finish(self, timeout=15):
        """Teardown of a server made outside make_server (module
        fixtures): stop (SIGTERM) if it runs, cleanup(), print the log
        tail, then fail on a sanitizer report in any of its logs or on a
        master that had to be SIGKILLed."""
        try:
            if self.running():
                self.stop(timeout=timeout)
        finally:
            self.cleanup()
            if self.log_path:
                print("---- %s (last lines) ----\n%s" % (self.log_path,
                                                        self.log_tail(30)))
        self.check_all_logs()
        if self.needed_kill:
            raise SeatcastError("seatcast master %s ignored SIGTERM: stop() "
                                "had to SIGKILL it" % self.master_pid)

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc):
        try:
            if self.running():
                self.stop()
        finally:
            self.cleanup()
        self.check_all_logs()
        if self.needed_kill:
            raise SeatcastError("seatcast master %s ignored SIGTERM: stop() "
                                "had to SIGKILL it" % self.master_pid)

    # --- the registry --------------------------------------------------- #

    def stats_raw(self, *args, shm_name=None):
        return run_seatcast(
            ["stats"] + list(args) + ["--shm-name", shm_name or self.shm_name],
            timeout=10, secret=None, binary=self.binary)

    def stats(self):
        """`seatcast stats --json` as a dict, or None if there is no
        segment; raises SeatcastError on any other failure."""
        p = self.stats_raw("--json")
        if p.returncode != 0:
            if "No such file" in p.stderr:
                return None
            raise SeatcastError("seatcast stats failed (%d): %s" % (
                p.returncode, p.stderr.strip()))
        st = json.loads(p.stdout)
        if self.proc is not None and st.get("owner_pid") == self.proc.pid:
            for w in st["workers"]:
                if w["pid"] > 0:
                    self._remember(w["pid"])
            if st["listener"]["pid"] > 0:
                self._remember(st["listener"]["pid"])
        return st

    def _own_stats(self):
        st = self.stats()
        if st is None or st["owner_pid"] != self.master_pid:
            raise SeatcastError("the registry %s is not this server's (%r)"
                                % (self.shm_name, st and st["owner_pid"]))
        return st

    def worker_pids(self):
        return [w["pid"] for w in self._own_stats()["workers"]]

    def listener_pid(self):
        return self._own_stats()["listener"]["pid"]

    def child_pids(self):
        st = self._own_stats()
        return [w["pid"] for w in st["workers"]] + [st["listener"]["pid"]]

    def shm_exists(self):
        return os.path.exists(shm_path(self.shm_name))

    # --- clients ------------------------------------------------------ #

    def token(self, sub="1", ttl=3600, events=None, jti=None):
        """A token from `seatcast token` signed with this server's secret."""
        args = ["token", "--sub", sub, "--ttl", ttl]
        if events is not None:
            args += ["--events", ",".join(str(e) for e in events)]
        if jti is not None:
            args += ["--jti", jti]
        p = run_seatcast(args, timeout=10, secret=self.secret,
                         binary=self.binary)
        if p.returncode != 0:
            raise SeatcastError("seatcast token failed (%d): %s" % (
                p.returncode, p.stderr.strip()))
        return p.stdout.strip()

    def ws_url(self, path="/ws", token=None):
        host = ("127.0.0.1:%d" % self.port) if self.has_tcp else "localhost"
        url = "ws://%s%s" % (host, path)
        if token is not None:
            url += ("&" if "?" in path else "?") + "token=" + token
        return url

    def http_get(self, path, headers=None, timeout=10):
        """(status, headers dict with lowercase names, body bytes)."""
        if self.has_tcp:
            conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                              timeout=timeout)
        else:
            conn = _UnixHTTPConnection(self.unix_path, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            conn.close()

    # --- the log ------------------------------------------------------ #

    def log(self):
        """Text of this start's log file."""
        if self.log_path is None:
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])

    def log_mark(self):
        """A position in the log: wait_log(..., since=mark) looks after it."""
        return os.path.getsize(self.log_path) - self._log_offset

    def wait_log(self, regex, timeout=5, since=0):
        """Waits for a log line matching regex (after `since`, from
        log_mark()); returns the match."""
        rx = re.compile(regex, re.M)
        try:
            return wait_for(lambda: rx.search(self.log()[since:]), timeout,
                            "log line /%s/" % regex)
        except SeatcastError as e:
            raise SeatcastError("%s\nlog tail:\n%s" % (
                e, self.log_tail())) from None


# ------------------------------------------------------------------ #
# WebSocket clients (websockets 10.4, asyncio)                         #

async def ws_open(server, token=None, path="/ws", timeout=10, greet=True,
                  **kwargs):
    """Connects a client with a valid token (made if not given; pass
    token="" for none) and, with greet, reads connection_established.
    Returns (ws, first message as a dict or None).  The client sends no
    keepalive pings of its own."""
    if token is None:
        token = server.token()
    url = server.ws_url(path, token or None)
    opts = dict(ping_interval=None, open_timeout=timeout, close_timeout=5,
                max_queue=None)
    opts.update(kwargs)
    if server.has_tcp:
        ws = await websockets.connect(url, **opts)
    else:
        ws = await websockets.unix_connect(server.unix_path, url, **opts)
    hello = None
    if greet:
        hello = await ws_recv_json(ws, timeout)
        if hello.get("type") != "connection_established":
            await ws.close()
            raise SeatcastError("expected connection_established, got %r"
                                % hello)
    return ws, hello


async def ws_recv_json(ws, timeout=5):
    msg = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(msg)


async def ws_ping(ws, timeout=5):
    """Sends {"type":"ping"} and returns the pong (other messages before
    it, such as seat updates, are skipped)."""
    await ws.send('{"type":"ping"}')
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SeatcastError("no pong within %s s" % timeout)
        msg = await ws_recv_json(ws, left)
        if msg.get("type") == "pong":
            return msg


async def ws_closed(ws, timeout=10):
    """Waits until the connection is closed; (code, reason) as the client
    saw them (1006 and "" when TCP closed without a close frame)."""
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code, ws.close_reason
