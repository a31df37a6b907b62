// seatcast-client - live seat counts from a seatcast server, for browsers
// and Node (20 and later).  ESM, no dependencies.
//
//   const client = new SeatcastClient({ url, token, WebSocket, reconnect });
//   const sub = client.subscribe(123, (seats, message) => { ... });
//
// What it does for the application:
// - sends the token as the "bearer.JWT" subprotocol next to "seatcast.v1",
//   never in the URL (so it ends up in no proxy log);
// - reconnects after any drop, waiting a random delay between 0 and an
//   exponentially growing ceiling ("full jitter"), so that a fleet of
//   clients dropped at once does not come back in the same instant;
// - on 1008 "Token expired" / "Token revoked" / "Invalid token" /
//   "Authentication required" asks the token function again, and after
//   maxAuthFailures such refusals in a row stops with an "error" event;
// - after every reconnect subscribes again to everything; the server's
//   snapshot seat_update then refreshes the counts;
// - never lets an older count overwrite a newer one (see apply()).

const PROTOCOL = 'seatcast.v1';

// close reasons (with code 1008) that mean "this token will not do"
const AUTH_REASONS = new Set([
  'Authentication required', 'Invalid token', 'Token expired', 'Token revoked',
]);

const DEFAULTS = {
  minDelay: 250,          // ms: ceiling of the first reconnect delay
  maxDelay: 10000,        // ms: the ceiling stops growing here
  shutdownDelay: 5000,    // ms: ceiling of the first delay after a 1001
};

// Outgoing messages are paced below the server's --max-message-rate
// (default 50/s, bursts of 100) so that resubscribing to many events
// after a reconnect is not answered with rate_limited.
const SEND_BURST = 80;
const SEND_RATE = 40;     // per second

/**
 * The reconnect delay before attempt number `attempt` (0 for the first
 * retry after a drop): uniform in [0, cap) with
 * cap = min(maxDelay, minDelay * 2^attempt).  Exported for tests and for
 * applications that want the same schedule elsewhere.
 */
export function nextDelay(attempt, opts = {}, random = Math.random) {
  const min = opts.minDelay ?? DEFAULTS.minDelay;
  const max = Math.max(min, opts.maxDelay ?? DEFAULTS.maxDelay);
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 52));
  return { cap, delay: Math.floor(random() * cap) };
}

/** How many bookings a booking_created / booking_cancelled stands for:
 * the server merges the waiting bookings of an event during a surge and
 * then says how many with "bookings": N (present only when N > 1). */
export function bookingsOf(message) {
  if (!message) return 0;
  if (message.type !== 'booking_created' && message.type !== 'booking_cancelled') {
    return 0;
  }
  const n = message.bookings;
  return Number.isSafeInteger(n) && n > 1 ? n : 1;
}

/** An eventId as the server takes it: a positive integer below 2^53, or a
 * string of digits.  Returns the number, or throws a TypeError. */
export function normalizeEventId(id) {
  const n = typeof id === 'string' && /^[0-9]+$/.test(id) ? Number(id) : id;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new TypeError('seatcast: invalid eventId ' + JSON.stringify(id));
  }
  return n;
}

function decode(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    return new TextDecoder().decode(data);
  }
  return String(data);
}

function makeError(message, props) {
  return Object.assign(new Error(message), props);
}

export class SeatcastClient {
  constructor(options = {}) {
    if (!options.url) throw new TypeError('seatcast: url is required');
    this.url = String(options.url);
    if (/[?&]token=/.test(this.url)) {
      throw new TypeError('seatcast: give the token as the token option, ' +
                          'not in the URL (URLs end up in logs)');
    }
    this._token = options.token;
    this._WS = options.WebSocket || globalThis.WebSocket;
    if (typeof this._WS !== 'function') {
      throw new TypeError('seatcast: no WebSocket implementation: pass one ' +
                          "as the WebSocket option (in Node: import WebSocket from 'ws')");
    }
    const r = options.reconnect || {};
    this._backoff = {
      minDelay: r.minDelay ?? DEFAULTS.minDelay,
      maxDelay: r.maxDelay ?? DEFAULTS.maxDelay,
      shutdownDelay: r.shutdownDelay ?? DEFAULTS.shutdownDelay,
    };
    this._maxAuthFailures = options.maxAuthFailures ?? 3;
    this._connectTimeout = options.connectTimeout ?? 10000;
    this._requestTimeout = options.requestTimeout ?? 10000;

    this._handlers = new Map();    // event name -> Set of handlers
    this._subs = new Map();        // eventId -> {callbacks, state, onError}
    this._unsubsInFlight = new Map();  // eventId -> unsubscribes not answered
    this._ws = null;               // the current socket, or null
    this._gen = 0;                 // bumps with every connection attempt
    this._established = false;     // connection_established seen on _ws
    this._clientId = null;
    this._attempt = 0;             // failed attempts since the last success
    this._authFailures = 0;        // auth refusals in a row
    this._retryTimer = null;
    this._connectTimer = null;
    this._closed = false;          // close() called, or stopped for good
    this._waiting = [];            // requests waiting for a connection
    this._pending = { pong: [], stats: [] };  // requests sent, not answered
    this._outbox = [];
    this._tokens = SEND_BURST;
    this._tokensAt = Date.now();
    this._pumpTimer = null;
    this._everOpen = false;

    if (options.connect !== false) this._connect();
  }

