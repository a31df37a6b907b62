/*
 * fanout.c - delivery of changes to one worker's subscribers (see
 * fanout.h)
 *
 * A drain reads the ring from ring_seq to its head.  Each change of a
 * followed event becomes a pending entry holding its frames (copied out
 * of the ring once, shared by every subscriber); the batch is sent per
 * event, each subscriber getting that event's frames in order in one
 * write, minus those its snapshot already holds.  A deletion or a
 * revocation sends the batch first, so that order is kept.  An event
 * whose last subscriber leaves during a batch waits on the zombie list
 * (a pending entry may still point at it) and is freed after the batch.
 *
 * Surges (--max-lag): an event surges when one of its changes has waited
 * longer than max_lag for this worker: in the ring before the worker read
 * it; or batched, until written to the event's last subscriber (known
 * after the write; foreseen before it from how long the event's last
 * write took, or for an event never written to, from its subscribers
 * and the cost per subscriber of the worker's last large write; then
 * the batch is merged instead).  A surging event's
 * changes are not batched: they fold into its merge, which keeps per
 * change its version and the running sums (so that a subscriber whose
 * snapshot already holds some of them gets the sums of the rest, in
 * frames of its own), and which is swept to the subscribers when due:
 * at once for the first, then max_lag ms after the last sweep began, or
 * as soon as it ends if it took longer (a sweep costs a write per
 * subscriber however many bookings it carries).  A sweep writes
 * sweep_chunk subscribers at a time, the worker reading the ring in
 * between: the changes that come meanwhile fold into the merge, and the
 * subscribers not written yet get them in the same frames (each gets the
 * sums of what it has not been sent; the next sweep brings them to the
 * others; README, "Onsale", has the figures).  What
 * an event had batched before it surged is older and goes first; before
 * its deletion, and before a resync, its merge is swept at once.  A
 * sweep that carries a single change ends the surge: merged or not, it
 * is the same message.
 */
#include "fanout.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "frame.h"
#include "log.h"
#include "proto.h"
#include "registry.h"

#define RELAXED memory_order_relaxed

/* ------------------------------------------------------------------ */
/* The index of followed events                                         */

static uint32_t
ev_hash(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;

    return (uint32_t)(x >> 32);
}

static struct sc_wevent *
wevent_find(struct sc_fanout *fan, int64_t id)
{
    struct sc_wevent *e = fan->events[ev_hash(id) & fan->events_mask];

    while (e != NULL && e->id != id) {
        e = e->hnext;
    }
    return e;
}

static void
wevent_grow(struct sc_fanout *fan)
{
    uint32_t n = (fan->events_mask + 1) * 2;
    struct sc_wevent **t = calloc(n, sizeof(*t));

    if (t == NULL) {
        return; /* chains just get longer */
    }
    for (uint32_t i = 0; i <= fan->events_mask; i++) {
        struct sc_wevent *e = fan->events[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = t[ev_hash(e->id) & (n - 1)];
            t[ev_hash(e->id) & (n - 1)] = e;
        }
    }
    free(fan->events);
    fan->events = t;
    fan->events_mask = n - 1;
}

static struct sc_wevent *
wevent_get(struct sc_fanout *fan, struct sc_event_entry *entry, int64_t id)
{
    struct sc_wevent *e = wevent_find(fan, id);
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
    e->hnext = fan->events[ev_hash(id) & fan->events_mask];
    fan->events[ev_hash(id) & fan->events_mask] = e;
    if (++fan->nevents > (fan->events_mask + 1) * 2) {
        wevent_grow(fan);
    }
    return e;
}

static void
merging_unlink(struct sc_fanout *fan, struct sc_wevent *e)
{
    struct sc_wevent **pp = &fan->merging;

    while (*pp != NULL && *pp != e) {
        pp = &(*pp)->mnext;
    }
    if (*pp == e) {
        *pp = e->mnext;
    }
    e->mnext = NULL;
}

static void
wevent_drop(struct sc_fanout *fan, struct sc_wevent *e)
{
    struct sc_wevent **pp = &fan->events[ev_hash(e->id) & fan->events_mask];

    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    fan->nevents--;
    if (e->merge.n > 0) {
        merging_unlink(fan, e);
    }
    free(e->merge.steps);
    free(e);
}

/* The cores this process may run on (its affinity mask: a container's
 * cpuset, taskset), at least 1. */
