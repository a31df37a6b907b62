// Unit tests of seatcast-client without a server: a fake WebSocket plays
// the server's part.  node --test test/
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { SeatcastClient, nextDelay, bookingsOf, normalizeEventId } from '../index.js';

// --- a scripted WebSocket ------------------------------------------------

class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.all.push(this);
  }
  send(text) {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  // the server's side
  accept(clientId = 'ws_1_x') {
    this.readyState = 1;
    this.push({ type: 'connection_established', clientId, timestamp: ts() });
  }
  push(obj) {
    if (this.onmessage) this.onmessage({ data: JSON.stringify(obj) });
  }
  drop(code = 1006, reason = '') {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code, reason });
  }
}

let tick = 0;
function ts() {
  return new Date(Date.UTC(2026, 0, 1) + tick++).toISOString();
}

function fresh() {
  FakeSocket.all = [];
}

function last() {
  return FakeSocket.all[FakeSocket.all.length - 1];
}

async function until(cond, what, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise(r => setTimeout(r, 2));
  }
}

// every client a test made is closed after it, passed or failed, so that
// a failure never leaves a reconnect loop keeping the runner alive
const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.close();
});

function client(opts = {}) {
  return track(new SeatcastClient(Object.assign({
    url: 'ws://test/ws', token: 'tok', WebSocket: FakeSocket,
    reconnect: { minDelay: 1, maxDelay: 8 },
  }, opts)));
}

function track(c) {
  made.push(c);
  return c;
}

const seat = (eventId, availableSeats, seatCapacity = 100) =>
  ({ type: 'seat_update', eventId, availableSeats, seatCapacity, timestamp: ts() });

// --- backoff -------------------------------------------------------------

test('nextDelay: the ceiling doubles from minDelay up to maxDelay', () => {
  const caps = [0, 1, 2, 3, 4, 5, 6, 60].map(a =>
    nextDelay(a, { minDelay: 250, maxDelay: 10000 }, () => 0).cap);
  assert.deepEqual(caps, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
});

test('nextDelay: full jitter, uniform between 0 and the ceiling', () => {
  const o = { minDelay: 100, maxDelay: 1000 };
  assert.equal(nextDelay(3, o, () => 0).delay, 0);
  assert.equal(nextDelay(3, o, () => 0.999999).delay, 799);
  assert.equal(nextDelay(3, o, () => 0.5).delay, 400);
  // with the real generator: spread over the whole range, mean near cap/2
  const n = 20000;
  const ds = Array.from({ length: n }, () => nextDelay(4, o).delay);
  const mean = ds.reduce((a, b) => a + b, 0) / n;
  assert.ok(Math.min(...ds) >= 0 && Math.max(...ds) < 1000);
  assert.ok(Math.min(...ds) < 20 && Math.max(...ds) > 980, 'not spread over [0, cap)');
  assert.ok(Math.abs(mean - 500) < 25, 'mean ' + mean);
  // tenths of the range are about equally full (uniform, not clustered)
  const bins = new Array(10).fill(0);
  for (const d of ds) bins[Math.floor(d / 100)]++;
  for (const b of bins) assert.ok(b > n / 10 * 0.85 && b < n / 10 * 1.15, 'bins ' + bins);
});

test('reconnects after drops with growing ceilings and jittered delays', async () => {
  fresh();
  const c = client();
  const seen = [];
  c.on('reconnecting', i => seen.push(i));
  await until(() => FakeSocket.all.length === 1, 'first socket');
  for (let k = 1; k <= 5; k++) {
    last().drop(1006);
    await until(() => FakeSocket.all.length === k + 1, 'socket ' + (k + 1));
  }
  assert.deepEqual(seen.map(i => i.attempt), [1, 2, 3, 4, 5]);
  assert.deepEqual(seen.map(i => i.cap), [1, 2, 4, 8, 8]);
  for (const i of seen) assert.ok(i.delay >= 0 && i.delay < i.cap, JSON.stringify(i));
  // a connection that gets established resets the schedule
  last().accept();
  last().drop(1006);
  assert.equal(seen.at(-1).cap, 1);
  assert.equal(seen.at(-1).attempt, 1);
  c.close();
});

test('a 1001 spreads the first reconnect over shutdownDelay', async () => {
  fresh();
  const c = client({ reconnect: { minDelay: 1, maxDelay: 50, shutdownDelay: 40 } });
  const seen = [];
  c.on('reconnecting', i => seen.push(i));
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().drop(1001, 'Server shutting down');
  assert.equal(seen[0].cap, 40);
  assert.equal(seen[0].code, 1001);
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  last().drop(1006);
  assert.equal(seen[1].cap, 2);
  c.close();
});

// --- token ---------------------------------------------------------------

test('the token travels as a subprotocol, never in the URL', async () => {
  fresh();
  const c = client({ token: 'aaa.bbb.ccc' });
  await until(() => FakeSocket.all.length === 1, 'socket');
  assert.deepEqual(last().protocols, ['seatcast.v1', 'bearer.aaa.bbb.ccc']);
  assert.equal(last().url, 'ws://test/ws');
  c.close();
  assert.throws(() => client({ url: 'ws://test/ws?token=x' }), /token/);
});

test('the token function is asked before every connection', async () => {
  fresh();
  let n = 0;
  const c = client({ token: async () => 'tok' + (++n) });
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().drop(1008, 'Token expired');
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  assert.deepEqual(FakeSocket.all.map(s => s.protocols[1]), ['bearer.tok1', 'bearer.tok2']);
  c.close();
});

test('repeated auth refusals end in one fatal error, no loop', async () => {
  fresh();
  let asked = 0;
  const c = client({ token: () => { asked++; return 'revoked'; } });
  const errors = [];
  c.on('error', e => errors.push(e));
  for (let k = 1; k <= 3; k++) {
    await until(() => FakeSocket.all.length === k, 'socket ' + k);
    FakeSocket.all[k - 1].readyState = 1;   // upgraded, then refused
    FakeSocket.all[k - 1].drop(1008, 'Token revoked');
  }
  assert.equal(errors.length, 1);
  assert.equal(errors[0].fatal, true);
  assert.equal(errors[0].reason, 'Token revoked');
  await new Promise(r => setTimeout(r, 30));
  assert.equal(FakeSocket.all.length, 3, 'it tried again after the error');
  assert.equal(asked, 3);
  await assert.rejects(c.ping(), /closed|refused/);
});

test('a string token refused once is final', async () => {
  fresh();
  const c = client({ token: 'bad' });
  const errors = [];
  c.on('error', e => errors.push(e));
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().drop(1008, 'Invalid token');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].fatal, true);
  await new Promise(r => setTimeout(r, 20));
  assert.equal(FakeSocket.all.length, 1);
});

