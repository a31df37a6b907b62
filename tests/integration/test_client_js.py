"""test_client_js.py - the JavaScript client library (clients/js, npm
seatcast-client) under Node's own test runner.

    test_client_js_unit     node --test test/unit.test.js test/react.test.js
                            test/types.test.js: backoff and jitter, token
                            handling, ordering, merged messages, the React
                            hook (real React, react-test-renderer), against
                            a scripted socket; the TypeScript declarations
                            under tsc --strict
    test_client_js_live     node --test test/live.test.js against a real
                            seatcast (started by the Node harness from
                            $SEATCAST_BIN) and this module's PostgreSQL: a
                            booking arrives; kill -9 of the worker holding
                            the connection, back and subscribed within 2 s;
                            SIGTERM then a restart; an expired token
                            refreshed through the token function; a revoked
                            one ends in 'error'; a surge: bookings that
                            waited arrive merged, bookingsOf counts them
    test_client_js_pack     npm pack gives a tarball that installs into an
                            empty project and imports in Node (both entry
                            points), with the type declarations and nothing
                            of the tests

Every run must execute every Node test: a skip or a missing test fails.

Run:  make && make node-deps && SEATCAST_BIN=$PWD/build/seatcast \\
          /usr/bin/python3 -m pytest -v -p no:cacheprovider \\
          tests/integration/test_client_js.py
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile

import pytest

from pg import BOOKING_TEMPLATE
from server import ROOT, Seatcast, proc_info

CLIENT_DIR = os.path.join(ROOT, "clients", "js")


def node_or_fail():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20 is needed)")
    if not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "ws")):
        pytest.fail("clients/js/node_modules missing: run `make node-deps`")
    return node


def run_node_tests(files, env, timeout, expect):
    """node --test FILES in clients/js; checks the runner's summary: every
    test ran (expect of them) and passed.  Returns the output."""
    p = subprocess.run([node_or_fail(), "--test", "--test-reporter=tap",
                        "--test-timeout=90000"] +
                       files, cwd=CLIENT_DIR, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    print(p.stdout)
    summary = dict((k, int(v)) for k, v in
                   re.findall(r"^# (tests|pass|fail|skipped|cancelled) (\d+)$",
                              p.stdout, re.M))
    assert p.returncode == 0, "node --test exited %d" % p.returncode
    assert summary.get("fail") == 0 and summary.get("cancelled") == 0, summary
    assert summary.get("skipped") == 0, "skipped tests: %r" % summary
    assert summary.get("pass") == expect, summary
    return p.stdout


@pytest.mark.deadline(120)
def test_client_js_unit():
    out = run_node_tests(["test/unit.test.js", "test/react.test.js",
                          "test/types.test.js"],
                         dict(os.environ), 100, expect=22)
    assert re.search(r"^ok \d+ - nextDelay", out, re.M), out


def _stop_leftovers(masters_file):
    """Masters the Node harness started and did not stop (it failed hard):
    their process groups are killed."""
    try:
        with open(masters_file) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        return []
    left = []
    for pid in pids:
        info = proc_info(pid)
        if info and info["state"] not in ("Z", "X") and \
                info["comm"].startswith("sc-master"):
            left.append(pid)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return left


@pytest.mark.deadline(240)
def test_client_js_live(cluster, seatcast_bin, tmp_path):
    db = "clientjs"
    cluster.dropdb(db)
    cluster.createdb(db, template=BOOKING_TEMPLATE)
    work = tmp_path / "client-js"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and not k.startswith("SEATCAST_")}
    env.update(SEATCAST_BIN=seatcast_bin,
               SEATCAST_TEST_DB=cluster.conninfo(db),
               SEATCAST_TEST_PSQL=cluster.psql_bin,
               SEATCAST_TEST_DIR=str(work))
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    try:
        out = run_node_tests(["test/live.test.js"], env, 220, expect=6)
    finally:
        left = _stop_leftovers(str(work / "masters"))
        logs = sorted(work.glob("seatcast-*.log"))
        for log in logs:
            text = log.read_text(errors="replace")
            for mark in Seatcast.SANITIZER_MARKS:
                assert mark not in text, "%s in %s:\n%s" % (
                    mark, log, text[-3000:])
    assert not left, "seatcast masters left running: %r" % left
    assert logs, "the harness started no server"
    m = re.search(r"# back and subscribed (\d+) ms after kill -9", out)
    assert m and int(m.group(1)) <= 2000, out


@pytest.mark.deadline(120)
def test_client_js_pack(tmp_path):
    node = node_or_fail()
    npm = shutil.which("npm")
    assert npm, "npm is not installed"
    out = tmp_path / "pack"
    out.mkdir()
    p = subprocess.run([npm, "pack", "--json", "--pack-destination", str(out)],
                       cwd=CLIENT_DIR, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)[0]
    tarball = out / info["filename"]
    assert info["name"] == "seatcast-client"
    with tarfile.open(tarball) as t:
        names = sorted(n[len("package/"):] for n in t.getnames())
    assert names == ["README.md", "index.d.ts", "index.js", "package.json",
                     "react.d.ts", "react.js"], names
    # an empty project installs it (no runtime dependency to fetch) ...
    proj = tmp_path / "app"
    proj.mkdir()
    (proj / "package.json").write_text(json.dumps(
        {"name": "app", "private": True, "type": "module"}))
    p = subprocess.run([npm, "install", "--offline", "--no-audit", "--no-fund",
                        "--loglevel=error", str(tarball)], cwd=proj,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=90)
    assert p.returncode == 0, p.stdout
    installed = json.loads((proj / "package.json").read_text())
    assert "seatcast-client" in installed["dependencies"], installed
    assert not (proj / "node_modules" / "ws").exists(), \
        "a runtime dependency came along"
    # ... and Node imports both entry points from it; the hook needs React,
    # which the application brings (a peer dependency): linked here from
    # clients/js/node_modules
    os.symlink(os.path.join(CLIENT_DIR, "node_modules", "react"),
               proj / "node_modules" / "react")
    script = r"""
import { SeatcastClient, nextDelay, bookingsOf } from 'seatcast-client';
import Default from 'seatcast-client';
import { useSeats } from 'seatcast-client/react';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const pkg = require('seatcast-client/package.json');
let err = null;
try { new SeatcastClient({ url: 'ws://127.0.0.1:1/ws' }); } catch (e) { err = e.message; }
console.log(JSON.stringify({
  client: typeof SeatcastClient, same: Default === SeatcastClient,
  hook: typeof useSeats, delay: nextDelay(0, {}, () => 0.5).delay,
  bookings: bookingsOf({ type: 'booking_created', bookings: 3 }),
  noWebSocket: err, types: pkg.types, where: import.meta.resolve('seatcast-client'),
}));
"""
    p = subprocess.run([node, "--input-type=module", "-e", script], cwd=proj,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["client"] == "function" and r["same"] and \
        r["hook"] == "function", r
    assert r["delay"] == 125 and r["bookings"] == 3, r
    assert r["types"] == "./index.d.ts", r
    assert "/app/node_modules/seatcast-client/index.js" in r["where"], r
    # Node 20 has no global WebSocket: the client says how to give one
    assert r["noWebSocket"] is None or "WebSocket option" in r["noWebSocket"]
