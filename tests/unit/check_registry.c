/*
 * check_registry.c - the shared-memory registry: layout arithmetic,
 * create/attach across processes, stale and live owners, the event table
 * and its seqlock, subscriber accounting, the ring, the user table, and
 * repair after forked writers are killed mid-update (STYLE: "the registry
 * with forked writers killed mid-update, then repaired").
 *
 * Children never call ck_assert: they report through their exit status.
 * Segment names are "/sc-test-<runner pid>-<test pid>-<n>"; main() removes
 * whatever a failed test left behind.
 */
#include "clock.h"
#include "registry.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t runner_pid; /* main()'s pid, the prefix of every name */
static int name_seq;

static const struct sc_shm_params small = {
    .nworkers = 4, .max_events = 64, .ring_slots = 16, .user_slots = 64};

static void
shm_name(char *buf, size_t len)
{
    snprintf(buf, len, "/sc-test-%d-%d-%d", (int)runner_pid, (int)getpid(),
             name_seq++);
}

static void
create_ok(struct sc_registry *reg, const char *name,
          const struct sc_shm_params *p)
{
    char err[256];
    pid_t live = -1;
    bool replaced = true;
    int rc;

    rc = sc_registry_create(reg, name, p, getpid(), "127.0.0.1:3000", &live,
                            &replaced, err, sizeof(err));
    ck_assert_msg(rc == SC_REG_OK, "create %s: %d %s", name, rc, err);
    ck_assert(!replaced);
    ck_assert_int_eq(live, 0);
}

/* Creates with the given owner; returns the result code. */
static int
create_as(struct sc_registry *reg, const char *name, pid_t owner, pid_t *live,
          bool *replaced, char *err, size_t errlen)
{
    return sc_registry_create(reg, name, &small, owner, NULL, live, replaced,
                              err, errlen);
}

static void
destroy(struct sc_registry *reg, const char *name)
{
    sc_registry_detach(reg);
    sc_registry_unlink(name);
}

static bool
is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static uint32_t
entry_index(const struct sc_registry *reg, const struct sc_event_entry *e)
{
    const uint8_t *b = (const uint8_t *)sc_registry_event_at(reg, 0);

    return (uint32_t)(((const uint8_t *)e - b) / reg->hdr->event_entry_size);
}

static struct sc_user_entry *
user_slot(const struct sc_registry *reg, uint32_t i)
{
    return (struct sc_user_entry *)((uint8_t *)reg->hdr + reg->hdr->off_users +
                                    (size_t)i * reg->hdr->user_entry_size);
}

/* The entry holding key (scanning the whole table), or NULL. */
static struct sc_user_entry *
user_entry(const struct sc_registry *reg, uint64_t key)
{
    for (uint32_t i = 0; i < reg->hdr->user_slots; i++) {
        struct sc_user_entry *u = user_slot(reg, i);
        if (atomic_load(&u->key) == key) {
            return u;
        }
    }
    return NULL;
}

static uint64_t
splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits for pid; returns its raw status. */
static int
reap(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static bool
exited_ok(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/*
 * A child that lives until told (its end of `hold` is closed or it is
 * killed), named comm (NULL: inherited).  Returns once the name is set.
 */
static pid_t
spawn_sleeper_as(const char *comm, uid_t uid, int *hold_w)
{
    int ready[2], hold[2];
    pid_t pid;
    char c;

    ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(hold[1]);
        if (uid != (uid_t)-1 && setresuid(uid, uid, uid) != 0) {
            _exit(5);
        }
        if (comm != NULL && prctl(PR_SET_NAME, comm, 0, 0, 0) != 0) {
            _exit(3);
        }
        if (write(ready[1], "r", 1) != 1) {
            _exit(4);
        }
        while (read(hold[0], &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    *hold_w = hold[1];
    return pid;
}

static pid_t
spawn_sleeper(const char *comm, int *hold_w)
{
    return spawn_sleeper_as(comm, (uid_t)-1, hold_w);
}

/* A pid that is certainly not running: a child already reaped. */
static pid_t
dead_pid(void)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(0);
    }
    reap(pid);
    return pid;
}

/* ------------------------------------------------------------------ */
/* Layout                                                             */

START_TEST(layout_sections)
{
    static const uint32_t workers[] = {1, 2, 7, 64};
    static const uint32_t events[] = {1, 3, 64, 1000, 65536, 1u << 20};
    static const uint32_t rings[] = {0, 1, 3, 4096, 5000};
    static const uint32_t users[] = {0, 1, 5, 1024};

    for (size_t a = 0; a < 4; a++) {
        for (size_t b = 0; b < 6; b++) {
            for (size_t c = 0; c < 5; c++) {
                for (size_t d = 0; d < 4; d++) {
                    struct sc_shm_params p = {.nworkers = workers[a],
                                              .max_events = events[b],
                                              .ring_slots = rings[c],
                                              .user_slots = users[d]};
                    struct sc_shm_header h;
                    memset(&h, 0, sizeof(h));
                    ck_assert_int_eq(sc_shm_layout(&p, &h), 0);
                    ck_assert_uint_eq(h.nworkers, p.nworkers);
                    ck_assert_uint_eq(h.max_events, p.max_events);
                    /* the table never fills past one half */
                    ck_assert(is_pow2(h.event_slots));
                    ck_assert_uint_ge(h.event_slots, 2ull * p.max_events);
                    ck_assert(is_pow2(h.ring_slots));
                    ck_assert_uint_ge(h.ring_slots,
                                      p.ring_slots ? p.ring_slots : 4096);
                    ck_assert(is_pow2(h.user_slots));
                    ck_assert_uint_ge(h.user_slots, p.user_slots);
                    /* sizes hold their flexible arrays */
                    ck_assert_uint_ge(h.worker_slot_size,
                                      sizeof(struct sc_worker_slot));
                    ck_assert_uint_eq(h.worker_slot_size % 64, 0);
                    ck_assert_uint_ge(h.event_entry_size,
                                      sizeof(struct sc_event_entry) +
                                          4 * p.nworkers);
                    ck_assert_uint_eq(h.event_entry_size % 8, 0);
                    ck_assert_uint_ge(h.user_entry_size,
                                      sizeof(struct sc_user_entry) +
                                          4 * p.nworkers);
                    ck_assert_uint_eq(h.user_entry_size % 8, 0);
                    ck_assert_uint_eq(h.ring_slot_size,
                                      sizeof(struct sc_ring_slot));
                    /* increasing, aligned, not overlapping */
                    ck_assert_uint_ge(h.header_size,
                                      sizeof(struct sc_shm_header));
                    ck_assert_uint_eq(h.off_workers, h.header_size);
                    ck_assert_uint_eq(h.off_workers % 64, 0);
                    ck_assert_uint_eq(h.off_listener % 64, 0);
                    ck_assert_uint_eq(h.off_events % 64, 0);
                    ck_assert_uint_eq(h.off_ring % 64, 0);
                    ck_assert_uint_eq(h.off_users % 64, 0);
                    ck_assert_uint_le(h.off_workers + (uint64_t)h.nworkers *
                                                          h.worker_slot_size,
                                      h.off_listener);
                    ck_assert_uint_le(h.off_listener +
                                          sizeof(struct sc_listener_slot),
                                      h.off_events);
                    ck_assert_uint_le(h.off_events + (uint64_t)h.event_slots *
                                                         h.event_entry_size,
                                      h.off_ring);
                    ck_assert_uint_le(h.off_ring + (uint64_t)h.ring_slots *
                                                       h.ring_slot_size,
                                      h.off_users);
                    ck_assert_uint_le(h.off_users + (uint64_t)h.user_slots *
                                                        h.user_entry_size,
                                      h.off_revoked);
                    ck_assert(is_pow2(h.revoked_slots));
                    ck_assert_uint_eq(h.off_revoked % 64, 0);
                    ck_assert_uint_le(h.off_revoked + 8ull * h.revoked_slots,
                                      h.total_size);
                    ck_assert_uint_eq(h.total_size % 4096, 0);
                    ck_assert_uint_lt(h.total_size - h.off_revoked -
                                          8ull * h.revoked_slots,
                                      4096);
                }
            }
        }
    }
}
END_TEST

START_TEST(layout_refused)
{
    static const struct sc_shm_params bad[] = {
        {.nworkers = 0, .max_events = 64},
        {.nworkers = 65, .max_events = 64},
        {.nworkers = UINT32_MAX, .max_events = 64},
        {.nworkers = 4, .max_events = 0},
        {.nworkers = 4, .max_events = UINT32_MAX},
        {.nworkers = 4, .max_events = 1u << 31},
        {.nworkers = 4, .max_events = (1u << 31) + 1},
        {.nworkers = 64, .max_events = UINT32_MAX / 2},
        {.nworkers = 4, .max_events = 64, .ring_slots = UINT32_MAX},
        {.nworkers = 4, .max_events = 64, .ring_slots = (1u << 31) + 1},
        {.nworkers = 4, .max_events = 64, .user_slots = UINT32_MAX},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sc_shm_header h;
        memset(&h, 0, sizeof(h));
        ck_assert_msg(sc_shm_layout(&bad[i], &h) == -1,
                      "case %zu: %u workers %u events %u ring %u users "
                      "accepted",
                      i, bad[i].nworkers, bad[i].max_events, bad[i].ring_slots,
                      bad[i].user_slots);
    }
}
END_TEST

/* A refused layout is also a refused create, with a message. */
START_TEST(create_refuses_bad_params)
{
    struct sc_shm_params p = {.nworkers = 65, .max_events = 10};
    struct sc_registry reg;
    char name[64], err[256] = "";
    pid_t live;
    bool replaced;

    shm_name(name, sizeof(name));
    ck_assert_int_eq(sc_registry_create(&reg, name, &p, getpid(), NULL, &live,
                                        &replaced, err, sizeof(err)),
                     SC_REG_ERROR);
    ck_assert_ptr_null(reg.hdr);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_int_eq(shm_unlink(name), -1); /* nothing was created */
}
END_TEST

/* ------------------------------------------------------------------ */
/* Create and attach                                                  */

START_TEST(create_fills_header)
{
    struct sc_registry reg;
    struct sc_shm_header want;
    char name[64];
    uint64_t now = sc_wall_ms();
    struct stat st;
    int fd;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    memset(&want, 0, sizeof(want));
    ck_assert_int_eq(sc_shm_layout(&small, &want), 0);
    ck_assert_uint_eq(reg.hdr->magic, SC_SHM_MAGIC);
    ck_assert_uint_eq(reg.hdr->version, SC_SHM_VERSION);
    ck_assert_uint_eq(reg.hdr->total_size, want.total_size);
    ck_assert_uint_eq(reg.size, want.total_size);
    ck_assert_uint_eq(reg.hdr->off_users, want.off_users);
    ck_assert_int_eq(reg.hdr->owner_pid, getpid());
    ck_assert_str_eq(reg.hdr->name, name);
    ck_assert_str_eq(reg.hdr->listen, "127.0.0.1:3000");
    ck_assert_uint_eq(atomic_load(&reg.hdr->ready), 1);
    ck_assert_int_ge(reg.hdr->start_time_ms, (int64_t)now - 1000);
    ck_assert_int_le(reg.hdr->start_time_ms, (int64_t)sc_wall_ms() + 1000);
    ck_assert(!reg.readonly);
    /* the segment has the size of the layout, and mode 0600 */
    fd = shm_open(name, O_RDONLY, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, (off_t)want.total_size);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    close(fd);
    /* everything else starts at zero */
    ck_assert_uint_eq(atomic_load(&reg.hdr->ring_head), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_used), 0);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 3)->pid), 0);
    destroy(&reg, name);
}
END_TEST

