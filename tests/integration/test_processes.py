"""test_processes.py - seatcast's process model (SPEC sections 1, 6, 8).

Real servers (server.Seatcast), real WebSocket clients (websockets 10.4),
no database unless a test says so: the listener keeps retrying and
/healthz says "degraded".  The /healthz test takes the conftest's
PostgreSQL cluster (a database cloned from pg.BOOKING_TEMPLATE), so that
200 is possible and a 503 is the workers' doing.  Every wait polls (server.wait_for);
every server is killed with its whole tree at teardown (make_server).

Figures (spread of connections, repair and respawn times) are printed:
pytest shows them for a failing test, `pytest -s` (or -rP) always.

Run:
    make && SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest \
        -v -p no:cacheprovider tests/integration/test_processes.py
"""

import asyncio
import base64
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import time

import pytest

from pg import BOOKING_TEMPLATE
from server import (Seatcast, async_wait_for, free_port, pid_alive, proc_info,
                    procs_named, run_seatcast, shm_path, tcp_peer_ports,
                    wait_for, ws_closed, ws_open, ws_ping)


def stats_where(srv, cond):
    """A predicate for wait_for: the stats dict once cond(stats) holds."""
    def check():
        st = srv.stats()
        return st if st is not None and cond(st) else None
    return check


async def open_clients(srv, n, token, batch=50):
    clients = []
    for i in range(0, n, batch):
        got = await asyncio.gather(*(ws_open(srv, token=token)
                                     for _ in range(min(batch, n - i))))
        clients += [ws for ws, _ in got]
    return clients


async def close_all(clients):
    await asyncio.gather(*(ws.close() for ws in clients),
                         return_exceptions=True)


# ------------------------------------------------------------------ #
# 1. Who runs                                                          #

def test_tree_is_one_master_three_workers_one_listener(make_server):
    srv = make_server(workers=3)
    st = srv.stats()
    master = proc_info(srv.master_pid)
    assert master["comm"] == "sc-master"
    assert master["cmdline"] == "seatcast: master"

    children = [proc_info(p) for p in
                (int(x) for x in os.listdir("/proc") if x.isdigit())]
    children = [c for c in children
                if c is not None and c["ppid"] == srv.master_pid]
    names = sorted((c["comm"], c["cmdline"]) for c in children)
    assert names == [
        ("sc-listener", "seatcast: listener"),
        ("sc-worker-0", "seatcast: worker 0"),
        ("sc-worker-1", "seatcast: worker 1"),
        ("sc-worker-2", "seatcast: worker 2"),
    ]
    # the registry agrees with /proc, slot by slot
    by_pid = {c["pid"]: c for c in children}
    for w in st["workers"]:
        assert by_pid[w["pid"]]["comm"] == "sc-worker-%d" % w["index"]
    assert by_pid[st["listener"]["pid"]]["comm"] == "sc-listener"
    assert st["owner_pid"] == srv.master_pid
    # and nothing else of this tree runs: one master, no stray process
    tree = srv.tree_pids()
    assert tree == {srv.master_pid} | set(by_pid)
    masters = [p for p in procs_named("sc-master") if p["pid"] in tree]
    assert [p["pid"] for p in masters] == [srv.master_pid]
    assert all(p["state"] not in "ZX" for p in children)


# ------------------------------------------------------------------ #
# 2. Spread, and a worker killed with -9                               #

class LowNofileSeatcast(Seatcast):
    """A Seatcast started with a soft open-file limit of 1024 (prlimit)."""

    def argv(self):
        return ["prlimit", "--nofile=1024:%d" % HARD_NOFILE] + \
            super().argv()


HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


@pytest.mark.deadline(60)
def test_open_file_limit_raised_to_the_hard_limit(tmp_path):
    """Every connection is a descriptor: seatcast raises its soft limit
    (often 1024) to the hard one at start, for all its processes."""
    srv = LowNofileSeatcast(tmp_path, workers=2)
    try:
        srv.start()
        pids = [srv.master_pid] + srv.worker_pids() + [srv.listener_pid()]
        assert [soft_nofile(p) for p in pids] == [HARD_NOFILE] * len(pids)
    finally:
        srv.stop()
        srv.kill_tree()
        srv.cleanup()


@pytest.mark.deadline(60)
def test_kernel_send_buffer_per_client_is_capped(make_server):
    """A client that stops reading may hold only a bounded kernel send
    buffer (128 KiB, which the kernel doubles for bookkeeping), not the
    megabytes of an autotuned socket."""
    srv = make_server(workers=1)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        # the worker sets the buffer when it takes the socket, before it
        # counts it: until then the master's accepted socket is autotuned
        wait_for(lambda: srv.stats()["totals"]["connections"] == 1, 10,
                 "the worker to take the connection")

        def tb():
            out = subprocess.run(
                ["ss", "-tmnH", "state", "established",
                 "( sport = :%d )" % srv.port],
                capture_output=True, text=True).stdout
            m = re.search(r"tb(\d+)", out)
            return int(m.group(1)) if m else None
        size = wait_for(tb, 5, "the server side of the connection in ss")
        assert size <= 2 * 128 * 1024, size
    finally:
        sock.close()


