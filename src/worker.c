/*
 * worker.c - a seatcast worker process (see worker.h)
 *
 * One libevent loop with:
 * - the channel from the master: new connections (fds), taken in batches;
 * - the eventfd the listener writes when a change concerns this worker:
 *   the ring is drained from ring_seq to its head, each change becoming
 *   one shared frame queued to every subscriber;
 * - a one-second tick: heartbeat, timeouts and pings of every connection
 *   (one timer for the worker, none per connection), ring catch-up;
 * - SIGTERM/SIGINT (graceful stop, 1001 to every client); the reloaded
 *   configuration comes over the channel from the master (reload.h).
 *
 * It never blocks: sockets are non-blocking, the registry is lock-free.
 */
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "channel.h"
#include "child.h"
#include "config.h"
#include "conn.h"
#include "jwt.h"
#include "log.h"
#include "proc.h"
#include "proto.h"
#include "registry.h"
#include "reload.h"

#define CHANNEL_BATCH 512
#define RELAXED memory_order_relaxed

/* ------------------------------------------------------------------ */
/* Bookkeeping                                                          */

uint64_t
sc_worker_random(struct sc_worker *w)
{
    /* xorshift64*: fast, and seeded per process from getrandom() */
    uint64_t x = w->rand_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rand_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void
sc_worker_conn_added(struct sc_worker *w, struct sc_conn *c)
{
    c->next = w->conns;
    c->prev = NULL;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->nconns++;
    atomic_store_explicit(&w->slot->connections, w->nconns, RELAXED);
    atomic_fetch_add_explicit(&w->slot->connections_total, 1, RELAXED);
}

void
sc_worker_conn_removed(struct sc_worker *w, struct sc_conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    w->nconns--;
    atomic_store_explicit(&w->slot->connections, w->nconns, RELAXED);
    if (w->stopping && w->nconns == 0) {
        event_base_loopbreak(w->base);
    }
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                        */

static uint32_t
ev_hash(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;

    return (uint32_t)(x >> 32);
}

static struct sc_wevent *
wevent_find(struct sc_worker *w, int64_t id)
{
    struct sc_wevent *e = w->events[ev_hash(id) & w->events_mask];

    while (e != NULL && e->id != id) {
        e = e->hnext;
    }
    return e;
}

static void
wevent_grow(struct sc_worker *w)
{
    uint32_t n = (w->events_mask + 1) * 2;
    struct sc_wevent **t = calloc(n, sizeof(*t));

    if (t == NULL) {
        return; /* chains just get longer */
    }
    for (uint32_t i = 0; i <= w->events_mask; i++) {
        struct sc_wevent *e = w->events[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = t[ev_hash(e->id) & (n - 1)];
            t[ev_hash(e->id) & (n - 1)] = e;
        }
    }
    free(w->events);
    w->events = t;
    w->events_mask = n - 1;
}

static struct sc_wevent *
wevent_get(struct sc_worker *w, struct sc_event_entry *entry, int64_t id)
{
    struct sc_wevent *e = wevent_find(w, id);
    struct sc_event_state st;

    if (e != NULL) {
        return e;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->id = id;
    e->entry = entry;
    sc_registry_event_read(entry, &st);
    e->last_version = st.version;
    e->hnext = w->events[ev_hash(id) & w->events_mask];
    w->events[ev_hash(id) & w->events_mask] = e;
    if (++w->nevents > (w->events_mask + 1) * 2) {
        wevent_grow(w);
    }
    return e;
}

static void
wevent_drop(struct sc_worker *w, struct sc_wevent *e)
{
    struct sc_wevent **pp = &w->events[ev_hash(e->id) & w->events_mask];

    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    w->nevents--;
    free(e);
}

int
sc_worker_subscribe(struct sc_worker *w, struct sc_conn *c,
                    struct sc_event_entry *entry, int64_t id)
{
    struct sc_wevent *e;
    struct sc_sub *s;

    for (s = c->subs; s != NULL; s = s->conn_next) {
        if (s->ev->id == id) {
            return 0;
        }
    }
    e = wevent_get(w, entry, id);
    s = calloc(1, sizeof(*s));
    if (e == NULL || s == NULL) {
        free(s);
        if (e != NULL && e->nsubs == 0) {
            wevent_drop(w, e);
        }
        return -1;
    }
    s->conn = c;
    s->ev = e;
    s->conn_next = c->subs;
    c->subs = s;
    c->nsubs++;
    s->ev_next = e->subs;
    if (e->subs != NULL) {
        e->subs->ev_prev = s;
    }
    e->subs = s;
    e->nsubs++;
    sc_registry_event_subs_add(w->reg, entry, w->index, +1);
    atomic_fetch_add_explicit(&w->slot->subscriptions, 1, RELAXED);
    return 1;
}

/* Unlinks s from its event (O(1)) and frees it; not from the conn list. */
static void
sub_drop(struct sc_worker *w, struct sc_sub *s)
{
    struct sc_wevent *e = s->ev;

    if (s->ev_prev != NULL) {
        s->ev_prev->ev_next = s->ev_next;
    } else {
        e->subs = s->ev_next;
    }
    if (s->ev_next != NULL) {
        s->ev_next->ev_prev = s->ev_prev;
    }
    e->nsubs--;
    sc_registry_event_subs_add(w->reg, e->entry, w->index, -1);
    atomic_fetch_sub_explicit(&w->slot->subscriptions, 1, RELAXED);
    s->conn->nsubs--;
    if (e->nsubs == 0) {
        if (w->batching) {
            /* a batch may still point at e: free it after the batch */
            if (!e->zombie) {
                e->zombie = true;
                e->znext = w->zombies;
                w->zombies = e;
            }
        } else {
            wevent_drop(w, e);
        }
    }
    free(s);
}

int
sc_worker_unsubscribe(struct sc_worker *w, struct sc_conn *c, int64_t id)
{
    struct sc_sub **pp = &c->subs;

    for (; *pp != NULL; pp = &(*pp)->conn_next) {
        if ((*pp)->ev->id == id) {
            struct sc_sub *s = *pp;
            *pp = s->conn_next;
            sub_drop(w, s);
            return 1;
        }
    }
    return 0;
}

void
sc_worker_unsubscribe_all(struct sc_worker *w, struct sc_conn *c)
{
    while (c->subs != NULL) {
        struct sc_sub *s = c->subs;
        c->subs = s->conn_next;
        sub_drop(w, s);
    }
}

/* ------------------------------------------------------------------ */
/* Broadcasts                                                           */

/*
 * Queues f, a change of e at `version`, to every subscriber of e whose
 * snapshot does not already hold it (each may be closed as slow).
 */
static void
fanout(struct sc_wevent *e, struct sc_frame *f, int64_t version)
{
    struct sc_sub *s = e->subs, *next;

    for (; s != NULL; s = next) {
        next = s->ev_next;
        if (s->min_version >= version) {
            continue;
        }
        /* a slow consumer closed here unlinks s (and maybe next's
         * neighbour, never next itself: only c's own subs go) */
        sc_conn_send_frame(s->conn, f);
    }
}

static void
record_latency(struct sc_worker *w, int64_t commit_ms)
{
    int64_t now = (int64_t)sc_wall_ms();
    uint64_t ms = now > commit_ms ? (uint64_t)(now - commit_ms) : 0;

    atomic_fetch_add_explicit(&w->slot->lat_count, 1, RELAXED);
    atomic_fetch_add_explicit(&w->slot->lat_sum_us, ms * 1000, RELAXED);
    for (int i = 0; i < SC_LAT_BUCKETS; i++) {
        if (ms <= sc_lat_bounds_ms[i]) {
            atomic_fetch_add_explicit(&w->slot->lat_buckets[i], 1, RELAXED);
            return;
        }
    }
}

static void
deliver_deleted(struct sc_worker *w, struct sc_wevent *e)
{
    char msg[SC_PROTO_MSG_MAX];
    struct sc_frame *f = sc_frame_text(
        msg,
        sc_proto_unsubscribed(msg, sizeof(msg), (uint64_t)e->id,
                              sc_wall_ms()),
        0);

    /* every subscription to a deleted event is dropped */
    while (e->subs != NULL) {
        struct sc_conn *c = e->subs->conn;
        int64_t id = e->id;
        bool last = e->nsubs == 1;
        /* unsubscribing the last subscriber frees e */
        sc_worker_unsubscribe(w, c, id);
        if (f != NULL) {
            sc_conn_send_frame(c, f);
        }
        if (last) {
            break;
        }
    }
    sc_frame_release(f);
}

/* Closes the connections whose token's jti hash is in the message. */
static void
revoke_jti(struct sc_worker *w, const struct sc_ring_msg *m)
{
    size_t n = m->frame_len / sizeof(uint64_t);
    struct sc_conn *c, *next;

    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->jti_hash == 0 || c->phase != SC_CONN_WS) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t h;
            memcpy(&h, m->frame + i * sizeof(h), sizeof(h));
            if (h == c->jti_hash) {
                sc_log(SC_LOG_INFO, "closing a connection whose token was "
                       "revoked");
                sc_conn_close_ws(c, 1008, "Token revoked");
                break;
            }
        }
    }
}

