/*
 * listener_int.h - inside the listener process: the state shared by
 * listener.c (connection, back-off, NOTIFY path, publishing) and logical.c
 * (the replication stream of --source logical)
 *
 * Both sources publish through the same functions: a change becomes a
 * struct sc_notify and goes through sc_listener_apply(), which checks its
 * version against the registry, writes the seats under the entry's seqlock
 * and publishes the frames on the ring; sc_listener_wake() then wakes the
 * workers with subscribers of what changed.  Not for other processes.
 */
#ifndef SC_LISTENER_INT_H
#define SC_LISTENER_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct event;
struct sc_child_ctx;
struct sc_registry;
struct sc_listener_slot;
struct sc_notify;
struct sc_seat_row;
struct sc_logical;

enum step {
    STEP_IDLE,      /* not connected */
    STEP_CONNECT,   /* PQconnectPoll in progress */
    STEP_RECOVERY,  /* SELECT pg_is_in_recovery() */
    STEP_PROBE,     /* LISTEN probe; NOTIFY probe: waiting for it */
    STEP_LISTEN,    /* LISTEN channel */
    STEP_SNAPSHOT,  /* SELECT from seatcast_seat_state */
    STEP_REVOKED,   /* SELECT from seatcast_revoked_tokens */
    STEP_READY,     /* applying notifications */
    STEP_LOGICAL    /* --source logical: logical.c drives the connection */
};

struct listener {
    const struct sc_child_ctx *ctx;
    const struct sc_config *cfg;
    struct sc_registry *reg;
    struct sc_listener_slot *slot;
    struct event_base *base;
    struct event *ev_sock;  /* the connection's socket, when connected */
    struct event *ev_retry; /* reconnect timer */
    struct event *ev_tick;  /* heartbeat, probe timeout */
    struct event *ev_term, *ev_int;
    PGconn *pg;
    enum step step;
    bool probe_seen;
    uint64_t probe_deadline;
    char probe_channel[64];
    uint64_t backoff_ms;
    bool wake[SC_MAX_WORKERS];
    uint64_t full_logged_ms;
    struct sc_logical *lg;  /* logical.c's state, NULL until used */
    /* --source notify: hints waiting for, and in, the verifying query */
    struct sc_notify *hints, *checking;
    size_t nhints, hints_cap, nchecking, checking_cap;
    bool verifying;
    uint64_t forged_logged_ms;
    struct sc_seat_row *rows;
    size_t nrows, rows_cap;
    char **revoked;
    size_t nrevoked, revoked_cap;
};

/* Drops the connection, logs why, retries after the back-off. */
void sc_listener_drop(struct listener *l, const char *why);

/* Applies one change (version-checked) and publishes it on the ring. */
void sc_listener_apply(struct listener *l, const struct sc_notify *n);

/* Wakes the workers marked by the changes applied since the last call. */
void sc_listener_wake(struct listener *l);

/* Rows of seatcast_seat_state / seatcast_revoked_tokens into the
   registry (see apply_snapshot in listener.c for only_new). */
void sc_listener_snapshot(struct listener *l, const PGresult *r,
                          bool only_new);
void sc_listener_revoked(struct listener *l, const PGresult *r);

/* Watches the connection's socket for EV_READ and/or EV_WRITE. */
void sc_listener_watch(struct listener *l, short what);

/* The connection is in service (the events loaded): back-off reset,
 * /healthz connected, the master accepts clients. */
void sc_listener_ready(struct listener *l);

#endif /* SC_LISTENER_INT_H */
