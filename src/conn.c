/*
 * conn.c - one client connection in a worker (see conn.h)
 *
 * Life of a connection:
 *   HTTP     bytes accumulate in `in` until sc_http_parse() has a head;
 *            /healthz and /metrics are answered, errors get their status,
 *            a valid upgrade gets 101 (and, without a valid token, one
 *            close frame 1008: PROTOCOL.md section 3).  The decisions
 *            are session.c's.
 *   WS       input is read into the worker's scratch buffer and fed to the
 *            frame parser; text messages go to the client protocol.
 *   CLOSING  our close frame is queued; waiting for the peer's (2 s).
 *   FLUSH    the last bytes are queued; the socket closes once they are
 *            written (or after 5 s).
 *
 * Output is a queue of shared frames written with writev(); it exists only
 * while the socket is full.  A queued seat_update is replaced by a newer
 * one of the same event (merge), so a slow reader ends on the latest
 * count; past --send-buffer-limit the connection is closed as a slow
 * consumer.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "frame.h"
#include "healthz.h"
#include "http_req.h"
#include "jwt.h"
#include "log.h"
#include "proto.h"
#include "registry.h"
#include "uring.h"
#include "ws_handshake.h"

#define RELAXED memory_order_relaxed
#define CLOSE_WAIT_MS 2000  /* peer's close frame after ours */
#define FLUSH_WAIT_MS 5000  /* last bytes of a closing connection */
#define LINGER_MS 2000      /* reading the peer's leftovers after that */
#define SNDBUF_MAX (128 * 1024) /* kernel send buffer per client */
#define READS_PER_EVENT 4   /* fairness between connections */
#define IOV_MAX_BATCH 64

static void on_event(evutil_socket_t fd, short what, void *arg);
static int queued(struct sc_conn *c);
static bool over_socket_limit(struct sc_conn *c);
static int refuse_unread(struct sc_conn *c);
static void slow_consumer(struct sc_conn *c);

/* ------------------------------------------------------------------ */
/* The worker's connections                                             */

int
sc_conn_env_init(struct sc_conn_env *env, const struct sc_config *cfg,
                 const struct sc_jwt_keys *keys, struct sc_registry *reg,
                 unsigned index)
{
    env->reg = reg;
    env->slot = sc_registry_worker(reg, index);
    env->index = index;
    sc_conn_env_set_config(env, cfg, keys);
    if (getrandom(&env->rand_state, sizeof(env->rand_state), 0) !=
            (ssize_t)sizeof(env->rand_state) ||
        env->rand_state == 0) {
        env->rand_state = sc_wall_ms() ^ ((uint64_t)getpid() << 32) ^ 1;
    }
    return 0;
}

void
sc_conn_env_set_config(struct sc_conn_env *env, const struct sc_config *cfg,
                       const struct sc_jwt_keys *keys)
{
    env->cfg = cfg;
    env->keys = keys;
    env->lim.max_message_rate = cfg->max_message_rate;
    env->lim.max_subscriptions = cfg->max_subscriptions;
    env->lim.jwt_leeway = cfg->jwt_leeway;
    env->lim.jwt_issuer = cfg->jwt_issuer;
    env->lim.jwt_audience = cfg->jwt_audience;
}

int
sc_conn_env_set_uring(struct sc_conn_env *env, struct sc_uring *u)
{
    struct sc_uring_send *us = NULL;

    if (u != NULL) {
        us = calloc(u->entries, sizeof(*us));
        if (us == NULL) {
            return -1;
        }
    }
    free(env->usend);
    env->usend = us;
    env->uring = u;
    return 0;
}

void
sc_conn_env_fini(struct sc_conn_env *env)
{
    while (env->conns != NULL) {
        sc_conn_free(env->conns);
    }
    sc_conn_env_set_uring(env, NULL);
    while (env->free_q != NULL) {
        struct sc_outq *q = env->free_q;
        env->free_q = q->next;
        free(q);
    }
    env->nfree_q = 0;
}

