/*
 * loadgen.c - seatcast's load generator (make bench; tests/bench/README.md)
 *
 * Opens N authenticated WebSocket connections to one seatcast server,
 * subscribes them (GET /ws/events/{id}), commits bookings through libpq and
 * checks that every subscriber sees exactly the committed sequence of
 * availableSeats.  Prints one JSON object on stdout (bench.py gathers them
 * into results.json and the table).  It asserts nothing: loss, duplicates
 * and reordering are counted and reported.
 *
 * Phases:
 *   connect  N connections, at most --window of them in flight (from
 *            connect() to the snapshot seat_update), one token for all;
 *   idle     --settle seconds, then the server's Pss is read again;
 *   burst    --burst bookings committed as fast as one session can;
 *   paced    --paced-rate bookings per second for --paced-seconds.
 * or, with --onsale-bookings K (one event), instead of burst and paced:
 *   onsale   K bookings at --onsale-rate per second, measuring freshness:
 *            for each booking and client, commit to the first message
 *            showing that count or a newer one (counts may be skipped).
 *
 * NOTES
 *
 * This is the parent process: it forks the client processes that hold the
 * connections (lg_client.c), commits the bookings itself with blocking
 * libpq calls (so a commit time is taken when COMMIT returns, on a process
 * that has nothing else to do), reads the server's /proc figures
 * (lg_proc.c) and adds up the clients' figures from shared memory.  As few
 * clients as the descriptor limit allows: one up to ~19 700 connections.
 * On a 2-core machine shared with the server a single client loop also
 * leaves the server the most CPU; the client CPU per phase is reported
 * (client_cpu_ms) to tell a client-bound run from a server-bound one.
 *
 * Times are CLOCK_MONOTONIC everywhere (commit, receive, handshake).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libpq-fe.h>

#include "lg_book.h"
#include "lg_client.h"
#include "lg_proc.h"
#include "lg_selftest.h"
#include "lg_ws.h"

#define FD_MARGIN 64 /* descriptors a client needs besides sockets */

static const char *const fail_names[LG_FR_COUNT] = {
    "connect", "http", "closed", "eof", "timeout", "protocol"};

/* ------------------------------------------------------------------ */
/* State                                                                */

/* The clients' connection figures, added up. */
struct totals {
    uint32_t opened, failed, dropped;
    uint64_t fails[LG_FR_COUNT];
    uint64_t snapshot_bad, stray, errors_rcvd, pongs, pong_drops;
    int64_t hs_start_ns, hs_end_ns; /* first connect(), last open */
    int last_status;
    char last_close[96];
};

/* One phase's figures. */
struct phase {
    const char *name;
    uint32_t count;                  /* bookings asked */
    uint32_t committed;              /* bookings committed */
    double rate;                     /* per second, 0: as fast as possible */
    int64_t origin_ns;               /* CLOCK_MONOTONIC origin of the phase */
    int64_t commit_ns[LG_PHASE_MAX]; /* COMMIT returned, since origin */
    uint32_t conns;                  /* connections checked */
    uint64_t expected; /* seat_updates due to them (committed bookings) */
    uint64_t updates, created, frames, dups, reordered, unexpected;
    uint64_t lost, lost_final, lost_created;
    int64_t last_ns;     /* receive time of the last phase message */
    uint64_t cpu_ticks;  /* server utime + stime over the phase */
    uint64_t run_ns;     /* the same from schedstat, in ns */
    double client_cpu_s; /* the client processes */
    double lat_ms[4];    /* p50 p90 p99 max, commit to receive */
    uint64_t negative;   /* receives before COMMIT returned */
    char err[256];       /* booking error, "" if none */
};

/* Freshness histogram: 100 us buckets up to FRESH_BUCKETS / 10 ms; the
 * last bucket also holds everything later (max is exact). */
#define FRESH_BUCKET_NS 100000
#define FRESH_BUCKETS 1200000 /* 120 s */

/* The onsale phase's figures (--onsale-bookings). */
struct onsale {
    uint32_t count;     /* bookings asked */
    uint32_t committed; /* bookings committed */
    double rate;        /* per second, 0: as fast as possible */
    int64_t origin_ns;  /* CLOCK_MONOTONIC origin of the phase */
    int64_t *commit_ns; /* [count] owned: COMMIT returned, since origin */
    int64_t base;       /* seats before the phase */
    int64_t final_seats; /* the database's seats after it, -1 unknown */
    uint32_t conns;      /* connections subscribed when it began */
    uint32_t dropped;    /* connections lost during the phase */
    struct lg_onsale_tally tally; /* the clients' counts, added up */
    uint64_t unexpected;
    uint32_t final_ok;    /* connections whose last seat_update = database */
    uint32_t sum_ok;      /* connections whose "bookings" add up to committed */
    uint64_t pairs;       /* connections x committed bookings */
    uint64_t covered;     /* pairs shown by some message */
    uint64_t negative;    /* covered before COMMIT returned (counted as 0) */
    double fresh_ms[5];   /* p50 p90 p99 p99.9 max */
    double fresh_mean_ms;
    int64_t last_ns;     /* receive time of the last phase message */
    uint64_t cpu_ticks;  /* server utime + stime over the phase */
    uint64_t run_ns;     /* the same from schedstat, in ns */
    double client_cpu_s; /* the client processes */
    char err[256];       /* booking error, "" if none */
};

struct run {
    struct lg lg;      /* what the clients inherit */
    pid_t *pids;       /* [nprocs] owned: the clients */
    uint32_t seq;      /* last command */
    PGconn *pg;        /* owned */
    int64_t *ev_seats; /* [nevents] owned: committed seats */
    uint64_t booked;   /* bookings so far */
    double hs_p50, hs_p99;
    struct lg_proc_sample m0, m1;
    struct totals t;
    struct phase burst, paced;
    struct onsale os; /* --onsale-bookings only */
    bool db_ok;
};

static int read_seats(struct run *r);

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

static int
cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0..1) of n sorted values: the index. */
static size_t
rank(size_t n, double q)
{
    size_t r = (size_t)(q * (double)n + 0.999999);

    return r == 0 ? 0 : (r > n ? n - 1 : r - 1);
}

/* Anonymous memory shared with the clients forked later; NULL on error. */
static void *
shared_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

/* ------------------------------------------------------------------ */
/* Clients                                                              */