/*
 * Sends the batch's pending changes: for each event, its frames in order,
 * to each subscriber in one writev (frames already in a subscriber's
 * snapshot are left out).
 */
static void
flush_pending(struct sc_worker *w)
{
    struct sc_frame *fs[2 * SC_WORKER_PEND_MAX];
    int64_t vs[2 * SC_WORKER_PEND_MAX];

    for (unsigned i = 0; i < w->npend; i++) {
        struct sc_wevent *e = w->pend[i].ev;
        size_t n = 0;
        if (e == NULL) {
            continue;
        }
        for (unsigned j = i; j < w->npend; j++) {
            if (w->pend[j].ev != e) {
                continue;
            }
            for (int k = 0; k < 2; k++) {
                if (w->pend[j].f[k] != NULL) {
                    fs[n] = w->pend[j].f[k];
                    vs[n++] = w->pend[j].version;
                }
            }
            w->pend[j].ev = NULL;
        }
        for (struct sc_sub *s = e->subs, *next; s != NULL; s = next) {
            struct sc_frame *mine[2 * SC_WORKER_PEND_MAX];
            size_t m = 0;
            next = s->ev_next;
            for (size_t k = 0; k < n; k++) {
                if (vs[k] > s->min_version) {
                    mine[m++] = fs[k];
                }
            }
            /* a client freed here takes only its own subscriptions;
             * emptied events wait on the zombie list */
            sc_conn_send_frames(s->conn, mine, m);
        }
    }
    for (unsigned i = 0; i < w->npend; i++) {
        sc_frame_release(w->pend[i].f[0]);
        sc_frame_release(w->pend[i].f[1]);
    }
    w->npend = 0;
}

