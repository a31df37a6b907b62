/*
 * listener.c - the seatcast listener process (see listener.h)
 *
 * One PostgreSQL connection, driven without blocking from a libevent loop:
 *
 *   DISCONNECTED --timer--> CONNECTING (PQconnectStartParams/PQconnectPoll)
 *     --> SETUP: SELECT pg_is_in_recovery()   refuse a standby
 *                LISTEN probe; NOTIFY probe    prove notifications arrive
 *                LISTEN channel                (before reading the state)
 *                SELECT ... seatcast_seat_state  snapshot into the registry
 *     --> READY: PQconsumeInput/PQnotifies on every readable event
 *
 * Every error drops the connection and retries with a delay doubling from
 * 100 ms to 5 s.  Clients stay connected meanwhile; /healthz reports it.
 *
 * A notification is applied if its version is newer than the registry's:
 * seat fields are written under the entry's seqlock, the frames are encoded
 * once and published on the ring, and only workers with subscribers of the
 * event are woken (eventfd), once per batch.  A malformed payload is logged
 * and counted, never fatal.  The listener is the only writer of the event
 * table's seat fields and of the ring.
 */
#include "listener.h"
#include "listener_int.h"

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "logical.h"
#include "notify_msg.h"
#include "proc.h"
#include "proto.h"
#include "registry.h"
#include "ws_frame.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PROBE_TIMEOUT_MS 5000
#define RELAXED memory_order_relaxed

static void on_socket(evutil_socket_t fd, short what, void *arg);
static int64_t field_i64(const PGresult *r, int row, int col, bool *ok);
static void drop_connection(struct listener *l, const char *why);

/* ------------------------------------------------------------------ */
/* Publishing                                                           */

static void
mark_wake(struct listener *l, const struct sc_event_entry *e)
{
    struct sc_event_entry *m = (struct sc_event_entry *)(uintptr_t)e;

    /* the per-worker counts, not subs_total: they are the truth */
    for (unsigned w = 0; w < l->ctx->nworkers; w++) {
        if (atomic_load_explicit(&m->subs[w], RELAXED) != 0) {
            l->wake[w] = true;
        }
    }
}

static void
wake_workers(struct listener *l)
{
    uint64_t one = 1;

    for (unsigned w = 0; w < l->ctx->nworkers; w++) {
        if (l->wake[w]) {
            l->wake[w] = false;
            if (write(l->ctx->wake_fds[w], &one, sizeof(one)) < 0 &&
                errno != EAGAIN) {
                sc_log(SC_LOG_WARN, "could not wake worker %u: %s", w,
                       strerror(errno));
            }
        }
    }
}

/* Appends one text frame with the JSON in msg; -1 if it does not fit. */
static int
append_frame(struct sc_ring_msg *m, const char *json, long n)
{
    long fl;

    if (n < 0) {
        return -1;
    }
    fl = sc_ws_frame_encode(m->frame + m->frame_len,
                            SC_SHM_FRAME_MAX - m->frame_len, SC_WS_OP_TEXT,
                            json, (size_t)n);
    if (fl < 0) {
        return -1;
    }
    m->frame_len = (uint16_t)(m->frame_len + fl);
    return 0;
}

/* Encodes and publishes a change of event id to the ring. */
static void
publish(struct listener *l, const struct sc_event_entry *e, uint32_t kind,
        int64_t id, int32_t avail, int32_t cap, int64_t version,
        int64_t commit_ms)
{
    struct sc_ring_msg m;
    char json[SC_PROTO_MSG_MAX];
    uint64_t now = sc_wall_ms();

    memset(&m, 0, offsetof(struct sc_ring_msg, frame));
    m.event_id = id;
    m.version = version;
    m.commit_ms = commit_ms;
    m.kind = kind;
    m.available = avail;
    m.capacity = cap;
    if (kind == SC_CHANGE_BOOKING_CREATED ||
        kind == SC_CHANGE_BOOKING_CANCELLED) {
        append_frame(&m, json,
                     sc_proto_booking(json, sizeof(json),
                                      kind == SC_CHANGE_BOOKING_CANCELLED,
                                      (uint64_t)id, avail, now));
        m.update_off = m.frame_len;
    }
    if (kind != SC_CHANGE_EVENT_DELETED) {
        append_frame(&m, json,
                     sc_proto_seat_update(json, sizeof(json), (uint64_t)id,
                                          avail, cap, now));
    }
    sc_registry_ring_publish(l->reg, &m);
    if (e != NULL) {
        mark_wake(l, e);
    }
}


