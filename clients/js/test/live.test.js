// seatcast-client against a real seatcast and a real PostgreSQL (see
// harness.js for the environment; tests/integration/test_client_js.py
// runs this file from `make check`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SeatcastClient, bookingsOf } from '../index.js';
import { live, Server, Recorder, psql, newEvent, book, waitFor } from './harness.js';

const skip = live ? false : 'SEATCAST_BIN and SEATCAST_TEST_DB are not set';
const servers = [];
const clients = [];

async function server(opts) {
  const s = new Server(opts);
  servers.push(s);
  return s.start();
}

function client(opts) {
  const c = new SeatcastClient(Object.assign({ WebSocket }, opts));
  clients.push(c);
  return c;
}

after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.stop();
});

const isSeats = (type, eventId, n) => e => e.kind === 'seats' && e.message &&
  e.message.type === type && e.seats.eventId === eventId &&
  (n === undefined || e.seats.availableSeats === n);

test('a booking arrives; stats and ping answer; the token stays out of URL and log',
     { skip }, async () => {
  const srv = await server({ workers: 2 });
  const ev = newEvent(50);
  const token = srv.token({ sub: 'booker' });
  // ws, recording what the client asks it to open
  const opened = [];
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols, opts) {
      super(url, protocols, opts);
      opened.push({ url, protocols, ws: this });
    }
  }
  const c = client({ url: srv.url, token, WebSocket: RecordingWebSocket });
  const rec = new Recorder(c);
  rec.follow(ev);
  await rec.next(isSeats('seat_update', ev, 50), 10000, 'the snapshot');
  assert.deepEqual({ ...c.seats(ev), updatedAt: undefined },
                   { eventId: ev, availableSeats: 50, seatCapacity: 50, updatedAt: undefined });
  book(ev, 3);
  await rec.next(isSeats('booking_created', ev, 47), 10000, 'booking_created');
  await rec.next(isSeats('seat_update', ev, 47), 10000, 'the seat_update after it');
  assert.equal(c.seats(ev).seatCapacity, 50);
  const st = await c.stats();
  assert.ok(st.totalClients >= 1 && st.eventSubscriptions >= 1, JSON.stringify(st));
  const rtt = await c.ping();
  assert.ok(rtt >= 0 && rtt < 5000, String(rtt));
  assert.equal(opened.length, 1);
  assert.equal(opened[0].url, srv.url);
  assert.deepEqual(opened[0].protocols, ['seatcast.v1', 'bearer.' + token]);
  assert.equal(opened[0].ws.protocol, 'seatcast.v1', 'the server did not take the subprotocol');
  assert.ok(!srv.log().includes(token.split('.')[2]), 'the token reached the log');
  assert.match(srv.log(), /connected: user booker, from 127\.0\.0\.1/);
  assert.deepEqual(rec.events.filter(e => e.kind !== 'seats').map(e => e.kind), ['open']);
});

test('kill -9 of the worker holding the connection: back and subscribed within 2 s',
     { skip }, async () => {
  const srv = await server({ workers: 2 });
  const ev1 = newEvent(40);
  const ev2 = newEvent(60);
  const c = client({ url: srv.url, token: srv.token() });
  const rec = new Recorder(c);
  rec.follow(ev1);
  rec.follow(ev2);
  await rec.next(isSeats('seat_update', ev1, 40), 10000, 'snapshot 1');
  await rec.next(isSeats('seat_update', ev2, 60), 10000, 'snapshot 2');
  const holders = await waitFor(() => {
    const w = srv.workersWithClients();
    return w.length === 1 ? w : null;
  }, 5000, 'one worker with the client');
  const mark = rec.events.length;
  const t0 = Date.now();
  process.kill(holders[0].pid, 'SIGKILL');
  const closed = await rec.next(e => e.kind === 'close', 5000, 'the drop', mark);
  assert.equal(closed.event.arg.code, 1006);
  const open = await rec.next(e => e.kind === 'open', 5000, 'the reconnect', mark);
  assert.equal(open.event.arg.reconnected, true);
  // subscribed again: the snapshots of both events after the new open
  const s1 = await rec.next(isSeats('seat_update', ev1, 40), 5000, 'resubscribed 1', open.index);
  const s2 = await rec.next(isSeats('seat_update', ev2, 60), 5000, 'resubscribed 2', open.index);
  const back = Math.max(s1.event.t, s2.event.t) - t0;
  console.log('# back and subscribed ' + back + ' ms after kill -9 (' + rec.kinds().slice(mark).join(' ') + ')');
  assert.ok(back <= 2000, 'back after ' + back + ' ms');
  book(ev1, 2);
  await rec.next(isSeats('booking_created', ev1, 38), 10000, 'the next booking', open.index);
  await rec.next(isSeats('seat_update', ev1, 38), 10000, 'its seat_update', open.index);
});