/* Clients needed: each holds at most what the descriptor limit allows. */
static uint32_t
clients_needed(uint32_t conns)
{
    struct rlimit rl;
    uint64_t per = UINT32_MAX;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY) {
        per = rl.rlim_max > 2 * FD_MARGIN ? rl.rlim_max - FD_MARGIN : FD_MARGIN;
    }
    return (uint32_t)((conns + per - 1) / per);
}

/* Connections per loopback source address: 70 % of the even ephemeral
 * ports, which connect() tries first (see lg_client.h); 0 if one source,
 * the kernel's own choice, suffices. */
static uint32_t
per_source(uint32_t conns)
{
    unsigned lo = 32768, hi = 60999;
    uint32_t per;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

    if (f != NULL) {
        if (fscanf(f, "%u %u", &lo, &hi) != 2 || hi < lo) {
            lo = 32768;
            hi = 60999;
        }
        fclose(f);
    }
    per = (hi - lo + 1) / 2 * 7 / 10;
    if (per < 1000) {
        per = 1000;
    }
    return conns <= per ? 0 : per;
}

static int
map_shared(struct lg *lg)
{
    size_t n = lg->o.conns, m = lg->o.nevents;

    lg->ctl = shared_map(sizeof(*lg->ctl));
    lg->stats = shared_map(lg->nprocs * sizeof(*lg->stats));
    lg->conns = shared_map(n * sizeof(*lg->conns));
    lg->hs_us = shared_map(n * sizeof(*lg->hs_us));
    lg->lat_us = shared_map(n * LG_PHASE_MAX * sizeof(*lg->lat_us));
    lg->ev_count = shared_map(m * sizeof(*lg->ev_count));
    lg->ev_first = shared_map(m * sizeof(*lg->ev_first));
    lg->ev_base = shared_map(m * sizeof(*lg->ev_base));
    if (lg->o.onsale_bookings > 0) {
        /* each client zeroes its connections' part before the onsale */
        lg->os = shared_map(n * sizeof(*lg->os));
        lg->cover_us =
            shared_map(n * lg->o.onsale_bookings * sizeof(*lg->cover_us));
        if (!lg->os || !lg->cover_us) {
            fprintf(stderr, "loadgen: could not map %zu MiB for the onsale: "
                    "%s\n",
                    n * lg->o.onsale_bookings * sizeof(*lg->cover_us) >> 20,
                    strerror(errno));
            return -1;
        }
    }
    if (!lg->ctl || !lg->stats || !lg->conns || !lg->hs_us || !lg->lat_us ||
        !lg->ev_count || !lg->ev_first || !lg->ev_base) {
        fprintf(stderr, "loadgen: could not map shared memory: %s\n",
                strerror(errno));
        return -1;
    }
    return 0;
}

static void
unmap_shared(struct lg *lg)
{
    size_t n = lg->o.conns, m = lg->o.nevents;

    /* munmap(NULL, ...) fails harmlessly for a mapping never made */
    munmap(lg->ctl, sizeof(*lg->ctl));
    munmap(lg->stats, lg->nprocs * sizeof(*lg->stats));
    munmap(lg->conns, n * sizeof(*lg->conns));
    munmap(lg->hs_us, n * sizeof(*lg->hs_us));
    munmap(lg->lat_us, n * LG_PHASE_MAX * sizeof(*lg->lat_us));
    munmap(lg->ev_count, m * sizeof(*lg->ev_count));
    munmap(lg->ev_first, m * sizeof(*lg->ev_first));
    munmap(lg->ev_base, m * sizeof(*lg->ev_base));
    if (lg->o.onsale_bookings > 0) {
        munmap(lg->os, n * sizeof(*lg->os));
        munmap(lg->cover_us, n * lg->o.onsale_bookings * sizeof(*lg->cover_us));
    }
}

static int
fork_clients(struct run *r)
{
    fflush(NULL); /* no stdio buffer copied into the clients */
    for (uint32_t k = 0; k < r->lg.nprocs; k++) {
        pid_t pid = fork();

        if (pid < 0) {
            fprintf(stderr, "loadgen: fork() failed: %s\n", strerror(errno));
            return -1;
        }
        if (pid == 0) {
            lg_client_main(&r->lg, k);
        }
        r->pids[k] = pid;
    }
    return 0;
}

/* True while every client runs. */
static bool
clients_alive(struct run *r)
{
    int status = 0;

    for (uint32_t k = 0; k < r->lg.nprocs; k++) {
        if (r->pids[k] > 0 && waitpid(r->pids[k], &status, WNOHANG) != 0) {
            fprintf(stderr, "loadgen: client %u exited (status %d)\n", k,
                    status);
            r->pids[k] = 0;
            return false;
        }
    }
    return true;
}

/* Publishes a command; its parameters are written before. */
static uint32_t
command(struct run *r, enum lg_cmd cmd)
{
    r->lg.ctl->cmd = cmd;
    atomic_store_explicit(&r->lg.ctl->seq, ++r->seq, memory_order_release);
    return r->seq;
}

/* Waits until every client has finished command seq; -1 if one died. */
static int
wait_done(struct run *r, uint32_t seq)
{
    for (;;) {
        uint32_t k;

        for (k = 0; k < r->lg.nprocs; k++) {
            if (atomic_load_explicit(&r->lg.stats[k].done,
                                     memory_order_acquire) != seq) {
                break;
            }
        }
        if (k == r->lg.nprocs) {
            return 0;
        }
        if (!clients_alive(r)) {
            return -1;
        }
        sleep_ms(1);
    }
}

