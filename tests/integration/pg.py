"""pg.py - a throwaway PostgreSQL 15 cluster for seatcast's tests.

Standard library only; run with Debian's /usr/bin/python3.

    with PgCluster() as pg:                 # initdb + start + createdb
        pg.psql_file("sql/schema.sql")
        print(pg.psql("SELECT count(*) FROM events"))
        conninfo = pg.conninfo()            # for seatcast --database
        pg.restart()                        # same port, same data
        pg.kill()                           # crash: SIGKILL, then start()

The cluster lives in a fresh directory owned by the postgres user (the
server refuses to run as root, so initdb, pg_ctl and postgres run through
"runuser -u postgres --").  It listens on 127.0.0.1 at a free port picked
by binding port 0, and on a Unix socket inside its directory; trust
authentication, fsync off.  Readiness is polled with pg_isready against a
deadline.  stop() asks pg_ctl for a fast shutdown and falls back to
SIGKILL of the postmaster and its children; an atexit hook stops a cluster
that a crashed test left running.

psql runs as the calling user (root is fine for a client) with
-X -A -t -q -v ON_ERROR_STOP=1, as database user postgres, over TCP.
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

__all__ = ["PgCluster", "PgError", "find_bindir", "LOGICAL_SETTINGS"]

PG_USER = "postgres"
DEFAULT_DB = "seatcast"


class PgError(RuntimeError):
    """A PostgreSQL command failed; .stderr holds its diagnostics."""

    def __init__(self, msg, stdout="", stderr=""):
        super().__init__(msg + ("\n" + stderr.strip() if stderr else ""))
        self.stdout = stdout
        self.stderr = stderr


def find_bindir(version=15):
    """The directory of initdb/pg_ctl/postgres for a PostgreSQL version."""
    d = "/usr/lib/postgresql/%d/bin" % version
    if os.path.isfile(os.path.join(d, "pg_ctl")):
        return d
    raise PgError("PostgreSQL %d server binaries not found in %s "
                  "(apt-get install postgresql-%d)" % (version, d, version))


def _free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _clean_env():
    """The environment without PG* variables that would redirect clients."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _children(pid):
    """Pids whose parent is pid (from /proc)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # the command may contain spaces and parentheses: split after ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(name))
    return kids


class PgCluster:
    """A private PostgreSQL cluster, created on first start().

    tmpdir: a parent directory for the cluster; a fresh subdirectory is
    made in it.  When omitted, or when the postgres user cannot reach it
    (pytest's tmp_path lives under a root-only 0700 directory), the
    cluster is made under the system temp directory instead and removed
    by cleanup().
    """

    def __init__(self, tmpdir=None, dbname=DEFAULT_DB, version=15,
                 settings=None, start_timeout=30.0):
        self.bindir = find_bindir(version)
        self.psql_bin = os.path.join(self.bindir, "psql")
        if not os.path.isfile(self.psql_bin):
            self.psql_bin = "/usr/bin/psql"
        self.dbname = dbname
        self.host = "127.0.0.1"
        self.port = None
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.base = self._make_base(tmpdir)
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "postgres.log")
        self._initialized = False
        self._running = False
        self._proc = None          # runuser -> postmaster, ours to reap
        atexit.register(self._atexit)

    # ----- setup -------------------------------------------------------

    @staticmethod
    def _reachable_by_postgres(path):
        pw = pwd.getpwnam(PG_USER)
        p = os.path.abspath(path)
        while True:
            st = os.stat(p)
            if st.st_uid == pw.pw_uid:
                need = 0o100
            elif st.st_gid == pw.pw_gid:
                need = 0o010
            else:
                need = 0o001
            if not st.st_mode & need:
                return False
            parent = os.path.dirname(p)
            if parent == p:
                return True
            p = parent

    def _make_base(self, tmpdir):
        parent = None
        if tmpdir is not None:
            os.makedirs(str(tmpdir), exist_ok=True)
            if self._reachable_by_postgres(str(tmpdir)):
                parent = str(tmpdir)
        base = tempfile.mkdtemp(prefix="seatcast-pg-", dir=parent)
        pw = pwd.getpwnam(PG_USER)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
        return base

    def _as_postgres(self, argv, check=True, timeout=60):
        cmd = ["runuser", "-u", PG_USER, "--"] + argv
        res = subprocess.run(cmd, cwd=self.base, env=_clean_env(),
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise PgError("%s failed (exit %d)" % (argv[0], res.returncode),
                          res.stdout, res.stderr)
        return res

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _initdb(self):
        self._as_postgres([self._bin("initdb"), "-D", self.datadir,
                           "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                           "--locale=C", "--no-sync", "--no-instructions"],
                          timeout=120)
        os.makedirs(self.sockdir, exist_ok=True)
        pw = pwd.getpwnam(PG_USER)
        os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
        self._initialized = True

    def _server_argv(self):
        opts = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": self.sockdir,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        opts.update({k: str(v) for k, v in self.settings.items()})
        argv = [self._bin("postgres"), "-D", self.datadir]
        for k, v in opts.items():
            argv += ["-c", "%s=%s" % (k, v)]
        return argv

    # ----- lifecycle ---------------------------------------------------

    def start(self):
        """initdb (first time), start the server, create the database.

        Keeps the port across restarts so that a conninfo stays valid; a
        first start retries with another port if the picked one is taken.
        """
        if self._running and self.pid() is not None:
            return self
        self._reap()
        if not self._initialized:
            self._initdb()
        attempts = 3 if self.port is None else 1
        for attempt in range(attempts):
            if self.port is None or attempt > 0:
                self.port = _free_port(self.host)
            if self._start_once():
                break
        else:
            raise PgError("postgres did not start", stderr=self.log_tail())
        self._running = True
        self._ensure_db(self.dbname)
        return self

    def _start_once(self):
        """Spawns the postmaster and polls pg_isready until a deadline.

        The postmaster is our (grand)child rather than pg_ctl's daemon, so
        that a start that fails (port taken) is seen at once as an exit.
        """
        with open(self.logfile, "ab") as log:
            self._proc = subprocess.Popen(
                ["runuser", "-u", PG_USER, "--"] + self._server_argv(),
                cwd=self.base, env=_clean_env(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            if self.is_ready():
                return True
            time.sleep(0.05)
        self._force_stop()
        self._reap()
        return False

    def is_ready(self):
        res = subprocess.run([self._bin("pg_isready"), "-q", "-h", self.host,
                              "-p", str(self.port), "-U", PG_USER,
                              "-d", "postgres", "-t", "1"],
                             env=_clean_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        return res.returncode == 0

    def wait_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if self.is_ready():
                return True
            time.sleep(0.05)
        return False

    def pid(self):
        """The postmaster's pid from postmaster.pid, if it is alive."""
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def stop(self, mode="fast", timeout=30):
        """Stop the server: pg_ctl -m MODE, then SIGKILL if that fails."""
        if self.pid() is None:
            self._reap()
            self._running = False
            return
        try:
            res = self._as_postgres([self._bin("pg_ctl"), "-D", self.datadir,
                                     "-m", mode, "-w", "-t", str(timeout),
                                     "stop"], check=False,
                                    timeout=timeout + 10)
            ok = res.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok or self.pid() is not None:
            self._force_stop()
        self._reap()
        self._running = False

    def _reap(self):
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def _force_stop(self):
        pid = self.pid()
        if pid is None:
            # no pid file yet: the postmaster is still in runuser's group
            if self._proc is not None and self._proc.poll() is None:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        victims = [pid] + _children(pid)
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()      # reap, or the postmaster stays a zombie
            if not any(_pid_alive(p) for p in victims):
                break
            time.sleep(0.02)

    def kill(self):
        """Crash the server (SIGKILL postmaster and backends); no cleanup.

        The next start() goes through crash recovery, as after a real
        outage; connections see the server vanish without a goodbye.
        """
        self._force_stop()
        self._reap()
        self._running = False

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _atexit(self):
        try:
            if self.pid() is not None:
                self._force_stop()
        except Exception:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # ----- clients -----------------------------------------------------

    def conninfo(self, db=None):
        """A libpq conninfo string for the cluster over TCP."""
        return "host=%s port=%d dbname=%s user=%s" % (
            self.host, self.port, db or self.dbname, PG_USER)

    def psql_argv(self, db=None, extra=()):
        return [self.psql_bin, "-X", "-A", "-t", "-q",
                "-v", "ON_ERROR_STOP=1", "-h", self.host,
                "-p", str(self.port), "-U", PG_USER,
                "-d", db or self.dbname] + list(extra)

    def run_psql(self, sql=None, db=None, path=None, check=True,
                 timeout=60, extra=()):
        """Runs psql on sql (fed on stdin) or on a file; CompletedProcess."""
        argv = self.psql_argv(db, extra)
        if path is not None:
            argv += ["-f", str(path)]
        res = subprocess.run(argv, input=sql if path is None else None,
                             env=_clean_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise PgError("psql failed (exit %d)" % res.returncode,
                          res.stdout, res.stderr)
        return res

    def psql(self, sql, db=None, check=True, timeout=60):
        """Runs sql (one or more statements); returns psql's stdout."""
        return self.run_psql(sql, db=db, check=check, timeout=timeout).stdout

    def psql_file(self, path, db=None, check=True, timeout=60):
        return self.run_psql(path=path, db=db, check=check,
                             timeout=timeout).stdout

    def query_value(self, sql, db=None):
        """The single value a query returns, as a string."""
        return self.psql(sql, db=db).strip()

    def _ensure_db(self, name, template=None):
        exists = self.psql("SELECT 1 FROM pg_database WHERE datname = '%s'"
                           % name.replace("'", "''"), db="postgres").strip()
        if not exists:
            self.createdb(name, template)

    def createdb(self, name, template=None):
        sql = 'CREATE DATABASE "%s"' % name.replace('"', '""')
        if template:
            sql += ' TEMPLATE "%s"' % template.replace('"', '""')
        self.psql(sql, db="postgres")

    def drop_slots(self, name, timeout=10):
        """Drops the replication slots of database `name` (a slot, even
        unused, keeps DROP DATABASE from working); a slot still read by a
        walsender after `timeout` s has its walsender terminated."""
        lit = "'%s'" % name.replace("'", "''")
        deadline = time.monotonic() + timeout
        rounds = 0
        while True:
            left = self.psql(
                "SELECT pg_drop_replication_slot(slot_name) FROM "
                "pg_replication_slots WHERE database = %s AND NOT active; "
                "SELECT count(*) FROM pg_replication_slots WHERE database = "
                "%s" % (lit, lit), db="postgres").split()
            if not left or left[-1] == "0":
                return
            if time.monotonic() > deadline:
                rounds += 1
                if rounds > 3:
                    raise PgError("replication slots of %s stay in use"
                                  % name)
                self.psql("SELECT pg_terminate_backend(active_pid) FROM "
                          "pg_replication_slots WHERE database = %s AND "
                          "active" % lit, db="postgres")
                deadline = time.monotonic() + timeout
            time.sleep(0.05)

    def dropdb(self, name):
        self.drop_slots(name)
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)'
                  % name.replace('"', '""'), db="postgres")

    def log_tail(self, nbytes=4000):
        try:
            with open(self.logfile, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# The booking schema as a template database: a module-scoped fixture
# (conftest.py `cluster`) makes it once, and each test clones a fresh
# database from it with createdb(name, template=BOOKING_TEMPLATE).
BOOKING_TEMPLATE = "booking_tpl"


# Server settings for a cluster that seatcast --source logical can follow:
# pass as PgCluster(settings=LOGICAL_SETTINGS) or booking_cluster(logical=True).
LOGICAL_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": 16,
    "max_wal_senders": 16,
    "wal_sender_timeout": "10s",
}


def booking_cluster(root, logical=False, files=("schema.sql", "notify.sql")):
    """Generator for a fixture: a started PgCluster holding
    BOOKING_TEMPLATE (by default sql/schema.sql then sql/notify.sql);
    cleaned up after the last test that used it.  logical=True starts it
    with LOGICAL_SETTINGS (wal_level=logical, room for slots)."""
    pg = PgCluster(settings=LOGICAL_SETTINGS if logical else None)
    try:
        pg.start()
        pg.createdb(BOOKING_TEMPLATE)
        for name in files:
            pg.psql_file(os.path.join(root, "sql", name), db=BOOKING_TEMPLATE)
        yield pg
    finally:
        pg.cleanup()