test('other 1008 closes (slow consumer) and token function errors retry', async () => {
  fresh();
  let fail = true;
  const c = client({ token: async () => { if (fail) { fail = false; throw new Error('auth down'); } return 't'; } });
  const seen = [];
  c.on('reconnecting', i => seen.push(i));
  await until(() => FakeSocket.all.length === 1, 'socket after the token function failed once');
  assert.equal(seen[0].error.message, 'auth down');
  last().accept();
  last().drop(1008, 'Slow consumer');
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  c.close();
});

// --- subscriptions and ordering -----------------------------------------

test('subscribes on connect and again after every reconnect', async () => {
  fresh();
  const c = client();
  const got = [];
  c.subscribe(7, s => got.push(s.availableSeats));
  c.subscribe('8', () => {});
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  assert.deepEqual(last().sent, [
    { type: 'subscribe_event', eventId: 7 }, { type: 'subscribe_event', eventId: 8 }]);
  last().push(seat(7, 50));
  last().drop(1006);
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  last().accept();
  assert.deepEqual(last().sent.map(m => m.eventId), [7, 8]);
  last().push(seat(7, 49));
  assert.deepEqual(got, [50, 49]);
  c.close();
});

test('a late message of a dropped socket never overwrites the new state', async () => {
  fresh();
  const c = client();
  c.subscribe(1, () => {});
  await until(() => FakeSocket.all.length === 1, 'socket');
  const old = last();
  old.accept();
  old.push(seat(1, 90));
  const onmessage = old.onmessage;   // a message already in flight
  old.drop(1006);
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  last().accept();
  last().push(seat(1, 80));           // the snapshot of the new connection
  if (onmessage) onmessage({ data: JSON.stringify(seat(1, 95)) });
  old.push(seat(1, 96));
  assert.equal(c.seats(1).availableSeats, 80);
  c.close();
});

test('the snapshot after a reconnect is authoritative, even when higher', async () => {
  fresh();
  const c = client();
  c.subscribe(1, () => {});
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().push(seat(1, 10));
  last().drop(1006);
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  assert.equal(c.seats(1).availableSeats, 10, 'last known state kept while away');
  last().accept();
  last().push(seat(1, 30));           // cancellations while away
  assert.equal(c.seats(1).availableSeats, 30);
  c.close();
});

test('one connection: every message applies in arrival (commit) order', async () => {
  fresh();
  const c = client();
  const got = [];
  c.subscribe(1, (s, m) => got.push([m && m.type, s.availableSeats, s.seatCapacity]));
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().push(seat(1, 50));
  last().push({ type: 'booking_created', eventId: 1, availableSeats: 49, timestamp: ts() });
  last().push(seat(1, 49));
  last().push({ type: 'booking_cancelled', eventId: 1, availableSeats: 51, timestamp: ts() });
  last().push(seat(1, 51, 120));
  assert.deepEqual(got, [['seat_update', 50, 100], ['booking_created', 49, 100],
    ['seat_update', 49, 100], ['booking_cancelled', 51, 100], ['seat_update', 51, 120]]);
  c.close();
});

