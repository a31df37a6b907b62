#!/usr/bin/env bash
# demo.sh - `make demo`: a throwaway PostgreSQL cluster under run/, the
# reference schema with a few events, seatcast on 127.0.0.1:3000 with a
# generated development secret, and Debian's nginx on 127.0.0.1:8080
# serving the demo page (etc/demo/index.html) and the client library it
# imports (clients/js/index.js), and proxying /ws to seatcast.
# Ctrl-C stops everything it started.
#
#   DEMO_PORT=3000         seatcast's port
#   DEMO_PGPORT=55439      PostgreSQL's port
#   DEMO_HTTP_PORT=8080    the demo page's port (nginx)
#   DEMO_RUN_DIR=run       where the cluster, secret, logs and pid files go
#   DEMO_NONINTERACTIVE=1  start, print, and stop again leaving nothing
#                          running once everything answered (for tests)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUN=${DEMO_RUN_DIR:-$ROOT/run}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PGPORT=${DEMO_PGPORT:-55439}
PORT=${DEMO_PORT:-3000}
HTTP_PORT=${DEMO_HTTP_PORT:-8080}
SEATCAST=$ROOT/build/seatcast
NGINX=${DEMO_NGINX:-/usr/sbin/nginx}
SC_PID= NGX_PID=

