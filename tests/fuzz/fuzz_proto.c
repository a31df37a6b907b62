/*
 * fuzz_proto.c - libFuzzer target for the client protocol parser
 *
 * Feeds arbitrary bytes to sc_proto_parse() and, whatever it returns,
 * encodes the answer the worker would send; every answer must be one JSON
 * object with "type" first and "timestamp" last.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "text.h"

static void
check_json(const char *out, long n)
{
    cJSON *j;

    if (n < 0) {
        abort();
    }
    j = cJSON_ParseWithLength(out, (size_t)n);
    if (j == NULL || !cJSON_IsObject(j) || j->child == NULL ||
        strcmp(j->child->string, "type") != 0) {
        abort();
    }
    cJSON *last = j->child;
    while (last->next != NULL) {
        last = last->next;
    }
    if (strcmp(last->string, "timestamp") != 0) {
        abort();
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sc_client_msg m;
    char out[SC_PROTO_MSG_MAX];
    int rc = sc_proto_parse((const char *)data, size, &m);

    if (rc != SC_PROTO_OK) {
        check_json(out, sc_proto_parse_error(out, sizeof(out), rc, &m,
                                             1731321000000ULL));
        return 0;
    }
    switch (m.type) {
    case SC_MSG_SUBSCRIBE:
    case SC_MSG_UNSUBSCRIBE:
        if (m.event_id == 0 || m.event_id > SC_EVENT_ID_MAX) {
            abort();
        }
        check_json(out, sc_proto_subscribed(out, sizeof(out), m.event_id,
                                            1731321000000ULL));
        break;
    case SC_MSG_PING:
        check_json(out, sc_proto_pong(out, sizeof(out), 0));
        break;
    case SC_MSG_GET_STATS:
        check_json(out, sc_proto_stats(out, sizeof(out), 1, 2, 0));
        break;
    default:
        abort();
    }
    return 0;
}