/* Stops the clients: each resets its sockets and exits. */
static void
stop_clients(struct run *r)
{
    if (r->pids == NULL || r->lg.ctl == NULL) {
        return;
    }
    command(r, LG_CMD_EXIT);
    for (uint32_t k = 0; k < r->lg.nprocs; k++) {
        if (r->pids[k] > 0) {
            waitpid(r->pids[k], NULL, 0);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Connect                                                              */

static void
add_totals(struct run *r)
{
    struct totals *t = &r->t;

    memset(t, 0, sizeof(*t));
    for (uint32_t k = 0; k < r->lg.nprocs; k++) {
        const struct lg_stats *st = &r->lg.stats[k];

        t->opened += st->opened;
        t->failed += st->failed;
        t->dropped += st->dropped;
        for (int f = 0; f < LG_FR_COUNT; f++) {
            t->fails[f] += st->fails[f];
        }
        t->snapshot_bad += st->snapshot_bad;
        t->stray += st->stray;
        t->errors_rcvd += st->errors_rcvd;
        t->pongs += st->pongs;
        t->pong_drops += st->pong_drops;
        if (k == 0 || st->hs_start_ns < t->hs_start_ns) {
            t->hs_start_ns = st->hs_start_ns;
        }
        if (st->hs_end_ns > t->hs_end_ns) {
            t->hs_end_ns = st->hs_end_ns;
        }
        if (st->last_status != 0 && st->last_status != 101) {
            t->last_status = st->last_status;
        } else if (t->last_status == 0) {
            t->last_status = st->last_status;
        }
        if (st->last_close[0] != '\0') {
            memcpy(t->last_close, st->last_close, sizeof(t->last_close));
        }
    }
}

/* Handshake latency percentiles of the connections that opened. */
static void
handshake_latency(struct run *r)
{
    uint32_t *v = malloc((r->t.opened + 1) * sizeof(*v));
    size_t n = 0;

    if (v == NULL) {
        return;
    }
    for (uint32_t i = 0; i < r->lg.o.conns; i++) {
        if (r->lg.conns[i].state == LG_CS_OPEN && n < r->t.opened) {
            v[n++] = r->lg.hs_us[i];
        }
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_u32);
        r->hs_p50 = v[rank(n, 0.50)] / 1000.0;
        r->hs_p99 = v[rank(n, 0.99)] / 1000.0;
    }
    free(v);
}

static int
connect_all(struct run *r)
{
    memcpy(r->lg.ev_base, r->ev_seats,
           r->lg.o.nevents * sizeof(*r->lg.ev_base));
    if (wait_done(r, command(r, LG_CMD_CONNECT)) != 0) {
        return -1;
    }
    add_totals(r);
    handshake_latency(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Phases                                                               */

/* Bookings of event ei among the first `upto` of the phase. */
static uint32_t
ev_due(const struct lg *lg, uint32_t ei, uint32_t upto)
{
    uint32_t n;

    if (lg->ev_count[ei] == 0 || lg->ev_first[ei] >= upto) {
        return 0;
    }
    n = (upto - 1 - lg->ev_first[ei]) / lg->o.nevents + 1;
    return n < lg->ev_count[ei] ? n : lg->ev_count[ei];
}

/* Which event each booking of the phase goes to (round robin over the
 * whole run) and the seats before it. */
static void
phase_plan(struct run *r, struct phase *ph)
{
    struct lg *lg = &r->lg;
    uint32_t m = lg->o.nevents;

    memset(lg->ev_count, 0, m * sizeof(*lg->ev_count));
    for (uint32_t p = 0; p < ph->count; p++) {
        uint32_t ei = (uint32_t)((r->booked + p) % m);

        if (lg->ev_count[ei]++ == 0) {
            lg->ev_first[ei] = p;
        }
    }
    memcpy(lg->ev_base, r->ev_seats, m * sizeof(*lg->ev_base));
}

/* Seat_updates due to the connections checked in the phase. */
static void
phase_expected(struct run *r, struct phase *ph)
{
    const struct lg *lg = &r->lg;

    ph->conns = 0;
    ph->expected = 0;
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        if ((lg->conns[i].flags & LG_CF_PHASE) != 0) {
            ph->conns++;
            ph->expected += ev_due(lg, i % lg->o.nevents, ph->committed);
        }
    }
}

/* Sum of one progress counter over the clients. */
#define PROG_SUM(r, field)                                                     \
    ({                                                                         \
        uint64_t sum_ = 0;                                                     \
        for (uint32_t k_ = 0; k_ < (r)->lg.nprocs; k_++) {                     \
            sum_ += atomic_load_explicit(&(r)->lg.stats[k_].field,            \
                                         memory_order_relaxed);                \
        }                                                                      \
        sum_;                                                                  \
    })

/*
 * Waits until done(r, arg) holds, or no client frame came for
 * --drain-timeout; -1 if a client died.  Shared by the phases and the
 * onsale, which differ only in what "everything arrived" means.
 */
static int
drain(struct run *r, bool (*done)(struct run *, void *), void *arg)
{
    uint64_t last_frames = UINT64_MAX;
    int64_t quiet_since = mono_ns();

    for (;;) {
        uint64_t frames = PROG_SUM(r, prog_frames);
        int64_t now = mono_ns();

        if (done(r, arg)) {
            return 0;
        }
        if (frames != last_frames) {
            last_frames = frames;
            quiet_since = now;
        } else if (now - quiet_since > (int64_t)(r->lg.o.drain_timeout * 1e9)) {
            return 0;
        }
        if (!clients_alive(r)) {
            return -1;
        }
        sleep_ms(1);
    }
}

/* Every checked connection has every committed booking's two messages. */
static bool
phase_done(struct run *r, void *arg)
{
    const struct phase *ph = arg;

    return PROG_SUM(r, prog_updates) >= ph->expected &&
           PROG_SUM(r, prog_created) >= ph->expected;
}

static int
phase_drain(struct run *r, struct phase *ph)
{
    return drain(r, phase_done, ph);
}

/* Adds up the clients' phase figures. */
static void
phase_add(struct run *r, struct phase *ph)
{
    for (uint32_t k = 0; k < r->lg.nprocs; k++) {
        const struct lg_stats *st = &r->lg.stats[k];

        ph->frames += st->frames;
        ph->updates += st->updates;
        ph->created += st->created;
        ph->dups += st->dups;
        ph->reordered += st->reordered;
        ph->unexpected += st->unexpected;
        ph->client_cpu_s += st->cpu_s;
        if (st->last_ns > ph->last_ns) {
            ph->last_ns = st->last_ns;
        }
    }
    ph->lost_created =
        ph->expected > ph->created ? ph->expected - ph->created : 0;
}

/* Loss per connection, against the bookings really committed. */
static void
phase_loss(struct run *r, struct phase *ph)
{
    const struct lg *lg = &r->lg;

    for (uint32_t i = 0; i < lg->o.conns; i++) {
        const struct lg_conn *c = &lg->conns[i];
        uint32_t due, got;

        if ((c->flags & LG_CF_PHASE) == 0) {
            continue;
        }
        due = ev_due(lg, i % lg->o.nevents, ph->committed);
        got = (uint32_t)__builtin_popcountll(c->seen);
        ph->lost += due > got ? due - got : 0;
        if (due > 0 && (c->seen & (1ULL << (due - 1))) == 0) {
            ph->lost_final++; /* the client ends on a wrong count */
        }
    }
}

/* Commit-to-receive percentiles over every delivery of the phase. */
static void
phase_latency(struct run *r, struct phase *ph)
{
    const struct lg *lg = &r->lg;
    int32_t *lat = malloc((ph->updates + 1) * sizeof(*lat));
    size_t n = 0;

    if (lat == NULL) {
        return;
    }
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        const struct lg_conn *c = &lg->conns[i];
        uint32_t ei = i % lg->o.nevents;

        if ((c->flags & LG_CF_PHASE) == 0) {
            continue;
        }
        for (uint64_t bits = c->seen; bits != 0 && n < ph->updates;
             bits &= bits - 1) {
            unsigned j = (unsigned)__builtin_ctzll(bits);
            uint32_t p = lg->ev_first[ei] + j * lg->o.nevents;
            int64_t d =
                (int64_t)lg->lat_us[(size_t)i * LG_PHASE_MAX + j] * 1000 -
                ph->commit_ns[p];

            ph->negative += d < 0;
            lat[n++] = (int32_t)(d / 1000);
        }
    }
    if (n > 0) {
        qsort(lat, n, sizeof(*lat), cmp_i32);
        ph->lat_ms[0] = lat[rank(n, 0.50)] / 1000.0;
        ph->lat_ms[1] = lat[rank(n, 0.90)] / 1000.0;
        ph->lat_ms[2] = lat[rank(n, 0.99)] / 1000.0;
        ph->lat_ms[3] = lat[n - 1] / 1000.0;
    }
    free(lat);
}

/* Commits the phase's bookings; the clients count deliveries meanwhile. */
static void
phase_book(struct run *r, struct phase *ph)
{
    struct lg_book b = {.pg = r->pg,
                        .first_event = r->lg.o.first_event,
                        .nevents = r->lg.o.nevents,
                        .first_booking = r->booked,
                        .count = ph->count,
                        .rate = ph->rate,
                        .origin_ns = ph->origin_ns,
                        .commit_ns = ph->commit_ns};

    ph->committed = lg_book_run(&b);
    memcpy(ph->err, b.err, sizeof(ph->err));
    if (ph->err[0] != '\0') {
        fprintf(stderr, "loadgen: %s: %s", ph->name, ph->err);
    }
}

/* Runs one phase of `count` bookings at `rate` (0: at once); 0, or -1 if
 * it could not run. */
static int
run_phase(struct run *r, struct phase *ph, const char *name, uint32_t count,
          double rate)
{
    struct lg_proc_sample s0, s1;

    memset(ph, 0, sizeof(*ph));
    ph->name = name;
    ph->count = count;
    ph->rate = rate;
    phase_plan(r, ph);
    r->lg.ctl->phase_origin_ns = ph->origin_ns = mono_ns();
    if (wait_done(r, command(r, LG_CMD_BEGIN)) != 0 ||
        lg_proc_sample(r->lg.o.server_pid, &s0) != 0) {
        return -1;
    }
    ph->committed = count; /* what is due if all commit */
    phase_expected(r, ph);
    fprintf(stderr, "loadgen: %s: %u bookings to %u connections\n", name, count,
            ph->conns);
    phase_book(r, ph);
    phase_expected(r, ph);
    if (phase_drain(r, ph) != 0 || wait_done(r, command(r, LG_CMD_END)) != 0) {
        return -1;
    }
    if (lg_proc_sample(r->lg.o.server_pid, &s1) == 0) {
        ph->cpu_ticks = s1.cpu_ticks - s0.cpu_ticks;
        ph->run_ns = s1.run_ns - s0.run_ns;
    }
    phase_add(r, ph);
    phase_loss(r, ph);
    phase_latency(r, ph);
    for (uint32_t ei = 0; ei < r->lg.o.nevents; ei++) {
        r->ev_seats[ei] -= ev_due(&r->lg, ei, ph->committed);
    }
    memcpy(r->lg.ev_base, r->ev_seats,
           r->lg.o.nevents * sizeof(*r->lg.ev_base));
    r->booked += ph->committed;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Onsale                                                               */

/* Every subscriber's seat_update shows the last booking and the
 * "bookings" fields add up. */
static bool
onsale_done(struct run *r, void *arg)
{
    const struct onsale *os = arg;

    return os->committed == os->count &&
           PROG_SUM(r, prog_final) >= os->conns &&
           PROG_SUM(r, prog_bookings) >= (uint64_t)os->conns * os->committed;
}

static int
onsale_drain(struct run *r, struct onsale *os)
{
    return drain(r, onsale_done, os);
}

/* Adds up the clients' onsale figures. */
static void
onsale_add(struct run *r, struct onsale *os)
{
    for (uint32_t k = 0; k < r->lg.nprocs; k++) {
        const struct lg_stats *st = &r->lg.stats[k];

        const struct lg_onsale_tally *c = &st->os;

        os->tally.frames += c->frames;
        os->tally.updates += c->updates;
        os->tally.created += c->created;
        os->tally.cancelled += c->cancelled;
        os->tally.final += c->final;
        os->tally.older += c->older;
        os->tally.bookings += c->bookings;
        os->tally.bookings_bad += c->bookings_bad;
        os->tally.step_bad += c->step_bad;
        os->unexpected += st->unexpected;
        os->client_cpu_s += st->cpu_s;
        if (st->last_ns > os->last_ns) {
            os->last_ns = st->last_ns;
        }
    }
}

/* Value at nearest rank q (0..1) of the histogram: the upper edge of its
 * bucket, in ms, no more than the exact max. */
static double
hist_rank(const uint64_t *hist, uint64_t total, double q, double max_ms)
{
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    double ms = max_ms;

    if (want == 0) {
        want = 1;
    }
    for (size_t b = 0; b < FRESH_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= want) {
            ms = (double)(b + 1) * FRESH_BUCKET_NS / 1e6;
            break;
        }
    }
    return ms < max_ms ? ms : max_ms;
}

/* One booking's freshness over the subscribers that saw it. */
struct fresh_of_booking {
    double sum_ms;
    int64_t max_ns;
    uint32_t seen;
};

/*
 * --onsale-dump: per booking, a line "index commit_ms mean_ms max_ms": its
 * commit (ms since the phase began) and its freshness over the
 * subscribers that saw it (per[], gathered by onsale_freshness()), to see
 * when in the onsale the late ones fall.
 */
static void
onsale_dump(const char *path, const struct onsale *os,
            const struct fresh_of_booking *per)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "loadgen: --onsale-dump: %s: %s\n", path,
                strerror(errno));
        return;
    }
    for (uint32_t b = 0; b < os->committed; b++) {
        fprintf(f, "%u %.3f %.1f %.1f\n", b, (double)os->commit_ns[b] / 1e6,
                per[b].seen > 0 ? per[b].sum_ms / per[b].seen : 0,
                (double)per[b].max_ns / 1e6);
    }
    fclose(f);
}