/* A 64-bit random number (xorshift64*, seeded per process). */
static uint64_t
env_random(struct sc_conn_env *env)
{
    uint64_t x = env->rand_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    env->rand_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/*
 * Queue nodes are recycled through the env's free list: a broadcast
 * queues one per subscriber, and malloc/free for each would be the
 * fan-out's main cost after the write itself.
 */
static struct sc_outq *
outq_get(struct sc_conn_env *env)
{
    struct sc_outq *q = env->free_q;

    if (q != NULL) {
        env->free_q = q->next;
        env->nfree_q--;
        return q;
    }
    return malloc(sizeof(*q));
}

static void
outq_put(struct sc_conn_env *env, struct sc_outq *q)
{
    if (env->nfree_q >= SC_CONN_FREE_Q_MAX) {
        free(q);
        return;
    }
    q->next = env->free_q;
    env->free_q = q;
    env->nfree_q++;
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                            */

/* Monotonic ms of the connection's next deadline. */
static uint64_t
next_due_ms(const struct sc_conn *c)
{
    const struct sc_conn_env *env = c->env;
    uint64_t ping_ms = (uint64_t)env->cfg->ping_interval * 1000, due, at;

    switch (c->phase) {
    case SC_CONN_HTTP:
        return c->created_ms +
               (uint64_t)env->cfg->handshake_timeout * 1000;
    case SC_CONN_WS:
        due = c->deadline_ms; /* next ping */
        if (c->last_rx_ms + 2 * ping_ms < due) {
            due = c->last_rx_ms + 2 * ping_ms;
        }
        at = sc_session_expiry_due(&c->sess, &env->lim, sc_mono_ms(),
                                   sc_wall_ms());
        return at < due ? at : due;
    default:
        return c->deadline_ms;
    }
}

/*
 * Files c in the wheel at the second of its next deadline (handshake,
 * ping, silence, token expiry, close).  Called whenever a deadline moves
 * earlier; a later one is found when the slot comes up.
 */
static void
schedule(struct sc_conn *c)
{
    sc_wheel_file(&c->env->wheel, &c->tn, next_due_ms(c));
}

static int tick(struct sc_conn *c, uint64_t now);

static void
on_due(struct sc_wheel_node *n, uint64_t now, void *arg)
{
    struct sc_conn *c =
        (struct sc_conn *)(void *)((char *)n - offsetof(struct sc_conn, tn));

    (void)arg;
    if (tick(c, now) == 0) {
        schedule(c);
    }
}

void
sc_conn_run_timers(struct sc_conn_env *env, uint64_t now)
{
    sc_wheel_run(&env->wheel, now, on_due, NULL);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

struct sc_conn *
sc_conn_new(struct sc_conn_env *env, int fd)
{
    struct sc_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        sc_log(SC_LOG_ERR, "out of memory for a new connection");
        close(fd);
        return NULL;
    }
    c->env = env;
    c->fd = fd;
    c->phase = SC_CONN_HTTP;
    c->created_ms = sc_mono_ms();
    c->last_rx_ms = c->created_ms;
    c->fol.owner = c;
    sc_session_init(&c->sess, &env->lim, c->created_ms);
    /* small messages that must leave at once (a unix socket refuses the
     * option, which is harmless) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* bound what the kernel holds for a client that stops reading (its
     * autotuned buffer grows to megabytes): a burst of bookings is a few
     * KiB per client, and past this seatcast's own queue and
     * --send-buffer-limit take over */
    int sndbuf = env->cfg->send_buffer_limit < SNDBUF_MAX
                     ? (int)env->cfg->send_buffer_limit
                     : SNDBUF_MAX;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    sc_ws_parser_init(&c->parser, env->cfg->max_message_size);
    event_assign(&c->ev, env->base, fd, EV_READ | EV_PERSIST, on_event, c);
    if (event_add(&c->ev, NULL) != 0) {
        sc_log(SC_LOG_ERR, "could not watch a new connection");
        close(fd);
        free(c);
        return NULL;
    }
    c->next = env->conns;
    if (env->conns != NULL) {
        env->conns->prev = c;
    }
    env->conns = c;
    env->nconns++;
    atomic_store_explicit(&env->slot->connections, env->nconns, RELAXED);
    atomic_fetch_add_explicit(&env->slot->connections_total, 1, RELAXED);
    schedule(c);
    if (over_socket_limit(c) && refuse_unread(c) != 0) {
        return NULL;
    }
    return c;
}

static void
outq_clear(struct sc_conn *c)
{
    while (c->out_head != NULL) {
        struct sc_outq *q = c->out_head;
        c->out_head = q->next;
        sc_frame_release(q->frame);
        outq_put(c->env, q);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
    c->pong = NULL;
}

static void
dirty_remove(struct sc_conn *c)
{
    struct sc_conn **pp = &c->env->dirty;

    if (!(c->flags & SC_CONN_DIRTY)) {
        return;
    }
    for (; *pp != NULL; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    c->flags &= (uint8_t)~SC_CONN_DIRTY;
}

void
sc_conn_free(struct sc_conn *c)
{
    struct sc_conn_env *env;

    if (c == NULL) {
        return;
    }
    env = c->env;
    event_del(&c->ev);
    sc_wheel_remove(&env->wheel, &c->tn);
    dirty_remove(c);
    sc_fanout_unsubscribe_all(env->fan, &c->fol);
    if (c->flags & SC_CONN_AUTHED) {
        atomic_fetch_sub_explicit(&env->slot->clients, 1, RELAXED);
    }
    if (c->flags & SC_CONN_USER) {
        sc_registry_user_del(env->reg, c->user_key, env->index);
    }
    outq_clear(c);
    free(c->in);
    free(c->msg);
    sc_session_fini(&c->sess);
    close(c->fd);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        env->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    env->nconns--;
    atomic_store_explicit(&env->slot->connections, env->nconns, RELAXED);
    free(c);
    if (env->closed != NULL) {
        env->closed(env->host);
    }
}

/* ------------------------------------------------------------------ */
/* Output                                                               */

/*
 * Write interest on or off.  While a WebSocket client's output is backed
 * up (the socket refuses bytes) it is not read either: whatever it sends
 * would only queue more replies it does not read (docs/PROTOCOL.md,
 * limits).  Reading resumes when the queue is empty.  Other phases keep
 * reading: a closing handshake waits for the client's close frame.
 */
static void
want_write(struct sc_conn *c, bool on)
{
    short ev = EV_PERSIST | (on ? EV_WRITE : 0) |
               (on && c->phase == SC_CONN_WS ? 0 : EV_READ);

    if (on == ((c->flags & SC_CONN_WANT_WRITE) != 0)) {
        return;
    }
    event_del(&c->ev);
    event_assign(&c->ev, c->env->base, c->fd, ev, on_event, c);
    event_add(&c->ev, NULL);
    if (on) {
        c->flags |= SC_CONN_WANT_WRITE;
    } else {
        c->flags &= (uint8_t)~SC_CONN_WANT_WRITE;
    }
}

/* The socket took wr bytes of the queue: its frames are done with. */
static void
written(struct sc_conn *c, size_t wr)
{
    struct sc_conn_env *env = c->env;

    atomic_fetch_add_explicit(&env->slot->bytes_sent, (uint64_t)wr, RELAXED);
    c->out_bytes -= (uint64_t)wr;
    while (wr > 0) {
        struct sc_outq *q = c->out_head;
        size_t left = q->frame->len - q->off;
        if (wr < left) {
            q->off += (uint32_t)wr;
            break;
        }
        wr -= left;
        c->out_head = q->next;
        if (q == c->pong) {
            c->pong = NULL;
        }
        sc_frame_release(q->frame);
        outq_put(env, q);
        atomic_fetch_add_explicit(&env->slot->messages_sent, 1, RELAXED);
    }
    if (c->out_head == NULL) {
        c->out_tail = NULL;
    }
}

/* The queue is empty: no more write interest; a FLUSH is complete.
 * Returns -1 if the connection was freed. */
static int
flushed(struct sc_conn *c)
{
    want_write(c, false);
    if (c->phase == SC_CONN_FLUSH) {
        /* lingering close (as nginx does): closing with unread input
         * would send RST, and the peer could lose what we just wrote */
        if (shutdown(c->fd, SHUT_WR) != 0) {
            sc_conn_free(c);
            return -1;
        }
        c->phase = SC_CONN_LINGER;
        c->deadline_ms = sc_mono_ms() + LINGER_MS;
        schedule(c);
    }
    return 0;
}

/*
 * Writes as much of the queue as the socket takes.  Returns 0, or -1 if
 * the connection was freed (write error, or FLUSH complete).
 */
static int
flush_queue(struct sc_conn *c)
{
    struct iovec iov[IOV_MAX_BATCH];

    while (c->out_head != NULL) {
        int n = 0;
        for (struct sc_outq *q = c->out_head; q && n < IOV_MAX_BATCH;
             q = q->next, n++) {
            iov[n].iov_base = q->frame->data + q->off;
            iov[n].iov_len = q->frame->len - q->off;
        }
        ssize_t wr = writev(c->fd, iov, n);
        if (wr < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_write(c, true);
                return 0;
            }
            sc_log(SC_LOG_DEBUG, "writev() failed: %s", strerror(errno));
            sc_conn_free(c);
            return -1;
        }
        written(c, (size_t)wr);
    }
    return flushed(c);
}

/*
 * One io_uring send's result (sc_uring_run() calls it): what the socket
 * took is done with; the rest, if any, is written as flush_queue() would
 * (which asks for write interest when the socket is full: -EAGAIN here
 * too).
 */
static void
uring_done(void *arg, uint64_t tag, int32_t res)
{
    struct sc_conn *c = ((struct sc_conn_env *)arg)->usend[tag].c;

    if (res < 0 && res != -EAGAIN && res != -EWOULDBLOCK && res != -EINTR) {
        sc_log(SC_LOG_DEBUG, "sendmsg() failed: %s", strerror(-res));
        sc_conn_free(c);
        return;
    }
    if (res > 0) {
        written(c, (size_t)res);
    }
    if (c->out_head != NULL) {
        flush_queue(c);
    } else {
        flushed(c);
    }
}

/* The dirty connections' queues, through the ring: one system call for
 * up to a ring's worth of sockets. */
static void
flush_dirty_uring(struct sc_conn_env *env)
{
    struct sc_uring *u = env->uring;

    while (env->dirty != NULL) {
        struct sc_conn *c = env->dirty;
        env->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->flags &= (uint8_t)~SC_CONN_DIRTY;
        if (c->flags & SC_CONN_WANT_WRITE) {
            continue;
        }
        if (c->out_head == NULL) {
            flushed(c);
            continue;
        }
        struct sc_uring_send *us = &env->usend[u->queued];
        size_t n = 0;
        for (struct sc_outq *q = c->out_head; q && n < SC_URING_IOV;
             q = q->next, n++) {
            us->iov[n].iov_base = q->frame->data + q->off;
            us->iov[n].iov_len = q->frame->len - q->off;
        }
        us->c = c;
        memset(&us->mh, 0, sizeof(us->mh));
        us->mh.msg_iov = us->iov;
        us->mh.msg_iovlen = n;
        sc_uring_sendmsg(u, c->fd, &us->mh, u->queued);
        if (sc_uring_full(u) || env->dirty == NULL) {
            if (sc_uring_run(u, uring_done, env) != 0) {
                sc_log(SC_LOG_WARN, "io_uring_enter() failed: %s",
                       strerror(errno));
            }
        }
    }
}

void
sc_conn_flush_dirty(struct sc_conn_env *env)
{
    /* one write per socket per batch */
    if (env->uring != NULL) {
        flush_dirty_uring(env);
        return;
    }
    while (env->dirty != NULL) {
        struct sc_conn *c = env->dirty;
        env->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->flags &= (uint8_t)~SC_CONN_DIRTY;
        if (!(c->flags & SC_CONN_WANT_WRITE)) {
            flush_queue(c);
        }
    }
}

/* Drops a queued, untouched seat_update of the same event. */
static void
merge_pending(struct sc_conn *c, int64_t merge_id)
{
    struct sc_outq **pp = &c->out_head, *prev = NULL;

    for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
        struct sc_outq *q = *pp;
        if (q->off == 0 && q->frame->merge_id == merge_id) {
            *pp = q->next;
            if (c->out_tail == q) {
                c->out_tail = prev;
            }
            c->out_bytes -= q->frame->len;
            sc_frame_release(q->frame);
            outq_put(c->env, q);
            return;
        }
    }
}

static int
enqueue(struct sc_conn *c, struct sc_frame *f)
{
    struct sc_outq *q = outq_get(c->env);

    if (q == NULL) {
        return -1;
    }
    f->refs++;
    q->frame = f;
    q->off = 0;
    q->next = NULL;
    if (c->out_tail != NULL) {
        c->out_tail->next = q;
    } else {
        c->out_head = q;
    }
    c->out_tail = q;
    c->out_bytes += f->len;
    return 0;
}

/*
 * Queues a frame of this connection's own (taking the caller's reference)
 * and writes it unless the socket is full.  -1 if c was freed.
 */
static int
send_private(struct sc_conn *c, struct sc_frame *f)
{
    int rc;

    if (f == NULL) {
        sc_conn_free(c);
        return -1;
    }
    rc = enqueue(c, f);
    sc_frame_release(f);
    if (rc != 0) {
        sc_conn_free(c);
        return -1;
    }
    return queued(c);
}

/*
 * After a frame of the connection's own was queued: writes unless the
 * socket is full.  Replies (pongs, answers, errors) count toward
 * --send-buffer-limit like broadcasts, so a client that sends without
 * reading is closed as a slow consumer instead of growing the worker.
 * -1 if c was freed or is now closing.
 */
static int
queued(struct sc_conn *c)
{
    if (!(c->flags & SC_CONN_WANT_WRITE) && flush_queue(c) != 0) {
        return -1;
    }
    if (c->phase == SC_CONN_WS &&
        c->out_bytes > c->env->cfg->send_buffer_limit) {
        slow_consumer(c);
        return -1;
    }
    return 0;
}

/* Queues raw bytes (an encoded frame, an HTTP response). */
static int
send_bytes(struct sc_conn *c, const void *data, size_t len)
{
    return send_private(c, sc_frame_new(data, len, 0));
}

/*
 * Queues the pong frame data[0..len).  While an earlier pong waits in the
 * queue untouched, the new one takes its place (RFC 6455 5.5.3 allows
 * answering only the latest ping), so pings from a client that does not
 * read cost one queued pong, not one each.  -1 if c was freed or closes.
 */
static int
send_pong(struct sc_conn *c, const void *data, size_t len)
{
    struct sc_frame *f = sc_frame_new(data, len, 0);
    struct sc_outq *q = c->pong;

    if (f == NULL) {
        sc_conn_free(c);
        return -1;
    }
    if (q != NULL && q->off == 0) {
        c->out_bytes = c->out_bytes - q->frame->len + f->len;
        sc_frame_release(q->frame);
        q->frame = f;
        return queued(c);
    }
    if (enqueue(c, f) != 0) {
        sc_frame_release(f);
        sc_conn_free(c);
        return -1;
    }
    sc_frame_release(f);
    c->pong = c->out_tail;
    return queued(c);
}

/* Sends one text frame with a JSON payload of n bytes. */
static int
send_text(struct sc_conn *c, const char *json, long n)
{
    if (n < 0) {
        return 0; /* cannot happen with our encoders' sizes */
    }
    return send_private(c, sc_frame_text(json, n, 0));
}

static void
slow_consumer(struct sc_conn *c)
{
    struct sc_conn_env *env = c->env;
    uint8_t buf[SC_WS_CONTROL_MAX + SC_WS_HEADER_MAX];
    long n;

    sc_log(SC_LOG_WARN, "closing a slow consumer: %llu bytes pending, "
           "limit %llu", (unsigned long long)c->out_bytes,
           (unsigned long long)env->cfg->send_buffer_limit);
    atomic_fetch_add_explicit(&env->slot->slow_consumers, 1, RELAXED);
    sc_fanout_unsubscribe_all(env->fan, &c->fol);
    /* keep a frame already half written, drop the rest: the close frame
     * must follow a whole frame */
    if (c->out_head != NULL && c->out_head->off > 0) {
        struct sc_outq *keep = c->out_head;
        c->out_head = keep->next;
        outq_clear(c);
        keep->next = NULL;
        c->out_head = c->out_tail = keep;
        c->out_bytes = keep->frame->len - keep->off;
        c->pong = NULL;
    } else {
        outq_clear(c);
    }
    n = sc_ws_close_frame(buf, sizeof(buf), SC_SESSION_CLOSE_POLICY,
                          SC_SESSION_SLOW);
    c->phase = SC_CONN_FLUSH;
    c->deadline_ms = sc_mono_ms() + FLUSH_WAIT_MS;
    schedule(c);
    if (n > 0) {
        send_bytes(c, buf, (size_t)n);
    }
}

/* On the env's flush list (once). */
static void
mark_dirty(struct sc_conn *c)
{
    if (!(c->flags & SC_CONN_DIRTY)) {
        c->flags |= SC_CONN_DIRTY;
        c->dirty_next = c->env->dirty;
        c->env->dirty = c;
    }
}

int
sc_conn_send_frame(struct sc_conn *c, struct sc_frame *f)
{
    struct sc_conn_env *env = c->env;

    if (c->phase != SC_CONN_WS) {
        return 0;
    }
    /* merge only for a client that is not reading (socket full): a
     * batch queued for a writable socket keeps every seat_update */
    if (f->merge_id != 0 && (c->flags & SC_CONN_WANT_WRITE)) {
        merge_pending(c, f->merge_id);
    }
    if (enqueue(c, f) != 0) {
        sc_conn_free(c);
        return -1;
    }
    if (c->out_bytes > env->cfg->send_buffer_limit &&
        !(c->flags & SC_CONN_WANT_WRITE)) {
        /* a batch may queue more than the limit for a client that reads
         * well: only a socket that refuses bytes makes a slow consumer */
        if (flush_queue(c) != 0) {
            return -1;
        }
    }
    if (c->out_bytes > env->cfg->send_buffer_limit) {
        slow_consumer(c);
        return -1;
    }
    if (c->flags & SC_CONN_WANT_WRITE) {
        return 0;
    }
    if (env->batching) {
        mark_dirty(c);
        return 0;
    }
    return flush_queue(c);
}

int
sc_conn_send_frames(struct sc_conn *c, struct sc_frame *const *fs, size_t n)
{
    struct iovec iov[IOV_MAX_BATCH];
    struct sc_conn_env *env = c->env;
    ssize_t wr;

    if (c->phase != SC_CONN_WS || n == 0) {
        return 0;
    }
    if (c->out_head != NULL || (c->flags & SC_CONN_WANT_WRITE) ||
        n > IOV_MAX_BATCH) {
        for (size_t i = 0; i < n; i++) {
            if (sc_conn_send_frame(c, fs[i]) != 0) {
                return -1;
            }
        }
        return 0;
    }
    /* with a ring, an idle socket's frames are queued and written with
     * the batch's other sockets at its end (sc_conn_flush_dirty): one
     * system call for many sockets.  As with the writev below, what an
     * idle socket is given in one batch never makes a slow consumer,
     * however large: only a socket that refuses bytes does */
    if (env->batching && env->uring != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (enqueue(c, fs[i]) != 0) {
                sc_conn_free(c);
                return -1;
            }
        }
        mark_dirty(c);
        return 0;
    }
    /* the common case: an idle socket takes the whole batch at once, and
     * nothing is queued or allocated for this client */
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = fs[i]->data;
        iov[i].iov_len = fs[i]->len;
    }
    do {
        wr = writev(c->fd, iov, (int)n);
    } while (wr < 0 && errno == EINTR);
    if (wr < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            sc_log(SC_LOG_DEBUG, "writev() failed: %s", strerror(errno));
            sc_conn_free(c);
            return -1;
        }
        wr = 0;
    }
    atomic_fetch_add_explicit(&env->slot->bytes_sent, (uint64_t)wr, RELAXED);
    for (size_t i = 0; i < n; i++) {
        if ((size_t)wr >= fs[i]->len) {
            wr -= (ssize_t)fs[i]->len;
            atomic_fetch_add_explicit(&env->slot->messages_sent, 1, RELAXED);
            continue;
        }
        /* what the socket did not take waits for it */
        if (enqueue(c, fs[i]) != 0) {
            sc_conn_free(c);
            return -1;
        }
        if (wr > 0) {
            c->out_tail->off = (uint32_t)wr;
            c->out_bytes -= (uint64_t)wr;
            wr = 0;
        }
    }
    if (c->out_head != NULL) {
        want_write(c, true);
    }
    return 0;
}