/* Queues one change of e into the batch. */
static void
add_pending(struct sc_worker *w, struct sc_wevent *e,
            const struct sc_ring_msg *m)
{
    struct sc_pending *p;

    if (w->npend == SC_WORKER_PEND_MAX) {
        flush_pending(w);
    }
    p = &w->pend[w->npend];
    p->ev = e;
    p->version = m->version;
    p->f[0] = NULL;
    if (m->update_off > 0 && m->update_off <= m->frame_len) {
        p->f[0] = sc_frame_new(m->frame, m->update_off, 0);
    }
    p->f[1] = sc_frame_new(m->frame + m->update_off,
                           (size_t)(m->frame_len - m->update_off),
                           m->event_id);
    w->npend++;
}

static void
deliver(struct sc_worker *w, const struct sc_ring_msg *m)
{
    struct sc_wevent *e;

    if (m->kind == SC_CHANGE_TOKEN_REVOKED) {
        flush_pending(w); /* what came before the revocation goes first */
        revoke_jti(w, m);
        return;
    }
    e = wevent_find(w, m->event_id);
    if (e == NULL || e->zombie) {
        return;
    }
    if (m->kind == SC_CHANGE_EVENT_DELETED) {
        flush_pending(w);
        deliver_deleted(w, e);
        return;
    }
    /* the listener never publishes a version twice, but a resync may
     * have delivered this state already */
    if (m->version <= e->last_version) {
        return;
    }
    e->last_version = m->version;
    if (m->commit_ms > 0) {
        record_latency(w, m->commit_ms);
    }
    add_pending(w, e, m);
}