@pytest.mark.deadline(60)
def test_connection_burst_waits_for_busy_workers(make_server):
    """A burst larger than the channels can queue (a SEQPACKET channel
    holds only a few messages) while every worker is busy (stopped): the
    master holds back and accepts again when a worker has room, so every
    connection reaches a worker and none is dropped."""
    BURST = 1500  # a channel queues a few hundred descriptors at most
    srv = make_server(workers=2, args=["--handshake-timeout", "60"])
    pids = srv.worker_pids()
    socks = []
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(BURST):
            socks.append(socket.create_connection(("127.0.0.1", srv.port),
                                                  timeout=10))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    try:
        st = wait_for(
            lambda: (lambda s: s if s["totals"]["connections"] == BURST
                     else None)(srv.stats()), 30,
            "all %d connections to reach the workers" % BURST)
        assert st["totals"]["accept_drops"] == 0, st["totals"]
        print("%d connections accepted while the workers were stopped; "
              "per worker: %s" % (BURST,
                                  [w["connections"] for w in st["workers"]]))
    finally:
        for s in socks:
            s.close()


@pytest.mark.deadline(180)
def test_300_connections_spread_and_killed_worker_is_repaired(
        make_server, record_property):
    n = 300
    srv = make_server(workers=3, args=["--handshake-timeout", "60"])
    token = srv.token(sub="spread")

    async def body():
        clients = []
        try:
            clients = await open_clients(srv, n, token)
            st = await async_wait_for(
                stats_where(srv, lambda s: s["totals"]["connections"] == n),
                5, "%d connections in the registry" % n)
            per = [w["connections"] for w in st["workers"]]
            print("connections per worker: %s (total %d)" % (per, sum(per)))
            record_property("connections_per_worker", per)
            assert st["totals"]["clients"] == n
            assert all(c > 0 for c in per), per
            assert max(per) <= 0.4 * n, per

            # which client sits in which worker (its sockets, from /proc)
            ports = {ws.local_address[1]: ws for ws in clients}
            held = {w["index"]: tcp_peer_ports(w["pid"], srv.port)
                    for w in st["workers"]}
            assert [len(held[i]) for i in range(3)] == per
            assert set().union(*held.values()) == set(ports)

            victim = max(range(3), key=lambda i: per[i])
            old_pid = st["workers"][victim]["pid"]
            others = {w["index"]: (w["pid"], w["connections"])
                      for w in st["workers"] if w["index"] != victim}
            victims = [ports[p] for p in held[victim]]
            survivors = [ws for p, ws in ports.items()
                         if p not in held[victim]]
            expected = n - len(victims)

            t0 = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
            await async_wait_for(
                stats_where(srv, lambda s:
                            s["totals"]["connections"] == expected),
                5, "totals.connections == %d" % expected)
            t_repair = time.monotonic() - t0
            st2 = await async_wait_for(
                stats_where(srv, lambda s:
                            s["workers"][victim]["pid"] not in (0, old_pid)
                            and s["workers"][victim]["state"] == "running"),
                10, "worker %d respawned" % victim)
            t_respawn = time.monotonic() - t0
            print("killed worker %d (pid %d, %d connections): totals "
                  "repaired to %d in %.3f s, respawned as pid %d in %.3f s"
                  % (victim, old_pid, len(victims), expected, t_repair,
                     st2["workers"][victim]["pid"], t_respawn))
            record_property("repair_s", round(t_repair, 3))
            record_property("respawn_s", round(t_respawn, 3))
            assert t_repair < 1.0, "registry repaired in %.3f s" % t_repair
            assert not pid_alive(old_pid)
            new = proc_info(st2["workers"][victim]["pid"])
            assert new["ppid"] == srv.master_pid
            assert new["comm"] == "sc-worker-%d" % victim
            assert st2["totals"]["worker_restarts"] == 1
            assert st2["workers"][victim]["connections"] == 0

            # the killed worker's clients are closed, the others untouched
            closes = await asyncio.gather(*(ws_closed(ws, 10)
                                            for ws in victims))
            assert all(code == 1006 for code, _ in closes), set(closes)
            pongs = await asyncio.gather(*(ws_ping(ws, 10)
                                           for ws in survivors))
            assert all(p["type"] == "pong" for p in pongs)
            st3 = srv.stats()
            for i, (pid, conns) in others.items():
                assert st3["workers"][i]["pid"] == pid
                assert st3["workers"][i]["connections"] == conns
            assert st3["totals"]["connections"] == expected
            assert st3["totals"]["clients"] == expected
            # the dead worker's counters are kept (folded), not lost
            assert st3["totals"]["connections_total"] == n
            assert st3["totals"]["handshakes"] == n

            # the new worker is the least loaded: it gets the next ones
            fresh = await open_clients(srv, 5, token)
            clients += fresh
            st4 = await async_wait_for(
                stats_where(srv, lambda s:
                            s["totals"]["connections"] == expected + 5),
                5, "5 more connections")
            assert st4["workers"][victim]["connections"] == 5
            await asyncio.gather(*(ws_ping(ws) for ws in fresh))
        finally:
            await close_all(clients)

    asyncio.run(body())