START_TEST(attach_same_process)
{
    struct sc_registry reg, rw, ro;
    char name[64], err[256];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    ck_assert_int_eq(sc_registry_attach(&rw, name, false, err, sizeof(err)),
                     SC_REG_OK);
    ck_assert_int_eq(sc_registry_attach(&ro, name, true, err, sizeof(err)),
                     SC_REG_OK);
    ck_assert(!rw.readonly);
    ck_assert(ro.readonly);
    ck_assert_ptr_ne(rw.hdr, reg.hdr);
    ck_assert_ptr_ne(ro.hdr, reg.hdr);
    ck_assert_uint_eq(rw.size, reg.size);
    ck_assert_uint_eq(ro.size, reg.size);
    ck_assert_int_eq(ro.hdr->owner_pid, getpid());
    /* one segment, three mappings */
    atomic_store(&sc_registry_worker(&rw, 1)->connections, 42);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 1)->connections),
                      42);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&ro, 1)->connections),
                      42);
    atomic_store(&sc_registry_worker(&reg, 3)->clients, 7);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&rw, 3)->clients), 7);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&ro, 3)->clients), 7);
    /* the read-only view reads the event table too */
    bool ins;
    struct sc_event_state st;
    struct sc_event_entry *e = sc_registry_event_insert(&reg, 55, &ins);
    ck_assert_ptr_nonnull(e);
    sc_registry_event_write(e, SC_EVENT_LIVE, 9, 10, 1);
    ck_assert_ptr_nonnull(sc_registry_event_find(&ro, 55));
    sc_registry_event_read(sc_registry_event_find(&ro, 55), &st);
    ck_assert_int_eq(st.available, 9);
    sc_registry_detach(&ro);
    ck_assert_ptr_null(ro.hdr);
    sc_registry_detach(&ro); /* NULL-safe */
    sc_registry_detach(&rw);
    /* unlinked: the name is gone, the mapping stays */
    ck_assert_int_eq(sc_registry_unlink(name), 0);
    ck_assert_int_eq(sc_registry_attach(&rw, name, true, err, sizeof(err)),
                     SC_REG_ENOENT);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 1)->connections),
                      42);
    sc_registry_detach(&reg);
}
END_TEST

/*
 * A forked child attaches by name (as `seatcast stats` does) and through
 * the inherited mapping (as workers do); each side sees the other's
 * writes.  Exit codes: 0 ok, 2.. which check failed.
 */
START_TEST(attach_forked_child)
{
    struct sc_registry reg;
    char name[64], c;
    int to_child[2], to_parent[2], status;
    pid_t pid;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    ck_assert_int_eq(pipe(to_child), 0);
    ck_assert_int_eq(pipe(to_parent), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sc_registry rw, ro;
        char err[256];
        close(to_child[1]);
        close(to_parent[0]);
        if (read(to_child[0], &c, 1) != 1) {
            _exit(2);
        }
        if (sc_registry_attach(&rw, name, false, err, sizeof(err)) !=
                SC_REG_OK ||
            sc_registry_attach(&ro, name, true, err, sizeof(err)) !=
                SC_REG_OK) {
            _exit(3);
        }
        /* the parent's write, made after the fork */
        if (atomic_load(&sc_registry_worker(&rw, 0)->handshakes) != 1001 ||
            atomic_load(&sc_registry_worker(&ro, 0)->handshakes) != 1001 ||
            atomic_load(&sc_registry_worker(&reg, 0)->handshakes) != 1001) {
            _exit(4);
        }
        /* this child's writes, by name and through the inherited map */
        atomic_store(&sc_registry_worker(&rw, 2)->messages_sent, 2002);
        atomic_store(&sc_registry_worker(&reg, 2)->bytes_sent, 3003);
        if (atomic_load(&sc_registry_worker(&ro, 2)->messages_sent) != 2002) {
            _exit(5);
        }
        sc_registry_detach(&ro);
        sc_registry_detach(&rw);
        if (write(to_parent[1], "d", 1) != 1) {
            _exit(6);
        }
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    atomic_store(&sc_registry_worker(&reg, 0)->handshakes, 1001);
    ck_assert_int_eq(write(to_child[1], "g", 1), 1);
    ck_assert_int_eq(read(to_parent[0], &c, 1), 1);
    status = reap(pid);
    ck_assert_msg(exited_ok(status), "child status %#x", status);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 2)->messages_sent),
                      2002);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 2)->bytes_sent),
                      3003);
    close(to_child[1]);
    close(to_parent[0]);
    destroy(&reg, name);
}
END_TEST

/* A read-only mapping really is read-only. */
START_TEST(attach_readonly_refuses_writes)
{
    struct sc_registry reg;
    char name[64];
    int status;
    pid_t pid;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sc_registry ro;
        char err[256];
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        if (sc_registry_attach(&ro, name, true, err, sizeof(err)) !=
            SC_REG_OK) {
            _exit(2);
        }
        atomic_store(&sc_registry_worker(&ro, 0)->connections, 1);
        _exit(0);
    }
    status = reap(pid);
    ck_assert_msg(!exited_ok(status), "a write through a read-only mapping "
                                      "succeeded");
    ck_assert(!(WIFEXITED(status) && WEXITSTATUS(status) == 2));
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 0)->connections),
                      0);
    destroy(&reg, name);
}
END_TEST

START_TEST(attach_absent)
{
    struct sc_registry reg;
    char name[64], err[256] = "";

    shm_name(name, sizeof(name));
    ck_assert_int_eq(sc_registry_attach(&reg, name, true, err, sizeof(err)),
                     SC_REG_ENOENT);
    ck_assert_ptr_null(reg.hdr);
    ck_assert_ptr_nonnull(strstr(err, name));
    ck_assert_int_eq(sc_registry_attach(&reg, name, false, err, sizeof(err)),
                     SC_REG_ENOENT);
}
END_TEST

/* Writes len bytes of content into a fresh segment called name. */
static void
write_segment(const char *name, const void *data, size_t len)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* 0 garbage, 1 tiny, 2 wrong version, 3 bad layout, 4 truncated */
START_TEST(attach_foreign)
{
    struct sc_registry reg, good;
    struct sc_shm_header h;
    char name[64], gname[64], err[256] = "";
    static uint8_t garbage[8192];

    shm_name(name, sizeof(name));
    shm_name(gname, sizeof(gname));
    create_ok(&good, gname, &small);
    memcpy(&h, good.hdr, sizeof(h));
    switch (_i) {
    case 0:
        memset(garbage, 0x5a, sizeof(garbage));
        write_segment(name, garbage, sizeof(garbage));
        break;
    case 1:
        write_segment(name, "SCSTREG1", 8);
        break;
    case 2:
        h.version = SC_SHM_VERSION + 1;
        write_segment(name, &h, sizeof(h));
        break;
    case 3:
        h.off_users += 64;
        write_segment(name, &h, sizeof(h));
        break;
    case 4:
        /* a right header in a segment shorter than it says */
        write_segment(name, &h, sizeof(h));
        break;
    }
    ck_assert_int_eq(sc_registry_attach(&reg, name, true, err, sizeof(err)),
                     SC_REG_EVERSION);
    ck_assert_ptr_null(reg.hdr);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_int_eq(sc_registry_attach(&reg, name, false, err, sizeof(err)),
                     SC_REG_EVERSION);
    shm_unlink(name);
    destroy(&good, gname);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Owners: stale, live, reused pids                                   */

START_TEST(stale_owner_replaced)
{
    struct sc_registry a, b;
    char name[64], err[256];
    pid_t dead = dead_pid(), live;
    bool replaced;

    shm_name(name, sizeof(name));
    ck_assert_int_eq(
        create_as(&a, name, dead, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(!replaced);
    atomic_store(&sc_registry_worker(&a, 0)->connections, 99);
    ck_assert(!sc_registry_owner_alive(dead, geteuid()));
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(replaced);
    ck_assert_int_eq(live, 0);
    ck_assert_int_eq(b.hdr->owner_pid, getpid());
    /* a new segment, not the old one reused */
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&b, 0)->connections), 0);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&a, 0)->connections), 99);
    sc_registry_detach(&a);
    destroy(&b, name);
}
END_TEST

START_TEST(live_master_refused)
{
    struct sc_registry a, b, c;
    char name[64], err[256], pidtext[32];
    int hold;
    pid_t master = spawn_sleeper("sc-master", &hold), live = 0;
    bool replaced = true;

    shm_name(name, sizeof(name));
    ck_assert(sc_registry_owner_alive(master, geteuid()));
    ck_assert_int_eq(
        create_as(&a, name, master, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    atomic_store(&sc_registry_worker(&a, 1)->clients, 5);
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_ELIVE);
    ck_assert_int_eq(live, master);
    ck_assert(!replaced);
    ck_assert_ptr_null(b.hdr);
    snprintf(pidtext, sizeof(pidtext), "%d", (int)master);
    ck_assert_msg(strstr(err, pidtext) != NULL, "message without pid: %s", err);
    ck_assert_ptr_nonnull(strstr(err, name));
    /* the live segment was left alone */
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&a, 1)->clients), 5);
    ck_assert_int_eq(sc_registry_attach(&c, name, true, err, sizeof(err)),
                     SC_REG_OK);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&c, 1)->clients), 5);
    sc_registry_detach(&c);

    /* the master dies: now it is stale */
    ck_assert_int_eq(kill(master, SIGKILL), 0);
    reap(master);
    close(hold);
    ck_assert(!sc_registry_owner_alive(master, geteuid()));
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(replaced);
    ck_assert_int_eq(live, 0);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&b, 1)->clients), 0);
    sc_registry_detach(&a);
    destroy(&b, name);
}
END_TEST

/*
 * A live pid that is not a seatcast master (the pid was reused) does not
 * keep a segment: 0 a sleeper with the test's name, 1 one named like a
 * worker, 2 the test runner (getppid()).
 */
