/*
 * tables.c - the registry's tables: events (seats under a seqlock,
 * subscriber counts per worker), per-user connection counts, revoked
 * token ids (see sc_shm.h for who writes what)
 */
#include "shm_int.h"

#include <sched.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Event table                                                          */

struct sc_event_entry *
sc_registry_event_find(const struct sc_registry *reg, int64_t id)
{
    uint32_t mask = reg->hdr->event_slots - 1;
    uint32_t i = (uint32_t)sc_shm_mix64((uint64_t)id) & mask;

    if (id <= 0) {
        return NULL;
    }
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        int64_t k = atomic_load_explicit(&e->id, ACQUIRE);
        if (k == id) {
            return e;
        }
        if (k == 0) {
            return NULL;
        }
    }
    return NULL;
}

struct sc_event_entry *
sc_registry_event_insert(struct sc_registry *reg, int64_t id, bool *inserted)
{
    struct sc_shm_header *h = reg->hdr;
    uint32_t mask = h->event_slots - 1;
    uint32_t i = (uint32_t)sc_shm_mix64((uint64_t)id) & mask;

    *inserted = false;
    if (id <= 0) {
        return NULL;
    }
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        int64_t k = atomic_load_explicit(&e->id, RELAXED);
        if (k == id) {
            return e;
        }
        if (k == 0) {
            if (atomic_load_explicit(&h->events_used, RELAXED) >=
                h->max_events) {
                return NULL;
            }
            /* fields first, then the key: a reader that sees the key
             * sees an entry with a valid (even) seqlock */
            atomic_store_explicit(&e->flags, 0, RELAXED);
            atomic_store_explicit(&e->id, id, RELEASE);
            atomic_fetch_add_explicit(&h->events_used, 1, RELAXED);
            *inserted = true;
            return e;
        }
    }
    return NULL;
}

void
sc_registry_event_write(struct sc_event_entry *e, uint32_t flags,
                        int32_t available, int32_t capacity, int64_t version)
{
    uint64_t s = atomic_load_explicit(&e->seq, RELAXED);

    atomic_store_explicit(&e->seq, s + 1, RELAXED);
    atomic_thread_fence(RELEASE);
    atomic_store_explicit(&e->flags, flags, RELAXED);
    atomic_store_explicit(&e->available, available, RELAXED);
    atomic_store_explicit(&e->capacity, capacity, RELAXED);
    atomic_store_explicit(&e->version, version, RELAXED);
    atomic_store_explicit(&e->seq, s + 2, RELEASE);
}

void
sc_registry_event_read(const struct sc_event_entry *e,
                       struct sc_event_state *out)
{
    struct sc_event_entry *m = (struct sc_event_entry *)(uintptr_t)e;
    uint64_t s1, s2;

    out->id = atomic_load_explicit(&m->id, ACQUIRE);
    for (unsigned spins = 0;; spins++) {
        s1 = atomic_load_explicit(&m->seq, ACQUIRE);
        if ((s1 & 1) == 0) {
            out->flags = atomic_load_explicit(&m->flags, RELAXED);
            out->available = atomic_load_explicit(&m->available, RELAXED);
            out->capacity = atomic_load_explicit(&m->capacity, RELAXED);
            out->version = atomic_load_explicit(&m->version, RELAXED);
            atomic_thread_fence(ACQUIRE);
            s2 = atomic_load_explicit(&m->seq, RELAXED);
            if (s1 == s2) {
                return;
            }
        }
        if (spins > 1000) {
            /* the listener died mid-write and the master has not yet
             * repaired the entry: let the writer's successor catch up */
            sched_yield();
        }
    }
}

