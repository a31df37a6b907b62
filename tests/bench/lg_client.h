/*
 * lg_client.h - the load generator's client processes and what they share
 *
 * loadgen.c (the parent) maps every array below MAP_SHARED before it
 * forks, so parent and clients see them at the same addresses.  Client k
 * owns connections [lo, hi) of the shared table - no other process writes
 * them - and runs them on one epoll loop (lg_client.c).  The parent never
 * touches a socket: it commits the bookings and reads the clients' figures.
 *
 * Why processes: a process may hold at most RLIMIT_NOFILE descriptors and
 * on this machine even root cannot raise the hard limit (20 000: no
 * CAP_SYS_RESOURCE), so 100 000 connections need several processes.
 *
 * Source addresses: connect() picks an ephemeral port among the even ones
 * first (Linux), ~14 000 of them; past that every connect() scans the even
 * half in vain and costs ~1 ms instead of ~10 us.  So beyond per_source
 * connections (70 % of the even ports), connection i binds to 127.0.0.(2 +
 * i / per_source) with IP_BIND_ADDRESS_NO_PORT before connect().
 *
 * Protocol.  The parent writes a command's parameters, then bumps
 * ctl->seq with a release store.  Each client acquires seq after every
 * loop iteration (<= 10 ms), carries the command out and stores seq in its
 * stats->done with a release store once it is finished:
 *   LG_CMD_CONNECT  open its connections (done when none is in flight);
 *   LG_CMD_BEGIN    mark the open connections CF_PHASE, clear their maps;
 *   LG_CMD_END      stop counting deliveries (maps and stats then stay
 *                   still, and the parent reads them);
 *   LG_CMD_EXIT     reset every socket and exit.
 * During a phase a client also stores its progress counters (relaxed)
 * after each loop iteration, so that the parent can see the phase end.
 *
 * Onsale mode (--onsale-bookings K, one event): one phase of K bookings,
 * and instead of the 64-bit map each connection i keeps a struct
 * lg_onsale_conn (os[i], see lg_onsale.h) and K cover times, cover_us[i *
 * K + j]: when (us since the phase origin) a message first showed booking
 * j's count or a newer one.  Bookings 0..os[i].hi are exactly the covered
 * ones, so cover_us needs no clearing.
 */
#ifndef LG_CLIENT_H
#define LG_CLIENT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lg_onsale.h"

#define LG_PHASE_MAX 64 /* bookings per phase: bits of lg_conn.seen */

enum lg_cmd {
    LG_CMD_NONE,
    LG_CMD_CONNECT,
    LG_CMD_BEGIN,
    LG_CMD_END,
    LG_CMD_EXIT
};

enum lg_conn_state {
    LG_CS_IDLE,       /* not started */
    LG_CS_CONNECTING, /* connect() in progress */
    LG_CS_HANDSHAKE,  /* request sent, waiting for 101 */
    LG_CS_HELLO,      /* upgraded, waiting for the snapshot seat_update */
    LG_CS_OPEN,       /* subscribed and counted */
    LG_CS_DEAD        /* failed or closed; fd closed */
};

enum lg_fail {
    LG_FR_CONNECT, /* socket(), bind() or connect() failed */
    LG_FR_HTTP,    /* no 101, or a bad accept value */
    LG_FR_CLOSED,  /* close frame from the server */
    LG_FR_EOF,     /* reset or closed without a close frame */
    LG_FR_TIMEOUT, /* not subscribed within --handshake-timeout */
    LG_FR_PROTO,   /* bad frame, bad JSON, messages out of order */
    LG_FR_COUNT
};

#define LG_CF_PHASE 0x01 /* open when the phase began: deliveries count */
#define LG_CF_HELLO 0x02 /* connection_established received */

/* One client connection (shared table, written by its owner only).
 * Connection i follows event first_event + i % nevents. */
struct lg_conn {
    uint64_t seen;     /* bit j: this phase's j-th booking of the event */
    uint8_t *carry;    /* owner's heap: unparsed tail of a read, or NULL */
    int32_t fd;        /* owned until LG_CS_DEAD */
    uint32_t start_us; /* connect() time, us since lg.origin_ns */
    uint16_t carry_len;
    uint8_t state; /* enum lg_conn_state */
    uint8_t flags; /* LG_CF_* */
};

_Static_assert(sizeof(struct lg_conn) <= 32, "lg_conn over 32 bytes");

