/*
 * master.c - the seatcast master process (see master.h)
 *
 * NOTES
 * - The master's loop is ppoll() over the listening sockets with every
 *   handled signal blocked outside ppoll(): handlers only set flags, and
 *   the loop acts on them (nginx's master cycle).  No libevent here, so a
 *   forked child inherits no event-loop state.
 * - Connections go to the worker with the least load, where load is the
 *   worker's open connections plus the fds sent to it that it has not yet
 *   taken off its channel.  A full channel is skipped; when every channel
 *   is full the connection is held and accepting stops until a worker
 *   has room, so that a burst waits in the listen backlog (never block,
 *   never drop; one held past HOLD_MAX_MS is closed and counted).
 * - A child that dies is reaped, its share of the registry repaired, and
 *   it is respawned; one that keeps dying young is respawned with a
 *   growing delay (100 ms doubling up to 5 s).
 * - The master writes the registry only to create it and to repair a dead
 *   child's share, and a few master-only counters in the header.
 */
#include "master.h"
#include "child.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "config.h"
#include "jwt.h"
#include "listener.h"
#include "log.h"
#include "proc.h"
#include "registry.h"
#include "reload.h"
#include "worker.h"

#define ACCEPT_BATCH 256
#define RESPAWN_MIN_MS 100
#define RESPAWN_MAX_MS 5000
#define YOUNG_DEATH_MS 2000
#define AUDIT_INTERVAL_MS 2000
#define HOLD_MAX_MS 10000
#define SETTLE_MAX_MS 5000 /* at most this long without clients at start */

struct child {
    pid_t pid;           /* 0 when not running */
    int chan;            /* master end of the channel (workers), owned */
    int wake_fd;         /* eventfd (workers), owned, kept across respawn */
    uint64_t sent;       /* fds sent to this incarnation */
    uint64_t started_ms; /* monotonic */
    uint64_t respawn_at; /* monotonic ms; 0 = not scheduled */
    unsigned young_deaths;
    bool reload_due;     /* worker: the reload snapshot is still to send */
};

struct master {
    struct sc_config *cfg;
    struct sc_jwt_keys **keys; /* owned: replaced on reload */
    int argc;
    char **argv;
    struct sc_registry reg;
    int lfd[SC_CONFIG_MAX_LISTEN];
    size_t nlisten;
    uint64_t accept_paused_until; /* after EMFILE */
    uint64_t settle_until;        /* accept no client before the listener
                                     settled, or this (CLOCK_MONOTONIC) */
    bool settled;
    struct child workers[SC_MAX_WORKERS];
    unsigned nworkers;
    int wake_fds[SC_MAX_WORKERS];
    struct child listener;
    bool stopping;
    uint64_t stop_deadline;
    uint64_t next_audit; /* monotonic ms */
    int held_fd;         /* accepted, every channel full: waits, owned */
    size_t held_listen;
    uint64_t held_since; /* monotonic ms */
    pid_t self;
    int reload_fd;       /* the last reload's snapshot while a worker has
                            not got it, owned; -1 none */
};

static volatile sig_atomic_t sig_stop;
static volatile sig_atomic_t sig_reload;
static volatile sig_atomic_t sig_child;

