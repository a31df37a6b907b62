/*
 * loadgen.c - seatcast's load generator (make bench; tests/bench/README)
 *
 * Opens N authenticated WebSocket connections to one seatcast server,
 * subscribes them (GET /ws/events/{id}), commits bookings through libpq and
 * checks that every subscriber sees exactly the committed sequence of
 * availableSeats.  Prints one JSON object on stdout (the driver, bench.py,
 * gathers them into results.json and the table).  It asserts nothing:
 * loss, duplicates and reordering are counted and reported.
 *
 * Phases:
 *   connect  N connections, at most --window of them in flight (from
 *            connect() to the snapshot seat_update), one token for all;
 *   idle     --settle seconds, then the server's Pss is read again;
 *   burst    --burst bookings committed as fast as one session can;
 *   paced    --paced-rate bookings per second for --paced-seconds.
 *
 * NOTES
 *
 * One thread runs every socket (epoll, level-triggered, non-blocking);
 * bookings run on a second thread (lg_book.c) only so that a commit time
 * is taken when PQexec("COMMIT") returns.  The machine has two cores and
 * seatcast's workers need them: one client thread leaves the server at
 * least one core, where a client process per source address would take
 * both from it.
 *
 * Per connection the state is struct lg_conn (32 bytes).  Reads go into
 * one buffer shared by all connections; the rare tail of an unfinished
 * frame (or response) is copied to a small heap carry until the next read.
 *
 * Each connection keeps a 64-bit map of the phase's bookings of its event
 * it has seen (so a phase has at most 64 bookings).  Booking j of the
 * event in the phase is recognised by its availableSeats, base - 1 - j, as
 * every booking takes one seat and the loadgen is the only writer:
 *   bit already set               duplicate
 *   a later booking already seen  reordered (counted on arrival)
 *   bit missing at phase end      lost
 *
 * Times are CLOCK_MONOTONIC everywhere (commit, receive, handshake).  A
 * receive time is taken once per read(), before the frames are parsed.
 *
 * Beyond ~28 000 connections to one address the ephemeral ports run out,
 * so connections are spread over source addresses 127.0.0.2, .3, ...,
 * bound with IP_BIND_ADDRESS_NO_PORT before connect().  At exit every
 * socket is closed with SO_LINGER 0 (RST) to leave no TIME_WAIT behind.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libpq-fe.h>

#include "lg_book.h"
#include "lg_proc.h"
#include "lg_selftest.h"
#include "lg_ws.h"

/* shared read buffer; a tiny one (-DLG_RBUF_SIZE=200) tests the carry */
#ifndef LG_RBUF_SIZE
#define LG_RBUF_SIZE (256 * 1024)
#endif
#define RBUF_SIZE LG_RBUF_SIZE
#define EPOLL_BATCH 1024
#define PHASE_MAX 64     /* bookings per phase: bits of lg_conn.seen */
#define PORT_MARGIN 2000 /* ephemeral ports left free per source */

/* ------------------------------------------------------------------ */
/* State                                                                */

enum conn_state {
    CS_CONNECTING, /* connect() in progress */
    CS_HANDSHAKE,  /* request sent, waiting for 101 */
    CS_HELLO,      /* upgraded, waiting for the snapshot seat_update */
    CS_OPEN,       /* subscribed and counted */
    CS_DEAD        /* failed or closed; fd closed */
};

enum fail_reason {
    FR_CONNECT, /* socket(), bind() or connect() failed */
    FR_HTTP,    /* no 101, or a bad accept value */
    FR_CLOSED,  /* close frame from the server */
    FR_EOF,     /* connection reset or closed without a close frame */
    FR_TIMEOUT, /* not subscribed within --handshake-timeout */
    FR_PROTO,   /* bad frame, bad JSON, messages out of order */
    FR_COUNT
};

static const char *const fail_names[FR_COUNT] = {
    "connect", "http", "closed", "eof", "timeout", "protocol"};

#define CF_PHASE 0x01 /* open when the phase began: its deliveries count */
#define CF_HELLO 0x02 /* connection_established received */

/* One client connection.  Connection i follows event first_event + i %
 * nevents, so the event is not stored. */
struct lg_conn {
    uint64_t seen;     /* bit j: this phase's j-th booking of the event */
    uint8_t *carry;    /* owned: unparsed bytes of the last read, or NULL */
    int32_t fd;        /* owned until CS_DEAD */
    uint32_t start_us; /* connect() time, us since lg.origin_ns */
    uint16_t carry_len;
    uint8_t state; /* enum conn_state */
    uint8_t flags; /* CF_* */
};

_Static_assert(sizeof(struct lg_conn) <= 32, "lg_conn over 32 bytes");

struct lg_opts {
    const char *host;
    const char *token_file;
    const char *database;
    uint32_t conns;
    uint32_t window;
    uint32_t sources; /* 0: auto */
    uint32_t nevents;
    int64_t first_event;
    pid_t server_pid;
    uint32_t burst;
    double paced_rate;
    double paced_seconds;
    double settle;
    double hs_timeout;
    double drain_timeout;
    uint16_t port;
};

/* A delivery of a booking's seat_update: p is the booking's index in the
 * phase, us the receive time since the phase origin. */
