// Compiled (never run) by test/types.test.js with tsc --noEmit --strict:
// the declarations describe the API as documented, and misuse is an error.
import { SeatcastClient, nextDelay, bookingsOf, type Seats, type SeatcastError } from 'seatcast-client';
import { useSeats, type SeatsState } from 'seatcast-client/react';

const client = new SeatcastClient({
  url: 'wss://tickets.example/ws',
  token: async () => 'jwt',
  reconnect: { minDelay: 250, maxDelay: 10000, shutdownDelay: 5000 },
});
const sub = client.subscribe(123, (seats: Seats, message) => {
  const n: number = seats.availableSeats;
  const cap: number | undefined = seats.seatCapacity;
  const merged: number = bookingsOf(message);
  void n; void cap; void merged;
}, { onError: (e: SeatcastError) => void e.code });
sub.unsubscribe();
client.on('open', ({ clientId, reconnected }) => void [clientId, reconnected]);
client.on('close', ({ code, reason }) => void [code, reason]);
client.on('reconnecting', ({ attempt, delay, cap }) => void [attempt, delay, cap]);
const off = client.on('error', err => void err.fatal);
off();
const s: Seats | undefined = client.seats('123');
void s;
async function f(): Promise<number> {
  const st = await client.stats();
  return st.totalClients + st.eventSubscriptions + (await client.ping()) + nextDelay(1).cap;
}
void f;
const state: SeatsState = useSeats(client, 123);
const live: boolean = state.connected;
void live;
new SeatcastClient({ url: 'ws://x/ws', token: 'jwt' }).close();

// @ts-expect-error: url is required
new SeatcastClient({ token: 'jwt' });
// @ts-expect-error: no such event
client.on('message', () => {});
// @ts-expect-error: the callback's seats are not a number
client.subscribe(1, (seats: number) => void seats);
