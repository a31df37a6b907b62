/*
 * registry.c - the shared-memory registry (see sc_shm.h for the layout
 * and its concurrency protocol, registry.h for the interface)
 *
 * NOTES
 * - Sizing and placement share sc_shm_layout(), so that the segment a
 *   master creates and the one a reader attaches to agree by construction.
 * - The segment is created with ftruncate(), so untouched pages are zero
 *   and cost no memory: a large --max-events is cheap until used.
 * - Seqlock data fields are _Atomic with relaxed accesses; the frame bytes
 *   of a ring slot are copied with memcpy between the two sequence loads,
 *   as seqlocks do, and discarded if the sequence moved.
 * - This file never logs: messages go to the caller's buffer.
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const uint32_t sc_lat_bounds_ms[SC_LAT_BUCKETS] = {1,   2,   5,    10,
                                                   25,  50,  100,  250,
                                                   500, 1000, 2500, 5000};

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

/* ------------------------------------------------------------------ */
/* Layout                                                               */

static uint64_t
round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static uint32_t
pow2_at_least(uint64_t v)
{
    uint64_t p = 1;

    while (p < v && p < (1ull << 31)) {
        p <<= 1;
    }
    return p < v ? 0 : (uint32_t)p;
}

/* a += b * c, refusing overflow past 2^48 (far beyond any sane segment) */
static int
add_mul(uint64_t *a, uint64_t b, uint64_t c)
{
    const uint64_t lim = 1ull << 48;

    if (b != 0 && c > lim / b) {
        return -1;
    }
    if (*a > lim - b * c) {
        return -1;
    }
    *a += b * c;
    return 0;
}

