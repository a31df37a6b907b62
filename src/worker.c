/*
 * worker.c - a seatcast worker process (see worker.h)
 *
 * One libevent loop with:
 * - the channel from the master: new connections (fds), taken in batches,
 *   and the reloaded configuration;
 * - the eventfd the listener writes when a change concerns this worker:
 *   the fan-out drains the ring, each change becoming one shared frame
 *   queued to every subscriber, and the sockets are written once;
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
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "child.h"
#include "config.h"
#include "conn.h"
#include "fanout.h"
#include "jwt.h"
#include "log.h"
#include "proc.h"
#include "registry.h"
#include "reload.h"
#include "uring.h"

#define CHANNEL_BATCH 512
#define RELAXED memory_order_relaxed
#define SC_WORKER_URING_ENTRIES 256 /* sockets per io_uring_enter */

/* The per-worker state: the loop, the connections, the fan-out. */
struct sc_worker {
    const struct sc_child_ctx *ctx;
    struct sc_config *cfg;   /* own copy, replaced on reload */
    struct sc_jwt_keys *keys; /* in force, replaced on reload */
    struct sc_registry *reg;
    struct sc_worker_slot *slot;
    struct event_base *base;
    struct event *ev_channel, *ev_wake, *ev_tick;
    struct event *ev_sweep; /* the next sweep of a surging event */
    struct event *ev_term, *ev_int;
    bool stopping;
    uint64_t stop_deadline;
    struct sc_fanout fan;
    struct sc_uring uring;  /* batched writes (fd -1: writev) */
    struct sc_conn_env env; /* last: holds the read buffer */
};

/* ------------------------------------------------------------------ */
/* Hooks: the fan-out reaches connections, connections the worker       */

static int
fan_send(void *owner, struct sc_frame *f)
{
    return sc_conn_send_frame(owner, f);
}

static int
fan_send_many(void *owner, struct sc_frame *const *fs, size_t n)
{
    return sc_conn_send_frames(owner, fs, n);
}

static void
fan_revoked(void *host, const uint64_t *hashes, size_t n)
{
    struct sc_worker *w = host;

    sc_conn_close_revoked(&w->env, hashes, n);
}

/* With a ring, a sending's writes are queued until the fan-out has
 * addressed every subscriber it writes at once (sc_conn_flush_dirty()). */
static void
fan_flush(void *host)
{
    struct sc_worker *w = host;

    if (w->env.uring != NULL) {
        sc_conn_flush_dirty(&w->env);
    }
}

static const struct sc_fanout_ops fan_ops = {.send = fan_send,
                                             .send_many = fan_send_many,
                                             .revoked = fan_revoked,
                                             .flush = fan_flush};

/* A connection was freed: a stopping worker ends with its last one. */
static void
conn_closed(void *host)
{
    struct sc_worker *w = host;

    if (w->stopping && w->env.nconns == 0) {
        event_base_loopbreak(w->base);
    }
}

/* ------------------------------------------------------------------ */
/* Broadcasts                                                           */

/* Wakes the worker for the next sweep of a surging event (0: none). */
static void
sweep_at(struct sc_worker *w, uint64_t due)
{
    uint64_t now = sc_mono_ms();
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    if (due != 0) {
        evtimer_add(w->ev_sweep, &tv);
    }
}

/* One batch, one write per socket: the ring from where this worker left
 * it (with the sweeps due), or only the sweeps of surging events due. */
static void
deliver_batch(struct sc_worker *w, bool ring)
{
    uint64_t due;

    w->env.batching = true;
    due = ring ? sc_fanout_drain(&w->fan)
               : sc_fanout_sweep(&w->fan, sc_mono_ms());
    w->env.batching = false;
    sc_conn_flush_dirty(&w->env);
    sweep_at(w, due);
}

static void
drain_ring(struct sc_worker *w)
{
    deliver_batch(w, true);
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver_batch(arg, false);
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
        sc_conn_new(&w->env, cfd);
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
               (unsigned long long)w->env.nconns);
        event_base_loopbreak(w->base);
        return;
    }
    drain_ring(w);
    sc_conn_run_timers(&w->env, now);
}