/* Per connection: final count, "bookings" sum; per (connection, booking)
 * covered: freshness = cover time - commit time, into a histogram. */
static void
onsale_freshness(struct run *r, struct onsale *os)
{
    const struct lg *lg = &r->lg;
    uint64_t *hist = calloc(FRESH_BUCKETS, sizeof(*hist));
    int64_t final_idx = os->final_seats >= 0 ? os->base - 1 - os->final_seats
                                             : (int64_t)os->committed - 1;
    struct fresh_of_booking *per = NULL; /* --onsale-dump only */
    int64_t max_ns = 0;
    double sum_ms = 0;

    if (lg->o.onsale_dump != NULL && os->committed > 0) {
        per = calloc(os->committed, sizeof(*per));
    }
    if (hist == NULL) {
        free(per);
        return;
    }
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        const struct lg_onsale_conn *o = &lg->os[i];
        uint32_t *cover = lg->cover_us + (size_t)i * lg->o.onsale_bookings;
        int64_t hi = o->hi < (int32_t)os->committed ? o->hi
                                                     : (int64_t)os->committed - 1;

        if ((lg->conns[i].flags & LG_CF_PHASE) == 0) {
            continue;
        }
        os->final_ok += o->upd == final_idx;
        os->sum_ok += o->bookings == os->committed;
        os->pairs += os->committed;
        lg_onsale_fill(cover, o->hi);
        for (int64_t b = 0; b <= hi; b++) {
            int64_t d = (int64_t)cover[b] * 1000 - os->commit_ns[b];
            size_t bucket;

            if (d < 0) {
                os->negative++;
                d = 0;
            }
            bucket = (size_t)(d / FRESH_BUCKET_NS);
            hist[bucket < FRESH_BUCKETS ? bucket : FRESH_BUCKETS - 1]++;
            max_ns = d > max_ns ? d : max_ns;
            sum_ms += (double)d / 1e6;
            os->covered++;
            if (per != NULL) {
                per[b].sum_ms += (double)d / 1e6;
                per[b].max_ns = d > per[b].max_ns ? d : per[b].max_ns;
                per[b].seen++;
            }
        }
    }
    if (per != NULL) {
        onsale_dump(lg->o.onsale_dump, os, per);
        free(per);
    }
    if (os->covered > 0) {
        static const double q[4] = {0.50, 0.90, 0.99, 0.999};

        os->fresh_ms[4] = (double)max_ns / 1e6;
        for (int k = 0; k < 4; k++) {
            os->fresh_ms[k] = hist_rank(hist, os->covered, q[k], os->fresh_ms[4]);
        }
        os->fresh_mean_ms = sum_ms / (double)os->covered;
    }
    free(hist);
}