int
sc_conn_close_ws(struct sc_conn *c, uint16_t code, const char *reason)
{
    uint8_t buf[SC_WS_CONTROL_MAX + SC_WS_HEADER_MAX];
    long n;

    if (c->phase != SC_CONN_WS) {
        return 0;
    }
    sc_fanout_unsubscribe_all(c->env->fan, &c->fol);
    n = sc_ws_close_frame(buf, sizeof(buf), code, reason);
    c->phase = SC_CONN_CLOSING;
    c->deadline_ms = sc_mono_ms() + CLOSE_WAIT_MS;
    schedule(c);
    return n > 0 ? send_bytes(c, buf, (size_t)n) : 0;
}

/* Answers and closes: the HTTP response or a final close echo.  -1 if c
 * was freed. */
static int
finish_with(struct sc_conn *c, const void *data, size_t len)
{
    c->phase = SC_CONN_FLUSH;
    c->deadline_ms = sc_mono_ms() + FLUSH_WAIT_MS;
    schedule(c);
    return send_bytes(c, data, len);
}

/* ------------------------------------------------------------------ */
/* Peer address, for logs                                               */

/* X-Forwarded-For entries looked at, from the right */
#define XFF_KEEP 16

/*
 * The client's address for the log.  When the peer is a --trusted-proxy
 * (or a unix socket, which only a local proxy can reach), X-Forwarded-For
 * is walked from the right past trusted proxies, and the first address
 * that is not one is the client's: entries left of it were written by
 * whoever sent the request and prove nothing.
 */