static uint32_t
usable_cores(void)
{
    cpu_set_t set;
    int n;

    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        return 1;
    }
    n = CPU_COUNT(&set);
    return n > 0 ? (uint32_t)n : 1;
}

int
sc_fanout_init(struct sc_fanout *fan, struct sc_registry *reg,
               unsigned index, const struct sc_fanout_ops *ops, void *host)
{
    memset(fan, 0, sizeof(*fan));
    fan->sweep_chunk = SC_FANOUT_SWEEP_CHUNK;
    fan->sub_us = SC_FANOUT_SUB_US;
    fan->cores = usable_cores();
    fan->reg = reg;
    fan->slot = sc_registry_worker(reg, index);
    fan->index = index;
    fan->ops = ops;
    fan->host = host;
    fan->events = calloc(64, sizeof(*fan->events));
    if (fan->events == NULL) {
        return -1;
    }
    fan->events_mask = 63;
    /* start at the ring's head: the state before it is in the table */
    fan->ring_seq = atomic_load(&reg->hdr->ring_head);
    atomic_store(&fan->slot->ring_seq, fan->ring_seq);
    return 0;
}

void
sc_fanout_set_max_lag(struct sc_fanout *fan, uint32_t ms)
{
    fan->max_lag = ms;
}

void
sc_fanout_fini(struct sc_fanout *fan)
{
    free(fan->events);
    fan->events = NULL;
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                        */

static struct sc_sub *
sub_find(const struct sc_follower *fol, int64_t id)
{
    struct sc_sub *s = fol->subs;

    while (s != NULL && s->ev->id != id) {
        s = s->next;
    }
    return s;
}

int
sc_fanout_subscribe(struct sc_fanout *fan, struct sc_follower *fol,
                    struct sc_event_entry *entry, int64_t id, uint32_t limit,
                    struct sc_event_state *snap)
{
    struct sc_sub *s = sub_find(fol, id);
    struct sc_wevent *e;
    int rc = 0;

    if (s == NULL) {
        if (fol->nsubs >= limit) {
            return -2;
        }
        e = wevent_get(fan, entry, id);
        s = calloc(1, sizeof(*s));
        if (e == NULL || s == NULL) {
            free(s);
            if (e != NULL && e->nsubs == 0) {
                wevent_drop(fan, e);
            }
            return -1;
        }
        s->fol = fol;
        s->ev = e;
        s->next = fol->subs;
        fol->subs = s;
        fol->nsubs++;
        s->ev_next = e->subs;
        if (e->subs != NULL) {
            e->subs->ev_prev = s;
        }
        e->subs = s;
        e->nsubs++;
        sc_registry_event_subs_add(fan->reg, entry, fan->index, +1);
        atomic_fetch_add_explicit(&fan->slot->subscriptions, 1, RELAXED);
        rc = 1;
    }
    /* the snapshot: the newest state, read after subscribing so that no
     * change can fall between the two; changes up to its version that
     * are still on their way through the ring are skipped for this
     * subscription only (the worker's other subscribers need them) */
    sc_registry_event_read(entry, snap);
    if (snap->version > s->min_version) {
        s->min_version = snap->version;
    }
    return rc;
}

/* Unlinks s from its event (O(1)) and frees it; not from fol's list. */
static void
sub_drop(struct sc_fanout *fan, struct sc_sub *s)
{
    struct sc_wevent *e = s->ev;

    if (e->cursor == s) {
        e->cursor = s->ev_next; /* the sweep in progress goes on */
    }
    if (s->ev_prev != NULL) {
        s->ev_prev->ev_next = s->ev_next;
    } else {
        e->subs = s->ev_next;
    }
    if (s->ev_next != NULL) {
        s->ev_next->ev_prev = s->ev_prev;
    }
    e->nsubs--;
    sc_registry_event_subs_add(fan->reg, e->entry, fan->index, -1);
    atomic_fetch_sub_explicit(&fan->slot->subscriptions, 1, RELAXED);
    s->fol->nsubs--;
    if (e->nsubs == 0) {
        if (fan->batching) {
            /* a batch may still point at e: free it after the batch */
            if (!e->zombie) {
                e->zombie = true;
                e->znext = fan->zombies;
                fan->zombies = e;
            }
        } else {
            wevent_drop(fan, e);
        }
    }
    free(s);
}

int
sc_fanout_unsubscribe(struct sc_fanout *fan, struct sc_follower *fol,
                      int64_t id)
{
    struct sc_sub **pp = &fol->subs;

    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ev->id == id) {
            struct sc_sub *s = *pp;
            *pp = s->next;
            sub_drop(fan, s);
            return 1;
        }
    }
    return 0;
}