int
sc_shm_layout(const struct sc_shm_params *p, struct sc_shm_header *h)
{
    uint64_t off;

    if (p->nworkers < 1 || p->nworkers > SC_SHM_MAX_WORKERS ||
        p->max_events < 1 || p->max_events > (1u << 26)) {
        return -1;
    }
    h->nworkers = p->nworkers;
    h->max_events = p->max_events;
    h->event_slots = pow2_at_least((uint64_t)p->max_events * 2);
    h->event_entry_size = (uint32_t)round_up(
        sizeof(struct sc_event_entry) + 4ull * p->nworkers, 8);
    h->ring_slots = pow2_at_least(p->ring_slots ? p->ring_slots
                                                : SC_SHM_RING_SLOTS);
    h->ring_slot_size = (uint32_t)sizeof(struct sc_ring_slot);
    h->user_slots = pow2_at_least(p->user_slots ? p->user_slots : 65536);
    h->user_entry_size = (uint32_t)round_up(
        sizeof(struct sc_user_entry) + 4ull * p->nworkers, 8);
    h->revoked_slots = pow2_at_least(SC_SHM_REVOKED_SLOTS);
    h->worker_slot_size =
        (uint32_t)round_up(sizeof(struct sc_worker_slot), SC_SHM_CACHELINE);
    if (h->event_slots == 0 || h->ring_slots == 0 || h->user_slots == 0) {
        return -1;
    }

    off = round_up(sizeof(struct sc_shm_header), SC_SHM_CACHELINE);
    h->header_size = (uint32_t)off;
    h->off_workers = off;
    if (add_mul(&off, h->worker_slot_size, p->nworkers) != 0) {
        return -1;
    }
    h->off_listener = off;
    off = round_up(off + sizeof(struct sc_listener_slot), SC_SHM_CACHELINE);
    h->off_events = off;
    if (add_mul(&off, h->event_entry_size, h->event_slots) != 0) {
        return -1;
    }
    off = round_up(off, SC_SHM_CACHELINE);
    h->off_ring = off;
    if (add_mul(&off, h->ring_slot_size, h->ring_slots) != 0) {
        return -1;
    }
    off = round_up(off, SC_SHM_CACHELINE);
    h->off_users = off;
    if (add_mul(&off, h->user_entry_size, h->user_slots) != 0) {
        return -1;
    }
    off = round_up(off, SC_SHM_CACHELINE);
    h->off_revoked = off;
    if (add_mul(&off, sizeof(uint64_t), h->revoked_slots) != 0) {
        return -1;
    }
    h->total_size = round_up(off, 4096);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Create, attach, detach                                               */

bool
sc_registry_owner_alive(pid_t pid)
{
    char path[64], comm[32];
    FILE *f;
    bool master = true;

    if (pid <= 0) {
        return false;
    }
    if (kill(pid, 0) != 0 && errno != EPERM) {
        return false;
    }
    /* the pid may have been reused: a live master names itself */
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    f = fopen(path, "re");
    if (f != NULL) {
        if (fgets(comm, sizeof(comm), f) != NULL) {
            master = strncmp(comm, "sc-master", 9) == 0;
        }
        fclose(f);
    }
    return master;
}

static int
map_fd(struct sc_registry *reg, int fd, size_t size, bool readonly)
{
    void *p = mmap(NULL, size, readonly ? PROT_READ : PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);

    if (p == MAP_FAILED) {
        return -1;
    }
    reg->hdr = p;
    reg->size = size;
    reg->readonly = readonly;
    return 0;
}

/* Reads the owner pid of an existing segment; 0 if it is not ours. */
static pid_t
existing_owner(const char *name)
{
    struct sc_shm_header h;
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    pid_t pid = 0;

    if (fd < 0) {
        return 0;
    }
    if (pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
        h.magic == SC_SHM_MAGIC) {
        pid = h.owner_pid;
    }
    close(fd);
    return pid;
}

int
sc_registry_create(struct sc_registry *reg, const char *name,
                   const struct sc_shm_params *params, pid_t owner,
                   const char *listen, pid_t *live_pid, bool *replaced,
                   char *err, size_t errlen)
{
    struct sc_shm_header layout;
    struct sc_shm_header *h;
    int fd, e;

    memset(reg, 0, sizeof(*reg));
    memset(&layout, 0, sizeof(layout));
    *replaced = false;
    *live_pid = 0;
    if (sc_shm_layout(params, &layout) != 0) {
        snprintf(err, errlen, "registry layout for %u workers and %u events "
                 "is too large", params->nworkers, params->max_events);
        return SC_REG_ERROR;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            break;
        }
        e = errno;
        if (e != EEXIST) {
            snprintf(err, errlen, "could not create shared memory \"%s\": %s",
                     name, strerror(e));
            return SC_REG_ERROR;
        }
        pid_t pid = existing_owner(name);
        if (pid != 0 && pid != owner && sc_registry_owner_alive(pid)) {
            *live_pid = pid;
            snprintf(err, errlen, "shared memory \"%s\" belongs to a running "
                     "seatcast master (pid %d)", name, (int)pid);
            return SC_REG_ELIVE;
        }
        /* stale: its master is gone */
        if (shm_unlink(name) != 0 && errno != ENOENT) {
            e = errno;
            snprintf(err, errlen, "could not remove stale shared memory "
                     "\"%s\": %s", name, strerror(e));
            return SC_REG_ERROR;
        }
        *replaced = true;
    }
    if (fd < 0) {
        snprintf(err, errlen, "could not create shared memory \"%s\": %s",
                 name, strerror(EEXIST));
        return SC_REG_ERROR;
    }
    if (ftruncate(fd, (off_t)layout.total_size) != 0 ||
        map_fd(reg, fd, layout.total_size, false) != 0) {
        e = errno;
        close(fd);
        shm_unlink(name);
        snprintf(err, errlen, "could not size or map shared memory \"%s\" "
                 "(%llu bytes): %s", name,
                 (unsigned long long)layout.total_size, strerror(e));
        return SC_REG_ERROR;
    }
    close(fd);
    h = reg->hdr;
    memcpy(h, &layout, sizeof(layout));
    h->magic = SC_SHM_MAGIC;
    h->version = SC_SHM_VERSION;
    h->owner_pid = owner;
    h->start_time_ms = (int64_t)sc_wall_ms();
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->listen, sizeof(h->listen), "%s", listen ? listen : "");
    atomic_store_explicit(&h->ready, 1, RELEASE);
    return SC_REG_OK;
}

int
sc_registry_attach(struct sc_registry *reg, const char *name, bool readonly,
                   char *err, size_t errlen)
{
    struct sc_shm_header h, expect;
    struct sc_shm_params p;
    struct stat st;
    int fd, e;

    memset(reg, 0, sizeof(*reg));
    fd = shm_open(name, readonly ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CLOEXEC,
                  0);
    if (fd < 0) {
        e = errno;
        snprintf(err, errlen, "could not open shared memory \"%s\": %s", name,
                 strerror(e));
        return e == ENOENT ? SC_REG_ENOENT : SC_REG_ERROR;
    }
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(h) ||
        pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
        h.magic != SC_SHM_MAGIC || h.version != SC_SHM_VERSION) {
        close(fd);
        snprintf(err, errlen, "shared memory \"%s\" is not a seatcast "
                 "registry of version %u", name, SC_SHM_VERSION);
        return SC_REG_EVERSION;
    }
    /* the layout must be the one this build computes */
    memset(&expect, 0, sizeof(expect));
    p.nworkers = h.nworkers;
    p.max_events = h.max_events;
    p.ring_slots = h.ring_slots;
    p.user_slots = h.user_slots;
    if (sc_shm_layout(&p, &expect) != 0 ||
        expect.total_size != h.total_size || expect.off_users != h.off_users ||
        (off_t)h.total_size > st.st_size) {
        close(fd);
        snprintf(err, errlen, "shared memory \"%s\" has an unexpected layout",
                 name);
        return SC_REG_EVERSION;
    }
    if (map_fd(reg, fd, h.total_size, readonly) != 0) {
        e = errno;
        close(fd);
        snprintf(err, errlen, "could not map shared memory \"%s\": %s", name,
                 strerror(e));
        return SC_REG_ERROR;
    }
    close(fd);
    return SC_REG_OK;
}