/*
 * Publishes revoked jti hashes (up to SC_SHM_FRAME_MAX / 8 per ring slot)
 * so that every worker closes the connections that use them.
 */
static void
publish_revocations(struct listener *l, const uint64_t *hashes, size_t n)
{
    const size_t per = SC_SHM_FRAME_MAX / sizeof(uint64_t);
    struct sc_ring_msg m;

    for (size_t off = 0; off < n; off += per) {
        size_t k = n - off < per ? n - off : per;
        memset(&m, 0, offsetof(struct sc_ring_msg, frame));
        m.kind = SC_CHANGE_TOKEN_REVOKED;
        memcpy(m.frame, hashes + off, k * sizeof(uint64_t));
        m.frame_len = (uint16_t)(k * sizeof(uint64_t));
        sc_registry_ring_publish(l->reg, &m);
    }
    for (unsigned w = 0; w < l->ctx->nworkers; w++) {
        l->wake[w] = true;
    }
}

static void
publish_revocation(struct listener *l, const char *jti)
{
    uint64_t h = sc_registry_hash_str(jti);

    if (sc_registry_revoke(l->reg, h) < 0) {
        sc_log(SC_LOG_ERR, "revoked token set is full: a revoked token "
               "could be used again for new connections");
    }
    publish_revocations(l, &h, 1);
}

/*
 * Rows of seatcast_revoked_tokens into the registry's set.  Those not
 * known yet were revoked while the listener was away: their open
 * connections are closed now.
 */
static void
apply_revoked(struct listener *l, const PGresult *r)
{
    int rows = PQntuples(r);
    uint64_t *fresh = malloc(sizeof(uint64_t) * (size_t)(rows > 0 ? rows : 1));
    size_t nfresh = 0;

    for (int i = 0; i < rows; i++) {
        uint64_t h;
        int rc;
        if (PQgetisnull(r, i, 0)) {
            continue;
        }
        h = sc_registry_hash_str(PQgetvalue(r, i, 0));
        rc = sc_registry_revoke(l->reg, h);
        if (rc < 0) {
            sc_log(SC_LOG_ERR, "revoked token set is full");
            break;
        }
        if (rc == 1 && fresh != NULL) {
            fresh[nfresh++] = h;
        }
    }
    if (nfresh > 0) {
        sc_log(SC_LOG_INFO, "%zu tokens were revoked while the listener was "
               "away; closing their connections", nfresh);
        publish_revocations(l, fresh, nfresh);
        wake_workers(l);
    }
    free(fresh);
}

static struct sc_event_entry *
entry_for(struct listener *l, int64_t id, bool *inserted)
{
    struct sc_event_entry *e = sc_registry_event_insert(l->reg, id, inserted);
    uint64_t now = sc_mono_ms();

    if (e == NULL) {
        atomic_fetch_add_explicit(&l->slot->events_full, 1, RELAXED);
        /* one line every 10 s, not one per notification */
        if (now - l->full_logged_ms > 10000 || l->full_logged_ms == 0) {
            l->full_logged_ms = now;
            sc_log(SC_LOG_ERR, "registry full: event %lld is not tracked "
                   "(--max-events %u); its subscribers get not_found",
                   (long long)id, l->cfg->max_events);
        }
    }
    return e;
}