  // --- public API -------------------------------------------------------

  /** True while a connection is established (connection_established seen). */
  get connected() {
    return this._established;
  }

  /** The server's id for the current connection, or null. */
  get clientId() {
    return this._clientId;
  }

  /**
   * Follows an event.  callback(seats, message) runs for every change,
   * with seats = {eventId, availableSeats, seatCapacity, updatedAt}; at
   * once (in a microtask, message undefined) when the state is already
   * known.  options.onError(err) gets the server's refusal (err.code
   * "not_found", "forbidden", ...) or "event_deleted"; the subscription
   * then ends.  Returns {unsubscribe()}.
   */
  subscribe(eventId, callback, options = {}) {
    const id = normalizeEventId(eventId);
    if (typeof callback !== 'function') {
      throw new TypeError('seatcast: subscribe needs a callback');
    }
    if (this._closed) throw new Error('seatcast: client is closed');
    let sub = this._subs.get(id);
    const entry = { callback, onError: options.onError };
    if (!sub) {
      sub = { callbacks: new Set(), state: undefined };
      this._subs.set(id, sub);
      if (this._established) this._send({ type: 'subscribe_event', eventId: id });
    } else if (sub.state) {
      const state = sub.state;
      queueMicrotask(() => {
        if (sub.callbacks.has(entry) && this._subs.get(id) === sub) {
          this._call(entry.callback, state, undefined);
        }
      });
    }
    sub.callbacks.add(entry);
    let done = false;
    return {
      eventId: id,
      unsubscribe: () => {
        if (done) return;
        done = true;
        sub.callbacks.delete(entry);
        if (sub.callbacks.size === 0 && this._subs.get(id) === sub) {
          this._subs.delete(id);
          if (this._established) {
            this._unsubsInFlight.set(id, (this._unsubsInFlight.get(id) || 0) + 1);
            this._send({ type: 'unsubscribe_event', eventId: id });
          }
        }
      },
    };
  }

  /** The last known seats of a subscribed event, or undefined. */
  seats(eventId) {
    const sub = this._subs.get(normalizeEventId(eventId));
    return sub ? sub.state : undefined;
  }

