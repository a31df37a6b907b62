/*
 * sc_shm.h - layout of the seatcast shared-memory registry
 *
 * The registry is one POSIX shared-memory segment (shm_open + mmap) created
 * by the master before it forks, and mapped by every child and, read-only,
 * by `seatcast stats`.  This header is the only description of its layout:
 * fixed-width types, offsets instead of pointers, one version number that
 * changes whenever anything below changes.
 *
 *   +--------------------+ 0
 *   | sc_shm_header      |  magic, version, sizes, section offsets, owner
 *   +--------------------+ off_workers
 *   | sc_worker_slot[N]  |  one cache-line-aligned slot per worker
 *   +--------------------+ off_listener
 *   | sc_listener_slot   |
 *   +--------------------+ off_events
 *   | event table        |  open addressing on event id, event_slots entries
 *   +--------------------+ off_ring
 *   | sc_ring_slot[R]    |  broadcast ring, R a power of two
 *   +--------------------+ off_users
 *   | user table         |  per-user connection counts, user_slots entries
 *   +--------------------+ off_revoked
 *   | revoked jti set    |  64-bit hashes of revoked token ids
 *   +--------------------+ total_size
 *
 * Ownership.  The segment is created 0600 with O_EXCL, so only its user
 * reads or writes it.  An existing object is judged by fstat(): one of
 * another user is never removed nor trusted, whatever its header says
 * (the master then creates "<name>.u<uid>.<random hex>", which `stats`
 * finds: sc_registry_find); a live master is a process named sc-master
 * whose effective uid is the segment owner's.
 *
 * The code: segment.c (layout, create, attach), tables.c (events, users,
 * revoked ids), ring.c (the broadcast ring), repair.c (repair, audit,
 * totals); registry.h is the interface, sc_counters.h the worker
 * counters.
 *
 * Concurrency protocol.  Readers never lock; every shared field has the
 * writers named here, and a field written by more than one process is
 * changed only by atomic read-modify-write (add, CAS), never by a plain
 * store that could undo another's update.  "Dead w" means: worker w has
 * been reaped and its successor not yet forked.
 *
 * - Header, layout and identity (magic .. listen): the master, while
 *   creating the segment, before any child exists; then `ready` is
 *   stored with release, and sc_registry_attach() loads it with acquire
 *   and refuses a segment without it.  Nobody writes them afterwards.
 * - shutting_down: the master (graceful stop).  Read by `stats`.
 * - ring_head: the listener, a release store after the slot is published
 *   (see Ring).  Read by the workers (acquire) and `stats`.
 * - events_used, revoked_used: the listener, as it claims an entry.
 * - users_used: the worker that claims a user key (fetch_add).
 * - events_watched: the workers, by fetch_add/fetch_sub on the 0 <-> 1
 *   transitions of an event's subs_total; the master, by CAS, when it
 *   repairs a dead worker and when its periodic audit finds the gauge
 *   off from a count of the table (twice, 200 us apart, so not an update
 *   in flight).  Workers may run during both: the CAS fails if one moved
 *   the value meanwhile, and the next audit looks again.
 * - retired_<counter> and retired_lat_buckets: the master only, by
 *   fetch_add, while repairing dead w (folding w's counters in).
 * - worker_restarts, listener_restarts, accepted_total, accept_drops:
 *   the master only.
 * - Worker slot w: worker w only, relaxed atomics (counters by fetch_add
 *   on its own slot, gauges by store), except for dead w: the master
 *   folds its counters into the retired totals (exchange with 0) and
 *   zeroes its gauges, pid and state before forking the successor.
 *   Read by the master (load balancing: connections, fds_received),
 *   every worker (/healthz, /metrics, get_stats, --max-connections) and
 *   `stats`.
 * - Listener slot: the listener only, relaxed atomics; the master clears
 *   pid, state, db_state and slot_active when the listener is dead.  Read by the
 *   workers (/healthz, /metrics) and `stats`.
 * - Event entry: `id` is stored once (release) by the listener, its only
 *   inserter, after clearing flags (insertions only;
 *   a deleted event stays an entry with SC_EVENT_DELETED so probing never
 *   breaks).  flags, available, capacity and version are guarded by the
 *   entry's seqlock `seq`, odd while the listener writes them; readers
 *   retry until they see the same even `seq` before and after.  When the
 *   listener dies inside a write, the master makes an odd `seq` even
 *   before forking its successor.  subs[w]: worker w, and the master for
 *   dead w.  subs_total (the sum of subs[]): fetch_add/fetch_sub by the
 *   same writers, so that its 0 <-> 1 transitions are seen exactly once
 *   (events_watched); the master recomputes it by CAS on repair and in
 *   the audit, as for events_watched.
 * - Ring: the listener only.  Slot i of sequence n (i = n mod R) is a
 *   seqlock: seq = 2n+1 while writing, 2n+2 when published; then
 *   ring_head = n+1 with a release store.  A reader that finds another
 *   sequence in the slot, before or after copying it, has been overrun
 *   and resynchronises from the event table.
 * - User entry: `key` is claimed by any worker by CAS from 0, or from an
 *   idle key (total and every per[] at 0).  `total` changes only by CAS
 *   within the limit (workers), and by the master's CAS on repair and in
 *   the audit; per[w]: worker w, and the master for dead w.
 * - Revoked set: 64-bit jti hashes (0 = free) stored (release) by the
 *   listener, its only writer, never removed while the server runs; read
 *   (acquire) by every worker at the handshake.
 */
