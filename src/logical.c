/*
 * logical.c - the listener's --source logical (see logical.h)
 *
 * listener.c connects with replication=database (a logical walsender that
 * also runs SQL) and hands the connection over.  Steps, each one query sent
 * without blocking, its result read in sc_logical_consume():
 *
 *   IDENTIFY   IDENTIFY_SYSTEM                 the server's WAL position
 *   CHECK      one SELECT: wal_level, pg_is_in_recovery(), the role's
 *              REPLICATION, the publication, the slot (exists, plugin,
 *              database, active pid)   -> an error naming what is missing
 *   CREATE     CREATE_REPLICATION_SLOT ... LOGICAL pgoutput, if missing
 *   SNAPSHOT   SELECT ... FROM seatcast_seat_state
 *   REVOKED    SELECT jti FROM seatcast_revoked_tokens
 *   START      START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1',
 *              publication_names 'p')   -> COPY BOTH
 *   STREAM     CopyData: XLogData ('w') and keepalives ('k')
 *
 * No change is lost between the snapshot and the stream, and none is
 * published twice.  The stream starts at the slot's confirmed position,
 * which is never ahead of the registry: a position is confirmed only after
 * every transaction up to it has been published on the ring.  So when the
 * slot already existed, the registry plus the stream is complete, and the
 * snapshot only adds the events the registry does not track yet (a new
 * registry: nobody is subscribed to them).  A transaction replayed after a
 * crash, or one older than the snapshot, carries versions the registry has
 * already applied and is skipped by sc_listener_apply()'s version check.  A
 * new slot knows nothing from before its creation: then the snapshot is a
 * full resynchronisation (a seat_update to the subscribers of every event
 * that changed), as after a NOTIFY outage.
 *
 * Mapping (sql/logical.sql, NOTES): the changes of one transaction are
 * buffered from Begin to Commit and applied at the Commit, in order, then
 * the workers are woken and the commit's end position becomes confirmable.
 * A bookings row inserted 'confirmed', or updated to 'cancelled', labels
 * the next change of its event's row in the same transaction
 * booking_created / booking_cancelled; an events row inserted or updated is
 * that label or seat_update with the row's counts and version; an events
 * row deleted is event_deleted (unsubscribed); a seatcast_revoked_tokens
 * row inserted is token_revoked.
 *
 * Standby status updates carry the flushed (= published) position: after
 * every batch of input that advanced it, when the server asks, and every
 * few seconds with a request for a keepalive, whose WAL end is confirmed
 * too when no transaction is in progress (so that the slot advances over
 * WAL of other tables).  The server's WAL end minus that position is the
 * slot's lag, shown by /metrics and `seatcast stats`.
 */
#include "logical.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "listener_int.h"
#include "log.h"
#include "notify_msg.h"
#include "pgoutput.h"
#include "registry.h"
#include "text.h"

#define RELAXED memory_order_relaxed
#define STATUS_EVERY_MS 5000
#define MAX_RELS 64

enum lstep {
    L_IDLE,
    L_IDENTIFY,
    L_CHECK,
    L_CREATE,
    L_SNAPSHOT,
    L_REVOKED,
    L_START,
    L_STREAM
};

enum role { REL_OTHER, REL_EVENTS, REL_BOOKINGS, REL_REVOKED };

/* Columns read, by role: events id, available_seats, seat_capacity,
   version; bookings event_id, status; revoked jti. */
#define NCOLS 4

struct rel {
    uint32_t oid;
    enum role role;
    int col[NCOLS]; /* index in the tuple, -1 if the table lacks it */
};

struct label {
    int64_t event_id;
    enum sc_notify_type type;
};

struct sc_logical {
    enum lstep step;
    bool slot_created;
    struct rel rels[MAX_RELS];
    size_t nrels;
    /* the transaction being received */
    bool in_txn;
    int64_t txn_ms;
    struct sc_notify *changes;
    size_t nchanges, cap;
    struct label *labels;
    size_t nlabels, lcap;
    /* positions */
    uint64_t received;    /* highest WAL end received */
    uint64_t server_end;  /* the server's WAL end, as last reported */
    uint64_t flushed;     /* every transaction up to here is published */
    uint64_t reported;    /* flush position last sent */
    uint64_t status_ms;   /* when the last status update was sent */
    bool want_write;      /* output waits in libpq's buffer */
    uint64_t bad_logged_ms;
};