/* One client's figures.  Written by that client only; the parent reads
 * the atomics at any time, the rest after acquiring `done`. */
struct lg_stats {
    _Alignas(64) atomic_uint done; /* last command finished */
    _Atomic uint64_t prog_frames;  /* phase messages so far */
    _Atomic uint64_t prog_updates; /* distinct seat_updates so far */
    _Atomic uint64_t prog_created; /* booking_created so far */
    _Atomic uint64_t prog_final;   /* onsale: connections whose seat_update
                                      showed the last booking */
    _Atomic uint64_t prog_bookings; /* onsale: sum of "bookings" so far */
    /* connect */
    uint32_t opened, failed, dropped;
    uint64_t fails[LG_FR_COUNT];
    int64_t hs_start_ns; /* first connect() */
    int64_t hs_end_ns;   /* last connection opened or failed */
    uint64_t snapshot_bad, stray, errors_rcvd, pongs, pong_drops;
    int last_status;
    char last_close[96];
    /* the current (or last) phase */
    uint64_t frames, updates, created, dups, reordered, unexpected;
    int64_t last_ns; /* receive time of the last phase message */
    double cpu_s;    /* this client's CPU over the phase */
    struct lg_onsale_tally os; /* onsale mode (unexpected above) */
};

/* Commands and the phase's parameters, written by the parent. */
struct lg_ctl {
    atomic_uint seq;         /* bumped (release) after the fields below */
    uint32_t cmd;            /* enum lg_cmd */
    int64_t phase_origin_ns; /* CLOCK_MONOTONIC origin of lat_us */
};

struct lg_opts {
    const char *host;
    const char *token_file;
    const char *database;
    uint32_t conns;
    uint32_t window;
    uint32_t procs; /* client processes, 0: as few as the fd limit allows */
    uint32_t per_source; /* connections per source address, 0: auto */
    uint32_t nevents;
    int64_t first_event;
    pid_t server_pid;
    uint32_t burst;
    double paced_rate;
    double paced_seconds;
    double settle;
    double hs_timeout;
    double drain_timeout;
    uint32_t onsale_bookings; /* onsale mode: K > 0 (one event) */
    double onsale_rate;       /* its bookings per second, 0: at once */
    const char *onsale_dump;  /* file for freshness per booking, or NULL */
    /* After an epoll_wait() that returned fewer than a quarter of its
     * batch, pause this long (0: never).  The clients stand for browsers
     * on other machines, but share the server's cores here: woken for
     * each frame, they cost a context switch per frame (at 100 000
     * subscribers, most of their CPU).  A pause lets frames gather; it
     * can only make a measured time later. */
    uint32_t read_pause_us;
    uint16_t port;
};

/* Everything the clients inherit from the parent at fork(). */
struct lg {
    struct lg_opts o;
    char *token;       /* owned (parent; each client's copy) */
    int64_t origin_ns; /* CLOCK_MONOTONIC origin of start_us */
    struct sockaddr_in dst;
    uint32_t nprocs;     /* client processes */
    uint32_t per_source; /* connections per source address; 0: no bind */
    /* shared: mapped before fork, unmapped by the parent at the end */
    struct lg_ctl *ctl;
    struct lg_stats *stats; /* [nprocs] */
    struct lg_conn *conns;  /* [o.conns] */
    uint32_t *hs_us;        /* [o.conns] handshake latency of open ones */
    uint32_t *lat_us;       /* [o.conns * LG_PHASE_MAX] receive times */
    uint32_t *ev_count;     /* [nevents] bookings of the event in phase */
    uint32_t *ev_first;     /* [nevents] phase index of its first one */
    int64_t *ev_base;       /* [nevents] seats before the phase */
    /* onsale mode only (NULL otherwise) */
    struct lg_onsale_conn *os; /* [o.conns] */
    uint32_t *cover_us; /* [o.conns * o.onsale_bookings] cover times */
};

/* First connection of client k of n (client k owns [lo(k), lo(k + 1))). */
uint32_t lg_client_lo(uint32_t conns, uint32_t n, uint32_t k);

/* Runs client k until LG_CMD_EXIT; never returns.  Exits 3 if it cannot
 * set up (message on stderr). */
_Noreturn void lg_client_main(struct lg *lg, uint32_t k);

#endif /* LG_CLIENT_H */