#ifndef SC_SHM_H
#define SC_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_counters.h"

#define SC_SHM_MAGIC 0x3147455254534353ULL /* "SCSTREG1" little-endian */
/* 10: sweep fronts; 9: settled; 8: ring publish time, merge counters */
#define SC_SHM_VERSION 10u
#define SC_SHM_MAX_WORKERS 64
#define SC_SHM_CACHELINE 64
#define SC_SHM_RING_SLOTS 4096u
#define SC_SHM_FRAME_MAX 440u /* encoded frames carried by one ring slot */
#define SC_SHM_JTI_MAX 128
#define SC_SHM_REVOKED_SLOTS 65536u
/* Latency histogram buckets (commit to socket); bounds in registry.h. */
#define SC_LAT_BUCKETS 12

/* worker and listener states */
enum sc_proc_state {
    SC_STATE_EMPTY = 0,    /* never started, or repaired after death */
    SC_STATE_STARTING = 1, /* forked, initialising */
    SC_STATE_RUNNING = 2,  /* serving */
    SC_STATE_STOPPING = 3  /* graceful shutdown in progress */
};

/* listener database connection states */
enum sc_db_state {
    SC_DB_DISCONNECTED = 0,
    SC_DB_CONNECTING = 1,
    SC_DB_CONNECTED = 2
};

/* ring entry kinds (what the change was) */
enum sc_change_kind {
    SC_CHANGE_SEAT_UPDATE = 1,
    SC_CHANGE_BOOKING_CREATED = 2,
    SC_CHANGE_BOOKING_CANCELLED = 3,
    SC_CHANGE_EVENT_DELETED = 4,
    SC_CHANGE_TOKEN_REVOKED = 5
};

/* event entry flags */
#define SC_EVENT_LIVE 1u
#define SC_EVENT_DELETED 2u

struct sc_shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t total_size;

    /* layout, computed by sc_shm_layout() */
    uint32_t nworkers;
    uint32_t max_events;
    uint32_t event_slots; /* power of two >= 2 * max_events */
    uint32_t event_entry_size;
    uint32_t ring_slots; /* power of two */
    uint32_t ring_slot_size;
    uint32_t user_slots; /* power of two */
    uint32_t user_entry_size;
    uint32_t revoked_slots; /* power of two */
    uint32_t pad1;
    uint64_t off_workers;
    uint64_t off_listener;
    uint64_t off_events;
    uint64_t off_ring;
    uint64_t off_users;
    uint64_t off_revoked;

    /* identity, written once by the master at creation */
    int32_t owner_pid;
    uint32_t worker_slot_size;
    int64_t start_time_ms;
    char name[64];   /* shm name, cut to fit: display only */
    char listen[160]; /* first listener, for display */

    /* published state */
    _Atomic uint32_t ready;         /* master: 1 once filled (release);
                                       checked by attach (acquire) */
    _Atomic uint32_t shutting_down; /* master */
    _Atomic uint32_t settled;       /* listener: 1 once the event table is
                                       loaded from the database, or a
                                       first attempt failed; the master
                                       accepts clients after that */
    _Atomic uint64_t ring_head;     /* listener: next sequence to write */
    _Atomic uint64_t events_used;   /* listener: entries claimed */
    _Atomic uint64_t events_watched; /* workers (+/-1), master (CAS: repair,
                                        audit): events with subs_total>0 */
    _Atomic uint64_t users_used;    /* workers: user keys claimed */
    _Atomic uint64_t revoked_used;  /* listener: jti hashes stored */

    /* counters of dead workers, folded in by the master on repair: one
     * retired_<field> per row of sc_counters.h */
#define SC_X(field, metric, help, stats) _Atomic uint64_t retired_##field;
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    _Atomic uint64_t retired_lat_buckets[SC_LAT_BUCKETS];
    _Atomic uint64_t retired_wait_buckets[SC_LAT_BUCKETS];
    _Atomic uint64_t worker_restarts; /* master */
    _Atomic uint64_t listener_restarts; /* master */
    _Atomic uint64_t accept_drops;    /* master: fds closed, all full */
    _Atomic uint64_t accepted_total;  /* master */
};