START_TEST(live_non_master_is_stale)
{
    struct sc_registry a, b;
    char name[64], err[256];
    int hold = -1;
    pid_t owner, live;
    bool replaced;

    if (_i == 0) {
        owner = spawn_sleeper(NULL, &hold);
    } else if (_i == 1) {
        owner = spawn_sleeper("sc-worker-0", &hold);
    } else {
        owner = getppid();
    }
    ck_assert_int_eq(kill(owner, 0), 0);
    ck_assert(!sc_registry_owner_alive(owner, geteuid()));
    shm_name(name, sizeof(name));
    ck_assert_int_eq(
        create_as(&a, name, owner, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(replaced);
    ck_assert_int_eq(live, 0);
    if (hold >= 0) {
        close(hold);
        ck_assert(exited_ok(reap(owner)));
    }
    sc_registry_detach(&a);
    destroy(&b, name);
}
END_TEST

START_TEST(owner_alive_cases)
{
    int hold;
    pid_t master;

    ck_assert(!sc_registry_owner_alive(0, geteuid()));
    ck_assert(!sc_registry_owner_alive(-1, geteuid()));
    ck_assert(!sc_registry_owner_alive(getpid(), geteuid()));
    ck_assert(!sc_registry_owner_alive(dead_pid(), geteuid()));
    master = spawn_sleeper("sc-master", &hold);
    ck_assert(sc_registry_owner_alive(master, geteuid()));
    close(hold);
    ck_assert(exited_ok(reap(master)));
    ck_assert(!sc_registry_owner_alive(master, geteuid()));
}
END_TEST

/*
 * A live master runs as the segment's owner: a process of another uid
 * that calls itself sc-master is not one (SPEC 6: "an owner pid that
 * points at a process it controls").  The second half needs root.
 */
START_TEST(owner_alive_checks_uid)
{
    int hold;
    pid_t master = spawn_sleeper("sc-master", &hold);

    ck_assert(sc_registry_owner_alive(master, geteuid()));
    ck_assert(!sc_registry_owner_alive(master, geteuid() + 1));
    close(hold);
    ck_assert(exited_ok(reap(master)));
    if (geteuid() != 0) {
        fprintf(stderr, "owner_alive_checks_uid: not root, other uid "
                "part skipped\n");
        return;
    }
    master = spawn_sleeper_as("sc-master", 65534, &hold);
    ck_assert(!sc_registry_owner_alive(master, 0));
    ck_assert(sc_registry_owner_alive(master, 65534));
    close(hold);
    ck_assert(exited_ok(reap(master)));
}
END_TEST

/* Creates name as an object of uid with content data; root only. */
static void
squat(const char *name, uid_t uid, const void *data, size_t len)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0644);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(fchown(fd, uid, uid), 0);
    close(fd);
}

/*
 * The name is another user's object: never removed, never trusted; the
 * registry moves to "<name>.u<uid>.<hex>", 0600, ours; a second create
 * sees the live master there; find() reaches it; once its master is dead
 * the next create removes it and moves again.  Root only (chown).
 */
START_TEST(create_beside_another_users_object)
{
    struct sc_registry a, b, c;
    char name[64], err[512], prefix[96], path[320];
    struct stat st;
    uint8_t back[6];
    int hold, fd;
    pid_t master, live;
    bool replaced;

    if (geteuid() != 0) {
        fprintf(stderr, "create_beside_another_users_object: not root, "
                "skipped\n");
        return;
    }
    shm_name(name, sizeof(name));
    squat(name, 65534, "squat!", 6);
    master = spawn_sleeper("sc-master", &hold);
    ck_assert_int_eq(
        create_as(&a, name, master, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(a.moved);
    ck_assert(!replaced);
    ck_assert_uint_eq(a.foreign_uid, 65534);
    snprintf(prefix, sizeof(prefix), "%s.u0.", name);
    ck_assert_msg(strncmp(a.name, prefix, strlen(prefix)) == 0, "%s", a.name);
    ck_assert_uint_eq(strlen(a.name), strlen(prefix) + 16);
    snprintf(path, sizeof(path), "/dev/shm%s", a.name);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_uid, 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    /* the squatter's object is untouched */
    fd = shm_open(name, O_RDONLY, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, back, sizeof(back)), 6);
    ck_assert_int_eq(memcmp(back, "squat!", 6), 0);
    close(fd);

    /* a second instance sees the live master where it moved */
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_ELIVE);
    ck_assert_int_eq(live, master);
    ck_assert_msg(strstr(err, a.name) != NULL, "%s", err);

    /* stats finds it through the name it was asked for */
    ck_assert_int_eq(sc_registry_find(&c, name, err, sizeof(err)), SC_REG_OK);
    ck_assert_str_eq(c.name, a.name);
    ck_assert_int_eq(c.hdr->owner_pid, master);
    sc_registry_detach(&c);

    /* its master dies: the next start removes it and moves again */
    close(hold);
    ck_assert(exited_ok(reap(master)));
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(b.moved);
    ck_assert_str_ne(b.name, a.name);
    ck_assert_int_eq(stat(path, &st), -1);
    snprintf(path, sizeof(path), "/dev/shm%s", name);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_uid, 65534);
    sc_registry_detach(&a);
    destroy(&b, b.name);
    sc_registry_unlink(name);
}
END_TEST

/*
 * find(): the name itself when its master lives; else the newest moved
 * one of ours with a live master; else the name's last state; never a
 * moved one tagged with another uid, nor one with a dead master.
 */