/* Applies one parsed notification. */
static void
apply(struct listener *l, const struct sc_notify *n)
{
    static const uint32_t kinds[] = {
        [SC_NOTIFY_BOOKING_CREATED] = SC_CHANGE_BOOKING_CREATED,
        [SC_NOTIFY_BOOKING_CANCELLED] = SC_CHANGE_BOOKING_CANCELLED,
        [SC_NOTIFY_SEAT_UPDATE] = SC_CHANGE_SEAT_UPDATE,
        [SC_NOTIFY_EVENT_DELETED] = SC_CHANGE_EVENT_DELETED};
    struct sc_event_state st;
    struct sc_event_entry *e;
    bool inserted;
    int64_t id = (int64_t)n->event_id;

    if (n->type == SC_NOTIFY_TOKEN_REVOKED) {
        sc_log(SC_LOG_INFO, "token revoked; closing its connections");
        publish_revocation(l, n->jti);
        return;
    }
    if (n->type == SC_NOTIFY_EVENT_DELETED) {
        e = sc_registry_event_find(l->reg, id);
        if (e == NULL) {
            return; /* never followed: nothing to tell */
        }
        sc_registry_event_read(e, &st);
        if ((st.flags & SC_EVENT_DELETED) && !n->has_version) {
            return; /* already deleted (a replayed transaction) */
        }
        int64_t v = n->has_version && n->version > st.version ? n->version
                                                             : st.version + 1;
        sc_registry_event_write(e, SC_EVENT_DELETED, 0, 0, v);
        publish(l, e, SC_CHANGE_EVENT_DELETED, id, 0, 0, v, n->ts_ms);
        return;
    }
    e = entry_for(l, id, &inserted);
    if (e == NULL) {
        return;
    }
    sc_registry_event_read(e, &st);
    if (!inserted && (st.flags & SC_EVENT_LIVE) && n->version <= st.version) {
        return; /* already applied */
    }
    sc_registry_event_write(e, SC_EVENT_LIVE, n->available_seats,
                            n->seat_capacity, n->version);
    publish(l, e, kinds[n->type], id, n->available_seats, n->seat_capacity,
            n->version, n->ts_ms);
}

/*
 * A payload is only a hint (SPEC section 7): any role that can connect may
 * NOTIFY the channel.  Hints are collected while a drain lasts; then one
 * query re-reads the seatcast_seat_state rows of the events they name and
 * the seatcast_revoked_tokens rows of the jtis they name, and
 * sc_notify_verify() decides what each may do (verify_done()).  One query
 * at a time: hints that arrive meanwhile wait for the next.
 */
static int
push_hint(struct sc_notify **v, size_t *n, size_t *cap,
          const struct sc_notify *h)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct sc_notify *p = realloc(*v, c * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = *h;
    return 0;
}

static void
handle_notify(struct listener *l, const PGnotify *nf)
{
    struct sc_notify n;
    const char *reason = NULL;

    if (strcmp(nf->relname, l->probe_channel) == 0) {
        l->probe_seen = true;
        return;
    }
    atomic_fetch_add_explicit(&l->slot->notifications, 1, RELAXED);
    atomic_store_explicit(&l->slot->last_notification_ms, sc_wall_ms(),
                          RELAXED);
    if (sc_notify_parse(nf->extra, strlen(nf->extra), &n, &reason) != 0) {
        atomic_fetch_add_explicit(&l->slot->malformed, 1, RELAXED);
        sc_log(SC_LOG_WARN, "ignored a malformed notification on \"%s\" "
               "(%zu bytes): %s", nf->relname, strlen(nf->extra),
               reason ? reason : "invalid");
        return;
    }
    if (push_hint(&l->hints, &l->nhints, &l->hints_cap, &n) != 0) {
        sc_log(SC_LOG_ERR, "out of memory: a notification was dropped");
    }
}

static void
free_verify_rows(struct listener *l)
{
    for (size_t i = 0; i < l->nrevoked; i++) {
        free(l->revoked[i]);
    }
    l->nrevoked = 0;
    l->nrows = 0;
}

/* Sends the query verifying the hints collected so far. */
static void
send_verify(struct listener *l)
{
    struct sc_notify *t;
    size_t tc, len = 0, cap = 256;
    char *sql = malloc(cap);
    bool any_jti = false, first = true;

    /* the collected hints become the checked ones */
    t = l->checking;
    l->checking = l->hints;
    l->hints = t;
    tc = l->checking_cap;
    l->checking_cap = l->hints_cap;
    l->hints_cap = tc;
    l->nchecking = l->nhints;
    l->nhints = 0;
#define ADD(...)                                                              \
    do {                                                                      \
        int k_ = snprintf(sql ? sql + len : NULL, sql ? cap - len : 0,        \
                          __VA_ARGS__);                                       \
        while (sql != NULL && len + (size_t)k_ >= cap) {                      \
            char *g_ = realloc(sql, cap * 2);                                 \
            if (g_ == NULL) {                                                 \
                free(sql);                                                    \
                sql = NULL;                                                   \
                break;                                                        \
            }                                                                 \
            sql = g_;                                                         \
            cap *= 2;                                                         \
            snprintf(sql + len, cap - len, __VA_ARGS__);                      \
        }                                                                     \
        len += (size_t)k_;                                                    \
    } while (0)
    ADD("SELECT event_id, available_seats, seat_capacity, version FROM "
        "seatcast_seat_state WHERE event_id = ANY('{0");
    for (size_t i = 0; i < l->nchecking && sql != NULL; i++) {
        if (l->checking[i].type == SC_NOTIFY_TOKEN_REVOKED) {
            any_jti = true;
        } else {
            ADD(",%llu", (unsigned long long)l->checking[i].event_id);
        }
    }
    ADD("}'::bigint[])");
    if (any_jti) {
        ADD("; SELECT jti FROM seatcast_revoked_tokens WHERE jti IN (");
        for (size_t i = 0; i < l->nchecking && sql != NULL; i++) {
            char *lit;
            if (l->checking[i].type != SC_NOTIFY_TOKEN_REVOKED) {
                continue;
            }
            lit = PQescapeLiteral(l->pg, l->checking[i].jti,
                                  strlen(l->checking[i].jti));
            if (lit == NULL) {
                free(sql);
                sql = NULL;
                break;
            }
            ADD("%s%s", first ? "" : ",", lit);
            first = false;
            PQfreemem(lit);
        }
        ADD(")");
    }
#undef ADD
    if (sql == NULL) {
        drop_connection(l, "out of memory verifying notifications");
        return;
    }
    free_verify_rows(l);
    l->verifying = true;
    if (!PQsendQuery(l->pg, sql) || PQflush(l->pg) < 0) {
        free(sql);
        drop_connection(l, PQerrorMessage(l->pg));
        return;
    }
    free(sql);
}

