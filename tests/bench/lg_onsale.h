/*
 * lg_onsale.h - what one subscriber's messages show of an onsale
 *
 * Pure: no I/O, no clock, no globals; lg_client.c calls it for every
 * seat_update, booking_created and booking_cancelled of a connection in
 * onsale mode, and lg_selftest.c checks it with sequences of messages
 * from a server that sends every booking and from one that merges them.
 *
 * Booking j of the onsale (0 .. K-1) is the one after which the event has
 * base - 1 - j seats (each booking takes one seat and the loadgen is the
 * only writer), so a message's availableSeats names the newest booking it
 * shows.  A server that merges a surge (SPEC 4 "Surges") may skip counts:
 * a booking_created then carries "bookings": N, the number of bookings it
 * stands for (absent: 1), and the latest count.  For each connection:
 *   - hi, the highest index any message showed: a message showing j > hi
 *     covers bookings hi+1 .. j, whose cover time is the time of the read
 *     that brought it; freshness is cover time minus commit time, computed
 *     by the parent.  Only cover[j] is written (the time + 1), so that a
 *     message costs one store however many bookings it covers: cover[]
 *     starts zeroed, and lg_onsale_fill() gives hi+1 .. j-1 the time of j
 *     after the onsale (while it runs, the loadgen's own cost competes
 *     with the server for the same cores);
 *   - a message showing j < hi is an older count after a newer one;
 *   - the sum of "bookings" of its booking_created, which must reach K,
 *     and each booking_created's "bookings" must equal the step of its
 *     count from the previous booking_created (no booking counted twice
 *     or left out);
 *   - upd, the index of its last seat_update: the count it ends on.
 */
#ifndef LG_ONSALE_H
#define LG_ONSALE_H

#include <stdint.h>

#include "lg_ws.h"

/* One connection's view (indexes are -1 before the first message). */
struct lg_onsale_conn {
    int32_t hi;        /* highest index any message showed */
    int32_t upd;       /* index the last seat_update showed */
    int32_t created;   /* index the last booking_created showed */
    uint32_t bookings; /* sum of "bookings" of its booking_created */
};

/* Counts over many connections (added to by lg_onsale_apply()). */
struct lg_onsale_tally {
    uint64_t frames;    /* messages of the onsale */
    uint64_t updates;   /* seat_update */
    uint64_t created;   /* booking_created */
    uint64_t cancelled; /* booking_cancelled (the onsale makes none) */
    uint64_t final;     /* seat_updates that first showed the last index */
    uint64_t older;     /* messages showing an older count than one before */
    uint64_t bookings;  /* sum of "bookings" of booking_created */
    uint64_t bookings_bad; /* "bookings" present but not an integer > 1 */
    uint64_t step_bad;  /* booking_created whose "bookings" is not the step
                           of its count from the previous one */
};

/* Before the first message. */
void lg_onsale_reset(struct lg_onsale_conn *o);

/*
 * Applies message m, which shows booking index j (0 <= j <= last, last =
 * K - 1), read at time t: updates *o, cover[] (K slots of this
 * connection) and *c.  m->type is seat_update, booking_created or
 * booking_cancelled.
 */
void lg_onsale_apply(struct lg_onsale_conn *o, uint32_t *cover, int64_t j,
                     int64_t last, const struct lg_msg *m, uint32_t t,
                     struct lg_onsale_tally *c);

/*
 * After the onsale: cover[0 .. hi] of one connection (zeroed before its
 * first message, then written by lg_onsale_apply()) become the cover time
 * of each booking.
 */
void lg_onsale_fill(uint32_t *cover, int64_t hi);

#endif /* LG_ONSALE_H */
