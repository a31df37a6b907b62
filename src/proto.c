/*
 * proto.c - client protocol messages (see proto.h, docs/PROTOCOL.md
 * section 4)
 *
 * Parsing uses cJSON and accepts exactly what the protocol allows: an object
 * with a string `type`, and for (un)subscribe an `eventId` that is a
 * positive integer below 2^53, as a JSON number or a string of digits.
 * Encoding is done with snprintf into the caller's buffer: every server
 * message is small and its field order is fixed by the protocol, which a
 * generic JSON printer would not guarantee.
 */
#include "proto.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "text.h"

static long
fit(int n, size_t cap)
{
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

/* Writes v as exactly n decimal digits. */
static void
digits(char *out, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void
sc_proto_timestamp(uint64_t ms, char out[25])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    /* 2024-11-11T10:30:00.000Z */
    digits(out, (unsigned)(tm.tm_year + 1900) % 10000, 4);
    out[4] = '-';
    digits(out + 5, (unsigned)tm.tm_mon + 1, 2);
    out[7] = '-';
    digits(out + 8, (unsigned)tm.tm_mday, 2);
    out[10] = 'T';
    digits(out + 11, (unsigned)tm.tm_hour, 2);
    out[13] = ':';
    digits(out + 14, (unsigned)tm.tm_min, 2);
    out[16] = ':';
    digits(out + 17, (unsigned)tm.tm_sec, 2);
    out[19] = '.';
    digits(out + 20, (unsigned)(ms % 1000), 3);
    out[23] = 'Z';
    out[24] = '\0';
}

/* eventId: a positive integral number or a string of digits (text.h) */
static int
parse_event_id(const cJSON *v, uint64_t *out)
{
    if (v == NULL) {
        return SC_PROTO_MISSING_FIELD;
    }
    if (cJSON_IsNumber(v)) {
        return sc_event_id_number(v->valuedouble, out) == 0
                   ? SC_PROTO_OK
                   : SC_PROTO_INVALID_FIELD;
    }
    if (!cJSON_IsString(v) ||
        sc_event_id_digits(v->valuestring, strlen(v->valuestring), true,
                           out) != 0) {
        return SC_PROTO_INVALID_FIELD;
    }
    return SC_PROTO_OK;
}

/*
 * Copies as much of s as fits, cut at a UTF-8 character boundary so that
 * the error message echoing it stays valid UTF-8.
 */
static void
copy_utf8_prefix(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);

    if (n >= cap) {
        n = cap - 1;
        /* back off over continuation bytes (10xxxxxx) to a lead byte */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

static int
classify(const cJSON *root, struct sc_client_msg *out)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    const char *t;

    if (!cJSON_IsString(type)) {
        return SC_PROTO_INVALID_JSON;
    }
    t = type->valuestring;
    if (strcmp(t, "subscribe_event") == 0) {
        out->type = SC_MSG_SUBSCRIBE;
    } else if (strcmp(t, "unsubscribe_event") == 0) {
        out->type = SC_MSG_UNSUBSCRIBE;
    } else if (strcmp(t, "ping") == 0) {
        out->type = SC_MSG_PING;
        return SC_PROTO_OK;
    } else if (strcmp(t, "get_stats") == 0) {
        out->type = SC_MSG_GET_STATS;
        return SC_PROTO_OK;
    } else {
        copy_utf8_prefix(out->bad_type, sizeof(out->bad_type), t);
        return SC_PROTO_UNKNOWN_TYPE;
    }
    return parse_event_id(cJSON_GetObjectItemCaseSensitive(root, "eventId"),
                          &out->event_id);
}

int
sc_proto_parse(const char *text, size_t len, struct sc_client_msg *out)
{
    const char *end = NULL;
    cJSON *root;
    int rc;

    memset(out, 0, sizeof(*out));
    /* a raw NUL or \u0000 would end a string early in cJSON */
    if (!sc_json_text_ok((const uint8_t *)text, len)) {
        return SC_PROTO_INVALID_JSON;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root == NULL) {
        return SC_PROTO_INVALID_JSON;
    }
    /* nothing but whitespace may follow the value */
    for (; end != NULL && end < text + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            cJSON_Delete(root);
            return SC_PROTO_INVALID_JSON;
        }
    }
    rc = cJSON_IsObject(root) ? classify(root, out) : SC_PROTO_INVALID_JSON;
    cJSON_Delete(root);
    return rc;
}

static long
error_msg(char *out, size_t cap, const char *code, const char *message,
          uint64_t now_ms)
{
    char ts[25], esc[6 * 128 + 1]; /* every byte may become \u00XX */

    bool whole;

    sc_json_escape(esc, sizeof(esc), 0, message, &whole);
    if (!whole) {
        return -1;
    }
    sc_proto_timestamp(now_ms, ts);
    return fit(snprintf(out, cap,
                        "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\","
                        "\"timestamp\":\"%s\"}",
                        code, esc, ts),
               cap);
}

long
sc_proto_parse_error(char *out, size_t cap, int err,
                     const struct sc_client_msg *msg, uint64_t now_ms)
{
    char text[128];

    switch (err) {
    case SC_PROTO_UNKNOWN_TYPE:
        snprintf(text, sizeof(text), "Unknown message type: %s",
                 msg->bad_type);
        return error_msg(out, cap, "unknown_type", text, now_ms);
    case SC_PROTO_MISSING_FIELD:
        return error_msg(out, cap, "missing_field",
                         "Missing required field: eventId", now_ms);
    case SC_PROTO_INVALID_FIELD:
        return error_msg(out, cap, "invalid_field", "Invalid eventId", now_ms);
    default:
        return error_msg(out, cap, "invalid_json", "Invalid message format",
                         now_ms);
    }
}