static const char *const role_cols[][NCOLS] = {
    [REL_OTHER] = {NULL, NULL, NULL, NULL},
    [REL_EVENTS] = {"id", "available_seats", "seat_capacity", "version"},
    [REL_BOOKINGS] = {"event_id", "status", NULL, NULL},
    [REL_REVOKED] = {"jti", NULL, NULL, NULL},
};

/* ------------------------------------------------------------------ */
/* Positions and status updates                                         */

static void
publish_positions(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    uint64_t lag = lg->server_end > lg->flushed ? lg->server_end - lg->flushed
                                                : 0;

    atomic_store_explicit(&l->slot->slot_lag_bytes, lag, RELAXED);
    atomic_store_explicit(&l->slot->confirmed_lsn, lg->reported, RELAXED);
}

static int
flush_output(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    int rc = PQflush(l->pg);

    if (rc < 0) {
        sc_listener_drop(l, PQerrorMessage(l->pg));
        return -1;
    }
    if (rc == 1 && !lg->want_write) {
        lg->want_write = true;
        sc_listener_watch(l, EV_READ | EV_WRITE);
    } else if (rc == 0 && lg->want_write) {
        lg->want_write = false;
        sc_listener_watch(l, EV_READ);
    }
    return 0;
}

/* Sends a standby status update; -1 if the connection was dropped. */
static int
send_status(struct listener *l, bool reply)
{
    struct sc_logical *lg = l->lg;
    uint8_t st[SC_PGO_STATUS_LEN];
    uint64_t write = lg->received > lg->flushed ? lg->received : lg->flushed;

    sc_pgo_status_build(st, write, lg->flushed, lg->flushed,
                        sc_pgo_time_from_unix_us((int64_t)sc_wall_ms() * 1000),
                        reply);
    if (PQputCopyData(l->pg, (const char *)st, sizeof(st)) != 1) {
        sc_listener_drop(l, PQerrorMessage(l->pg));
        return -1;
    }
    lg->reported = lg->flushed;
    lg->status_ms = sc_mono_ms();
    publish_positions(l);
    return flush_output(l);
}

/* ------------------------------------------------------------------ */
/* Mapping rows to changes                                              */

static struct rel *
rel_find(struct sc_logical *lg, uint32_t oid)
{
    for (size_t i = 0; i < lg->nrels; i++) {
        if (lg->rels[i].oid == oid) {
            return &lg->rels[i];
        }
    }
    return NULL;
}

static void
on_relation(struct listener *l, const struct sc_pgo_msg *m)
{
    struct sc_logical *lg = l->lg;
    struct rel *r = rel_find(lg, m->u.relation.oid);
    struct sc_pgo_iter it;
    struct sc_pgo_column col;
    const char *name = m->u.relation.relname;
    int idx = 0;

    if (r == NULL) {
        if (lg->nrels == MAX_RELS) {
            /* only three tables matter; forget the others */
            size_t keep = 0;
            for (size_t i = 0; i < lg->nrels; i++) {
                if (lg->rels[i].role != REL_OTHER) {
                    lg->rels[keep++] = lg->rels[i];
                }
            }
            lg->nrels = keep;
        }
        r = &lg->rels[lg->nrels++];
    }
    memset(r, 0, sizeof(*r));
    r->oid = m->u.relation.oid;
    r->role = strcmp(name, "events") == 0     ? REL_EVENTS
              : strcmp(name, "bookings") == 0 ? REL_BOOKINGS
              : strcmp(name, "seatcast_revoked_tokens") == 0 ? REL_REVOKED
                                                              : REL_OTHER;
    for (int c = 0; c < NCOLS; c++) {
        r->col[c] = -1;
    }
    sc_pgo_columns_iter(m, &it);
    while (sc_pgo_column_next(&it, &col) == 1) {
        for (int c = 0; c < NCOLS; c++) {
            const char *want = role_cols[r->role][c];
            if (want != NULL && strcmp(col.name, want) == 0) {
                r->col[c] = idx;
            }
        }
        idx++;
    }
    for (int c = 0; c < NCOLS; c++) {
        if (role_cols[r->role][c] != NULL && r->col[c] < 0) {
            sc_log(SC_LOG_ERR, "published table %s.%s has no column \"%s\": "
                   "its changes are ignored (see sql/logical.sql)",
                   m->u.relation.nspname, name, role_cols[r->role][c]);
            r->role = REL_OTHER;
            break;
        }
    }
}

