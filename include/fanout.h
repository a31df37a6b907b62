/*
 * fanout.h - delivery of the listener's changes to one worker's
 * subscribers
 *
 * Holds the worker's index of followed events (each with its list of
 * subscriptions), reads the broadcast ring from where the worker left
 * it, groups the changes of one drain into a batch (one writev per
 * subscriber and event), skips what a subscriber's snapshot already holds,
 * drops the subscriptions of deleted events, hands token revocations to
 * the worker, and resynchronises from the event table when the ring has
 * overrun the worker (docs/PROTOCOL.md section 6).
 *
 * Surges (--max-lag): when a change of an event has waited longer than
 * max_lag ms for this worker (in the ring before the worker read it, or
 * until the worker had written it to every subscriber), the event surges:
 * its changes are merged into one booking_created and one
 * booking_cancelled carrying "bookings": N and the newest count, then one
 * seat_update, swept to its subscribers at most every max_lag ms (back to
 * back when a sweep takes longer).  A sweep then costs a few frames per
 * subscriber however many bookings it stands for.  A sweep writes
 * sweep_chunk subscribers at a time, the worker reading the ring in
 * between, so that the subscribers it has not reached yet get the changes
 * that came meanwhile (each subscriber gets the sums of what it lacks).
 * The surge ends when a sweep stands for one change only.  Lateness is
 * also foreseen: before a sending (from the event's last one, or the
 * worker's cost per subscriber) and after each chunk of it (from the
 * chunks so far), a sending foreseen late becoming a sweep.  Workers
 * sweeping at once take turns through their registry slots (those
 * further behind go first, as many as there are cores).
 *
 * Loop glue, one worker process.  It knows nothing of sockets: frames go
 * to a connection through the hooks in sc_fanout_ops, and a connection's
 * side of its subscriptions is the struct sc_follower embedded in it.
 */
#ifndef SC_FANOUT_H
#define SC_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sc_frame;
struct sc_registry;
struct sc_worker_slot;
struct sc_event_entry;
struct sc_event_state;
struct sc_wevent;

#define SC_FANOUT_PEND_MAX 128 /* changes grouped per broadcast batch */
#define SC_FANOUT_SUB_US 10 /* sub_us before the first large sending */
#define SC_FANOUT_SWEEP_CHUNK 256 /* subscribers a sweep writes at a time */
#define SC_FANOUT_TURN_MS 5 /* a sweep this much less behind waits */
#define SC_FANOUT_TURN_FRESH_MS 100 /* fronts said longer ago are ignored */

/* One (connection, event) subscription. */
struct sc_sub {
    struct sc_sub *ev_prev, *ev_next; /* in the event's subscriber list */
    struct sc_sub *next;              /* in the follower's list */
    struct sc_follower *fol;
    struct sc_wevent *ev;
    int64_t min_version; /* changes up to this one are in its snapshot */
};

/* A connection's side of its subscriptions (embedded in the connection). */
struct sc_follower {
    struct sc_sub *subs; /* owned */
    void *owner;         /* the connection, passed to the hooks */
    uint16_t nsubs;
};

/* One change folded into a merge, with the merge's sums up to it. */
struct sc_merge_step {
    int64_t version;
    int64_t published_ms;        /* the change's, in the ring */
    uint32_t created, cancelled; /* bookings folded so far, this one in */
};

/* The changes of one surging event waiting for its next sweep. */
struct sc_merge {
    struct sc_merge_step *steps; /* in version order, owned, kept */
    uint32_t n, cap;
    int32_t available, capacity; /* the newest */
};

/* One change waiting in a batch: its frames, shared by all subscribers. */
struct sc_pending {
    struct sc_wevent *ev;  /* NULL once sent */
    struct sc_frame *f[2]; /* booking frame (or NULL), seat_update */
    int64_t version;
    int64_t published_ms;  /* in the ring, CLOCK_MONOTONIC */
    uint32_t kind;         /* enum sc_change_kind */
    int32_t available, capacity;
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
    /* surges (--max-lag) */
    bool surging;                 /* its changes go to `merge` */
    struct sc_merge merge;        /* what the next sweep sends */
    struct sc_wevent *mnext;      /* fan's list of events with a merge */
    uint64_t due_ms;              /* the next sweep, CLOCK_MONOTONIC */
    uint64_t swept_ms;            /* when the last sweep began */
    uint64_t sweep_ms;            /* how long it (or the last batch of
                                     the event) took to write */
    struct sc_sub *cursor;        /* the next subscriber of the sweep in
                                     progress (NULL: none) */
    int64_t sweep_version;        /* the newest change when it began */
};

