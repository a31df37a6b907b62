"""test_nginx.py - seatcast behind a real nginx, with etc/nginx/seatcast.conf

Run:  SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest -v \\
          -p no:cacheprovider tests/integration/test_nginx.py

Debian's /usr/sbin/nginx (nginx-light) runs in the foreground ("daemon
off") with its own prefix in the test's tmp dir: a small main nginx.conf
there includes a copy of the shipped site file etc/nginx/seatcast.conf
whose listen port, upstream servers and access log path are substituted
(everything else is used as shipped).  PostgreSQL is a private PgCluster
with sql/schema.sql and sql/notify.sql; seatcast runs with
--trusted-proxy 127.0.0.1.  Clients are Python websockets going through
nginx only.

    test_site_config_*     the shipped file: nginx -t, required directives
    test_protocol_through_nginx
                           connection_established, subscribe, a booking ->
                           booking_created + seat_update; X-Forwarded-For
                           in seatcast's log; /healthz, /metrics
                           (promtool-clean); no token in nginx's access log
    test_scale_out_two_instances
                           two seatcast instances (own ports and registries,
                           one database) in one upstream: clients spread on
                           both, one booking reaches all of them

The Nginx class here is also used by test_demo.py.
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking import BookingDb, check_message  # noqa: E402
from pg import PgCluster  # noqa: E402
from server import (ROOT, SeatcastError, free_port, proc_info,  # noqa: E402
                    wait_for)

NGINX = "/usr/sbin/nginx"
PROMTOOL = "/usr/bin/promtool"
SITE = os.path.join(ROOT, "etc", "nginx", "seatcast.conf")
SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
NOTIFY = os.path.join(ROOT, "sql", "notify.sql")
XFF_CLIENT = "198.51.100.23"


# ------------------------------------------------------------------ #
# nginx                                                                #

def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def nginx_main_conf(prefix, include, workers=1):
    """A main nginx.conf for a private nginx under prefix that includes
    the http-context file `include`."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join("    %s_temp_path %s/tmp/%s;\n" % (k, prefix, k)
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi",
                             "scgi"))
    return ("%sdaemon off;\nmaster_process on;\nworker_processes %d;\n"
            "pid %s/nginx.pid;\nerror_log %s/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n%s    include %s;\n}\n" % (
                user, workers, prefix, prefix, temp, include))


def render_site(text, port, backends, access_log):
    """The shipped site with its listen port, upstream servers and access
    log replaced; fails if the file no longer has the expected lines."""
    lines = "".join("    server %s max_fails=1 fail_timeout=5s;\n" % b
                    for b in backends)
    text, n = re.subn(r"^[ \t]*server 127\.0\.0\.1:3001\b[^;\n]*;\n", lines,
                      text, flags=re.M)
    assert n == 1, "upstream server 127.0.0.1:3001 not found in the site"
    text, n = re.subn(r"^[ \t]*server 127\.0\.0\.1:3002\b[^;\n]*;\n", "",
                      text, flags=re.M)
    assert n == 1, "upstream server 127.0.0.1:3002 not found in the site"
    text, n = re.subn(r"^(\s*)listen 80;", r"\1listen 127.0.0.1:%d;" % port,
                      text, flags=re.M)
    assert n == 1, "listen 80; not found in the site"
    text, n = re.subn(r"access_log /var/log/nginx/seatcast\.access\.log",
                      "access_log %s" % access_log, text)
    assert n == 1, "access_log not found in the site"
    return text


