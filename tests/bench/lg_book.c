/*
 * lg_book.c - the bookings the load generator commits (see lg_book.h)
 *
 * Blocking libpq calls, one transaction per booking.  A failed statement
 * ends the phase: the error is kept in err and the transaction rolled
 * back.
 */
#include "lg_book.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define INSERT_STMT "lg_booking"

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
lg_book_prepare(PGconn *pg)
{
    PGresult *r = PQprepare(pg, INSERT_STMT,
                            "INSERT INTO bookings (event_id, user_id, seats) "
                            "VALUES ($1::bigint, $2::bigint, 1)",
                            2, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;

    if (rc != 0) {
        fprintf(stderr, "loadgen: could not prepare the booking insert: %s",
                PQerrorMessage(pg));
    }
    PQclear(r);
    return rc;
}

/* Runs sql (no rows expected); false with err set on failure. */
static bool
exec_ok(struct lg_book *b, const char *sql)
{
    PGresult *r = PQexec(b->pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    if (!ok) {
        snprintf(b->err, sizeof(b->err), "%s failed: %s", sql,
                 PQerrorMessage(b->pg));
    }
    PQclear(r);
    return ok;
}

/* One booking as one transaction; false with err set on failure. */
static bool
book_one(struct lg_book *b, uint64_t g)
{
    char ev[24], user[24];
    const char *params[2] = {ev, user};
    PGresult *r;
    bool ok;

    snprintf(ev, sizeof(ev), "%" PRId64,
             b->first_event + (int64_t)(g % b->nevents));
    snprintf(user, sizeof(user), "%" PRIu64, g + 1);
    if (!b->autocommit && !exec_ok(b, "BEGIN")) {
        return false;
    }
    r = PQexecPrepared(b->pg, INSERT_STMT, 2, params, NULL, NULL, 0);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        snprintf(b->err, sizeof(b->err), "booking insert failed: %s",
                 PQerrorMessage(b->pg));
    }
    PQclear(r);
    if (!ok && !b->autocommit) {
        r = PQexec(b->pg, "ROLLBACK");
        PQclear(r);
    }
    if (!ok || b->autocommit) {
        return ok;
    }
    return exec_ok(b, "COMMIT");
}

/* Sleeps until start + k / rate (absolute, so pacing does not drift). */
static void
pace(const struct lg_book *b, int64_t start_ns, uint32_t k)
{
    int64_t at = start_ns + (int64_t)((double)k / b->rate * 1e9);
    struct timespec ts = {.tv_sec = (time_t)(at / 1000000000),
                          .tv_nsec = (long)(at % 1000000000)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

uint32_t
lg_book_run(struct lg_book *b)
{
    /* paced from now, not from the phase's origin: the clients' setup
     * between the two must not turn into a burst of catching up */
    int64_t start_ns = mono_ns();
    uint32_t k;

    b->err[0] = '\0';
    for (k = 0; k < b->count; k++) {
        if (b->rate > 0) {
            pace(b, start_ns, k);
        }
        if (!book_one(b, b->first_booking + k)) {
            break;
        }
        b->commit_ns[k] = mono_ns() - b->origin_ns;
    }
    return k;
}