/* The database's seats of the (only) event after the phase, or -1. */
static int64_t
onsale_db_seats(struct run *r)
{
    int64_t mine = r->ev_seats[0], db;

    if (read_seats(r) != 0) {
        r->ev_seats[0] = mine;
        return -1;
    }
    db = r->ev_seats[0];
    r->ev_seats[0] = mine;
    return db;
}

/* The onsale: one phase of K bookings on the event at --onsale-rate;
 * 0, or -1 if it could not run. */
static int
run_onsale(struct run *r)
{
    struct onsale *os = &r->os;
    struct lg *lg = &r->lg;
    struct lg_proc_sample s0, s1;
    uint32_t dropped0 = r->t.dropped;
    struct lg_book b = {.pg = r->pg,
                        .first_event = lg->o.first_event,
                        .nevents = 1,
                        .first_booking = r->booked,
                        .autocommit = true};

    os->count = lg->o.onsale_bookings;
    os->rate = lg->o.onsale_rate;
    os->final_seats = -1;
    os->commit_ns = calloc(os->count, sizeof(*os->commit_ns));
    if (os->commit_ns == NULL) {
        return -1;
    }
    lg->ev_count[0] = os->count;
    lg->ev_first[0] = 0;
    lg->ev_base[0] = os->base = r->ev_seats[0];
    lg->ctl->phase_origin_ns = os->origin_ns = mono_ns();
    if (wait_done(r, command(r, LG_CMD_BEGIN)) != 0 ||
        lg_proc_sample(lg->o.server_pid, &s0) != 0) {
        return -1;
    }
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        os->conns += (lg->conns[i].flags & LG_CF_PHASE) != 0;
    }
    fprintf(stderr, "loadgen: onsale: %u bookings at %g/s to %u connections\n",
            os->count, os->rate, os->conns);
    b.count = os->count;
    b.rate = os->rate;
    b.origin_ns = os->origin_ns;
    b.commit_ns = os->commit_ns;
    os->committed = lg_book_run(&b);
    memcpy(os->err, b.err, sizeof(os->err));
    if (os->err[0] != '\0') {
        fprintf(stderr, "loadgen: onsale: %s", os->err);
    }
    if (onsale_drain(r, os) != 0 || wait_done(r, command(r, LG_CMD_END)) != 0) {
        return -1;
    }
    if (lg_proc_sample(lg->o.server_pid, &s1) == 0) {
        os->cpu_ticks = s1.cpu_ticks - s0.cpu_ticks;
        os->run_ns = s1.run_ns - s0.run_ns;
    }
    add_totals(r);
    os->dropped = r->t.dropped - dropped0;
    os->final_seats = onsale_db_seats(r);
    onsale_add(r, os);
    onsale_freshness(r, os);
    r->ev_seats[0] -= os->committed;
    r->booked += os->committed;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Report                                                               */

/* A JSON string without the characters that would need escapes. */
static void
put_json_text(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s >= 0x20 && *s != '"' && *s != '\\') {
            fputc(*s, out);
        }
    }
    fputc('"', out);
}

