"""test_shm_security.py - another local user against the registry (SPEC 6).

"Another local user can neither read nor write the registry, nor stop
seatcast from starting (by creating an object of the same name first, or
one whose owner pid points at a process it controls); where the name is
taken by something not seatcast's own, seatcast still starts and says
where its registry is, and `seatcast stats` still finds it."

seatcast runs as root here (the test runner); the other user is `nobody`
(uid 65534), whose objects and processes are made with setpriv.  Every
object the tests or the servers create under the test's name is removed
at teardown, and every process of nobody's is killed.

Run:
    make && SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest \
        -v -p no:cacheprovider tests/integration/test_shm_security.py
"""

import asyncio
import glob
import json
import os
import re
import stat
import struct
import subprocess
import sys

import pytest

from server import (free_port, run_seatcast, shm_path, wait_for, ws_open,
                    ws_ping)

NOBODY = 65534
AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
             "--clear-groups"]
PYTHON = sys.executable or "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root to act as another user")


def as_nobody(code, data=None):
    """Runs python code as nobody; the CompletedProcess."""
    return subprocess.run(AS_NOBODY + [PYTHON, "-c", code], input=data,
                          capture_output=True, timeout=20)


def squat(name, data, kind="file"):
    """nobody creates /dev/shm/<name>: a file holding data (mode 0644), a
    FIFO (an open for reading would block), or a symbolic link to a file
    of root's.  Returns its lstat()."""
    path = shm_path(name)
    code = {
        "file": "import os, sys\n"
                "fd = os.open(%r, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "
                "0o644)\n"
                "os.write(fd, sys.stdin.buffer.read())\n" % path,
        "fifo": "import os\nos.mkfifo(%r, 0o666)\n" % path,
        "symlink": "import os\nos.symlink('/etc/passwd', %r)\n" % path,
    }[kind]
    p = as_nobody(code, data)
    assert p.returncode == 0, p.stderr
    st = os.lstat(path)
    assert st.st_uid == NOBODY
    return st


def same_object(a, b):
    return (a.st_ino, a.st_mode, a.st_uid, a.st_size) == \
        (b.st_ino, b.st_mode, b.st_uid, b.st_size)


def read_head(path, n=4096):
    with open(path, "rb") as f:
        return f.read(n)