/* The first `upto` wanted columns of a tuple as text (NUL-terminated
   copies); false if one is NULL, unchanged-TOAST, too long or missing. */
static bool
columns(const struct rel *r, const struct sc_pgo_tuple *t, int upto,
        char out[NCOLS][SC_NOTIFY_JTI_MAX + 2])
{
    struct sc_pgo_iter it;
    struct sc_pgo_value v;
    int idx = 0, found = 0, need = 0;

    for (int c = 0; c < NCOLS; c++) {
        out[c][0] = '\0';
        need += c < upto && r->col[c] >= 0;
    }
    sc_pgo_tuple_iter(t, &it);
    while (sc_pgo_tuple_next(&it, &v) == 1) {
        for (int c = 0; c < upto; c++) {
            if (r->col[c] != idx) {
                continue;
            }
            if (v.kind != 't' || v.len > SC_NOTIFY_JTI_MAX) {
                return false;
            }
            memcpy(out[c], v.data, v.len);
            out[c][v.len] = '\0';
            found++;
        }
        idx++;
    }
    return found == need;
}

static bool
to_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s[0] == '\0') {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static void
bad_row(struct listener *l, const char *what)
{
    struct sc_logical *lg = l->lg;
    uint64_t now = sc_mono_ms();

    atomic_fetch_add_explicit(&l->slot->malformed, 1, RELAXED);
    if (lg->bad_logged_ms == 0 || now - lg->bad_logged_ms > 10000) {
        lg->bad_logged_ms = now;
        sc_log(SC_LOG_WARN, "ignored a change with impossible values: %s",
               what);
    }
}

static struct sc_notify *
add_change(struct listener *l)
{
    struct sc_logical *lg = l->lg;

    if (lg->nchanges == lg->cap) {
        size_t cap = lg->cap ? lg->cap * 2 : 64;
        struct sc_notify *c = realloc(lg->changes, cap * sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
        lg->changes = c;
        lg->cap = cap;
    }
    memset(&lg->changes[lg->nchanges], 0, sizeof(lg->changes[0]));
    lg->changes[lg->nchanges].ts_ms = lg->txn_ms;
    return &lg->changes[lg->nchanges++];
}

static int
add_label(struct sc_logical *lg, int64_t event_id, enum sc_notify_type type)
{
    if (lg->nlabels == lg->lcap) {
        size_t cap = lg->lcap ? lg->lcap * 2 : 16;
        struct label *b = realloc(lg->labels, cap * sizeof(*b));
        if (b == NULL) {
            return -1;
        }
        lg->labels = b;
        lg->lcap = cap;
    }
    lg->labels[lg->nlabels].event_id = event_id;
    lg->labels[lg->nlabels].type = type;
    lg->nlabels++;
    return 0;
}

/* The label of event_id's next row change (consumed), or seat_update. */
static enum sc_notify_type
take_label(struct sc_logical *lg, int64_t event_id)
{
    for (size_t i = 0; i < lg->nlabels; i++) {
        if (lg->labels[i].event_id == event_id) {
            enum sc_notify_type t = lg->labels[i].type;
            memmove(&lg->labels[i], &lg->labels[i + 1],
                    (lg->nlabels - i - 1) * sizeof(lg->labels[0]));
            lg->nlabels--;
            return t;
        }
    }
    return SC_NOTIFY_SEAT_UPDATE;
}

/* One Insert/Update/Delete; -1 if out of memory (the connection drops). */
static int
on_change(struct listener *l, const struct sc_pgo_msg *m)
{
    struct sc_logical *lg = l->lg;
    const struct rel *r = rel_find(lg, m->u.change.relid);
    char v[NCOLS][SC_NOTIFY_JTI_MAX + 2];
    struct sc_notify *n;
    int64_t id, avail, cap, version;

    if (r == NULL) {
        sc_listener_drop(l, "replication stream: a change of a relation "
                            "that was never described");
        return -1;
    }
    switch (r->role) {
    case REL_EVENTS:
        if (m->type == SC_PGO_DELETE) {
            if (!columns(r, &m->u.change.old_tuple, 1, v) ||
                !to_i64(v[0], 1, (int64_t)SC_EVENT_ID_MAX, &id)) {
                bad_row(l, "events row deleted without its id");
                return 0;
            }
            n = add_change(l);
            if (n == NULL) {
                goto oom;
            }
            n->type = SC_NOTIFY_EVENT_DELETED;
            n->event_id = (uint64_t)id;
            return 0;
        }
        if (!columns(r, &m->u.change.new_tuple, NCOLS, v) ||
            !to_i64(v[0], 1, (int64_t)SC_EVENT_ID_MAX, &id) ||
            !to_i64(v[2], 0, INT32_MAX, &cap) ||
            !to_i64(v[1], 0, cap, &avail) ||
            !to_i64(v[3], 0, INT64_MAX, &version)) {
            bad_row(l, "an events row with a NULL or out-of-range id, "
                       "available_seats, seat_capacity or version");
            return 0;
        }
        n = add_change(l);
        if (n == NULL) {
            goto oom;
        }
        n->type = take_label(lg, id);
        n->event_id = (uint64_t)id;
        n->available_seats = (int32_t)avail;
        n->seat_capacity = (int32_t)cap;
        n->version = version;
        n->has_version = true;
        return 0;
    case REL_BOOKINGS:
        if (m->type == SC_PGO_DELETE) {
            return 0; /* the event row's change follows: seat_update */
        }
        if (!columns(r, &m->u.change.new_tuple, NCOLS, v) ||
            !to_i64(v[0], 1, (int64_t)SC_EVENT_ID_MAX, &id)) {
            return 0; /* no seats move without an event */
        }
        if (m->type == SC_PGO_INSERT && strcmp(v[1], "confirmed") == 0) {
            return add_label(lg, id, SC_NOTIFY_BOOKING_CREATED) == 0 ? 0 : -2;
        }
        if (m->type == SC_PGO_UPDATE && strcmp(v[1], "cancelled") == 0) {
            return add_label(lg, id, SC_NOTIFY_BOOKING_CANCELLED) == 0 ? 0
                                                                        : -2;
        }
        return 0;
    case REL_REVOKED:
        if (m->type != SC_PGO_INSERT) {
            return 0;
        }
        if (!columns(r, &m->u.change.new_tuple, NCOLS, v) || v[0][0] == '\0' ||
            strlen(v[0]) > SC_NOTIFY_JTI_MAX) {
            bad_row(l, "a seatcast_revoked_tokens row without a valid jti");
            return 0;
        }
        for (const char *p = v[0]; *p != '\0'; p++) {
            if (*p < 0x20 || *p > 0x7e) {
                bad_row(l, "a jti that is not printable ASCII");
                return 0;
            }
        }
        n = add_change(l);
        if (n == NULL) {
            goto oom;
        }
        n->type = SC_NOTIFY_TOKEN_REVOKED;
        memcpy(n->jti, v[0], strlen(v[0]) + 1);
        return 0;
    default:
        return 0;
    }
oom:
    sc_listener_drop(l, "out of memory buffering a transaction");
    return -1;
}

/* Applies the transaction's changes in order; its end is now flushed. */
static void
on_commit(struct listener *l, const struct sc_pgo_msg *m)
{
    struct sc_logical *lg = l->lg;
    uint64_t now = sc_wall_ms();

    for (size_t i = 0; i < lg->nchanges; i++) {
        atomic_fetch_add_explicit(&l->slot->notifications, 1, RELAXED);
        sc_listener_apply(l, &lg->changes[i]);
    }
    if (lg->nchanges > 0) {
        atomic_store_explicit(&l->slot->last_notification_ms, now, RELAXED);
    }
    atomic_fetch_add_explicit(&l->slot->transactions, 1, RELAXED);
    lg->nchanges = 0;
    lg->nlabels = 0;
    lg->in_txn = false;
    if (m->u.commit.end_lsn > lg->flushed) {
        lg->flushed = m->u.commit.end_lsn;
    }
}

/* One XLogData; -1 if the connection was dropped. */
static int
on_xlogdata(struct listener *l, const struct sc_pgo_copy *c)
{
    struct sc_logical *lg = l->lg;
    struct sc_pgo_msg m;
    const char *why;
    char msg[256];

    if (sc_pgo_decode(c->data, c->len, &m, &why) != 0) {
        atomic_fetch_add_explicit(&l->slot->malformed, 1, RELAXED);
        snprintf(msg, sizeof(msg), "replication stream: undecodable "
                 "pgoutput message (%zu bytes, type 0x%02x): %s", c->len,
                 c->len > 0 ? c->data[0] : 0, why);
        sc_listener_drop(l, msg);
        return -1;
    }
    switch (m.type) {
    case SC_PGO_BEGIN:
        if (lg->in_txn) {
            sc_listener_drop(l, "replication stream: Begin inside a "
                                "transaction");
            return -1;
        }
        lg->in_txn = true;
        lg->nchanges = 0;
        lg->nlabels = 0;
        lg->txn_ms = sc_pgo_time_to_unix_ms(m.u.begin.commit_time);
        if (lg->txn_ms < 0) {
            lg->txn_ms = 0;
        }
        return 0;
    case SC_PGO_COMMIT:
        if (!lg->in_txn) {
            sc_listener_drop(l, "replication stream: Commit outside a "
                                "transaction");
            return -1;
        }
        on_commit(l, &m);
        return 0;
    case SC_PGO_RELATION:
        on_relation(l, &m);
        return 0;
    case SC_PGO_INSERT:
    case SC_PGO_UPDATE:
    case SC_PGO_DELETE:
        if (!lg->in_txn) {
            sc_listener_drop(l, "replication stream: a change outside a "
                                "transaction");
            return -1;
        }
        {
            int rc = on_change(l, &m);
            if (rc == -2) {
                sc_listener_drop(l, "out of memory buffering a transaction");
            }
            return rc < 0 ? -1 : 0;
        }
    case SC_PGO_TRUNCATE:
        for (uint32_t i = 0; i < m.u.truncate.nrels; i++) {
            const struct rel *r = rel_find(lg, sc_pgo_truncate_relid(&m, i));
            if (r != NULL && r->role != REL_OTHER) {
                sc_log(SC_LOG_WARN, "a published table was truncated: "
                       "TRUNCATE is not reported to clients");
                break;
            }
        }
        return 0;
    default:
        return 0; /* Origin, Type, Message: nothing to map */
    }
}

/* One CopyData; -1 if the connection was dropped. */
static int
on_copy(struct listener *l, const uint8_t *buf, size_t len)
{
    struct sc_logical *lg = l->lg;
    struct sc_pgo_copy c;
    const char *why;
    char msg[256];

    if (sc_pgo_copy_decode(buf, len, &c, &why) != 0) {
        snprintf(msg, sizeof(msg), "replication stream: bad CopyData "
                 "(%zu bytes): %s", len, why);
        sc_listener_drop(l, msg);
        return -1;
    }
    if (c.wal_end > lg->server_end) {
        lg->server_end = c.wal_end;
    }
    if (c.type == 'k') {
        /* everything before the keepalive was sent before it: between
           transactions, its position is as good as ours */
        if (!lg->in_txn && c.wal_end > lg->flushed) {
            lg->flushed = c.wal_end;
        }
        if (c.wal_end > lg->received) {
            lg->received = c.wal_end;
        }
        return c.reply ? send_status(l, false) : 0;
    }
    if (c.wal_end > lg->received) {
        lg->received = c.wal_end;
    }
    return on_xlogdata(l, &c);
}

static void
read_stream(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    char *buf;
    int n;

    for (;;) {
        n = PQgetCopyData(l->pg, &buf, 1);
        if (n == 0) {
            break;
        }
        if (n == -1) {
            /* the server ended the COPY: its result says why */
            PGresult *r = PQgetResult(l->pg);
            char msg[512];
            snprintf(msg, sizeof(msg), "the server ended the replication "
                     "stream: %s",
                     r != NULL ? PQresultErrorMessage(r) : "no reason");
            PQclear(r);
            sc_listener_wake(l);
            sc_listener_drop(l, msg);
            return;
        }
        if (n < 0) {
            sc_listener_wake(l);
            sc_listener_drop(l, PQerrorMessage(l->pg));
            return;
        }
        int rc = on_copy(l, (const uint8_t *)buf, (size_t)n);
        PQfreemem(buf);
        if (rc != 0) {
            sc_listener_wake(l);
            return;
        }
    }
    sc_listener_wake(l);
    if (lg->flushed > lg->reported) {
        (void)send_status(l, false);
    } else {
        publish_positions(l);
    }
}

/* ------------------------------------------------------------------ */
/* Setup steps                                                          */

static int
send_step(struct listener *l, enum lstep step, const char *sql)
{
    l->lg->step = step;
    if (!PQsendQuery(l->pg, sql) || PQflush(l->pg) < 0) {
        sc_listener_drop(l, PQerrorMessage(l->pg));
        return -1;
    }
    return 0;
}

static void
send_check(struct listener *l)
{
    char sql[1024];
    char *pub = PQescapeLiteral(l->pg, l->cfg->publication,
                                strlen(l->cfg->publication));
    char *slot = PQescapeLiteral(l->pg, l->cfg->slot, strlen(l->cfg->slot));

    if (pub == NULL || slot == NULL) {
        PQfreemem(pub);
        PQfreemem(slot);
        sc_listener_drop(l, PQerrorMessage(l->pg));
        return;
    }
    snprintf(sql, sizeof(sql),
             "SELECT current_setting('wal_level'), pg_is_in_recovery(), "
             "(SELECT rolreplication OR rolsuper FROM pg_roles "
             "WHERE rolname = current_user), "
             "EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s), "
             "s.slot_name IS NOT NULL, s.active_pid, s.plugin, s.slot_type, "
             "s.database, current_database(), current_user, "
             "s.confirmed_flush_lsn "
             "FROM (SELECT 1) AS one "
             "LEFT JOIN pg_replication_slots s ON s.slot_name = %s",
             pub, slot);
    PQfreemem(pub);
    PQfreemem(slot);
    send_step(l, L_CHECK, sql);
}

/* The CHECK row: 0, or -1 after dropping with the reason. */
static int
check_row(struct listener *l, const PGresult *r)
{
    const struct sc_config *cfg = l->cfg;
    char why[512];

    if (PQntuples(r) != 1 || PQnfields(r) != 12) {
        sc_listener_drop(l, "unexpected answer to the setup checks");
        return -1;
    }
#define V(c) PQgetvalue(r, 0, (c))
    if (strcmp(V(0), "logical") != 0) {
        snprintf(why, sizeof(why), "wal_level is \"%s\": --source logical "
                 "needs wal_level = logical in postgresql.conf (then "
                 "restart PostgreSQL)", V(0));
    } else if (strcmp(V(1), "t") == 0) {
        snprintf(why, sizeof(why), "the server is a standby "
                 "(pg_is_in_recovery): seatcast needs the primary");
    } else if (strcmp(V(2), "t") != 0) {
        snprintf(why, sizeof(why), "role \"%s\" lacks the REPLICATION "
                 "attribute (ALTER ROLE \"%s\" REPLICATION)", V(10), V(10));
    } else if (strcmp(V(3), "t") != 0) {
        snprintf(why, sizeof(why), "publication \"%s\" does not exist in "
                 "database \"%s\" (apply sql/logical.sql, or set "
                 "--publication)", cfg->publication, V(9));
    } else if (strcmp(V(4), "t") == 0 && !PQgetisnull(r, 0, 5)) {
        snprintf(why, sizeof(why), "replication slot \"%s\" is in use by "
                 "another process (pid %s): another seatcast instance with "
                 "the same --slot?", cfg->slot, V(5));
    } else if (strcmp(V(4), "t") == 0 &&
               (strcmp(V(7), "logical") != 0 || strcmp(V(6), "pgoutput") != 0
                || strcmp(V(8), V(9)) != 0)) {
        snprintf(why, sizeof(why), "replication slot \"%s\" exists but is "
                 "not a pgoutput slot of database \"%s\" (type %s, plugin "
                 "%s, database %s): choose another --slot, or drop it with "
                 "SELECT pg_drop_replication_slot('%s')", cfg->slot, V(9),
                 V(7), V(6)[0] ? V(6) : "none", V(8)[0] ? V(8) : "none",
                 cfg->slot);
    } else {
        l->lg->slot_created = strcmp(V(4), "t") != 0;
        /* the stream starts there: nothing before it is owed */
        if (!l->lg->slot_created &&
            sc_pgo_lsn_parse(V(11), &l->lg->flushed) == 0) {
            l->lg->reported = l->lg->flushed;
            l->lg->received = l->lg->flushed;
        }
        return 0;
    }
#undef V
    sc_listener_drop(l, why);
    return -1;
}

static void
next_step(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    char sql[512];

    switch (lg->step) {
    case L_IDENTIFY:
        send_check(l);
        return;
    case L_CHECK:
        if (lg->slot_created) {
            snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT \"%s\" "
                     "LOGICAL pgoutput NOEXPORT_SNAPSHOT", l->cfg->slot);
            send_step(l, L_CREATE, sql);
            return;
        }
        /* fall through */
    case L_CREATE:
        send_step(l, L_SNAPSHOT, "SELECT event_id, available_seats, "
                  "seat_capacity, version FROM seatcast_seat_state");
        return;
    case L_SNAPSHOT:
        send_step(l, L_REVOKED, "SELECT jti FROM seatcast_revoked_tokens "
                  "WHERE expires_at IS NULL OR expires_at > now()");
        return;
    case L_REVOKED:
        snprintf(sql, sizeof(sql), "START_REPLICATION SLOT \"%s\" LOGICAL "
                 "0/0 (proto_version '1', publication_names '\"%s\"')",
                 l->cfg->slot, l->cfg->publication);
        send_step(l, L_START, sql);
        return;
    default:
        return;
    }
}

/* A failed step's result in words. */
static void
step_error(struct listener *l, const PGresult *r)
{
    const char *msg = PQresultErrorMessage(r);
    char why[640];

    switch (l->lg->step) {
    case L_CREATE:
        snprintf(why, sizeof(why), "could not create replication slot "
                 "\"%s\" (max_replication_slots?): %s", l->cfg->slot, msg);
        break;
    case L_SNAPSHOT:
        snprintf(why, sizeof(why), "could not read seatcast_seat_state (is "
                 "sql/logical.sql installed?): %s", msg);
        break;
    case L_REVOKED:
        snprintf(why, sizeof(why), "could not read seatcast_revoked_tokens "
                 "(is sql/logical.sql installed?): %s", msg);
        break;
    case L_START:
        snprintf(why, sizeof(why), "could not start replication from slot "
                 "\"%s\"%s: %s", l->cfg->slot,
                 strstr(msg, "is active for PID") != NULL
                     ? " (in use by another process: another seatcast "
                       "instance with the same --slot?)"
                     : "",
                 msg);
        break;
    default:
        snprintf(why, sizeof(why), "%s", msg);
        break;
    }
    sc_listener_drop(l, why);
}

static void
streaming(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    char at[SC_PGO_LSN_STRLEN];

    lg->step = L_STREAM;
    lg->status_ms = sc_mono_ms();
    sc_listener_ready(l);
    atomic_store(&l->slot->slot_active, 1);
    sc_pgo_lsn_format(lg->server_end, at);
    sc_log(SC_LOG_INFO, "following publication \"%s\" through replication "
           "slot \"%s\"%s (server WAL at %s)", l->cfg->publication,
           l->cfg->slot, lg->slot_created ? " (created)" : "", at);
}

void
sc_logical_consume(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    PGresult *r;

    if (lg->want_write && flush_output(l) != 0) {
        return;
    }
    while (lg->step != L_STREAM && lg->step != L_IDLE && l->pg != NULL &&
           !PQisBusy(l->pg)) {
        ExecStatusType st;

        r = PQgetResult(l->pg);
        if (r == NULL) {
            next_step(l);
            continue;
        }
        st = PQresultStatus(r);
        if (st == PGRES_COPY_BOTH && lg->step == L_START) {
            PQclear(r);
            streaming(l);
            break;
        }
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            step_error(l, r);
            PQclear(r);
            return;
        }
        if (lg->step == L_IDENTIFY && PQntuples(r) == 1 &&
            PQnfields(r) >= 3) {
            uint64_t pos;
            if (sc_pgo_lsn_parse(PQgetvalue(r, 0, 2), &pos) == 0) {
                lg->server_end = pos;
            }
        } else if (lg->step == L_CHECK) {
            if (check_row(l, r) != 0) {
                PQclear(r);
                return;
            }
        } else if (lg->step == L_CREATE) {
            if (PQntuples(r) == 1 && PQnfields(r) >= 2 &&
                sc_pgo_lsn_parse(PQgetvalue(r, 0, 1), &lg->flushed) == 0) {
                lg->reported = lg->flushed;
                lg->received = lg->flushed;
            }
            sc_log(SC_LOG_INFO, "created replication slot \"%s\" (pgoutput)",
                   l->cfg->slot);
        } else if (lg->step == L_SNAPSHOT) {
            sc_listener_snapshot(l, r, !lg->slot_created);
        } else if (lg->step == L_REVOKED) {
            sc_listener_revoked(l, r);
        }
        PQclear(r);
    }
    if (lg->step == L_STREAM && l->pg != NULL) {
        read_stream(l);
    }
}