static void
begin_stop(struct sc_worker *w)
{
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
           (unsigned long long)w->env.nconns);
    sc_conn_close_all(&w->env, 1001, "Server shutting down");
    if (w->env.nconns == 0) {
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
    sc_conn_env_set_config(&w->env, w->cfg, w->keys);
    sc_fanout_set_max_lag(&w->fan, w->cfg->max_lag);
    sc_reload_fini(&r);
    sc_log_init(w->cfg->log_level,
                w->cfg->log_format == SC_LOG_FORMAT_JSON);
    sc_log(SC_LOG_INFO, "configuration and keys reloaded");
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */

/*
 * Batches are written through io_uring (--io-uring on) when the kernel
 * allows it; otherwise, or with --io-uring off, with one writev per
 * socket, as before.
 */
static void
use_uring(struct sc_worker *w)
{
    if (w->cfg->io_uring != SC_IO_URING_ON) {
        return;
    }
    if (sc_uring_init(&w->uring, SC_WORKER_URING_ENTRIES) != 0) {
        /* the first worker speaks for all: they run the same kernel */
        sc_log(w->ctx->index == 0 ? SC_LOG_WARN : SC_LOG_DEBUG,
               "io_uring unavailable (%s): writing with writev()",
               strerror(errno));
        return;
    }
    if (sc_conn_env_set_uring(&w->env, &w->uring) != 0) {
        sc_uring_fini(&w->uring);
    }
}

static int
worker_init(struct sc_worker *w, const struct sc_child_ctx *ctx)
{
    struct timeval one = {1, 0};

    w->ctx = ctx;
    w->uring.fd = -1;
    w->reg = ctx->reg;
    w->slot = sc_registry_worker(ctx->reg, ctx->index);
    w->cfg = malloc(sizeof(*w->cfg));
    if (w->cfg == NULL) {
        return -1;
    }
    memcpy(w->cfg, ctx->cfg, sizeof(*w->cfg));
    /* the master's keys, copied by fork: a respawned worker uses the keys
     * in force, never a file changed since without a reload */
    w->keys = (struct sc_jwt_keys *)(uintptr_t)ctx->keys;
    if (w->keys == NULL) {
        sc_log(SC_LOG_ERR, "no JWT keys from the master");
        return -1;
    }
    w->base = event_base_new();
    if (w->base == NULL ||
        sc_fanout_init(&w->fan, ctx->reg, ctx->index, &fan_ops, w) != 0 ||
        sc_conn_env_init(&w->env, w->cfg, w->keys, ctx->reg, ctx->index) !=
            0) {
        return -1;
    }
    sc_fanout_set_max_lag(&w->fan, w->cfg->max_lag);
    use_uring(w);
    w->env.base = w->base;
    w->env.fan = &w->fan;
    w->env.closed = conn_closed;
    w->env.host = w;
    w->ev_channel = event_new(w->base, ctx->channel, EV_READ | EV_PERSIST,
                              on_channel, w);
    w->ev_wake = event_new(w->base, ctx->wake_fd, EV_READ | EV_PERSIST,
                           on_wake, w);
    w->ev_tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->ev_sweep = evtimer_new(w->base, on_sweep, w);
    w->ev_term = evsignal_new(w->base, SIGTERM, on_stop_signal, w);
    w->ev_int = evsignal_new(w->base, SIGINT, on_stop_signal, w);
    if (w->ev_channel == NULL || w->ev_wake == NULL || w->ev_tick == NULL ||
        w->ev_sweep == NULL || w->ev_term == NULL || w->ev_int == NULL) {
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
    /* the connections first: they leave the fan-out's index */
    if (w->env.fan != NULL) {
        sc_conn_env_fini(&w->env);
    }
    sc_uring_fini(&w->uring);
    struct event *evs[] = {w->ev_channel, w->ev_wake, w->ev_tick,
                           w->ev_sweep, w->ev_term, w->ev_int};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i] != NULL) {
            event_free(evs[i]);
        }
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    sc_fanout_fini(&w->fan);
    sc_jwt_keys_free(w->keys);
    free(w->cfg);
}

void
sc_worker_main(const struct sc_child_ctx *ctx)
{
    static struct sc_worker w; /* ~64 KiB read buffer: not on the stack */
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