static void
print_phase(const struct phase *ph, FILE *out)
{
    /* deliveries: from the first COMMIT returned to the last frame read */
    int64_t span = ph->last_ns - ph->origin_ns - ph->commit_ns[0];
    double secs = ph->committed > 0 && span > 0 ? (double)span / 1e9 : 0;
    double cpu_ns = (double)ph->cpu_ticks * (double)lg_proc_tick_ns();

    fprintf(out,
            "\"%s\":{\"bookings\":%u,\"committed\":%u,\"rate\":%.3f,"
            "\"connections\":%u,\"expected_updates\":%" PRIu64 ","
            "\"seat_updates\":%" PRIu64 ",\"booking_created\":%" PRIu64 ","
            "\"messages\":%" PRIu64 ",\"seconds\":%.6f,"
            "\"messages_per_sec\":%.0f,\"updates_per_sec\":%.0f,",
            ph->name, ph->count, ph->committed, ph->rate, ph->conns,
            ph->expected, ph->updates, ph->created, ph->frames, secs,
            secs > 0 ? (double)ph->frames / secs : 0,
            secs > 0 ? (double)ph->updates / secs : 0);
    fprintf(out,
            "\"commit_seconds\":%.6f,"
            "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
            "\"max\":%.3f},\"negative_latencies\":%" PRIu64 ","
            "\"server_cpu_ms\":%.1f,\"cpu_ns_per_message\":%.1f,"
            "\"cpu_ns_per_update\":%.1f,\"server_schedstat_ms\":%.3f,"
            "\"schedstat_ns_per_message\":%.1f,\"client_cpu_ms\":%.1f,",
            ph->committed > 0 ? (double)ph->commit_ns[ph->committed - 1] / 1e9
                              : 0,
            ph->lat_ms[0], ph->lat_ms[1], ph->lat_ms[2], ph->lat_ms[3],
            ph->negative, cpu_ns / 1e6,
            ph->frames > 0 ? cpu_ns / (double)ph->frames : 0,
            ph->updates > 0 ? cpu_ns / (double)ph->updates : 0,
            (double)ph->run_ns / 1e6,
            ph->frames > 0 ? (double)ph->run_ns / (double)ph->frames : 0,
            ph->client_cpu_s * 1e3);
    fprintf(out,
            "\"lost\":%" PRIu64 ",\"lost_final\":%" PRIu64 ","
            "\"lost_created\":%" PRIu64 ",\"duplicates\":%" PRIu64 ","
            "\"reordered\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"error\":",
            ph->lost, ph->lost_final, ph->lost_created, ph->dups, ph->reordered,
            ph->unexpected);
    put_json_text(out, ph->err);
    fputc('}', out);
}

static void
print_connect(const struct run *r, FILE *out)
{
    const struct totals *t = &r->t;
    double hs_s = (double)(t->hs_end_ns - t->hs_start_ns) / 1e9;
    double per_conn = t->opened > 0
                          ? ((double)r->m1.pss_kib - (double)r->m0.pss_kib) *
                                1024.0 / t->opened
                          : 0;

    fprintf(out,
            "{\"n\":%u,\"events\":%u,\"window\":%u,\"client_procs\":%u,"
            "\"source_addresses\":%u,\"opened\":%u,\"failed\":%u,"
            "\"fail_reasons\":{",
            r->lg.o.conns, r->lg.o.nevents, r->lg.o.window, r->lg.nprocs,
            r->lg.per_source > 0
                ? (r->lg.o.conns + r->lg.per_source - 1) / r->lg.per_source
                : 0,
            t->opened, t->failed);
    for (int f = 0; f < LG_FR_COUNT; f++) {
        fprintf(out, "%s\"%s\":%" PRIu64, f ? "," : "", fail_names[f],
                t->fails[f]);
    }
    fprintf(out,
            "},\"last_http_status\":%d,"
            "\"handshake\":{\"seconds\":%.3f,\"per_sec\":%.0f,"
            "\"p50_ms\":%.3f,\"p99_ms\":%.3f},"
            "\"memory\":{\"server_procs\":%u,\"pss_before_kib\":%" PRIu64
            ",\"pss_after_kib\":%" PRIu64 ",\"bytes_per_conn\":%.0f},",
            t->last_status, hs_s, hs_s > 0 ? t->opened / hs_s : 0, r->hs_p50,
            r->hs_p99, r->m1.nprocs, r->m0.pss_kib, r->m1.pss_kib, per_conn);
}

static void
print_onsale(const struct onsale *os, FILE *out)
{
    /* from the first COMMIT to the last: the clients' setup before the
     * first is not the database's pace */
    double commit_s = os->committed > 0
                          ? (double)(os->commit_ns[os->committed - 1] -
                                     os->commit_ns[0]) / 1e9
                          : 0;
    int64_t span = os->committed > 0 ? os->last_ns - os->origin_ns : 0;
    double cpu_ns = (double)os->cpu_ticks * (double)lg_proc_tick_ns();

    fprintf(out,
            "\"onsale\":{\"bookings\":%u,\"committed\":%u,\"rate\":%.3f,"
            "\"commit_seconds\":%.6f,\"commit_rate\":%.1f,"
            "\"connections\":%u,\"dropped\":%u,"
            "\"seats_before\":%" PRId64 ",\"final_seats\":%" PRId64 ","
            "\"final_count_subscribers\":%u,",
            os->count, os->committed, os->rate, commit_s,
            commit_s > 0 ? (os->committed - 1) / commit_s : 0, os->conns,
            os->dropped, os->base, os->final_seats, os->final_ok);
    fprintf(out,
            "\"bookings_sum\":%" PRIu64 ",\"bookings_expected\":%" PRIu64
            ",\"bookings_sum_subscribers\":%u,\"bookings_field_bad\":%" PRIu64
            ",\"bookings_step_bad\":%" PRIu64 ",\"older_after_newer\":%" PRIu64
            ",\"pairs\":%" PRIu64 ",\"covered\":%" PRIu64
            ",\"missing\":%" PRIu64 ",",
            os->tally.bookings, (uint64_t)os->conns * os->committed, os->sum_ok,
            os->tally.bookings_bad, os->tally.step_bad, os->tally.older,
            os->pairs, os->covered,
            os->pairs - os->covered);
    fprintf(out,
            "\"freshness_ms\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
            "\"p999\":%.1f,\"max\":%.3f,\"mean\":%.1f},"
            "\"negative_freshness\":%" PRIu64 ",",
            os->fresh_ms[0], os->fresh_ms[1], os->fresh_ms[2], os->fresh_ms[3],
            os->fresh_ms[4], os->fresh_mean_ms, os->negative);
    fprintf(out,
            "\"messages\":%" PRIu64 ",\"seat_updates\":%" PRIu64
            ",\"booking_created\":%" PRIu64 ",\"booking_cancelled\":%" PRIu64
            ",\"unexpected\":%" PRIu64 ",\"seconds\":%.6f,"
            "\"server_cpu_ms\":%.1f,\"server_schedstat_ms\":%.3f,"
            "\"client_cpu_ms\":%.1f,\"error\":",
            os->tally.frames, os->tally.updates, os->tally.created,
            os->tally.cancelled, os->unexpected,
            span > 0 ? (double)span / 1e9 : 0, cpu_ns / 1e6,
            (double)os->run_ns / 1e6, os->client_cpu_s * 1e3);
    put_json_text(out, os->err);
    fputc('}', out);
}