/* One result of the verifying query; -1 if the connection was dropped. */
static int
verify_result(struct listener *l, const PGresult *r)
{
    char why[600];
    int rows = PQntuples(r);

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, sizeof(why), "could not verify notifications against "
                 "the database (is sql/notify.sql installed?): %s",
                 PQresultErrorMessage(r));
        drop_connection(l, why);
        return -1;
    }
    if (PQnfields(r) == 4) {
        for (int i = 0; i < rows; i++) {
            bool ok = true;
            int64_t id = field_i64(r, i, 0, &ok);
            int64_t a = field_i64(r, i, 1, &ok);
            int64_t c = field_i64(r, i, 2, &ok);
            int64_t v = field_i64(r, i, 3, &ok);
            if (!ok || id <= 0 || a < 0 || c > INT32_MAX || a > c || v < 0) {
                continue;
            }
            if (l->nrows == l->rows_cap) {
                size_t nc = l->rows_cap ? l->rows_cap * 2 : 64;
                struct sc_seat_row *p = realloc(l->rows, nc * sizeof(*p));
                if (p == NULL) {
                    break;
                }
                l->rows = p;
                l->rows_cap = nc;
            }
            l->rows[l->nrows++] = (struct sc_seat_row){
                (uint64_t)id, (int32_t)a, (int32_t)c, v};
        }
    } else {
        for (int i = 0; i < rows; i++) {
            if (l->nrevoked == l->revoked_cap) {
                size_t nc = l->revoked_cap ? l->revoked_cap * 2 : 16;
                char **p = realloc(l->revoked, nc * sizeof(*p));
                if (p == NULL) {
                    break;
                }
                l->revoked = p;
                l->revoked_cap = nc;
            }
            l->revoked[l->nrevoked] = strdup(PQgetvalue(r, i, 0));
            if (l->revoked[l->nrevoked] != NULL) {
                l->nrevoked++;
            }
        }
    }
    return 0;
}

/* The verifying query is complete: apply what the database confirms. */
static void
verify_done(struct listener *l)
{
    enum sc_notify_verdict *vd = malloc(sizeof(*vd) *
                                        (l->nchecking ? l->nchecking : 1));
    uint64_t now = sc_mono_ms();

    l->verifying = false;
    if (vd == NULL) {
        drop_connection(l, "out of memory verifying notifications");
        return;
    }
    sc_notify_verify(l->checking, l->nchecking, l->rows, l->nrows,
                     (const char *const *)l->revoked, l->nrevoked, vd);
    for (size_t i = 0; i < l->nchecking; i++) {
        if (vd[i] == SC_VERIFY_APPLY) {
            apply(l, &l->checking[i]);
        } else if (vd[i] == SC_VERIFY_UNKNOWN) {
            /* takes no registry slot: counted only */
            atomic_fetch_add_explicit(&l->slot->unknown_events, 1, RELAXED);
        } else {
            atomic_fetch_add_explicit(&l->slot->forged, 1, RELAXED);
            if (l->forged_logged_ms == 0 ||
                now - l->forged_logged_ms > 10000) {
                l->forged_logged_ms = now;
                sc_log(SC_LOG_WARN, "ignored a %s notification that the "
                       "database contradicts (forged by a role that can "
                       "NOTIFY the channel?)",
                       sc_notify_type_name(l->checking[i].type));
            }
        }
    }
    free(vd);
    l->nchecking = 0;
    free_verify_rows(l);
}