void
sc_fanout_unsubscribe_all(struct sc_fanout *fan, struct sc_follower *fol)
{
    while (fol->subs != NULL) {
        struct sc_sub *s = fol->subs;
        fol->subs = s->next;
        sub_drop(fan, s);
    }
}

/* ------------------------------------------------------------------ */
/* Delivery                                                             */

static void bury_zombies(struct sc_fanout *fan);
/* What fold() takes of a change (from the ring or a batch). */
struct change {
    int64_t version;
    int64_t published_ms;
    uint32_t kind;
    int32_t available, capacity;
};

static int fold(struct sc_fanout *fan, struct sc_wevent *e,
                const struct change *c);
static void sweep(struct sc_fanout *fan, struct sc_wevent *e);

/*
 * The changes of e batched from pend[i] on, merged instead: their sweep
 * begins at the end of this drain (sc_fanout_sweep), a chunk at a time.
 * 1 if done (their frames are left for the caller to release).
 */
static int
merge_batched(struct sc_fanout *fan, struct sc_wevent *e, unsigned i)
{
    for (unsigned j = i; j < fan->npend; j++) {
        struct sc_pending *p = &fan->pend[j];
        if (p->ev != e) {
            continue;
        }
        struct change c = {p->version, p->published_ms, p->kind,
                           p->available, p->capacity};
        if (fold(fan, e, &c) != 0) {
            return 0; /* out of memory before the first: sent as they are */
        }
        p->ev = NULL;
    }
    return 1;
}

/*
 * Queues f, a change of e at `version`, to every subscriber of e whose
 * snapshot does not already hold it (each may be closed as slow).
 */
static void
fanout(struct sc_fanout *fan, struct sc_wevent *e, struct sc_frame *f,
       int64_t version)
{
    struct sc_sub *s = e->subs, *next;

    for (; s != NULL; s = next) {
        next = s->ev_next;
        if (s->min_version >= version) {
            continue;
        }
        /* a slow consumer closed here unlinks s (and maybe next's
         * neighbour, never next itself: only its own subs go) */
        fan->ops->send(s->fol->owner, f);
    }
}

/* Counts ms in one of the worker's histograms. */
static void
observe(_Atomic uint64_t *count, _Atomic uint64_t *sum_us,
        _Atomic uint64_t *buckets, uint64_t ms)
{
    atomic_fetch_add_explicit(count, 1, RELAXED);
    atomic_fetch_add_explicit(sum_us, ms * 1000, RELAXED);
    for (int i = 0; i < SC_LAT_BUCKETS; i++) {
        if (ms <= sc_lat_bounds_ms[i]) {
            atomic_fetch_add_explicit(&buckets[i], 1, RELAXED);
            return;
        }
    }
}

static void
record_latency(struct sc_fanout *fan, int64_t commit_ms)
{
    struct sc_worker_slot *slot = fan->slot;
    int64_t now = (int64_t)sc_wall_ms();

    observe(&slot->lat_count, &slot->lat_sum_us, slot->lat_buckets,
            now > commit_ms ? (uint64_t)(now - commit_ms) : 0);
}

/* How long m waited in the ring for this worker, in ms (counted). */
static uint64_t
record_wait(struct sc_fanout *fan, const struct sc_ring_msg *m)
{
    struct sc_worker_slot *slot = fan->slot;
    int64_t now = (int64_t)sc_mono_ms();
    uint64_t ms = now > m->published_ms ? (uint64_t)(now - m->published_ms)
                                        : 0;

    observe(&slot->wait_count, &slot->wait_sum_us, slot->wait_buckets, ms);
    return ms;
}

/* Every subscription to a deleted event is dropped, with `unsubscribed`. */
static void
deliver_deleted(struct sc_fanout *fan, struct sc_wevent *e)
{
    char msg[SC_PROTO_MSG_MAX];
    struct sc_frame *f = sc_frame_text(
        msg,
        sc_proto_unsubscribed(msg, sizeof(msg), (uint64_t)e->id,
                              sc_wall_ms()),
        0);

    while (e->subs != NULL) {
        struct sc_follower *fol = e->subs->fol;
        int64_t id = e->id;
        bool last = e->nsubs == 1;
        /* unsubscribing the last subscriber frees e */
        sc_fanout_unsubscribe(fan, fol, id);
        if (f != NULL) {
            fan->ops->send(fol->owner, f);
        }
        if (last) {
            break;
        }
    }
    sc_frame_release(f);
}

