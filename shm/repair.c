/*
 * repair.c - the master's side of the registry: repairing a dead child's
 * share, the periodic audit of the totals, and the sums of every worker's
 * counters (see sc_shm.h for what each may write)
 */
#include "shm_int.h"

#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Repair and totals                                                    */

/* Sum of an event's per-worker subscriber counts. */
static uint32_t
subs_sum(const struct sc_registry *reg, struct sc_event_entry *e)
{
    uint32_t sum = 0;

    for (uint32_t w = 0; w < reg->hdr->nworkers; w++) {
        sum += atomic_load_explicit(&e->subs[w], RELAXED);
    }
    return sum;
}

static uint32_t
user_sum(const struct sc_registry *reg, struct sc_user_entry *u)
{
    uint32_t sum = 0;

    for (uint32_t w = 0; w < reg->hdr->nworkers; w++) {
        sum += atomic_load_explicit(&u->per[w], RELAXED);
    }
    return sum;
}

/* Sets *v from `seen` to `want` unless a writer moved it meanwhile. */
static bool
fix32(_Atomic uint32_t *v, uint32_t seen, uint32_t want)
{
    return seen != want && atomic_compare_exchange_strong(v, &seen, want);
}

static uint64_t
count_watched(const struct sc_registry *reg)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < reg->hdr->event_slots; i++) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        if (atomic_load_explicit(&e->id, RELAXED) != 0 &&
            atomic_load_explicit(&e->subs_total, RELAXED) != 0) {
            n++;
        }
    }
    return n;
}

/*
 * The per-worker counts are the truth: a worker killed between the steps
 * of an update may leave subs_total, events_watched or a user's total
 * off, so the repair recomputes them from what the live workers hold
 * instead of subtracting.  A live worker's update racing with the repair
 * can leave a difference of one, which sc_registry_audit() fixes.
 */
void
sc_registry_repair_worker(struct sc_registry *reg, unsigned w)
{
    struct sc_shm_header *h = reg->hdr;
    struct sc_worker_slot *s = sc_registry_worker(reg, w);
    uint64_t watched;

    for (uint32_t i = 0; i < h->event_slots; i++) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        if (atomic_load_explicit(&e->id, RELAXED) == 0) {
            continue;
        }
        atomic_store(&e->subs[w], 0);
        fix32(&e->subs_total, atomic_load(&e->subs_total), subs_sum(reg, e));
    }
    watched = atomic_load(&h->events_watched);
    uint64_t want = count_watched(reg);
    if (watched != want) {
        atomic_compare_exchange_strong(&h->events_watched, &watched, want);
    }
    for (uint32_t i = 0; i < h->user_slots; i++) {
        struct sc_user_entry *u = sc_shm_user_at(reg, i);
        if (atomic_load_explicit(&u->key, RELAXED) == 0) {
            continue;
        }
        atomic_store(&u->per[w], 0);
        fix32(&u->total, atomic_load(&u->total), user_sum(reg, u));
    }
    /* the dead worker's counters live on in the retired totals */
#define SC_X(field, metric, help, stats)                                       \
    atomic_fetch_add_explicit(&h->retired_##field,                             \
                              atomic_exchange(&s->field, 0), RELAXED);
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    for (int i = 0; i < SC_LAT_BUCKETS; i++) {
        atomic_fetch_add_explicit(&h->retired_lat_buckets[i],
                                  atomic_exchange(&s->lat_buckets[i], 0),
                                  RELAXED);
        atomic_fetch_add_explicit(&h->retired_wait_buckets[i],
                                  atomic_exchange(&s->wait_buckets[i], 0),
                                  RELAXED);
    }
    atomic_store(&s->connections, 0);
    atomic_store(&s->clients, 0);
    atomic_store(&s->subscriptions, 0);
    atomic_store(&s->heartbeat_ms, 0);
    atomic_store(&s->state, SC_STATE_EMPTY);
    atomic_store(&s->pid, 0);
}

/* Waits ~200 us: long enough for any update in flight to finish. */
static void
settle(void)
{
    struct timespec ts = {0, 200000};

    nanosleep(&ts, NULL);
}

unsigned
sc_registry_audit(struct sc_registry *reg)
{
    struct sc_shm_header *h = reg->hdr;
    unsigned fixed = 0;
    uint64_t watched, want;

    /* a difference seen twice, with the same values, is not an update in
     * flight but one that a killed writer left half done */
    for (uint32_t i = 0; i < h->event_slots; i++) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        uint32_t t, sum;
        if (atomic_load_explicit(&e->id, RELAXED) == 0) {
            continue;
        }
        t = atomic_load(&e->subs_total);
        sum = subs_sum(reg, e);
        if (t == sum) {
            continue;
        }
        settle();
        if (atomic_load(&e->subs_total) == t && subs_sum(reg, e) == sum) {
            fixed += fix32(&e->subs_total, t, sum);
        }
    }
    for (uint32_t i = 0; i < h->user_slots; i++) {
        struct sc_user_entry *u = sc_shm_user_at(reg, i);
        uint32_t t, sum;
        if (atomic_load_explicit(&u->key, RELAXED) == 0) {
            continue;
        }
        t = atomic_load(&u->total);
        sum = user_sum(reg, u);
        if (t == sum) {
            continue;
        }
        settle();
        if (atomic_load(&u->total) == t && user_sum(reg, u) == sum) {
            fixed += fix32(&u->total, t, sum);
        }
    }
    watched = atomic_load(&h->events_watched);
    want = count_watched(reg);
    if (watched != want) {
        settle();
        if (atomic_load(&h->events_watched) == watched &&
            count_watched(reg) == want &&
            atomic_compare_exchange_strong(&h->events_watched, &watched,
                                           want)) {
            fixed++;
        }
    }
    return fixed;
}

void
sc_registry_repair_listener(struct sc_registry *reg)
{
    struct sc_listener_slot *l = sc_registry_listener(reg);
    struct sc_shm_header *h = reg->hdr;

    /* an entry left odd by a writer that died would stall its readers */
    for (uint32_t i = 0; i < h->event_slots; i++) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        uint64_t s = atomic_load(&e->seq);
        if (s & 1) {
            atomic_store(&e->seq, s + 1);
        }
    }
    atomic_store(&l->db_state, SC_DB_DISCONNECTED);
    atomic_store(&l->slot_active, 0);
    atomic_store(&l->state, SC_STATE_EMPTY);
    atomic_store(&l->pid, 0);
}

void
sc_registry_totals(const struct sc_registry *reg, struct sc_totals *t)
{
    const struct sc_shm_header *h = reg->hdr;
    struct sc_shm_header *m = (struct sc_shm_header *)(uintptr_t)h;

    memset(t, 0, sizeof(*t));
#define SC_X(field, metric, help, stats)                                       \
    t->field = atomic_load(&m->retired_##field);
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    for (unsigned w = 0; w < h->nworkers; w++) {
        struct sc_worker_slot *s = sc_registry_worker(reg, w);
        if (atomic_load(&s->state) == SC_STATE_RUNNING) {
            t->workers_running++;
        }
        t->connections += atomic_load(&s->connections);
        t->clients += atomic_load(&s->clients);
        t->subscriptions += atomic_load(&s->subscriptions);
#define SC_X(field, metric, help, stats) t->field += atomic_load(&s->field);
        SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    }
}