static void
on_signal(int signo)
{
    switch (signo) {
    case SIGTERM:
    case SIGINT:
        sig_stop = 1;
        break;
    case SIGHUP:
        sig_reload = 1;
        break;
    case SIGCHLD:
        sig_child = 1;
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------ */
/* Listeners                                                            */

static int
bind_unix(const struct sc_listen_addr *a)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd, probe;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
    /* a socket file left by a dead instance is removed; a live one kept */
    if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 &&
            connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(probe);
            errno = EADDRINUSE;
            return -1;
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(a->path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int
bind_tcp(const struct sc_listen_addr *a)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1, fam = a->kind == SC_LISTEN_TCP6 ? AF_INET6 : AF_INET;

    memset(&ss, 0, sizeof(ss));
    if (fam == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        if (a->host[0] &&
            inet_pton(AF_INET6, a->host, &s6->sin6_addr) != 1) {
            errno = EINVAL;
            return -1;
        }
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        if (a->host[0] && strcmp(a->host, "localhost") == 0) {
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (a->host[0] &&
                   inet_pton(AF_INET, a->host, &s4->sin_addr) != 1) {
            errno = EINVAL;
            return -1;
        }
        len = sizeof(*s4);
    }
    fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fam == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int
open_listeners(struct master *m)
{
    char name[160];

    for (size_t i = 0; i < m->cfg->nlisten; i++) {
        const struct sc_listen_addr *a = &m->cfg->listen[i];
        int fd = a->kind == SC_LISTEN_UNIX ? bind_unix(a) : bind_tcp(a);
        sc_config_format_listen(a, name, sizeof(name));
        if (fd < 0) {
            sc_log(SC_LOG_ERR, "could not listen on %s: %s", name,
                   strerror(errno));
            return -1;
        }
        m->lfd[m->nlisten++] = fd;
        sc_log(SC_LOG_INFO, "listening on %s", name);
    }
    return 0;
}

static void
close_listeners(struct master *m)
{
    for (size_t i = 0; i < m->nlisten; i++) {
        if (m->lfd[i] >= 0) {
            close(m->lfd[i]);
            m->lfd[i] = -1;
            if (m->cfg->listen[i].kind == SC_LISTEN_UNIX) {
                unlink(m->cfg->listen[i].path);
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Children                                                             */

/* In a child: close every descriptor of the master's that it does not own. */
static void
child_close_fds(struct master *m, bool keep_wakes, int keep_wake)
{
    for (size_t i = 0; i < m->nlisten; i++) {
        if (m->lfd[i] >= 0) {
            close(m->lfd[i]);
        }
    }
    if (m->held_fd >= 0) {
        close(m->held_fd);
    }
    if (m->reload_fd >= 0) {
        close(m->reload_fd);
    }
    for (unsigned w = 0; w < m->nworkers; w++) {
        if (m->workers[w].chan >= 0) {
            close(m->workers[w].chan);
        }
        if (!keep_wakes && m->wake_fds[w] != keep_wake) {
            close(m->wake_fds[w]);
        }
    }
}

static void
child_ctx(struct master *m, struct sc_child_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = m->cfg;
    ctx->keys = *m->keys;
    ctx->reg = &m->reg;
    ctx->wake_fds = m->wake_fds;
    ctx->nworkers = m->nworkers;
    ctx->master = m->self;
    ctx->channel = -1;
    ctx->wake_fd = -1;
}

static int
spawn_worker(struct master *m, unsigned w)
{
    struct child *c = &m->workers[w];
    struct sc_child_ctx ctx;
    int pair[2];
    pid_t pid;

    if (sc_channel_pair(pair) != 0) {
        sc_log(SC_LOG_ERR, "socketpair() failed for worker %u: %s", w,
               strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        sc_log(SC_LOG_ERR, "fork() failed for worker %u: %s", w,
               strerror(errno));
        close(pair[0]);
        close(pair[1]);
        return -1;
    }
    if (pid == 0) {
        close(pair[0]);
        child_close_fds(m, false, m->wake_fds[w]);
        if (sc_proc_child_init(m->self) != 0) {
            _exit(0);
        }
        child_ctx(m, &ctx);
        ctx.index = w;
        ctx.channel = pair[1];
        ctx.wake_fd = m->wake_fds[w];
        sc_worker_main(&ctx);
    }
    close(pair[1]);
    c->pid = pid;
    c->chan = pair[0];
    c->sent = 0;
    c->reload_due = false; /* forked with the configuration in force */
    c->started_ms = sc_mono_ms();
    c->respawn_at = 0;
    sc_log(SC_LOG_INFO, "started worker %u (pid %d)", w, (int)pid);
    return 0;
}

static int
spawn_listener(struct master *m)
{
    struct child *c = &m->listener;
    struct sc_child_ctx ctx;
    pid_t pid = fork();

    if (pid < 0) {
        sc_log(SC_LOG_ERR, "fork() failed for the listener: %s",
               strerror(errno));
        return -1;
    }
    if (pid == 0) {
        child_close_fds(m, true, -1);
        if (sc_proc_child_init(m->self) != 0) {
            _exit(0);
        }
        child_ctx(m, &ctx);
        sc_listener_main(&ctx);
    }
    c->pid = pid;
    c->started_ms = sc_mono_ms();
    c->respawn_at = 0;
    sc_log(SC_LOG_INFO, "started listener (pid %d)", (int)pid);
    return 0;
}

static void
describe_status(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status)) {
        snprintf(out, len, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    } else if (WIFEXITED(status)) {
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(out, len, "stopped with status 0x%x", status);
    }
}

/* Schedules c's respawn: at once, or later if it keeps dying young. */
static void
schedule_respawn(struct child *c, uint64_t now)
{
    uint64_t delay = 0;

    if (now - c->started_ms < YOUNG_DEATH_MS) {
        unsigned k = c->young_deaths < 6 ? c->young_deaths : 6;
        delay = (uint64_t)RESPAWN_MIN_MS << k;
        if (delay > RESPAWN_MAX_MS) {
            delay = RESPAWN_MAX_MS;
        }
        c->young_deaths++;
    } else {
        c->young_deaths = 0;
    }
    c->respawn_at = now + delay;
    if (c->respawn_at == 0) {
        c->respawn_at = 1;
    }
}

static void
reap_children(struct master *m)
{
    char why[128];
    int status;
    pid_t pid;
    uint64_t now = sc_mono_ms();

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        describe_status(status, why, sizeof(why));
        if (pid == m->listener.pid) {
            m->listener.pid = 0;
            sc_registry_repair_listener(&m->reg);
            if (m->stopping) {
                sc_log(SC_LOG_INFO, "listener (pid %d) %s", (int)pid, why);
                continue;
            }
            sc_log(SC_LOG_WARN, "listener (pid %d) %s; restarting", (int)pid,
                   why);
            atomic_fetch_add(&m->reg.hdr->listener_restarts, 1);
            schedule_respawn(&m->listener, now);
            continue;
        }
        for (unsigned w = 0; w < m->nworkers; w++) {
            struct child *c = &m->workers[w];
            if (c->pid != pid) {
                continue;
            }
            c->pid = 0;
            if (c->chan >= 0) {
                close(c->chan);
                c->chan = -1;
            }
            /* repair before respawning: totals must equal live
             * connections, and the new worker starts from zero */
            sc_registry_repair_worker(&m->reg, w);
            if (m->stopping) {
                sc_log(SC_LOG_INFO, "worker %u (pid %d) %s", w, (int)pid,
                       why);
                break;
            }
            sc_log(SC_LOG_WARN, "worker %u (pid %d) %s; restarting", w,
                   (int)pid, why);
            atomic_fetch_add(&m->reg.hdr->worker_restarts, 1);
            schedule_respawn(c, now);
            break;
        }
    }
}

static void
respawn_due(struct master *m, uint64_t now)
{
    for (unsigned w = 0; w < m->nworkers; w++) {
        struct child *c = &m->workers[w];
        if (c->pid == 0 && c->respawn_at != 0 && c->respawn_at <= now) {
            if (spawn_worker(m, w) != 0) {
                schedule_respawn(c, now);
            }
        }
    }
    if (m->listener.pid == 0 && m->listener.respawn_at != 0 &&
        m->listener.respawn_at <= now) {
        if (spawn_listener(m) != 0) {
            schedule_respawn(&m->listener, now);
        }
    }
}

static unsigned
children_alive(const struct master *m)
{
    unsigned n = m->listener.pid != 0;

    for (unsigned w = 0; w < m->nworkers; w++) {
        n += m->workers[w].pid != 0;
    }
    return n;
}

static void
signal_children(struct master *m, int signo)
{
    for (unsigned w = 0; w < m->nworkers; w++) {
        if (m->workers[w].pid != 0) {
            kill(m->workers[w].pid, signo);
        }
    }
    if (m->listener.pid != 0) {
        kill(m->listener.pid, signo);
    }
}

/* ------------------------------------------------------------------ */
/* Accepting and handing over                                           */

static uint64_t
worker_load(const struct master *m, unsigned w)
{
    const struct sc_worker_slot *s = sc_registry_worker(&m->reg, w);
    struct sc_worker_slot *ms = (struct sc_worker_slot *)(uintptr_t)s;
    uint64_t taken = atomic_load_explicit(&ms->fds_received,
                                          memory_order_relaxed);
    uint64_t pending = m->workers[w].sent > taken
                           ? m->workers[w].sent - taken
                           : 0;

    return atomic_load_explicit(&ms->connections, memory_order_relaxed) +
           pending;
}

/* Hands fd to the least-loaded worker; 0 on success, -1 if none took it. */
static int
dispatch(struct master *m, int fd, size_t listen_index)
{
    struct sc_channel_msg msg = {.type = SC_CHANNEL_CONN,
                                 .listen = (uint32_t)listen_index};
    bool tried[SC_MAX_WORKERS] = {false};

    for (unsigned attempt = 0; attempt < m->nworkers; attempt++) {
        unsigned best = m->nworkers;
        uint64_t best_load = UINT64_MAX;
        for (unsigned w = 0; w < m->nworkers; w++) {
            uint64_t l;
            if (tried[w] || m->workers[w].pid == 0 ||
                m->workers[w].chan < 0) {
                continue;
            }
            l = worker_load(m, w);
            if (l < best_load) {
                best_load = l;
                best = w;
            }
        }
        if (best == m->nworkers) {
            return -1;
        }
        tried[best] = true;
        int rc = sc_channel_send_fd(m->workers[best].chan, &msg, fd);
        if (rc == SC_CHANNEL_OK) {
            m->workers[best].sent++;
            return 0;
        }
        if (rc == SC_CHANNEL_ERROR) {
            sc_log(SC_LOG_WARN, "could not pass a connection to worker %u: %s",
                   best, strerror(errno));
        }
    }
    return -1;
}

static void
accept_on(struct master *m, size_t i)
{
    for (int n = 0; n < ACCEPT_BATCH; n++) {
        int fd = accept4(m->lfd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                sc_log(SC_LOG_ERR, "accept4() failed: %s; pausing accepts "
                       "for 100 ms", strerror(errno));
                m->accept_paused_until = sc_mono_ms() + 100;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sc_log(SC_LOG_ERR, "accept4() failed: %s", strerror(errno));
            }
            return;
        }
        atomic_fetch_add_explicit(&m->reg.hdr->accepted_total, 1,
                                  memory_order_relaxed);
        if (dispatch(m, fd, i) != 0) {
            /* every channel is full (a channel queues only a few
             * messages): hold this one and stop accepting until a worker
             * takes it, so that a burst waits in the listen backlog
             * instead of being dropped */
            m->held_fd = fd;
            m->held_listen = i;
            m->held_since = sc_mono_ms();
            return;
        }
        close(fd);
    }
}

/* Retries the held connection; gives up on it after HOLD_MAX_MS. */
static void
retry_held(struct master *m, uint64_t now)
{
    if (dispatch(m, m->held_fd, m->held_listen) == 0) {
        close(m->held_fd);
        m->held_fd = -1;
        return;
    }
    if (now - m->held_since >= HOLD_MAX_MS) {
        atomic_fetch_add_explicit(&m->reg.hdr->accept_drops, 1,
                                  memory_order_relaxed);
        sc_log(SC_LOG_WARN, "no worker took a new connection for %d ms; "
               "closed it", HOLD_MAX_MS);
        close(m->held_fd);
        m->held_fd = -1;
    }
}

/* ------------------------------------------------------------------ */
/* Stop and reload                                                      */

static void
begin_stop(struct master *m)
{
    if (m->stopping) {
        return;
    }
    m->stopping = true;
    m->stop_deadline = sc_mono_ms() + (uint64_t)m->cfg->shutdown_timeout * 1000;
    sc_log(SC_LOG_INFO, "shutting down: closing listeners, stopping %u "
           "children", children_alive(m));
    atomic_store(&m->reg.hdr->shutting_down, 1);
    close_listeners(m);
    if (m->held_fd >= 0) {
        close(m->held_fd);
        m->held_fd = -1;
    }
    for (unsigned w = 0; w < m->nworkers; w++) {
        m->workers[w].respawn_at = 0;
    }
    m->listener.respawn_at = 0;
    signal_children(m, SIGTERM);
}

/*
 * Passes the reload snapshot to each worker that is due one; a full
 * channel is tried again on the next turn of the loop.  The snapshot is
 * closed once every worker has it.
 */
static void
send_reloads(struct master *m)
{
    struct sc_channel_msg msg = {.type = SC_CHANNEL_RELOAD, .listen = 0};
    bool left = false;

    for (unsigned w = 0; w < m->nworkers; w++) {
        struct child *c = &m->workers[w];
        if (!c->reload_due) {
            continue;
        }
        if (c->pid == 0 || c->chan < 0) {
            c->reload_due = false; /* its successor forks with it */
            continue;
        }
        int rc = sc_channel_send_fd(c->chan, &msg, m->reload_fd);
        if (rc == SC_CHANNEL_OK) {
            c->reload_due = false;
        } else if (rc == SC_CHANNEL_AGAIN) {
            left = true;
        } else {
            sc_log(SC_LOG_WARN, "could not pass the reloaded configuration "
                   "to worker %u: %s", w, strerror(errno));
            c->reload_due = false;
        }
    }
    if (!left) {
        close(m->reload_fd);
        m->reload_fd = -1;
    }
}

/*
 * SIGHUP: the one reload.  The master reads and checks the configuration
 * and the keys; if both are good they are in force for the master (and so
 * for every child forked from now on) and the workers get the same
 * snapshot over their channels.  Nothing changes when either is bad.
 */
static void
reload(struct master *m)
{
    struct sc_reload r;
    struct sc_jwt_keys *keys;
    char err[512];
    int fd;

    if (sc_reload_read(&r, m->cfg, m->argc, m->argv, err, sizeof(err)) !=
        0) {
        sc_log(SC_LOG_ERR, "reload failed, keeping the running "
               "configuration and keys: %s", err);
        return;
    }
    /* a reload that workers would refuse is refused here, and a worker
     * respawned later inherits the keys in force */
    keys = sc_reload_keys(&r, err, sizeof(err));
    if (keys == NULL) {
        sc_log(SC_LOG_ERR, "reload failed, keeping the running "
               "configuration and keys: %s", err);
        sc_reload_fini(&r);
        return;
    }
    fd = sc_reload_pack(&r);
    if (fd < 0) {
        sc_log(SC_LOG_ERR, "reload failed, keeping the running "
               "configuration and keys: snapshot: %s", strerror(errno));
        sc_jwt_keys_free(keys);
        sc_reload_fini(&r);
        return;
    }
    sc_jwt_keys_free(*m->keys);
    *m->keys = keys;
    memcpy(m->cfg, r.cfg, sizeof(*m->cfg));
    sc_reload_fini(&r);
    sc_log_init(m->cfg->log_level,
                m->cfg->log_format == SC_LOG_FORMAT_JSON);
    if (m->reload_fd >= 0) {
        close(m->reload_fd); /* an older snapshot not yet everywhere */
    }
    m->reload_fd = fd;
    for (unsigned w = 0; w < m->nworkers; w++) {
        m->workers[w].reload_due = true;
    }
    sc_log(SC_LOG_INFO, "configuration reloaded; passing it to the "
           "workers");
    send_reloads(m);
}

/* ------------------------------------------------------------------ */
/* Setup and loop                                                       */

static int
install_signals(sigset_t *orig)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaddset(&block, sigs[i]);
        if (sigaction(sigs[i], &sa, NULL) != 0) {
            return -1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    return sigprocmask(SIG_BLOCK, &block, orig);
}

static int
create_registry(struct master *m)
{
    struct sc_shm_params p = {.nworkers = (uint32_t)m->cfg->workers,
                              .max_events = m->cfg->max_events};
    char err[512], listen[160];
    bool replaced;
    pid_t live;
    int rc;

    sc_config_format_listen(&m->cfg->listen[0], listen, sizeof(listen));
    rc = sc_registry_create(&m->reg, m->cfg->shm_name, &p, m->self, listen,
                            &live, &replaced, err, sizeof(err));
    if (rc == SC_REG_ELIVE) {
        sc_log(SC_LOG_ERR, "another seatcast is running: %s", err);
        return -1;
    }
    if (rc != SC_REG_OK) {
        sc_log(SC_LOG_ERR, "%s", err);
        return -1;
    }
    if (replaced) {
        sc_log(SC_LOG_WARN, "replaced stale shared memory \"%s\" left by a "
               "seatcast that is no longer running", m->cfg->shm_name);
    }
    if (m->reg.moved) {
        /* another user holds the name: never removed, never trusted */
        sc_log(SC_LOG_WARN, "shared memory \"%s\" belongs to another user "
               "(uid %ld), not to seatcast (uid %lu): the registry is \"%s\" "
               "instead; \"seatcast stats --shm-name %s\" finds it",
               m->cfg->shm_name,
               m->reg.foreign_uid == (uid_t)-1 ? -1L
                                               : (long)m->reg.foreign_uid,
               (unsigned long)geteuid(), m->reg.name, m->cfg->shm_name);
    }
    sc_log(SC_LOG_DEBUG, "registry \"%s\": %llu bytes", m->reg.name,
           (unsigned long long)m->reg.hdr->total_size);
    return 0;
}

/*
 * True once clients may be accepted: the listener has loaded the event
 * table (or could not reach the database), or SETTLE_MAX_MS passed.
 * Until then connections wait in the kernel's backlog: after a restart
 * the table is empty, and a client that resubscribed then would be told
 * not_found for an event that exists (and a client library drops it).
 */
static bool
settled(struct master *m, uint64_t now)
{
    if (atomic_load(&m->reg.hdr->settled)) {
        sc_log(SC_LOG_INFO, "events loaded; accepting clients");
    } else if (now >= m->settle_until) {
        sc_log(SC_LOG_WARN, "the listener has not loaded the events after "
               "%d ms; accepting clients all the same (subscriptions to "
               "events not loaded yet are answered not_found)",
               SETTLE_MAX_MS);
    } else {
        return false;
    }
    m->settled = true;
    return true;
}

static void
master_loop(struct master *m, const sigset_t *orig)
{
    struct pollfd pfd[SC_CONFIG_MAX_LISTEN + SC_MAX_WORKERS];

    m->settle_until = sc_mono_ms() + SETTLE_MAX_MS;
    for (;;) {
        uint64_t now = sc_mono_ms();
        nfds_t n = 0, nl = 0;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000};

        if (!m->stopping && m->held_fd >= 0) {
            /* wait for room in a channel, not for new connections */
            for (unsigned w = 0; w < m->nworkers; w++) {
                if (m->workers[w].chan >= 0) {
                    pfd[n].fd = m->workers[w].chan;
                    pfd[n].events = POLLOUT;
                    pfd[n].revents = 0;
                    n++;
                }
            }
        } else if (!m->stopping && !(m->settled || settled(m, now))) {
            ts.tv_nsec = 10 * 1000000; /* the listener has not loaded the
                                          events yet: poll for it */
        } else if (!m->stopping && now >= m->accept_paused_until) {
            for (size_t i = 0; i < m->nlisten; i++) {
                pfd[n].fd = m->lfd[i];
                pfd[n].events = POLLIN;
                pfd[n].revents = 0;
                n++;
            }
            nl = n;
        }
        int rc = ppoll(pfd, n, &ts, orig);
        if (rc < 0 && errno != EINTR) {
            sc_log(SC_LOG_ERR, "ppoll() failed: %s", strerror(errno));
        }
        if (sig_child) {
            sig_child = 0;
            reap_children(m);
        }
        if (sig_stop) {
            sig_stop = 0;
            begin_stop(m);
        }
        if (sig_reload) {
            sig_reload = 0;
            if (!m->stopping) {
                reload(m);
            }
        }
        now = sc_mono_ms();
        if (m->stopping) {
            if (children_alive(m) == 0) {
                return;
            }
            if (now >= m->stop_deadline) {
                sc_log(SC_LOG_WARN, "shutdown timeout: killing %u children",
                       children_alive(m));
                signal_children(m, SIGKILL);
                m->stop_deadline = UINT64_MAX;
            }
            continue;
        }
        if (m->held_fd >= 0) {
            retry_held(m, now);
        }
        if (m->reload_fd >= 0) {
            send_reloads(m);
        }
        for (nfds_t i = 0; rc > 0 && i < nl && m->held_fd < 0; i++) {
            if (pfd[i].revents & POLLIN) {
                accept_on(m, i);
            }
        }
        respawn_due(m, now);
        if (now >= m->next_audit) {
            unsigned fixed = sc_registry_audit(&m->reg);
            m->next_audit = now + AUDIT_INTERVAL_MS;
            if (fixed > 0) {
                sc_log(SC_LOG_WARN, "registry audit corrected %u totals "
                       "left half-updated by a killed process", fixed);
            }
        }
    }
}

int
sc_master_run(struct sc_config *cfg, struct sc_jwt_keys **keys, int argc,
              char **argv)
{
    static struct master m; /* inherited by every child; lives forever */
    sigset_t orig;
    int status = 0;

    memset(&m, 0, sizeof(m));
    m.cfg = cfg;
    m.keys = keys;
    m.argc = argc;
    m.argv = argv;
    m.self = getpid();
    m.nworkers = (unsigned)cfg->workers;
    m.listener.chan = -1;
    m.held_fd = -1;
    m.reload_fd = -1;
    for (unsigned w = 0; w < m.nworkers; w++) {
        m.workers[w].chan = -1;
        m.wake_fds[w] = -1;
    }
    sc_log_set_role("master");
    sc_proc_set_title("seatcast: master", "sc-master");
    if (install_signals(&orig) != 0) {
        sc_log(SC_LOG_ERR, "could not install signal handlers: %s",
               strerror(errno));
        return 1;
    }
    /* the registry first: a second instance is refused with a clear
     * message before it touches a socket */
    if (create_registry(&m) != 0) {
        return 2;
    }
    if (open_listeners(&m) != 0) {
        close_listeners(&m);
        sc_registry_unlink(m.reg.name);
        return 2;
    }
    if (cfg->pid_file[0] &&
        sc_proc_write_pid_file(cfg->pid_file, m.self) != 0) {
        sc_log(SC_LOG_ERR, "could not write pid file \"%s\": %s",
               cfg->pid_file, strerror(errno));
        close_listeners(&m);
        sc_registry_unlink(m.reg.name);
        return 2;
    }
    for (unsigned w = 0; w < m.nworkers; w++) {
        m.wake_fds[w] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m.wake_fds[w] < 0) {
            sc_log(SC_LOG_ERR, "eventfd() failed: %s", strerror(errno));
            status = 1;
            goto out;
        }
    }
    sc_log(SC_LOG_INFO, "seatcast %s starting: %u workers, registry \"%s\"",
           SC_VERSION, m.nworkers, m.reg.name);
    if (spawn_listener(&m) != 0) {
        status = 1;
        goto out;
    }
    for (unsigned w = 0; w < m.nworkers; w++) {
        if (spawn_worker(&m, w) != 0) {
            begin_stop(&m);
            status = 1;
            break;
        }
    }
    master_loop(&m, &orig);
    sc_log(SC_LOG_INFO, "all children stopped; exiting");
out:
    close_listeners(&m);
    for (unsigned w = 0; w < m.nworkers; w++) {
        if (m.wake_fds[w] >= 0) {
            close(m.wake_fds[w]);
        }
        if (m.workers[w].chan >= 0) {
            close(m.workers[w].chan);
        }
    }
    if (cfg->pid_file[0]) {
        unlink(cfg->pid_file);
    }
    if (m.reload_fd >= 0) {
        close(m.reload_fd);
    }
    sc_registry_unlink(m.reg.name);
    sc_registry_detach(&m.reg);
    sc_jwt_keys_free(*keys);
    *keys = NULL;
    return status;
}