void
sc_registry_detach(struct sc_registry *reg)
{
    if (reg->hdr != NULL) {
        munmap(reg->hdr, reg->size);
    }
    reg->hdr = NULL;
    reg->size = 0;
}

int
sc_registry_unlink(const char *name)
{
    return shm_unlink(name);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */

static inline uint8_t *
base(const struct sc_registry *reg)
{
    return (uint8_t *)reg->hdr;
}

struct sc_worker_slot *
sc_registry_worker(const struct sc_registry *reg, unsigned w)
{
    return (struct sc_worker_slot *)(base(reg) + reg->hdr->off_workers +
                                     (size_t)w * reg->hdr->worker_slot_size);
}

struct sc_listener_slot *
sc_registry_listener(const struct sc_registry *reg)
{
    return (struct sc_listener_slot *)(base(reg) + reg->hdr->off_listener);
}

struct sc_event_entry *
sc_registry_event_at(const struct sc_registry *reg, uint32_t index)
{
    return (struct sc_event_entry *)(base(reg) + reg->hdr->off_events +
                                     (size_t)index *
                                         reg->hdr->event_entry_size);
}

static struct sc_ring_slot *
ring_slot(const struct sc_registry *reg, uint64_t seq)
{
    uint64_t i = seq & (reg->hdr->ring_slots - 1);

    return (struct sc_ring_slot *)(base(reg) + reg->hdr->off_ring +
                                   i * reg->hdr->ring_slot_size);
}

static struct sc_user_entry *
user_at(const struct sc_registry *reg, uint32_t index)
{
    return (struct sc_user_entry *)(base(reg) + reg->hdr->off_users +
                                    (size_t)index * reg->hdr->user_entry_size);
}

/* 64-bit mix (splitmix64 finaliser) for open addressing */
static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ------------------------------------------------------------------ */
/* Event table                                                          */

struct sc_event_entry *
sc_registry_event_find(const struct sc_registry *reg, int64_t id)
{
    uint32_t mask = reg->hdr->event_slots - 1;
    uint32_t i = (uint32_t)mix64((uint64_t)id) & mask;

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
    uint32_t i = (uint32_t)mix64((uint64_t)id) & mask;

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
/* Ring                                                                 */

uint64_t
sc_registry_ring_publish(struct sc_registry *reg, const struct sc_ring_msg *m)
{
    uint64_t n = atomic_load_explicit(&reg->hdr->ring_head, RELAXED);
    struct sc_ring_slot *s = ring_slot(reg, n);
    uint16_t len = m->frame_len > SC_SHM_FRAME_MAX ? SC_SHM_FRAME_MAX
                                                   : m->frame_len;

    atomic_store_explicit(&s->seq, 2 * n + 1, RELAXED);
    atomic_thread_fence(RELEASE);
    atomic_store_explicit(&s->event_id, m->event_id, RELAXED);
    atomic_store_explicit(&s->version, m->version, RELAXED);
    atomic_store_explicit(&s->commit_ms, m->commit_ms, RELAXED);
    atomic_store_explicit(&s->kind, m->kind, RELAXED);
    atomic_store_explicit(&s->available, m->available, RELAXED);
    atomic_store_explicit(&s->capacity, m->capacity, RELAXED);
    atomic_store_explicit(&s->frame_len, len, RELAXED);
    atomic_store_explicit(&s->update_off, m->update_off, RELAXED);
    memcpy(s->frame, m->frame, len);
    atomic_store_explicit(&s->seq, 2 * n + 2, RELEASE);
    atomic_store_explicit(&reg->hdr->ring_head, n + 1, RELEASE);
    return n;
}

int
sc_registry_ring_read(const struct sc_registry *reg, uint64_t seq,
                      struct sc_ring_msg *out)
{
    struct sc_ring_slot *s = ring_slot(reg, seq);
    uint64_t head = atomic_load_explicit(&reg->hdr->ring_head, ACQUIRE);
    uint64_t s1, s2;

    if (seq >= head) {
        return 1;
    }
    if (head - seq > reg->hdr->ring_slots) {
        return -1;
    }
    s1 = atomic_load_explicit(&s->seq, ACQUIRE);
    if (s1 != 2 * seq + 2) {
        return -1;
    }
    out->seq = seq;
    out->event_id = atomic_load_explicit(&s->event_id, RELAXED);
    out->version = atomic_load_explicit(&s->version, RELAXED);
    out->commit_ms = atomic_load_explicit(&s->commit_ms, RELAXED);
    out->kind = atomic_load_explicit(&s->kind, RELAXED);
    out->available = atomic_load_explicit(&s->available, RELAXED);
    out->capacity = atomic_load_explicit(&s->capacity, RELAXED);
    out->frame_len = atomic_load_explicit(&s->frame_len, RELAXED);
    out->update_off = atomic_load_explicit(&s->update_off, RELAXED);
    if (out->frame_len > SC_SHM_FRAME_MAX) {
        return -1;
    }
    memcpy(out->frame, s->frame, out->frame_len);
    atomic_thread_fence(ACQUIRE);
    s2 = atomic_load_explicit(&s->seq, RELAXED);
    return s1 == s2 ? 0 : -1;
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
    i = (uint32_t)mix64(key) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        struct sc_user_entry *u = user_at(reg, i);
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

static _Atomic uint64_t *
revoked_at(const struct sc_registry *reg, uint32_t index)
{
    return (_Atomic uint64_t *)(base(reg) + reg->hdr->off_revoked) + index;
}

int
sc_registry_revoke(struct sc_registry *reg, uint64_t hash)
{
    uint32_t mask = reg->hdr->revoked_slots - 1;
    uint32_t i;

    hash = hash ? hash : 1;
    i = (uint32_t)mix64(hash) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        _Atomic uint64_t *slot = revoked_at(reg, i);
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
    i = (uint32_t)mix64(hash) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        uint64_t k = atomic_load_explicit(revoked_at(reg, i), ACQUIRE);
        if (k == hash) {
            return true;
        }
        if (k == 0) {
            return false;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Repair and totals                                                    */

#define FOLD(field)                                                            \
    atomic_fetch_add_explicit(&h->retired_##field,                             \
                              atomic_exchange(&s->field, 0), RELAXED)

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
        struct sc_user_entry *u = user_at(reg, i);
        if (atomic_load_explicit(&u->key, RELAXED) == 0) {
            continue;
        }
        atomic_store(&u->per[w], 0);
        fix32(&u->total, atomic_load(&u->total), user_sum(reg, u));
    }
    FOLD(handshakes);
    FOLD(handshake_failures);
    FOLD(auth_failures);
    FOLD(messages_sent);
    FOLD(bytes_sent);
    FOLD(messages_received);
    FOLD(connections_total);
    FOLD(slow_consumers);
    FOLD(rate_limited);
    FOLD(resyncs);
    FOLD(lat_count);
    FOLD(lat_sum_us);
    for (int i = 0; i < SC_LAT_BUCKETS; i++) {
        atomic_fetch_add_explicit(&h->retired_lat_buckets[i],
                                  atomic_exchange(&s->lat_buckets[i], 0),
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
        struct sc_user_entry *u = user_at(reg, i);
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
    t->handshakes = atomic_load(&m->retired_handshakes);
    t->handshake_failures = atomic_load(&m->retired_handshake_failures);
    t->auth_failures = atomic_load(&m->retired_auth_failures);
    t->messages_sent = atomic_load(&m->retired_messages_sent);
    t->bytes_sent = atomic_load(&m->retired_bytes_sent);
    t->messages_received = atomic_load(&m->retired_messages_received);
    t->connections_total = atomic_load(&m->retired_connections_total);
    t->slow_consumers = atomic_load(&m->retired_slow_consumers);
    t->rate_limited = atomic_load(&m->retired_rate_limited);
    t->resyncs = atomic_load(&m->retired_resyncs);
    for (unsigned w = 0; w < h->nworkers; w++) {
        struct sc_worker_slot *s = sc_registry_worker(reg, w);
        if (atomic_load(&s->state) == SC_STATE_RUNNING) {
            t->workers_running++;
        }
        t->connections += atomic_load(&s->connections);
        t->clients += atomic_load(&s->clients);
        t->subscriptions += atomic_load(&s->subscriptions);
        t->connections_total += atomic_load(&s->connections_total);
        t->handshakes += atomic_load(&s->handshakes);
        t->handshake_failures += atomic_load(&s->handshake_failures);
        t->auth_failures += atomic_load(&s->auth_failures);
        t->messages_sent += atomic_load(&s->messages_sent);
        t->bytes_sent += atomic_load(&s->bytes_sent);
        t->messages_received += atomic_load(&s->messages_received);
        t->slow_consumers += atomic_load(&s->slow_consumers);
        t->rate_limited += atomic_load(&s->rate_limited);
        t->resyncs += atomic_load(&s->resyncs);
    }
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

/* ------------------------------------------------------------------ */
/* Clocks                                                               */

uint64_t
sc_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
sc_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
