/*
 * lg_book.h - bookings committed by the load generator, on their own thread
 *
 * The socket loop must keep reading while PostgreSQL answers, and a commit
 * time must be taken the moment COMMIT returns, not when the loop next
 * looks: so each phase's bookings run on a thread of their own, with
 * blocking libpq calls (PQexec, as the bench defines the commit time).
 * The thread only writes the struct below; the loop polls `committed` and
 * `done` and reads commit_ns[] and err after lg_book_join().
 *
 * Booking g of the whole run (g counts from 0 over every phase) is one
 * transaction inserting one seat of event first_event + g % nevents for
 * user g + 1:
 *     BEGIN; INSERT INTO bookings (event_id, user_id, seats)
 *            VALUES ($1, $2, 1); COMMIT
 */
#ifndef LG_BOOK_H
#define LG_BOOK_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct lg_book {
    /* set by the caller before lg_book_start() */
    PGconn *pg;             /* not owned; used by the thread until join */
    int64_t first_event;    /* events first_event .. + nevents - 1 */
    uint32_t nevents;       /* >= 1 */
    uint64_t first_booking; /* g of this phase's first booking */
    uint32_t count;         /* bookings to commit */
    double rate;            /* bookings per second; 0: as fast as possible */
    int64_t origin_ns;      /* CLOCK_MONOTONIC origin of commit_ns */
    int64_t *commit_ns;     /* [count], not owned: when COMMIT returned */
    /* written by the thread */
    atomic_uint committed; /* bookings whose commit_ns is set */
    atomic_bool done;      /* the thread has finished (see err) */
    char err[256];         /* first error, "" if none; read after join */
    pthread_t thread;
};

/* Prepares the INSERT on pg (once per connection).  0 or -1 (stderr). */
int lg_book_prepare(PGconn *pg);

/* Starts the thread.  0, or -1 if it could not be created (stderr). */
int lg_book_start(struct lg_book *b);

/* Waits for the thread; afterwards every field may be read. */
void lg_book_join(struct lg_book *b);

#endif /* LG_BOOK_H */
