// Type declarations of seatcast-client/react (react.js).
import type { SeatcastClient } from './index.js';

export interface SeatsState {
  availableSeats: number | undefined;
  seatCapacity: number | undefined;
  connected: boolean;
  updatedAt: string | undefined;
}

export declare function useSeats(client: SeatcastClient | null | undefined,
                                 eventId: number | string | null | undefined): SeatsState;
export default useSeats;
