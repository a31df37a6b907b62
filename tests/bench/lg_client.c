/*
 * lg_client.c - one client process of the load generator (see lg_client.h)
 *
 * Runs its share of the connections on one epoll loop (level-triggered,
 * non-blocking) and carries out the parent's commands.  Never talks to
 * PostgreSQL and never blocks but in epoll_wait().
 *
 * NOTES
 *
 * Reads go into one buffer shared by all of the client's connections; the
 * rare tail of an unfinished frame (or response) is copied to a small heap
 * carry until the next read.  A receive time is taken once per read().
 *
 * Each connection keeps a 64-bit map of the phase's bookings of its event
 * it has seen.  Booking j of the event in the phase is recognised by its
 * availableSeats, base - 1 - j, as every booking takes one seat and the
 * loadgen is the only writer:
 *   bit already set               duplicate
 *   a later booking already seen  reordered (counted on arrival)
 *   bit missing at phase end      lost (counted by the parent)
 * The receive time of booking j on connection i goes to lat_us[i * 64 + j]
 * for the parent to turn into a latency.
 *
 * In onsale mode (lg_client.h) the map gives way to the highest index
 * shown and the cover times: every message carrying the event's
 * availableSeats (seat_update, booking_created, booking_cancelled) counts,
 * and counts may be skipped.
 */
#include "lg_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lg_ws.h"

/* shared read buffer; a tiny one (-DLG_RBUF_SIZE=200) tests the carry */
#ifndef LG_RBUF_SIZE
#define LG_RBUF_SIZE (256 * 1024)
#endif
#define EPOLL_BATCH 1024

/* A client's private state. */
struct client {
    struct lg *lg;       /* inherited view of the shared tables */
    struct lg_stats *st; /* this client's figures (shared) */
    uint32_t k;          /* client index */
    uint32_t lo, hi;     /* connections owned: [lo, hi) */
    uint32_t next;       /* next connection to start */
    uint32_t inflight;   /* started, not yet open or failed */
    uint32_t scan_from;  /* no connection before it is in flight */
    uint32_t window;     /* share of --window */
    uint32_t seq_seen;   /* last command taken */
    uint32_t rand;       /* xorshift32 for masking keys */
    int ep;              /* owned epoll fd */
    bool connecting, in_phase;
    int64_t last_check_ns;
    double cpu0;
    uint8_t *rbuf; /* owned [LG_RBUF_SIZE] */
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
next_rand(struct client *cl)
{
    uint32_t x = cl->rand;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    cl->rand = x;
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

uint32_t
lg_client_lo(uint32_t conns, uint32_t n, uint32_t k)
{
    return (uint32_t)(((uint64_t)k * conns + n - 1) / n);
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
conn_fail(struct client *cl, uint32_t i, enum lg_fail r)
{
    struct lg_conn *c = &cl->lg->conns[i];

    if (c->state == LG_CS_DEAD) {
        return;
    }
    if (c->state == LG_CS_OPEN) {
        cl->st->dropped++;
    } else {
        cl->inflight--;
        cl->st->failed++;
        cl->st->hs_end_ns = mono_ns();
    }
    cl->st->fails[r]++;
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->state = LG_CS_DEAD;
    carry_drop(c);
}

/* Resets every socket (SO_LINGER 0): no TIME_WAIT left for the next run. */
static void
close_all(struct client *cl)
{
    struct linger lin = {.l_onoff = 1, .l_linger = 0};

    for (uint32_t i = cl->lo; i < cl->next; i++) {
        struct lg_conn *c = &cl->lg->conns[i];

        if (c->state != LG_CS_DEAD && c->fd >= 0) {
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
            close(c->fd);
            c->fd = -1;
            c->state = LG_CS_DEAD;
        }
        carry_drop(c);
    }
}

/* ------------------------------------------------------------------ */
/* Connections: opening                                                 */

static int
send_request(struct client *cl, uint32_t i)
{
    const struct lg *lg = cl->lg;
    char req[4096];
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
    /* a fresh socket takes 4 KiB whole */
    return write(lg->conns[i].fd, req, (size_t)len) == len ? 0 : -1;
}

/* Binds fd to connection i's source address, the port left to connect(). */
static int
bind_source(const struct client *cl, int fd, uint32_t i)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;

    /* IP_BIND_ADDRESS_NO_PORT: the port is picked by the whole 4-tuple */
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                   sizeof(one)) != 0) {
        return -1;
    }
    src.sin_addr.s_addr = htonl(0x7F000002u + i / cl->lg->per_source);
    return bind(fd, (struct sockaddr *)&src, sizeof(src));
}