static void
drain_notifications(struct listener *l)
{
    PGnotify *nf;

    while ((nf = PQnotifies(l->pg)) != NULL) {
        handle_notify(l, nf);
        PQfreemem(nf);
    }
    if (!l->verifying && l->nhints > 0) {
        send_verify(l);
    }
    wake_workers(l);
}

/* READY: results of the verifying query, then new notifications. */
static void
ready_input(struct listener *l)
{
    while (l->verifying && l->pg != NULL && !PQisBusy(l->pg)) {
        PGresult *r = PQgetResult(l->pg);
        if (r == NULL) {
            verify_done(l);
            break;
        }
        int rc = verify_result(l, r);
        PQclear(r);
        if (rc != 0) {
            return;
        }
    }
    if (l->pg != NULL) {
        drain_notifications(l);
    }
}

/* ------------------------------------------------------------------ */
/* Snapshot                                                             */

static int64_t
field_i64(const PGresult *r, int row, int col, bool *ok)
{
    const char *s = PQgetvalue(r, row, col);
    char *end;
    long long v;

    if (PQgetisnull(r, row, col)) {
        *ok = false;
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s) {
        *ok = false;
    }
    return v;
}

/*
 * Rows of seatcast_seat_state into the registry; changes published.  With
 * only_new, rows of events the registry already tracks are skipped: the
 * replication stream, resumed from the slot, brings their changes one by
 * one (see logical.c).
 */
static void
apply_snapshot(struct listener *l, const PGresult *r, bool only_new)
{
    int rows = PQntuples(r), changed = 0, bad = 0;

    for (int i = 0; i < rows; i++) {
        bool ok = true, inserted;
        int64_t id = field_i64(r, i, 0, &ok);
        int64_t avail = field_i64(r, i, 1, &ok);
        int64_t cap = field_i64(r, i, 2, &ok);
        int64_t version = field_i64(r, i, 3, &ok);
        struct sc_event_entry *e;
        struct sc_event_state st;

        if (!ok || id <= 0 || avail < 0 || cap < 0 || avail > cap ||
            cap > INT32_MAX || version < 0) {
            bad++;
            continue;
        }
        e = entry_for(l, id, &inserted);
        if (e == NULL) {
            continue;
        }
        sc_registry_event_read(e, &st);
        if (!inserted && (st.flags & SC_EVENT_LIVE) &&
            (version <= st.version || only_new)) {
            continue;
        }
        sc_registry_event_write(e, SC_EVENT_LIVE, (int32_t)avail,
                                (int32_t)cap, version);
        if (!inserted) {
            /* changed while we were away: tell its subscribers */
            publish(l, e, SC_CHANGE_SEAT_UPDATE, id, (int32_t)avail,
                    (int32_t)cap, version, 0);
            changed++;
        }
    }
    if (bad > 0) {
        sc_log(SC_LOG_WARN, "snapshot: ignored %d rows of "
               "seatcast_seat_state with impossible values", bad);
    }
    sc_log(SC_LOG_INFO, "snapshot: %d events, %d changed since the last one",
           rows, changed);
    wake_workers(l);
}

/* ------------------------------------------------------------------ */
/* Connection steps                                                     */

static void
watch(struct listener *l, short what)
{
    int fd = PQsocket(l->pg);

    if (l->ev_sock != NULL) {
        event_free(l->ev_sock);
        l->ev_sock = NULL;
    }
    if (fd < 0) {
        return;
    }
    l->ev_sock = event_new(l->base, fd, what | EV_PERSIST, on_socket, l);
    if (l->ev_sock != NULL) {
        event_add(l->ev_sock, NULL);
    }
}

static int
send_step(struct listener *l, enum step step, const char *sql)
{
    l->step = step;
    if (!PQsendQuery(l->pg, sql)) {
        return -1;
    }
    /* non-blocking: the query may still sit in libpq's buffer */
    if (PQflush(l->pg) < 0) {
        return -1;
    }
    return 0;
}

