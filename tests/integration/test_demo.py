"""test_demo.py - `make demo` (etc/demo/demo.sh) and its page in Chromium

Run:  SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest -v \\
          -p no:cacheprovider tests/integration/test_demo.py

demo.sh runs with its own ports (DEMO_PORT, DEMO_PGPORT, DEMO_HTTP_PORT)
and run directory (DEMO_RUN_DIR, a directory under /tmp that the postgres
user can reach), so that it never meets a demo someone runs by hand.

    test_demo_noninteractive_twice   DEMO_NONINTERACTIVE=1, twice (the
                                     second run reuses the cluster): the
                                     printed page URL, token, wscat and psql
                                     commands; nothing left running
    test_demo_page_books_a_seat      the interactive demo; its page in
                                     headless Chromium (playwright-core,
                                     node/demo_page.mjs); the printed psql
                                     command books a seat and the page's
                                     count for event 1 drops; a screenshot;
                                     Ctrl-C (SIGINT to the process group,
                                     as a terminal sends it) stops it all
    test_demo_page_reconnects        the same pieces started by the test
                                     (PgCluster, seatcast, nginx with
                                     etc/demo/nginx-demo.conf): the page
                                     shows closed + a countdown growing
                                     exponentially while seatcast is down,
                                     then reconnects and shows the seats
                                     booked meanwhile; a bad token stops
                                     the retries
    test_demo_run_after_a_killed_demo
                                     demo.sh SIGKILLed: the next run stops
                                     what it left (pid files) and works
"""

import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg import PgCluster  # noqa: E402
from server import (ROOT, SeatcastError, free_port, pid_alive,  # noqa: E402
                    proc_info, wait_for)
from test_nginx import Nginx  # noqa: E402

DEMO = os.path.join(ROOT, "etc", "demo", "demo.sh")
DEMO_NGINX = os.path.join(ROOT, "etc", "demo", "nginx-demo.conf")
EVENTS_SQL = os.path.join(ROOT, "etc", "demo", "events.sql")
NODE_DIR = os.path.join(ROOT, "tests", "integration", "node")
PAGE_MJS = os.path.join(NODE_DIR, "demo_page.mjs")
CHROMIUM = "/usr/bin/chromium"


# ------------------------------------------------------------------ #
# Helpers                                                              #

def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _procs_mentioning(text):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            info = proc_info(int(d))
            if info and text in info["cmdline"] and \
                    info["state"] not in ("Z", "X"):
                out.append(info)
    return out