say() { echo "demo: $*"; }
die() { say "$*" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# wait_gone PID SECONDS: poll until PID is gone; SIGKILL it after SECONDS
wait_gone() {
    local pid=$1 n=$(($2 * 10))
    while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do
        sleep 0.1; n=$((n - 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# stop_pidfile FILE COMM [ARG]: TERM the process in FILE if it still runs
# as COMM (and has ARG on its command line): left by a demo that was
# killed.  Then remove the file.
stop_pidfile() {
    local pid cmd=""
    pid=$(cat "$1" 2>/dev/null || true)
    # no file (or a pid that is gone): nothing to read, and no message;
    # the redirection is inside the group so that its error is silenced
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
        cmd=$( { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null || true)
    fi
    if [ -n "$pid" ] && grep -qs "^$2" "/proc/$pid/comm" &&
       [[ $cmd == *"${3:-}"* ]]; then
        say "stopping a $2 (pid $pid) left by an earlier run"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 15
    fi
    rm -f "$1"
}

cleanup() {
    trap - EXIT INT TERM
    echo
    say "stopping"
    # seatcast first, so that its clients get their 1001 close frame
    # through nginx, then nginx (gracefully), then PostgreSQL
    if [ -n "$SC_PID" ]; then
        kill -TERM "$SC_PID" 2>/dev/null || true
        wait_gone "$SC_PID" 15
    fi
    if [ -n "$NGX_PID" ]; then
        kill -QUIT "$NGX_PID" 2>/dev/null || true
        wait_gone "$NGX_PID" 10
    fi
    as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w stop >/dev/null 2>&1 || true
    rm -f "$RUN/nginx/nginx.pid" "$RUN/seatcast.pid"
    say "stopped"
}

[ -n "$PGBIN" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
[ -x "$SEATCAST" ] || die "$SEATCAST not built (run make)"
[ -x "$NGINX" ] || die "$NGINX not found (apt-get install nginx-light)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"

mkdir -p "$RUN/nginx/tmp"
if [ "$(id -u)" = 0 ]; then chown postgres "$RUN"; fi
# whatever an earlier demo that was killed left running: stop it first
stop_pidfile "$RUN/nginx/nginx.pid" nginx "$RUN/nginx/"
stop_pidfile "$RUN/seatcast.pid" sc-master
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w stop >/dev/null 2>&1 || true
if [ ! -f "$RUN/pg/PG_VERSION" ]; then
    rm -rf "$RUN/pg"
    as_pg "$PGBIN/initdb" -D "$RUN/pg" -A trust -U postgres >/dev/null
fi
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -l "$RUN/pg.log" -w \
    -o "-p $PGPORT -k $RUN -c listen_addresses=127.0.0.1" start >/dev/null
PSQL="psql -X -q -h 127.0.0.1 -p $PGPORT -U postgres"
if [ "$($PSQL -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='seatcast'")" != 1 ]; then
    $PSQL -d postgres -c "CREATE DATABASE seatcast"
fi
$PSQL -d seatcast -v ON_ERROR_STOP=1 -f sql/schema.sql -f sql/notify.sql \
    -f etc/demo/events.sql >/dev/null 2>&1

if [ ! -s "$RUN/jwt.secret" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/jwt.secret"
    chmod 600 "$RUN/jwt.secret"
fi
# seatcast and nginx run in sessions of their own: Ctrl-C reaches only
# this script, which stops them in order (a demo killed outright leaves
# them to the pid files, which the next run reads)
setsid "$SEATCAST" -l "127.0.0.1:$PORT" --workers 2 \
    -d "host=127.0.0.1 port=$PGPORT user=postgres dbname=seatcast" \
    --jwt-secret-file "$RUN/jwt.secret" --shm-name "/seatcast-demo-$PORT" \
    --trusted-proxy 127.0.0.1 --pid-file "$RUN/seatcast.pid" \
    2> "$RUN/seatcast.log" &
SC_PID=$!
for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then break; fi
    kill -0 "$SC_PID" 2>/dev/null ||
        { say "seatcast failed to start:"; tail -5 "$RUN/seatcast.log"; exit 1; }
    sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null ||
    { say "seatcast is not healthy:"; tail -5 "$RUN/seatcast.log"; exit 1; }

# the page's nginx: etc/demo/nginx-demo.conf with this run's values
user_line="# user: not root, nginx runs as $(id -un)"
if [ "$(id -u)" = 0 ]; then
    # workers run as the owner of the checkout, who can read the page
    user_line="user $(stat -c '%U %G' "$ROOT/etc/demo/index.html");"
fi
conf=$(cat etc/demo/nginx-demo.conf)
conf=${conf//@USER@/$user_line}
conf=${conf//@RUN@/$RUN}
conf=${conf//@ROOT@/$ROOT}
conf=${conf//@HTTP_PORT@/$HTTP_PORT}
conf=${conf//@PORT@/$PORT}
printf '%s\n' "$conf" > "$RUN/nginx/nginx.conf"
"$NGINX" -q -t -p "$RUN/nginx/" -c "$RUN/nginx/nginx.conf" 2>"$RUN/nginx-error.log" ||
    { say "nginx configuration rejected:"; cat "$RUN/nginx-error.log"; exit 1; }
setsid "$NGINX" -p "$RUN/nginx/" -c "$RUN/nginx/nginx.conf" 2>>"$RUN/nginx-error.log" &
NGX_PID=$!
for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1; then break; fi
    kill -0 "$NGX_PID" 2>/dev/null ||
        { say "nginx failed to start:"; tail -5 "$RUN/nginx-error.log"; exit 1; }
    sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$HTTP_PORT/" ||
    { say "the demo page is not served:"; tail -5 "$RUN/nginx-error.log"; exit 1; }
curl -fs -o /dev/null "http://127.0.0.1:$HTTP_PORT/seatcast-client/index.js" ||
    { say "the client library (clients/js) is not served:"; tail -5 "$RUN/nginx-error.log"; exit 1; }

TOKEN=$("$SEATCAST" token --sub demo-user --ttl 86400 --jwt-secret-file "$RUN/jwt.secret")
WSCAT=$ROOT/tests/integration/node/node_modules/.bin/wscat
[ -x "$WSCAT" ] || WSCAT="npx wscat"
cat <<MSG

seatcast demo is running (logs: ${RUN#"$ROOT"/}/seatcast.log, ${RUN#"$ROOT"/}/nginx-access.log)

  demo page    http://127.0.0.1:$HTTP_PORT/#token=$TOKEN
  server       ws://127.0.0.1:$PORT/ws
  health       curl http://127.0.0.1:$PORT/healthz
  token        $TOKEN

  watch event 1:
    $WSCAT -c "ws://127.0.0.1:$PORT/ws/events/1?token=$TOKEN"

  book a seat (in another terminal):
    $PSQL -d seatcast -c "INSERT INTO bookings (event_id, user_id) VALUES (1, 42)"

  cancel it again:
    $PSQL -d seatcast -c "UPDATE bookings SET status = 'cancelled' WHERE id = (SELECT max(id) FROM bookings WHERE status = 'confirmed')"

The page's token is in the URL fragment (#token=...), which the browser
never sends to a server.  Press Ctrl-C to stop.
MSG
if [ -n "${DEMO_NONINTERACTIVE:-}" ]; then
    exit 0
fi
# until Ctrl-C, or until seatcast or nginx ends on its own
wait -n "$SC_PID" "$NGX_PID" || true
say "seatcast or nginx exited on its own; see ${RUN#"$ROOT"/}/seatcast.log and nginx-error.log"
exit 1
