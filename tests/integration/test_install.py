"""test_install.py - `make install`, the systemd unit, and what operators
read: log lines, /healthz, /metrics

Run:  SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest -v \\
          -p no:cacheprovider tests/integration/test_install.py

    make install DESTDIR=tmp PREFIX=/usr   the FHS tree, modes, the installed
                                           binary runs --version; PREFIX=
                                           /usr/local moves the unit's paths;
                                           an edited config is kept
    etc/systemd/seatcast.service           hardening and service directives;
                                           `systemd-analyze verify` (skipped
                                           when the tool is absent)
    --log-format json / text               every line of a run that served
                                           clients parses, with ts, level,
                                           role, pid, msg
    /healthz, /metrics                     JSON health; `promtool check
                                           metrics` prints nothing

`make install` runs with `-o BUILD/seatcast` so that it installs the binary
under test and never rebuilds it.
"""

import asyncio
import configparser
import datetime
import filecmp
import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ROOT, run_seatcast, wait_for, ws_closed, ws_open  # noqa: E402
from test_nginx import promtool_check  # noqa: E402

UNIT = os.path.join(ROOT, "etc", "systemd", "seatcast.service")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROLE = re.compile(r"^(master|listener|worker \d+)$")
LEVELS = {"error", "warn", "info", "debug"}


def make_install(seatcast_bin, destdir, *args):
    build = os.path.dirname(seatcast_bin)
    argv = ["make", "-C", ROOT, "--no-print-directory"]
    if os.path.basename(seatcast_bin) == "seatcast":
        argv += ["BUILD=" + build, "-o", os.path.join(build, "seatcast")]
    argv += ["install", "DESTDIR=" + str(destdir)] + list(args)
    res = subprocess.run(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert res.returncode == 0, "make install failed:\n" + res.stdout
    return res.stdout


def tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def unit_values(path):
    """{(section, key): [values]} of a unit file (keys may repeat)."""
    out = {}
    sec = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                sec = m.group(1)
                continue
            k, _, v = line.partition("=")
            out.setdefault((sec, k.strip()), []).append(v.strip())
    return out


# ------------------------------------------------------------------ #
# make install                                                         #

@pytest.mark.deadline(60)
def test_make_install_prefix_usr(tmp_path, seatcast_bin):
    dest = tmp_path / "root"
    make_install(seatcast_bin, dest, "PREFIX=/usr")
    got = tree(dest)
    want = {
        "usr/sbin/seatcast": 0o755,
        "usr/share/man/man8/seatcast.8": 0o644,
        "usr/share/man/man5/seatcast.conf.5": 0o644,
        "usr/share/seatcast/sql/schema.sql": 0o644,
        "usr/share/seatcast/sql/notify.sql": 0o644,
        "usr/share/seatcast/sql/logical.sql": 0o644,
        "etc/seatcast/seatcast.conf": 0o644,
        "usr/lib/systemd/system/seatcast.service": 0o644,
        "usr/share/doc/seatcast/examples/nginx/seatcast.conf": 0o644,
        "usr/share/doc/seatcast/examples/seatcast.conf": 0o644,
    }
    for path, mode in want.items():
        assert path in got, "make install did not create %s (tree: %s)" % (
            path, sorted(got))
        assert got[path] == mode, "%s: mode %o, want %o" % (
            path, got[path], mode)
    assert set(got) == set(want), "unexpected files: %s" % sorted(
        set(got) - set(want))
    # the installed files are the sources
    same = [("man/seatcast.8", "usr/share/man/man8/seatcast.8"),
            ("man/seatcast.conf.5", "usr/share/man/man5/seatcast.conf.5"),
            ("sql/schema.sql", "usr/share/seatcast/sql/schema.sql"),
            ("sql/notify.sql", "usr/share/seatcast/sql/notify.sql"),
            ("sql/logical.sql", "usr/share/seatcast/sql/logical.sql"),
            ("etc/seatcast.conf", "etc/seatcast/seatcast.conf"),
            ("etc/nginx/seatcast.conf",
             "usr/share/doc/seatcast/examples/nginx/seatcast.conf"),
            ("etc/systemd/seatcast.service",
             "usr/lib/systemd/system/seatcast.service")]
    for src, dst in same:
        assert filecmp.cmp(os.path.join(ROOT, src), dest / dst,
                           shallow=False), "%s differs from %s" % (dst, src)
    # the installed binary runs
    p = run_seatcast(["--version"], binary=str(dest / "usr/sbin/seatcast"))
    assert p.returncode == 0 and re.match(r"^seatcast \d+\.\d+\.\d+$",
                                          p.stdout.strip()), p
    # the installed man pages render and are found by man(1)
    for page in ("man8/seatcast.8", "man5/seatcast.conf.5"):
        res = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                              str(dest / "usr/share/man" / page)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=20)
        assert res.returncode == 0 and not res.stdout, res.stdout
    # the installed config is accepted as is
    p = run_seatcast(["-t", "-c", str(dest / "etc/seatcast/seatcast.conf")],
                     binary=str(dest / "usr/sbin/seatcast"))
    assert p.returncode == 0, p.stderr