void
sc_logical_start(struct listener *l)
{
    if (l->lg == NULL) {
        l->lg = calloc(1, sizeof(*l->lg));
        if (l->lg == NULL) {
            sc_listener_drop(l, "out of memory");
            return;
        }
    }
    sc_logical_reset(l);
    send_step(l, L_IDENTIFY, "IDENTIFY_SYSTEM");
}

void
sc_logical_tick(struct listener *l)
{
    struct sc_logical *lg = l->lg;
    uint64_t now = sc_mono_ms();

    if (lg == NULL || lg->step != L_STREAM || l->pg == NULL) {
        return;
    }
    if (now - lg->status_ms >= STATUS_EVERY_MS) {
        /* ask for a keepalive: the server's WAL end, for the lag, and a
           position to confirm when idle */
        (void)send_status(l, true);
    } else if (lg->flushed > lg->reported) {
        (void)send_status(l, false);
    } else if (lg->want_write) {
        (void)flush_output(l);
    }
}

void
sc_logical_reset(struct listener *l)
{
    struct sc_logical *lg = l->lg;

    if (lg == NULL) {
        return;
    }
    lg->step = L_IDLE;
    lg->slot_created = false;
    lg->nrels = 0;
    lg->in_txn = false;
    lg->nchanges = 0;
    lg->nlabels = 0;
    lg->received = 0;
    lg->flushed = 0;
    lg->reported = 0;
    lg->want_write = false;
    atomic_store(&l->slot->slot_active, 0);
}

void
sc_logical_free(struct listener *l)
{
    if (l->lg != NULL) {
        free(l->lg->changes);
        free(l->lg->labels);
        free(l->lg);
        l->lg = NULL;
    }
}

const char *
sc_logical_explain(const char *msg, char *out, size_t outlen)
{
    if (msg != NULL && (strstr(msg, "replication role") != NULL ||
                        strstr(msg, "start WAL sender") != NULL)) {
        snprintf(out, outlen, "the role lacks the REPLICATION attribute "
                 "that --source logical needs (ALTER ROLE ... REPLICATION): "
                 "%s", msg);
        return out;
    }
    return msg;
}