struct rec {
    uint32_t p;
    uint32_t us;
};

/* The phase being run, and its figures once finished. */
struct phase {
    const char *name;
    uint32_t count;     /* bookings asked */
    uint32_t committed; /* bookings committed */
    double rate;        /* per second, 0: as fast as possible */
    uint64_t first;     /* run-wide index of the first booking */
    int64_t origin_ns;  /* CLOCK_MONOTONIC origin of the phase */
    int64_t *commit_ns; /* [count] owned */
    uint32_t *ev_count; /* [nevents] owned: bookings per event */
    uint32_t *ev_first; /* [nevents] owned: p of the event's first one */
    int64_t *ev_base;   /* [nevents] owned: seats before the phase */
    struct rec *recs;   /* [expected] owned */
    uint64_t nrecs;
    uint32_t conns;    /* connections checked */
    uint64_t expected; /* seat_updates due to them */
    uint64_t updates;  /* distinct ones received */
    uint64_t created;  /* booking_created received */
    uint64_t frames;   /* phase messages received (both kinds) */
    uint64_t dups, reordered, unexpected, lost, lost_final, lost_created;
    int64_t last_ns;     /* receive time of the last phase message */
    uint64_t cpu_ticks;  /* server utime + stime over the phase */
    uint64_t run_ns;     /* the same from schedstat, in ns */
    double client_cpu_s; /* this process, both threads */
    double lat_ms[4];    /* p50 p90 p99 max, commit to receive */
    int64_t negative;    /* receives before COMMIT returned */
    char err[256];       /* booking error, "" if none */
};

struct lg {
    struct lg_opts o;
    char *token; /* owned */
    int ep;      /* owned epoll fd */
    int64_t origin_ns;
    struct lg_conn *conns; /* [o.conns] owned */
    uint8_t *rbuf;         /* [RBUF_SIZE] owned, shared by all reads */
    uint32_t *hs_us;       /* [o.conns] owned: handshake latencies */
    struct sockaddr_in dst;
    uint32_t sources; /* source addresses in use (0: kernel's) */
    uint32_t rand;    /* xorshift32 for masking keys */
    /* connect phase */
    uint32_t next, inflight, opened, failed, dropped, scan_from;
    uint64_t fails[FR_COUNT];
    int64_t hs_end_ns;
    uint64_t snapshot_bad, stray, errors_rcvd, pongs, pong_drops;
    int last_status;
    char last_close[128];
    /* bookings */
    PGconn *pg;        /* owned */
    int64_t *ev_seats; /* [nevents] owned: committed seats */
    uint64_t booked;   /* bookings so far in the run */
    struct phase ph;
    bool in_phase;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t
since_us(const struct lg *lg, int64_t now)
{
    return (uint32_t)((now - lg->origin_ns) / 1000);
}

static uint32_t
next_rand(struct lg *lg)
{
    uint32_t x = lg->rand;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    lg->rand = x;
    return x;
}

static double
cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
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

/* Nearest-rank percentile q (0..1) of sorted v[0..n). */
static size_t
rank(size_t n, double q)
{
    size_t r = (size_t)(q * (double)n + 0.999999);

    return r == 0 ? 0 : (r > n ? n - 1 : r - 1);
}

/* ------------------------------------------------------------------ */
/* Connections: closing                                                 */

static void
carry_drop(struct lg_conn *c)
{
    free(c->carry);
    c->carry = NULL;
    c->carry_len = 0;
}

/* Keeps buf[0..len) for the next read.  -1 if it cannot. */
static int
carry_keep(struct lg_conn *c, const uint8_t *buf, size_t len)
{
    if (len > UINT16_MAX || (c->carry = malloc(len)) == NULL) {
        return -1;
    }
    memcpy(c->carry, buf, len);
    c->carry_len = (uint16_t)len;
    return 0;
}

/* Closes connection i for reason r, counting it as a failed handshake or
 * as a connection dropped after it was open. */
static void
conn_fail(struct lg *lg, uint32_t i, enum fail_reason r)
{
    struct lg_conn *c = &lg->conns[i];

    if (c->state == CS_DEAD) {
        return;
    }
    if (c->state == CS_OPEN) {
        lg->dropped++;
    } else {
        lg->inflight--;
        lg->failed++;
        lg->hs_end_ns = mono_ns();
    }
    lg->fails[r]++;
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->state = CS_DEAD;
    carry_drop(c);
}

/* ------------------------------------------------------------------ */
/* Connections: opening                                                 */

static int
send_request(struct lg *lg, uint32_t i)
{
    char req[2048];
    int64_t ev = lg->o.first_event + (int64_t)(i % lg->o.nevents);
    int len = snprintf(req, sizeof(req),
                       "GET /ws/events/%" PRId64 "?token=%s HTTP/1.1\r\n"
                       "Host: %s:%u\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " LG_WS_KEY "\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       ev, lg->token, lg->o.host, (unsigned)lg->o.port);

    if (len < 0 || (size_t)len >= sizeof(req)) {
        return -1;
    }
    /* a fresh socket takes 2 KiB whole */
    return write(lg->conns[i].fd, req, (size_t)len) == len ? 0 : -1;
}

static int
bind_source(struct lg *lg, int fd, uint32_t i)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;

    /* pick the port at connect(), by the whole 4-tuple */
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                   sizeof(one)) != 0) {
        return -1;
    }
    src.sin_addr.s_addr = htonl(0x7F000002u + i % lg->sources);
    return bind(fd, (struct sockaddr *)&src, sizeof(src));
}

