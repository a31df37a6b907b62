/*
 * healthz.c - /healthz and /metrics bodies from the registry (see
 * healthz.h)
 *
 * Both read every worker slot and the listener slot; nothing is cached,
 * so a scrape always sees the registry as it is.  Text is built with
 * open_memstream() and handed to the caller.
 */
#include "healthz.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "registry.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define HEARTBEAT_STALE_MS 5000

char *
sc_healthz_body(const struct sc_registry *reg, int *status, size_t *len)
{
    struct sc_listener_slot *l = sc_registry_listener(reg);
    uint64_t now = sc_mono_ms();
    unsigned up = 0, n = reg->hdr->nworkers;
    bool db = LOAD(l->db_state) == SC_DB_CONNECTED;
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    struct sc_totals t;

    if (f == NULL) {
        return NULL;
    }
    for (unsigned w = 0; w < n; w++) {
        struct sc_worker_slot *s = sc_registry_worker(reg, w);
        uint64_t hb = LOAD(s->heartbeat_ms);
        if (LOAD(s->state) == SC_STATE_RUNNING && hb != 0 &&
            now - hb < HEARTBEAT_STALE_MS) {
            up++;
        }
    }
    sc_registry_totals(reg, &t);
    *status = (up == n && db) ? 200 : 503;
    fprintf(f, "{\"status\":\"%s\"", *status == 200 ? "ok" : "degraded");
    if (*status != 200) {
        fprintf(f, ",\"reasons\":[");
        if (up != n) {
            fprintf(f, "\"%u of %u workers up\"%s", up, n, db ? "" : ",");
        }
        if (!db) {
            fprintf(f, "\"listener not connected to PostgreSQL\"");
        }
        fprintf(f, "]");
    }
    fprintf(f, ",\"workers\":%u,\"workersUp\":%u,\"database\":\"%s\","
               "\"clients\":%llu,\"connections\":%llu}\n",
            n, up, db ? "connected" : "disconnected",
            (unsigned long long)t.clients,
            (unsigned long long)t.connections);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void
metric(FILE *f, const char *name, const char *type, const char *help,
       unsigned long long v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
            type, name, v);
}

static void
per_worker(FILE *f, const struct sc_registry *reg, const char *name,
           const char *help, size_t field_off)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (unsigned w = 0; w < reg->hdr->nworkers; w++) {
        uint8_t *slot = (uint8_t *)sc_registry_worker(reg, w);
        _Atomic uint64_t *v = (_Atomic uint64_t *)(slot + field_off);
        fprintf(f, "%s{worker=\"%u\"} %llu\n", name, w,
                (unsigned long long)atomic_load(v));
    }
}

/* One of the workers' histograms: buckets at offset `off` of the header's
 * retired totals (roff) and of each worker slot (off). */