/* The jti hashes of a revocation, to the worker. */
static void
deliver_revoked(struct sc_fanout *fan, const struct sc_ring_msg *m)
{
    uint64_t h[SC_SHM_FRAME_MAX / sizeof(uint64_t)];
    size_t n = m->frame_len / sizeof(uint64_t);

    for (size_t i = 0; i < n; i++) {
        memcpy(&h[i], m->frame + i * sizeof(h[i]), sizeof(h[i]));
    }
    fan->ops->revoked(fan->host, h, n);
}

/* How long writing e's subscribers will take, ms: as long as the last
 * time, or never sent, as long per subscriber as the last large sending. */
static uint64_t
sending_ms(const struct sc_fanout *fan, const struct sc_wevent *e)
{
    if (e->sweep_ms > 0) {
        return e->sweep_ms;
    }
    return (uint64_t)e->nsubs * fan->sub_us / 1000;
}

/* e's sending took e->sweep_ms: a large one sets the cost per subscriber
 * (small ones measure in whole milliseconds, too coarse). */
static void
measure(struct sc_fanout *fan, const struct sc_wevent *e)
{
    if (e->nsubs >= fan->sweep_chunk && e->sweep_ms > 0) {
        fan->sub_us = (uint32_t)(e->sweep_ms * 1000 / e->nsubs);
    }
}

/* Writes what the sends queued (sc_fanout_ops.flush). */
static void
flush_sends(struct sc_fanout *fan)
{
    if (fan->ops->flush != NULL) {
        fan->ops->flush(fan->host);
    }
}

/*
 * Writes e's changes batched from pend[i] on (which waited since `oldest`;
 * the sending began at `began`) to its subscribers, each in one writev
 * without the frames its snapshot holds, sweep_chunk subscribers at a
 * time.  After each chunk the time the chunks took foresees the rest: a
 * sending foreseen to end past --max-lag is finished by a sweep from the
 * next subscriber: the changes fold into e's merge, the subscribers not
 * written get their sums (with what comes meanwhile), and those written,
 * before the sweep's cursor, are not visited again before the steps it
 * began with are dropped.  A sending's cost moves with what else the
 * machine runs: at 50 000 subscribers over 7 workers, the first booking's
 * took 60 to 780 ms to the same 7 143 subscribers.  True if a sweep
 * finishes it.
 */
static bool
send_batched(struct sc_fanout *fan, struct sc_wevent *e, unsigned i,
             int64_t oldest, uint64_t began)
{
    struct sc_frame *fs[2 * SC_FANOUT_PEND_MAX];
    int64_t vs[2 * SC_FANOUT_PEND_MAX];
    size_t n = 0;
    uint32_t written = 0;

    for (unsigned j = i; j < fan->npend; j++) {
        if (fan->pend[j].ev != e) {
            continue;
        }
        for (int k = 0; k < 2; k++) {
            if (fan->pend[j].f[k] != NULL) {
                fs[n] = fan->pend[j].f[k];
                vs[n++] = fan->pend[j].version;
            }
        }
    }
    for (struct sc_sub *s = e->subs, *next; s != NULL; s = next) {
        struct sc_frame *mine[2 * SC_FANOUT_PEND_MAX];
        size_t m = 0;
        next = s->ev_next;
        for (size_t k = 0; k < n; k++) {
            if (vs[k] > s->min_version) {
                mine[m++] = fs[k];
            }
        }
        /* a client freed here takes only its own subscriptions;
         * emptied events wait on the zombie list */
        fan->ops->send_many(s->fol->owner, mine, m);
        if (++written % fan->sweep_chunk != 0 || next == NULL ||
            fan->max_lag == 0) {
            continue;
        }
        e->cursor = next; /* a subscriber the flush drops moves it on */
        flush_sends(fan);
        next = e->cursor;
        e->cursor = NULL;
        uint64_t now = sc_mono_ms();
        uint64_t rest = e->nsubs > written ? (now - began) *
                                                 (e->nsubs - written) /
                                                 written
                                           : 0;
        if (next != NULL &&
            (int64_t)(now + rest) - oldest > (int64_t)fan->max_lag &&
            merge_batched(fan, e, i)) {
            e->cursor = next;
            e->sweep_version = e->merge.steps[e->merge.n - 1].version;
            e->swept_ms = began;
            return true;
        }
    }
    for (unsigned j = i; j < fan->npend; j++) {
        if (fan->pend[j].ev == e) {
            fan->pend[j].ev = NULL;
        }
    }
    flush_sends(fan);
    return false;
}

