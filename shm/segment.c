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
 * - Whose an object is comes from fstat(), never from its content: /dev/shm
 *   is world-writable (sticky), so anyone may create any name first, and
 *   anyone may write any header into an object of their own.  Another
 *   user's object is never removed (root could: it must not) nor trusted;
 *   the registry moves beside it, to a name carrying our uid and 64 random
 *   bits, created with O_EXCL.  A header's owner pid counts only if that
 *   process is named sc-master and runs as the object's owner.
 * - The registry's files never log: messages go to the caller's buffer.
 */
#include "shm_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
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

/*
 * Reads /proc/PID/status: the name (comm) and the effective uid.  Returns
 * 0, or -1 if the process is gone or its status cannot be read.
 */
static int
proc_status(pid_t pid, char *comm, size_t commlen, uid_t *euid)
{
    char path[64], line[256];
    bool have_name = false, have_uid = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long r, e;
        if (strncmp(line, "Name:\t", 6) == 0) {
            size_t n = strcspn(line + 6, "\n");
            n = n < commlen ? n : commlen - 1;
            memcpy(comm, line + 6, n);
            comm[n] = '\0';
            have_name = true;
        } else if (sscanf(line, "Uid:\t%lu\t%lu", &r, &e) == 2) {
            *euid = (uid_t)e;
            have_uid = true;
        }
    }
    fclose(f);
    return have_name && have_uid ? 0 : -1;
}

bool
sc_registry_owner_alive(pid_t pid, uid_t uid)
{
    char comm[64];
    uid_t euid = (uid_t)-1;

    if (pid <= 0) {
        return false;
    }
    if (kill(pid, 0) != 0 && errno != EPERM) {
        return false;
    }
    /* the pid may have been reused, or be another user's process that
     * calls itself sc-master: a live master names itself and runs as the
     * user who owns the segment */
    if (proc_status(pid, comm, sizeof(comm), &euid) != 0) {
        return false;
    }
    return strcmp(comm, "sc-master") == 0 && euid == uid;
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

/* What an existing object of some name is, as seen by its creator. */
enum existing {
    EX_GONE,    /* removed meanwhile */
    EX_FOREIGN, /* another user's (or unreadable): never ours */
    EX_OURS     /* ours; *pid is its header's owner (0 if none) */
};

static enum existing
judge_existing(const char *name, pid_t *pid, uid_t *uid)
{
    struct sc_shm_header h;
    struct stat st;
    /* O_NONBLOCK: a FIFO put there must not hang us */
    int fd = shm_open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);

    *pid = 0;
    *uid = (uid_t)-1;
    if (fd < 0) {
        if (errno == ENOENT) {
            return EX_GONE;
        }
        /* cannot read it: not ours (ours are 0600 and we are the owner);
         * the owner, for the message, from the directory entry */
        char path[SC_SHM_NAME_MAX + 16];
        snprintf(path, sizeof(path), "/dev/shm%s", name);
        if (lstat(path, &st) == 0) {
            *uid = st.st_uid;
        }
        return EX_FOREIGN;
    }
    if (fstat(fd, &st) != 0) {
        close(fd);
        return EX_FOREIGN;
    }
    *uid = st.st_uid;
    if (st.st_uid != geteuid() || !S_ISREG(st.st_mode)) {
        close(fd);
        return EX_FOREIGN;
    }
    if (pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
        h.magic == SC_SHM_MAGIC) {
        *pid = h.owner_pid;
    }
    close(fd);
    return EX_OURS;
}

/*
 * Calls fn for every object of /dev/shm named "<base>.u<uid>.<hex>" (base
 * without its slash), owned by that uid, with the shm name ("/...").
 * only_uid: that uid only, or (uid_t)-1 for any.  Stops when fn returns
 * nonzero.
 */
typedef int (*moved_fn)(const char *name, uid_t uid, void *arg);

static void
scan_moved(const char *base, uid_t only_uid, moved_fn fn, void *arg)
{
    size_t blen = strlen(base + 1);
    struct dirent *d;
    DIR *dir = opendir("/dev/shm");

    if (dir == NULL) {
        return;
    }
    while ((d = readdir(dir)) != NULL) {
        const char *p = d->d_name;
        char name[SC_SHM_NAME_MAX + 2], path[SC_SHM_NAME_MAX + 16];
        unsigned long tag;
        char *end;
        struct stat st;

        if (strncmp(p, base + 1, blen) != 0 ||
            strncmp(p + blen, ".u", 2) != 0) {
            continue;
        }
        p += blen + 2;
        if (*p < '0' || *p > '9') {
            continue;
        }
        errno = 0;
        tag = strtoul(p, &end, 10);
        if (errno != 0 || *end != '.' || end[1] == '\0' ||
            strspn(end + 1, "0123456789abcdef") != strlen(end + 1)) {
            continue;
        }
        if (only_uid != (uid_t)-1 && tag != (unsigned long)only_uid) {
            continue;
        }
        snprintf(path, sizeof(path), "/dev/shm/%s", d->d_name);
        /* the uid in the name must be the owner's */
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            (unsigned long)st.st_uid != tag) {
            continue;
        }
        snprintf(name, sizeof(name), "/%s", d->d_name);
        if (fn(name, st.st_uid, arg) != 0) {
            break;
        }
    }
    closedir(dir);
}

