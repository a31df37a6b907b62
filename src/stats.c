/*
 * stats.c - `seatcast stats [--json] [--shm-name NAME | -c FILE]`
 *
 * Maps the registry read-only and prints the header, every worker slot,
 * the listener slot and the totals, as text or as one JSON object.  It
 * never writes the segment and never signals the server.
 */
#include "stats.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "proc.h"
#include "registry.h"

static const char *
state_name(uint32_t s)
{
    switch (s) {
    case SC_STATE_STARTING:
        return "starting";
    case SC_STATE_RUNNING:
        return "running";
    case SC_STATE_STOPPING:
        return "stopping";
    default:
        return "empty";
    }
}

static const char *
db_state_name(uint32_t s)
{
    switch (s) {
    case SC_DB_CONNECTING:
        return "connecting";
    case SC_DB_CONNECTED:
        return "connected";
    default:
        return "disconnected";
    }
}

#define LOAD(p) atomic_load_explicit(&(p), memory_order_relaxed)
#define NUM(obj, name, v) cJSON_AddNumberToObject(obj, name, (double)(v))

static cJSON *
worker_json(const struct sc_registry *reg, unsigned w, uint64_t now)
{
    struct sc_worker_slot *s = sc_registry_worker(reg, w);
    cJSON *o = cJSON_CreateObject();
    uint64_t hb = LOAD(s->heartbeat_ms);

    NUM(o, "index", w);
    NUM(o, "pid", LOAD(s->pid));
    cJSON_AddStringToObject(o, "state", state_name(LOAD(s->state)));
    NUM(o, "heartbeat_age_ms", hb && now > hb ? now - hb : 0);
    NUM(o, "connections", LOAD(s->connections));
    NUM(o, "clients", LOAD(s->clients));
    NUM(o, "subscriptions", LOAD(s->subscriptions));
#define SC_X(field, metric, help, stats)                                       \
    if ((stats) & SC_CTR_WORKER) {                                             \
        NUM(o, #field, LOAD(s->field));                                        \
    }
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    NUM(o, "ring_seq", LOAD(s->ring_seq));
    return o;
}

static cJSON *
listener_json(const struct sc_registry *reg, uint64_t now)
{
    struct sc_listener_slot *l = sc_registry_listener(reg);
    cJSON *o = cJSON_CreateObject();
    uint64_t hb = LOAD(l->heartbeat_ms);

    NUM(o, "pid", LOAD(l->pid));
    cJSON_AddStringToObject(o, "state", state_name(LOAD(l->state)));
    cJSON_AddStringToObject(o, "database", db_state_name(LOAD(l->db_state)));
    NUM(o, "heartbeat_age_ms", hb && now > hb ? now - hb : 0);
    NUM(o, "notifications", LOAD(l->notifications));
    NUM(o, "malformed", LOAD(l->malformed));
    NUM(o, "forged", LOAD(l->forged));
    NUM(o, "unknown_events", LOAD(l->unknown_events));
    NUM(o, "reconnects", LOAD(l->reconnects));
    NUM(o, "events_full", LOAD(l->events_full));
    NUM(o, "last_notification_ms", LOAD(l->last_notification_ms));
    cJSON_AddStringToObject(o, "source",
                            sc_config_source_name(LOAD(l->source)));
    cJSON_AddBoolToObject(o, "slot_active", LOAD(l->slot_active) != 0);
    NUM(o, "slot_lag_bytes", LOAD(l->slot_lag_bytes));
    NUM(o, "confirmed_lsn", LOAD(l->confirmed_lsn));
    NUM(o, "transactions", LOAD(l->transactions));
    return o;
}

static cJSON *
registry_json(const struct sc_registry *reg)
{
    struct sc_shm_header *h = reg->hdr;
    uint64_t now = sc_mono_ms();
    struct sc_totals t;
    cJSON *root = cJSON_CreateObject(), *workers, *tot;

    sc_registry_totals(reg, &t);
    cJSON_AddStringToObject(root, "shm_name", reg->name);
    NUM(root, "version", h->version);
    NUM(root, "owner_pid", h->owner_pid);
    NUM(root, "start_time_ms", h->start_time_ms);
    cJSON_AddStringToObject(root, "listen", h->listen);
    cJSON_AddBoolToObject(root, "shutting_down", LOAD(h->shutting_down));
    NUM(root, "size_bytes", h->total_size);
    workers = cJSON_AddArrayToObject(root, "workers");
    for (unsigned w = 0; w < h->nworkers; w++) {
        cJSON_AddItemToArray(workers, worker_json(reg, w, now));
    }
    cJSON_AddItemToObject(root, "listener", listener_json(reg, now));
    tot = cJSON_AddObjectToObject(root, "totals");
    NUM(tot, "workers", h->nworkers);
    NUM(tot, "workers_running", t.workers_running);
    NUM(tot, "connections", t.connections);
    NUM(tot, "clients", t.clients);
    NUM(tot, "subscriptions", t.subscriptions);
#define SC_X(field, metric, help, stats)                                       \
    if ((stats) & SC_CTR_TOTAL) {                                              \
        NUM(tot, #field, t.field);                                             \
    }
    SC_WORKER_COUNTERS(SC_X)
#undef SC_X
    NUM(tot, "accepted", LOAD(h->accepted_total));
    NUM(tot, "accept_drops", LOAD(h->accept_drops));
    NUM(tot, "worker_restarts", LOAD(h->worker_restarts));
    NUM(tot, "listener_restarts", LOAD(h->listener_restarts));
    NUM(tot, "events", LOAD(h->events_used));
    NUM(tot, "max_events", h->max_events);
    NUM(tot, "events_watched", LOAD(h->events_watched));
    NUM(tot, "ring_head", LOAD(h->ring_head));
    return root;
}

static void
print_text(const struct sc_registry *reg)
{
    struct sc_shm_header *h = reg->hdr;
    struct sc_listener_slot *l = sc_registry_listener(reg);
    struct sc_totals t;

    sc_registry_totals(reg, &t);
    printf("seatcast registry %s (master pid %d, listen %s)\n", reg->name,
           h->owner_pid, h->listen);
    printf("connections %llu  clients %llu  subscriptions %llu  "
           "events %llu/%u (watched %llu)\n",
           (unsigned long long)t.connections, (unsigned long long)t.clients,
           (unsigned long long)t.subscriptions,
           (unsigned long long)LOAD(h->events_used), h->max_events,
           (unsigned long long)LOAD(h->events_watched));
    printf("%-8s %8s %-9s %12s %10s %14s %14s\n", "worker", "pid", "state",
           "connections", "clients", "subscriptions", "messages_sent");
    for (unsigned w = 0; w < h->nworkers; w++) {
        struct sc_worker_slot *s = sc_registry_worker(reg, w);
        printf("%-8u %8d %-9s %12llu %10llu %14llu %14llu\n", w,
               LOAD(s->pid), state_name(LOAD(s->state)),
               (unsigned long long)LOAD(s->connections),
               (unsigned long long)LOAD(s->clients),
               (unsigned long long)LOAD(s->subscriptions),
               (unsigned long long)LOAD(s->messages_sent));
    }
    printf("listener %8d %-9s database %s, %llu notifications, "
           "%llu reconnects\n",
           LOAD(l->pid), state_name(LOAD(l->state)),
           db_state_name(LOAD(l->db_state)),
           (unsigned long long)LOAD(l->notifications),
           (unsigned long long)LOAD(l->reconnects));
    if (LOAD(l->source) == SC_SOURCE_LOGICAL) {
        printf("source   logical, slot %s, lag %llu bytes, %llu "
               "transactions\n",
               LOAD(l->slot_active) ? "streaming" : "inactive",
               (unsigned long long)LOAD(l->slot_lag_bytes),
               (unsigned long long)LOAD(l->transactions));
    } else {
        printf("source   notify\n");
    }
}

static const char stats_usage_text[] =
    "usage: seatcast stats [--json] [--shm-name NAME | -c FILE]\n";

static int
stats_usage(void)
{
    fputs(stats_usage_text, stderr);
    return 2;
}

int
sc_stats_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"shm-name", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct sc_config *cfg = calloc(1, sizeof(*cfg));
    struct sc_registry reg;
    char err[512], name[256] = "";
    bool json = false;
    int c, rc;

    if (cfg == NULL) {
        return 1;
    }
    sc_config_defaults(cfg, sc_proc_ncpu());
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 's':
            snprintf(name, sizeof(name), "%s", optarg);
            break;
        case 'c':
            if (sc_config_load_file(cfg, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "seatcast stats: %s\n", err);
                free(cfg);
                return 2;
            }
            break;
        case 'h':
            free(cfg);
            printf("%s", stats_usage_text);
            return 0;
        default:
            free(cfg);
            return stats_usage();
        }
    }
    if (optind != argc) {
        free(cfg);
        return stats_usage();
    }
    if (name[0] == '\0') {
        if (sc_config_finish(cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "seatcast stats: %s\n", err);
            free(cfg);
            return 2;
        }
        snprintf(name, sizeof(name), "%s", cfg->shm_name);
    }
    free(cfg);
    rc = sc_registry_find(&reg, name, err, sizeof(err));
    if (rc != SC_REG_OK) {
        fprintf(stderr, "seatcast stats: %s%s\n", err,
                rc == SC_REG_ENOENT ? " (is seatcast running?)" : "");
        return 1;
    }
    if (!sc_registry_owner_alive(reg.hdr->owner_pid, reg.owner_uid)) {
        fprintf(stderr, "seatcast stats: the master (pid %d) of \"%s\" is "
                "not running; showing its last state\n",
                reg.hdr->owner_pid, reg.name);
    }
    if (json) {
        cJSON *root = registry_json(&reg);
        char *s = cJSON_PrintUnformatted(root);
        if (s != NULL) {
            printf("%s\n", s);
        }
        cJSON_free(s);
        cJSON_Delete(root);
    } else {
        print_text(&reg);
    }
    sc_registry_detach(&reg);
    return 0;
}
