/*
 * lg_book.h - the bookings the load generator commits
 *
 * Called by the loadgen's parent process, which holds no socket of the
 * bench: it may block in libpq, and a commit time is taken the moment
 * PQexec("COMMIT") returns (the bench's definition of the commit time).
 *
 * Booking g of the whole run (g counts from 0 over every phase) is one
 * transaction inserting one seat of event first_event + g % nevents for
 * user g + 1:
 *     BEGIN; INSERT INTO bookings (event_id, user_id, seats)
 *            VALUES ($1, $2, 1); COMMIT
 * or, with `autocommit` (the onsale), the INSERT alone, committed on its
 * own: one round trip instead of three, so that one session keeps up with
 * the rate asked while the server takes the machine's CPU.  The commit
 * time is then when the INSERT returns (it has committed by then).
 */
#ifndef LG_BOOK_H
#define LG_BOOK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct lg_book {
    PGconn *pg;             /* not owned */
    int64_t first_event;    /* events first_event .. + nevents - 1 */
    uint32_t nevents;       /* >= 1 */
    uint64_t first_booking; /* g of the first booking */
    uint32_t count;         /* bookings to commit */
    double rate;            /* bookings per second; 0: as fast as possible */
    bool autocommit;        /* INSERT alone, no BEGIN / COMMIT */
    int64_t origin_ns;      /* CLOCK_MONOTONIC origin of commit_ns */
    int64_t *commit_ns;     /* [count], not owned: when COMMIT returned */
    char err[256];          /* first error, "" if none */
};

/* Prepares the INSERT on pg (once per connection).  0 or -1 (stderr). */
int lg_book_prepare(PGconn *pg);

/*
 * Commits b->count bookings, paced at b->rate from the call, and
 * fills commit_ns[].  Returns the number committed; fewer than count
 * means a statement failed (b->err says which; the rest are not tried).
 */
uint32_t lg_book_run(struct lg_book *b);

#endif /* LG_BOOK_H */