/* Frees the events left without subscribers during the batch. */
static void
bury_zombies(struct sc_worker *w)
{
    while (w->zombies != NULL) {
        struct sc_wevent *e = w->zombies;
        w->zombies = e->znext;
        e->zombie = false;
        if (e->nsubs == 0) {
            wevent_drop(w, e);
        }
    }
}

/* Behind the ring: send each followed event's current state if newer. */
static void
resync(struct sc_worker *w)
{
    char msg[SC_PROTO_MSG_MAX];
    struct sc_event_state st;

    atomic_fetch_add_explicit(&w->slot->resyncs, 1, RELAXED);
    sc_log(SC_LOG_WARN, "fell behind the broadcast ring; resynchronising "
           "%u events from the event table", w->nevents);
    w->ring_seq = atomic_load(&w->reg->hdr->ring_head);
    for (uint32_t i = 0; i <= w->events_mask; i++) {
        struct sc_wevent *e = w->events[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            sc_registry_event_read(e->entry, &st);
            if (st.version <= e->last_version) {
                continue;
            }
            if (st.flags & SC_EVENT_DELETED) {
                deliver_deleted(w, e);
                continue;
            }
            e->last_version = st.version;
            struct sc_frame *f = sc_frame_text(
                msg,
                sc_proto_seat_update(msg, sizeof(msg), (uint64_t)e->id,
                                     st.available, st.capacity,
                                     sc_wall_ms()),
                e->id);
            if (f != NULL) {
                fanout(e, f, st.version);
                sc_frame_release(f);
            }
        }
    }
}

static void
drain_ring(struct sc_worker *w)
{
    struct sc_ring_msg m;

    w->batching = true;
    for (;;) {
        int rc = sc_registry_ring_read(w->reg, w->ring_seq, &m);
        if (rc == 1) {
            break;
        }
        if (rc < 0) {
            flush_pending(w);
            resync(w);
            break;
        }
        w->ring_seq++;
        if (w->nevents > 0 || m.kind == SC_CHANGE_TOKEN_REVOKED) {
            deliver(w, &m);
        }
    }
    flush_pending(w);
    atomic_store_explicit(&w->slot->ring_seq, w->ring_seq, RELAXED);
    w->batching = false;
    bury_zombies(w);
    /* one write per socket per batch */
    while (w->dirty != NULL) {
        struct sc_conn *c = w->dirty;
        w->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->flags &= (uint8_t)~SC_CONN_DIRTY;
        sc_conn_flush(c);
    }
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct sc_worker *w = arg;
    uint64_t n;

    (void)what;
    while (read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
    }
    drain_ring(w);
}

/* ------------------------------------------------------------------ */
/* Channel, tick, signals                                               */

static void begin_stop(struct sc_worker *w);
static void apply_reload(struct sc_worker *w, int fd);

static void
on_channel(evutil_socket_t fd, short what, void *arg)
{
    struct sc_worker *w = arg;
    struct sc_channel_msg msg;
    int cfd;

    (void)what;
    for (int n = 0; n < CHANNEL_BATCH; n++) {
        int rc = sc_channel_recv_fd(fd, &msg, &cfd);
        if (rc == SC_CHANNEL_AGAIN) {
            return;
        }
        if (rc == SC_CHANNEL_EOF || rc == SC_CHANNEL_ERROR) {
            sc_log(rc == SC_CHANNEL_EOF ? SC_LOG_WARN : SC_LOG_ERR,
                   "channel to the master %s; stopping",
                   rc == SC_CHANNEL_EOF ? "closed" : "failed");
            begin_stop(w);
            return;
        }
        if (msg.type == SC_CHANNEL_RELOAD) {
            if (cfd >= 0) {
                apply_reload(w, cfd);
                close(cfd);
            }
            continue;
        }
        atomic_fetch_add_explicit(&w->slot->fds_received, 1, RELAXED);
        if (cfd < 0) {
            continue;
        }
        if (w->stopping) {
            close(cfd);
            continue;
        }
        sc_conn_new(w, cfd);
    }
}

/*
 * Handles the wheel's slots up to the current second: each connection
 * filed there is checked (if its second has come: a slot also holds
 * connections due a lap later) and filed again at its next deadline.  A
 * connection costs nothing between its deadlines.
 */