@pytest.mark.deadline(60)
def test_make_install_prefix_usr_local_keeps_edited_config(tmp_path,
                                                           seatcast_bin):
    dest = tmp_path / "root"
    make_install(seatcast_bin, dest)          # the default, /usr/local
    unit = dest / "usr/local/lib/systemd/system/seatcast.service"
    assert unit.exists(), sorted(tree(dest))
    assert (dest / "usr/local/sbin/seatcast").exists()
    assert (dest / "etc/seatcast/seatcast.conf").exists()
    v = unit_values(unit)
    assert v[("Service", "ExecStart")][0].startswith(
        "/usr/local/sbin/seatcast -c /etc/seatcast/seatcast.conf"), v
    # an operator's edit survives a reinstall
    conf = dest / "etc/seatcast/seatcast.conf"
    conf.write_text("workers = 3\n")
    make_install(seatcast_bin, dest)
    assert conf.read_text() == "workers = 3\n"
    assert filecmp.cmp(os.path.join(ROOT, "etc/seatcast.conf"),
                       str(conf) + ".dist", shallow=False)


# ------------------------------------------------------------------ #
# systemd                                                              #

def test_systemd_unit_directives():
    v = unit_values(UNIT)
    need = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes",
        "LimitNOFILE": "1048576", "ExecReload": "/bin/kill -HUP $MAINPID",
        "KillSignal": "SIGTERM", "Restart": "on-failure",
        "User": "seatcast", "EnvironmentFile": "-/etc/default/seatcast",
        "RuntimeDirectory": "seatcast",
    }
    for key, want in need.items():
        assert v.get(("Service", key)) == [want], \
            "[Service] %s=%r, want %r" % (key, v.get(("Service", key)), want)
    start = v[("Service", "ExecStart")]
    assert len(start) == 1 and re.match(
        r"^/usr/sbin/seatcast -c /etc/seatcast/seatcast\.conf( |$)",
        start[0]), start
    assert ("Install", "WantedBy") in v
    assert "man:seatcast(8)" in v[("Unit", "Documentation")][0]
    # the graceful stop must fit in what systemd waits for
    stop = v.get(("Service", "TimeoutStopSec"), ["90"])[0]
    assert int(stop.rstrip("s")) > 10, "TimeoutStopSec below the default " \
        "--shutdown-timeout of 10 s"
    configparser.ConfigParser(strict=False, interpolation=None).read(UNIT)


@pytest.mark.deadline(60)
def test_systemd_analyze_verify(tmp_path, seatcast_bin):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed in this container "
                    "(apt-get install systemd); the unit's directives are "
                    "checked by test_systemd_unit_directives")
    dest = tmp_path / "root"
    make_install(seatcast_bin, dest, "PREFIX=/usr")
    # verify checks that ExecStart= exists: point it at the installed
    # binary; Documentation= is looked up in the installed man pages
    text = (dest / "usr/lib/systemd/system/seatcast.service").read_text()
    unit = tmp_path / "seatcast.service"
    unit.write_text(text.replace("/usr/sbin/seatcast",
                                 str(dest / "usr/sbin/seatcast")))
    env = dict(os.environ, MANPATH=str(dest / "usr/share/man"),
               SYSTEMD_LOG_LEVEL="notice")
    man = "--man=yes" if shutil.which("man") else "--man=no"
    res = subprocess.run([tool, "verify", man, str(unit)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=40)
    out = [line for line in res.stdout.splitlines()
           if "seatcast" in line]
    assert res.returncode == 0 and not out, \
        "systemd-analyze verify (exit %d):\n%s" % (res.returncode,
                                                   res.stdout)


# ------------------------------------------------------------------ #
# Logs                                                                 #

async def _traffic(srv):
    ws, hello = await ws_open(srv)
    await ws.send('{"type":"ping"}')
    await ws.recv()
    await ws.close()
    bad, _ = await ws_open(srv, token="not.a.jwt", greet=False)
    assert await ws_closed(bad) == (1008, "Invalid token")
    srv.http_get("/healthz")
    srv.http_get("/nope")


@pytest.mark.deadline(40)
def test_json_log_lines(make_server):
    srv = make_server(workers=2, args=["--log-format", "json",
                                       "--log-level", "debug"])
    asyncio.run(_traffic(srv))
    pids = {srv.master_pid} | set(srv.child_pids())
    assert srv.stop(timeout=15) == 0
    lines = srv.log().splitlines()
    assert len(lines) >= 8, lines
    roles = set()
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            pytest.fail("not a JSON line: %r" % line)
        assert isinstance(rec, dict), line
        for key in ("ts", "level", "role", "pid", "msg"):
            assert key in rec, "%s missing: %r" % (key, line)
        assert list(rec)[0] == "ts", line
        assert ISO_MS.match(rec["ts"]), line
        datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert rec["level"] in LEVELS, line
        assert ROLE.match(rec["role"]), line
        assert type(rec["pid"]) is int and rec["pid"] in pids, line
        assert isinstance(rec["msg"], str) and rec["msg"] and \
            "\n" not in rec["msg"], line
        roles.add(rec["role"].split()[0])
    assert roles == {"master", "listener", "worker"}, roles
    assert "not.a.jwt" not in srv.log()


@pytest.mark.deadline(40)
def test_text_log_lines(make_server):
    srv = make_server(workers=2)
    asyncio.run(_traffic(srv))
    assert srv.stop(timeout=15) == 0
    rx = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "
                    r"\[(error|warn|info|debug)\] "
                    r"(master|listener|worker \d+)\[(\d+)\]: \S.*$")
    lines = srv.log().splitlines()
    assert len(lines) >= 8
    for line in lines:
        assert rx.match(line), "log line not in the text format: %r" % line