class Nginx:
    """A private nginx under `prefix` (created), running the main config
    `main_conf` text; stdout/stderr go to prefix/nginx.out."""

    def __init__(self, prefix, main_conf, port, pidfile=None):
        self.prefix = str(prefix)
        self.port = port
        self.pidfile = pidfile or os.path.join(self.prefix, "nginx.pid")
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(main_conf)
        self.proc = None

    def argv(self, *extra):
        return [NGINX, "-p", self.prefix + "/", "-c", self.conf] + list(extra)

    def check(self):
        res = subprocess.run(self.argv("-t", "-q"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=20)
        assert res.returncode == 0, "nginx -t failed:\n" + res.stdout
        return res.stdout

    def start(self, timeout=10):
        self.check()
        with open(os.path.join(self.prefix, "nginx.out"), "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise SeatcastError("nginx exited with %d:\n%s" % (
                    self.proc.returncode, self.log()))
            return os.path.exists(self.pidfile) and _port_open(self.port)
        wait_for(ready, timeout, "nginx to listen on %d" % self.port)
        return self

    def group_pids(self):
        """Live processes of nginx's session (master and workers)."""
        if self.proc is None:
            return []
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                info = proc_info(int(d))
                if info and info["pgrp"] == self.proc.pid and \
                        info["state"] not in ("Z", "X"):
                    out.append(int(d))
        return out

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)     # fast shutdown
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.group_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout)
        wait_for(lambda: not self.group_pids(), timeout,
                 "nginx processes to exit")

    def log(self):
        out = []
        for name in ("nginx.out", "error.log", "nginx-error.log"):
            try:
                with open(os.path.join(self.prefix, name)) as f:
                    out.append("== %s\n%s" % (name, f.read()[-3000:]))
            except OSError:
                pass
        return "\n".join(out)


@pytest.fixture
def make_nginx(tmp_path):
    """make_nginx(backends) -> started Nginx running the shipped site in
    front of `backends` ("127.0.0.1:P" or "unix:PATH")."""
    started = []

    def make(backends, workers=1):
        prefix = str(tmp_path / ("nginx%d" % len(started)))
        os.makedirs(prefix)
        port = free_port()
        with open(SITE) as f:
            site = render_site(f.read(), port, backends,
                               os.path.join(prefix, "access.log"))
        with open(os.path.join(prefix, "seatcast-site.conf"), "w") as f:
            f.write(site)
        ngx = Nginx(prefix, nginx_main_conf(
            prefix, os.path.join(prefix, "seatcast-site.conf"), workers),
            port)
        started.append(ngx)
        ngx.start()
        ngx.access_log = os.path.join(prefix, "access.log")
        return ngx

    yield make
    for ngx in started:
        try:
            ngx.stop()
        finally:
            print("---- nginx %s ----\n%s" % (ngx.prefix, ngx.log()))


# ------------------------------------------------------------------ #
# PostgreSQL and seatcast                                              #

@pytest.fixture(scope="module")
def cluster():
    pg = PgCluster()
    try:
        pg.start()
        pg.psql_file(SCHEMA)
        pg.psql_file(NOTIFY)
        yield pg
    finally:
        pg.cleanup()


def start_backend(make_server, cluster, nports=1, workers=2, args=()):
    """A seatcast on `nports` TCP ports of 127.0.0.1 (first one names the
    registry), connected to the cluster and trusting 127.0.0.1 as proxy;
    retried on another port set if one was taken meanwhile."""
    for attempt in range(3):
        ports = [free_port() for _ in range(nports)]
        srv = make_server(start=False, workers=workers, port=ports[0],
                          listen=["127.0.0.1:%d" % p for p in ports],
                          database=cluster.conninfo(),
                          args=["--trusted-proxy", "127.0.0.1"] + list(args))
        try:
            srv.start()
        except SeatcastError:
            if attempt == 2 or "Address already in use" not in srv.log():
                raise
            srv.cleanup()
            continue
        srv.ports = ports
        wait_for(lambda: srv.http_get("/healthz")[0] == 200, 15,
                 "seatcast to connect to PostgreSQL (/healthz 200)")
        return srv
    raise AssertionError("unreachable")


def http_get(port, path, timeout=10):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


async def connect(port, token, path="/ws", headers=None):
    ws = await websockets.connect(
        "ws://127.0.0.1:%d%s?token=%s" % (port, path, token),
        extra_headers=headers or {}, ping_interval=None, open_timeout=10,
        close_timeout=5, max_queue=None)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, hello


async def recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def subscribe(ws, event_id):
    await ws.send(json.dumps({"type": "subscribe_event",
                              "eventId": event_id}))
    a = await recv(ws)
    assert a["type"] == "subscribed" and a["eventId"] == event_id, a
    b = await recv(ws)
    assert b["type"] == "seat_update" and b["eventId"] == event_id, b
    return b