/* Before moving: a live master of ours already moved from this name
 * refuses the start; stale moved segments of ours are removed. */
struct moved_check {
    pid_t self;
    pid_t live;
    char live_name[SC_SHM_NAME_MAX + 1];
};

static int
check_moved(const char *name, uid_t uid, void *arg)
{
    struct moved_check *mc = arg;
    pid_t pid;
    uid_t owner;

    (void)uid;
    if (judge_existing(name, &pid, &owner) != EX_OURS || pid == 0 ||
        pid == mc->self) {
        return 0; /* not ours, or one being created right now */
    }
    if (sc_registry_owner_alive(pid, geteuid())) {
        mc->live = pid;
        snprintf(mc->live_name, sizeof(mc->live_name), "%s", name);
        return 1;
    }
    shm_unlink(name);
    return 0;
}

/* Creates "<base>.u<euid>.<16 hex>" with O_EXCL; the fd, or -1. */
static int
create_moved(const char *base, char *name, size_t namelen, char *err,
             size_t errlen)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t r;
        int fd, n;

        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            snprintf(err, errlen, "getrandom() failed: %s", strerror(errno));
            return -1;
        }
        n = snprintf(name, namelen, "%s.u%lu.%016llx", base,
                     (unsigned long)geteuid(), (unsigned long long)r);
        if (n < 0 || (size_t)n >= namelen || n > SC_SHM_NAME_MAX) {
            snprintf(err, errlen, "shared memory name \"%s\" is too long to "
                     "add a suffix", base);
            return -1;
        }
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            return fd;
        }
        if (errno != EEXIST) {
            snprintf(err, errlen, "could not create shared memory \"%s\": %s",
                     name, strerror(errno));
            return -1;
        }
    }
    snprintf(err, errlen, "could not create shared memory \"%s.u%lu.*\": "
             "every name tried exists", base, (unsigned long)geteuid());
    return -1;
}