# ------------------------------------------------------------------ #
# /healthz and /metrics                                                #

@pytest.mark.deadline(40)
def test_healthz_degraded_without_database_and_metrics_lint(make_server):
    # no database: the listener retries, /healthz says why
    srv = make_server(workers=2, database="host=127.0.0.1 port=1 "
                      "dbname=none connect_timeout=1")
    status, headers, body = srv.http_get("/healthz")
    assert status == 503, body
    assert headers["content-type"] == "application/json"
    h = json.loads(body)
    assert h["status"] == "degraded" and h["database"] == "disconnected"
    assert any("PostgreSQL" in r for r in h["reasons"]), h
    assert h["workers"] == 2 and h["workersUp"] == 2

    def scrape():
        scrapes[0] += 1
        status, _, body = srv.http_get("/metrics")
        assert status == 200
        return body

    async def clients():
        a, _ = await ws_open(srv)
        b, _ = await ws_open(srv)
        refused, _ = await ws_open(srv, token="", greet=False)
        assert await ws_closed(refused) == (1008, "Authentication required")
        # the refused socket lingers a moment after its close frame (a
        # lingering close); then 2 clients + the scrape are open
        body = wait_for(lambda: (lambda b: re.search(
            rb"^seatcast_connections 3$", b, re.M) and b)(scrape()),
            10, "the refused connection closed")
        await a.close()
        await b.close()
        return 200, body
    scrapes = [0]
    status, body = asyncio.run(clients())
    assert status == 200
    promtool_check(body)
    names = set(re.findall(rb"^# TYPE (\w+) ", body, re.M))
    for n in (b"seatcast_connections", b"seatcast_clients",
              b"seatcast_subscriptions", b"seatcast_messages_sent_total",
              b"seatcast_bytes_sent_total", b"seatcast_handshakes_total",
              b"seatcast_auth_failures_total",
              b"seatcast_notifications_total",
              b"seatcast_db_reconnects_total",
              b"seatcast_worker_connections"):
        assert n in names, "/metrics lacks %s" % n.decode()
    assert re.search(rb'^seatcast_worker_clients\{worker="1"\} \d+$', body,
                     re.M)
    # values, not only names: 2 clients open, 1 refused; the /healthz
    # request above and this /metrics one are connections too
    values = {k.decode(): int(v) for k, v in re.findall(
        rb"^(seatcast_\w+(?:\{[^}]*\})?) (\d+)$", body, re.M)}
    print({k: v for k, v in values.items() if "latency" not in k})
    assert values["seatcast_clients"] == 2
    assert values["seatcast_auth_failures_total"] == 1
    assert values["seatcast_handshakes_total"] == 3
    # /healthz, 3 upgrades, the scrapes
    assert values["seatcast_connections_total"] == 4 + scrapes[0]
    assert values["seatcast_connections"] == 3  # 2 clients + this request
    assert values["seatcast_workers_running"] == 2
    assert values["seatcast_subscriptions"] == 0
    assert sum(v for k, v in values.items()
               if k.startswith("seatcast_worker_clients{")) == 2