@pytest.fixture
def squat_name():
    """A name of the test's own; whatever is left under it (the squatter's
    object, registries moved from it) is removed at teardown."""
    name = "/sc-test-squat-%d-%d" % (os.getpid(), free_port())
    yield name
    for path in [shm_path(name)] + glob.glob(shm_path(name) + ".u*"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@pytest.fixture
def nobody_master():
    """Starts a process of nobody's that calls itself sc-master; its pid."""
    procs = []

    def start():
        p = subprocess.Popen(
            AS_NOBODY + [PYTHON, "-c",
                         "import sys\n"
                         "open('/proc/self/comm', 'w').write('sc-master')\n"
                         "print('ready', flush=True)\n"
                         "sys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(p)
        assert p.stdout.readline() == b"ready\n"
        with open("/proc/%d/comm" % p.pid) as f:
            assert f.read().strip() == "sc-master"
        with open("/proc/%d/status" % p.pid) as f:
            uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", f.read(), re.M)
        assert int(uids.group(2)) == NOBODY
        return p.pid
    yield start
    for p in procs:
        p.kill()
        p.wait(10)


MOVED = r"shared memory \"%s\" belongs to another user \(uid %d\), not to " \
        r"seatcast \(uid 0\): the registry is \"(%s\.u0\.[0-9a-f]{16})\""


def moved_name(srv, name):
    m = re.search(MOVED % (re.escape(name), NOBODY, re.escape(name)),
                  srv.log())
    assert m, srv.log_tail()
    return m.group(1)


async def ping(srv):
    ws, _ = await ws_open(srv)
    try:
        assert (await ws_ping(ws))["type"] == "pong"
    finally:
        await ws.close()


# ------------------------------------------------------------------ #

@pytest.mark.deadline(90)
@pytest.mark.parametrize("kind", ["file", "fifo", "symlink"])
def test_name_taken_by_another_user_registry_moves_and_stats_finds_it(
        make_server, squat_name, kind):
    squatter = squat(squat_name, b"not yours\n", kind)

    # start() itself waits on `seatcast stats --shm-name squat_name`
    # until it shows this master: stats finds the moved registry
    srv = make_server(workers=2, shm_name=squat_name)
    moved = moved_name(srv, squat_name)
    print("registry moved to %s" % moved)
    assert re.search(r"starting: 2 workers, registry \"%s\"" % re.escape(moved),
                     srv.log()), srv.log_tail()

    st = srv.stats()
    assert st["owner_pid"] == srv.master_pid
    assert st["shm_name"] == moved
    text = srv.stats_raw()
    assert text.returncode == 0, text.stderr
    assert "seatcast registry %s (master pid %d" % (moved, srv.master_pid) \
        in text.stdout
    asyncio.run(ping(srv))

    # the real segment: root's, 0600; nobody can neither read nor write it
    real = os.stat(shm_path(moved))
    assert real.st_uid == 0 and stat.S_IMODE(real.st_mode) == 0o600
    for mode in ("rb", "r+b"):
        p = as_nobody("open(%r, %r)" % (shm_path(moved), mode))
        assert p.returncode != 0 and b"PermissionError" in p.stderr, p.stderr
    # nor through seatcast stats
    p = subprocess.run(AS_NOBODY + [srv.binary, "stats", "--shm-name", moved],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and p.stdout == "", p.stdout
    assert "belongs to another user (uid 0)" in p.stderr, p.stderr

    # the squatter's object is untouched, while running and after the stop
    assert same_object(os.lstat(shm_path(squat_name)), squatter)
    assert srv.stop() == 0
    assert not os.path.exists(shm_path(moved)), "moved segment left behind"
    assert same_object(os.lstat(shm_path(squat_name)), squatter)
    if kind == "file":
        assert read_head(shm_path(squat_name)) == b"not yours\n"


@pytest.mark.deadline(90)
def test_fake_registry_of_another_user_naming_its_sc_master_is_not_trusted(
        make_server, squat_name, nobody_master):
    # a complete registry (made by a real seatcast), copied by nobody
    # under the name, its owner pid nobody's "sc-master"
    first = make_server(workers=1, shm_name=squat_name,
                        args=["--max-events", "64"])
    with open(shm_path(squat_name), "rb") as f:
        image = bytearray(f.read())
    first.kill_tree()
    os.unlink(shm_path(squat_name))
    fake = nobody_master()
    at = image.find(struct.pack("<i", first.master_pid), 0, 4096)
    assert at > 0, "owner pid not found in the segment header"
    image[at:at + 4] = struct.pack("<i", fake)
    squat(squat_name, bytes(image))

    srv = make_server(workers=1, shm_name=squat_name)
    moved = moved_name(srv, squat_name)
    assert srv.stats()["owner_pid"] == srv.master_pid
    assert srv.stats()["shm_name"] == moved
    asyncio.run(ping(srv))
    # the fake is still there, still naming nobody's process
    assert read_head(shm_path(squat_name), len(image)) == bytes(image)


@pytest.mark.deadline(90)
def test_stale_registry_whose_owner_pid_is_another_users_sc_master_replaced(
        make_server, squat_name, nobody_master):
    # ours, left by a kill -9; its owner pid then points at a process of
    # nobody's that calls itself sc-master (a reused pid, or planted)
    first = make_server(workers=1, shm_name=squat_name)
    dead = first.master_pid
    first.kill_tree()
    fake = nobody_master()
    with open(shm_path(squat_name), "r+b") as f:
        head = f.read(4096)
        at = head.find(struct.pack("<i", dead))
        assert at > 0, "owner pid not found in the segment header"
        f.seek(at)
        f.write(struct.pack("<i", fake))

    second = make_server(workers=1, port=first.port, shm_name=squat_name)
    assert "replaced stale shared memory" in second.log(), second.log_tail()
    st = second.stats()
    assert st["owner_pid"] == second.master_pid
    assert st["shm_name"] == squat_name
    assert os.stat(shm_path(squat_name)).st_uid == 0


@pytest.mark.deadline(90)
def test_second_instance_refused_while_first_lives_beside_a_squatter(
        make_server, squat_name):
    squat(squat_name, b"")
    srv = make_server(workers=1, shm_name=squat_name)
    moved = moved_name(srv, squat_name)
    before = srv.stats()

    p = run_seatcast(["-l", "127.0.0.1:%d" % free_port(), "--workers", "1",
                      "--shm-name", squat_name], timeout=15)
    print("second instance: exit %d, stderr %r" % (p.returncode, p.stderr))
    assert p.returncode == 2, p.stderr
    assert "pid %d" % srv.master_pid in p.stderr
    assert moved in p.stderr
    assert glob.glob(shm_path(squat_name) + ".u*") == [shm_path(moved)]

    # the first one did not notice
    assert srv.running()
    after = srv.stats()
    assert after["owner_pid"] == before["owner_pid"] == srv.master_pid
    assert after["start_time_ms"] == before["start_time_ms"]
    asyncio.run(ping(srv))

    # and once it is gone for good (kill -9), the next start cleans up
    srv.kill_tree()
    wait_for(lambda: not srv.running(), 10, "the first server to die")
    third = make_server(workers=1, shm_name=squat_name)
    again = moved_name(third, squat_name)
    assert again != moved
    assert glob.glob(shm_path(squat_name) + ".u*") == [shm_path(again)]


@pytest.mark.deadline(90)
def test_unprivileged_server_starts_beside_a_squatter_and_root_stats_finds_it(
        make_server, squat_name, tmp_path, seatcast_bin):
    # the audit's case: seatcast runs as an ordinary user (here `daemon`,
    # uid 1), nobody created the name first; before, it exited 2 with
    # "could not remove stale shared memory: Permission denied"
    squat(squat_name, b"first!\n")
    wrapper = tmp_path / "seatcast-as-daemon"
    wrapper.write_text("#!/bin/sh\nexec setpriv --reuid=1 --regid=1 "
                       "--clear-groups %s \"$@\"\n" % seatcast_bin)
    wrapper.chmod(0o755)

    # start() waits on the wrapper's stats: daemon's own lookup
    srv = make_server(workers=1, shm_name=squat_name, binary=str(wrapper))
    with open("/proc/%d/status" % srv.master_pid) as f:
        assert re.search(r"^Uid:\s+1\s+1\s", f.read(), re.M)
    m = re.search(r"shared memory \"%s\" belongs to another user \(uid %d\), "
                  r"not to seatcast \(uid 1\): the registry is \"(%s\.u1\."
                  r"[0-9a-f]{16})\"" % (re.escape(squat_name), NOBODY,
                                        re.escape(squat_name)), srv.log())
    assert m, srv.log_tail()
    moved = m.group(1)
    real = os.stat(shm_path(moved))
    assert real.st_uid == 1 and stat.S_IMODE(real.st_mode) == 0o600
    asyncio.run(ping(srv))

    # root, with no registry of its own there, finds the one live server
    p = run_seatcast(["stats", "--json", "--shm-name", squat_name],
                     secret=None, timeout=15)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["owner_pid"] == srv.master_pid and st["shm_name"] == moved
    assert read_head(shm_path(squat_name)) == b"first!\n"
    assert srv.stop() == 0
    assert not os.path.exists(shm_path(moved))