test('merged messages: bookings N is understood, the latest count applies', async () => {
  fresh();
  const c = client();
  const got = [];
  c.subscribe(3, (s, m) => got.push([bookingsOf(m), s.availableSeats]));
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().push(seat(3, 100));
  last().push({ type: 'booking_created', eventId: 3, availableSeats: 96, bookings: 4, timestamp: ts() });
  last().push({ type: 'booking_cancelled', eventId: 3, availableSeats: 97, timestamp: ts() });
  last().push(seat(3, 97));
  assert.deepEqual(got, [[0, 100], [4, 96], [1, 97], [0, 97]]);
  assert.equal(bookingsOf({ type: 'booking_created', bookings: 1 }), 1);
  assert.equal(bookingsOf({ type: 'pong' }), 0);
  c.close();
});

test('unsubscribe, and an unsubscribed answer racing a new subscribe', async () => {
  fresh();
  const c = client();
  const errors = [];
  const a = c.subscribe(5, () => {});
  const b = c.subscribe(5, () => {});
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().push(seat(5, 10));
  a.unsubscribe();
  assert.equal(last().sent.length, 1, 'one subscriber left: nothing sent');
  b.unsubscribe();
  assert.equal(c.seats(5), undefined);
  c.subscribe(5, () => {}, { onError: e => errors.push(e) });
  assert.deepEqual(last().sent.slice(1), [
    { type: 'unsubscribe_event', eventId: 5 }, { type: 'subscribe_event', eventId: 5 }]);
  last().push({ type: 'unsubscribed', eventId: 5, timestamp: ts() });   // our own
  last().push({ type: 'subscribed', eventId: 5, timestamp: ts() });
  last().push(seat(5, 9));
  assert.equal(c.seats(5).availableSeats, 9);
  assert.equal(errors.length, 0);
  // an unsubscribed nobody asked for: the event was deleted
  last().push({ type: 'unsubscribed', eventId: 5, timestamp: ts() });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'event_deleted');
  assert.equal(c.seats(5), undefined);
  c.close();
});

test('not_found ends that subscription and is not asked again', async () => {
  fresh();
  const c = client();
  const errs = [];
  const clientErrs = [];
  c.on('error', e => clientErrs.push(e));
  c.subscribe(404, () => {}, { onError: e => errs.push(e) });
  c.subscribe(1, () => {});
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().push({ type: 'error', code: 'not_found', message: 'Event 404 not found', timestamp: ts() });
  assert.equal(errs[0].code, 'not_found');
  assert.equal(errs[0].eventId, 404);
  assert.equal(clientErrs[0].fatal, false);
  last().drop(1006);
  await until(() => FakeSocket.all.length === 2, 'reconnect');
  last().accept();
  assert.deepEqual(last().sent, [{ type: 'subscribe_event', eventId: 1 }]);
  c.close();
});

test('a second callback of a known event gets the state at once', async () => {
  fresh();
  const c = client();
  c.subscribe(2, () => {});
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  last().push(seat(2, 33));
  const got = [];
  c.subscribe(2, (s, m) => got.push([s.availableSeats, m]));
  await until(() => got.length === 1, 'the immediate callback');
  assert.deepEqual(got, [[33, undefined]]);
  c.close();
});

test('invalid event ids are refused', () => {
  assert.throws(() => normalizeEventId(0), TypeError);
  assert.throws(() => normalizeEventId('12a'), TypeError);
  assert.throws(() => normalizeEventId(2 ** 53), TypeError);
  assert.equal(normalizeEventId('42'), 42);
});

// --- requests ------------------------------------------------------------

test('stats() and ping() wait for the connection and match answers', async () => {
  fresh();
  const c = client();
  const st = c.stats();
  const p = c.ping();
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  assert.deepEqual(last().sent, [{ type: 'get_stats' }, { type: 'ping' }]);
  last().push({ type: 'stats', data: { totalClients: 3, eventSubscriptions: 2 }, timestamp: ts() });
  last().push({ type: 'pong', timestamp: ts() });
  assert.deepEqual(await st, { totalClients: 3, eventSubscriptions: 2 });
  assert.ok(typeof await p === 'number' && await p >= 0);
  // an answer lost with its connection fails the request
  const lost = c.stats();
  last().drop(1006);
  await assert.rejects(lost, /connection closed/);
  c.close();
});

test('close() stops for good', async () => {
  fresh();
  const c = client();
  const closes = [];
  c.on('close', e => closes.push(e));
  await until(() => FakeSocket.all.length === 1, 'socket');
  last().accept();
  assert.equal(c.connected, true);
  c.close();
  assert.equal(c.connected, false);
  assert.equal(closes.length, 1);
  await new Promise(r => setTimeout(r, 20));
  assert.equal(FakeSocket.all.length, 1);
  assert.throws(() => c.subscribe(1, () => {}), /closed/);
});