def _jwt_claims(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


@pytest.fixture
def demo_env():
    """A run directory and free ports for demo.sh; afterwards, whatever
    is left is killed (and the test has already failed on it)."""
    base = tempfile.mkdtemp(prefix="seatcast-demo-")
    os.chmod(base, 0o755)
    ports = {"port": free_port(), "pgport": free_port(),
             "http": free_port()}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and not k.startswith("SEATCAST_") and
           not k.startswith("DEMO_")}
    env.update(DEMO_RUN_DIR=os.path.join(base, "run"),
               DEMO_PORT=str(ports["port"]),
               DEMO_PGPORT=str(ports["pgport"]),
               DEMO_HTTP_PORT=str(ports["http"]))
    d = dict(base=base, run=env["DEMO_RUN_DIR"], env=env, **ports)
    yield d
    # a seatcast master renames itself ("seatcast: master"): find it by
    # its pid file, stop it and its children
    try:
        with open(os.path.join(d["run"], "seatcast.pid")) as f:
            master = int(f.read())
    except (OSError, ValueError):
        master = None
    info = proc_info(master) if master else None
    if info and info["comm"].startswith("sc-master"):
        kids = [p for p in (int(x) for x in os.listdir("/proc")
                            if x.isdigit())
                if (proc_info(p) or {}).get("ppid") == master]
        os.kill(master, signal.SIGTERM)
        try:
            wait_for(lambda: not pid_alive(master), 15, "demo seatcast")
        except SeatcastError:
            for p in [master] + kids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    try:
        os.unlink("/dev/shm/seatcast-demo-%d" % d["port"])
    except FileNotFoundError:
        pass
    for info in _procs_mentioning(d["run"]):
        try:
            os.kill(info["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(base, ignore_errors=True)


def leftovers(d):
    """What of a demo still runs: processes naming its run directory
    (postgres -D RUN/pg, nginx -p RUN/nginx/), listeners on its ports, its
    registry."""
    out = ["pid %d: %s" % (i["pid"], i["cmdline"])
           for i in _procs_mentioning(d["run"])]
    out += ["port %d (%s) still accepts" % (d[k], k)
            for k in ("port", "pgport", "http") if _listening(d[k])]
    if os.path.exists("/dev/shm/seatcast-demo-%d" % d["port"]):
        out.append("registry /dev/shm/seatcast-demo-%d" % d["port"])
    return out


def check_printed(out, d):
    """The lines demo.sh prints; returns (token, page URL, psql command)."""
    m = re.search(r"^  demo page +(http://127\.0\.0\.1:(\d+)/#token=(\S+))$",
                  out, re.M)
    assert m, "no demo page URL in:\n" + out
    url, port, token = m.group(1), int(m.group(2)), m.group(3)
    assert port == d["http"]
    assert re.search(r"^  token +%s$" % re.escape(token), out, re.M), out
    claims = _jwt_claims(token)
    assert claims["sub"] == "demo-user" and \
        claims["exp"] - time.time() > 3600, claims
    m = re.search(r"^ +(\S*wscat) -c \"ws://127\.0\.0\.1:%d/ws/events/1\?"
                  r"token=%s\"$" % (d["port"], re.escape(token)), out, re.M)
    assert m, "no wscat command in:\n" + out
    m = re.search(r"^ +(psql .*-p %d .*INSERT INTO bookings.*)$" % d["pgport"],
                  out, re.M)
    assert m, "no psql booking command in:\n" + out
    return token, url, m.group(1)


def run_demo(d, timeout=90):
    env = dict(d["env"], DEMO_NONINTERACTIVE="1")
    p = subprocess.run([DEMO], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    return p


class Demo:
    """demo.sh running interactively in a session of its own (the way a
    terminal runs it); its output is read by a thread."""

    def __init__(self, d):
        self.d = d
        self.lines = []
        self.proc = subprocess.Popen(
            [DEMO], env=d["env"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self):
        return "\n".join(self.lines)

    def wait_ready(self, timeout=60):
        def ready():
            if self.proc.poll() is not None:
                raise SeatcastError("demo.sh exited with %d:\n%s" % (
                    self.proc.returncode, self.output()))
            return any(line.startswith("Press Ctrl-C")
                       or "Press Ctrl-C to stop" in line
                       for line in self.lines)
        wait_for(ready, timeout, "demo.sh to print its instructions")

    def interrupt(self, timeout=40):
        """Ctrl-C: SIGINT to the whole foreground process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        return self.proc.wait(timeout)

    def kill(self):
        """Teardown: Ctrl-C first (the script stops its servers), then
        SIGKILL the script's group."""
        if self.proc.poll() is None:
            try:
                self.interrupt(timeout=40)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


class Browser:
    """node/demo_page.mjs: headless Chromium driven over stdin/stdout."""

    def __init__(self, tmp_path):
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed (Node 20 is needed)")
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                          "playwright-core")):
            pytest.fail("playwright-core missing: run `make node-deps`")
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail("%s missing (apt-get install chromium)" % CHROMIUM)
        self.profile = str(tmp_path / "chromium-profile")
        os.makedirs(self.profile)
        self.replies = queue.Queue()
        self.console = []
        self.stderr_path = str(tmp_path / "demo_page.stderr")
        self._n = 0
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [node, PAGE_MJS, self.profile], cwd=NODE_DIR,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True, bufsize=1, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        first = self._next(45)
        assert first.get("ready"), first

    def _pump(self):
        for line in self.proc.stdout:
            try:
                self.replies.put(json.loads(line))
            except ValueError:
                self.replies.put({"ok": False, "error": "bad line %r" % line})
        self.replies.put(None)

    def _next(self, timeout):
        try:
            r = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise SeatcastError("demo_page.mjs gave no answer in %s s; "
                                "stderr:\n%s" % (timeout, self.stderr()))
        if r is None:
            raise SeatcastError("demo_page.mjs exited; stderr:\n%s"
                                % self.stderr())
        return r

    def stderr(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def cmd(self, op, timeout=30, check=True, **kw):
        self._n += 1
        kw.update(op=op, id=self._n)
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        while True:
            r = self._next(timeout)
            self.console += r.get("console", [])
            if r.get("id") == self._n:
                break
        if check and not r.get("ok"):
            raise SeatcastError("%s failed: %s\npage console: %s" % (
                op, r.get("error"), self.console[-20:]))
        return r

    def wait(self, selector, timeout=10):
        return self.cmd("wait", selector=selector, timeout=int(timeout * 1000),
                        timeout_s=timeout)["text"]

    def attr(self, selector, name):
        return self.cmd("attr", selector=selector, name=name)["value"]

    def text(self, selector):
        return self.cmd("text", selector=selector)["text"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit", timeout=15, check=False)
            except (SeatcastError, OSError, ValueError):
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        # no Chromium may outlive the test (its profile names it)
        stray = _procs_mentioning(self.profile)
        for info in stray:
            try:
                os.kill(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not _procs_mentioning(self.profile), 10,
                 "Chromium processes to exit")
        return stray


@pytest.fixture
def browser(tmp_path):
    b = []

    def make():
        b.append(Browser(tmp_path))
        return b[0]
    yield make
    for x in b:
        stray = x.close()
        assert not stray, "Chromium outlived quit: %r" % stray


def _errors(console):
    return [c for c in console if c.startswith("pageerror")
            or (c.startswith("error") and "WebSocket" not in c)]


# ------------------------------------------------------------------ #
# demo.sh                                                              #

@pytest.mark.deadline(120)
def test_demo_noninteractive_twice(demo_env):
    d = demo_env
    for run in (1, 2):
        p = run_demo(d)
        assert p.returncode == 0, "run %d: demo.sh exited %d:\n%s" % (
            run, p.returncode, p.stdout)
        check_printed(p.stdout, d)
        assert p.stdout.rstrip().endswith("demo: stopped"), p.stdout
        left = leftovers(d)
        assert not left, "run %d left running: %s" % (run, left)
    # the page's token never reached nginx's access log
    with open(os.path.join(d["run"], "nginx-access.log")) as f:
        log = f.read()
    assert "token" not in log and "GET /healthz" in log, log


@pytest.mark.deadline(150)
def test_demo_page_books_a_seat(demo_env, browser, tmp_path):
    d = demo_env
    demo = Demo(d)
    try:
        demo.wait_ready()
        token, url, book = check_printed(demo.output(), d)
        with open(os.path.join(d["run"], "seatcast.pid")) as f:
            sc_pid = int(f.read())
        with open(os.path.join(d["run"], "nginx", "nginx.pid")) as f:
            ngx_pid = int(f.read())
        with open(os.path.join(d["run"], "pg", "postmaster.pid")) as f:
            pg_pid = int(f.readline())
        pids = [sc_pid, ngx_pid, pg_pid]

        b = browser()
        b.cmd("goto", url=url)
        b.wait('#state[data-state="open"]', 15)
        # the page runs the client library (clients/js), served by nginx
        b.wait('html[data-client="seatcast-client"]', 5)
        for i in (1, 2, 3, 4):
            b.wait("#event-%d[data-available][data-capacity]" % i, 10)
        assert b.text("#event-1 .name") == "Opening night: The Tempest"
        before = int(b.attr("#event-1", "data-available"))
        assert int(b.attr("#event-1", "data-capacity")) == 120
        assert b.text("#event-1 .available") == str(before)

        # the psql command as printed, run as a user would
        res = subprocess.run(["bash", "-c", book], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=30)
        assert res.returncode == 0, res.stdout
        b.wait('#event-1[data-available="%d"]' % (before - 1), 10)
        assert b.text("#event-1 .available") == str(before - 1)
        assert "booked" in b.text("#event-1 .last")
        # the other events did not move
        assert b.attr("#event-2", "data-available") == "80"
        shot = str(tmp_path / "demo-page.png")
        b.cmd("screenshot", path=shot)
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        print("screenshot of the demo page: %s" % shot)
        assert not _errors(b.console), b.console
        assert token not in b.text("body")

        # Ctrl-C
        rc = demo.interrupt()
        out = demo.output()
        assert rc == 130, "demo.sh exited %d after Ctrl-C:\n%s" % (rc, out)
        assert out.rstrip().endswith("demo: stopped"), out
        wait_for(lambda: not any(pid_alive(p) for p in pids), 10,
                 "seatcast, nginx and postgres of the demo to be gone")
        left = leftovers(d)
        assert not left, "left running after Ctrl-C: %s" % left
        with open(os.path.join(d["run"], "nginx-access.log")) as f:
            log = f.read()
        assert re.search(r'"GET /ws HTTP/1\.1" 101 ', log), log
        assert re.search(r'"GET /seatcast-client/index\.js HTTP/1\.1" 200 ',
                         log), log
        assert "token" not in log and token not in log, log
        with open(os.path.join(d["run"], "seatcast.log")) as f:
            sclog = f.read()
        assert token not in sclog
        assert re.search(r"connected: user demo-user, from 127\.0\.0\.1 "
                         r"\(via 127\.0\.0\.1\)", sclog), sclog
    finally:
        demo.kill()


# ------------------------------------------------------------------ #
# The page's reconnection, with pieces the test controls               #

def render_demo_nginx(run, root, http_port, port):
    with open(DEMO_NGINX) as f:
        conf = f.read()
    user = "user root;" if os.geteuid() == 0 else "# not root"
    for k, v in (("@USER@", user), ("@RUN@", run), ("@ROOT@", root),
                 ("@HTTP_PORT@", str(http_port)), ("@PORT@", str(port))):
        conf = conf.replace(k, v)
    assert "@" not in re.sub(r"#.*", "", conf), "unrendered placeholder"
    return conf


@pytest.mark.deadline(120)
def test_demo_page_reconnects(tmp_path, make_server, browser):
    pg = PgCluster()
    try:
        pg.start()
        for f in (os.path.join(ROOT, "sql", "schema.sql"),
                  os.path.join(ROOT, "sql", "notify.sql"), EVENTS_SQL):
            pg.psql_file(f)
        srv = make_server(workers=1, port=free_port(), database=pg.conninfo())
        wait_for(lambda: srv.http_get("/healthz")[0] == 200, 15,
                 "seatcast to reach PostgreSQL")
        prefix = str(tmp_path / "nginx")
        os.makedirs(os.path.join(prefix, "nginx", "tmp"))
        http_port = free_port()
        ngx = Nginx(prefix, render_demo_nginx(prefix, ROOT, http_port,
                                              srv.port), http_port,
                    pidfile=os.path.join(prefix, "nginx", "nginx.pid"))
        try:
            ngx.start()
            b = browser()
            token = srv.token(sub="reconnect-user")
            b.cmd("goto", url="http://127.0.0.1:%d/#token=%s&events=1,3" % (
                http_port, token))
            b.wait('#state[data-state="open"]', 15)
            b.wait('#event-1[data-available="120"]', 10)
            b.wait('#event-3[data-available="300"]', 10)
            assert b.cmd("text", selector="#event-2")["text"] is None

            # seatcast goes away (close 1001): closed, countdown; the
            # page's library draws the first delay from [0, 3 s) (its
            # shutdownDelay), a fleet of pages does not come back at once
            assert srv.stop(timeout=15) == 0
            b.wait('#state[data-state="closed"]', 10)
            # a first delay drawn short may be over before the next read
            # (the CI once saw it): the page's state is checked only while
            # it still waits for that first retry; the delays themselves
            # are in data-history, below
            state, countdown = b.text("#state"), b.text("#countdown")
            first = b.attr("#countdown", "data-retry-ms")
            if b.attr("#countdown", "data-attempt") == "1":
                assert "1001" in state, state
                if first and int(first) >= 1000:
                    assert re.match(r"reconnecting in \d+ s$",
                                    countdown), countdown
            # the retries fail (nginx answers 502): the ceiling doubles
            # from minDelay (1 s) with each failed attempt, every delay
            # drawn below it
            history = wait_for(
                lambda: (lambda h: h if len(h) >= 3 else None)(
                    b.attr("#countdown", "data-history").split()),
                20, "three retries")
            retries = [tuple(map(int, r.split(":"))) for r in history]
            print("retries while seatcast was down (cap:delay ms): %s"
                  % " ".join(history))
            assert [c for c, _ in retries[:3]] == [3000, 2000, 4000], retries
            assert all(0 <= d < c for c, d in retries), retries
            pg.psql("INSERT INTO bookings (event_id, user_id, seats) "
                    "VALUES (1, 7, 3)")
            srv.start()
            b.wait('#state[data-state="open"]', 20)
            b.wait('#event-1[data-available="117"]', 10)
            assert b.text("#countdown") == ""
            shot = str(tmp_path / "demo-page-reconnected.png")
            b.cmd("screenshot", path=shot)
            print("screenshot after reconnecting: %s" % shot)

            # a token the server refuses: closed, and no retry loop
            b.cmd("goto", url="http://127.0.0.1:%d/#token=not.a.token" %
                  http_port)
            b.wait('#state[data-state="closed"]', 10)
            assert "Invalid token" in b.text("#state")
            assert b.text("#countdown") == ""
            assert not _errors(b.console), b.console
        finally:
            ngx.stop()
            print(ngx.log())
    finally:
        pg.cleanup()


@pytest.mark.deadline(120)
def test_demo_run_after_a_killed_demo(demo_env):
    """demo.sh killed outright (no trap runs) leaves its servers; the next
    run stops them through the pid files and starts cleanly."""
    d = demo_env
    demo = Demo(d)
    try:
        demo.wait_ready()
        with open(os.path.join(d["run"], "seatcast.pid")) as f:
            sc_pid = int(f.read())
        with open(os.path.join(d["run"], "nginx", "nginx.pid")) as f:
            ngx_pid = int(f.read())
        os.kill(demo.proc.pid, signal.SIGKILL)     # the script only
        demo.proc.wait(10)
        assert pid_alive(sc_pid) and pid_alive(ngx_pid)
    finally:
        demo.kill()
    p = run_demo(d)
    assert p.returncode == 0, p.stdout
    assert "stopping a nginx (pid %d) left by an earlier run" % ngx_pid \
        in p.stdout, p.stdout
    assert "stopping a sc-master (pid %d) left by an earlier run" % sc_pid \
        in p.stdout, p.stdout
    check_printed(p.stdout, d)
    assert not pid_alive(sc_pid) and not pid_alive(ngx_pid)
    left = leftovers(d)
    assert not left, "left running: %s" % left