  /**
   * handler for "open" ({clientId, reconnected}), "close" ({code, reason}),
   * "reconnecting" ({attempt, delay, cap, error?}) and "error" (an Error;
   * err.fatal: the client has stopped).  Returns a function that removes
   * the handler.
   */
  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) {
    const set = this._handlers.get(event);
    if (set) set.delete(handler);
  }

  /** {totalClients, eventSubscriptions, ...} from the server. */
  stats() {
    return this._request({ type: 'get_stats' }, 'stats').then(m => m.data);
  }

  /** Round trip of an application-level ping, in milliseconds. */
  ping() {
    const t0 = now();
    return this._request({ type: 'ping' }, 'pong').then(() => now() - t0);
  }

  /** Closes the connection for good; no reconnect follows. */
  close() {
    if (this._closed && !this._ws) return;
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const sock = this._ws;
    const was = this._established;
    this._detach();
    if (sock) {
      try { sock.close(1000, 'client closed'); } catch { /* closing anyway */ }
    }
    this._failRequests(new Error('seatcast: client closed'), true);
    if (was) this._emit('close', { code: 1000, reason: 'client closed' });
  }

  // --- the connection ---------------------------------------------------

  async _connect() {
    const gen = ++this._gen;
    this._retryTimer = null;
    let token;
    try {
      token = typeof this._token === 'function' ? await this._token() : this._token;
    } catch (e) {
      if (gen !== this._gen || this._closed) return;
      this._scheduleReconnect({ error: e });
      return;
    }
    if (gen !== this._gen || this._closed) return;
    const protocols = [PROTOCOL];
    if (token) protocols.push('bearer.' + token);
    let sock;
    try {
      sock = new this._WS(this.url, protocols);
    } catch (e) {
      this._scheduleReconnect({ error: e });
      return;
    }
    this._ws = sock;
    this._established = false;
    sock.onmessage = ev => {
      if (this._ws === sock) this._onMessage(sock, ev.data);
    };
    sock.onclose = ev => {
      if (this._ws === sock) this._onClose(ev.code, ev.reason || '');
    };
    sock.onerror = () => { /* a close event follows */ };
    // a connection that neither opens nor fails (a silent network) is
    // given up after connectTimeout
    clearTimeout(this._connectTimer);
    this._connectTimer = setTimeout(() => {
      if (this._ws === sock && !this._established) {
        try { sock.close(); } catch { /* given up anyway */ }
        this._onClose(1006, 'connect timeout');
      }
    }, this._connectTimeout);
  }

  // forgets the current socket: its late events are ignored from now on
  _detach() {
    const sock = this._ws;
    this._ws = null;
    this._established = false;
    this._clientId = null;
    this._outbox = [];
    clearTimeout(this._connectTimer);
    clearTimeout(this._pumpTimer);
    this._connectTimer = this._pumpTimer = null;
    if (sock) sock.onmessage = sock.onclose = sock.onerror = null;
  }

  _onClose(code, reason) {
    const was = this._established;
    const sock = this._ws;
    this._detach();
    if (sock && sock.readyState < 2) {
      try { sock.close(); } catch { /* already going */ }
    }
    this._failRequests(makeError('seatcast: connection closed (' + code + ')', { code }), false);
    if (was) this._emit('close', { code, reason });
    if (this._closed) return;
    if (code === 1008 && AUTH_REASONS.has(reason)) {
      this._authFailures++;
      if (typeof this._token !== 'function' ||
          this._authFailures >= this._maxAuthFailures) {
        this._stop(makeError('seatcast: token refused: ' + reason, {
          fatal: true, code: 'auth', reason, closeCode: code,
        }));
        return;
      }
    }
    this._scheduleReconnect({ code, reason });
  }

  _stop(err) {
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._failRequests(err, true);
    this._emit('error', err);
  }

  _scheduleReconnect(info) {
    if (this._closed) return;
    let { cap, delay } = nextDelay(this._attempt, this._backoff);
    if (info.code === 1001 && this._attempt === 0) {
      // the server is going away (a deploy): spread the fleet wider
      cap = Math.min(this._backoff.maxDelay,
                     Math.max(cap, this._backoff.shutdownDelay));
      delay = Math.floor(Math.random() * cap);
    }
    this._attempt++;
    this._emit('reconnecting', Object.assign({ attempt: this._attempt, delay, cap }, info));
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._connect(), delay);
  }

  _onMessage(sock, data) {
    let m;
    try {
      m = JSON.parse(decode(data));
    } catch {
      return;
    }
    if (!m || typeof m.type !== 'string') return;
    switch (m.type) {
    case 'connection_established':
      this._onEstablished(m);
      break;
    case 'seat_update':
    case 'booking_created':
    case 'booking_cancelled':
      this._apply(m);
      break;
    case 'unsubscribed':
      this._onUnsubscribed(m);
      break;
    case 'pong':
      // the server answers only the latest of several waiting pings
      for (const p of this._pending.pong.splice(0)) p.resolve(m);
      break;
    case 'stats': {
      const p = this._pending.stats.shift();
      if (p) p.resolve(m);
      break;
    }
    case 'error':
      this._onServerError(m);
      break;
    default:
      break;
    }
  }

  _onEstablished(m) {
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
    this._established = true;
    this._clientId = m.clientId || null;
    this._attempt = 0;
    this._authFailures = 0;
    this._unsubsInFlight.clear();
    const reconnected = this._everOpen;
    this._everOpen = true;
    for (const id of this._subs.keys()) {
      this._send({ type: 'subscribe_event', eventId: id });
    }
    for (const w of this._waiting.splice(0)) this._sendRequest(w);
    this._emit('open', { clientId: this._clientId, reconnected });
  }

  // Ordering.  The server's messages carry no version, but one connection
  // delivers an event's changes in the database's commit order (a slow
  // reader's merged seat_update is queued at the end, never earlier), and
  // the snapshot seat_update that follows a subscription is read after
  // every change the previous connection delivered.  So: only the current
  // connection's messages are applied (a late message of a dropped socket
  // is ignored: _ws no longer points at it), each replaces the state, and
  // the snapshot after a reconnect is authoritative.
  _apply(m) {
    let id;
    try {
      id = normalizeEventId(m.eventId);
    } catch {
      return;
    }
    const sub = this._subs.get(id);
    if (!sub || typeof m.availableSeats !== 'number') return;
    const prev = sub.state;
    const seatCapacity = typeof m.seatCapacity === 'number' ? m.seatCapacity
      : prev ? prev.seatCapacity : undefined;
    const state = Object.freeze({
      eventId: id,
      availableSeats: m.availableSeats,
      seatCapacity,
      updatedAt: m.timestamp,
    });
    sub.state = state;
    for (const e of [...sub.callbacks]) this._call(e.callback, state, m);
  }

  _onUnsubscribed(m) {
    let id;
    try {
      id = normalizeEventId(m.eventId);
    } catch {
      return;
    }
    const inFlight = this._unsubsInFlight.get(id) || 0;
    if (inFlight > 0) {
      // the answer to our own unsubscribe_event
      if (inFlight === 1) this._unsubsInFlight.delete(id);
      else this._unsubsInFlight.set(id, inFlight - 1);
      return;
    }
    // not asked for: the event was deleted from the database
    this._endSub(id, makeError('seatcast: event ' + id + ' was deleted', {
      code: 'event_deleted', eventId: id,
    }));
  }

  _onServerError(m) {
    const match = /\b(?:Event|event) (\d+)\b/.exec(m.message || '');
    const eventId = match ? Number(match[1]) : undefined;
    const err = makeError('seatcast: ' + (m.message || m.code), {
      fatal: false, code: m.code, eventId, serverMessage: m,
    });
    if (eventId !== undefined && (m.code === 'not_found' || m.code === 'forbidden')) {
      // refused for good: do not ask again after every reconnect
      this._endSub(eventId, err);
    }
    this._emit('error', err);
  }

  _endSub(id, err) {
    const sub = this._subs.get(id);
    if (!sub) return;
    this._subs.delete(id);
    for (const e of sub.callbacks) {
      if (e.onError) this._call(e.onError, err);
    }
  }

  // --- sending ----------------------------------------------------------

  _send(obj) {
    this._outbox.push(JSON.stringify(obj));
    this._pump();
  }

  _pump() {
    const t = Date.now();
    this._tokens = Math.min(SEND_BURST, this._tokens + (t - this._tokensAt) * SEND_RATE / 1000);
    this._tokensAt = t;
    while (this._outbox.length && this._tokens >= 1 && this._ws) {
      const text = this._outbox.shift();
      try {
        this._ws.send(text);
      } catch {
        return;          // closing: the close event follows
      }
      this._tokens -= 1;
    }
    if (this._outbox.length && !this._pumpTimer) {
      this._pumpTimer = setTimeout(() => {
        this._pumpTimer = null;
        this._pump();
      }, Math.ceil(1000 / SEND_RATE));
    }
  }

  _request(msg, reply) {
    if (this._closed) return Promise.reject(new Error('seatcast: client is closed'));
    return new Promise((resolve, reject) => {
      const r = { msg, reply, resolve, reject, timer: null };
      r.timer = setTimeout(() => {
        this._waiting = this._waiting.filter(x => x !== r);
        const list = this._pending[reply];
        const i = list.indexOf(r);
        if (i >= 0) list.splice(i, 1);
        reject(new Error('seatcast: no answer to ' + msg.type + ' within ' +
                         this._requestTimeout + ' ms'));
      }, this._requestTimeout);
      const done = f => v => { clearTimeout(r.timer); f(v); };
      r.resolve = done(resolve);
      r.reject = done(reject);
      if (this._established) this._sendRequest(r);
      else this._waiting.push(r);
    });
  }

  _sendRequest(r) {
    this._pending[r.reply].push(r);
    this._send(r.msg);
  }

  // requests sent on a connection that closed cannot be answered; those
  // still waiting for a connection fail only when the client stops
  _failRequests(err, all) {
    const failed = [...this._pending.pong.splice(0), ...this._pending.stats.splice(0)];
    if (all) failed.push(...this._waiting.splice(0));
    for (const r of failed) r.reject(err);
  }

  // --- events -----------------------------------------------------------

  _emit(event, arg) {
    const set = this._handlers.get(event);
    if (!set || set.size === 0) return;
    for (const h of [...set]) this._call(h, arg);
  }

  _call(fn, ...args) {
    try {
      fn(...args);
    } catch (e) {
      // an application's handler must not break the client
      setTimeout(() => { throw e; }, 0);
    }
  }
}

function now() {
  return globalThis.performance ? globalThis.performance.now() : Date.now();
}

export default SeatcastClient;
