/*
 * segment.c - the registry's segment: layout, create, attach, the
 * section accessors (see sc_shm.h for the layout and its concurrency
 * protocol, registry.h for the interface)
 *
 * NOTES
 * - Sizing and placement share sc_shm_layout(), so that the segment a
 *   master creates and the one a reader attaches to agree by construction.
 * - The segment is created with ftruncate(), so untouched pages are zero
 *   and cost no memory: a large --max-events is cheap until used.
 * - `ready` is stored (release) last when the master has filled the
 *   header; sc_registry_attach() refuses a segment without it (acquire).
 * - The registry's files never log: messages go to the caller's buffer.
 */
#include "shm_int.h"

#include <errno.h>
#include <fcntl.h>
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

/* Unix ms (the registry does not use the process clocks of clock.h). */
static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    h->start_time_ms = wall_ms();
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
    /* filled by its master: `ready` is the last store of creation */
    if (atomic_load_explicit(&reg->hdr->ready, ACQUIRE) != 1) {
        sc_registry_detach(reg);
        snprintf(err, errlen, "shared memory \"%s\" is still being "
                 "created", name);
        return SC_REG_ERROR;
    }
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

struct sc_worker_slot *
sc_registry_worker(const struct sc_registry *reg, unsigned w)
{
    return (struct sc_worker_slot *)(sc_shm_base(reg) + reg->hdr->off_workers +
                                     (size_t)w * reg->hdr->worker_slot_size);
}

struct sc_listener_slot *
sc_registry_listener(const struct sc_registry *reg)
{
    return (struct sc_listener_slot *)(sc_shm_base(reg) + reg->hdr->off_listener);
}

struct sc_event_entry *
sc_registry_event_at(const struct sc_registry *reg, uint32_t index)
{
    return (struct sc_event_entry *)(sc_shm_base(reg) + reg->hdr->off_events +
                                     (size_t)index *
                                         reg->hdr->event_entry_size);
}