static void
run_wheel(struct sc_worker *w, uint64_t now)
{
    uint64_t now_s = now / 1000;

    if (w->wheel_s == 0 || now_s - w->wheel_s > SC_WHEEL_SLOTS) {
        w->wheel_s = now_s > SC_WHEEL_SLOTS ? now_s - SC_WHEEL_SLOTS : 0;
    }
    while (w->wheel_s < now_s) {
        uint64_t s = ++w->wheel_s;
        struct sc_conn *c = w->wheel[s % SC_WHEEL_SLOTS], *next;
        /* take the slot's list: checked connections are filed again,
         * never into this slot (wheel_s is already s) */
        w->wheel[s % SC_WHEEL_SLOTS] = NULL;
        for (; c != NULL; c = next) {
            next = c->wnext;
            c->wprev = c->wnext = NULL;
            if (c->due_s > s) {
                uint64_t due = c->due_s;
                /* a lap later: back into its slot */
                c->due_s = 0;
                struct sc_conn **slot = &w->wheel[due % SC_WHEEL_SLOTS];
                c->due_s = due;
                c->wnext = *slot;
                if (*slot != NULL) {
                    (*slot)->wprev = c;
                }
                *slot = c;
                continue;
            }
            c->due_s = 0;
            if (sc_conn_tick(c, now) == 0) {
                sc_conn_schedule(c);
            }
        }
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sc_worker *w = arg;
    uint64_t now = sc_mono_ms();

    (void)fd;
    (void)what;
    atomic_store_explicit(&w->slot->heartbeat_ms, now, RELAXED);
    if (w->stopping && now >= w->stop_deadline) {
        sc_log(SC_LOG_WARN, "shutdown timeout with %llu connections left",
               (unsigned long long)w->nconns);
        event_base_loopbreak(w->base);
        return;
    }
    drain_ring(w);
    run_wheel(w, now);
}

static void
begin_stop(struct sc_worker *w)
{
    struct sc_conn *c, *next;

    if (w->stopping) {
        return;
    }
    w->stopping = true;
    w->stop_deadline = sc_mono_ms() +
                       (uint64_t)w->cfg->shutdown_timeout * 1000 - 500;
    atomic_store(&w->slot->state, SC_STATE_STOPPING);
    if (w->ev_channel != NULL) {
        event_del(w->ev_channel);
    }
    sc_log(SC_LOG_INFO, "stopping: closing %llu connections",
           (unsigned long long)w->nconns);
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->phase == SC_CONN_WS) {
            sc_conn_close_ws(c, 1001, "Server shutting down");
        } else if (c->phase == SC_CONN_HTTP) {
            sc_conn_free(c);
        }
    }
    if (w->nconns == 0) {
        event_base_loopbreak(w->base);
    }
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    begin_stop(arg);
}

/*
 * The configuration and keys the master reloaded on SIGHUP, as the
 * snapshot it checked (reload.h): for the connections that follow.
 */