test('SIGTERM (1001), bookings while down, restart: the snapshot catches up',
     { skip }, async () => {
  const srv = await server({ workers: 1 });
  const ev = newEvent(30);
  // the restarted server accepts the reconnect once it has loaded the
  // database's events: the resubscription finds its event (an earlier
  // server answered not_found in that window, and the client dropped it)
  const c = client({ url: srv.url, token: srv.token(),
                     reconnect: { minDelay: 100, maxDelay: 800, shutdownDelay: 500 } });
  const rec = new Recorder(c);
  rec.follow(ev);
  await rec.next(isSeats('seat_update', ev, 30), 10000, 'the snapshot');
  const mark = rec.events.length;
  await srv.stop('SIGTERM');
  const closed = await rec.next(e => e.kind === 'close', 5000, 'the 1001', mark);
  assert.deepEqual(closed.event.arg, { code: 1001, reason: 'Server shutting down' });
  const first = await rec.next(e => e.kind === 'reconnecting', 5000, 'reconnecting', mark);
  assert.equal(first.event.arg.code, 1001);
  assert.equal(first.event.arg.cap, 500);
  // attempts fail while the server is down (connection refused), backing off
  await rec.next(e => e.kind === 'reconnecting' && e.arg.attempt >= 3, 10000,
                 'failed attempts while the server is down', mark);
  book(ev, 4);
  await srv.start();
  const open = await rec.next(e => e.kind === 'open', 10000, 'the reconnect', mark);
  await rec.next(isSeats('seat_update', ev, 26), 5000, 'the snapshot with the booking made while down',
                 open.index);
  assert.equal(c.seats(ev).availableSeats, 26);
  book(ev, 1);
  await rec.next(isSeats('booking_created', ev, 25), 10000, 'the next booking', open.index);
  const caps = rec.events.slice(mark).filter(e => e.kind === 'reconnecting').map(e => e.arg.cap);
  console.log('# reconnect ceilings while down: ' + caps.join(' '));
  assert.ok(caps.length >= 3, caps.join(' '));
  // after the 1001 window: minDelay doubling per failed attempt, up to maxDelay
  assert.deepEqual(caps, caps.map((_, i) => i === 0 ? 500 : Math.min(800, 100 * 2 ** i)));
});

test('an expired token: the token function gives a fresh one, the client goes on',
     { skip }, async () => {
  const srv = await server({ workers: 1, args: ['--jwt-leeway', '0'] });
  const ev = newEvent(20);
  const issued = [];
  const c = client({
    url: srv.url,
    token: async () => {
      // the first token lives 2 s, the next ones an hour
      const t = srv.token({ sub: 'refresher', ttl: issued.length === 0 ? 2 : 3600 });
      issued.push(t);
      return t;
    },
  });
  const rec = new Recorder(c);
  rec.follow(ev);
  await rec.next(isSeats('seat_update', ev, 20), 10000, 'the snapshot');
  const closed = await rec.next(e => e.kind === 'close', 10000, 'Token expired');
  assert.deepEqual(closed.event.arg, { code: 1008, reason: 'Token expired' });
  const open = await rec.next(e => e.kind === 'open', 10000, 'the reconnect', closed.index);
  assert.equal(issued.length, 2, 'the token function was not asked again');
  await rec.next(isSeats('seat_update', ev, 20), 5000, 'resubscribed', open.index);
  book(ev);
  await rec.next(isSeats('booking_created', ev, 19), 10000, 'a booking on the new token', open.index);
  assert.equal(rec.events.filter(e => e.kind === 'error').length, 0);
});