START_TEST(find_prefers_a_live_master)
{
    struct sc_registry own, m1, m2, bad, r;
    char name[64], n1[128], n2[128], nbad[128], err[512];
    int h1, h2;
    pid_t s1 = spawn_sleeper("sc-master", &h1);
    pid_t s2 = spawn_sleeper("sc-master", &h2), live;
    bool replaced;

    shm_name(name, sizeof(name));
    snprintf(n1, sizeof(n1), "%s.u%lu.00000000000000a1", name,
             (unsigned long)geteuid());
    snprintf(n2, sizeof(n2), "%s.u%lu.00000000000000b2", name,
             (unsigned long)geteuid());
    snprintf(nbad, sizeof(nbad), "%s.u%lu.00000000000000c3", name,
             (unsigned long)geteuid() + 1);
    ck_assert_int_eq(sc_registry_find(&r, name, err, sizeof(err)),
                     SC_REG_ENOENT);
    ck_assert_int_eq(
        create_as(&own, name, dead_pid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert_int_eq(
        create_as(&m1, n1, s1, &live, &replaced, err, sizeof(err)), SC_REG_OK);
    ck_assert_int_eq(
        create_as(&bad, nbad, s1, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert_int_eq(
        create_as(&m2, n2, s2, &live, &replaced, err, sizeof(err)), SC_REG_OK);
    m2.hdr->start_time_ms = m1.hdr->start_time_ms + 1000;
    bad.hdr->start_time_ms = m1.hdr->start_time_ms + 2000;

    ck_assert_int_eq(sc_registry_find(&r, name, err, sizeof(err)), SC_REG_OK);
    ck_assert_str_eq(r.name, n2); /* the newest live one */
    sc_registry_detach(&r);
    close(h2);
    ck_assert(exited_ok(reap(s2)));
    ck_assert_int_eq(sc_registry_find(&r, name, err, sizeof(err)), SC_REG_OK);
    ck_assert_str_eq(r.name, n1);
    sc_registry_detach(&r);
    close(h1);
    ck_assert(exited_ok(reap(s1)));
    ck_assert_int_eq(sc_registry_find(&r, name, err, sizeof(err)), SC_REG_OK);
    ck_assert_str_eq(r.name, name); /* last state of the name itself */
    sc_registry_detach(&r);

    /* a live master under the name itself wins over everything */
    s1 = spawn_sleeper("sc-master", &h1);
    own.hdr->owner_pid = s1;
    ck_assert_int_eq(sc_registry_find(&r, name, err, sizeof(err)), SC_REG_OK);
    ck_assert_str_eq(r.name, name);
    sc_registry_detach(&r);
    close(h1);
    ck_assert(exited_ok(reap(s1)));
    destroy(&m1, n1);
    destroy(&m2, n2);
    destroy(&bad, nbad);
    destroy(&own, name);
}
END_TEST

/*
 * Fakes: a registry-shaped object of another user whose owner is a
 * process of that user named sc-master does not stop a start (it moves);
 * nor does a segment of ours whose owner pid now belongs to such a
 * process (replaced).  Root only.
 */
START_TEST(fake_masters_do_not_hold_the_name)
{
    struct sc_registry a, b;
    char name[64], tagged[96], path[128], err[512];
    int hold;
    pid_t fake, live;
    bool replaced;

    if (geteuid() != 0) {
        fprintf(stderr, "fake_masters_do_not_hold_the_name: not root, "
                "skipped\n");
        return;
    }
    fake = spawn_sleeper_as("sc-master", 65534, &hold);
    shm_name(name, sizeof(name));
    snprintf(path, sizeof(path), "/dev/shm%s", name);

    /* ours, owner pid pointing at their sc-master: stale */
    ck_assert_int_eq(
        create_as(&a, name, fake, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    sc_registry_detach(&a);
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(replaced);
    ck_assert(!b.moved);
    ck_assert_int_eq(live, 0);
    sc_registry_detach(&b);

    /* theirs, a complete header naming their sc-master: not trusted */
    ck_assert_int_eq(
        create_as(&a, name, fake, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    sc_registry_detach(&a);
    ck_assert_int_eq(chown(path, 65534, 65534), 0);
    ck_assert_int_eq(
        create_as(&b, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(b.moved);
    ck_assert_int_eq(live, 0);
    destroy(&b, b.name);

    /* root with no live registry of its own reads the one of another
     * user whose master runs as that user; with two such, none */
    ck_assert_int_eq(sc_registry_find(&b, name, err, sizeof(err)), SC_REG_OK);
    ck_assert_str_eq(b.name, name);
    ck_assert_uint_eq(b.owner_uid, 65534);
    sc_registry_detach(&b);
    snprintf(tagged, sizeof(tagged), "%s.u65534.00000000000000e5", name);
    ck_assert_int_eq(
        create_as(&a, tagged, fake, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    sc_registry_detach(&a);
    snprintf(path, sizeof(path), "/dev/shm%s", tagged);
    ck_assert_int_eq(chown(path, 65534, 65534), 0);
    ck_assert_int_eq(sc_registry_find(&b, name, err, sizeof(err)),
                     SC_REG_ERROR);
    ck_assert_msg(strstr(err, "several") != NULL &&
                      strstr(err, tagged) != NULL,
                  "%s", err);
    sc_registry_unlink(tagged);
    sc_registry_unlink(name);

    /* theirs under a moved name tagged with our uid: find() ignores it */
    snprintf(tagged, sizeof(tagged), "%s.u0.00000000000000d4", name);
    snprintf(path, sizeof(path), "/dev/shm%s", tagged);
    ck_assert_int_eq(
        create_as(&a, tagged, fake, &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    sc_registry_detach(&a);
    ck_assert_int_eq(chown(path, 65534, 65534), 0);
    ck_assert_int_eq(sc_registry_find(&b, name, err, sizeof(err)),
                     SC_REG_ENOENT);
    sc_registry_unlink(tagged);
    close(hold);
    ck_assert(exited_ok(reap(fake)));
}
END_TEST

/* A segment of that name with no seatcast header has no owner: replaced. */
START_TEST(create_over_foreign_segment)
{
    struct sc_registry reg;
    char name[64], err[256];
    static uint8_t garbage[4096];
    pid_t live;
    bool replaced;

    shm_name(name, sizeof(name));
    memset(garbage, 0xee, sizeof(garbage));
    write_segment(name, garbage, sizeof(garbage));
    ck_assert_int_eq(
        create_as(&reg, name, getpid(), &live, &replaced, err, sizeof(err)),
        SC_REG_OK);
    ck_assert(replaced);
    ck_assert_uint_eq(reg.hdr->magic, SC_SHM_MAGIC);
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Event table                                                        */

/* Empties the event table of a registry this process created. */
static void
events_reset(struct sc_registry *reg)
{
    memset((uint8_t *)reg->hdr + reg->hdr->off_events, 0,
           (size_t)reg->hdr->event_slots * reg->hdr->event_entry_size);
    atomic_store(&reg->hdr->events_used, 0);
}

/*
 * Ids with the same home slot, found by inserting each alone into an
 * empty table (so the test does not depend on the hash function).
 */
static int
ids_with_home(struct sc_registry *reg, uint32_t home, int64_t *out, int n)
{
    int found = 0;
    bool ins;

    for (int64_t id = 1; id < 100000 && found < n; id++) {
        events_reset(reg);
        struct sc_event_entry *e = sc_registry_event_insert(reg, id, &ins);
        ck_assert_ptr_nonnull(e);
        if (entry_index(reg, e) == home) {
            out[found++] = id;
        }
    }
    events_reset(reg);
    return found;
}

/* Colliding ids probe forward, wrapping at the end of the table. */
START_TEST(event_collisions)
{
    struct sc_shm_params p = {.nworkers = 2, .max_events = 4};
    struct sc_registry reg;
    char name[64];
    int64_t ids[6];
    bool ins;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &p);
    ck_assert_uint_eq(reg.hdr->event_slots, 8);
    ck_assert_int_eq(ids_with_home(&reg, 7, ids, 6), 6);
    for (int i = 0; i < 4; i++) {
        struct sc_event_entry *e = sc_registry_event_insert(&reg, ids[i], &ins);
        ck_assert_ptr_nonnull(e);
        ck_assert(ins);
        /* home 7, then 0, 1, 2 */
        ck_assert_uint_eq(entry_index(&reg, e), (7u + (uint32_t)i) & 7);
    }
    for (int i = 0; i < 4; i++) {
        struct sc_event_entry *e = sc_registry_event_find(&reg, ids[i]);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(atomic_load(&e->id), ids[i]);
    }
    /* absent ids of the same home walk past the chain to a free slot */
    ck_assert_ptr_null(sc_registry_event_find(&reg, ids[4]));
    ck_assert_ptr_null(sc_registry_event_find(&reg, ids[5]));
    /* full at max_events although slots are free */
    ck_assert_ptr_null(sc_registry_event_insert(&reg, ids[4], &ins));
    ck_assert(!ins);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_used), 4);
    /* an existing id is still found by insert */
    ck_assert_ptr_eq(sc_registry_event_insert(&reg, ids[2], &ins),
                     sc_registry_event_find(&reg, ids[2]));
    ck_assert(!ins);
    destroy(&reg, name);
}
END_TEST

START_TEST(event_many)
{
    enum { N = 1000 };
    struct sc_shm_params p = {.nworkers = 3, .max_events = N};
    static int64_t ids[2 * N];
    static struct sc_event_entry *entries[N];
    struct sc_registry reg;
    char name[64];
    uint64_t seed = 7;
    bool ins;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &p);
    /* distinct positive ids, small and large */
    for (int i = 0; i < 2 * N; i++) {
        ids[i] = i < 64 ? i + 1
                        : (int64_t)(splitmix(&seed) >> 2) | ((int64_t)i << 40);
        for (int j = 0; j < i; j++) {
            ck_assert_int_ne(ids[i], ids[j]);
        }
    }
    for (int i = 0; i < N; i++) {
        entries[i] = sc_registry_event_insert(&reg, ids[i], &ins);
        ck_assert_ptr_nonnull(entries[i]);
        ck_assert(ins);
        ck_assert_uint_eq(atomic_load(&reg.hdr->events_used), (uint64_t)i + 1);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_eq(sc_registry_event_find(&reg, ids[i]), entries[i]);
        ck_assert_ptr_eq(sc_registry_event_insert(&reg, ids[i], &ins),
                         entries[i]);
        ck_assert(!ins);
    }
    for (int i = N; i < 2 * N; i++) {
        ck_assert_ptr_null(sc_registry_event_find(&reg, ids[i]));
        ck_assert_ptr_null(sc_registry_event_insert(&reg, ids[i], &ins));
        ck_assert(!ins);
    }
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_used), N);
    destroy(&reg, name);
}
END_TEST

START_TEST(event_ids_refused)
{
    static const int64_t bad[] = {0, -1, -123, INT64_MIN};
    struct sc_registry reg;
    char name[64];
    bool ins = true;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_ptr_null(sc_registry_event_insert(&reg, bad[i], &ins));
        ck_assert(!ins);
        ck_assert_ptr_null(sc_registry_event_find(&reg, bad[i]));
    }
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_used), 0);
    ck_assert_ptr_nonnull(sc_registry_event_insert(&reg, INT64_MAX, &ins));
    ck_assert(ins);
    ck_assert_ptr_nonnull(sc_registry_event_find(&reg, INT64_MAX));
    destroy(&reg, name);
}
END_TEST

START_TEST(event_seqlock_round_trip)
{
    struct sc_registry reg;
    struct sc_event_state st;
    struct sc_event_entry *e;
    char name[64];
    bool ins;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    e = sc_registry_event_insert(&reg, 77, &ins);
    ck_assert_ptr_nonnull(e);
    sc_registry_event_read(e, &st);
    ck_assert_int_eq(st.id, 77);
    ck_assert_uint_eq(st.flags, 0);
    ck_assert_int_eq(st.available, 0);
    ck_assert_uint_eq(atomic_load(&e->seq), 0);
    sc_registry_event_write(e, SC_EVENT_LIVE, 45, 100, 3);
    ck_assert_uint_eq(atomic_load(&e->seq), 2);
    sc_registry_event_read(e, &st);
    ck_assert_int_eq(st.id, 77);
    ck_assert_uint_eq(st.flags, SC_EVENT_LIVE);
    ck_assert_int_eq(st.available, 45);
    ck_assert_int_eq(st.capacity, 100);
    ck_assert_int_eq(st.version, 3);
    sc_registry_event_write(e, SC_EVENT_DELETED, -1, INT32_MAX, INT64_MAX);
    ck_assert_uint_eq(atomic_load(&e->seq), 4);
    sc_registry_event_read(e, &st);
    ck_assert_uint_eq(st.flags, SC_EVENT_DELETED);
    ck_assert_int_eq(st.available, -1);
    ck_assert_int_eq(st.capacity, INT32_MAX);
    ck_assert_int_eq(st.version, INT64_MAX);
    /* a deleted event is still found: probing never breaks */
    ck_assert_ptr_eq(sc_registry_event_find(&reg, 77), e);
    destroy(&reg, name);
}
END_TEST

/*
 * A forked writer (the listener) against a reader: no torn state.  The
 * writer runs until the reader has seen enough distinct values, so the
 * two really overlap whatever the scheduler does.
 */
START_TEST(event_seqlock_forked_writer)
{
    struct sc_registry reg;
    struct sc_event_entry *e;
    _Atomic int32_t *stop;
    void *page;
    char name[64];
    bool ins;
    pid_t pid;
    int status;
    long changes = 0;
    int64_t last = -1;
    uint64_t deadline;
    struct sc_event_state st;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    e = sc_registry_event_insert(&reg, 12, &ins);
    ck_assert_ptr_nonnull(e);
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
    ck_assert_ptr_ne(page, MAP_FAILED);
    stop = page;
    atomic_store(stop, 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int32_t i = 0;
        while (!atomic_load(stop) && i < INT32_MAX) {
            i++;
            sc_registry_event_write(e, SC_EVENT_LIVE, i, i, i);
        }
        atomic_store(stop, i);
        _exit(0);
    }
    /* up to 20000 changes seen, or 30 s on a machine too busy to give
     * the two processes time side by side: then at least 1000 */
    deadline = sc_mono_ms() + 30000;
    while (changes < 20000 && sc_mono_ms() < deadline) {
        sc_registry_event_read(e, &st);
        ck_assert_int_eq(st.id, 12);
        ck_assert_msg(st.available == st.capacity && st.version == st.available,
                      "torn read: %d %d %lld", st.available, st.capacity,
                      (long long)st.version);
        if (st.version != 0) {
            ck_assert_uint_eq(st.flags, SC_EVENT_LIVE);
        }
        ck_assert_int_ge(st.version, last);
        changes += st.version != last;
        last = st.version;
    }
    atomic_store(stop, 1);
    status = reap(pid);
    ck_assert(exited_ok(status));
    ck_assert_int_ge(changes, 1000);
    /* the last write is what stays */
    sc_registry_event_read(e, &st);
    ck_assert_int_eq(st.version, atomic_load(stop));
    ck_assert_uint_eq(atomic_load(&e->seq), 2 * (uint64_t)st.version);
    munmap(page, 4096);
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Subscriber accounting                                              */

static uint32_t
subs_of(struct sc_event_entry *e, unsigned w)
{
    return atomic_load(&e->subs[w]);
}

START_TEST(subs_accounting)
{
    struct sc_registry reg;
    struct sc_event_entry *a, *b;
    char name[64];
    bool ins;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    a = sc_registry_event_insert(&reg, 1, &ins);
    b = sc_registry_event_insert(&reg, 2, &ins);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 0);

    sc_registry_event_subs_add(&reg, a, 0, +1);
    ck_assert_uint_eq(subs_of(a, 0), 1);
    ck_assert_uint_eq(atomic_load(&a->subs_total), 1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 1);
    sc_registry_event_subs_add(&reg, a, 1, +1);
    sc_registry_event_subs_add(&reg, a, 0, +1);
    sc_registry_event_subs_add(&reg, a, 3, +1);
    ck_assert_uint_eq(subs_of(a, 0), 2);
    ck_assert_uint_eq(subs_of(a, 1), 1);
    ck_assert_uint_eq(subs_of(a, 2), 0);
    ck_assert_uint_eq(subs_of(a, 3), 1);
    ck_assert_uint_eq(atomic_load(&a->subs_total), 4);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 1);

    sc_registry_event_subs_add(&reg, b, 2, +1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 2);

    sc_registry_event_subs_add(&reg, a, 0, -1);
    sc_registry_event_subs_add(&reg, a, 0, -1);
    sc_registry_event_subs_add(&reg, a, 3, -1);
    ck_assert_uint_eq(atomic_load(&a->subs_total), 1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 2);
    sc_registry_event_subs_add(&reg, a, 1, -1);
    ck_assert_uint_eq(atomic_load(&a->subs_total), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 1);
    /* 0 -> 1 again counts again */
    sc_registry_event_subs_add(&reg, a, 2, +1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 2);
    sc_registry_event_subs_add(&reg, a, 2, -1);
    sc_registry_event_subs_add(&reg, b, 2, -1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 0);
    for (unsigned w = 0; w < 4; w++) {
        ck_assert_uint_eq(subs_of(a, w), 0);
        ck_assert_uint_eq(subs_of(b, w), 0);
    }
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Ring                                                               */

static void
make_msg(struct sc_ring_msg *m, uint64_t i)
{
    memset(m, 0, sizeof(*m));
    m->event_id = 100 + (int64_t)i;
    m->version = (int64_t)i * 3;
    m->commit_ms = 1731321000000 + (int64_t)i;
    m->kind = (uint32_t)(i % 5) + 1;
    m->available = (int32_t)i - 5;
    m->capacity = 100;
    m->frame_len = (uint16_t)(i * 44 % (SC_SHM_FRAME_MAX + 1));
    m->update_off = (uint16_t)i;
    for (unsigned j = 0; j < m->frame_len; j++) {
        m->frame[j] = (uint8_t)(i * 31 + j);
    }
}

static void
assert_msg(const struct sc_ring_msg *got, uint64_t seq, uint64_t i)
{
    struct sc_ring_msg want;

    make_msg(&want, i);
    ck_assert_uint_eq(got->seq, seq);
    ck_assert_int_eq(got->event_id, want.event_id);
    ck_assert_int_eq(got->version, want.version);
    ck_assert_int_eq(got->commit_ms, want.commit_ms);
    ck_assert_uint_eq(got->kind, want.kind);
    ck_assert_int_eq(got->available, want.available);
    ck_assert_int_eq(got->capacity, want.capacity);
    ck_assert_uint_eq(got->frame_len, want.frame_len);
    ck_assert_uint_eq(got->update_off, want.update_off);
    ck_assert_mem_eq(got->frame, want.frame, want.frame_len);
}

START_TEST(ring_in_order)
{
    struct sc_registry reg;
    struct sc_ring_msg m;
    char name[64];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    ck_assert_uint_eq(reg.hdr->ring_slots, 16);
    ck_assert_int_eq(sc_registry_ring_read(&reg, 0, &m), 1);
    for (uint64_t i = 0; i < 11; i++) {
        make_msg(&m, i);
        m.seq = 999; /* assigned by publish */
        ck_assert_uint_eq(sc_registry_ring_publish(&reg, &m), i);
        ck_assert_uint_eq(atomic_load(&reg.hdr->ring_head), i + 1);
    }
    for (uint64_t i = 0; i < 11; i++) {
        memset(&m, 0xcc, sizeof(m));
        ck_assert_int_eq(sc_registry_ring_read(&reg, i, &m), 0);
        assert_msg(&m, i, i);
    }
    ck_assert_int_eq(sc_registry_ring_read(&reg, 11, &m), 1);
    ck_assert_int_eq(sc_registry_ring_read(&reg, 12, &m), 1);
    ck_assert_int_eq(sc_registry_ring_read(&reg, UINT64_MAX / 4, &m), 1);
    destroy(&reg, name);
}
END_TEST

START_TEST(ring_overrun)
{
    struct sc_registry reg;
    struct sc_ring_msg m;
    char name[64];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    for (uint64_t i = 0; i < 40; i++) {
        make_msg(&m, i);
        ck_assert_uint_eq(sc_registry_ring_publish(&reg, &m), i);
    }
    /* the last 16 are readable, older ones were overwritten */
    for (uint64_t i = 0; i < 40; i++) {
        int rc = sc_registry_ring_read(&reg, i, &m);
        if (i < 40 - 16) {
            ck_assert_msg(rc == -1, "seq %llu: %d", (unsigned long long)i, rc);
        } else {
            ck_assert_int_eq(rc, 0);
            assert_msg(&m, i, i);
        }
    }
    ck_assert_int_eq(sc_registry_ring_read(&reg, 40, &m), 1);
    destroy(&reg, name);
}
END_TEST

START_TEST(ring_frame_bytes)
{
    struct sc_registry reg;
    struct sc_ring_msg m, got;
    char name[64];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    memset(&m, 0, sizeof(m));
    m.frame_len = SC_SHM_FRAME_MAX;
    for (unsigned j = 0; j < SC_SHM_FRAME_MAX; j++) {
        m.frame[j] = (uint8_t)(255 - j);
    }
    ck_assert_uint_eq(sc_registry_ring_publish(&reg, &m), 0);
    ck_assert_int_eq(sc_registry_ring_read(&reg, 0, &got), 0);
    ck_assert_uint_eq(got.frame_len, SC_SHM_FRAME_MAX);
    ck_assert_mem_eq(got.frame, m.frame, SC_SHM_FRAME_MAX);
    /* a length beyond the slot is clamped, never copied past it */
    m.frame_len = SC_SHM_FRAME_MAX + 100;
    ck_assert_uint_eq(sc_registry_ring_publish(&reg, &m), 1);
    ck_assert_int_eq(sc_registry_ring_read(&reg, 1, &got), 0);
    ck_assert_uint_eq(got.frame_len, SC_SHM_FRAME_MAX);
    /* an empty frame */
    m.frame_len = 0;
    ck_assert_uint_eq(sc_registry_ring_publish(&reg, &m), 2);
    ck_assert_int_eq(sc_registry_ring_read(&reg, 2, &got), 0);
    ck_assert_uint_eq(got.frame_len, 0);
    destroy(&reg, name);
}
END_TEST

/*
 * A forked listener publishes fast into a 16-slot ring; the reader chases
 * it, resynchronising on overrun as a worker does.  Whatever read returns
 * 0 for must be exactly what was published under that sequence.  The
 * writer waits (on a pipe) until the first message was read, so that a
 * busy machine cannot leave the reader overrun every time.
 */
START_TEST(ring_forked_writer)
{
    enum { N = 200000 };
    struct sc_registry reg;
    char name[64];
    uint64_t seq = 0, ok = 0, overruns = 0;
    int status = 0, first[2];
    bool done = false;
    pid_t pid;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    ck_assert_int_eq(pipe(first), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sc_ring_msg m;
        char c;
        close(first[1]);
        for (uint64_t i = 0; i < N; i++) {
            make_msg(&m, i);
            if (sc_registry_ring_publish(&reg, &m) != i) {
                _exit(2);
            }
            if (i == 0 && read(first[0], &c, 1) != 1) {
                _exit(3);
            }
        }
        _exit(0);
    }
    close(first[0]);
    for (;;) {
        struct sc_ring_msg m;
        int rc = sc_registry_ring_read(&reg, seq, &m);
        if (rc == 0) {
            assert_msg(&m, seq, seq);
            if (ok++ == 0) {
                ck_assert_int_eq(write(first[1], "r", 1), 1);
            }
            seq++;
        } else if (rc < 0) {
            overruns++;
            seq = atomic_load(&reg.hdr->ring_head);
        } else if (done) {
            break;
        } else if (waitpid(pid, &status, WNOHANG) == pid) {
            done = true;
        }
    }
    close(first[1]);
    ck_assert(exited_ok(status));
    ck_assert_uint_eq(seq, N);
    ck_assert_uint_gt(ok, 0);
    (void)overruns;
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Listener repair                                                    */

START_TEST(repair_listener_evens_seqlocks)
{
    struct sc_registry reg;
    struct sc_event_entry *torn, *fine;
    struct sc_listener_slot *l;
    struct sc_event_state st;
    char name[64];
    bool ins;
    pid_t reader;
    int status;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    torn = sc_registry_event_insert(&reg, 5, &ins);
    fine = sc_registry_event_insert(&reg, 6, &ins);
    sc_registry_event_write(torn, SC_EVENT_LIVE, 10, 20, 1);
    sc_registry_event_write(fine, SC_EVENT_LIVE, 30, 40, 2);
    sc_registry_event_write(fine, SC_EVENT_LIVE, 31, 40, 3);
    /* the listener died between the two seq stores of a write */
    atomic_store(&torn->seq, 3);
    l = sc_registry_listener(&reg);
    atomic_store(&l->pid, 4242);
    atomic_store(&l->state, SC_STATE_RUNNING);
    atomic_store(&l->db_state, SC_DB_CONNECTED);
    atomic_store(&l->notifications, 99);
    atomic_store(&l->reconnects, 3);

    /* a reader of the torn entry waits ... */
    reader = fork();
    ck_assert_int_ge(reader, 0);
    if (reader == 0) {
        struct sc_event_state s;
        sc_registry_event_read(torn, &s);
        _exit(s.id == 5 && s.available == 10 ? 0 : 2);
    }
    sleep_ms(100);
    ck_assert_int_eq(waitpid(reader, &status, WNOHANG), 0);

    sc_registry_repair_listener(&reg);
    /* ... until the master repairs the entry */
    status = reap(reader);
    ck_assert_msg(exited_ok(status), "reader status %#x", status);
    ck_assert_uint_eq(atomic_load(&torn->seq), 4);
    ck_assert_uint_eq(atomic_load(&fine->seq), 4);
    sc_registry_event_read(torn, &st);
    ck_assert_int_eq(st.available, 10);
    sc_registry_event_read(fine, &st);
    ck_assert_int_eq(st.available, 31);
    ck_assert_int_eq(atomic_load(&l->pid), 0);
    ck_assert_uint_eq(atomic_load(&l->state), SC_STATE_EMPTY);
    ck_assert_uint_eq(atomic_load(&l->db_state), SC_DB_DISCONNECTED);
    /* counters kept */
    ck_assert_uint_eq(atomic_load(&l->notifications), 99);
    ck_assert_uint_eq(atomic_load(&l->reconnects), 3);
    /* the next listener writes on top as usual */
    sc_registry_event_write(torn, SC_EVENT_LIVE, 11, 20, 2);
    ck_assert_uint_eq(atomic_load(&torn->seq), 6);
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* User table                                                         */

START_TEST(user_limits)
{
    struct sc_registry reg;
    struct sc_user_entry *u;
    char name[64];
    const uint64_t k = UINT64_C(0x1234567890abcdef);

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    ck_assert_int_eq(sc_registry_user_add(&reg, k, 0, 2), 1);
    ck_assert_int_eq(sc_registry_user_add(&reg, k, 1, 2), 1);
    ck_assert_int_eq(sc_registry_user_add(&reg, k, 2, 2), 0);
    ck_assert_int_eq(sc_registry_user_add(&reg, k, 0, 2), 0);
    u = user_entry(&reg, k);
    ck_assert_ptr_nonnull(u);
    ck_assert_uint_eq(atomic_load(&u->total), 2);
    ck_assert_uint_eq(atomic_load(&u->per[0]), 1);
    ck_assert_uint_eq(atomic_load(&u->per[1]), 1);
    ck_assert_uint_eq(atomic_load(&u->per[2]), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->users_used), 1);
    /* a worker that has none cannot delete one */
    sc_registry_user_del(&reg, k, 2);
    ck_assert_uint_eq(atomic_load(&u->total), 2);
    sc_registry_user_del(&reg, k, 0);
    ck_assert_uint_eq(atomic_load(&u->total), 1);
    ck_assert_uint_eq(atomic_load(&u->per[0]), 0);
    sc_registry_user_del(&reg, k, 0);
    ck_assert_uint_eq(atomic_load(&u->total), 1);
    ck_assert_int_eq(sc_registry_user_add(&reg, k, 2, 2), 1);
    ck_assert_uint_eq(atomic_load(&u->per[2]), 1);
    ck_assert_uint_eq(atomic_load(&u->total), 2);
    /* limit 0: no limit */
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(sc_registry_user_add(&reg, k, 3, 0), 1);
    }
    ck_assert_uint_eq(atomic_load(&u->total), 52);
    ck_assert_uint_eq(atomic_load(&u->per[3]), 50);
    /* a limit only refuses new ones */
    ck_assert_int_eq(sc_registry_user_add(&reg, k, 3, 10), 0);
    /* deleting an unknown user claims nothing */
    sc_registry_user_del(&reg, 777, 0);
    ck_assert_ptr_null(user_entry(&reg, 777));
    ck_assert_uint_eq(atomic_load(&reg.hdr->users_used), 1);
    /* users are independent */
    ck_assert_int_eq(sc_registry_user_add(&reg, k + 1, 0, 1), 1);
    ck_assert_int_eq(sc_registry_user_add(&reg, k + 1, 1, 1), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->users_used), 2);
    destroy(&reg, name);
}
END_TEST

START_TEST(user_table_full)
{
    struct sc_shm_params p = {.nworkers = 2, .max_events = 4, .user_slots = 8};
    struct sc_registry reg;
    char name[64];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &p);
    ck_assert_uint_eq(reg.hdr->user_slots, 8);
    for (uint64_t k = 1; k <= 8; k++) {
        ck_assert_int_eq(sc_registry_user_add(&reg, k * 1000003, 0, 0), 1);
    }
    ck_assert_uint_eq(atomic_load(&reg.hdr->users_used), 8);
    ck_assert_int_eq(sc_registry_user_add(&reg, 9 * 1000003, 0, 0), -1);
    ck_assert_int_eq(sc_registry_user_add(&reg, 9 * 1000003, 1, 5), -1);
    ck_assert_ptr_null(user_entry(&reg, 9 * 1000003));
    /* the users already in still count */
    ck_assert_int_eq(sc_registry_user_add(&reg, 3 * 1000003, 1, 0), 1);
    ck_assert_uint_eq(atomic_load(&user_entry(&reg, 3 * 1000003)->total), 2);
    destroy(&reg, name);
}
END_TEST

/*
 * Users come and go: a slot whose user has no connection left must be
 * usable again, or the table fills with departed users and every new
 * user is refused ("user table full") for the rest of the master's life.
 */
START_TEST(user_slots_reused)
{
    struct sc_shm_params p = {.nworkers = 2, .max_events = 4, .user_slots = 8};
    struct sc_registry reg;
    char name[64];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &p);
    for (uint64_t round = 0; round < 4; round++) {
        for (uint64_t k = 1; k <= 8; k++) {
            uint64_t key = round * 100 + k;
            int rc = sc_registry_user_add(&reg, key, 0, 1);
            ck_assert_msg(
                rc == 1,
                "round %llu user %llu: %d (%llu slots claimed, "
                "no user connected)",
                (unsigned long long)round, (unsigned long long)key, rc,
                (unsigned long long)atomic_load(&reg.hdr->users_used));
            sc_registry_user_del(&reg, key, 0);
        }
    }
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Revoked token ids                                                  */

START_TEST(revoked_set)
{
    struct sc_registry reg, ro;
    char name[64], err[256];
    uint64_t n = 0, cap;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    ck_assert_uint_eq(reg.hdr->revoked_slots, SC_SHM_REVOKED_SLOTS);
    ck_assert(!sc_registry_is_revoked(&reg, 12345));
    ck_assert_int_eq(sc_registry_revoke(&reg, 12345), 1);
    ck_assert_int_eq(sc_registry_revoke(&reg, 12345), 0);
    ck_assert(sc_registry_is_revoked(&reg, 12345));
    ck_assert(!sc_registry_is_revoked(&reg, 12346));
    ck_assert_uint_eq(atomic_load(&reg.hdr->revoked_used), 1);
    /* workers and `seatcast stats` see it */
    ck_assert_int_eq(sc_registry_attach(&ro, name, true, err, sizeof(err)),
                     SC_REG_OK);
    ck_assert(sc_registry_is_revoked(&ro, 12345));
    /* fill: refused before the table is full, lookups still end */
    cap = SC_SHM_REVOKED_SLOTS - 1 - ((SC_SHM_REVOKED_SLOTS - 1) >> 3);
    for (uint64_t h = 1;; h++) {
        int rc = sc_registry_revoke(&reg, h * UINT64_C(0x9e3779b97f4a7c15));
        if (rc < 0) {
            break;
        }
        ck_assert_int_eq(rc, 1);
        n++;
        ck_assert_uint_le(n, SC_SHM_REVOKED_SLOTS);
    }
    ck_assert_uint_eq(atomic_load(&reg.hdr->revoked_used), cap);
    ck_assert_uint_eq(n + 1, cap);
    for (uint64_t h = 1; h <= n; h++) {
        ck_assert(
            sc_registry_is_revoked(&ro, h * UINT64_C(0x9e3779b97f4a7c15)));
    }
    ck_assert(!sc_registry_is_revoked(&ro, 777));
    ck_assert_int_eq(sc_registry_revoke(&reg, 12345), 0);
    ck_assert_int_eq(sc_registry_revoke(&reg, 777), -1);
    sc_registry_detach(&ro);
    destroy(&reg, name);
}
END_TEST

START_TEST(hash_str_fnv1a)
{
    ck_assert_uint_eq(sc_registry_hash_str(""), UINT64_C(0xcbf29ce484222325));
    ck_assert_uint_eq(sc_registry_hash_str("a"), UINT64_C(0xaf63dc4c8601ec8c));
    ck_assert_uint_eq(sc_registry_hash_str("foobar"),
                      UINT64_C(0x85944171f73967e8));
    ck_assert_uint_ne(sc_registry_hash_str("user-1"),
                      sc_registry_hash_str("user-2"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Totals                                                             */

START_TEST(totals_sum_slots_and_retired)
{
    struct sc_registry reg;
    struct sc_totals t;
    char name[64];

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    sc_registry_totals(&reg, &t);
    ck_assert_uint_eq(t.connections + t.handshakes + t.workers_running, 0);
    for (unsigned w = 0; w < 4; w++) {
        struct sc_worker_slot *s = sc_registry_worker(&reg, w);
        atomic_store(&s->state, w == 1   ? SC_STATE_STOPPING
                                : w == 3 ? SC_STATE_EMPTY
                                         : SC_STATE_RUNNING);
        atomic_store(&s->connections, 1 + w);
        atomic_store(&s->clients, 10 + w);
        atomic_store(&s->subscriptions, 100 + w);
        atomic_store(&s->connections_total, 1000 + w);
        atomic_store(&s->handshakes, 2000 + w);
        atomic_store(&s->handshake_failures, 3000 + w);
        atomic_store(&s->auth_failures, 4000 + w);
        atomic_store(&s->messages_sent, 5000 + w);
        atomic_store(&s->bytes_sent, 6000 + w);
        atomic_store(&s->messages_received, 7000 + w);
        atomic_store(&s->slow_consumers, 8000 + w);
        atomic_store(&s->rate_limited, 9000 + w);
        atomic_store(&s->resyncs, 10000 + w);
    }
    atomic_store(&reg.hdr->retired_connections_total, 1);
    atomic_store(&reg.hdr->retired_handshakes, 2);
    atomic_store(&reg.hdr->retired_handshake_failures, 3);
    atomic_store(&reg.hdr->retired_auth_failures, 4);
    atomic_store(&reg.hdr->retired_messages_sent, 5);
    atomic_store(&reg.hdr->retired_bytes_sent, 6);
    atomic_store(&reg.hdr->retired_messages_received, 7);
    sc_registry_totals(&reg, &t);
    /* 0+1+2+3 = 6 */
    ck_assert_uint_eq(t.workers_running, 2);
    ck_assert_uint_eq(t.connections, 4 + 6);
    ck_assert_uint_eq(t.clients, 40 + 6);
    ck_assert_uint_eq(t.subscriptions, 400 + 6);
    ck_assert_uint_eq(t.connections_total, 4000 + 6 + 1);
    ck_assert_uint_eq(t.handshakes, 8000 + 6 + 2);
    ck_assert_uint_eq(t.handshake_failures, 12000 + 6 + 3);
    ck_assert_uint_eq(t.auth_failures, 16000 + 6 + 4);
    ck_assert_uint_eq(t.messages_sent, 20000 + 6 + 5);
    ck_assert_uint_eq(t.bytes_sent, 24000 + 6 + 6);
    ck_assert_uint_eq(t.messages_received, 28000 + 6 + 7);
    ck_assert_uint_eq(t.slow_consumers, 32000 + 6);
    ck_assert_uint_eq(t.rate_limited, 36000 + 6);
    ck_assert_uint_eq(t.resyncs, 40000 + 6);
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Worker repair                                                      */

enum { RW_WORKERS = 8, RW_EVENTS = 32, RW_USERS = 20, RW_OTHER = 7 };

static const struct sc_shm_params repair_params = {
    .nworkers = RW_WORKERS, .max_events = 64, .user_slots = 64};

static int64_t
rw_event_id(int i)
{
    return 5000 + i;
}

static uint64_t
rw_user_key(int i)
{
    return UINT64_C(0xabc0000000) + (uint64_t)i;
}

/*
 * Worker w until killed: bumps its counters and gauges, subscribes and
 * unsubscribes random events, adds and removes random users.
 */
static void
rw_writer(struct sc_registry *reg, unsigned w, int ready_fd)
{
    struct sc_worker_slot *s = sc_registry_worker(reg, w);
    uint64_t seed = 1000 + w * 7919 + (uint64_t)getpid();

    atomic_store(&s->pid, (int32_t)getpid());
    atomic_store(&s->state, SC_STATE_RUNNING);
    for (uint64_t n = 0;; n++) {
        uint64_t r = splitmix(&seed);
        struct sc_event_entry *e =
            sc_registry_event_find(reg, rw_event_id((int)(r % RW_EVENTS)));
        uint64_t key = rw_user_key((int)((r >> 16) % RW_USERS));
        struct sc_user_entry *u = user_entry(reg, key);

        atomic_fetch_add(&s->handshakes, 1);
        atomic_fetch_add(&s->connections_total, 1);
        atomic_fetch_add(&s->messages_sent, 3);
        atomic_fetch_add(&s->bytes_sent, 120);
        atomic_fetch_add(&s->messages_received, 1);
        atomic_fetch_add(&s->auth_failures, (r >> 40) % 3 == 0);
        atomic_fetch_add(&s->handshake_failures, (r >> 42) % 5 == 0);
        atomic_fetch_add(&s->slow_consumers, 1);
        atomic_fetch_add(&s->rate_limited, 1);
        atomic_fetch_add(&s->resyncs, 1);
        atomic_fetch_add(&s->connections, 1);
        atomic_fetch_add(&s->clients, 1);
        atomic_fetch_add(&s->subscriptions, 1);
        atomic_store(&s->heartbeat_ms, sc_mono_ms());
        if (e == NULL) {
            _exit(2);
        }
        if (atomic_load(&e->subs[w]) > 0 && (r >> 8) % 3 == 0) {
            sc_registry_event_subs_add(reg, e, w, -1);
        } else {
            sc_registry_event_subs_add(reg, e, w, +1);
        }
        if (u != NULL && atomic_load(&u->per[w]) > 0 && (r >> 24) % 3 == 0) {
            sc_registry_user_del(reg, key, w);
        } else if (sc_registry_user_add(reg, key, w, 0) != 1) {
            _exit(3);
        }
        if (n == 2000 && write(ready_fd, "r", 1) != 1) {
            _exit(4);
        }
    }
}

/* subs_total - sum(subs[]): nonzero only after a torn update */
static uint32_t
subs_gap(const struct sc_registry *reg, struct sc_event_entry *e)
{
    uint32_t sum = 0;

    for (unsigned w = 0; w < reg->hdr->nworkers; w++) {
        sum += atomic_load(&e->subs[w]);
    }
    return atomic_load(&e->subs_total) - sum;
}

static uint32_t
user_gap(const struct sc_registry *reg, struct sc_user_entry *u)
{
    uint32_t sum = 0;

    for (unsigned w = 0; w < reg->hdr->nworkers; w++) {
        sum += atomic_load(&u->per[w]);
    }
    return atomic_load(&u->total) - sum;
}

static uint64_t
watched_count(const struct sc_registry *reg)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < reg->hdr->event_slots; i++) {
        struct sc_event_entry *e = sc_registry_event_at(reg, i);
        n += atomic_load(&e->id) != 0 && atomic_load(&e->subs_total) > 0;
    }
    return n;
}

#define RETIRED(reg, f) atomic_load(&(reg)->hdr->retired_##f)

/*
 * K forked workers killed with SIGKILL at random moments, then repaired
 * by the parent (the master) while worker 7 (the parent again) stays
 * live.  Three rounds, so repaired slots are reused.
 */
START_TEST(repair_forked_writers)
{
    enum { K = 5, ROUNDS = 3 };
    struct sc_registry reg;
    struct sc_worker_slot *other;
    char name[64];
    bool ins;
    uint64_t seed = 99;
    int torn_seen = 0;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &repair_params);
    for (int i = 0; i < RW_EVENTS; i++) {
        ck_assert_ptr_nonnull(
            sc_registry_event_insert(&reg, rw_event_id(i), &ins));
    }
    /* the live worker's share, which repair must leave alone */
    other = sc_registry_worker(&reg, RW_OTHER);
    atomic_store(&other->state, SC_STATE_RUNNING);
    atomic_store(&other->pid, (int32_t)getpid());
    atomic_store(&other->connections, 5);
    atomic_store(&other->clients, 4);
    atomic_store(&other->subscriptions, 6);
    atomic_store(&other->handshakes, 77);
    for (int i = 0; i < 5; i++) {
        struct sc_event_entry *e = sc_registry_event_find(&reg, rw_event_id(i));
        sc_registry_event_subs_add(&reg, e, RW_OTHER, +1);
        if (i == 0) {
            sc_registry_event_subs_add(&reg, e, RW_OTHER, +1);
        }
        ck_assert_int_eq(
            sc_registry_user_add(&reg, rw_user_key(i), RW_OTHER, 0), 1);
    }

    for (int round = 0; round < ROUNDS; round++) {
        pid_t pids[K];
        int ready[2];
        struct sc_totals before, after;
        uint64_t fold[7] = {0}, retired0[7];
        uint32_t gaps[64], ugaps[64];
        bool torn = false;

        ck_assert_int_eq(pipe(ready), 0);
        for (unsigned w = 0; w < K; w++) {
            pids[w] = fork();
            ck_assert_int_ge(pids[w], 0);
            if (pids[w] == 0) {
                close(ready[0]);
                rw_writer(&reg, w, ready[1]);
            }
        }
        close(ready[1]);
        for (int w = 0; w < K; w++) {
            char c;
            ck_assert_int_eq(read(ready[0], &c, 1), 1);
        }
        close(ready[0]);
        /* kill -9 each at its own random moment */
        for (unsigned w = 0; w < K; w++) {
            struct timespec ts = {.tv_nsec = (long)(splitmix(&seed) % 3000000)};
            nanosleep(&ts, NULL);
            ck_assert_int_eq(kill(pids[w], SIGKILL), 0);
        }
        for (unsigned w = 0; w < K; w++) {
            int status = reap(pids[w]);
            ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                          "writer %u status %#x", w, status);
        }

        /* what the dead left behind */
        sc_registry_totals(&reg, &before);
        for (unsigned w = 0; w < K; w++) {
            struct sc_worker_slot *s = sc_registry_worker(&reg, w);
            fold[0] += atomic_load(&s->handshakes);
            fold[1] += atomic_load(&s->handshake_failures);
            fold[2] += atomic_load(&s->auth_failures);
            fold[3] += atomic_load(&s->messages_sent);
            fold[4] += atomic_load(&s->bytes_sent);
            fold[5] += atomic_load(&s->messages_received);
            fold[6] += atomic_load(&s->connections_total);
            ck_assert_uint_gt(atomic_load(&s->handshakes), 0);
        }
        retired0[0] = RETIRED(&reg, handshakes);
        retired0[1] = RETIRED(&reg, handshake_failures);
        retired0[2] = RETIRED(&reg, auth_failures);
        retired0[3] = RETIRED(&reg, messages_sent);
        retired0[4] = RETIRED(&reg, bytes_sent);
        retired0[5] = RETIRED(&reg, messages_received);
        retired0[6] = RETIRED(&reg, connections_total);
        for (int i = 0; i < RW_EVENTS; i++) {
            gaps[i] =
                subs_gap(&reg, sc_registry_event_find(&reg, rw_event_id(i)));
            torn |= gaps[i] != 0;
        }
        for (int i = 0; i < RW_USERS; i++) {
            struct sc_user_entry *u = user_entry(&reg, rw_user_key(i));
            ugaps[i] = u != NULL ? user_gap(&reg, u) : 0;
            torn |= ugaps[i] != 0;
        }
        /* a writer killed between subs_total and events_watched */
        torn |= atomic_load(&reg.hdr->events_watched) != watched_count(&reg);
        torn_seen += torn;

        for (unsigned w = 0; w < K; w++) {
            sc_registry_repair_worker(&reg, w);
        }

        /* the dead own nothing; the live worker's share is intact */
        for (int i = 0; i < RW_EVENTS; i++) {
            struct sc_event_entry *e =
                sc_registry_event_find(&reg, rw_event_id(i));
            uint32_t mine = i == 0 ? 2 : i < 5 ? 1 : 0;
            for (unsigned w = 0; w < K; w++) {
                ck_assert_uint_eq(atomic_load(&e->subs[w]), 0);
            }
            ck_assert_uint_eq(atomic_load(&e->subs[RW_OTHER]), mine);
            /* repair recomputes from the per-worker counts, so a gap
             * left by a torn update is healed too */
            ck_assert_uint_eq(atomic_load(&e->subs_total), mine);
        }
        for (int i = 0; i < RW_USERS; i++) {
            struct sc_user_entry *u = user_entry(&reg, rw_user_key(i));
            if (u == NULL) {
                continue;
            }
            for (unsigned w = 0; w < K; w++) {
                ck_assert_uint_eq(atomic_load(&u->per[w]), 0);
            }
            ck_assert_uint_eq(atomic_load(&u->per[RW_OTHER]), i < 5 ? 1 : 0);
            ck_assert_uint_eq(atomic_load(&u->total), i < 5 ? 1u : 0u);
        }
        /* the repair recomputes totals: torn updates are healed too */
        ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 5);
        ck_assert_uint_eq(watched_count(&reg), 5);
        for (unsigned w = 0; w < K; w++) {
            struct sc_worker_slot *s = sc_registry_worker(&reg, w);
            ck_assert_uint_eq(atomic_load(&s->connections), 0);
            ck_assert_uint_eq(atomic_load(&s->clients), 0);
            ck_assert_uint_eq(atomic_load(&s->subscriptions), 0);
            ck_assert_uint_eq(atomic_load(&s->heartbeat_ms), 0);
            ck_assert_uint_eq(atomic_load(&s->state), SC_STATE_EMPTY);
            ck_assert_int_eq(atomic_load(&s->pid), 0);
            ck_assert_uint_eq(atomic_load(&s->handshakes), 0);
        }
        /* counters folded into the retired totals, exactly */
        ck_assert_uint_eq(RETIRED(&reg, handshakes), retired0[0] + fold[0]);
        ck_assert_uint_eq(RETIRED(&reg, handshake_failures),
                          retired0[1] + fold[1]);
        ck_assert_uint_eq(RETIRED(&reg, auth_failures), retired0[2] + fold[2]);
        ck_assert_uint_eq(RETIRED(&reg, messages_sent), retired0[3] + fold[3]);
        ck_assert_uint_eq(RETIRED(&reg, bytes_sent), retired0[4] + fold[4]);
        ck_assert_uint_eq(RETIRED(&reg, messages_received),
                          retired0[5] + fold[5]);
        ck_assert_uint_eq(RETIRED(&reg, connections_total),
                          retired0[6] + fold[6]);
        /* totals: counters unchanged by the repair, gauges the live ones */
        sc_registry_totals(&reg, &after);
        ck_assert_uint_eq(after.handshakes, before.handshakes);
        ck_assert_uint_eq(after.handshake_failures, before.handshake_failures);
        ck_assert_uint_eq(after.auth_failures, before.auth_failures);
        ck_assert_uint_eq(after.messages_sent, before.messages_sent);
        ck_assert_uint_eq(after.bytes_sent, before.bytes_sent);
        ck_assert_uint_eq(after.messages_received, before.messages_received);
        ck_assert_uint_eq(after.connections_total, before.connections_total);
        ck_assert_uint_ge(after.slow_consumers, before.slow_consumers);
        ck_assert_uint_ge(after.rate_limited, before.rate_limited);
        ck_assert_uint_ge(after.resyncs, before.resyncs);
        ck_assert_uint_eq(after.connections, 5);
        ck_assert_uint_eq(after.clients, 4);
        ck_assert_uint_eq(after.subscriptions, 6);
        ck_assert_uint_eq(after.workers_running, 1);
        ck_assert_uint_ge(after.handshakes, 77);
        if (torn) {
            /* start the next round from a consistent table */
            for (int i = 0; i < RW_EVENTS; i++) {
                struct sc_event_entry *e =
                    sc_registry_event_find(&reg, rw_event_id(i));
                atomic_store(&e->subs_total, i == 0 ? 2 : i < 5 ? 1 : 0);
            }
            for (int i = 0; i < RW_USERS; i++) {
                struct sc_user_entry *u = user_entry(&reg, rw_user_key(i));
                if (u != NULL) {
                    atomic_store(&u->total, i < 5 ? 1 : 0);
                }
            }
            atomic_store(&reg.hdr->events_watched, 5);
        }
    }
    if (torn_seen) {
        fprintf(stderr,
                "repair_forked_writers: %d of %d rounds killed a writer "
                "mid-update (subs/user totals off; see repair_torn_updates)\n",
                torn_seen, ROUNDS);
    }
    destroy(&reg, name);
}
END_TEST

/* A total left wrong with no update in flight is set right by the audit. */
START_TEST(audit_heals_persistent_differences)
{
    struct sc_registry reg;
    struct sc_event_entry *e;
    char name[64];
    bool ins;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    e = sc_registry_event_insert(&reg, 77, &ins);
    sc_registry_event_subs_add(&reg, e, 0, +1);
    ck_assert_uint_eq(sc_registry_audit(&reg), 0);
    atomic_store(&e->subs_total, 5);
    atomic_store(&reg.hdr->events_watched, 3);
    ck_assert_uint_eq(sc_registry_audit(&reg), 2);
    ck_assert_uint_eq(atomic_load(&e->subs_total), 1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 1);
    ck_assert_uint_eq(sc_registry_audit(&reg), 0);
    destroy(&reg, name);
}
END_TEST

/*
 * The states a worker killed between two steps of one update leaves, made
 * on purpose.  After repair the registry must be what the live workers
 * hold: here nobody, so every total 0 and no event watched.
 *   0  subs_add(+1): subs[w] incremented, subs_total not
 *   1  subs_add(+1): subs[w] and subs_total, events_watched not
 *   2  subs_add(-1): subs[w] decremented, subs_total not
 *   3  subs_add(-1): both, events_watched not
 *   4  user_add: total incremented, per[w] not
 *   5  as 0, with another (live) worker subscribed to the event
 */
START_TEST(repair_torn_updates)
{
    const unsigned w = 1, live = 2;
    struct sc_registry reg;
    struct sc_event_entry *e;
    struct sc_user_entry *u;
    char name[64];
    bool ins;
    uint32_t want_total = 0;
    uint64_t want_watched = 0;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    e = sc_registry_event_insert(&reg, 31, &ins);
    switch (_i) {
    case 0:
        atomic_fetch_add(&e->subs[w], 1);
        break;
    case 1:
        atomic_fetch_add(&e->subs[w], 1);
        atomic_fetch_add(&e->subs_total, 1);
        break;
    case 2:
        sc_registry_event_subs_add(&reg, e, w, +1);
        atomic_fetch_sub(&e->subs[w], 1);
        break;
    case 3:
        sc_registry_event_subs_add(&reg, e, w, +1);
        atomic_fetch_sub(&e->subs[w], 1);
        atomic_fetch_sub(&e->subs_total, 1);
        break;
    case 4:
        ck_assert_int_eq(sc_registry_user_add(&reg, 4242, live, 1), 1);
        sc_registry_user_del(&reg, 4242, live);
        u = user_entry(&reg, 4242);
        atomic_fetch_add(&u->total, 1);
        break;
    case 5:
        sc_registry_event_subs_add(&reg, e, live, +1);
        atomic_fetch_add(&e->subs[w], 1);
        want_total = 1;
        want_watched = 1;
        break;
    }
    sc_registry_repair_worker(&reg, w);

    ck_assert_uint_eq(atomic_load(&e->subs[w]), 0);
    if (_i == 4) {
        u = user_entry(&reg, 4242);
        ck_assert_msg(atomic_load(&u->total) == 0,
                      "user total %u after repair, no connection left: "
                      "with a limit of 1 the user can never connect again",
                      atomic_load(&u->total));
        ck_assert_int_eq(sc_registry_user_add(&reg, 4242, live, 1), 1);
    } else {
        ck_assert_msg(atomic_load(&e->subs_total) == want_total,
                      "case %d: subs_total %u after repair, want %u", _i,
                      atomic_load(&e->subs_total), want_total);
        ck_assert_msg(atomic_load(&reg.hdr->events_watched) == want_watched,
                      "case %d: events_watched %llu after repair, want %llu",
                      _i,
                      (unsigned long long)atomic_load(&reg.hdr->events_watched),
                      (unsigned long long)want_watched);
    }
    destroy(&reg, name);
}
END_TEST

/* Repair of a slot that was never used, or twice: harmless. */
START_TEST(repair_idle_worker)
{
    struct sc_registry reg;
    struct sc_event_entry *e;
    struct sc_totals t;
    char name[64];
    bool ins;

    shm_name(name, sizeof(name));
    create_ok(&reg, name, &small);
    e = sc_registry_event_insert(&reg, 8, &ins);
    sc_registry_event_subs_add(&reg, e, 0, +1);
    ck_assert_int_eq(sc_registry_user_add(&reg, 5, 0, 0), 1);
    sc_registry_repair_worker(&reg, 3);
    sc_registry_repair_worker(&reg, 3);
    ck_assert_uint_eq(atomic_load(&e->subs_total), 1);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 1);
    ck_assert_uint_eq(atomic_load(&user_entry(&reg, 5)->total), 1);
    sc_registry_repair_worker(&reg, 0);
    sc_registry_repair_worker(&reg, 0);
    ck_assert_uint_eq(atomic_load(&e->subs_total), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 0);
    ck_assert_uint_eq(atomic_load(&user_entry(&reg, 5)->total), 0);
    sc_registry_totals(&reg, &t);
    ck_assert_uint_eq(t.handshakes, 0);
    destroy(&reg, name);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *
registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tl = tcase_create("layout");
    TCase *ta = tcase_create("attach");
    TCase *te = tcase_create("events");
    TCase *tr = tcase_create("ring");
    TCase *tu = tcase_create("users");
    TCase *tp = tcase_create("repair");

    tcase_add_test(tl, layout_sections);
    tcase_add_test(tl, layout_refused);
    tcase_add_test(tl, create_refuses_bad_params);
    suite_add_tcase(s, tl);

    tcase_add_test(ta, create_fills_header);
    tcase_add_test(ta, attach_same_process);
    tcase_add_test(ta, attach_forked_child);
    tcase_add_test(ta, attach_readonly_refuses_writes);
    tcase_add_test(ta, attach_absent);
    tcase_add_loop_test(ta, attach_foreign, 0, 5);
    tcase_add_test(ta, stale_owner_replaced);
    tcase_add_test(ta, live_master_refused);
    tcase_add_loop_test(ta, live_non_master_is_stale, 0, 3);
    tcase_add_test(ta, owner_alive_cases);
    tcase_add_test(ta, owner_alive_checks_uid);
    tcase_add_test(ta, create_beside_another_users_object);
    tcase_add_test(ta, fake_masters_do_not_hold_the_name);
    tcase_add_test(ta, find_prefers_a_live_master);
    tcase_add_test(ta, create_over_foreign_segment);
    suite_add_tcase(s, ta);

    tcase_add_test(te, event_collisions);
    tcase_add_test(te, event_many);
    tcase_add_test(te, event_ids_refused);
    tcase_add_test(te, event_seqlock_round_trip);
    tcase_add_test(te, event_seqlock_forked_writer);
    tcase_add_test(te, subs_accounting);
    tcase_set_timeout(te, 30);
    suite_add_tcase(s, te);

    tcase_add_test(tr, ring_in_order);
    tcase_add_test(tr, ring_overrun);
    tcase_add_test(tr, ring_frame_bytes);
    tcase_add_test(tr, ring_forked_writer);
    tcase_set_timeout(tr, 30);
    suite_add_tcase(s, tr);

    tcase_add_test(tu, user_limits);
    tcase_add_test(tu, user_table_full);
    tcase_add_test(tu, user_slots_reused);
    tcase_add_test(tu, revoked_set);
    tcase_add_test(tu, hash_str_fnv1a);
    tcase_add_test(tu, totals_sum_slots_and_retired);
    suite_add_tcase(s, tu);

    tcase_add_test(tp, repair_listener_evens_seqlocks);
    tcase_add_test(tp, repair_forked_writers);
    tcase_add_test(tp, audit_heals_persistent_differences);
    tcase_add_loop_test(tp, repair_torn_updates, 0, 6);
    tcase_add_test(tp, repair_idle_worker);
    tcase_set_timeout(tp, 30);
    suite_add_tcase(s, tp);
    return s;
}

/* Removes the segments a failed test could not unlink. */
static void
remove_leftovers(void)
{
    char prefix[64], path[300];
    DIR *d = opendir("/dev/shm");
    struct dirent *de;

    if (d == NULL) {
        return;
    }
    snprintf(prefix, sizeof(prefix), "sc-test-%d-", (int)runner_pid);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(path, sizeof(path), "/%s", de->d_name);
            shm_unlink(path);
        }
    }
    closedir(d);
}

int
main(void)
{
    SRunner *sr;
    int failed;

    runner_pid = getpid();
    sr = srunner_create(registry_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_leftovers();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