static void
next_step(struct listener *l)
{
    char sql[256];

    switch (l->step) {
    case STEP_CONNECT:
        if (send_step(l, STEP_RECOVERY, "SELECT pg_is_in_recovery()") != 0) {
            drop_connection(l, PQerrorMessage(l->pg));
        }
        return;
    case STEP_RECOVERY:
        snprintf(sql, sizeof(sql), "LISTEN %s; NOTIFY %s", l->probe_channel,
                 l->probe_channel);
        l->probe_seen = false;
        l->probe_deadline = sc_mono_ms() + PROBE_TIMEOUT_MS;
        if (send_step(l, STEP_PROBE, sql) != 0) {
            drop_connection(l, PQerrorMessage(l->pg));
        }
        return;
    case STEP_PROBE:
        /* waits in on_socket/on_tick until the probe arrives */
        return;
    case STEP_LISTEN:
        if (send_step(l, STEP_SNAPSHOT,
                      "SELECT event_id, available_seats, seat_capacity, "
                      "version FROM seatcast_seat_state") != 0) {
            drop_connection(l, PQerrorMessage(l->pg));
        }
        return;
    case STEP_SNAPSHOT:
        if (send_step(l, STEP_REVOKED,
                      "SELECT jti FROM seatcast_revoked_tokens WHERE "
                      "expires_at IS NULL OR expires_at > now()") != 0) {
            drop_connection(l, PQerrorMessage(l->pg));
        }
        return;
    case STEP_REVOKED:
        l->step = STEP_READY;
        sc_listener_ready(l);
        sc_log(SC_LOG_INFO, "listening for notifications on \"%s\"",
               l->cfg->channel);
        drain_notifications(l);
        return;
    default:
        return;
    }
}

static void
probe_done(struct listener *l)
{
    char sql[256];
    char *ident = PQescapeIdentifier(l->pg, l->cfg->channel,
                                     strlen(l->cfg->channel));

    if (ident == NULL) {
        drop_connection(l, PQerrorMessage(l->pg));
        return;
    }
    snprintf(sql, sizeof(sql), "UNLISTEN %s; LISTEN %s", l->probe_channel,
             ident);
    PQfreemem(ident);
    if (send_step(l, STEP_LISTEN, sql) != 0) {
        drop_connection(l, PQerrorMessage(l->pg));
    }
}

/* One result of the current step; -1 if the connection was dropped. */
static int
on_result(struct listener *l, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    char why[512];

    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
        if (l->step == STEP_SNAPSHOT) {
            snprintf(why, sizeof(why), "could not read seatcast_seat_state "
                     "(is sql/notify.sql installed?): %s",
                     PQresultErrorMessage(r));
        } else if (l->step == STEP_REVOKED) {
            snprintf(why, sizeof(why), "could not read "
                     "seatcast_revoked_tokens (is sql/notify.sql "
                     "installed?): %s", PQresultErrorMessage(r));
        }
        drop_connection(l, why);
        return -1;
    }
    if (l->step == STEP_RECOVERY && PQntuples(r) == 1 &&
        strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        drop_connection(l, "the server is a standby (pg_is_in_recovery): "
                           "seatcast needs the primary to LISTEN");
        return -1;
    }
    if (l->step == STEP_SNAPSHOT) {
        apply_snapshot(l, r, false);
    }
    if (l->step == STEP_REVOKED) {
        apply_revoked(l, r);
    }
    return 0;
}

static void
consume(struct listener *l)
{
    PGresult *r;

    if (!PQconsumeInput(l->pg)) {
        drop_connection(l, PQerrorMessage(l->pg));
        return;
    }
    if (l->step == STEP_LOGICAL) {
        sc_logical_consume(l);
        return;
    }
    while (l->step != STEP_READY && l->step != STEP_IDLE &&
           !PQisBusy(l->pg)) {
        r = PQgetResult(l->pg);
        if (r == NULL) {
            /* the step's query is complete */
            if (l->step == STEP_PROBE) {
                break;
            }
            next_step(l);
            continue;
        }
        int rc = on_result(l, r);
        PQclear(r);
        if (rc != 0) {
            return;
        }
    }
    if (l->step == STEP_PROBE) {
        PGnotify *nf;
        while ((nf = PQnotifies(l->pg)) != NULL) {
            if (strcmp(nf->relname, l->probe_channel) == 0) {
                l->probe_seen = true;
            }
            PQfreemem(nf);
        }
        if (l->probe_seen && !PQisBusy(l->pg)) {
            sc_log(SC_LOG_DEBUG, "notification round trip proven");
            probe_done(l);
        }
        return;
    }
    if (l->step == STEP_READY) {
        ready_input(l);
    }
}