long
sc_proto_server_error(char *out, size_t cap, enum sc_proto_server_err e,
                      uint64_t event_id, uint64_t now_ms)
{
    char text[96];

    switch (e) {
    case SC_PERR_NOT_FOUND:
        snprintf(text, sizeof(text), "Event %llu not found",
                 (unsigned long long)event_id);
        return error_msg(out, cap, "not_found", text, now_ms);
    case SC_PERR_FORBIDDEN:
        snprintf(text, sizeof(text), "Access to event %llu denied",
                 (unsigned long long)event_id);
        return error_msg(out, cap, "forbidden", text, now_ms);
    case SC_PERR_LIMIT:
        return error_msg(out, cap, "limit_exceeded",
                         "Subscription limit reached", now_ms);
    default:
        return error_msg(out, cap, "rate_limited", "Too many messages",
                         now_ms);
    }
}

long
sc_proto_connection_established(char *out, size_t cap, const char *client_id,
                                uint64_t event_id, uint64_t now_ms)
{
    char ts[25];

    sc_proto_timestamp(now_ms, ts);
    if (event_id == 0) {
        return fit(snprintf(out, cap,
                            "{\"type\":\"connection_established\","
                            "\"clientId\":\"%s\",\"timestamp\":\"%s\"}",
                            client_id, ts),
                   cap);
    }
    return fit(snprintf(out, cap,
                        "{\"type\":\"connection_established\","
                        "\"clientId\":\"%s\",\"eventId\":%llu,"
                        "\"timestamp\":\"%s\"}",
                        client_id, (unsigned long long)event_id, ts),
               cap);
}

static long
event_msg(char *out, size_t cap, const char *type, uint64_t event_id,
          uint64_t now_ms)
{
    char ts[25];

    sc_proto_timestamp(now_ms, ts);
    return fit(snprintf(out, cap,
                        "{\"type\":\"%s\",\"eventId\":%llu,"
                        "\"timestamp\":\"%s\"}",
                        type, (unsigned long long)event_id, ts),
               cap);
}

long
sc_proto_subscribed(char *out, size_t cap, uint64_t event_id,
                    uint64_t now_ms)
{
    return event_msg(out, cap, "subscribed", event_id, now_ms);
}

long
sc_proto_unsubscribed(char *out, size_t cap, uint64_t event_id,
                      uint64_t now_ms)
{
    return event_msg(out, cap, "unsubscribed", event_id, now_ms);
}

long
sc_proto_seat_update(char *out, size_t cap, uint64_t event_id,
                     int32_t available, int32_t capacity, uint64_t now_ms)
{
    char ts[25];

    sc_proto_timestamp(now_ms, ts);
    return fit(snprintf(out, cap,
                        "{\"type\":\"seat_update\",\"eventId\":%llu,"
                        "\"availableSeats\":%d,\"seatCapacity\":%d,"
                        "\"timestamp\":\"%s\"}",
                        (unsigned long long)event_id, (int)available,
                        (int)capacity, ts),
               cap);
}

long
sc_proto_booking(char *out, size_t cap, int cancelled, uint64_t event_id,
                 int32_t available, uint64_t now_ms)
{
    return sc_proto_bookings(out, cap, cancelled, event_id, available, 1,
                             now_ms);
}

long
sc_proto_bookings(char *out, size_t cap, int cancelled, uint64_t event_id,
                  int32_t available, uint32_t n, uint64_t now_ms)
{
    char ts[25], count[24] = "";

    sc_proto_timestamp(now_ms, ts);
    if (n > 1) {
        snprintf(count, sizeof(count), ",\"bookings\":%u", (unsigned)n);
    }
    return fit(snprintf(out, cap,
                        "{\"type\":\"%s\",\"eventId\":%llu,"
                        "\"availableSeats\":%d%s,\"timestamp\":\"%s\"}",
                        cancelled ? "booking_cancelled" : "booking_created",
                        (unsigned long long)event_id, (int)available, count,
                        ts),
               cap);
}

long
sc_proto_pong(char *out, size_t cap, uint64_t now_ms)
{
    char ts[25];

    sc_proto_timestamp(now_ms, ts);
    return fit(snprintf(out, cap, "{\"type\":\"pong\",\"timestamp\":\"%s\"}",
                        ts),
               cap);
}

long
sc_proto_stats(char *out, size_t cap, uint64_t total_clients,
               uint64_t event_subscriptions, uint64_t now_ms)
{
    char ts[25];

    sc_proto_timestamp(now_ms, ts);
    return fit(snprintf(out, cap,
                        "{\"type\":\"stats\",\"data\":{\"totalClients\":%llu,"
                        "\"eventSubscriptions\":%llu},\"timestamp\":\"%s\"}",
                        (unsigned long long)total_clients,
                        (unsigned long long)event_subscriptions, ts),
               cap);
}

void
sc_proto_client_id(char *out, size_t cap, uint64_t now_ms, uint64_t random)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char b36[16];
    int n = 0;

    /* nine base-36 digits: 46 random bits, enough against collisions
     * between connections opened in the same millisecond */
    for (; n < 9; n++) {
        b36[n] = digits[random % 36];
        random /= 36;
    }
    b36[n] = '\0';
    snprintf(out, cap, "ws_%llu_%s", (unsigned long long)now_ms, b36);
}