static void
client_addr(struct sc_conn *c, const struct sc_handshake *hs, char *out,
            size_t len)
{
    const struct sc_config *cfg = c->env->cfg;
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    char peer[64], entries[XFF_KEEP][64];
    const char *e;
    size_t el, pos = 0, n = 0;
    bool trusted;

    if (getpeername(c->fd, (struct sockaddr *)&ss, &slen) != 0) {
        snprintf(out, len, "unknown");
        return;
    }
    if (ss.ss_family == AF_UNIX) {
        snprintf(peer, sizeof(peer), "unix");
        trusted = true;
    } else {
        const void *a = ss.ss_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&ss)
                                  ->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&ss)
                                  ->sin6_addr;
        inet_ntop(ss.ss_family, a, peer, sizeof(peer));
        trusted = sc_config_proxy_trusted(cfg, peer);
    }
    snprintf(out, len, "%s", peer);
    if (!trusted || hs == NULL || hs->forwarded_for == NULL) {
        return;
    }
    /* the walk starts at the right: keep the last XFF_KEEP entries (a
     * ring), whatever a client put to their left */
    while (sc_http_list_next(hs->forwarded_for, hs->forwarded_for_len, &pos,
                             &e, &el)) {
        char *slot = entries[n % XFF_KEEP];
        if (el >= sizeof(entries[0])) {
            slot[0] = '\0'; /* not an address: the walk stops there */
        } else {
            memcpy(slot, e, el);
            slot[el] = '\0';
        }
        n++;
    }
    for (size_t k = 0; k < n && k < XFF_KEEP; k++) {
        const char *a = entries[(n - 1 - k) % XFF_KEEP];
        struct in6_addr tmp;
        /* only an address goes to the log, never arbitrary header text */
        if (inet_pton(AF_INET, a, &tmp) != 1 &&
            inet_pton(AF_INET6, a, &tmp) != 1) {
            return;
        }
        if (k == n - 1 || k == XFF_KEEP - 1 ||
            !sc_config_proxy_trusted(cfg, a)) {
            snprintf(out, len, "%.63s (via %.63s)", a, peer);
            return;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Client protocol: session.c decides, this carries it out              */

/* Sends the reply an action holds, if any.  -1 if c was freed. */
static int
send_reply(struct sc_conn *c, const struct sc_session_action *act)
{
    return send_text(c, act->reply, act->len);
}

/* subscribed (or not) + the current seats; -1 if c was freed */
static int
subscribe(struct sc_conn *c, uint64_t id, bool quiet)
{
    struct sc_conn_env *env = c->env;
    struct sc_session_action act;
    struct sc_event_entry *e;
    struct sc_event_state st;
    char msg[SC_PROTO_MSG_MAX];
    int rc;

    e = sc_registry_event_find(env->reg, (int64_t)id);
    if (e != NULL) {
        sc_registry_event_read(e, &st);
    }
    if (e == NULL || !(st.flags & SC_EVENT_LIVE) ||
        (st.flags & SC_EVENT_DELETED)) {
        sc_session_subscribe_refused(SC_SESSION_SUB_NOT_FOUND, id,
                                     sc_wall_ms(), &act);
        return send_reply(c, &act);
    }
    rc = sc_fanout_subscribe(env->fan, &c->fol, e, (int64_t)id,
                             env->lim.max_subscriptions, &st);
    if (rc < 0) {
        if (rc == -1) {
            sc_log(SC_LOG_ERR, "out of memory subscribing to event %llu",
                   (unsigned long long)id);
        }
        sc_session_subscribe_refused(rc == -2 ? SC_SESSION_SUB_LIMIT
                                              : SC_SESSION_SUB_NOMEM,
                                     id, sc_wall_ms(), &act);
        return send_reply(c, &act);
    }
    if (!quiet &&
        send_text(c, msg, sc_proto_subscribed(msg, sizeof(msg), id,
                                              sc_wall_ms())) != 0) {
        return -1;
    }
    /* the snapshot, read by the fan-out after subscribing */
    return send_text(c, msg,
                     sc_proto_seat_update(msg, sizeof(msg), id, st.available,
                                          st.capacity, sc_wall_ms()));
}

/* One complete text message.  Returns -1 if c was freed. */
static int
handle_message(struct sc_conn *c, const uint8_t *data, size_t len)
{
    struct sc_conn_env *env = c->env;
    struct sc_session_action act;
    struct sc_totals t;
    char msg[SC_PROTO_MSG_MAX];

    atomic_fetch_add_explicit(&env->slot->messages_received, 1, RELAXED);
    sc_session_on_message(&c->sess, &env->lim, data, len, sc_mono_ms(),
                          sc_wall_ms(), &act);
    if (act.rate_limited) {
        atomic_fetch_add_explicit(&env->slot->rate_limited, 1, RELAXED);
    }
    switch (act.what) {
    case SC_SESSION_NOTHING:
        return 0;
    case SC_SESSION_REPLY:
        return send_reply(c, &act);
    case SC_SESSION_SUBSCRIBE:
        return subscribe(c, act.event_id, false);
    case SC_SESSION_UNSUBSCRIBE:
        sc_fanout_unsubscribe(env->fan, &c->fol, (int64_t)act.event_id);
        return send_reply(c, &act);
    case SC_SESSION_STATS:
        sc_registry_totals(env->reg, &t);
        return send_text(
            c, msg,
            sc_proto_stats(msg, sizeof(msg), t.clients,
                           atomic_load(&env->reg->hdr->events_watched),
                           sc_wall_ms()));
    case SC_SESSION_CLOSE:
        sc_log(SC_LOG_WARN, "closing a client still flooding after 2 s "
               "of rate_limited errors");
        return sc_conn_close_ws(c, act.close_code, act.close_reason);
    }
    return 0;
}

/* Appends a chunk of a text message; handles it when fin. -1: freed. */
static int
on_text(struct sc_conn *c, const struct sc_ws_event *ev)
{
    int rc;

    if (ev->fin && c->msg_len == 0) {
        return handle_message(c, ev->data, ev->len); /* the common case */
    }
    if (c->msg_len + ev->len > c->msg_cap) {
        uint32_t cap = c->msg_cap ? c->msg_cap : 256;
        while (cap < c->msg_len + ev->len) {
            cap *= 2;
        }
        uint8_t *p = realloc(c->msg, cap);
        if (p == NULL) {
            sc_conn_free(c);
            return -1;
        }
        c->msg = p;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, ev->data, ev->len);
    c->msg_len += (uint32_t)ev->len;
    if (!ev->fin) {
        return 0;
    }
    rc = handle_message(c, c->msg, c->msg_len);
    if (rc == 0) {
        free(c->msg);
        c->msg = NULL;
        c->msg_len = c->msg_cap = 0;
    }
    return rc;
}

/* One parser event.  Returns -1 if c was freed, 1 to stop reading. */
static int
on_ws_event(struct sc_conn *c, const struct sc_ws_event *ev)
{
    uint8_t buf[SC_WS_CONTROL_MAX + SC_WS_HEADER_MAX];
    long n;

    switch (ev->type) {
    case SC_WS_EV_TEXT:
        if (c->phase != SC_CONN_WS) {
            return 0;
        }
        return on_text(c, ev);
    case SC_WS_EV_PING:
        if (c->phase != SC_CONN_WS) {
            return 0;
        }
        n = sc_ws_frame_encode(buf, sizeof(buf), SC_WS_OP_PONG, ev->data,
                               ev->len);
        return n < 0 ? 0 : send_pong(c, buf, (size_t)n);
    case SC_WS_EV_PONG:
        return 0;
    case SC_WS_EV_CLOSE:
        if (c->phase == SC_CONN_CLOSING) {
            sc_conn_free(c); /* the handshake is complete */
            return -1;
        }
        sc_fanout_unsubscribe_all(c->env->fan, &c->fol);
        n = sc_ws_close_frame(buf, sizeof(buf), ev->close_code, NULL);
        if (n < 0) {
            sc_conn_free(c);
            return -1;
        }
        finish_with(c, buf, (size_t)n);
        return 1;
    case SC_WS_EV_ERROR:
        sc_log(SC_LOG_INFO, "closing a client for a protocol violation "
               "(close code %u)", ev->close_code);
        if (c->phase != SC_CONN_WS) {
            sc_conn_free(c);
            return -1;
        }
        sc_fanout_unsubscribe_all(c->env->fan, &c->fol);
        n = sc_ws_close_frame(buf, sizeof(buf), ev->close_code, NULL);
        if (n < 0) {
            sc_conn_free(c);
            return -1;
        }
        finish_with(c, buf, (size_t)n);
        return 1;
    }
    return 0;
}

/* Feeds bytes to the frame parser.  -1 if c was freed, 1 stop reading. */
static int
feed_ws(struct sc_conn *c, uint8_t *buf, size_t len)
{
    size_t off = 0;

    c->last_rx_ms = sc_mono_ms();
    while (off < len) {
        struct sc_ws_event ev;
        bool have = false;
        long n = sc_ws_parser_feed(&c->parser, buf + off, len - off, &ev,
                                   &have);
        if (n < 0) {
            sc_conn_free(c);
            return -1;
        }
        off += (size_t)n;
        if (have) {
            int rc = on_ws_event(c, &ev);
            if (rc != 0) {
                return rc;
            }
        } else if (n == 0) {
            break;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP and the upgrade                                                 */

static void
http_reply(struct sc_conn *c, int status, const char *ctype,
           const char *extra, const char *body, size_t blen)
{
    char *buf = malloc(blen + 512);
    long n;

    if (buf == NULL) {
        sc_conn_free(c);
        return;
    }
    n = sc_http_response(status, ctype, extra, body, blen, buf, blen + 512);
    if (n < 0) {
        free(buf);
        sc_conn_free(c);
        return;
    }
    finish_with(c, buf, (size_t)n);
    free(buf);
}

static void
serve_plain(struct sc_conn *c, const struct sc_handshake *hs)
{
    struct sc_conn_env *env = c->env;
    size_t len = 0;
    int status = 200;
    char *body;

    if (hs->route == SC_ROUTE_HEALTHZ) {
        body = sc_healthz_body(env->reg, &status, &len);
        if (body != NULL) {
            http_reply(c, status, "application/json", NULL, body, len);
        }
    } else {
        body = sc_metrics_body(env->reg, &len);
        if (body != NULL) {
            http_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                       NULL, body, len);
        }
    }
    if (body == NULL) {
        sc_conn_free(c);
    }
    free(body);
}

/*
 * Verifies the token (session.c), then its jti against the revoked set.
 * Returns NULL when valid (claims filled), else the close reason for the
 * client; *why gets the precise cause for the log.
 */
static const char *
authenticate(struct sc_conn *c, const struct sc_handshake *hs,
             const char *token, struct sc_jwt_claims *claims,
             const char **why)
{
    struct sc_conn_env *env = c->env;
    const char *fail = sc_session_verify(
        env->keys, &env->lim, hs->token_source != SC_TOKEN_NONE,
        hs->token_too_long, token, hs->token_len, sc_wall_ms(), claims, why);

    if (fail == NULL && claims->jti[0] != '\0' &&
        sc_registry_is_revoked(env->reg, sc_registry_hash_str(claims->jti))) {
        *why = "token revoked";
        sc_jwt_claims_fini(claims);
        return SC_SESSION_BAD_TOKEN;
    }
    return fail;
}

/* Upgrade done, token valid: count the client and greet it.  Returns -1
 * if c was freed (its socket failed). */
static int
start_session(struct sc_conn *c, const struct sc_handshake *hs,
              struct sc_jwt_claims *cl, const char *addr)
{
    struct sc_conn_env *env = c->env;
    char msg[SC_PROTO_MSG_MAX], cid[48];

    if (sc_session_start(&c->sess, cl,
                         cl->jti[0] ? sc_registry_hash_str(cl->jti) : 0) !=
        0) {
        sc_conn_free(c);
        return -1;
    }
    c->flags |= SC_CONN_AUTHED;
    c->phase = SC_CONN_WS;
    c->deadline_ms = sc_mono_ms() + (uint64_t)env->cfg->ping_interval * 1000;
    schedule(c); /* now also the token's expiry */
    atomic_fetch_add_explicit(&env->slot->clients, 1, RELAXED);
    sc_proto_client_id(cid, sizeof(cid), sc_wall_ms(), env_random(env));
    if (hs->route == SC_ROUTE_WS_EVENT) {
        sc_log(SC_LOG_INFO, "client %s connected: user %s, from %s, event %llu",
               cid, cl->user, addr, (unsigned long long)hs->event_id);
    } else {
        sc_log(SC_LOG_INFO, "client %s connected: user %s, from %s", cid,
               cl->user, addr);
    }
    if (send_text(c, msg,
                  sc_proto_connection_established(
                      msg, sizeof(msg), cid,
                      hs->route == SC_ROUTE_WS_EVENT ? hs->event_id : 0,
                      sc_wall_ms())) != 0) {
        return -1;
    }
    if (hs->route == SC_ROUTE_WS_EVENT) {
        struct sc_session_action act;
        sc_session_open_event(&c->sess, hs->event_id, sc_wall_ms(), &act);
        if (act.what != SC_SESSION_SUBSCRIBE) {
            return send_reply(c, &act) < 0 ? -1 : 0;
        }
        return subscribe(c, hs->event_id, true) < 0 ? -1 : 0;
    }
    return 0;
}

/*
 * --max-connections counts every open socket of every worker, this one
 * included, handshaking or not: a client that holds request heads
 * half-sent takes places too (docs/PROTOCOL.md, limits).
 */
static bool
over_socket_limit(struct sc_conn *c)
{
    struct sc_totals t;

    sc_registry_totals(c->env->reg, &t);
    return t.connections > c->env->cfg->max_connections;
}

/*
 * Over the limit at accept: 503 at once, and the socket is never read
 * (its request may not even have arrived).  The answer goes out through
 * the usual lingering close.  -1 if c was freed.
 */
static int
refuse_unread(struct sc_conn *c)
{
    struct sc_handshake hs;
    char resp[512];
    long n;

    memset(&hs, 0, sizeof(hs));
    hs.status = 503;
    hs.reason = "too many connections";
    atomic_fetch_add_explicit(&c->env->slot->handshake_failures, 1, RELAXED);
    sc_log(SC_LOG_INFO, "connection refused with 503 unread: over "
           "--max-connections %u (every open socket counts)",
           (unsigned)c->env->cfg->max_connections);
    n = sc_ws_handshake_error_response(&hs, resp, sizeof(resp));
    if (n < 0) {
        sc_conn_free(c);
        return -1;
    }
    return finish_with(c, resp, (size_t)n);
}

/* --max-connections also bounds the clients of every worker. */
static bool
over_connection_limit(struct sc_conn *c)
{
    struct sc_totals t;

    sc_registry_totals(c->env->reg, &t);
    return t.clients >= c->env->cfg->max_connections;
}

/*
 * The request head is complete: answer it.  Returns 0 when c is now a
 * WebSocket session (frames sent behind the request may be fed to it), 1
 * when it is closing, -1 when it was answered with its last bytes or was
 * freed: then nothing more may be read into it.
 */
static int
handle_request(struct sc_conn *c, const struct sc_http_req *req)
{
    struct sc_conn_env *env = c->env;
    const struct sc_config *cfg = env->cfg;
    struct sc_handshake_opts opts = {.allowed_origins = cfg->allowed_origin,
                                     .nallowed_origins =
                                         cfg->nallowed_origin};
    struct sc_handshake hs;
    struct sc_jwt_claims claims;
    char token[SC_WS_TOKEN_MAX + 1], addr[160], resp[512];
    const char *fail, *why = "";
    long n;

    memset(&claims, 0, sizeof(claims));
    int status = sc_ws_handshake_check(req, &opts, &hs, token, sizeof(token));
    client_addr(c, &hs, addr, sizeof(addr));
    if (status == 200) {
        serve_plain(c, &hs);
        return -1;
    }
    if (status == 101 && over_connection_limit(c)) {
        hs.status = status = 503;
        hs.reason = "too many connections";
    }
    if (status != 101) {
        atomic_fetch_add_explicit(&env->slot->handshake_failures, 1, RELAXED);
        sc_log(SC_LOG_INFO, "request from %s refused with %d: %s", addr,
               status, hs.reason ? hs.reason : "");
        n = sc_ws_handshake_error_response(&hs, resp, sizeof(resp));
        if (n < 0) {
            sc_conn_free(c);
            return -1;
        }
        finish_with(c, resp, (size_t)n);
        return -1;
    }
    fail = authenticate(c, &hs, token, &claims, &why);
    memset(token, 0, sizeof(token));
    n = sc_ws_handshake_response(&hs, resp, sizeof(resp));
    if (n < 0 || send_bytes(c, resp, (size_t)n) != 0) {
        sc_jwt_claims_fini(&claims);
        if (n < 0) {
            sc_conn_free(c);
        }
        return -1;
    }
    atomic_fetch_add_explicit(&env->slot->handshakes, 1, RELAXED);
    c->phase = SC_CONN_WS;
    if (fail == NULL && cfg->max_connections_per_user > 0) {
        c->user_key = sc_registry_hash_str(claims.user);
        int ok = sc_registry_user_add(env->reg, c->user_key, env->index,
                                      cfg->max_connections_per_user);
        if (ok == 1) {
            c->flags |= SC_CONN_USER;
        } else if (ok < 0) {
            /* a full table must not lock users out: admit, uncounted */
            sc_log(SC_LOG_WARN, "user table full: user %s admitted without "
                   "a per-user count", claims.user);
        } else {
            sc_log(SC_LOG_WARN, "refused user %s from %s: too many "
                   "connections", claims.user, addr);
            sc_jwt_claims_fini(&claims);
            return sc_conn_close_ws(c, SC_SESSION_CLOSE_POLICY,
                                    SC_SESSION_USER_LIMIT) < 0
                       ? -1
                       : 1;
        }
    }
    if (fail != NULL) {
        atomic_fetch_add_explicit(&env->slot->auth_failures, 1, RELAXED);
        sc_log(SC_LOG_WARN, "authentication failed for %s: %s", addr, why);
        sc_jwt_claims_fini(&claims);
        return sc_conn_close_ws(c, SC_SESSION_CLOSE_POLICY, fail) < 0 ? -1
                                                                   : 1;
    }
    int rc = start_session(c, &hs, &claims, addr);
    sc_jwt_claims_fini(&claims);
    return rc;
}

/* Bytes of the request head.  Returns -1 if c was freed. */
static int
on_http_bytes(struct sc_conn *c, const uint8_t *data, size_t len)
{
    struct sc_http_req *req;
    uint8_t *p = realloc(c->in, c->in_len + len);
    int rc;

    if (p == NULL) {
        sc_conn_free(c);
        return -1;
    }
    c->in = p;
    memcpy(c->in + c->in_len, data, len);
    c->in_len += (uint32_t)len;
    req = malloc(sizeof(*req));
    if (req == NULL) {
        sc_conn_free(c);
        return -1;
    }
    rc = sc_http_parse((const char *)c->in, c->in_len, req);
    if (rc == SC_HTTP_MORE) {
        free(req);
        return 0;
    }
    if (rc < 0) {
        char resp[256];
        int status;
        long n = sc_session_http_error(rc, resp, sizeof(resp), &status);
        free(req);
        atomic_fetch_add_explicit(&c->env->slot->handshake_failures, 1,
                                  RELAXED);
        sc_log(SC_LOG_INFO, "malformed request refused with %d", status);
        if (n < 0) {
            sc_conn_free(c);
            return -1;
        }
        finish_with(c, resp, (size_t)n);
        return -1;
    }
    uint8_t *in = c->in;
    uint32_t in_len = c->in_len;
    c->in = NULL;
    c->in_len = 0;
    int hr = handle_request(c, req);
    free(req);
    if (hr == 0 && (size_t)rc < in_len) {
        /* frames sent right behind the request */
        hr = feed_ws(c, in + rc, in_len - (size_t)rc);
    }
    free(in);
    return hr < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Events                                                               */

static void
on_readable(struct sc_conn *c)
{
    struct sc_conn_env *env = c->env;

    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = read(c->fd, env->scratch, sizeof(env->scratch));
        int rc;
        if (n == 0) {
            sc_conn_free(c); /* peer closed */
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sc_conn_free(c);
            }
            return;
        }
        switch (c->phase) {
        case SC_CONN_HTTP:
            rc = on_http_bytes(c, env->scratch, (size_t)n);
            break;
        case SC_CONN_WS:
        case SC_CONN_CLOSING:
            rc = feed_ws(c, env->scratch, (size_t)n);
            break;
        default:
            rc = 0; /* FLUSH, LINGER: input is discarded */
            break;
        }
        if (rc != 0 || (size_t)n < sizeof(env->scratch) ||
            (c->phase == SC_CONN_WS && (c->flags & SC_CONN_WANT_WRITE))) {
            return;
        }
    }
}

static void
on_event(evutil_socket_t fd, short what, void *arg)
{
    struct sc_conn *c = arg;

    (void)fd;
    if (what & EV_WRITE) {
        /* write interest stays registered until the queue is empty */
        if (flush_queue(c) != 0) {
            return;
        }
    }
    if (what & EV_READ) {
        on_readable(c);
    }
}

/*
 * When the connection's timer is due: timeouts, pings, token expiry.
 * Returns -1 if it freed c, else 0 (the caller files c again).
 */
static int
tick(struct sc_conn *c, uint64_t now)
{
    const struct sc_config *cfg = c->env->cfg;
    uint64_t ping_ms = (uint64_t)cfg->ping_interval * 1000;

    switch (c->phase) {
    case SC_CONN_HTTP:
        if (now - c->created_ms >= (uint64_t)cfg->handshake_timeout * 1000) {
            sc_log(SC_LOG_DEBUG, "handshake timeout");
            sc_conn_free(c);
            return -1;
        }
        return 0;
    case SC_CONN_CLOSING:
    case SC_CONN_FLUSH:
    case SC_CONN_LINGER:
        if (now >= c->deadline_ms) {
            sc_conn_free(c);
            return -1;
        }
        return 0;
    default:
        break;
    }
    if (now - c->last_rx_ms >= 2 * ping_ms) {
        sc_log(SC_LOG_INFO, "dropping a client silent for %llu s",
               (unsigned long long)((now - c->last_rx_ms) / 1000));
        sc_conn_free(c);
        return -1;
    }
    if (sc_session_expired(&c->sess, &c->env->lim, sc_wall_ms())) {
        return sc_conn_close_ws(c, SC_SESSION_CLOSE_POLICY,
                                SC_SESSION_EXPIRED);
    }
    /* the tick runs once a second: half a tick early is on time, or a
     * 1 s interval would ping every other tick */
    if (now + 500 >= c->deadline_ms) {
        uint8_t ping[2] = {0x89, 0x00};
        c->deadline_ms = now + ping_ms;
        return send_bytes(c, ping, sizeof(ping));
    }
    return 0;
}

void
sc_conn_close_revoked(struct sc_conn_env *env, const uint64_t *hashes,
                      size_t n)
{
    struct sc_conn *c, *next;

    for (c = env->conns; c != NULL; c = next) {
        next = c->next;
        if (c->sess.jti_hash == 0 || c->phase != SC_CONN_WS) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (hashes[i] == c->sess.jti_hash) {
                sc_log(SC_LOG_INFO, "closing a connection whose token was "
                       "revoked");
                sc_conn_close_ws(c, SC_SESSION_CLOSE_POLICY,
                                 SC_SESSION_REVOKED);
                break;
            }
        }
    }
}

void
sc_conn_close_all(struct sc_conn_env *env, uint16_t code, const char *reason)
{
    struct sc_conn *c, *next;

    for (c = env->conns; c != NULL; c = next) {
        next = c->next;
        if (c->phase == SC_CONN_WS) {
            sc_conn_close_ws(c, code, reason);
        } else if (c->phase == SC_CONN_HTTP) {
            sc_conn_free(c);
        }
    }
}