static void
continue_connect(struct listener *l)
{
    switch (PQconnectPoll(l->pg)) {
    case PGRES_POLLING_READING:
        watch(l, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        watch(l, EV_WRITE);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(l->pg, 1) != 0) {
            drop_connection(l, PQerrorMessage(l->pg));
            return;
        }
        watch(l, EV_READ);
        sc_log(SC_LOG_INFO, "connected to PostgreSQL %d (%s:%s)",
               PQserverVersion(l->pg), PQhost(l->pg), PQport(l->pg));
        if (l->cfg->source == SC_SOURCE_LOGICAL) {
            l->step = STEP_LOGICAL;
            sc_logical_start(l);
            return;
        }
        next_step(l);
        return;
    default:
        if (l->cfg->source == SC_SOURCE_LOGICAL) {
            char why[512];
            drop_connection(l, sc_logical_explain(PQerrorMessage(l->pg), why,
                                                  sizeof(why)));
            return;
        }
        drop_connection(l, PQerrorMessage(l->pg));
        return;
    }
}

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void)fd;
    (void)what;
    if (l->step == STEP_CONNECT) {
        continue_connect(l);
        return;
    }
    if (PQflush(l->pg) < 0) {
        drop_connection(l, PQerrorMessage(l->pg));
        return;
    }
    consume(l);
}

static void
start_connect(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    const char *keys[4], *vals[4];
    int n = 0;

    (void)fd;
    (void)what;
    if (l->cfg->database[0] != '\0') {
        keys[n] = "dbname";
        vals[n++] = l->cfg->database;
    }
    keys[n] = "application_name";
    vals[n++] = "seatcast listener";
    if (l->cfg->source == SC_SOURCE_LOGICAL) {
        /* a logical walsender; it runs SQL too (the checks, the snapshot) */
        keys[n] = "replication";
        vals[n++] = "database";
    }
    keys[n] = NULL;
    vals[n] = NULL;
    atomic_store(&l->slot->db_state, SC_DB_CONNECTING);
    l->pg = PQconnectStartParams(keys, vals, 1);
    if (l->pg == NULL) {
        drop_connection(l, "out of memory");
        return;
    }
    if (PQstatus(l->pg) == CONNECTION_BAD) {
        drop_connection(l, PQerrorMessage(l->pg));
        return;
    }
    l->step = STEP_CONNECT;
    continue_connect(l);
}

static void
drop_connection(struct listener *l, const char *why)
{
    struct timeval tv;
    char msg[512];
    size_t n;

    snprintf(msg, sizeof(msg), "%s", why && why[0] ? why : "unknown error");
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        msg[--n] = '\0';
    }
    if (l->ev_sock != NULL) {
        event_free(l->ev_sock);
        l->ev_sock = NULL;
    }
    if (l->pg != NULL) {
        PQfinish(l->pg);
        l->pg = NULL;
    }
    if (l->cfg->source == SC_SOURCE_LOGICAL) {
        sc_logical_reset(l);
    }
    /* the snapshot after the reconnect covers what the hints named */
    l->nhints = 0;
    l->nchecking = 0;
    l->verifying = false;
    if (atomic_load(&l->slot->db_state) == SC_DB_CONNECTED) {
        atomic_fetch_add_explicit(&l->slot->reconnects, 1, RELAXED);
    }
    atomic_store(&l->slot->db_state, SC_DB_DISCONNECTED);
    /* clients wait for nothing more: they are served what the table
     * holds (a restarted listener's table is still full) */
    atomic_store(&l->reg->hdr->settled, 1);
    l->step = STEP_IDLE;
    l->backoff_ms = l->backoff_ms == 0 ? BACKOFF_MIN_MS : l->backoff_ms * 2;
    if (l->backoff_ms > BACKOFF_MAX_MS) {
        l->backoff_ms = BACKOFF_MAX_MS;
    }
    sc_log(SC_LOG_ERR, "database connection lost or refused: %s; retrying "
           "in %llu ms", msg, (unsigned long long)l->backoff_ms);
    tv.tv_sec = (time_t)(l->backoff_ms / 1000);
    tv.tv_usec = (suseconds_t)(l->backoff_ms % 1000) * 1000;
    event_add(l->ev_retry, &tv);
}