int
sc_registry_create(struct sc_registry *reg, const char *name,
                   const struct sc_shm_params *params, pid_t owner,
                   const char *listen, pid_t *live_pid, bool *replaced,
                   char *err, size_t errlen)
{
    struct sc_shm_header layout;
    struct sc_shm_header *h;
    struct moved_check mc = {.self = owner};
    int fd = -1, e;

    memset(reg, 0, sizeof(*reg));
    memset(&layout, 0, sizeof(layout));
    *replaced = false;
    *live_pid = 0;
    if (sc_shm_layout(params, &layout) != 0) {
        snprintf(err, errlen, "registry layout for %u workers and %u events "
                 "is too large", params->nworkers, params->max_events);
        return SC_REG_ERROR;
    }
    if (strlen(name) > SC_SHM_NAME_MAX) {
        snprintf(err, errlen, "shared memory name \"%s\" is too long", name);
        return SC_REG_ERROR;
    }
    snprintf(reg->name, sizeof(reg->name), "%s", name);
    /* a master of ours that had to move from this name is as live as one
     * under it; what dead ones of ours left there is removed */
    scan_moved(name, geteuid(), check_moved, &mc);
    if (mc.live != 0) {
        *live_pid = mc.live;
        snprintf(err, errlen, "shared memory \"%s\" belongs to a running "
                 "seatcast master (pid %d)", mc.live_name, (int)mc.live);
        return SC_REG_ELIVE;
    }
    for (int attempt = 0; attempt < 3 && !reg->moved; attempt++) {
        pid_t pid;
        uid_t uid;

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
        switch (judge_existing(name, &pid, &uid)) {
        case EX_GONE:
            continue;
        case EX_FOREIGN:
            /* another user's: we may not (and root must not) remove it */
            reg->moved = true;
            reg->foreign_uid = uid;
            continue;
        case EX_OURS:
            break;
        }
        if (pid != 0 && pid != owner &&
            sc_registry_owner_alive(pid, geteuid())) {
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
    if (reg->moved) {
        fd = create_moved(name, reg->name, sizeof(reg->name), err, errlen);
        if (fd < 0) {
            return SC_REG_ERROR;
        }
    }
    if (fd < 0) {
        snprintf(err, errlen, "could not create shared memory \"%s\": %s",
                 name, strerror(EEXIST));
        return SC_REG_ERROR;
    }
    reg->owner_uid = geteuid();
    if (ftruncate(fd, (off_t)layout.total_size) != 0 ||
        map_fd(reg, fd, layout.total_size, false) != 0) {
        e = errno;
        close(fd);
        shm_unlink(reg->name);
        snprintf(err, errlen, "could not size or map shared memory \"%s\" "
                 "(%llu bytes): %s", reg->name,
                 (unsigned long long)layout.total_size, strerror(e));
        return SC_REG_ERROR;
    }
    close(fd);
    h = reg->hdr;
    memcpy(h, &layout, sizeof(layout));
    /* the owner before the magic: whoever sees the magic sees an owner */
    h->owner_pid = owner;
    h->version = SC_SHM_VERSION;
    h->start_time_ms = wall_ms();
    /* for display only (cut to fit): readers use the name they opened */
    memcpy(h->name, reg->name, strnlen(reg->name, sizeof(h->name) - 1));
    snprintf(h->listen, sizeof(h->listen), "%s", listen ? listen : "");
    atomic_thread_fence(RELEASE);
    h->magic = SC_SHM_MAGIC;
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
    fd = shm_open(name,
                  (readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) {
        e = errno;
        snprintf(err, errlen, "could not open shared memory \"%s\": %s", name,
                 strerror(e));
        return e == ENOENT ? SC_REG_ENOENT : SC_REG_ERROR;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size < (off_t)sizeof(h) ||
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
    reg->owner_uid = st.st_uid;
    snprintf(reg->name, sizeof(reg->name), "%s", name);
    return SC_REG_OK;
}

/* ------------------------------------------------------------------ */
/* Finding a server's registry (seatcast stats)                         */

struct candidates {
    uid_t only;         /* the uid a candidate must have, or -1 */
    unsigned n;         /* how many matched */
    int64_t best_start; /* the newest one's start_time_ms */
    char best[SC_SHM_NAME_MAX + 1];
    char list[512];     /* "name (uid U, pid P), ..." for an error */
};

/* A candidate: attaches, checks ready and a live master of its uid. */
static int
consider(const char *name, uid_t uid, void *arg)
{
    struct candidates *c = arg;
    struct sc_registry r;
    char err[SC_SHM_NAME_MAX + 128];
    size_t used = strlen(c->list);

    if (c->only != (uid_t)-1 && uid != c->only) {
        return 0;
    }
    if (sc_registry_attach(&r, name, true, err, sizeof(err)) != SC_REG_OK) {
        return 0;
    }
    if (r.owner_uid == uid &&
        sc_registry_owner_alive(r.hdr->owner_pid, r.owner_uid)) {
        if (c->n == 0 || r.hdr->start_time_ms > c->best_start) {
            c->best_start = r.hdr->start_time_ms;
            snprintf(c->best, sizeof(c->best), "%s", name);
        }
        c->n++;
        snprintf(c->list + used, sizeof(c->list) - used, "%s%s (uid %lu, "
                 "pid %d)", used ? ", " : "", name, (unsigned long)uid,
                 (int)r.hdr->owner_pid);
    }
    sc_registry_detach(&r);
    return 0;
}

int
sc_registry_find(struct sc_registry *reg, const char *name, char *err,
                 size_t errlen)
{
    uid_t me = geteuid();
    struct candidates mine = {.only = me};
    bool own_dead = false;
    struct stat st;
    char path[SC_SHM_NAME_MAX + 16];
    bool foreign;
    int rc;

    snprintf(path, sizeof(path), "/dev/shm%s", name);
    rc = sc_registry_attach(reg, name, true, err, errlen);
    if (rc == SC_REG_OK && reg->owner_uid == me) {
        if (sc_registry_owner_alive(reg->hdr->owner_pid, me)) {
            return SC_REG_OK;
        }
        own_dead = true;
    }
    sc_registry_detach(reg);
    /* another user's object: not a registry of ours, whatever it holds */
    foreign = rc != SC_REG_ENOENT && !own_dead && lstat(path, &st) == 0 &&
              st.st_uid != me;
    /* where a server of ours moved when the name was another user's */
    scan_moved(name, me, consider, &mine);
    if (mine.n > 0) {
        return sc_registry_attach(reg, mine.best, true, err, errlen);
    }
    if (own_dead) {
        return sc_registry_attach(reg, name, true, err, errlen);
    }
    if (me == 0) {
        /* root looks at other users' servers too, but only at one that
         * is unambiguous: its object, its master and the name's uid agree */
        struct candidates any = {.only = (uid_t)-1};

        if (foreign) {
            consider(name, st.st_uid, &any);
        }
        scan_moved(name, (uid_t)-1, consider, &any);
        if (any.n == 1) {
            return sc_registry_attach(reg, any.best, true, err, errlen);
        }
        if (any.n > 1) {
            snprintf(err, errlen, "several registries answer to \"%s\": %s; "
                     "name one with --shm-name", name, any.list);
            return SC_REG_ERROR;
        }
    }
    if (foreign) {
        snprintf(err, errlen, "no registry found: shared memory \"%s\" "
                 "belongs to another user (uid %lu), and no \"%s.u%lu.*\" "
                 "of a running seatcast was found", name,
                 (unsigned long)st.st_uid, name, (unsigned long)me);
        return SC_REG_ENOENT;
    }
    return rc;
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