/* How the fan-out reaches connections and the worker. */
struct sc_fanout_ops {
    /* Queues one shared frame (a new reference) to the connection; may
     * close it (slow consumer).  -1 if it was freed. */
    int (*send)(void *owner, struct sc_frame *f);
    /* Sends frames in order, in one write when the socket takes them.
     * -1 if the connection was freed. */
    int (*send_many)(void *owner, struct sc_frame *const *fs, size_t n);
    /* Closes the connections whose token's jti hash is one of hashes. */
    void (*revoked)(void *host, const uint64_t *hashes, size_t n);
    /* Writes what the sends since the last call queued (the worker's
     * io_uring batch), so that a sending's time is measured with its
     * writes; may free connections.  NULL: sends write at once. */
    void (*flush)(void *host);
};

struct sc_fanout {
    struct sc_registry *reg;
    struct sc_worker_slot *slot; /* this worker's: counters, ring_seq */
    unsigned index;
    const struct sc_fanout_ops *ops;
    void *host;
    struct sc_wevent **events; /* hash of followed events */
    uint32_t events_mask;
    uint32_t nevents;
    uint64_t ring_seq; /* next ring sequence to consume */
    struct sc_pending pend[SC_FANOUT_PEND_MAX]; /* this batch's changes */
    unsigned npend;
    struct sc_wevent *merging; /* events whose merge is not empty */
    uint32_t max_lag; /* ms; 0 = never merge */
    uint32_t sweep_chunk; /* subscribers a sweep writes at a time */
    uint32_t sub_us;      /* what a sending takes per subscriber, us of
                             wall time (the last large sending's) */
    uint32_t cores;       /* workers that sweep without taking turns (the
                             machine's cores) */
    struct sc_wevent *zombies; /* emptied during a batch, freed after it */
    bool batching;
};

/*
 * Sets fan up for worker `index`, starting at the ring's head (the state
 * before it is in the event table).  Returns 0 or -1 (out of memory).
 */
int sc_fanout_init(struct sc_fanout *fan, struct sc_registry *reg,
                   unsigned index, const struct sc_fanout_ops *ops,
                   void *host);

/* Merge the changes of an event that waited longer than ms (0: never). */
void sc_fanout_set_max_lag(struct sc_fanout *fan, uint32_t ms);

/*
 * Sends the merges whose sweep is due by `now` (CLOCK_MONOTONIC ms), and
 * the next sweep_chunk subscribers of the sweeps in progress.  Returns
 * when to call it again: `now` while a sweep is in progress, else when
 * the next one is due (0: none waits).  sc_fanout_drain() calls it too.
 */
uint64_t sc_fanout_sweep(struct sc_fanout *fan, uint64_t now);

/* Frees the index; every follower must have left (unsubscribe_all). */
void sc_fanout_fini(struct sc_fanout *fan);

/*
 * Subscribes fol to event id (entry: its registry entry).  Returns 1 when
 * added, 0 when already subscribed (not an error, even at the limit), -2
 * when fol already has `limit` subscriptions, -1 out of memory.  On 0 or 1
 * *snap is the event's state read after subscribing: the changes up to
 * its version are left out of this subscription's deliveries.
 */
int sc_fanout_subscribe(struct sc_fanout *fan, struct sc_follower *fol,
                        struct sc_event_entry *entry, int64_t id,
                        uint32_t limit, struct sc_event_state *snap);

/* 1 removed, 0 was not subscribed. */
int sc_fanout_unsubscribe(struct sc_fanout *fan, struct sc_follower *fol,
                          int64_t id);

void sc_fanout_unsubscribe_all(struct sc_fanout *fan,
                               struct sc_follower *fol);

/*
 * Delivers every change published since the last drain (or resyncs when
 * the ring overran the worker), and the merges now due.  Frames are
 * queued through the hooks; the caller flushes the connections
 * afterwards.  Returns as sc_fanout_sweep() does.
 */
uint64_t sc_fanout_drain(struct sc_fanout *fan);

#endif /* SC_FANOUT_H */