/*
 * Sends the batch's pending changes, event by event (send_batched()), or
 * merges those of an event foreseen to be written too late.
 */
static void
flush_pending(struct sc_fanout *fan)
{
    for (unsigned i = 0; i < fan->npend; i++) {
        struct sc_wevent *e = fan->pend[i].ev;
        int64_t oldest = fan->pend[i].published_ms;
        uint64_t began = sc_mono_ms();
        if (e == NULL) {
            continue;
        }
        /* writing them takes as long as the last time (or, the first
         * time, as long per subscriber as the last large sending): if
         * they will have waited past --max-lag by then, the surge begins
         * now */
        if (fan->max_lag > 0 &&
            (int64_t)began - oldest + (int64_t)sending_ms(fan, e) >
                (int64_t)fan->max_lag &&
            merge_batched(fan, e, i)) {
            continue;
        }
        if (send_batched(fan, e, i, oldest, began)) {
            continue;
        }
        /* written to every subscriber too late: its next changes merge.
         * The first sweep is spaced from the last sweep, not from this
         * batch: what came while it was written has waited long already
         * (at 100 000 subscribers, spacing it from a 1 s batch kept the
         * onsale's first bookings back 0.5 s more) */
        e->sweep_ms = sc_mono_ms() - began;
        measure(fan, e);
        if (fan->max_lag > 0 &&
            (int64_t)sc_mono_ms() - oldest > (int64_t)fan->max_lag) {
            e->surging = true;
        }
    }
    for (unsigned i = 0; i < fan->npend; i++) {
        sc_frame_release(fan->pend[i].f[0]);
        sc_frame_release(fan->pend[i].f[1]);
    }
    fan->npend = 0;
}

/*
 * The frames of merge m from its step `from` on (the steps before are in
 * the subscriber's snapshot): booking_created and booking_cancelled with
 * the sums of those steps (each only if not 0), then the seat_update.
 * Each frame in out[] holds a reference for the caller.
 */
static size_t
merge_frames(const struct sc_wevent *e, const struct sc_merge *m,
             uint32_t from, struct sc_frame *out[3])
{
    char msg[SC_PROTO_MSG_MAX];
    const struct sc_merge_step *last = &m->steps[m->n - 1];
    uint32_t sum[2] = {last->created, last->cancelled};
    uint64_t now = sc_wall_ms();
    size_t k = 0;

    if (from > 0) {
        sum[0] -= m->steps[from - 1].created;
        sum[1] -= m->steps[from - 1].cancelled;
    }
    for (int cancelled = 0; cancelled < 2; cancelled++) {
        if (sum[cancelled] > 0) {
            out[k] = sc_frame_text(
                msg,
                sc_proto_bookings(msg, sizeof(msg), cancelled,
                                  (uint64_t)e->id, m->available,
                                  sum[cancelled], now),
                0);
            k += out[k] != NULL;
        }
    }
    out[k] = sc_frame_text(msg,
                           sc_proto_seat_update(msg, sizeof(msg),
                                                (uint64_t)e->id,
                                                m->available, m->capacity,
                                                now),
                           e->id);
    k += out[k] != NULL;
    return k;
}

/* The first step of m newer than version (m->n if none is). */
static uint32_t
merge_step_after(const struct sc_merge *m, int64_t version)
{
    uint32_t lo = 0, hi = m->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->steps[mid].version > version) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/*
 * How long after a sweep began the next may begin: max_lag.  A sweep
 * that took longer is followed by the next as soon as it ends.  Measured
 * (README, "Onsale"): at 10 000 subscribers, sweeps every max_lag / 2
 * sent twice the messages, which the clients paid for in freshness; at
 * 100 000, a pause after a long sweep only made the counts older.
 */
static uint64_t
sweep_gap(const struct sc_fanout *fan)
{
    return fan->max_lag;
}

/*
 * A sweep of e's merge: sweep_begin(), then sweep_step() until it returns
 * true.  Each subscriber gets the sums of the steps newer than its
 * min_version, which then becomes the newest step's: steps folded while
 * the sweep is in progress reach the subscribers it has not written yet,
 * and the next sweep brings them to the others.  When it ends, the steps
 * every subscriber has are dropped (those up to the newest when it began:
 * a subscriber that came later had them in its snapshot).
 */