static void
print_report(const struct run *r, FILE *out)
{
    const struct totals *t = &r->t;

    print_connect(r, out);
    if (r->lg.o.onsale_bookings > 0) {
        print_onsale(&r->os, out);
    } else {
        print_phase(&r->burst, out);
        fputc(',', out);
        print_phase(&r->paced, out);
    }
    fprintf(out,
            ",\"dropped\":%u,\"snapshot_bad\":%" PRIu64 ",\"stray\":%" PRIu64
            ",\"errors_received\":%" PRIu64 ",\"pongs\":%" PRIu64
            ",\"pong_drops\":%" PRIu64 ",\"db_consistent\":%s,"
            "\"last_close\":",
            t->dropped, t->snapshot_bad, t->stray, t->errors_rcvd, t->pongs,
            t->pong_drops, r->db_ok ? "true" : "false");
    put_json_text(out, t->last_close);
    fputs("}\n", out);
    fflush(out);
}

/* ------------------------------------------------------------------ */
/* Setup                                                                */

static void
usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P --token-file F --database CONNINFO "
            "--server-pid PID\n"
            "               [--host 127.0.0.1] [--conns 1000] "
            "[--window 256]\n"
            "               [--procs K] [--per-source C] [--events 1] "
            "[--first-event 1]\n"
            "               [--burst 50] [--paced-rate 2] "
            "[--paced-seconds 5]\n"
            "               [--settle 1] [--handshake-timeout 10] "
            "[--drain-timeout 5]\n"
            "               [--onsale-bookings K [--onsale-rate R] "
            "[--onsale-dump FILE]]\n"
            "               [--read-pause-us 0]\n"
            "               (one event; no burst, no paced)\n"
            "       loadgen --self-test\n");
    exit(2);
}

static double
num_arg(const char *name, const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);

    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "loadgen: --%s: expected a number in [%g, %g]\n", name,
                lo, hi);
        exit(2);
    }
    return v;
}

static void
parse_opts(struct lg_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"token-file", required_argument, NULL, 't'},
        {"database", required_argument, NULL, 'd'},
        {"server-pid", required_argument, NULL, 's'},
        {"conns", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'w'},
        {"procs", required_argument, NULL, 'P'},
        {"per-source", required_argument, NULL, 'A'},
        {"events", required_argument, NULL, 'e'},
        {"first-event", required_argument, NULL, 'f'},
        {"burst", required_argument, NULL, 'b'},
        {"paced-rate", required_argument, NULL, 'r'},
        {"paced-seconds", required_argument, NULL, 'R'},
        {"settle", required_argument, NULL, 'z'},
        {"handshake-timeout", required_argument, NULL, 'H'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"onsale-bookings", required_argument, NULL, 'K'},
        {"onsale-rate", required_argument, NULL, 'O'},
        {"onsale-dump", required_argument, NULL, 'U'},
        {"read-pause-us", required_argument, NULL, 'Q'},
        {"self-test", no_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    int c;

    *o = (struct lg_opts){.host = "127.0.0.1",
                          .conns = 1000,
                          .window = 256,
                          .nevents = 1,
                          .first_event = 1,
                          .burst = 50,
                          .paced_rate = 2,
                          .paced_seconds = 5,
                          .settle = 1,
                          .hs_timeout = 10,
                          .drain_timeout = 5};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->port = (uint16_t)num_arg("port", optarg, 1, 65535);
            break;
        case 't':
            o->token_file = optarg;
            break;
        case 'd':
            o->database = optarg;
            break;
        case 's':
            o->server_pid = (pid_t)num_arg("server-pid", optarg, 1, 4194304);
            break;
        case 'n':
            o->conns = (uint32_t)num_arg("conns", optarg, 1, 4000000);
            break;
        case 'w':
            o->window = (uint32_t)num_arg("window", optarg, 1, 100000);
            break;
        case 'P':
            o->procs = (uint32_t)num_arg("procs", optarg, 0, 250);
            break;
        case 'A':
            o->per_source = (uint32_t)num_arg("per-source", optarg, 0, 60000);
            break;
        case 'e':
            o->nevents = (uint32_t)num_arg("events", optarg, 1, 1000000);
            break;
        case 'f':
            o->first_event = (int64_t)num_arg("first-event", optarg, 1, 1e15);
            break;
        case 'b':
            o->burst = (uint32_t)num_arg("burst", optarg, 0, LG_PHASE_MAX);
            break;
        case 'r':
            o->paced_rate = num_arg("paced-rate", optarg, 0.1, 1000);
            break;
        case 'R':
            o->paced_seconds = num_arg("paced-seconds", optarg, 0, 3600);
            break;
        case 'z':
            o->settle = num_arg("settle", optarg, 0, 3600);
            break;
        case 'H':
            o->hs_timeout = num_arg("handshake-timeout", optarg, 0.1, 3600);
            break;
        case 'D':
            o->drain_timeout = num_arg("drain-timeout", optarg, 0.1, 3600);
            break;
        case 'K':
            o->onsale_bookings =
                (uint32_t)num_arg("onsale-bookings", optarg, 0, 1000000);
            break;
        case 'O':
            o->onsale_rate = num_arg("onsale-rate", optarg, 0, 100000);
            break;
        case 'U':
            o->onsale_dump = optarg;
            break;
        case 'Q':
            o->read_pause_us =
                (uint32_t)num_arg("read-pause-us", optarg, 0, 100000);
            break;
        case 'T':
            exit(lg_selftest() == 0 ? 0 : 1);
        default:
            usage();
        }
    }
    if (optind != argc || o->port == 0 || o->token_file == NULL ||
        o->database == NULL || o->server_pid == 0) {
        usage();
    }
    if (o->onsale_bookings > 0 && o->nevents != 1) {
        fprintf(stderr, "loadgen: an onsale is on one event (--events 1)\n");
        exit(2);
    }
    if (o->paced_rate * o->paced_seconds > LG_PHASE_MAX) {
        fprintf(stderr, "loadgen: at most %d paced bookings\n", LG_PHASE_MAX);
        exit(2);
    }
}

