// Type declarations of seatcast-client (index.js).

/** The seats of one event as last heard from the server. */
export interface Seats {
  readonly eventId: number;
  readonly availableSeats: number;
  /** undefined only until the first seat_update of the event */
  readonly seatCapacity: number | undefined;
  /** the server's timestamp of the message (ISO 8601, UTC, ms) */
  readonly updatedAt: string;
}

/** A server message that changed the seats of an event. */
export interface SeatMessage {
  type: 'seat_update' | 'booking_created' | 'booking_cancelled';
  eventId: number;
  availableSeats: number;
  seatCapacity?: number;
  /** present (and > 1) when the server merged several bookings of a surge */
  bookings?: number;
  timestamp: string;
  [key: string]: unknown;
}

export interface ReconnectOptions {
  /** ceiling of the first retry delay in ms (default 250) */
  minDelay?: number;
  /** the ceiling doubles per failed attempt up to this (default 10000) */
  maxDelay?: number;
  /** ceiling of the first delay after the server closed with 1001 (default 5000) */
  shutdownDelay?: number;
}

/** The constructor of a WebSocket: the browser's, or Node's `ws`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => any;

export interface SeatcastClientOptions {
  /** the general endpoint, e.g. wss://tickets.example/ws (no token in it) */
  url: string;
  /** a JWT, or a function giving one, called before each (re)connect */
  token?: string | (() => string | undefined | null | Promise<string | undefined | null>);
  /** a WebSocket implementation; default: globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
  reconnect?: ReconnectOptions;
  /** auth refusals in a row before giving up with an 'error' (default 3) */
  maxAuthFailures?: number;
  /** ms to wait for connection_established before retrying (default 10000) */
  connectTimeout?: number;
  /** ms to wait for an answer to stats() or ping() (default 10000) */
  requestTimeout?: number;
  /** false: do not connect from the constructor (default true) */
  connect?: boolean;
}

export interface SeatcastError extends Error {
  /** true: the client has stopped for good (the token was refused) */
  fatal: boolean;
  /** 'auth', a server error code ('not_found', 'forbidden', ...), or 'event_deleted' */
  code?: string;
  /** the close reason, for code 'auth' */
  reason?: string;
  eventId?: number;
  serverMessage?: unknown;
}

export interface Subscription {
  readonly eventId: number;
  unsubscribe(): void;
}

export interface SubscribeOptions {
  /** the server refused the subscription or deleted the event: it has ended */
  onError?: (err: SeatcastError) => void;
}

export interface OpenInfo { clientId: string | null; reconnected: boolean; }
export interface CloseInfo { code: number; reason: string; }
export interface ReconnectingInfo {
  /** 1 for the first retry after a drop */
  attempt: number;
  /** ms until the next attempt, uniform in [0, cap) */
  delay: number;
  cap: number;
  code?: number;
  reason?: string;
  error?: unknown;
}

export interface Stats {
  totalClients: number;
  eventSubscriptions: number;
  [key: string]: unknown;
}

export declare class SeatcastClient {
  constructor(options: SeatcastClientOptions);
  readonly url: string;
  readonly connected: boolean;
  readonly clientId: string | null;
  subscribe(eventId: number | string,
            callback: (seats: Seats, message: SeatMessage | undefined) => void,
            options?: SubscribeOptions): Subscription;
  seats(eventId: number | string): Seats | undefined;
  on(event: 'open', handler: (info: OpenInfo) => void): () => void;
  on(event: 'close', handler: (info: CloseInfo) => void): () => void;
  on(event: 'reconnecting', handler: (info: ReconnectingInfo) => void): () => void;
  on(event: 'error', handler: (err: SeatcastError) => void): () => void;
  off(event: 'open' | 'close' | 'reconnecting' | 'error', handler: (arg: any) => void): void;
  stats(): Promise<Stats>;
  /** round trip in ms */
  ping(): Promise<number>;
  close(): void;
}

export declare function nextDelay(attempt: number, opts?: ReconnectOptions,
                                  random?: () => number): { cap: number; delay: number };
export declare function bookingsOf(message: { type?: string; bookings?: number } | null | undefined): number;
export declare function normalizeEventId(id: number | string): number;

export default SeatcastClient;