/* Connection i is connected: send the upgrade request. */
static void
conn_connected(struct lg *lg, uint32_t i)
{
    struct lg_conn *c = &lg->conns[i];
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    int err = 0;
    socklen_t elen = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
        send_request(lg, i) != 0 ||
        epoll_ctl(lg->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        conn_fail(lg, i, FR_CONNECT);
        return;
    }
    c->state = CS_HANDSHAKE;
}

static void
conn_start(struct lg *lg, uint32_t i)
{
    struct lg_conn *c = &lg->conns[i];
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = i};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    c->fd = fd;
    c->state = CS_CONNECTING;
    c->start_us = since_us(lg, mono_ns());
    lg->inflight++;
    if (fd < 0 || (lg->sources > 0 && bind_source(lg, fd, i) != 0) ||
        (connect(fd, (struct sockaddr *)&lg->dst, sizeof(lg->dst)) != 0 &&
         errno != EINPROGRESS) ||
        epoll_ctl(lg->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (lg->fails[FR_CONNECT] == 0) {
            fprintf(stderr, "loadgen: connection %u: %s\n", i, strerror(errno));
        }
        conn_fail(lg, i, FR_CONNECT);
    }
}

/* Fails connections still not subscribed after --handshake-timeout. */
static void
check_timeouts(struct lg *lg, int64_t now)
{
    uint32_t limit = (uint32_t)(lg->o.hs_timeout * 1e6);
    uint32_t now_us = since_us(lg, now);

    while (lg->scan_from < lg->next &&
           lg->conns[lg->scan_from].state >= CS_OPEN) {
        lg->scan_from++;
    }
    for (uint32_t i = lg->scan_from; i < lg->next; i++) {
        struct lg_conn *c = &lg->conns[i];

        if (c->state < CS_OPEN && now_us - c->start_us > limit) {
            conn_fail(lg, i, FR_TIMEOUT);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Messages                                                             */

/* The first seat_update: the event's current seats (SPEC 4). */
static void
on_snapshot(struct lg *lg, uint32_t i, const struct lg_msg *m, int64_t now)
{
    struct lg_conn *c = &lg->conns[i];
    uint32_t ei = i % lg->o.nevents;

    if (!m->has_available || m->available != lg->ev_seats[ei]) {
        lg->snapshot_bad++;
    }
    c->state = CS_OPEN;
    lg->hs_us[lg->opened++] = since_us(lg, now) - c->start_us;
    lg->inflight--;
    lg->hs_end_ns = now;
}

/* Index j of a message's booking among the event's bookings in the
 * phase, or -1 if the message is no phase delivery for connection i. */
static int64_t
phase_index(struct lg *lg, uint32_t i, const struct lg_msg *m)
{
    uint32_t ei = i % lg->o.nevents;
    int64_t j;

    if (!lg->in_phase || (lg->conns[i].flags & CF_PHASE) == 0 ||
        !m->has_available || !m->has_event ||
        m->event_id != lg->o.first_event + (int64_t)ei) {
        lg->stray++;
        return -1;
    }
    j = lg->ph.ev_base[ei] - 1 - m->available;
    if (j < 0 || j >= (int64_t)lg->ph.ev_count[ei]) {
        lg->ph.unexpected++;
        return -1;
    }
    return j;
}

static void
on_update(struct lg *lg, uint32_t i, const struct lg_msg *m, int64_t now)
{
    struct lg_conn *c = &lg->conns[i];
    struct phase *ph = &lg->ph;
    int64_t j = phase_index(lg, i, m);
    uint64_t bit;

    if (j < 0) {
        return;
    }
    bit = 1ULL << j;
    ph->frames++;
    ph->last_ns = now;
    if ((c->seen & bit) != 0) {
        ph->dups++;
        return;
    }
    if ((c->seen & ~(bit | (bit - 1))) != 0) {
        ph->reordered++; /* a later booking came first */
    }
    c->seen |= bit;
    ph->updates++;
    ph->recs[ph->nrecs].p =
        ph->ev_first[i % lg->o.nevents] + (uint32_t)j * lg->o.nevents;
    ph->recs[ph->nrecs].us = (uint32_t)((now - ph->origin_ns) / 1000);
    ph->nrecs++;
}

static void
on_created(struct lg *lg, uint32_t i, const struct lg_msg *m, int64_t now)
{
    if (phase_index(lg, i, m) < 0) {
        return;
    }
    lg->ph.created++;
    lg->ph.frames++;
    lg->ph.last_ns = now;
}

/* A text message; -1 if connection i was closed for it. */
static int
on_text(struct lg *lg, uint32_t i, const struct lg_frame *f, int64_t now)
{
    struct lg_conn *c = &lg->conns[i];
    struct lg_msg m;

    if (!f->fin || lg_json_scan((const char *)f->payload, f->len, &m) != 0) {
        conn_fail(lg, i, FR_PROTO);
        return -1;
    }
    switch (m.type) {
    case LG_MSG_ESTABLISHED:
        if (c->state != CS_HELLO || (c->flags & CF_HELLO) != 0) {
            conn_fail(lg, i, FR_PROTO);
            return -1;
        }
        c->flags |= CF_HELLO;
        break;
    case LG_MSG_SEAT_UPDATE:
        if (c->state == CS_OPEN) {
            on_update(lg, i, &m, now);
        } else if ((c->flags & CF_HELLO) != 0) {
            on_snapshot(lg, i, &m, now);
        } else {
            conn_fail(lg, i, FR_PROTO); /* SPEC 4: established first */
            return -1;
        }
        break;
    case LG_MSG_BOOKING_CREATED:
        on_created(lg, i, &m, now);
        break;
    case LG_MSG_ERROR:
        lg->errors_rcvd++;
        break;
    default:
        lg->stray++;
        break;
    }
    return 0;
}

/* RFC 6455 5.5.2: answer a ping with a pong of the same payload. */
static void
send_pong(struct lg *lg, uint32_t i, const struct lg_frame *f)
{
    uint8_t out[6 + 125];
    long n = lg_ws_frame_build(out, sizeof(out), LG_WS_OP_PONG, f->payload,
                               f->len, next_rand(lg));

    if (n > 0 && write(lg->conns[i].fd, out, (size_t)n) == n) {
        lg->pongs++;
    } else {
        lg->pong_drops++;
    }
}

static void
on_close(struct lg *lg, uint32_t i, const struct lg_frame *f)
{
    unsigned code =
        f->len >= 2 ? (unsigned)f->payload[0] << 8 | f->payload[1] : 1005;
    int rlen = f->len > 2 ? (int)(f->len - 2) : 0;

    snprintf(lg->last_close, sizeof(lg->last_close), "%u %.*s", code, rlen,
             (const char *)f->payload + 2);
    conn_fail(lg, i, FR_CLOSED);
}

/* One frame; -1 if connection i was closed. */
static int
on_frame(struct lg *lg, uint32_t i, const struct lg_frame *f, int64_t now)
{
    switch (f->opcode) {
    case LG_WS_OP_TEXT:
        return on_text(lg, i, f, now);
    case LG_WS_OP_PING:
        send_pong(lg, i, f);
        return 0;
    case LG_WS_OP_PONG:
        return 0;
    case LG_WS_OP_CLOSE:
        on_close(lg, i, f);
        return -1;
    default:
        conn_fail(lg, i, FR_PROTO); /* binary or fragments: not seatcast */
        return -1;
    }
}

/* Parses buf[0..len) of connection i; returns the bytes used, or -1 if
 * the connection was closed. */
static long
conn_feed(struct lg *lg, uint32_t i, const uint8_t *buf, size_t len,
          int64_t now)
{
    size_t off = 0;

    if (lg->conns[i].state == CS_HANDSHAKE) {
        long n = lg_http_response((const char *)buf, len, &lg->last_status);

        if (n == LG_MORE) {
            return 0;
        }
        if (n < 0) {
            conn_fail(lg, i, FR_HTTP);
            return -1;
        }
        lg->conns[i].state = CS_HELLO;
        off = (size_t)n;
    }
    while (off < len) {
        struct lg_frame f;
        long n = lg_ws_frame_parse(buf + off, len - off, &f);

        if (n == LG_MORE) {
            break;
        }
        if (n < 0) {
            conn_fail(lg, i, FR_PROTO);
            return -1;
        }
        if (on_frame(lg, i, &f, now) != 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return (long)off;
}

/* Reads connection i until the socket is drained. */
static void
conn_read(struct lg *lg, uint32_t i)
{
    struct lg_conn *c = &lg->conns[i];

    for (;;) {
        size_t have = c->carry_len, total;
        ssize_t n = read(c->fd, lg->rbuf + have, RBUF_SIZE - have);
        long used;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            conn_fail(lg, i, FR_EOF);
            return;
        }
        if (have > 0) {
            memcpy(lg->rbuf, c->carry, have);
            carry_drop(c);
        }
        total = have + (size_t)n;
        used = conn_feed(lg, i, lg->rbuf, total, mono_ns());
        if (used < 0) {
            return;
        }
        if ((size_t)used < total &&
            carry_keep(c, lg->rbuf + used, total - (size_t)used) != 0) {
            conn_fail(lg, i, FR_PROTO);
            return;
        }
        if ((size_t)n < RBUF_SIZE - have) {
            return;
        }
    }
}

/* ------------------------------------------------------------------ */
/* The loop                                                             */

static void
loop_once(struct lg *lg, int timeout_ms)
{
    struct epoll_event evs[EPOLL_BATCH];
    int n = epoll_wait(lg->ep, evs, EPOLL_BATCH, timeout_ms);

    for (int k = 0; k < n; k++) {
        uint32_t i = evs[k].data.u32;

        switch (lg->conns[i].state) {
        case CS_DEAD:
            break; /* closed earlier in this batch */
        case CS_CONNECTING:
            conn_connected(lg, i);
            break;
        default:
            conn_read(lg, i);
            break;
        }
    }
}

/* Runs the loop for `seconds`. */
static void
loop_for(struct lg *lg, double seconds)
{
    int64_t end = mono_ns() + (int64_t)(seconds * 1e9);
    int64_t now;

    while ((now = mono_ns()) < end) {
        loop_once(lg, (int)((end - now) / 1000000) + 1);
    }
}

/* Opens every connection, --window at a time. */
static void
connect_all(struct lg *lg)
{
    int64_t t0 = mono_ns(), last_check = t0;

    lg->hs_end_ns = t0;
    while (lg->next < lg->o.conns || lg->inflight > 0) {
        int64_t now;

        while (lg->inflight < lg->o.window && lg->next < lg->o.conns) {
            conn_start(lg, lg->next++);
        }
        loop_once(lg, 50);
        now = mono_ns();
        if (now - last_check > 100000000) {
            check_timeouts(lg, now);
            last_check = now;
        }
    }
    lg->hs_end_ns -= t0;
}

/* ------------------------------------------------------------------ */
/* Phases                                                               */

/* Bookings of event ei among the first `upto` of the phase. */
static uint32_t
ev_due(const struct lg *lg, uint32_t ei, uint32_t upto)
{
    const struct phase *ph = &lg->ph;
    uint32_t n;

    if (ph->ev_count[ei] == 0 || ph->ev_first[ei] >= upto) {
        return 0;
    }
    n = (upto - 1 - ph->ev_first[ei]) / lg->o.nevents + 1;
    return n < ph->ev_count[ei] ? n : ph->ev_count[ei];
}

/* Frees what the last phase allocated (its figures stay readable until
 * then: print_phase() runs after run_phase()). */
static void
phase_fini(struct phase *ph)
{
    free(ph->commit_ns);
    free(ph->ev_count);
    free(ph->ev_first);
    free(ph->ev_base);
    free(ph->recs);
    memset(ph, 0, sizeof(*ph));
}

static int
phase_begin(struct lg *lg, const char *name, uint32_t count, double rate)
{
    struct phase *ph = &lg->ph;
    uint32_t m = lg->o.nevents;

    phase_fini(ph);
    ph->name = name;
    ph->count = count;
    ph->rate = rate;
    ph->first = lg->booked;
    ph->commit_ns = calloc(count + 1, sizeof(*ph->commit_ns));
    ph->ev_count = calloc(m, sizeof(*ph->ev_count));
    ph->ev_first = calloc(m, sizeof(*ph->ev_first));
    ph->ev_base = calloc(m, sizeof(*ph->ev_base));
    if (!ph->commit_ns || !ph->ev_count || !ph->ev_first || !ph->ev_base) {
        return -1;
    }
    for (uint32_t p = 0; p < count; p++) {
        uint32_t ei = (uint32_t)((ph->first + p) % m);

        if (ph->ev_count[ei]++ == 0) {
            ph->ev_first[ei] = p;
        }
    }
    memcpy(ph->ev_base, lg->ev_seats, m * sizeof(*ph->ev_base));
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        struct lg_conn *c = &lg->conns[i];

        if (c->state == CS_OPEN) {
            c->flags |= CF_PHASE;
            c->seen = 0;
            ph->conns++;
            ph->expected += ph->ev_count[i % m];
        }
    }
    ph->recs = malloc((ph->expected + 1) * sizeof(*ph->recs));
    return ph->recs != NULL ? 0 : -1;
}

/* True when every checked connection has every committed booking. */
static bool
phase_complete(const struct lg *lg, const struct lg_book *b)
{
    return atomic_load_explicit(&b->done, memory_order_acquire) &&
           lg->ph.updates >= lg->ph.expected &&
           lg->ph.created >= lg->ph.expected;
}

/* Runs the loop until the phase is delivered, or nothing came for
 * --drain-timeout after the last commit. */
static void
phase_wait(struct lg *lg, struct lg_book *b)
{
    uint64_t seen_frames = 0;
    int64_t quiet_since = mono_ns();

    while (!phase_complete(lg, b)) {
        int64_t now;

        loop_once(lg, 10);
        now = mono_ns();
        if (lg->ph.frames != seen_frames ||
            !atomic_load_explicit(&b->done, memory_order_acquire)) {
            seen_frames = lg->ph.frames;
            quiet_since = now;
        } else if (now - quiet_since > (int64_t)(lg->o.drain_timeout * 1e9)) {
            break;
        }
    }
}

/* Loss per connection, against the bookings really committed. */
static void
phase_count_loss(struct lg *lg)
{
    struct phase *ph = &lg->ph;
    uint64_t due_total = 0;

    for (uint32_t i = 0; i < lg->o.conns; i++) {
        struct lg_conn *c = &lg->conns[i];
        uint32_t due = ev_due(lg, i % lg->o.nevents, ph->committed);
        uint32_t got;

        if ((c->flags & CF_PHASE) == 0) {
            continue;
        }
        c->flags &= (uint8_t)~CF_PHASE;
        due_total += due;
        got = (uint32_t)__builtin_popcountll(c->seen);
        ph->lost += due > got ? due - got : 0;
        if (due > 0 && (c->seen & (1ULL << (due - 1))) == 0) {
            ph->lost_final++; /* the client ends on a wrong count */
        }
    }
    ph->expected = due_total;
    ph->lost_created = due_total > ph->created ? due_total - ph->created : 0;
}

/* Commit-to-receive percentiles from the phase's records. */
static void
phase_latency(struct lg *lg)
{
    struct phase *ph = &lg->ph;
    int32_t *lat = malloc((ph->nrecs + 1) * sizeof(*lat));

    if (lat == NULL || ph->nrecs == 0) {
        free(lat);
        return;
    }
    for (uint64_t k = 0; k < ph->nrecs; k++) {
        int64_t d =
            (int64_t)ph->recs[k].us * 1000 - ph->commit_ns[ph->recs[k].p];

        ph->negative += d < 0;
        lat[k] = (int32_t)(d / 1000);
    }
    qsort(lat, ph->nrecs, sizeof(*lat), cmp_i32);
    ph->lat_ms[0] = lat[rank(ph->nrecs, 0.50)] / 1000.0;
    ph->lat_ms[1] = lat[rank(ph->nrecs, 0.90)] / 1000.0;
    ph->lat_ms[2] = lat[rank(ph->nrecs, 0.99)] / 1000.0;
    ph->lat_ms[3] = lat[ph->nrecs - 1] / 1000.0;
    free(lat);
}

static void
phase_end(struct lg *lg, const struct lg_book *b)
{
    struct phase *ph = &lg->ph;

    ph->committed = atomic_load(&b->committed);
    memcpy(ph->err, b->err, sizeof(ph->err));
    lg->in_phase = false;
    phase_count_loss(lg);
    phase_latency(lg);
    for (uint32_t ei = 0; ei < lg->o.nevents; ei++) {
        lg->ev_seats[ei] -= ev_due(lg, ei, ph->committed);
    }
    lg->booked += ph->committed;
}

/* Runs one phase of `count` bookings at `rate` (0: at once); 0, or -1 if
 * it could not start. */
static int
run_phase(struct lg *lg, const char *name, uint32_t count, double rate)
{
    struct lg_book b = {.pg = lg->pg,
                        .first_event = lg->o.first_event,
                        .nevents = lg->o.nevents,
                        .first_booking = lg->booked,
                        .count = count,
                        .rate = rate};
    struct lg_proc_sample s0, s1;
    double cpu0;

    if (phase_begin(lg, name, count, rate) != 0 ||
        lg_proc_sample(lg->o.server_pid, &s0) != 0) {
        return -1;
    }
    fprintf(stderr, "loadgen: %s: %u bookings to %u connections\n", name, count,
            lg->ph.conns);
    cpu0 = cpu_seconds();
    lg->in_phase = true;
    lg->ph.origin_ns = b.origin_ns = mono_ns();
    b.commit_ns = lg->ph.commit_ns;
    if (lg_book_start(&b) != 0) {
        lg->in_phase = false;
        return -1;
    }
    phase_wait(lg, &b);
    lg_book_join(&b);
    if (lg_proc_sample(lg->o.server_pid, &s1) == 0) {
        lg->ph.cpu_ticks = s1.cpu_ticks - s0.cpu_ticks;
        lg->ph.run_ns = s1.run_ns - s0.run_ns;
    }
    lg->ph.client_cpu_s = cpu_seconds() - cpu0;
    phase_end(lg, &b);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Report                                                               */

static void
print_phase(const struct lg *lg, FILE *out)
{
    const struct phase *ph = &lg->ph;
    /* deliveries: from the first COMMIT returned to the last frame read */
    int64_t span = ph->last_ns - ph->origin_ns - ph->commit_ns[0];
    double secs = ph->committed > 0 && span > 0 ? (double)span / 1e9 : 0;
    double tick_ns = (double)lg_proc_tick_ns();
    double cpu_ns = (double)ph->cpu_ticks * tick_ns;

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
            "\"max\":%.3f},\"negative_latencies\":%" PRId64 ","
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
            "\"reordered\":%" PRIu64 ",\"unexpected\":%" PRIu64 ","
            "\"error\":\"%s\"}",
            ph->lost, ph->lost_final, ph->lost_created, ph->dups, ph->reordered,
            ph->unexpected, ph->err[0] ? "booking failed" : "");
}

static void
print_head(const struct lg *lg, FILE *out, const struct lg_proc_sample *m0,
           const struct lg_proc_sample *m1)
{
    double hs_s = (double)lg->hs_end_ns / 1e9;
    double p50 = 0, p99 = 0;
    double per_conn =
        lg->opened > 0
            ? ((double)m1->pss_kib - (double)m0->pss_kib) * 1024.0 / lg->opened
            : 0;

    if (lg->opened > 0) {
        qsort(lg->hs_us, lg->opened, sizeof(*lg->hs_us), cmp_u32);
        p50 = lg->hs_us[rank(lg->opened, 0.50)] / 1000.0;
        p99 = lg->hs_us[rank(lg->opened, 0.99)] / 1000.0;
    }
    fprintf(out,
            "{\"n\":%u,\"events\":%u,\"window\":%u,\"sources\":%u,"
            "\"opened\":%u,\"failed\":%u,\"fail_reasons\":{",
            lg->o.conns, lg->o.nevents, lg->o.window, lg->sources, lg->opened,
            lg->failed);
    for (int r = 0; r < FR_COUNT; r++) {
        fprintf(out, "%s\"%s\":%" PRIu64, r ? "," : "", fail_names[r],
                lg->fails[r]);
    }
    fprintf(out,
            "},\"last_http_status\":%d,"
            "\"handshake\":{\"seconds\":%.3f,\"per_sec\":%.0f,"
            "\"p50_ms\":%.3f,\"p99_ms\":%.3f},"
            "\"memory\":{\"server_procs\":%u,\"pss_before_kib\":%" PRIu64
            ",\"pss_after_kib\":%" PRIu64 ",\"bytes_per_conn\":%.0f},",
            lg->last_status, hs_s, hs_s > 0 ? lg->opened / hs_s : 0, p50, p99,
            m1->nprocs, m0->pss_kib, m1->pss_kib, per_conn);
}

static void
print_tail(const struct lg *lg, FILE *out, bool db_ok)
{
    fprintf(out,
            "\"dropped\":%u,\"snapshot_bad\":%" PRIu64 ",\"stray\":%" PRIu64
            ",\"errors_received\":%" PRIu64 ",\"pongs\":%" PRIu64
            ",\"pong_drops\":%" PRIu64 ",\"db_consistent\":%s,"
            "\"last_close\":\"",
            lg->dropped, lg->snapshot_bad, lg->stray, lg->errors_rcvd,
            lg->pongs, lg->pong_drops, db_ok ? "true" : "false");
    for (const char *p = lg->last_close; *p != '\0'; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\') {
            fputc(*p, out);
        }
    }
    fputs("\"}\n", out);
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
            "               [--sources K] [--events 1] [--first-event 1]\n"
            "               [--burst 50] [--paced-rate 2] "
            "[--paced-seconds 5]\n"
            "               [--settle 1] [--handshake-timeout 10] "
            "[--drain-timeout 5]\n"
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
        {"sources", required_argument, NULL, 'S'},
        {"events", required_argument, NULL, 'e'},
        {"first-event", required_argument, NULL, 'f'},
        {"burst", required_argument, NULL, 'b'},
        {"paced-rate", required_argument, NULL, 'r'},
        {"paced-seconds", required_argument, NULL, 'R'},
        {"settle", required_argument, NULL, 'z'},
        {"handshake-timeout", required_argument, NULL, 'H'},
        {"drain-timeout", required_argument, NULL, 'D'},
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
        case 'S':
            o->sources = (uint32_t)num_arg("sources", optarg, 0, 60000);
            break;
        case 'e':
            o->nevents = (uint32_t)num_arg("events", optarg, 1, 1000000);
            break;
        case 'f':
            o->first_event = (int64_t)num_arg("first-event", optarg, 1, 1e15);
            break;
        case 'b':
            o->burst = (uint32_t)num_arg("burst", optarg, 0, PHASE_MAX);
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
    if (o->paced_rate * o->paced_seconds > PHASE_MAX) {
        fprintf(stderr, "loadgen: at most %d paced bookings\n", PHASE_MAX);
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

/* One fd per connection and a few more: raise both limits if needed
 * (root may raise the hard one up to fs.nr_open). */
static int
raise_nofile(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return -1;
    }
    if (rl.rlim_cur >= want) {
        return 0;
    }
    rl.rlim_cur = want;
    if (rl.rlim_max < want) {
        rl.rlim_max = want;
    }
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "loadgen: could not raise RLIMIT_NOFILE to %llu: %s\n",
                (unsigned long long)want, strerror(errno));
        return -1;
    }
    return 0;
}

/* Source addresses needed for conns connections to one address and port:
 * none while the kernel's ephemeral range suffices. */
static uint32_t
auto_sources(uint32_t conns)
{
    unsigned lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    uint32_t per;

    if (f != NULL) {
        if (fscanf(f, "%u %u", &lo, &hi) != 2) {
            lo = 32768;
            hi = 60999;
        }
        fclose(f);
    }
    per = hi > lo + 2 * PORT_MARGIN ? hi - lo + 1 - PORT_MARGIN : 1000;
    return conns <= per ? 0 : (conns + per - 1) / per;
}

/* Seats of events first_event.. into ev_seats; -1 if one is missing. */
static int
read_seats(struct lg *lg)
{
    char sql[160];
    PGresult *r;
    int rc = 0;

    snprintf(sql, sizeof(sql),
             "SELECT id, available_seats FROM events WHERE id BETWEEN "
             "%" PRId64 " AND %" PRId64 " ORDER BY id",
             lg->o.first_event, lg->o.first_event + (int64_t)lg->o.nevents - 1);
    r = PQexec(lg->pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK ||
        PQntuples(r) != (int)lg->o.nevents) {
        fprintf(stderr, "loadgen: events %" PRId64 "..+%u not all found: %s",
                lg->o.first_event, lg->o.nevents, PQerrorMessage(lg->pg));
        rc = -1;
    }
    for (int k = 0; rc == 0 && k < PQntuples(r); k++) {
        lg->ev_seats[k] = strtoll(PQgetvalue(r, k, 1), NULL, 10);
    }
    PQclear(r);
    return rc;
}

static int
pg_setup(struct lg *lg)
{
    lg->pg = PQconnectdb(lg->o.database);
    if (PQstatus(lg->pg) != CONNECTION_OK) {
        fprintf(stderr, "loadgen: could not connect to the database: %s",
                PQerrorMessage(lg->pg));
        return -1;
    }
    if (lg_book_prepare(lg->pg) != 0 || read_seats(lg) != 0) {
        return -1;
    }
    return 0;
}

/* True if the database agrees with the seats the loadgen expects. */
static bool
db_consistent(struct lg *lg)
{
    int64_t *mine = malloc(lg->o.nevents * sizeof(*mine));
    bool ok;

    if (mine == NULL) {
        return false;
    }
    memcpy(mine, lg->ev_seats, lg->o.nevents * sizeof(*mine));
    ok = read_seats(lg) == 0 &&
         memcmp(mine, lg->ev_seats, lg->o.nevents * sizeof(*mine)) == 0;
    free(mine);
    return ok;
}

static int
lg_init(struct lg *lg)
{
    lg->origin_ns = mono_ns();
    lg->rand = (uint32_t)lg->origin_ns | 1;
    lg->token = read_token(lg->o.token_file);
    lg->ep = epoll_create1(EPOLL_CLOEXEC);
    lg->conns = calloc(lg->o.conns, sizeof(*lg->conns));
    lg->hs_us = calloc(lg->o.conns, sizeof(*lg->hs_us));
    lg->rbuf = malloc(RBUF_SIZE);
    lg->ev_seats = calloc(lg->o.nevents, sizeof(*lg->ev_seats));
    if (lg->token == NULL || lg->ep < 0 || lg->conns == NULL ||
        lg->hs_us == NULL || lg->rbuf == NULL || lg->ev_seats == NULL) {
        fprintf(stderr, "loadgen: could not set up: %s\n", strerror(errno));
        return -1;
    }
    lg->dst.sin_family = AF_INET;
    lg->dst.sin_port = htons(lg->o.port);
    if (inet_pton(AF_INET, lg->o.host, &lg->dst.sin_addr) != 1) {
        fprintf(stderr, "loadgen: --host: not an IPv4 address\n");
        return -1;
    }
    lg->sources = lg->o.sources > 0 ? lg->o.sources : auto_sources(lg->o.conns);
    if (raise_nofile((rlim_t)lg->o.conns + 256) != 0) {
        return -1;
    }
    return pg_setup(lg);
}

/* Closes every socket with a reset: no TIME_WAIT for the next run. */
static void
close_all(struct lg *lg)
{
    struct linger lin = {.l_onoff = 1, .l_linger = 0};

    for (uint32_t i = 0; i < lg->next; i++) { /* the ones started */
        struct lg_conn *c = &lg->conns[i];

        if (c->state != CS_DEAD && c->fd >= 0) {
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
            close(c->fd);
            c->state = CS_DEAD;
        }
        carry_drop(c);
    }
}

/* Releases what lg_init() made, in reverse order. */
static void
lg_fini(struct lg *lg)
{
    close_all(lg);
    phase_fini(&lg->ph);
    PQfinish(lg->pg);
    free(lg->ev_seats);
    free(lg->rbuf);
    free(lg->hs_us);
    free(lg->conns);
    if (lg->ep >= 0) {
        close(lg->ep);
    }
    free(lg->token);
}

int
main(int argc, char **argv)
{
    struct lg lg;
    struct lg_proc_sample m0, m1;
    uint32_t paced;
    int rc = 1;

    memset(&lg, 0, sizeof(lg));
    lg.ep = -1;
    parse_opts(&lg.o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (lg_init(&lg) != 0 || lg_proc_sample(lg.o.server_pid, &m0) != 0) {
        goto fail;
    }
    fprintf(stderr, "loadgen: opening %u connections (%u source addresses)\n",
            lg.o.conns, lg.sources);
    connect_all(&lg);
    fprintf(stderr, "loadgen: %u open, %u failed in %.2f s\n", lg.opened,
            lg.failed, (double)lg.hs_end_ns / 1e9);
    loop_for(&lg, lg.o.settle);
    if (lg_proc_sample(lg.o.server_pid, &m1) != 0) {
        goto fail;
    }
    print_head(&lg, stdout, &m0, &m1);
    if (run_phase(&lg, "burst", lg.o.burst, 0) != 0) {
        goto fail;
    }
    print_phase(&lg, stdout);
    fputc(',', stdout);
    paced = (uint32_t)(lg.o.paced_rate * lg.o.paced_seconds + 0.5);
    if (run_phase(&lg, "paced", paced, lg.o.paced_rate) != 0) {
        goto fail;
    }
    print_phase(&lg, stdout);
    fputc(',', stdout);
    print_tail(&lg, stdout, db_consistent(&lg));
    fflush(stdout);
    rc = 0;
fail:
    lg_fini(&lg);
    return rc;
}