static void
sweep_begin(struct sc_wevent *e)
{
    e->cursor = e->subs;
    e->sweep_version = e->merge.steps[e->merge.n - 1].version;
    e->swept_ms = sc_mono_ms();
}

/* Writes the next `budget` subscribers of e's sweep; true when it ended
 * (e may then have left the merging list). */
static bool
sweep_step(struct sc_fanout *fan, struct sc_wevent *e, uint32_t budget)
{
    struct sc_merge *mg = &e->merge;
    struct sc_frame *mf[3];
    size_t nmf = 0;
    uint32_t mf_from = 0, mf_n = 0; /* what mf[] holds */
    struct sc_sub *s = e->cursor, *next;

    for (; s != NULL && budget > 0; s = next, budget--) {
        uint32_t from = merge_step_after(mg, s->min_version);
        next = s->ev_next;
        if (from >= mg->n) {
            continue;
        }
        /* subscribers next to each other lack the same steps: the frames
         * are built once for a run of them */
        if (nmf == 0 || from != mf_from || mg->n != mf_n) {
            for (size_t k = 0; k < nmf; k++) {
                sc_frame_release(mf[k]);
            }
            nmf = merge_frames(e, mg, from, mf);
            mf_from = from;
            mf_n = mg->n;
        }
        s->min_version = mg->steps[mg->n - 1].version;
        /* a client freed here takes only its own subscriptions; emptied
         * events wait on the zombie list */
        fan->ops->send_many(s->fol->owner, mf, nmf);
    }
    for (size_t k = 0; k < nmf; k++) {
        sc_frame_release(mf[k]);
    }
    e->cursor = s;
    flush_sends(fan); /* a subscriber it drops moves the cursor on */
    if (e->cursor != NULL) {
        return false;
    }
    /* ended: drop the steps every subscriber has (those it began with) */
    uint32_t done = merge_step_after(mg, e->sweep_version);
    if (done > 0) {
        struct sc_merge_step base = mg->steps[done - 1];
        for (uint32_t k = done; k < mg->n; k++) {
            mg->steps[k - done] = mg->steps[k];
            mg->steps[k - done].created -= base.created;
            mg->steps[k - done].cancelled -= base.cancelled;
        }
        mg->n -= done;
    }
    if (done > 1) {
        atomic_fetch_add_explicit(&fan->slot->merged, done, RELAXED);
    }
    e->sweep_ms = sc_mono_ms() - e->swept_ms;
    measure(fan, e);
    /* one change in a sweep: merged or not, the same message; the surge
     * is over (unless more came meanwhile) */
    e->surging = done > 1 || mg->n > 0;
    if (mg->n == 0) {
        merging_unlink(fan, e);
    } else {
        e->due_ms = e->swept_ms + sweep_gap(fan);
    }
    return true;
}

/* Sends e's whole merge to every subscriber now (ending the sweep in
 * progress, then one for what came during it). */
static void
sweep(struct sc_fanout *fan, struct sc_wevent *e)
{
    while (e->merge.n > 0) {
        if (e->cursor == NULL) {
            sweep_begin(e);
        }
        sweep_step(fan, e, UINT32_MAX);
    }
}

/* Sends every merge now (before a deletion or a resync: in order). */
static void
sweep_all(struct sc_fanout *fan)
{
    while (fan->merging != NULL) {
        sweep(fan, fan->merging);
    }
}

/*
 * Workers take turns at their sweeps.  They share the machine's cores,
 * which the scheduler shares out unevenly: at 100 000 subscribers over 7
 * workers on 2 cores, two wrote the onsale's first booking to their
 * 14 286 subscribers in 440 ms while five took 1.1 s, and the counts their
 * subscribers saw were as old as the slowest sweep.  Each worker says in
 * its slot its sweeps' front: when the oldest change the next subscriber
 * lacks was published.  A worker whose front is younger by more than
 * SC_FANOUT_TURN_MS than the fronts of as many other workers as there
 * are cores (said within SC_FANOUT_TURN_FRESH_MS) waits a millisecond,
 * leaving the cores to those behind; its own front ages meanwhile, so the
 * wait ends by itself.  As many workers as cores never wait: with one
 * core for the worker furthest behind only, a 100 000 onsale left the
 * cores idle 9% of the time.
 */