void
sc_registry_event_subs_add(struct sc_registry *reg, struct sc_event_entry *e,
                           unsigned w, int delta)
{
    uint32_t old;

    if (delta > 0) {
        atomic_fetch_add_explicit(&e->subs[w], 1, RELAXED);
        old = atomic_fetch_add_explicit(&e->subs_total, 1, ACQUIRE);
        if (old == 0) {
            atomic_fetch_add_explicit(&reg->hdr->events_watched, 1, RELAXED);
        }
    } else {
        atomic_fetch_sub_explicit(&e->subs[w], 1, RELAXED);
        old = atomic_fetch_sub_explicit(&e->subs_total, 1, RELEASE);
        if (old == 1) {
            atomic_fetch_sub_explicit(&reg->hdr->events_watched, 1, RELAXED);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Users                                                                */

/* True if nobody is counted in u (a slot that may take another key). */
static bool
user_idle(const struct sc_registry *reg, struct sc_user_entry *u)
{
    if (atomic_load_explicit(&u->total, RELAXED) != 0) {
        return false;
    }
    for (uint32_t w = 0; w < reg->hdr->nworkers; w++) {
        if (atomic_load_explicit(&u->per[w], RELAXED) != 0) {
            return false;
        }
    }
    return true;
}

/*
 * Finds key's entry; with claim, takes a free slot or, when the probe
 * ends without one, reuses an idle slot of another key met on the way,
 * so that users who come and go never fill the table.
 */
static struct sc_user_entry *
user_find(struct sc_registry *reg, uint64_t key, bool claim)
{
    uint32_t mask = reg->hdr->user_slots - 1;
    struct sc_user_entry *idle = NULL;
    uint32_t i;

    key = key ? key : 1; /* 0 marks a free slot: map it before hashing */
    i = (uint32_t)sc_shm_mix64(key) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        struct sc_user_entry *u = sc_shm_user_at(reg, i);
        uint64_t k = atomic_load_explicit(&u->key, ACQUIRE);
        if (k == key) {
            return u;
        }
        if (k == 0) {
            if (!claim) {
                return NULL;
            }
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong(&u->key, &expect, key)) {
                atomic_fetch_add_explicit(&reg->hdr->users_used, 1, RELAXED);
                return u;
            }
            if (expect == key) {
                return u;
            }
            continue;
        }
        if (claim && idle == NULL && user_idle(reg, u)) {
            idle = u;
        }
    }
    if (idle != NULL) {
        uint64_t old = atomic_load_explicit(&idle->key, ACQUIRE);
        if (user_idle(reg, idle) &&
            atomic_compare_exchange_strong(&idle->key, &old, key)) {
            return idle;
        }
    }
    return NULL;
}

/* Decrements *v unless it is 0 (a repaired count never wraps). */
static void
dec_sat32(_Atomic uint32_t *v)
{
    uint32_t cur = atomic_load_explicit(v, RELAXED);

    while (cur != 0 && !atomic_compare_exchange_weak(v, &cur, cur - 1)) {
    }
}

int
sc_registry_user_add(struct sc_registry *reg, uint64_t key, unsigned w,
                     uint32_t limit)
{
    uint64_t want = key ? key : 1;

    for (int attempt = 0; attempt < 8; attempt++) {
        struct sc_user_entry *u = user_find(reg, key, true);
        uint32_t cur;

        if (u == NULL) {
            return -1;
        }
        /* per[w] first: a worker killed between the two steps leaves
         * per[w] counted, which the repair clears exactly */
        atomic_fetch_add_explicit(&u->per[w], 1, RELAXED);
        cur = atomic_load_explicit(&u->total, RELAXED);
        do {
            if (limit != 0 && cur >= limit) {
                dec_sat32(&u->per[w]);
                if (atomic_load_explicit(&u->key, ACQUIRE) != want) {
                    break; /* the slot changed hands: look again */
                }
                return 0;
            }
        } while (!atomic_compare_exchange_weak(&u->total, &cur, cur + 1));
        if (limit != 0 && cur >= limit) {
            continue;
        }
        if (atomic_load_explicit(&u->key, ACQUIRE) == want) {
            return 1;
        }
        /* reused for another key meanwhile: undo and retry */
        dec_sat32(&u->total);
        dec_sat32(&u->per[w]);
    }
    return -1;
}

void
sc_registry_user_del(struct sc_registry *reg, uint64_t key, unsigned w)
{
    struct sc_user_entry *u = user_find(reg, key, false);

    if (u == NULL || atomic_load_explicit(&u->per[w], RELAXED) == 0) {
        return;
    }
    dec_sat32(&u->total);
    dec_sat32(&u->per[w]);
}

/* ------------------------------------------------------------------ */
/* Revoked token ids                                                    */

int
sc_registry_revoke(struct sc_registry *reg, uint64_t hash)
{
    uint32_t mask = reg->hdr->revoked_slots - 1;
    uint32_t i;

    hash = hash ? hash : 1;
    i = (uint32_t)sc_shm_mix64(hash) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        _Atomic uint64_t *slot = sc_shm_revoked_at(reg, i);
        uint64_t k = atomic_load_explicit(slot, RELAXED);
        if (k == hash) {
            return 0;
        }
        if (k == 0) {
            /* keep one slot in eight free so that lookups end */
            if (atomic_load_explicit(&reg->hdr->revoked_used, RELAXED) >=
                (uint64_t)mask - (mask >> 3)) {
                return -1;
            }
            atomic_store_explicit(slot, hash, RELEASE);
            atomic_fetch_add_explicit(&reg->hdr->revoked_used, 1, RELAXED);
            return 1;
        }
    }
    return -1;
}

bool
sc_registry_is_revoked(const struct sc_registry *reg, uint64_t hash)
{
    uint32_t mask = reg->hdr->revoked_slots - 1;
    uint32_t i;

    hash = hash ? hash : 1;
    i = (uint32_t)sc_shm_mix64(hash) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        uint64_t k = atomic_load_explicit(sc_shm_revoked_at(reg, i), ACQUIRE);
        if (k == hash) {
            return true;
        }
        if (k == 0) {
            return false;
        }
    }
    return false;
}

uint64_t
sc_registry_hash_str(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a offset basis */

    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h ? h : 1;
}