test('a revoked token ends in one error, without a retry loop', { skip }, async () => {
  const srv = await server({ workers: 1 });
  const ev = newEvent(10);
  const jti = 'revoked-' + Date.now();
  const token = srv.token({ sub: 'revokee', jti });
  let asked = 0;
  const c = client({ url: srv.url, token: () => { asked++; return token; },
                     reconnect: { minDelay: 50, maxDelay: 200 } });
  const rec = new Recorder(c);
  rec.follow(ev);
  await rec.next(isSeats('seat_update', ev, 10), 10000, 'the snapshot');
  psql("INSERT INTO seatcast_revoked_tokens (jti) VALUES ('" + jti + "')");
  const closed = await rec.next(e => e.kind === 'close', 10000, 'Token revoked');
  assert.deepEqual(closed.event.arg, { code: 1008, reason: 'Token revoked' });
  const err = await rec.next(e => e.kind === 'error', 10000, 'the error');
  assert.equal(err.event.arg.fatal, true);
  assert.equal(asked, 3, 'asked the token function ' + asked + ' times');
  // no attempt after the error: within several ceilings nothing more happens
  const n = rec.events.length;
  const refusedBefore = (srv.log().match(/token revoked|Token revoked|revoked/g) || []).length;
  await new Promise(r => setTimeout(r, 1000));
  assert.equal(rec.events.length, n, rec.kinds().slice(n).join(' '));
  assert.equal((srv.log().match(/token revoked|Token revoked|revoked/g) || []).length, refusedBefore);
  assert.equal(c.connected, false);
  await assert.rejects(c.stats(), /closed|refused/);
});

test('a surge: bookings that waited arrive merged, bookingsOf counts them all',
     { skip }, async () => {
  // one worker, stopped while five bookings commit: when it goes on, they
  // have waited longer than --max-lag and come as one merged message
  const srv = await server({ workers: 1, args: ['--max-lag', '50'] });
  const ev = newEvent(50);
  const c = client({ url: srv.url, token: srv.token({ sub: 'surge' }) });
  const rec = new Recorder(c);
  rec.follow(ev);
  await rec.next(isSeats('seat_update', ev, 50), 10000, 'the snapshot');
  const worker = srv.stats().workers[0].pid;
  const head = srv.stats().totals.ring_head;
  let counted = 0;
  process.kill(worker, 'SIGSTOP');
  try {
    for (let i = 0; i < 5; i++) book(ev, 2);
    await waitFor(() => srv.stats().totals.ring_head === head + 5, 10000,
                  'the five bookings published');
    const seen = Date.now();
    await waitFor(() => Date.now() - seen > 100, 1000, 'them to wait past --max-lag');
  } finally {
    process.kill(worker, 'SIGCONT');
  }
  const from = rec.events.length;
  const { index } = await rec.next(isSeats('booking_created', ev, 40), 10000,
                                   'the merged booking_created', from);
  await rec.next(isSeats('seat_update', ev, 40), 10000, 'the seat_update after it', index);
  const merged = rec.events.slice(from).filter(e => e.kind === 'seats' && e.message);
  for (const e of merged) counted += bookingsOf(e.message);
  assert.equal(counted, 5, rec.kinds().join(' '));
  assert.equal(merged[0].message.bookings, 5);
  assert.equal(c.seats(ev).availableSeats, 40);
});