static uint64_t
sweep_front(const struct sc_fanout *fan)
{
    uint64_t front = 0;

    for (const struct sc_wevent *e = fan->merging; e != NULL; e = e->mnext) {
        const struct sc_merge *mg = &e->merge;
        uint32_t from;
        if (e->cursor == NULL) {
            continue;
        }
        from = merge_step_after(mg, e->cursor->min_version);
        if (from < mg->n &&
            (front == 0 || (uint64_t)mg->steps[from].published_ms < front)) {
            front = (uint64_t)mg->steps[from].published_ms;
        }
    }
    return front;
}

static void
say_front(struct sc_fanout *fan, uint64_t front, uint64_t now)
{
    atomic_store_explicit(&fan->slot->sweep_front_ms, front, RELAXED);
    atomic_store_explicit(&fan->slot->sweep_said_ms, now, RELAXED);
}

/* As many other workers as cores have sweeps further behind than front
 * by more than SC_FANOUT_TURN_MS. */
static bool
turn_of_others(const struct sc_fanout *fan, uint64_t front, uint64_t now)
{
    uint32_t behind = 0;

    if (front == 0) {
        return false;
    }
    for (unsigned w = 0; w < fan->reg->hdr->nworkers; w++) {
        const struct sc_worker_slot *o = sc_registry_worker(fan->reg, w);
        uint64_t f = atomic_load_explicit(&o->sweep_front_ms, RELAXED);
        uint64_t said = atomic_load_explicit(&o->sweep_said_ms, RELAXED);
        if (w != fan->index && f != 0 && f + SC_FANOUT_TURN_MS < front &&
            now < said + SC_FANOUT_TURN_FRESH_MS && ++behind >= fan->cores) {
            return true;
        }
    }
    return false;
}

uint64_t
sc_fanout_sweep(struct sc_fanout *fan, uint64_t now)
{
    uint64_t next = 0;
    uint64_t front = sweep_front(fan);
    bool was = fan->batching;

    if (turn_of_others(fan, front, now)) {
        say_front(fan, front, now);
        atomic_fetch_add_explicit(&fan->slot->sweep_turns, 1, RELAXED);
        return now + 1;
    }
    fan->batching = true;
    for (struct sc_wevent *e = fan->merging, *n; e != NULL; e = n) {
        n = e->mnext;
        if (e->cursor == NULL && e->due_ms <= now) {
            sweep_begin(e);
        }
        if (e->cursor != NULL && !sweep_step(fan, e, fan->sweep_chunk)) {
            next = now; /* in progress: the rest after the loop's turn */
        } else if (e->merge.n > 0 && (next == 0 || e->due_ms < next)) {
            next = e->due_ms;
        }
    }
    say_front(fan, sweep_front(fan), now);
    fan->batching = was;
    if (!was) {
        bury_zombies(fan);
    }
    return next;
}

/* Queues one change of e into the batch. */
static void
add_pending(struct sc_fanout *fan, struct sc_wevent *e,
            const struct sc_ring_msg *m)
{
    struct sc_pending *p;

    if (fan->npend == SC_FANOUT_PEND_MAX) {
        flush_pending(fan);
    }
    p = &fan->pend[fan->npend];
    p->ev = e;
    p->version = m->version;
    p->published_ms = m->published_ms;
    p->kind = m->kind;
    p->available = m->available;
    p->capacity = m->capacity;
    p->f[0] = NULL;
    if (m->update_off > 0 && m->update_off <= m->frame_len) {
        p->f[0] = sc_frame_new(m->frame, m->update_off, 0);
    }
    p->f[1] = sc_frame_new(m->frame + m->update_off,
                           (size_t)(m->frame_len - m->update_off),
                           m->event_id);
    fan->npend++;
}

/*
 * Folds change c into e's merge, which the sweeps of e send (the first
 * sweep of a surge at once, later ones spaced).  Out of memory, c joins
 * the last step (the sums stay exact; only a subscriber whose snapshot
 * falls inside that step may be told of a booking it has seen), and -1
 * when there is no step yet (nothing folded).
 */
