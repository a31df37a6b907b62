/*
 * registry.h - create, attach, read and repair the shared-memory registry
 *
 * The layout and its concurrency protocol are described in sc_shm.h.  The
 * code is in shm/: segment.c maps the segment and offers typed accessors,
 * tables.c, ring.c and repair.c the rest; it never logs (errors go to a
 * caller buffer) and never forks.  The process clocks are clock.h's.
 *
 * Callers: the master creates and repairs; workers and the listener use the
 * mapping inherited across fork(); `seatcast stats` attaches read-only.
 */
#ifndef SC_REGISTRY_H
#define SC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sc_shm.h"

#define SC_REG_OK 0
#define SC_REG_ERROR (-1)
#define SC_REG_ELIVE (-2)    /* segment owned by a live master */
#define SC_REG_ENOENT (-3)   /* no such segment */
#define SC_REG_EVERSION (-4) /* not a seatcast segment of this version */

extern const uint32_t sc_lat_bounds_ms[SC_LAT_BUCKETS];

/* Longest shm name, "/" included (NAME_MAX for the file in /dev/shm). */
#define SC_SHM_NAME_MAX 255

struct sc_registry {
    struct sc_shm_header *hdr; /* the mapping, owned; NULL if none */
    size_t size;               /* bytes mapped */
    bool readonly;
    uid_t owner_uid;           /* who owns the object (fstat) */
    char name[SC_SHM_NAME_MAX + 1]; /* the object's real name */
    /* create: the requested name was held by an object of another user
     * (foreign_uid), so the registry moved to `name` (see below) */
    bool moved;
    uid_t foreign_uid;
};

struct sc_shm_params {
    uint32_t nworkers;   /* 1..SC_SHM_MAX_WORKERS */
    uint32_t max_events; /* events the table must hold */
    uint32_t ring_slots; /* 0 = SC_SHM_RING_SLOTS; rounded to a power of 2 */
    uint32_t user_slots; /* 0 = derived; rounded to a power of 2 */
};

/* Seat state of one event, copied out under the seqlock. */
struct sc_event_state {
    int64_t id;
    uint32_t flags;
    int32_t available;
    int32_t capacity;
    int64_t version;
};

/* One change, as published on the ring (process-local copy). */
struct sc_ring_msg {
    uint64_t seq;
    int64_t event_id;
    int64_t version;
    int64_t commit_ms;
    int64_t published_ms; /* CLOCK_MONOTONIC ms; set by ring_publish */
    uint32_t kind;
    int32_t available;
    int32_t capacity;
    uint16_t frame_len;
    uint16_t update_off;
    uint8_t frame[SC_SHM_FRAME_MAX];
};

/* Sums over live worker slots and retired totals: the gauges, then one
 * field per counter of sc_counters.h. */
struct sc_totals {
    uint64_t connections, clients, subscriptions;
#define SC_X(field, metric, help, stats) uint64_t field;
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    unsigned workers_running;
};

/*
 * Fills hdr's layout fields (sizes, offsets, total_size) for params.  The
 * one function used both to size the segment and to place its sections.
 * Returns 0, or -1 if a size overflows or a parameter is out of range.
 */
int sc_shm_layout(const struct sc_shm_params *params,
                  struct sc_shm_header *hdr);

/*
 * Creates segment `name` (e.g. "/seatcast-3000") for owner pid `owner`,
 * mode 0600, with O_EXCL.  An existing object is judged by its owner
 * (fstat):
 * - ours (our euid): if its header names a live master of our uid
 *   (sc_registry_owner_alive), it is never taken over: SC_REG_ELIVE,
 *   with the owner's pid in *live_pid.  Otherwise it is stale: unlinked
 *   and replaced; *replaced is set.
 * - another user's: never removed, never trusted.  The registry moves to
 *   "<name>.u<euid>.<16 hex random>" (reg->moved, reg->foreign_uid).
 * First of all, the moved names of ours already there get the same check
 * (a live master's: SC_REG_ELIVE; stale ones are unlinked).
 * reg->name is the name actually created.  Returns SC_REG_OK or an
 * SC_REG_* error with a message in err.  Master only.
 */
int sc_registry_create(struct sc_registry *reg, const char *name,
                       const struct sc_shm_params *params, pid_t owner,
                       const char *listen, pid_t *live_pid, bool *replaced,
                       char *err, size_t errlen);

/*
 * Maps an existing segment, read-only or read-write, and checks magic,
 * version, sizes and `ready`.  SC_REG_ENOENT if absent, SC_REG_EVERSION
 * if not a seatcast registry.  Sets reg->name and reg->owner_uid; whose
 * it is and whether its master lives is the caller's to judge.
 */
int sc_registry_attach(struct sc_registry *reg, const char *name,
                       bool readonly, char *err, size_t errlen);