/* Connection i is connected: send the upgrade request. */
static void
conn_connected(struct client *cl, uint32_t i)
{
    struct lg_conn *c = &cl->lg->conns[i];
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    int err = 0;
    socklen_t elen = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
        send_request(cl, i) != 0 ||
        epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        conn_fail(cl, i, LG_FR_CONNECT);
        return;
    }
    c->state = LG_CS_HANDSHAKE;
}

static void
conn_start(struct client *cl, uint32_t i)
{
    struct lg *lg = cl->lg;
    struct lg_conn *c = &lg->conns[i];
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = i};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    c->fd = fd;
    c->state = LG_CS_CONNECTING;
    c->start_us = since_us(lg, mono_ns());
    cl->inflight++;
    if (fd < 0 || (lg->per_source > 0 && bind_source(cl, fd, i) != 0) ||
        (connect(fd, (struct sockaddr *)&lg->dst, sizeof(lg->dst)) != 0 &&
         errno != EINPROGRESS) ||
        epoll_ctl(cl->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (cl->st->fails[LG_FR_CONNECT] == 0) {
            fprintf(stderr, "loadgen: client %u: connection %u: %s\n", cl->k, i,
                    strerror(errno));
        }
        conn_fail(cl, i, LG_FR_CONNECT);
    }
}