# ------------------------------------------------------------------ #
# 3. SIGTERM                                                           #

@pytest.mark.deadline(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_sigterm_closes_clients_1001_and_exits_0(make_server, sig):
    srv = make_server(workers=2, args=["--shutdown-timeout", "5"])
    token = srv.token()
    tree = srv.tree_pids()
    assert len(tree) == 4

    async def body():
        clients = await open_clients(srv, 8, token)
        try:
            st = srv.stats()
            assert all(w["connections"] > 0 for w in st["workers"])
            loop = asyncio.get_running_loop()
            t0 = time.monotonic()
            # stop() blocks: run it beside the loop, so that the clients
            # answer the server's close frames meanwhile
            rc = await loop.run_in_executor(None, srv.stop, sig, 15)
            elapsed = time.monotonic() - t0
            closes = await asyncio.gather(*(ws_closed(ws, 5)
                                            for ws in clients))
            return rc, elapsed, closes
        finally:
            await close_all(clients)

    rc, elapsed, closes = asyncio.run(body())
    print("%s: exit %s after %.3f s; clients saw %s"
          % (signal.Signals(sig).name, rc, elapsed, sorted(set(closes))))
    assert rc == 0, srv.log_tail()
    assert elapsed < 5.0
    assert closes == [(1001, "Server shutting down")] * 8
    left = [p for p in tree if pid_alive(p)]
    assert left == [], [proc_info(p) for p in left]
    assert not srv.shm_exists(), "segment %s left behind" % srv.shm_name
    assert "all children stopped" in srv.log()
    with pytest.raises(OSError):
        srv.http_get("/healthz", timeout=2)


# ------------------------------------------------------------------ #
# 4. A second instance                                                 #

@pytest.mark.deadline(60)
def test_second_instance_same_shm_exits_2_and_leaves_first_alone(
        make_server):
    srv = make_server(workers=2)
    before = srv.stats()
    base = ["--workers", "2", "--shm-name", srv.shm_name]

    same = run_seatcast(["-l", "127.0.0.1:%d" % srv.port] + base,
                        timeout=10)
    other_port = free_port()
    other = run_seatcast(["-l", "127.0.0.1:%d" % other_port] + base,
                         timeout=10)
    for p in (same, other):
        print("second instance: exit %d, stderr %r" % (p.returncode,
                                                       p.stderr))
        assert p.returncode == 2, p.stderr
        assert "pid %d" % srv.master_pid in p.stderr, p.stderr
        assert srv.shm_name in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr

    # the first one did not notice
    assert srv.running()
    assert srv.shm_exists()
    after = srv.stats()
    assert after["owner_pid"] == before["owner_pid"] == srv.master_pid
    assert after["start_time_ms"] == before["start_time_ms"]
    assert [w["pid"] for w in after["workers"]] == \
        [w["pid"] for w in before["workers"]]
    assert after["listener"]["pid"] == before["listener"]["pid"]
    assert after["totals"]["worker_restarts"] == 0

    async def body():
        ws, _ = await ws_open(srv)
        try:
            assert (await ws_ping(ws))["type"] == "pong"
        finally:
            await ws.close()
    asyncio.run(body())


@pytest.mark.deadline(60)
def test_second_instance_on_busy_port_exits_2(make_server):
    srv = make_server(workers=1)
    shm = "/sc-test-busy-%d" % os.getpid()
    p = run_seatcast(["-l", "127.0.0.1:%d" % srv.port, "--workers", "1",
                      "--shm-name", shm], timeout=10)
    print("busy port: exit %d, stderr %r" % (p.returncode, p.stderr))
    assert p.returncode == 2
    assert "127.0.0.1:%d" % srv.port in p.stderr
    assert "in use" in p.stderr
    assert not os.path.exists(shm_path(shm)), "its own segment left behind"
    assert srv.running() and srv.stats()["owner_pid"] == srv.master_pid


# ------------------------------------------------------------------ #
# 5. Restart after kill -9 of everything                               #

@pytest.mark.deadline(60)
def test_restart_after_kill9_of_whole_tree_replaces_stale_segment(
        make_server):
    first = make_server(workers=2)
    old = first.tree_pids()
    assert len(old) == 4
    first.kill_tree()
    assert not any(pid_alive(p) for p in old)
    assert first.shm_exists(), "kill -9 cannot remove the segment"
    stale = first.stats()
    assert stale["owner_pid"] == first.master_pid  # dead owner

    t0 = time.monotonic()
    second = make_server(workers=2, port=first.port,
                         shm_name=first.shm_name)
    print("restarted on port %d over a stale segment in %.3f s"
          % (second.port, time.monotonic() - t0))
    assert re.search(r"replaced stale shared memory \"%s\""
                     % re.escape(second.shm_name), second.log()), \
        second.log_tail()
    st = second.stats()
    assert st["owner_pid"] == second.master_pid != first.master_pid
    assert st["totals"]["worker_restarts"] == 0
    assert st["totals"]["connections"] == 0

    async def body():
        ws, _ = await ws_open(second)
        try:
            assert (await ws_ping(ws))["type"] == "pong"
        finally:
            await ws.close()
    asyncio.run(body())


# ------------------------------------------------------------------ #
# 6. Master killed alone                                               #

@pytest.mark.deadline(60)
def test_children_exit_when_master_is_killed(make_server):
    srv = make_server(workers=2)
    children = srv.child_pids()
    assert len(children) == 3

    async def body():
        ws, _ = await ws_open(srv)
        try:
            t0 = time.monotonic()
            os.kill(srv.master_pid, signal.SIGKILL)
            srv.wait(5)
            await async_wait_for(
                lambda: not any(pid_alive(p) for p in children), 5,
                "workers and listener %s to exit" % children)
            gone = time.monotonic() - t0
            code, reason = await ws_closed(ws, 5)
            return gone, code, reason
        finally:
            await ws.close()

    gone, code, reason = asyncio.run(body())
    print("master killed: children gone after %.3f s; client closed with "
          "%s %r" % (gone, code, reason))
    orphans = [p for p in procs_named("sc-") if p["pid"] in children]
    assert orphans == []
    assert srv.tree_pids() == set()


# ------------------------------------------------------------------ #
# 7. SIGHUP                                                            #

@pytest.mark.deadline(60)
def test_sighup_reloads_and_refuses_broken_config(make_server, tmp_path):
    conf = tmp_path / "seatcast.conf"
    conf.write_text("# seatcast test configuration\n"
                    "handshake-timeout = 30\n"
                    "max-subscriptions = 50\n")
    srv = make_server(workers=2, args=["-c", str(conf)])
    tree = srv.tree_pids()
    slots = srv.child_pids()
    big = '{"type":"ping","pad":"%s"}' % ("x" * 1000)

    async def too_big_closes(ws):
        await ws.send(big)
        return await ws_closed(ws, 5)

    async def body():
        ws, _ = await ws_open(srv)
        try:
            # a message of ~1 KB is fine under the default 16k limit
            await ws.send(big)
            assert (await ws_ping(ws))["type"] == "pong"
            # a non-JWT option changed in the file before the reload
            conf.write_text("# seatcast test configuration\n"
                            "handshake-timeout = 30\n"
                            "max-subscriptions = 50\n"
                            "max-message-size = 200\n")
            mark = srv.log_mark()
            srv.send_signal(signal.SIGHUP)
            srv.wait_log(r"master\[%d\]: configuration reloaded"
                         % srv.master_pid, since=mark)
            wait_for(lambda: len(re.findall(
                r"worker \d\[\d+\]: configuration and keys reloaded",
                srv.log()[mark:])) == 2, 5, "both workers to reload")
            assert srv.tree_pids() == tree
            assert srv.child_pids() == slots
            assert (await ws_ping(ws))["type"] == "pong"
            # new connections get the new limit (two, to reach both workers):
            # 1009 for the same message; the open one keeps its own
            fresh = [(await ws_open(srv))[0] for _ in range(2)]
            assert await asyncio.gather(*(too_big_closes(c)
                                          for c in fresh)) == \
                [(1009, "")] * 2
            await ws.send(big)
            assert (await ws_ping(ws))["type"] == "pong"

            conf.write_text("this is not a configuration file\n")
            mark = srv.log_mark()
            srv.send_signal(signal.SIGHUP)
            m = srv.wait_log(r"^.*\[error\].*reload failed.*$", since=mark)
            print("broken config at reload: %s" % m.group(0))
            assert str(conf) in m.group(0)
            # still serving, with the same processes
            assert (await ws_ping(ws))["type"] == "pong"
            ws2, _ = await ws_open(srv)
            assert (await ws_ping(ws2))["type"] == "pong"
            await ws2.close()
            # no database: 503, and only for that (every worker is up)
            status, _, body = srv.http_get("/healthz")
            body = json.loads(body)
            assert (status, body["status"]) == (503, "degraded"), body
            assert body["reasons"] == [
                "listener not connected to PostgreSQL"], body
            assert body["workersUp"] == 2, body
            assert srv.running()
            assert srv.tree_pids() == tree
            st = srv.stats()
            assert [w["pid"] for w in st["workers"]] + \
                [st["listener"]["pid"]] == slots
            assert st["totals"]["worker_restarts"] == 0
            assert "restarting" not in srv.log()[mark:]
        finally:
            await ws.close()

    asyncio.run(body())


# ------------------------------------------------------------------ #
# 8. The command line                                                  #

@pytest.mark.parametrize("bad,named", [
    (["--workers", "0"], "--workers"),
    (["--listen", "nonsense"], "--listen"),
    (["--bogus"], "--bogus"),
    (["-c", "/nonexistent"], ("-c", "--config")),
], ids=["workers-0", "listen-nonsense", "bogus", "config-missing"])
def test_bad_flag_exits_2_with_one_line(bad, named):
    # a listener and segment of its own, should it start by mistake
    safe = ["-l", "127.0.0.1:%d" % free_port(),
            "--shm-name", "/sc-test-flags-%d" % os.getpid()]
    p = run_seatcast(bad + safe, timeout=10)
    lines = p.stderr.splitlines()
    print("%s -> exit %d: %r" % (" ".join(bad), p.returncode, p.stderr))
    assert p.returncode == 2
    assert len(lines) == 1, p.stderr
    if isinstance(named, tuple):
        # -c FILE: both the flag and the file
        assert bad[1] in lines[0], lines[0]
        assert any(re.search(r"(^|\s)%s\b" % re.escape(n), lines[0])
                   for n in named), "the flag is not named: %r" % lines[0]
    else:
        assert named in lines[0]
    assert p.stdout == ""


def test_check_config_and_version_and_help(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("listen = 127.0.0.1:%d\nworkers = 2\n"
                    "max-events = 1024   # small\nshutdown-timeout = 5s\n"
                    % free_port())
    p = run_seatcast(["-t", "-c", str(good)], timeout=10)
    assert p.returncode == 0, p.stderr
    assert "configuration ok" in p.stdout
    assert p.stderr == ""

    bad = tmp_path / "bad.conf"
    bad.write_text("workers = 2\nworkers = lots\n")
    p = run_seatcast(["-t", "-c", str(bad)], timeout=10)
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1
    assert "%s:2:" % bad in p.stderr and "workers" in p.stderr

    p = run_seatcast(["--version"], timeout=10)
    assert p.returncode == 0
    assert re.fullmatch(r"seatcast \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout

    p = run_seatcast(["--help"], timeout=10)
    assert p.returncode == 0
    assert p.stdout.startswith("usage: seatcast")
    for opt in ("config listen workers database channel jwt-secret-file "
                "jwt-public-key jwt-issuer jwt-audience jwt-leeway "
                "allowed-origin trusted-proxy max-connections "
                "max-connections-per-user max-subscriptions max-message-rate "
                "max-message-size max-events ping-interval handshake-timeout "
                "send-buffer-limit shutdown-timeout shm-name log-level "
                "log-format pid-file version help").split():
        assert "--" + opt in p.stdout, "--help lacks --" + opt


# ------------------------------------------------------------------ #
# 9. seatcast stats                                                    #

def test_stats_text_and_json(make_server, tmp_path):
    srv = make_server(workers=2)

    async def body():
        ws, _ = await ws_open(srv)
        try:
            st = await async_wait_for(
                stats_where(srv, lambda s: s["totals"]["clients"] == 1), 5,
                "one client in the registry")
            text = srv.stats_raw()
            return st, text
        finally:
            await ws.close()

    st, text = asyncio.run(body())
    print(text.stdout)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "seatcast registry %s (master pid %d, listen " \
        "127.0.0.1:%d)" % (srv.shm_name, srv.master_pid, srv.port)
    assert re.match(r"connections 1\s+clients 1\s+subscriptions 0\s+events "
                    r"0/\d+", lines[1]), lines[1]
    for w in st["workers"]:
        assert any(re.match(r"%d\s+%d\s+running\s" % (w["index"], w["pid"]),
                            line) for line in lines), w
    assert any(re.match(r"listener\s+%d\s" % st["listener"]["pid"], line)
               for line in lines)

    assert st["shm_name"] == srv.shm_name
    assert st["owner_pid"] == srv.master_pid
    assert st["listen"] == "127.0.0.1:%d" % srv.port
    assert st["shutting_down"] is False
    assert [w["index"] for w in st["workers"]] == [0, 1]
    assert st["totals"]["workers"] == st["totals"]["workers_running"] == 2
    assert st["totals"]["connections"] == 1
    assert st["listener"]["database"] in ("connecting", "disconnected")

    # -c FILE finds the segment through the file's shm-name
    conf = tmp_path / "stats.conf"
    conf.write_text("shm-name = %s\n" % srv.shm_name)
    p = run_seatcast(["stats", "--json", "-c", str(conf)], timeout=10)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["owner_pid"] == srv.master_pid

    p = srv.stats_raw(shm_name="/sc-test-nonexistent")
    print("stats of a missing segment: exit %d, %r" % (p.returncode,
                                                       p.stderr))
    assert p.returncode == 1  # man page EXIT STATUS: a run-time failure
    assert p.stdout == ""
    assert len(p.stderr.splitlines()) == 1
    assert "/sc-test-nonexistent" in p.stderr
    assert "running" in p.stderr


# ------------------------------------------------------------------ #
# 10. Respawn backoff                                                  #

@pytest.mark.deadline(90)
def test_worker_dying_repeatedly_is_respawned_with_backoff(
        make_server, record_property):
    srv = make_server(workers=2)
    slot = 1
    other = srv.stats()["workers"][0]["pid"]
    delays = []
    for i in range(3):
        old = srv.stats()["workers"][slot]["pid"]
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        st = wait_for(stats_where(
            srv, lambda s: s["workers"][slot]["pid"] not in (0, old) and
            s["workers"][slot]["state"] == "running"),
            15, "worker %d respawn #%d" % (slot, i + 1))
        delays.append(time.monotonic() - t0)
        assert not pid_alive(old)
        assert proc_info(st["workers"][slot]["pid"])["ppid"] == \
            srv.master_pid
        assert st["totals"]["worker_restarts"] == i + 1
    print("worker %d killed 3 times: back after %s s"
          % (slot, ", ".join("%.3f" % d for d in delays)))
    record_property("respawn_delays_s", [round(d, 3) for d in delays])
    # the 2nd and 3rd deaths are young (< 2 s): the 3rd waits >= 200 ms
    assert delays[2] >= 0.15, delays
    assert srv.stats()["workers"][0]["pid"] == other
    assert len(re.findall(r"worker %d \(pid \d+\) killed by signal 9.*"
                          r"restarting" % slot, srv.log())) == 3

    async def body():
        ws, _ = await ws_open(srv)
        try:
            assert (await ws_ping(ws))["type"] == "pong"
        finally:
            await ws.close()
    asyncio.run(body())


def healthz(srv, timeout=2):
    """(status, body dict) of /healthz.  A request the master hands to a
    stopped worker times out (an OSError, which wait_for retries): the
    master then counts it as that worker's load and sends the next one
    elsewhere."""
    status, _, body = srv.http_get("/healthz", timeout=timeout)
    return status, json.loads(body)


def healthz_is(srv, status):
    def check():
        got = healthz(srv)
        return got if got[0] == status else None
    return check


@pytest.mark.deadline(120)
def test_healthz_degraded_while_a_worker_is_stopped_or_down(make_server,
                                                            cluster):
    """SPEC 8: /healthz is 200 only while every worker runs (a heartbeat
    younger than 5 s) and the listener is connected.  With the database
    up: a SIGSTOPped worker makes it 503 "degraded" naming the workers,
    SIGCONT makes it 200 again; so does a killed worker until it is
    respawned (killed young seven times, its respawn waits 3.2 s)."""
    name = "hz%d" % os.getpid()
    cluster.createdb(name, template=BOOKING_TEMPLATE)
    try:
        srv = make_server(workers=2, database=cluster.conninfo(name))
        wait_for(healthz_is(srv, 200), 20, "/healthz 200")
        status, body = healthz(srv)
        assert body["status"] == "ok" and body["workersUp"] == 2, body
        assert body["database"] == "connected" and "reasons" not in body

        victim = srv.worker_pids()[1]
        os.kill(victim, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            _, body = wait_for(healthz_is(srv, 503), 20,
                               "/healthz 503 while worker 1 is stopped")
            stale = time.monotonic() - t0
        finally:
            os.kill(victim, signal.SIGCONT)
        print("worker 1 stopped: /healthz 503 after %.1f s: %s"
              % (stale, body))
        assert body["status"] == "degraded"
        assert body["reasons"] == ["1 of 2 workers up"], body
        assert body["workersUp"] == 1 and body["database"] == "connected"
        wait_for(healthz_is(srv, 200), 15, "/healthz 200 after SIGCONT")
        assert srv.worker_pids()[1] == victim

        # killed young again and again: the respawn backoff keeps the
        # slot empty long enough to look
        for i in range(7):
            old = srv.worker_pids()[1]
            os.kill(old, signal.SIGKILL)
            if i == 6:
                break
            wait_for(stats_where(srv, lambda s: s["workers"][1]["pid"] not in
                                 (0, old) and s["workers"][1]["state"] ==
                                 "running"), 15, "worker 1 respawn")

        def down_and_503():
            st = srv.stats()
            if st["workers"][1]["pid"] != 0:
                return None
            got = healthz(srv)
            return got if got[0] == 503 and \
                srv.stats()["workers"][1]["pid"] == 0 else None
        _, body = wait_for(down_and_503, 5,
                           "/healthz 503 while worker 1 waits for respawn")
        print("worker 1 killed, waiting for its respawn: %s" % body)
        assert body["reasons"] == ["1 of 2 workers up"], body
        wait_for(healthz_is(srv, 200), 15, "/healthz 200 after the respawn")
        assert srv.stats()["totals"]["worker_restarts"] == 7
    finally:
        cluster.dropdb(name)


# ------------------------------------------------------------------ #
# 11. A unix listener                                                  #

@pytest.mark.deadline(60)
def test_unix_listener_serves_and_is_removed_at_shutdown(make_server,
                                                         tmp_path):
    path = str(tmp_path / "sc.sock")
    assert len(path) < 100, path
    srv = make_server(workers=2, listen=["unix:" + path])
    assert os.path.exists(path)

    async def body():
        clients = await open_clients(srv, 4, srv.token())
        try:
            for ws in clients:
                assert (await ws_ping(ws))["type"] == "pong"
            st = srv.stats()
            assert st["totals"]["clients"] == 4
            assert all(w["connections"] > 0 for w in st["workers"])
        finally:
            await close_all(clients)
    asyncio.run(body())

    # served over the unix socket: no database, so 503 for that alone
    status, _, body = srv.http_get("/healthz")
    body = json.loads(body)
    assert (status, body["status"]) == (503, "degraded"), body
    assert body["reasons"] == ["listener not connected to PostgreSQL"]
    assert body["workersUp"] == 2, body
    assert srv.stop() == 0
    assert not os.path.exists(path), "socket file left after shutdown"
    assert not srv.shm_exists()


def test_stats_shows_the_whole_unix_listen_address(make_server, tmp_path):
    # a path of 90 bytes: --listen takes up to 107
    d = tmp_path / ("d" * max(1, 85 - len(str(tmp_path))))
    d.mkdir()
    path = str(d / "sc.sock")
    assert 80 <= len(path) <= 107, len(path)
    srv = make_server(workers=1, listen=["unix:" + path])
    st = srv.stats()
    text = srv.stats_raw().stdout
    print("listen in the registry: %r" % st["listen"])
    assert st["listen"] == "unix:" + path
    assert "listen unix:%s)" % path in text


# ------------------------------------------------------------------ #
# More of the same ground                                              #

def raw_ws_client(srv, token):
    """A WebSocket client by hand on a blocking socket: it completes the
    upgrade, reads connection_established and then never answers again."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws?token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (token, srv.port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed during the upgrade: %r" % buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def read_close_frame(s, buf, timeout=10):
    """Reads frames until a close frame: (code, reason)."""
    s.settimeout(timeout)
    while True:
        while len(buf) >= 2:
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            hdr = 2
            if ln == 126:
                if len(buf) < 4:
                    break
                ln, hdr = struct.unpack(">H", buf[2:4])[0], 4
            if len(buf) < hdr + ln:
                break
            payload, buf = buf[hdr:hdr + ln], buf[hdr + ln:]
            if op == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if ln >= 2 \
                    else None
                return code, payload[2:].decode()
        chunk = s.recv(4096)
        if not chunk:
            return None, "EOF before a close frame"
        buf += chunk


@pytest.mark.deadline(60)
@pytest.mark.parametrize("shutdown_timeout", [5, 1])
def test_sigterm_exits_within_timeout_despite_silent_clients(
        make_server, shutdown_timeout):
    srv = make_server(workers=2, args=["--shutdown-timeout",
                                       str(shutdown_timeout)])
    token = srv.token()
    tree = srv.tree_pids()
    silent = [raw_ws_client(srv, token) for _ in range(4)]
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            for _ in range(2)]  # never send a byte: still in HTTP
    try:
        wait_for(stats_where(srv, lambda s:
                             s["totals"]["connections"] == 6 and
                             s["totals"]["clients"] == 4),
                 5, "6 connections, 4 of them clients")
        t0 = time.monotonic()
        rc = srv.stop(signal.SIGTERM, timeout=shutdown_timeout + 10)
        elapsed = time.monotonic() - t0
        closes = [read_close_frame(s, rest) for s, rest in silent]
        print("--shutdown-timeout %d with 4 silent clients and 2 idle "
              "connections: exit %s after %.3f s; silent clients got %s"
              % (shutdown_timeout, rc, elapsed, sorted(set(closes))))
        assert rc == 0, srv.log_tail()
        assert elapsed < shutdown_timeout + 0.5
        assert closes == [(1001, "Server shutting down")] * 4
        for s in idle:
            s.settimeout(5)
            assert s.recv(100) == b""  # closed without a word
        assert not any(pid_alive(p) for p in tree)
        assert not srv.shm_exists()
    finally:
        for s, _ in silent:
            s.close()
        for s in idle:
            s.close()


@pytest.mark.deadline(60)
def test_killed_listener_is_respawned(make_server):
    srv = make_server(workers=2)
    st = srv.stats()
    old = st["listener"]["pid"]
    workers = [w["pid"] for w in st["workers"]]
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    st = wait_for(stats_where(srv, lambda s:
                              s["listener"]["pid"] not in (0, old) and
                              s["listener"]["state"] == "running"),
                  10, "the listener to be respawned")
    print("listener killed: back as pid %d after %.3f s"
          % (st["listener"]["pid"], time.monotonic() - t0))
    new = proc_info(st["listener"]["pid"])
    assert new["comm"] == "sc-listener"
    assert new["cmdline"] == "seatcast: listener"
    assert new["ppid"] == srv.master_pid
    assert st["totals"]["listener_restarts"] == 1
    assert st["totals"]["worker_restarts"] == 0
    assert [w["pid"] for w in st["workers"]] == workers
    assert srv.stop() == 0


@pytest.mark.deadline(60)
def test_pid_file_is_written_kept_from_a_second_instance_and_removed(
        make_server, tmp_path):
    pid_file = tmp_path / "seatcast.pid"
    srv = make_server(workers=1, args=["--pid-file", str(pid_file)])
    assert pid_file.read_text() == "%d\n" % srv.master_pid
    p = run_seatcast(["-l", "127.0.0.1:%d" % srv.port, "--workers", "1",
                      "--shm-name", srv.shm_name, "--pid-file",
                      str(pid_file)], timeout=10)
    assert p.returncode == 2
    assert pid_file.read_text() == "%d\n" % srv.master_pid
    assert srv.stop() == 0
    assert not pid_file.exists()


@pytest.mark.deadline(60)
def test_stale_segment_whose_owner_pid_was_reused_is_replaced(make_server):
    # after a reboot or a container restart the dead master's pid may
    # belong to an unrelated live process: that must not block a start
    first = make_server(workers=1)
    dead = first.master_pid
    first.kill_tree()
    path = shm_path(first.shm_name)
    with open(path, "r+b") as f:
        head = f.read(4096)
        at = head.find(struct.pack("<i", dead))
        assert at > 0, "owner pid not found in the segment header"
        f.seek(at)
        f.write(struct.pack("<i", os.getpid()))  # alive, not a master
    assert first.stats()["owner_pid"] == os.getpid()

    second = make_server(workers=1, port=first.port, shm_name=first.shm_name)
    assert "replaced stale shared memory" in second.log()
    assert second.stats()["owner_pid"] == second.master_pid


@pytest.mark.deadline(60)
def test_unix_socket_of_live_server_is_kept_and_stale_one_reused(
        make_server, tmp_path):
    path = str(tmp_path / "sc.sock")
    first = make_server(workers=1, listen=["unix:" + path])

    # a second instance on the same path (its own segment) is refused and
    # leaves the live socket alone
    shm = "/sc-test-unix2-%d" % os.getpid()
    p = run_seatcast(["-l", "unix:" + path, "--workers", "1",
                      "--shm-name", shm], timeout=10)
    print("second instance on %s: exit %d, %r" % (path, p.returncode,
                                                   p.stderr))
    assert p.returncode == 2
    assert path in p.stderr
    assert not os.path.exists(shm_path(shm))
    assert os.path.exists(path)
    assert first.http_get("/healthz")[0] == 503  # no database

    # killed with -9, the socket file stays; the next start takes it over
    first.kill_tree()
    assert os.path.exists(path)
    second = make_server(workers=1, listen=["unix:" + path],
                         shm_name=first.shm_name)

    async def body():
        ws, _ = await ws_open(second)
        try:
            assert (await ws_ping(ws))["type"] == "pong"
        finally:
            await ws.close()
    asyncio.run(body())
    assert second.stop() == 0
    assert not os.path.exists(path)


@pytest.mark.deadline(60)
def test_sighup_rereads_the_secret_for_new_connections(make_server,
                                                        tmp_path):
    secret = tmp_path / "jwt.secret"
    secret.write_text("the-old-secret%s\n" % ("x" * 32))
    srv = make_server(workers=2, secret=None,
                      args=["--jwt-secret-file", str(secret)])

    def mint():
        p = run_seatcast(["token", "--sub", "7", "--jwt-secret-file",
                          str(secret)], secret=None, timeout=10)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    async def refused(token):
        ws, _ = await ws_open(srv, token=token, greet=False)
        return await ws_closed(ws, 5)

    async def body():
        old = mint()
        ws, _ = await ws_open(srv, token=old)
        try:
            secret.write_text("the-new-secret%s\n" % ("x" * 32))
            new = mint()
            mark = srv.log_mark()
            srv.send_signal(signal.SIGHUP)
            wait_for(lambda: len(re.findall(
                r"configuration and keys reloaded", srv.log()[mark:])) == 2,
                5, "both workers to reload their keys")
            # two of each, so that both workers see both tokens
            assert await asyncio.gather(refused(old), refused(old)) == \
                [(1008, "Invalid token")] * 2
            fresh = await open_clients(srv, 2, new)
            st = srv.stats()
            assert all(w["clients"] > 0 for w in st["workers"]), st
            assert (await ws_ping(ws))["type"] == "pong"  # kept

            # an unreadable secret at reload keeps the keys in use
            secret.write_text("")
            mark = srv.log_mark()
            srv.send_signal(signal.SIGHUP)
            srv.wait_log(r"master\[\d+\]: reload failed, keeping the "
                         r"running configuration and keys", 5, since=mark)
            more = await open_clients(srv, 2, new)
            await asyncio.gather(*(ws_ping(c) for c in fresh + more))
            await close_all(fresh + more)
        finally:
            await ws.close()

    asyncio.run(body())
    assert srv.stats()["totals"]["worker_restarts"] == 0