/*
 * Finds, read-only, the registry a server started with --shm-name `name`
 * uses, for a caller of euid E (`seatcast stats`):
 * 1. `name` itself, if owned by E and its master (of uid E) is alive;
 * 2. else the newest "<name>.u<E>.*" owned by E, complete (`ready`) and
 *    with a live master of uid E (where a server moved when `name` was
 *    held by another user);
 * 3. else `name` owned by E whatever its master (its last state);
 * 4. else, for root only, the one registry of another uid U, `name` or
 *    "<name>.u<U>.*", owned by U with a live master of uid U; several
 *    such: SC_REG_ERROR naming them.
 * Otherwise the error of attaching `name` (SC_REG_ENOENT if absent).
 */
int sc_registry_find(struct sc_registry *reg, const char *name, char *err,
                     size_t errlen);

/* Unmaps (NULL-safe on an empty registry). */
void sc_registry_detach(struct sc_registry *reg);

/* Removes the name; the mapping stays valid for those who hold it. */
int sc_registry_unlink(const char *name);

/*
 * True if pid is a live seatcast master running as uid: it exists, its
 * name (comm) is sc-master and its effective uid (/proc/PID/status) is
 * uid.  Anything that cannot be confirmed is not a live master.
 */
bool sc_registry_owner_alive(pid_t pid, uid_t uid);

struct sc_worker_slot *sc_registry_worker(const struct sc_registry *reg,
                                          unsigned w);
struct sc_listener_slot *sc_registry_listener(const struct sc_registry *reg);
struct sc_event_entry *sc_registry_event_at(const struct sc_registry *reg,
                                            uint32_t index);

/* Finds an event by id; NULL if it was never inserted.  Any process. */
struct sc_event_entry *sc_registry_event_find(const struct sc_registry *reg,
                                              int64_t id);

/*
 * Finds or inserts event id.  NULL when the table holds max_events
 * entries already.  *inserted tells which.  Listener only.
 */
struct sc_event_entry *sc_registry_event_insert(struct sc_registry *reg,
                                                int64_t id, bool *inserted);

/* Writes the seat fields under the seqlock.  Listener only. */
void sc_registry_event_write(struct sc_event_entry *e, uint32_t flags,
                             int32_t available, int32_t capacity,
                             int64_t version);

/* Copies the seat fields; retries while a write is in progress. */
void sc_registry_event_read(const struct sc_event_entry *e,
                            struct sc_event_state *out);

/*
 * Adds delta (+1/-1) to worker w's subscriber count of e and keeps
 * subs_total and the header's events_watched right.  Worker w only.
 */
void sc_registry_event_subs_add(struct sc_registry *reg,
                                struct sc_event_entry *e, unsigned w,
                                int delta);

/* Publishes msg (seq is assigned) and returns its sequence.  Listener. */
uint64_t sc_registry_ring_publish(struct sc_registry *reg,
                                  const struct sc_ring_msg *msg);

/*
 * Copies sequence seq into out.  Returns 0, 1 if not published yet, or
 * -1 if the slot was overwritten (the reader fell behind: resync).
 */
int sc_registry_ring_read(const struct sc_registry *reg, uint64_t seq,
                          struct sc_ring_msg *out);

/*
 * Clears everything worker w owned: its subscriber counts in the event
 * table and user table, its gauges (counters are folded into the
 * header's retired totals), its pid and state.  Master only, while
 * worker w is dead.
 */
void sc_registry_repair_worker(struct sc_registry *reg, unsigned w);

/*
 * Finds totals that disagree with the per-worker counts they sum
 * (subs_total, a user's total, events_watched) and, if the difference
 * persists (not an update in flight), sets them right.  Returns how many
 * were fixed.  Master, periodically: heals what a writer killed between
 * two steps of an update left behind.
 */
unsigned sc_registry_audit(struct sc_registry *reg);

/* Clears the listener slot's pid and state (counters kept).  Master. */
void sc_registry_repair_listener(struct sc_registry *reg);

/* Sums the worker slots and the retired totals. */
void sc_registry_totals(const struct sc_registry *reg, struct sc_totals *t);

/*
 * Per-user connection accounting.  Claims a slot for the 64-bit key and
 * increments the user's total if it stays <= limit (0 = no limit).
 * Returns 1 if counted, 0 if the limit is reached, -1 if the table is
 * full.  Worker w only; sc_registry_user_del undoes one count.
 */
int sc_registry_user_add(struct sc_registry *reg, uint64_t key, unsigned w,
                         uint32_t limit);
void sc_registry_user_del(struct sc_registry *reg, uint64_t key, unsigned w);

/*
 * Revoked token ids, as 64-bit hashes of the jti.  sc_registry_revoke
 * (listener only) returns 1 if added, 0 if known, -1 if the set is full;
 * sc_registry_is_revoked may be called by any process.
 */
int sc_registry_revoke(struct sc_registry *reg, uint64_t hash);
bool sc_registry_is_revoked(const struct sc_registry *reg, uint64_t hash);

/* 64-bit FNV-1a of a NUL-terminated string, never 0 (jti, user ids). */
uint64_t sc_registry_hash_str(const char *s);

#endif /* SC_REGISTRY_H */