static int
fold(struct sc_fanout *fan, struct sc_wevent *e, const struct change *c)
{
    struct sc_merge *mg = &e->merge;
    struct sc_merge_step *st;

    if (mg->n == mg->cap) {
        uint32_t cap = mg->cap > 0 ? 2 * mg->cap : 16;
        st = realloc(mg->steps, cap * sizeof(*st));
        if (st != NULL) {
            mg->steps = st;
            mg->cap = cap;
        } else if (mg->n == 0) {
            return -1;
        }
    }
    if (mg->n == 0) {
        /* the first change since the last sweep */
        e->due_ms = e->surging ? e->swept_ms + sweep_gap(fan) : 0;
        e->surging = true;
        e->mnext = fan->merging;
        fan->merging = e;
    }
    if (mg->n < mg->cap) {
        mg->steps[mg->n] = mg->n > 0 ? mg->steps[mg->n - 1]
                                     : (struct sc_merge_step){0};
        mg->steps[mg->n++].published_ms = c->published_ms;
    }
    st = &mg->steps[mg->n - 1];
    st->version = c->version;
    st->created += c->kind == SC_CHANGE_BOOKING_CREATED;
    st->cancelled += c->kind == SC_CHANGE_BOOKING_CANCELLED;
    mg->available = c->available;
    mg->capacity = c->capacity;
    return 0;
}

static void
deliver(struct sc_fanout *fan, const struct sc_ring_msg *m)
{
    struct sc_wevent *e;
    uint64_t wait;

    if (m->kind == SC_CHANGE_TOKEN_REVOKED) {
        flush_pending(fan); /* what came before the revocation goes first */
        deliver_revoked(fan, m);
        return;
    }
    e = wevent_find(fan, m->event_id);
    if (e == NULL || e->zombie) {
        return;
    }
    if (m->kind == SC_CHANGE_EVENT_DELETED) {
        flush_pending(fan);
        if (e->merge.n > 0) {
            sweep(fan, e);
        }
        deliver_deleted(fan, e);
        return;
    }
    /* the listener never publishes a version twice, but a resync may
     * have delivered this state already */
    if (m->version <= e->last_version) {
        return;
    }
    e->last_version = m->version;
    if (m->commit_ms > 0) {
        record_latency(fan, m->commit_ms);
    }
    wait = record_wait(fan, m);
    if (fan->max_lag > 0 && (e->surging || wait > fan->max_lag) &&
        fold(fan, e,
             &(struct change){m->version, m->published_ms, m->kind,
                              m->available, m->capacity}) == 0) {
        return;
    }
    if (e->merge.n > 0) {
        sweep(fan, e); /* merging was turned off (reload): older first */
    }
    add_pending(fan, e, m);
}

/* Frees the events left without subscribers during the batch. */
static void
bury_zombies(struct sc_fanout *fan)
{
    while (fan->zombies != NULL) {
        struct sc_wevent *e = fan->zombies;
        fan->zombies = e->znext;
        e->zombie = false;
        if (e->nsubs == 0) {
            wevent_drop(fan, e);
        }
    }
}

/* Behind the ring: send each followed event's current state if newer. */
static void
resync(struct sc_fanout *fan)
{
    char msg[SC_PROTO_MSG_MAX];
    struct sc_event_state st;

    atomic_fetch_add_explicit(&fan->slot->resyncs, 1, RELAXED);
    sc_log(SC_LOG_WARN, "fell behind the broadcast ring; resynchronising "
           "%u events from the event table", fan->nevents);
    fan->ring_seq = atomic_load(&fan->reg->hdr->ring_head);
    for (uint32_t i = 0; i <= fan->events_mask; i++) {
        struct sc_wevent *e = fan->events[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            sc_registry_event_read(e->entry, &st);
            if (st.version <= e->last_version) {
                continue;
            }
            if (st.flags & SC_EVENT_DELETED) {
                deliver_deleted(fan, e);
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
                fanout(fan, e, f, st.version);
                sc_frame_release(f);
            }
        }
    }
}

uint64_t
sc_fanout_drain(struct sc_fanout *fan)
{
    struct sc_ring_msg m;
    uint64_t next;

    fan->batching = true;
    for (;;) {
        int rc = sc_registry_ring_read(fan->reg, fan->ring_seq, &m);
        if (rc == 1) {
            break;
        }
        if (rc < 0) {
            flush_pending(fan);
            sweep_all(fan);
            resync(fan);
            break;
        }
        fan->ring_seq++;
        if (fan->nevents > 0 || m.kind == SC_CHANGE_TOKEN_REVOKED) {
            deliver(fan, &m);
        }
    }
    flush_pending(fan);
    next = sc_fanout_sweep(fan, sc_mono_ms());
    atomic_store_explicit(&fan->slot->ring_seq, fan->ring_seq, RELAXED);
    fan->batching = false;
    bury_zombies(fan);
    return next;
}