/* Fails connections still not subscribed after --handshake-timeout. */
static void
check_timeouts(struct client *cl, int64_t now)
{
    struct lg *lg = cl->lg;
    uint32_t limit = (uint32_t)(lg->o.hs_timeout * 1e6);
    uint32_t now_us = since_us(lg, now);

    while (cl->scan_from < cl->next &&
           lg->conns[cl->scan_from].state >= LG_CS_OPEN) {
        cl->scan_from++;
    }
    for (uint32_t i = cl->scan_from; i < cl->next; i++) {
        struct lg_conn *c = &lg->conns[i];

        if (c->state < LG_CS_OPEN && now_us - c->start_us > limit) {
            conn_fail(cl, i, LG_FR_TIMEOUT);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Messages                                                             */

/* The first seat_update: the event's current seats (SPEC 4). */
static void
on_snapshot(struct client *cl, uint32_t i, const struct lg_msg *m, int64_t now)
{
    struct lg *lg = cl->lg;
    struct lg_conn *c = &lg->conns[i];

    /* between phases ev_base holds the seats of the last phase's end */
    if (!m->has_available || m->available != lg->ev_base[i % lg->o.nevents]) {
        cl->st->snapshot_bad++;
    }
    c->state = LG_CS_OPEN;
    lg->hs_us[i] = since_us(lg, now) - c->start_us;
    cl->st->opened++;
    cl->st->hs_end_ns = now;
    cl->inflight--;
}

/* Index j of a message's booking among the event's bookings in the
 * phase, or -1 if the message is no phase delivery for connection i. */
static int64_t
phase_index(struct client *cl, uint32_t i, const struct lg_msg *m)
{
    const struct lg *lg = cl->lg;
    uint32_t ei = i % lg->o.nevents;
    int64_t j;

    if (!cl->in_phase || (lg->conns[i].flags & LG_CF_PHASE) == 0 ||
        !m->has_available || !m->has_event ||
        m->event_id != lg->o.first_event + (int64_t)ei) {
        cl->st->stray++;
        return -1;
    }
    j = lg->ev_base[ei] - 1 - m->available;
    if (j < 0 || j >= (int64_t)lg->ev_count[ei]) {
        cl->st->unexpected++;
        return -1;
    }
    return j;
}

static void
on_update(struct client *cl, uint32_t i, const struct lg_msg *m, int64_t now)
{
    struct lg *lg = cl->lg;
    struct lg_conn *c = &lg->conns[i];
    struct lg_stats *st = cl->st;
    int64_t j = phase_index(cl, i, m);
    uint64_t bit;

    if (j < 0) {
        return;
    }
    bit = 1ULL << j;
    st->frames++;
    st->last_ns = now;
    if ((c->seen & bit) != 0) {
        st->dups++;
        return;
    }
    if ((c->seen & ~(bit | (bit - 1))) != 0) {
        st->reordered++; /* a later booking came first */
    }
    c->seen |= bit;
    st->updates++;
    lg->lat_us[(size_t)i * LG_PHASE_MAX + (size_t)j] =
        (uint32_t)((now - lg->ctl->phase_origin_ns) / 1000);
}

static void
on_created(struct client *cl, uint32_t i, const struct lg_msg *m, int64_t now)
{
    if (phase_index(cl, i, m) < 0) {
        return;
    }
    cl->st->created++;
    cl->st->frames++;
    cl->st->last_ns = now;
}

/* Onsale mode: a seat_update, booking_created or booking_cancelled of an
 * open connection (see lg_onsale.h). */
static void
on_onsale(struct client *cl, uint32_t i, const struct lg_msg *m, int64_t now)
{
    struct lg *lg = cl->lg;
    int64_t j = phase_index(cl, i, m);

    if (j < 0) {
        return;
    }
    cl->st->last_ns = now;
    lg_onsale_apply(&lg->os[i],
                    lg->cover_us + (size_t)i * lg->o.onsale_bookings, j,
                    (int64_t)lg->ev_count[0] - 1, m,
                    (uint32_t)((now - lg->ctl->phase_origin_ns) / 1000),
                    &cl->st->os);
}

/* A text message; -1 if connection i was closed for it. */
static int
on_text(struct client *cl, uint32_t i, const struct lg_frame *f, int64_t now)
{
    struct lg_conn *c = &cl->lg->conns[i];
    struct lg_msg m;

    if (!f->fin || lg_json_scan((const char *)f->payload, f->len, &m) != 0) {
        conn_fail(cl, i, LG_FR_PROTO);
        return -1;
    }
    switch (m.type) {
    case LG_MSG_ESTABLISHED:
        if (c->state != LG_CS_HELLO || (c->flags & LG_CF_HELLO) != 0) {
            conn_fail(cl, i, LG_FR_PROTO);
            return -1;
        }
        c->flags |= LG_CF_HELLO;
        break;
    case LG_MSG_SEAT_UPDATE:
        if (c->state == LG_CS_OPEN && cl->lg->os != NULL) {
            on_onsale(cl, i, &m, now);
        } else if (c->state == LG_CS_OPEN) {
            on_update(cl, i, &m, now);
        } else if ((c->flags & LG_CF_HELLO) != 0) {
            on_snapshot(cl, i, &m, now);
        } else {
            conn_fail(cl, i, LG_FR_PROTO); /* SPEC 4: established first */
            return -1;
        }
        break;
    case LG_MSG_BOOKING_CREATED:
    case LG_MSG_BOOKING_CANCELLED:
        if (c->state == LG_CS_OPEN && cl->lg->os != NULL) {
            on_onsale(cl, i, &m, now);
        } else if (m.type == LG_MSG_BOOKING_CREATED) {
            on_created(cl, i, &m, now);
        } else {
            cl->st->stray++;
        }
        break;
    case LG_MSG_ERROR:
        cl->st->errors_rcvd++;
        break;
    default:
        cl->st->stray++;
        break;
    }
    return 0;
}

/* RFC 6455 5.5.2: answer a ping with a pong of the same payload. */
static void
send_pong(struct client *cl, uint32_t i, const struct lg_frame *f)
{
    uint8_t out[6 + 125];
    long n = lg_ws_frame_build(out, sizeof(out), LG_WS_OP_PONG, f->payload,
                               f->len, next_rand(cl));

    if (n > 0 && write(cl->lg->conns[i].fd, out, (size_t)n) == n) {
        cl->st->pongs++;
    } else {
        cl->st->pong_drops++;
    }
}

static void
on_close(struct client *cl, uint32_t i, const struct lg_frame *f)
{
    unsigned code =
        f->len >= 2 ? (unsigned)f->payload[0] << 8 | f->payload[1] : 1005;
    int rlen = f->len > 2 ? (int)(f->len - 2) : 0;

    snprintf(cl->st->last_close, sizeof(cl->st->last_close), "%u %.*s", code,
             rlen, (const char *)f->payload + 2);
    conn_fail(cl, i, LG_FR_CLOSED);
}

/* One frame; -1 if connection i was closed. */
static int
on_frame(struct client *cl, uint32_t i, const struct lg_frame *f, int64_t now)
{
    switch (f->opcode) {
    case LG_WS_OP_TEXT:
        return on_text(cl, i, f, now);
    case LG_WS_OP_PING:
        send_pong(cl, i, f);
        return 0;
    case LG_WS_OP_PONG:
        return 0;
    case LG_WS_OP_CLOSE:
        on_close(cl, i, f);
        return -1;
    default:
        conn_fail(cl, i, LG_FR_PROTO); /* binary or fragments: not seatcast */
        return -1;
    }
}

/* Parses buf[0..len) of connection i; returns the bytes used, or -1 if
 * the connection was closed. */
static long
conn_feed(struct client *cl, uint32_t i, const uint8_t *buf, size_t len,
          int64_t now)
{
    struct lg_conn *c = &cl->lg->conns[i];
    size_t off = 0;

    if (c->state == LG_CS_HANDSHAKE) {
        long n = lg_http_response((const char *)buf, len, &cl->st->last_status);

        if (n == LG_MORE) {
            return 0;
        }
        if (n < 0) {
            conn_fail(cl, i, LG_FR_HTTP);
            return -1;
        }
        c->state = LG_CS_HELLO;
        off = (size_t)n;
    }
    while (off < len) {
        struct lg_frame f;
        long n = lg_ws_frame_parse(buf + off, len - off, &f);

        if (n == LG_MORE) {
            break;
        }
        if (n < 0) {
            conn_fail(cl, i, LG_FR_PROTO);
            return -1;
        }
        if (on_frame(cl, i, &f, now) != 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return (long)off;
}

/* Reads connection i until the socket is drained. */
static void
conn_read(struct client *cl, uint32_t i)
{
    struct lg_conn *c = &cl->lg->conns[i];

    for (;;) {
        size_t have = c->carry_len, total;
        ssize_t n = read(c->fd, cl->rbuf + have, LG_RBUF_SIZE - have);
        long used;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            conn_fail(cl, i, LG_FR_EOF);
            return;
        }
        if (have > 0) {
            memcpy(cl->rbuf, c->carry, have);
            carry_drop(c);
        }
        total = have + (size_t)n;
        used = conn_feed(cl, i, cl->rbuf, total, mono_ns());
        if (used < 0) {
            return;
        }
        if ((size_t)used < total &&
            carry_keep(c, cl->rbuf + used, total - (size_t)used) != 0) {
            conn_fail(cl, i, LG_FR_PROTO);
            return;
        }
        if ((size_t)n < LG_RBUF_SIZE - have) {
            return;
        }
    }
}

/* ------------------------------------------------------------------ */
/* The loop and the commands                                            */

static void
loop_once(struct client *cl, int timeout_ms)
{
    struct epoll_event evs[EPOLL_BATCH];
    int n = epoll_wait(cl->ep, evs, EPOLL_BATCH, timeout_ms);

    for (int e = 0; e < n; e++) {
        uint32_t i = evs[e].data.u32;

        switch (cl->lg->conns[i].state) {
        case LG_CS_DEAD:
            break; /* closed earlier in this batch */
        case LG_CS_CONNECTING:
            conn_connected(cl, i);
            break;
        default:
            conn_read(cl, i);
            break;
        }
    }
    /* --read-pause-us: a wait that found few sockets ready is followed by
     * a pause, so that the next finds more (see lg_client.h) */
    if (cl->lg->o.read_pause_us > 0 && n > 0 && n < EPOLL_BATCH / 4) {
        struct timespec ts = {.tv_sec = 0,
                              .tv_nsec = (long)cl->lg->o.read_pause_us * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Keeps --window / nprocs connections in flight; true once all are
 * open or failed. */
static bool
connect_step(struct client *cl)
{
    int64_t now;

    while (cl->inflight < cl->window && cl->next < cl->hi) {
        conn_start(cl, cl->next++);
    }
    now = mono_ns(); /* after the starts: no start_us is later than now */
    if (now - cl->last_check_ns > 100000000) {
        check_timeouts(cl, now);
        cl->last_check_ns = now;
    }
    return cl->next == cl->hi && cl->inflight == 0;
}

static void
phase_begin(struct client *cl)
{
    struct lg_stats *st = cl->st;
    struct lg_conn *conns = cl->lg->conns;

    for (uint32_t i = cl->lo; i < cl->hi; i++) {
        conns[i].flags &= (uint8_t)~LG_CF_PHASE;
        if (conns[i].state == LG_CS_OPEN) {
            conns[i].flags |= LG_CF_PHASE;
            conns[i].seen = 0;
        }
        if (cl->lg->os != NULL) {
            lg_onsale_reset(&cl->lg->os[i]);
        }
    }
    if (cl->lg->os != NULL) {
        /* zeroed for lg_onsale_apply(), and faulted in now rather than
         * while the onsale runs */
        size_t k = cl->lg->o.onsale_bookings;

        memset(cl->lg->cover_us + (size_t)cl->lo * k, 0,
               (size_t)(cl->hi - cl->lo) * k * sizeof(*cl->lg->cover_us));
    }
    st->frames = st->updates = st->created = 0;
    st->dups = st->reordered = st->unexpected = 0;
    memset(&st->os, 0, sizeof(st->os));
    st->last_ns = 0;
    atomic_store_explicit(&st->prog_frames, 0, memory_order_relaxed);
    atomic_store_explicit(&st->prog_updates, 0, memory_order_relaxed);
    atomic_store_explicit(&st->prog_created, 0, memory_order_relaxed);
    atomic_store_explicit(&st->prog_final, 0, memory_order_relaxed);
    atomic_store_explicit(&st->prog_bookings, 0, memory_order_relaxed);
    cl->cpu0 = cpu_seconds();
    cl->in_phase = true;
}

static void
finish(struct client *cl, uint32_t seq)
{
    atomic_store_explicit(&cl->st->done, seq, memory_order_release);
}

/* Takes a new command from the parent, if there is one. */
static void
take_command(struct client *cl)
{
    struct lg_ctl *ctl = cl->lg->ctl;
    uint32_t seq = atomic_load_explicit(&ctl->seq, memory_order_acquire);

    if (seq == cl->seq_seen) {
        return;
    }
    cl->seq_seen = seq;
    switch (ctl->cmd) {
    case LG_CMD_CONNECT:
        cl->connecting = true; /* finished in lg_client_main() */
        cl->st->hs_start_ns = cl->st->hs_end_ns = mono_ns();
        break;
    case LG_CMD_BEGIN:
        phase_begin(cl);
        finish(cl, seq);
        break;
    case LG_CMD_END:
        cl->in_phase = false;
        cl->st->cpu_s = cpu_seconds() - cl->cpu0;
        finish(cl, seq);
        break;
    case LG_CMD_EXIT:
        close_all(cl);
        _exit(0);
    default:
        finish(cl, seq);
        break;
    }
}

/* Raises the soft descriptor limit to what this client needs. */
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
        rl.rlim_max = want; /* needs CAP_SYS_RESOURCE */
    }
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static void
client_init(struct client *cl, struct lg *lg, uint32_t k)
{
    memset(cl, 0, sizeof(*cl));
    cl->lg = lg;
    cl->st = &lg->stats[k];
    cl->k = k;
    cl->lo = lg_client_lo(lg->o.conns, lg->nprocs, k);
    cl->hi = lg_client_lo(lg->o.conns, lg->nprocs, k + 1);
    cl->next = cl->scan_from = cl->lo;
    cl->window = (lg->o.window + lg->nprocs - 1) / lg->nprocs;
    cl->rand = (uint32_t)mono_ns() | 1;
    cl->ep = epoll_create1(EPOLL_CLOEXEC);
    cl->rbuf = malloc(LG_RBUF_SIZE);
    /* the parent's death must not leave clients holding connections */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (cl->ep < 0 || cl->rbuf == NULL ||
        raise_nofile((rlim_t)(cl->hi - cl->lo) + 64) != 0) {
        fprintf(stderr,
                "loadgen: client %u: could not set up for %u "
                "connections: %s\n",
                k, cl->hi - cl->lo, strerror(errno));
        _exit(3);
    }
}

_Noreturn void
lg_client_main(struct lg *lg, uint32_t k)
{
    struct client cl;

    client_init(&cl, lg, k);
    for (;;) {
        take_command(&cl);
        if (cl.connecting && connect_step(&cl)) {
            cl.connecting = false;
            finish(&cl, cl.seq_seen);
        }
        loop_once(&cl, 10);
        if (cl.in_phase) {
            struct lg_stats *st = cl.st;

            atomic_store_explicit(&st->prog_frames,
                                  st->frames + st->os.frames,
                                  memory_order_relaxed);
            atomic_store_explicit(&st->prog_updates, st->updates,
                                  memory_order_relaxed);
            atomic_store_explicit(&st->prog_created, st->created,
                                  memory_order_relaxed);
            atomic_store_explicit(&st->prog_final, st->os.final,
                                  memory_order_relaxed);
            atomic_store_explicit(&st->prog_bookings, st->os.bookings,
                                  memory_order_relaxed);
        }
    }
}