static void
apply_reload(struct sc_worker *w, int fd)
{
    struct sc_reload r;
    struct sc_jwt_keys *keys;
    char err[512];

    if (sc_reload_unpack(fd, &r, err, sizeof(err)) != 0) {
        sc_log(SC_LOG_ERR, "reload failed, keeping the running "
               "configuration: %s", err);
        return;
    }
    keys = sc_reload_keys(&r, err, sizeof(err));
    if (keys == NULL) {
        sc_log(SC_LOG_ERR, "reload failed, keeping the running keys: %s",
               err);
        sc_reload_fini(&r);
        return;
    }
    sc_jwt_keys_free(w->keys);
    w->keys = keys;
    free(w->cfg);
    w->cfg = r.cfg;
    r.cfg = NULL;
    sc_reload_fini(&r);
    sc_log_init(w->cfg->log_level,
                w->cfg->log_format == SC_LOG_FORMAT_JSON);
    sc_log(SC_LOG_INFO, "configuration and keys reloaded");
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */

static int
worker_init(struct sc_worker *w, const struct sc_child_ctx *ctx)
{
    struct timeval one = {1, 0};

    w->ctx = ctx;
    w->index = ctx->index;
    w->reg = ctx->reg;
    w->slot = sc_registry_worker(ctx->reg, ctx->index);
    w->cfg = malloc(sizeof(*w->cfg));
    w->events = calloc(64, sizeof(*w->events));
    if (w->cfg == NULL || w->events == NULL) {
        return -1;
    }
    memcpy(w->cfg, ctx->cfg, sizeof(*w->cfg));
    w->events_mask = 63;
    if (getrandom(&w->rand_state, sizeof(w->rand_state), 0) !=
            (ssize_t)sizeof(w->rand_state) ||
        w->rand_state == 0) {
        w->rand_state = sc_wall_ms() ^ ((uint64_t)getpid() << 32) ^ 1;
    }
    /* the master's keys, copied by fork: a respawned worker uses the keys
     * in force, never a file changed since without a reload */
    w->keys = (struct sc_jwt_keys *)(uintptr_t)ctx->keys;
    if (w->keys == NULL) {
        sc_log(SC_LOG_ERR, "no JWT keys from the master");
        return -1;
    }
    w->base = event_base_new();
    if (w->base == NULL) {
        return -1;
    }
    w->ev_channel = event_new(w->base, ctx->channel, EV_READ | EV_PERSIST,
                              on_channel, w);
    w->ev_wake = event_new(w->base, ctx->wake_fd, EV_READ | EV_PERSIST,
                           on_wake, w);
    w->ev_tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->ev_term = evsignal_new(w->base, SIGTERM, on_stop_signal, w);
    w->ev_int = evsignal_new(w->base, SIGINT, on_stop_signal, w);
    if (w->ev_channel == NULL || w->ev_wake == NULL || w->ev_tick == NULL ||
        w->ev_term == NULL || w->ev_int == NULL) {
        return -1;
    }
    event_add(w->ev_channel, NULL);
    event_add(w->ev_wake, NULL);
    event_add(w->ev_tick, &one);
    event_add(w->ev_term, NULL);
    event_add(w->ev_int, NULL);
    /* reloads come from the master over the channel (apply_reload) */
    signal(SIGHUP, SIG_IGN);
    return 0;
}

static void
worker_fini(struct sc_worker *w)
{
    while (w->conns != NULL) {
        sc_conn_free(w->conns);
    }
    struct event *evs[] = {w->ev_channel, w->ev_wake, w->ev_tick,
                           w->ev_term,    w->ev_int};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i] != NULL) {
            event_free(evs[i]);
        }
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    while (w->free_q != NULL) {
        struct sc_outq *q = w->free_q;
        w->free_q = q->next;
        free(q);
    }
    sc_jwt_keys_free(w->keys);
    free(w->events);
    free(w->cfg);
}

void
sc_worker_main(const struct sc_child_ctx *ctx)
{
    static struct sc_worker w; /* ~64 KiB scratch: not on the stack */
    char title[64], comm[16];
    int status = 0;

    snprintf(title, sizeof(title), "seatcast: worker %u", ctx->index);
    snprintf(comm, sizeof(comm), "sc-worker-%u", ctx->index);
    sc_proc_set_title(title, comm);
    snprintf(title, sizeof(title), "worker %u", ctx->index);
    sc_log_set_role(title);

    memset(&w, 0, sizeof(w));
    struct sc_worker_slot *slot = sc_registry_worker(ctx->reg, ctx->index);
    atomic_store(&slot->state, SC_STATE_STARTING);
    atomic_store(&slot->pid, (int32_t)getpid());
    atomic_store(&slot->started_ms, sc_wall_ms());
    atomic_store(&slot->heartbeat_ms, sc_mono_ms());
    if (worker_init(&w, ctx) != 0) {
        sc_log(SC_LOG_ERR, "could not initialise the worker");
        worker_fini(&w);
        exit(1);
    }
    /* start at the ring's head: the state before it is in the table */
    w.ring_seq = atomic_load(&ctx->reg->hdr->ring_head);
    atomic_store(&slot->ring_seq, w.ring_seq);
    atomic_store(&slot->state, SC_STATE_RUNNING);
    sc_log(SC_LOG_DEBUG, "worker ready");
    if (event_base_dispatch(w.base) < 0) {
        sc_log(SC_LOG_ERR, "event loop failed");
        status = 1;
    }
    worker_fini(&w);
    sc_log(SC_LOG_INFO, "worker stopped");
    exit(status);
}
