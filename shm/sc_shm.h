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
 * Concurrency protocol (who writes what; readers never lock):
 *
 * - Header: written by the master while creating the segment, published by
 *   a release store of `ready`.  Afterwards only `shutting_down` (master)
 *   and the `retired_*` totals (master, while repairing a dead worker)
 *   change.
 * - Worker slot w: every field is written by worker w only, with relaxed
 *   atomics, except while worker w is dead: then the master repairs it
 *   (folds its counters into the header's retired totals and zeroes it)
 *   before the respawned worker starts.  Readers: master (load balancing),
 *   other workers (/healthz, /metrics, get_stats), `seatcast stats`.
 * - Listener slot: written by the listener only (master repairs on death).
 * - Event table: an entry's key (`id`) is written once by the listener
 *   (insertions only; deleted events stay as entries with SC_EVENT_DELETED
 *   so probing never breaks).  The seat fields are guarded by the entry's
 *   seqlock `seq` (odd while the listener writes them).  `subs[w]` is
 *   written by worker w (its number of subscriptions to the event) and by
 *   the master while worker w is dead; `subs_total` is the atomic sum of
 *   all subs[w], maintained with fetch_add/fetch_sub by the same writers,
 *   so that 0 <-> 1 transitions are seen exactly once (the distinct-event
 *   gauge in the header).
 * - Ring: written by the listener only.  Slot i of sequence n (i = n mod R)
 *   is a seqlock: seq = 2n+1 while writing, 2n+2 when published; then
 *   `ring_head` (header) = n+1 with a release store.  A reader that finds
 *   another sequence in the slot, before or after copying it, has been
 *   overrun and resynchronises from the event table.
 * - User table: keys are claimed with a compare-and-swap from 0 by any
 *   worker; `total` changes only by atomic CAS within the limit; `per[w]`
 *   is written by worker w and by the master while worker w is dead.
 * - Revoked set: open addressing of 64-bit jti hashes (0 = free), inserted
 *   by the listener only (never removed while the server runs); workers
 *   look a token's jti up at the handshake.
 */
#ifndef SC_SHM_H
#define SC_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SC_SHM_MAGIC 0x3147455254534353ULL /* "SCSTREG1" little-endian */
#define SC_SHM_VERSION 5u /* 5: listener source and slot lag */
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
    char name[64];   /* shm name */
    char listen[160]; /* first listener, for display */

    /* published state */
    _Atomic uint32_t ready;         /* master: 1 once filled (release) */
    _Atomic uint32_t shutting_down; /* master */
    _Atomic uint64_t ring_head;     /* listener: next sequence to write */
    _Atomic uint64_t events_used;   /* listener: entries claimed */
    _Atomic uint64_t events_watched; /* workers: events with subs_total>0 */
    _Atomic uint64_t users_used;    /* workers: user keys claimed */
    _Atomic uint64_t revoked_used;  /* listener: jti hashes stored */

    /* counters of dead workers, folded in by the master on repair */
    _Atomic uint64_t retired_handshakes;
    _Atomic uint64_t retired_handshake_failures;
    _Atomic uint64_t retired_auth_failures;
    _Atomic uint64_t retired_messages_sent;
    _Atomic uint64_t retired_bytes_sent;
    _Atomic uint64_t retired_messages_received;
    _Atomic uint64_t retired_connections_total;
    _Atomic uint64_t retired_slow_consumers;
    _Atomic uint64_t retired_rate_limited;
    _Atomic uint64_t retired_resyncs;
    _Atomic uint64_t retired_lat_count;
    _Atomic uint64_t retired_lat_sum_us;
    _Atomic uint64_t retired_lat_buckets[SC_LAT_BUCKETS];
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
    /* counters */
    _Atomic uint64_t connections_total;
    _Atomic uint64_t handshakes;
    _Atomic uint64_t handshake_failures;
    _Atomic uint64_t auth_failures;
    _Atomic uint64_t messages_sent;
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t messages_received;
    _Atomic uint64_t slow_consumers;
    _Atomic uint64_t rate_limited;
    _Atomic uint64_t resyncs;
    _Atomic uint64_t lat_count;
    _Atomic uint64_t lat_sum_us;
    _Atomic uint64_t lat_buckets[SC_LAT_BUCKETS]; /* cumulative-free counts */
};

struct sc_listener_slot {
    _Atomic int32_t pid;
    _Atomic uint32_t state;         /* enum sc_proc_state */
    _Atomic uint32_t db_state;      /* enum sc_db_state */
    _Atomic uint32_t pad;
    _Atomic uint64_t heartbeat_ms;
    _Atomic uint64_t connected_since_ms;
    _Atomic uint64_t last_notification_ms;
    _Atomic uint64_t notifications;
    _Atomic uint64_t malformed;
    _Atomic uint64_t stale_versions;
    _Atomic uint64_t unknown_events;
    _Atomic uint64_t events_full;
    _Atomic uint64_t reconnects;
    _Atomic uint64_t snapshots;
    _Atomic uint64_t revocations;
    /* --source logical (issue 11); the source is set for both sources */
    _Atomic uint32_t source;          /* enum sc_source of config.h */
    _Atomic uint32_t slot_active;     /* 1 while streaming from the slot */
    _Atomic uint64_t slot_lag_bytes;  /* server WAL end - confirmed flush */
    _Atomic uint64_t confirmed_lsn;   /* last position confirmed */
    _Atomic uint64_t transactions;    /* transactions applied */
    _Atomic uint64_t forged;          /* notifications the database
                                         contradicts (--source notify) */
};

/* Fixed part of an event entry; subs[nworkers] follows. */
struct sc_event_entry {
    _Atomic int64_t id;          /* 0 = free; written once (listener) */
    _Atomic uint64_t seq;        /* seqlock over the fields below */
    _Atomic uint32_t flags;      /* SC_EVENT_* */
    _Atomic int32_t available;
    _Atomic int32_t capacity;
    _Atomic uint32_t subs_total; /* sum of subs[] */
    _Atomic int64_t version;
    _Atomic uint32_t subs[];     /* per worker */
};

/* One broadcast: a change and its frames, encoded once by the listener. */
struct sc_ring_slot {
    _Atomic uint64_t seq;       /* 2n+1 writing, 2n+2 published */
    _Atomic int64_t event_id;
    _Atomic int64_t version;
    _Atomic int64_t commit_ms;  /* "ts" of the payload, 0 if none */
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
    _Atomic uint32_t total; /* connections of this user, all workers */
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