struct sc_worker_slot {
    _Atomic int32_t pid;
    _Atomic uint32_t state;          /* enum sc_proc_state */
    _Atomic uint64_t heartbeat_ms;   /* CLOCK_MONOTONIC ms */
    _Atomic uint64_t started_ms;     /* CLOCK_REALTIME ms */
    _Atomic uint64_t fds_received;   /* monotonic: fds taken off the channel */
    _Atomic uint64_t connections;    /* open sockets, incl. handshaking */
    _Atomic uint64_t clients;        /* upgraded, authenticated */
    _Atomic uint64_t subscriptions;  /* (connection, event) pairs */
    _Atomic uint64_t ring_seq;       /* next ring sequence to consume */
    /* sweeps in progress (fanout.c): when the oldest change the next
     * subscriber lacks was published (0: none), and when that was said,
     * both CLOCK_MONOTONIC ms */
    _Atomic uint64_t sweep_front_ms;
    _Atomic uint64_t sweep_said_ms;
    /* counters: one field per row of sc_counters.h */
#define SC_X(field, metric, help, stats) _Atomic uint64_t field;
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    _Atomic uint64_t lat_buckets[SC_LAT_BUCKETS]; /* cumulative-free counts */
    _Atomic uint64_t wait_buckets[SC_LAT_BUCKETS]; /* ring waits, same */
};

struct sc_listener_slot {
    _Atomic int32_t pid;
    _Atomic uint32_t state;         /* enum sc_proc_state */
    _Atomic uint32_t db_state;      /* enum sc_db_state */
    _Atomic uint32_t pad;
    _Atomic uint64_t heartbeat_ms;  /* CLOCK_MONOTONIC ms */
    _Atomic uint64_t last_notification_ms; /* CLOCK_REALTIME ms */
    _Atomic uint64_t notifications; /* payloads received */
    _Atomic uint64_t malformed;     /* payloads refused */
    _Atomic uint64_t events_full;   /* events the full table could not take */
    _Atomic uint64_t reconnects;    /* to PostgreSQL */
    /* --source logical (issue 11); the source is set for both sources */
    _Atomic uint32_t source;          /* enum sc_source of config.h */
    _Atomic uint32_t slot_active;     /* 1 while streaming from the slot */
    _Atomic uint64_t slot_lag_bytes;  /* server WAL end - confirmed flush */
    _Atomic uint64_t confirmed_lsn;   /* last position confirmed */
    _Atomic uint64_t transactions;    /* transactions applied */
    _Atomic uint64_t forged;          /* notifications the database
                                         contradicts (--source notify) */
    _Atomic uint64_t unknown_events;  /* notifications naming an event the
                                         database does not hold */
};

/* Fixed part of an event entry; subs[nworkers] follows. */
struct sc_event_entry {
    _Atomic int64_t id;          /* 0 = free; written once (listener) */
    _Atomic uint64_t seq;        /* seqlock over the fields below */
    _Atomic uint32_t flags;      /* SC_EVENT_* */
    _Atomic int32_t available;
    _Atomic int32_t capacity;
    _Atomic uint32_t subs_total; /* sum of subs[]; audited by the master */
    _Atomic int64_t version;
    _Atomic uint32_t subs[];     /* per worker */
};

/* One broadcast: a change and its frames, encoded once by the listener. */
struct sc_ring_slot {
    _Atomic uint64_t seq;       /* 2n+1 writing, 2n+2 published */
    _Atomic int64_t event_id;
    _Atomic int64_t version;
    _Atomic int64_t commit_ms;  /* "ts" of the payload, 0 if none */
    _Atomic int64_t published_ms; /* CLOCK_MONOTONIC ms, when published */
    _Atomic uint32_t kind;      /* enum sc_change_kind */
    _Atomic int32_t available;
    _Atomic int32_t capacity;
    _Atomic uint16_t frame_len;  /* bytes used in frame[] */
    _Atomic uint16_t update_off; /* offset of the seat_update frame */
    /* WebSocket frames, ready to send: for booking_* the booking frame
     * then the seat_update frame; for token_revoked the jti (no frame). */
    uint8_t frame[SC_SHM_FRAME_MAX];
};

/* Fixed part of a user entry; per[nworkers] follows. */
struct sc_user_entry {
    _Atomic uint64_t key;   /* 64-bit hash of the user id, 0 = free */
    _Atomic uint32_t total; /* connections of this user, all workers;
                               audited by the master */
    _Atomic uint32_t pad;
    _Atomic uint32_t per[]; /* per worker */
};

_Static_assert(sizeof(struct sc_shm_header) <= 832, "header size");
_Static_assert(sizeof(struct sc_worker_slot) <= 512, "worker slot size");
_Static_assert(sizeof(struct sc_event_entry) == 40, "event entry size");
_Static_assert(sizeof(struct sc_ring_slot) % 8 == 0, "ring slot alignment");
_Static_assert(sizeof(struct sc_ring_slot) <= 512, "ring slot size");
_Static_assert(sizeof(struct sc_user_entry) == 16, "user entry size");

#endif /* SC_SHM_H */