/* Reads the token (one line) from the file the driver wrote. */
static char *
read_token(const char *path)
{
    char buf[4096];
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "loadgen: could not open \"%s\": %s\n", path,
                strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n \t")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, "loadgen: \"%s\" holds no token\n", path);
        return NULL;
    }
    return strdup(buf);
}

/* Seats of events first_event.. into ev_seats; -1 if one is missing. */
static int
read_seats(struct run *r)
{
    char sql[160];
    PGresult *res;
    int rc = 0;

    snprintf(sql, sizeof(sql),
             "SELECT id, available_seats FROM events WHERE id BETWEEN "
             "%" PRId64 " AND %" PRId64 " ORDER BY id",
             r->lg.o.first_event,
             r->lg.o.first_event + (int64_t)r->lg.o.nevents - 1);
    res = PQexec(r->pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK ||
        PQntuples(res) != (int)r->lg.o.nevents) {
        fprintf(stderr, "loadgen: events %" PRId64 "..+%u not all found: %s",
                r->lg.o.first_event, r->lg.o.nevents, PQerrorMessage(r->pg));
        rc = -1;
    }
    for (int k = 0; rc == 0 && k < PQntuples(res); k++) {
        r->ev_seats[k] = strtoll(PQgetvalue(res, k, 1), NULL, 10);
    }
    PQclear(res);
    return rc;
}

static int
pg_setup(struct run *r)
{
    r->pg = PQconnectdb(r->lg.o.database);
    if (PQstatus(r->pg) != CONNECTION_OK) {
        fprintf(stderr, "loadgen: could not connect to the database: %s",
                PQerrorMessage(r->pg));
        return -1;
    }
    if (lg_book_prepare(r->pg) != 0 || read_seats(r) != 0) {
        return -1;
    }
    return 0;
}

/* True if the database agrees with the seats the loadgen expects. */
static bool
db_consistent(struct run *r)
{
    int64_t *mine = malloc(r->lg.o.nevents * sizeof(*mine));
    bool ok;

    if (mine == NULL) {
        return false;
    }
    memcpy(mine, r->ev_seats, r->lg.o.nevents * sizeof(*mine));
    ok = read_seats(r) == 0 &&
         memcmp(mine, r->ev_seats, r->lg.o.nevents * sizeof(*mine)) == 0;
    free(mine);
    return ok;
}

static int
run_init(struct run *r)
{
    struct lg *lg = &r->lg;

    lg->origin_ns = mono_ns();
    lg->token = read_token(lg->o.token_file);
    if (lg->token == NULL) {
        return -1;
    }
    lg->dst.sin_family = AF_INET;
    lg->dst.sin_port = htons(lg->o.port);
    if (inet_pton(AF_INET, lg->o.host, &lg->dst.sin_addr) != 1) {
        fprintf(stderr, "loadgen: --host: not an IPv4 address\n");
        return -1;
    }
    lg->nprocs = lg->o.procs > 0 ? lg->o.procs : clients_needed(lg->o.conns);
    if (lg->nprocs > lg->o.conns) {
        lg->nprocs = lg->o.conns;
    }
    lg->per_source =
        lg->o.per_source > 0 ? lg->o.per_source : per_source(lg->o.conns);
    r->pids = calloc(lg->nprocs, sizeof(*r->pids));
    r->ev_seats = calloc(lg->o.nevents, sizeof(*r->ev_seats));
    if (r->pids == NULL || r->ev_seats == NULL || map_shared(lg) != 0) {
        return -1;
    }
    if (fork_clients(r) != 0) {
        return -1;
    }
    /* after fork: the clients need not share the database connection */
    return pg_setup(r);
}

/* Releases what run_init() made, in reverse order. */
static void
run_fini(struct run *r)
{
    PQfinish(r->pg);
    stop_clients(r);
    unmap_shared(&r->lg);
    free(r->os.commit_ns);
    free(r->ev_seats);
    free(r->pids);
    free(r->lg.token);
}

static int
run_all(struct run *r)
{
    uint32_t paced =
        (uint32_t)(r->lg.o.paced_rate * r->lg.o.paced_seconds + 0.5);

    if (lg_proc_sample(r->lg.o.server_pid, &r->m0) != 0) {
        return -1;
    }
    fprintf(stderr,
            "loadgen: opening %u connections (%u client "
            "processes)\n",
            r->lg.o.conns, r->lg.nprocs);
    if (connect_all(r) != 0) {
        return -1;
    }
    fprintf(stderr, "loadgen: %u open, %u failed in %.2f s\n", r->t.opened,
            r->t.failed, (double)(r->t.hs_end_ns - r->t.hs_start_ns) / 1e9);
    sleep_ms((int)(r->lg.o.settle * 1000));
    if (!clients_alive(r) || lg_proc_sample(r->lg.o.server_pid, &r->m1) != 0) {
        return -1;
    }
    if (r->lg.o.onsale_bookings > 0) {
        if (run_onsale(r) != 0) {
            return -1;
        }
    } else if (run_phase(r, &r->burst, "burst", r->lg.o.burst, 0) != 0 ||
        run_phase(r, &r->paced, "paced", paced, r->lg.o.paced_rate) != 0) {
        return -1;
    }
    add_totals(r); /* again: drops, pongs, strays since the connect */
    r->db_ok = db_consistent(r);
    return 0;
}

int
main(int argc, char **argv)
{
    struct run r;
    int rc = 1;

    memset(&r, 0, sizeof(r));
    parse_opts(&r.lg.o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (run_init(&r) == 0 && run_all(&r) == 0) {
        print_report(&r, stdout);
        rc = 0;
    }
    run_fini(&r);
    return rc;
}