def promtool_check(body):
    """`promtool check metrics` on the body: must print nothing, exit 0."""
    if not os.access(PROMTOOL, os.X_OK):
        pytest.fail("%s missing (apt-get install prometheus)" % PROMTOOL)
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=20)
    assert res.returncode == 0 and res.stdout == b"", (
        "promtool check metrics (exit %d):\n%s" % (
            res.returncode, res.stdout.decode()))


# ------------------------------------------------------------------ #
# The shipped site file                                                #

def _site_text():
    with open(SITE) as f:
        return f.read()


def _directives(text):
    """The file without comments."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@pytest.mark.deadline(30)
def test_site_config_passes_nginx_t(tmp_path):
    prefix = str(tmp_path)
    # as shipped, but for the access log: nginx -t opens it
    with open(os.path.join(prefix, "site.conf"), "w") as f:
        text, n = re.subn(r"/var/log/nginx/seatcast\.access\.log",
                          os.path.join(prefix, "access.log"), _site_text())
        assert n == 1
        f.write(text)
    ngx = Nginx(prefix, nginx_main_conf(prefix,
                                        os.path.join(prefix, "site.conf")),
                80)
    ngx.check()


@pytest.mark.deadline(10)
def test_site_config_has_websocket_and_logging_directives():
    d = _directives(_site_text())
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade\s*\{"
                     r"[^}]*default\s+upgrade;[^}]*''\s+close;", d), d
    loc = re.search(r"location /ws \{(.*?)\n    \}", d, re.S)
    assert loc, "no location /ws block"
    ws = loc.group(1)
    for rx in (r"proxy_http_version 1\.1;",
               r"proxy_set_header Upgrade \$http_upgrade;",
               r"proxy_set_header Connection \$connection_upgrade;",
               r"proxy_set_header X-Forwarded-For "
               r"\$proxy_add_x_forwarded_for;",
               r"proxy_pass http://seatcast;"):
        assert re.search(rx, ws), "location /ws lacks /%s/" % rx
    m = re.search(r"proxy_read_timeout (\d+)([smh]?);", ws)
    assert m, "no proxy_read_timeout in location /ws"
    secs = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    assert secs >= 600, "proxy_read_timeout %ss: far below an idle " \
        "WebSocket's lifetime (seatcast pings every 30 s)" % secs
    # the access log format: no query string anywhere
    fmt = re.search(r"log_format seatcast(.*?);", d, re.S)
    assert fmt, "no log_format seatcast"
    for var in ("$request ", "$request\"", "$request'", "$request_uri",
                "$args", "$query_string", "$arg_", "$http_referer"):
        assert var not in fmt.group(1) + " ", \
            "log_format seatcast logs %s (tokens would be logged)" % var
    assert "$uri" in fmt.group(1)
    for m in re.finditer(r"access_log\s+(\S+)(?:\s+(\S+))?;", d):
        if m.group(1) != "off":
            assert m.group(2) == "seatcast", \
                "access_log %s without the seatcast format" % m.group(1)
    assert re.search(r"location = /healthz \{[^}]*proxy_pass", d)
    assert re.search(r"location = /metrics \{[^}]*deny all;[^}]*"
                     r"proxy_pass", d)
    up = re.search(r"upstream seatcast \{([^}]*)\}", d).group(1)
    assert len(re.findall(r"^\s*server ", up, re.M)) >= 2, up


# ------------------------------------------------------------------ #
# The protocol through nginx                                           #

@pytest.mark.deadline(60)
def test_protocol_through_nginx(make_server, make_nginx, cluster):
    db = BookingDb(cluster, cluster.dbname)
    event = db.event(50, name="through nginx")
    srv = start_backend(make_server, cluster, nports=2)
    ngx = make_nginx(["127.0.0.1:%d" % p for p in srv.ports])
    token = srv.token(sub="nginx-user-7")
    plain_token = srv.token(sub="nginx-user-8")

    async def body():
        # a client that sends its own X-Forwarded-For (as if behind
        # another proxy): nginx appends 127.0.0.1
        ws, hello = await connect(ngx.port, token,
                                  headers={"X-Forwarded-For": XFF_CLIENT})
        check_message(hello, "connection_established",
                      ["type", "clientId", "timestamp"])
        first = await subscribe(ws, event)
        assert first["availableSeats"] == 50 and first["seatCapacity"] == 50
        # /ws/events/{id} through nginx too, without X-Forwarded-For
        ws2, hello2 = await connect(ngx.port, plain_token,
                                    path="/ws/events/%d" % event)
        check_message(hello2, "connection_established",
                      ["type", "clientId", "eventId", "timestamp"],
                      eventId=event)
        first2 = await recv(ws2)
        assert first2["type"] == "seat_update", first2
        db.book(event, seats=2)
        for c in (ws, ws2):
            check_message(await recv(c), "booking_created",
                              ["type", "eventId", "availableSeats",
                               "timestamp"], eventId=event, availableSeats=48)
            check_message(await recv(c), "seat_update",
                              ["type", "eventId", "availableSeats",
                               "seatCapacity", "timestamp"], eventId=event,
                              availableSeats=48, seatCapacity=50)
        await ws.send('{"type":"ping"}')
        assert (await recv(ws))["type"] == "pong"
        await ws.close()
        await ws2.close()
    asyncio.run(body())

    # seatcast believes nginx (trusted) and logs the first X-Forwarded-For
    # entry, with nginx's address after "via"
    srv.wait_log(r"client \S+ connected: user nginx-user-7, from %s "
                 r"\(via 127\.0\.0\.1\)$" % re.escape(XFF_CLIENT))
    srv.wait_log(r"client \S+ connected: user nginx-user-8, from 127\.0\.0\.1 "
                 r"\(via 127\.0\.0\.1\), event %d$" % event)

    # /healthz and /metrics through nginx
    status, headers, raw = http_get(ngx.port, "/healthz")
    assert status == 200, raw
    health = json.loads(raw)
    assert health["status"] == "ok" and health["database"] == "connected"
    status, headers, raw = http_get(ngx.port, "/metrics")
    assert status == 200, raw
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    promtool_check(raw)
    assert re.search(rb"^seatcast_notifications_total [1-9]", raw, re.M), raw
    assert re.search(rb"^seatcast_handshakes_total [1-9]", raw, re.M), raw
    status, _, _ = http_get(ngx.port, "/nothing-here")
    assert status == 404

    # nginx's access log: the upgrades are there, the tokens are not
    with open(ngx.access_log) as f:
        log = f.read()
    assert re.search(r'"GET /ws HTTP/1\.1" 101 ', log), log
    assert re.search(r'"GET /ws/events/%d HTTP/1\.1" 101 ' % event, log), log
    assert '"GET /metrics HTTP/1.1" 200' in log, log
    assert "token" not in log and token not in log and \
        plain_token not in log, log
    # ... nor seatcast's own log
    assert token not in srv.log() and plain_token not in srv.log()


@pytest.mark.deadline(60)
def test_scale_out_two_instances(make_server, make_nginx, cluster):
    """Two seatcast instances against one database behind one upstream:
    no broker, no sticky sessions; each LISTENs on its own."""
    db = BookingDb(cluster, cluster.dbname)
    event = db.event(30, name="scale out")
    a = start_backend(make_server, cluster)
    b = start_backend(make_server, cluster)
    assert a.shm_name != b.shm_name
    ngx = make_nginx(["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port])
    nclients = 6

    async def body():
        clients = []
        for i in range(nclients):
            ws, hello = await connect(ngx.port, a.token(sub="fan-%d" % i))
            assert hello["type"] == "connection_established", hello
            first = await subscribe(ws, event)
            assert first["availableSeats"] == 30, first
            clients.append(ws)

        def spread():
            counts = [s.stats()["totals"]["clients"] for s in (a, b)]
            return counts if sum(counts) == nclients else False
        counts = wait_for(spread, 10, "both instances to count the clients")
        assert min(counts) >= 1, \
            "least_conn put every client on one instance: %r" % counts

        db.book(event)
        for ws in clients:
            m = await recv(ws)
            assert m["type"] == "booking_created" and \
                m["availableSeats"] == 29, m
            m = await recv(ws)
            assert m["type"] == "seat_update" and \
                m["availableSeats"] == 29 and m["seatCapacity"] == 30, m
        for ws in clients:
            await ws.close()
        return counts
    counts = asyncio.run(body())
    print("clients per instance: %r" % counts)
    # each instance heard the NOTIFY itself
    for s in (a, b):
        assert s.stats()["listener"]["notifications"] >= 1
