#!/usr/bin/env bash
# demo.sh - `make demo`: a throwaway PostgreSQL cluster under run/, the
# reference schema with a few events, and seatcast on 127.0.0.1:3000 with a
# generated development secret.  Ctrl-C stops everything it started.
#
#   DEMO_NONINTERACTIVE=1  start, print, and exit leaving nothing running
#                          once the server answered (used by the tests)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUN=$ROOT/run
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PGPORT=${DEMO_PGPORT:-55439}
PORT=${DEMO_PORT:-3000}
SEATCAST=$ROOT/build/seatcast

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    trap - EXIT INT TERM
    echo
    echo "demo: stopping"
    [ -n "${SC_PID:-}" ] && kill -TERM "$SC_PID" 2>/dev/null && wait "$SC_PID" 2>/dev/null || true
    as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w stop >/dev/null 2>&1 || true
    echo "demo: stopped"
}

mkdir -p "$RUN"
if [ "$(id -u)" = 0 ]; then chown postgres "$RUN"; fi
# a cluster left by an earlier demo that was killed: stop it first
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w stop >/dev/null 2>&1 || true
if [ ! -f "$RUN/pg/PG_VERSION" ]; then
    rm -rf "$RUN/pg"
    as_pg "$PGBIN/initdb" -D "$RUN/pg" -A trust -U postgres >/dev/null
fi
trap cleanup EXIT INT TERM
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -l "$RUN/pg.log" -w \
    -o "-p $PGPORT -k $RUN -c listen_addresses=127.0.0.1" start >/dev/null
PSQL="psql -X -q -h 127.0.0.1 -p $PGPORT -U postgres"
$PSQL -d postgres -tc "SELECT 1 FROM pg_database WHERE datname='seatcast'" |
    grep -q 1 || $PSQL -d postgres -c "CREATE DATABASE seatcast"
$PSQL -d seatcast -v ON_ERROR_STOP=1 -f sql/schema.sql -f sql/notify.sql \
    -f etc/demo/events.sql >/dev/null 2>&1

if [ ! -s "$RUN/jwt.secret" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/jwt.secret"
    chmod 600 "$RUN/jwt.secret"
fi
"$SEATCAST" -l "127.0.0.1:$PORT" --workers 2 \
    -d "host=127.0.0.1 port=$PGPORT user=postgres dbname=seatcast" \
    --jwt-secret-file "$RUN/jwt.secret" --shm-name "/seatcast-demo-$PORT" \
    2> "$RUN/seatcast.log" &
SC_PID=$!
for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SC_PID" 2>/dev/null; then
        echo "demo: seatcast failed to start:"; tail -5 "$RUN/seatcast.log"; exit 1
    fi
    sleep 0.1
done
TOKEN=$("$SEATCAST" token --sub demo-user --ttl 86400 --jwt-secret-file "$RUN/jwt.secret")
WSCAT=$ROOT/tests/integration/node/node_modules/.bin/wscat
[ -x "$WSCAT" ] || WSCAT="npx wscat"
cat <<MSG

seatcast demo is running (log: run/seatcast.log)

  server       ws://127.0.0.1:$PORT/ws
  health       curl http://127.0.0.1:$PORT/healthz
  token        $TOKEN

  watch event 1:
    $WSCAT -c "ws://127.0.0.1:$PORT/ws/events/1?token=$TOKEN"

  book a seat (in another terminal):
    $PSQL -d seatcast -c "INSERT INTO bookings (event_id, user_id) VALUES (1, 42)"

  cancel it again:
    $PSQL -d seatcast -c "UPDATE bookings SET status = 'cancelled' WHERE id = (SELECT max(id) FROM bookings)"

Press Ctrl-C to stop.
MSG
if [ -n "${DEMO_NONINTERACTIVE:-}" ]; then
    exit 0
fi
wait "$SC_PID"
