// seatcast-client/react - useSeats(client, eventId), a React hook.
// React is a peer dependency: this module imports it and bundles nothing.
import { useEffect, useState } from 'react';

function read(client, eventId) {
  const s = client && eventId != null ? client.seats(eventId) : undefined;
  return {
    availableSeats: s ? s.availableSeats : undefined,
    seatCapacity: s ? s.seatCapacity : undefined,
    connected: Boolean(client && client.connected),
    updatedAt: s ? s.updatedAt : undefined,
  };
}

function same(a, b) {
  return a.availableSeats === b.availableSeats &&
    a.seatCapacity === b.seatCapacity &&
    a.connected === b.connected &&
    a.updatedAt === b.updatedAt;
}

/**
 * Follows one event for as long as the component is mounted (or until
 * client or eventId change) and returns
 * {availableSeats, seatCapacity, connected, updatedAt}; the counts are
 * undefined until the server's first seat_update.  Components that watch
 * the same event share one subscription of the client.
 */
export function useSeats(client, eventId) {
  const [value, setValue] = useState(() => read(client, eventId));
  useEffect(() => {
    const refresh = () => setValue(prev => {
      const next = read(client, eventId);
      return same(prev, next) ? prev : next;
    });
    refresh();
    if (!client || eventId == null) return undefined;
    const sub = client.subscribe(eventId, refresh);
    const offOpen = client.on('open', refresh);
    const offClose = client.on('close', refresh);
    const offError = client.on('error', refresh);
    return () => {
      sub.unsubscribe();
      offOpen();
      offClose();
      offError();
    };
  }, [client, eventId]);
  return value;
}

export default useSeats;
