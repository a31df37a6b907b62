"""conftest.py - fixtures shared by seatcast's integration tests.

    seatcast_bin    path of the binary under test ($SEATCAST_BIN, else
                    build/seatcast)
    make_server     factory: make_server(workers=3, args=[...]) returns a
                    started Seatcast (start=False: not started); at teardown
                    every server made is stopped and its whole process tree
                    killed, its stale segment and socket file removed, and
                    its log tail printed (shown by pytest for failures);
                    teardown fails the test if any log of the server (every
                    start, also after a crash or a kill) holds a sanitizer
                    report, or if stop() had to SIGKILL a master that
                    ignored SIGTERM (a test's own SIGKILL is no fault)

Every test is bounded in time: @pytest.mark.deadline(SECONDS) (default
DEFAULT_DEADLINE) arms SIGALRM, and a test still running then fails; the
finalizers still run.  RLIMIT_NOFILE is raised to its hard limit once, so
that tests may open hundreds of connections (servers inherit it too).

PostgreSQL stays out of these fixtures (see pg.py).
"""

import os
import resource
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg import booking_cluster  # noqa: E402
from server import ROOT, Seatcast, seatcast_bin as _seatcast_bin  # noqa: E402

DEFAULT_DEADLINE = 300


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deadline(seconds): fail the test if it runs longer")


@pytest.fixture(scope="session", autouse=True)
def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else DEFAULT_DEADLINE

    def on_alarm(signo, frame):
        raise DeadlineExceeded("test exceeded its deadline of %s s" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def seatcast_bin():
    return _seatcast_bin()


@pytest.fixture
def make_server(tmp_path, seatcast_bin):
    servers = []

    def make(start=True, **kwargs):
        kwargs.setdefault("binary", seatcast_bin)
        srv = Seatcast(tmp_path, **kwargs)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    problems = []
    for srv in servers:
        try:
            if srv.running():
                srv.stop(timeout=15)
        except Exception as e:  # teardown must reach cleanup()
            problems.append("stop %s: %r" % (srv.shm_name, e))
        try:
            srv.cleanup()
        except Exception as e:
            problems.append("cleanup %s: %r" % (srv.shm_name, e))
        # every log, on every exit path (a master that crashed or was
        # killed mid-test never went through stop())
        try:
            srv.check_all_logs()
        except Exception as e:
            problems.append(str(e))
        if srv.needed_kill:
            problems.append("seatcast master %s of %s did not exit on "
                            "SIGTERM: stop() had to SIGKILL it" % (
                                srv.master_pid, srv.shm_name))
        if srv.log_path:
            print("---- %s (last lines) ----\n%s" % (srv.log_path,
                                                    srv.log_tail(30)))
    if problems:
        pytest.fail("teardown: " + "; ".join(problems))


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL cluster for the module, with the booking schema as the
    template database pg.BOOKING_TEMPLATE.  With SEATCAST_TEST_SOURCE=logical
    the cluster runs with wal_level=logical and the template has
    sql/logical.sql too, and servers get --source logical (server.py): the
    same suites then check the logical source.  notify.sql stays installed
    so that the tests' NOTIFY taps still see the reference stream."""
    if os.environ.get("SEATCAST_TEST_SOURCE") == "logical":
        yield from booking_cluster(ROOT, logical=True, files=(
            "schema.sql", "notify.sql", "logical.sql"))
        return
    yield from booking_cluster(ROOT)
