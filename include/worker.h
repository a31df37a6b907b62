/*
 * worker.h - a seatcast worker process: one libevent loop serving the
 * connections the master hands over (HTTP, WebSocket, client protocol),
 * and delivering the listener's broadcasts to its own subscribers
 *
 * Loop glue.  The struct is shared with conn.c, which handles one
 * connection; everything here belongs to one worker process.
 */
#ifndef SC_WORKER_H
#define SC_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sc_child_ctx;
struct sc_config;
struct sc_registry;
struct sc_worker_slot;
struct sc_event_entry;
struct sc_conn;
struct sc_outq;
struct sc_sub;
struct sc_jwt_keys;
struct event_base;
struct event;

#define SC_WORKER_SCRATCH 65536
#define SC_WORKER_FREE_Q_MAX 65536 /* recycled output queue nodes kept */
#define SC_WORKER_PEND_MAX 128     /* changes grouped per broadcast batch */
#define SC_WHEEL_SLOTS 64          /* timer wheel: one slot per second */

struct sc_frame;

/* One change waiting in a batch: its frames, shared by all subscribers. */
struct sc_pending {
    struct sc_wevent *ev;    /* NULL once sent */
    struct sc_frame *f[2];   /* booking frame (or NULL), seat_update */
    int64_t version;
};

/* The worker's view of one event some of its connections follow. */
struct sc_wevent {
    struct sc_wevent *hnext;      /* hash chain */
    struct sc_wevent *znext;      /* zombie list: no subscriber left while
                                     a batch was in progress */
    bool zombie;
    int64_t id;
    struct sc_event_entry *entry; /* in the registry */
    struct sc_sub *subs;          /* subscriber list */
    uint32_t nsubs;
    int64_t last_version;         /* newest version delivered */
};

struct sc_worker {
    const struct sc_child_ctx *ctx;
    struct sc_config *cfg;   /* own copy, replaced on reload */
    struct sc_registry *reg;
    struct sc_worker_slot *slot;
    unsigned index;
    struct event_base *base;
    struct event *ev_channel, *ev_wake, *ev_tick;
    struct event *ev_term, *ev_int;
    struct sc_conn *conns; /* every connection */
    uint64_t nconns;
    struct sc_wevent **events; /* hash of followed events */
    uint32_t events_mask;
    uint32_t nevents;
    uint64_t ring_seq;   /* next ring sequence to consume */
    struct sc_jwt_keys *keys;
    struct sc_conn *dirty; /* connections with output to flush */
    struct sc_pending pend[SC_WORKER_PEND_MAX]; /* this batch's changes */
    unsigned npend;
    struct sc_wevent *zombies; /* emptied during a batch, freed after it */
    struct sc_conn *wheel[SC_WHEEL_SLOTS]; /* connections by due second */
    uint64_t wheel_s;          /* last second the wheel has handled */
    struct sc_outq *free_q; /* recycled queue nodes, owned */
    uint32_t nfree_q;
    bool batching;         /* queue only; flush at the end of a batch */
    bool stopping;
    uint64_t stop_deadline;
    uint64_t rand_state;
    uint8_t scratch[SC_WORKER_SCRATCH];
};

/* Runs worker ctx->index until it stops; never returns. */
void sc_worker_main(const struct sc_child_ctx *ctx)
    __attribute__((noreturn));

/* Connection bookkeeping, called by conn.c. */
void sc_worker_conn_added(struct sc_worker *w, struct sc_conn *c);
void sc_worker_conn_removed(struct sc_worker *w, struct sc_conn *c);

/* Subscriptions: 1 added, 0 already there, -1 out of memory. */
int sc_worker_subscribe(struct sc_worker *w, struct sc_conn *c,
                        struct sc_event_entry *entry, int64_t id);
/* 1 removed, 0 was not subscribed. */
int sc_worker_unsubscribe(struct sc_worker *w, struct sc_conn *c, int64_t id);
void sc_worker_unsubscribe_all(struct sc_worker *w, struct sc_conn *c);

/* A 64-bit random number (per-worker generator seeded from getrandom). */
uint64_t sc_worker_random(struct sc_worker *w);

#endif /* SC_WORKER_H */