static void
histogram(FILE *f, const struct sc_registry *reg, const char *n,
          const char *help, size_t roff, size_t off, uint64_t count,
          uint64_t sum_us)
{
    uint64_t b[SC_LAT_BUCKETS] = {0}, cum = 0;
    const _Atomic uint64_t *r =
        (const _Atomic uint64_t *)((const uint8_t *)reg->hdr + roff);

    /* dead workers' share, folded in by the master, keeps it monotonic */
    for (int i = 0; i < SC_LAT_BUCKETS; i++) {
        b[i] = LOAD(r[i]);
    }
    for (unsigned w = 0; w < reg->hdr->nworkers; w++) {
        const _Atomic uint64_t *s =
            (const _Atomic uint64_t *)((const uint8_t *)
                                           sc_registry_worker(reg, w) +
                                       off);
        for (int i = 0; i < SC_LAT_BUCKETS; i++) {
            b[i] += LOAD(s[i]);
        }
    }
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", n, help, n);
    for (int i = 0; i < SC_LAT_BUCKETS; i++) {
        cum += b[i];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", n,
                sc_lat_bounds_ms[i] / 1000.0, (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", n, (unsigned long long)count);
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", n, sum_us / 1e6, n,
            (unsigned long long)count);
}

char *
sc_metrics_body(const struct sc_registry *reg, size_t *len)
{
    struct sc_shm_header *h = reg->hdr;
    struct sc_listener_slot *l = sc_registry_listener(reg);
    struct sc_totals t;
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);

    if (f == NULL) {
        return NULL;
    }
    sc_registry_totals(reg, &t);
    metric(f, "seatcast_connections", "gauge",
           "Open client sockets, including those in the handshake.",
           t.connections);
    metric(f, "seatcast_clients", "gauge",
           "Authenticated WebSocket clients.", t.clients);
    metric(f, "seatcast_subscriptions", "gauge",
           "Subscriptions (connection, event pairs).", t.subscriptions);
    metric(f, "seatcast_events_watched", "gauge",
           "Events with at least one subscriber.", LOAD(h->events_watched));
    metric(f, "seatcast_events", "gauge", "Events in the registry.",
           LOAD(h->events_used));
    metric(f, "seatcast_events_capacity", "gauge",
           "Events the registry can hold (--max-events).", h->max_events);
    metric(f, "seatcast_workers_running", "gauge", "Workers serving.",
           t.workers_running);
#define SC_X(field, name, help, stats)                                         \
    if (name != NULL) {                                                        \
        metric(f, name, "counter", help, t.field);                             \
    }
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    metric(f, "seatcast_notifications_total", "counter",
           "NOTIFY payloads received from PostgreSQL.",
           LOAD(l->notifications));
    metric(f, "seatcast_notifications_malformed_total", "counter",
           "NOTIFY payloads that could not be parsed.", LOAD(l->malformed));
    metric(f, "seatcast_notifications_forged_total", "counter",
           "NOTIFY payloads the database contradicts (ignored).",
           LOAD(l->forged));
    metric(f, "seatcast_db_reconnects_total", "counter",
           "Reconnections of the listener to PostgreSQL.",
           LOAD(l->reconnects));
    metric(f, "seatcast_db_connected", "gauge",
           "1 while the listener is connected to PostgreSQL.",
           LOAD(l->db_state) == SC_DB_CONNECTED);
    /* the source in use, and the replication slot (--source logical) */
    fprintf(f, "# HELP seatcast_source How the listener follows the "
            "database.\n# TYPE seatcast_source gauge\n"
            "seatcast_source{source=\"%s\"} 1\n",
            LOAD(l->source) == 1 ? "logical" : "notify");
    metric(f, "seatcast_slot_lag_bytes", "gauge",
           "WAL the replication slot holds: the server's WAL end minus the "
           "position seatcast confirmed (0 with --source notify).",
           LOAD(l->slot_lag_bytes));
    metric(f, "seatcast_slot_active", "gauge",
           "1 while the listener streams from its replication slot.",
           LOAD(l->slot_active));
    metric(f, "seatcast_transactions_total", "counter",
           "Transactions received from the replication stream.",
           LOAD(l->transactions));
    metric(f, "seatcast_worker_restarts_total", "counter",
           "Workers respawned after dying.", LOAD(h->worker_restarts));
    metric(f, "seatcast_accept_drops_total", "counter",
           "Connections closed because no worker could take them.",
           LOAD(h->accept_drops));
    per_worker(f, reg, "seatcast_worker_connections",
               "Open sockets per worker.",
               offsetof(struct sc_worker_slot, connections));
    per_worker(f, reg, "seatcast_worker_clients", "Clients per worker.",
               offsetof(struct sc_worker_slot, clients));
    per_worker(f, reg, "seatcast_worker_subscriptions",
               "Subscriptions per worker.",
               offsetof(struct sc_worker_slot, subscriptions));
    histogram(f, reg, "seatcast_delivery_latency_seconds",
              "Commit-to-socket latency of broadcasts (from the payload's "
              "ts).",
              offsetof(struct sc_shm_header, retired_lat_buckets),
              offsetof(struct sc_worker_slot, lat_buckets), t.lat_count,
              t.lat_sum_us);
    histogram(f, reg, "seatcast_ring_wait_seconds",
              "How long changes waited in the broadcast ring before a "
              "worker read them (over --max-lag they merge).",
              offsetof(struct sc_shm_header, retired_wait_buckets),
              offsetof(struct sc_worker_slot, wait_buckets), t.wait_count,
              t.wait_sum_us);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
