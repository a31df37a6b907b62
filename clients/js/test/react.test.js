// useSeats with real React (react-test-renderer), against a scripted socket.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import React from 'react';
import TestRenderer from 'react-test-renderer';
import { SeatcastClient } from '../index.js';
import { useSeats } from '../react.js';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { act } = TestRenderer;

class FakeSocket {
  static all = [];
  constructor() { this.sent = []; this.readyState = 0; FakeSocket.all.push(this); }
  send(t) { this.sent.push(JSON.parse(t)); }
  close() { this.readyState = 3; }
  push(o) { this.onmessage({ data: JSON.stringify(o) }); }
  drop(code) { this.readyState = 3; this.onclose({ code, reason: '' }); }
}
const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const T = '2026-01-01T00:00:00.000Z';

test('useSeats follows an event, shows connected, unsubscribes on unmount', async () => {
  const client = new SeatcastClient({ url: 'ws://x/ws', token: 't', WebSocket: FakeSocket,
                                      reconnect: { minDelay: 1, maxDelay: 2 } });
  after(() => client.close());
  const seen = [];
  function Seats({ id }) {
    const s = useSeats(client, id);
    seen.push(s);
    return React.createElement('span', null,
      String(s.availableSeats) + '/' + String(s.seatCapacity) + (s.connected ? ' live' : ' offline'));
  }
  let r;
  await act(async () => { r = TestRenderer.create(React.createElement(Seats, { id: 9 })); });
  assert.equal(r.toJSON().children.join(''), 'undefined/undefined offline');
  await act(async () => {
    last().readyState = 1;
    last().push({ type: 'connection_established', clientId: 'ws_1_a', timestamp: T });
  });
  assert.deepEqual(last().sent, [{ type: 'subscribe_event', eventId: 9 }]);
  await act(async () => {
    last().push({ type: 'seat_update', eventId: 9, availableSeats: 12, seatCapacity: 20, timestamp: T });
  });
  assert.equal(r.toJSON().children.join(''), '12/20 live');
  await act(async () => {
    last().push({ type: 'booking_created', eventId: 9, availableSeats: 8, bookings: 4, timestamp: T });
  });
  assert.equal(r.toJSON().children.join(''), '8/20 live');
  assert.equal(seen.at(-1).updatedAt, T);
  await act(async () => { last().drop(1006); });
  assert.equal(r.toJSON().children.join(''), '8/20 offline');
  await act(async () => { r.unmount(); });
  assert.equal(client.seats(9), undefined, 'the subscription outlived the component');
  client.close();
});
