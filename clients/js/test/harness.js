// harness.js - a real seatcast and a real PostgreSQL for live.test.js.
//
// Environment (tests/integration/test_client_js.py sets it):
//   SEATCAST_BIN        the server binary
//   SEATCAST_TEST_DB    libpq conninfo of a database with sql/schema.sql and
//                       sql/notify.sql applied
//   SEATCAST_TEST_PSQL  psql (default: psql on PATH)
//   SEATCAST_TEST_DIR   where server logs and the list of started masters
//                       go (default: a new directory under the system's tmp)
// Without SEATCAST_BIN and SEATCAST_TEST_DB the live tests are skipped.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const env = {
  bin: process.env.SEATCAST_BIN,
  db: process.env.SEATCAST_TEST_DB,
  psql: process.env.SEATCAST_TEST_PSQL || 'psql',
  dir: process.env.SEATCAST_TEST_DIR ||
       fs.mkdtempSync(path.join(os.tmpdir(), 'seatcast-client-')),
};
export const live = Boolean(env.bin && env.db);

const SECRET = 'client-test-secret-0123456789abcdef0123456789abcdef';

function cleanEnv(extra = {}) {
  const out = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('PG') && !k.startsWith('SEATCAST_')) out[k] = v;
  }
  return Object.assign(out, { LC_ALL: 'C' }, extra);
}

export async function waitFor(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
    await new Promise(r => setTimeout(r, 20));
  }
}

export function psql(sql) {
  return execFileSync(env.psql, ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
                                 '-d', env.db, '-c', sql],
                      { env: cleanEnv(), encoding: 'utf8', timeout: 30000 }).trim();
}

export function newEvent(capacity, name = 'client test') {
  return Number(psql("INSERT INTO events (name, starts_at, seat_capacity) VALUES ('" +
                     name + "', now() + interval '1 day', " + capacity + ') RETURNING id'));
}

export function book(eventId, seats = 1) {
  return Number(psql('INSERT INTO bookings (event_id, user_id, seats) VALUES (' +
                     eventId + ', 7, ' + seats + ') RETURNING id'));
}

export function available(eventId) {
  return Number(psql('SELECT available_seats FROM events WHERE id = ' + eventId));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const started = new Set();

export class Server {
  constructor({ workers = 2, args = [] } = {}) {
    this.workers = workers;
    this.args = args;
    this.proc = null;
    this.port = null;
    this.logs = [];
  }

  get url() {
    return 'ws://127.0.0.1:' + this.port + '/ws';
  }

  get shmName() {
    return '/sc-jsclient-' + this.port;
  }

  async start() {
    if (this.port === null) this.port = await freePort();
    const log = path.join(env.dir, 'seatcast-' + this.port + '-' + (this.logs.length + 1) + '.log');
    this.logs.push(log);
    const fd = fs.openSync(log, 'a');
    this.proc = spawn(env.bin, ['-l', '127.0.0.1:' + this.port, '--workers', String(this.workers),
                                '--shm-name', this.shmName, '-d', env.db, ...this.args],
                      { env: cleanEnv({ SEATCAST_JWT_SECRET: SECRET }), detached: true,
                        stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const proc = this.proc;
    proc.exited = new Promise(resolve => proc.once('exit', (code, sig) => resolve(code ?? sig)));
    started.add(proc);
    fs.appendFileSync(path.join(env.dir, 'masters'), proc.pid + '\n');
    await waitFor(async () => {
      if (proc.exitCode !== null) {
        throw new Error('seatcast exited during start: ' + this.log());
      }
      try {
        const r = await fetch('http://127.0.0.1:' + this.port + '/healthz');
        if (r.status !== 200) return false;
      } catch {
        return false;
      }
      const st = this.stats();
      return st && st.owner_pid === proc.pid && st.workers.length === this.workers &&
        st.workers.every(w => w.state === 'running' && w.pid > 0);
    }, 20000, 'seatcast to start and reach PostgreSQL');
    return this;
  }

  stats() {
    try {
      return JSON.parse(execFileSync(env.bin, ['stats', '--json', '--shm-name', this.shmName],
                                     { env: cleanEnv(), encoding: 'utf8', timeout: 10000,
                                       stdio: ['ignore', 'pipe', 'pipe'] }));
    } catch {
      return null;
    }
  }

  // the workers with at least one authenticated client
  workersWithClients() {
    return this.stats().workers.filter(w => w.clients > 0);
  }

  token({ sub = 'client-user', ttl = 3600, jti } = {}) {
    const args = ['token', '--sub', sub, '--ttl', String(ttl)];
    if (jti) args.push('--jti', jti);
    return execFileSync(env.bin, args, { env: cleanEnv({ SEATCAST_JWT_SECRET: SECRET }),
                                         encoding: 'utf8', timeout: 10000 }).trim();
  }

  async stop(signal = 'SIGTERM', ms = 15000) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc && proc.exited;
    process.kill(proc.pid, signal);
    const timer = new Promise(resolve => setTimeout(resolve, ms, 'timeout'));
    const how = await Promise.race([proc.exited, timer]);
    if (how === 'timeout') this.kill();
    return how;
  }

  kill() {
    if (!this.proc) return;
    try {
      process.kill(-this.proc.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }

  log() {
    return this.logs.map(f => {
      try {
        return fs.readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    }).join('');
  }
}

// everything a client did, in order, with a way to wait for what comes next
export class Recorder {
  constructor(client) {
    this.client = client;
    this.events = [];
    for (const kind of ['open', 'close', 'reconnecting', 'error']) {
      client.on(kind, arg => this.push({ kind, arg }));
    }
  }

  push(e) {
    e.t = Date.now();
    this.events.push(e);
  }

  follow(eventId) {
    return this.client.subscribe(eventId, (seats, message) =>
      this.push({ kind: 'seats', seats, message }));
  }

  // the first event from index `from` on that matches
  async next(pred, ms, what, from = 0) {
    const i = await waitFor(() => {
      const k = this.events.findIndex((e, j) => j >= from && pred(e));
      return k >= 0 ? k + 1 : 0;
    }, ms, what);
    return { index: i - 1, event: this.events[i - 1] };
  }

  kinds() {
    return this.events.map(e => e.kind === 'seats'
      ? (e.message ? e.message.type : 'state') + ':' + e.seats.eventId + '=' + e.seats.availableSeats
      : e.kind + (e.arg && e.arg.code ? ':' + e.arg.code : ''));
  }
}

process.on('exit', () => {
  for (const proc of started) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});