/* ------------------------------------------------------------------ */
/* For logical.c (listener_int.h)                                      */

void
sc_listener_drop(struct listener *l, const char *why)
{
    drop_connection(l, why);
}

void
sc_listener_apply(struct listener *l, const struct sc_notify *n)
{
    apply(l, n);
}

void
sc_listener_wake(struct listener *l)
{
    wake_workers(l);
}

void
sc_listener_snapshot(struct listener *l, const PGresult *r, bool only_new)
{
    apply_snapshot(l, r, only_new);
}

void
sc_listener_revoked(struct listener *l, const PGresult *r)
{
    apply_revoked(l, r);
}

void
sc_listener_watch(struct listener *l, short what)
{
    watch(l, what);
}

void
sc_listener_ready(struct listener *l)
{
    l->backoff_ms = 0;
    atomic_store(&l->slot->db_state, SC_DB_CONNECTED);
    atomic_store(&l->reg->hdr->settled, 1);
}

/* ------------------------------------------------------------------ */
/* Process                                                              */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void)fd;
    (void)what;
    atomic_store_explicit(&l->slot->heartbeat_ms, sc_mono_ms(), RELAXED);
    if (l->step == STEP_LOGICAL) {
        sc_logical_tick(l);
    }
    if (l->step == STEP_PROBE && sc_mono_ms() >= l->probe_deadline) {
        drop_connection(l, "LISTEN/NOTIFY round trip did not complete in "
                           "5 s: is a transaction-mode pooler between "
                           "seatcast and PostgreSQL?");
    }
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct listener *l = arg;

    (void)sig;
    (void)what;
    atomic_store(&l->slot->state, SC_STATE_STOPPING);
    event_base_loopbreak(l->base);
}

void
sc_listener_main(const struct sc_child_ctx *ctx)
{
    static struct listener l;
    struct timeval tick = {0, 250000};
    uint32_t rnd = 0;

    sc_proc_set_title("seatcast: listener", "sc-listener");
    sc_log_set_role("listener");
    memset(&l, 0, sizeof(l));
    l.ctx = ctx;
    l.cfg = ctx->cfg;
    l.reg = ctx->reg;
    l.slot = sc_registry_listener(ctx->reg);
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        rnd = (uint32_t)getpid();
    }
    snprintf(l.probe_channel, sizeof(l.probe_channel),
             "seatcast_probe_%d_%08x", (int)getpid(), rnd);
    atomic_store(&l.slot->pid, (int32_t)getpid());
    atomic_store(&l.slot->source, (uint32_t)l.cfg->source);
    atomic_store(&l.slot->state, SC_STATE_STARTING);
    atomic_store(&l.slot->heartbeat_ms, sc_mono_ms());
    l.base = event_base_new();
    if (l.base == NULL) {
        sc_log(SC_LOG_ERR, "could not create the event loop");
        exit(1);
    }
    l.ev_retry = evtimer_new(l.base, start_connect, &l);
    l.ev_tick = event_new(l.base, -1, EV_PERSIST, on_tick, &l);
    l.ev_term = evsignal_new(l.base, SIGTERM, on_stop, &l);
    l.ev_int = evsignal_new(l.base, SIGINT, on_stop, &l);
    if (l.ev_retry == NULL || l.ev_tick == NULL || l.ev_term == NULL ||
        l.ev_int == NULL) {
        sc_log(SC_LOG_ERR, "could not create the listener's events");
        exit(1);
    }
    event_add(l.ev_tick, &tick);
    event_add(l.ev_term, NULL);
    event_add(l.ev_int, NULL);
    signal(SIGHUP, SIG_IGN); /* nothing to reload: conninfo is fixed */
    atomic_store(&l.slot->state, SC_STATE_RUNNING);
    start_connect(-1, 0, &l);
    event_base_dispatch(l.base);
    if (l.ev_sock != NULL) {
        event_free(l.ev_sock);
    }
    if (l.pg != NULL) {
        PQfinish(l.pg);
    }
    sc_logical_free(&l);
    free_verify_rows(&l);
    free(l.hints);
    free(l.checking);
    free(l.rows);
    free(l.revoked);
    atomic_store(&l.slot->db_state, SC_DB_DISCONNECTED);
    event_free(l.ev_retry);
    event_free(l.ev_tick);
    event_free(l.ev_term);
    event_free(l.ev_int);
    event_base_free(l.base);
    sc_log(SC_LOG_INFO, "listener stopped");
    exit(0);
}
