/*
 * check_proto.c - the client protocol of SPEC section 4: one case per
 * client message and per server message, inputs ending at a guard page,
 * exact encodings, buffer caps with a canary
 */
#include "proto.h"
#include "utf8.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define T0 UINT64_C(1731321000000) /* 2024-11-11T10:30:00.000Z */
#define TS0 "2024-11-11T10:30:00.000Z"

/* ------------------------------------------------------------------ */
/* Inputs that end where a PROT_NONE page begins (picohttpparser)     */

struct guarded {
    void *map;
    size_t maplen;
    char *text; /* len bytes, no NUL: the next byte faults */
};

static void
guard_copy(struct guarded *g, const char *s, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (len + page - 1) / page * page;

    if (body == 0) {
        body = page;
    }
    g->maplen = body + page;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(g->map, MAP_FAILED);
    ck_assert_int_eq(mprotect((char *)g->map + body, page, PROT_NONE), 0);
    g->text = (char *)g->map + body - len;
    memcpy(g->text, s, len);
}

static void
guard_free(struct guarded *g)
{
    munmap(g->map, g->maplen);
}

static int
parse_guarded(const char *s, size_t len, struct sc_client_msg *m)
{
    struct guarded g;
    int rc;

    guard_copy(&g, s, len);
    rc = sc_proto_parse(g.text, len, m);
    guard_free(&g);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Parsing: one row per client message and per refusal                */

struct parse_case {
    const char *text;
    int rc;
    enum sc_msg_type type; /* when rc == SC_PROTO_OK */
    uint64_t id;
};

static const struct parse_case parse_cases[] = {
    /* the four messages of SPEC section 4 */
    {"{\"type\":\"subscribe_event\",\"eventId\":123}", SC_PROTO_OK,
     SC_MSG_SUBSCRIBE, 123},
    {"{\"type\":\"unsubscribe_event\",\"eventId\":123}", SC_PROTO_OK,
     SC_MSG_UNSUBSCRIBE, 123},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"123\"}", SC_PROTO_OK,
     SC_MSG_SUBSCRIBE, 123},
    {"{\"type\":\"unsubscribe_event\",\"eventId\":\"7\"}", SC_PROTO_OK,
     SC_MSG_UNSUBSCRIBE, 7},
    {"{\"type\":\"ping\"}", SC_PROTO_OK, SC_MSG_PING, 0},
    {"{\"type\":\"get_stats\"}", SC_PROTO_OK, SC_MSG_GET_STATS, 0},
    /* order of keys, extra keys, whitespace around and inside */
    {"{\"eventId\":5,\"type\":\"subscribe_event\"}", SC_PROTO_OK,
     SC_MSG_SUBSCRIBE, 5},
    {"{\"type\":\"ping\",\"extra\":[1,{\"a\":null}]}", SC_PROTO_OK, SC_MSG_PING,
     0},
    {" \t\r\n{ \"type\" : \"ping\" } \r\n\t ", SC_PROTO_OK, SC_MSG_PING, 0},
    {"\n{\"type\":\"subscribe_event\",\"eventId\": 42 }\n", SC_PROTO_OK,
     SC_MSG_SUBSCRIBE, 42},
    /* largest id: 2^53 - 1, as number and as string */
    {"{\"type\":\"subscribe_event\",\"eventId\":9007199254740991}", SC_PROTO_OK,
     SC_MSG_SUBSCRIBE, UINT64_C(9007199254740991)},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"9007199254740991\"}",
     SC_PROTO_OK, SC_MSG_SUBSCRIBE, UINT64_C(9007199254740991)},
    {"{\"type\":\"subscribe_event\",\"eventId\":1}", SC_PROTO_OK,
     SC_MSG_SUBSCRIBE, 1},

    /* invalid_json: not JSON, not an object, type missing or not a string */
    {"", SC_PROTO_INVALID_JSON, 0, 0},
    {"   ", SC_PROTO_INVALID_JSON, 0, 0},
    {"not json", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":\"ping\"", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":\"ping\",}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{'type':'ping'}", SC_PROTO_INVALID_JSON, 0, 0},
    {"[{\"type\":\"ping\"}]", SC_PROTO_INVALID_JSON, 0, 0},
    {"[]", SC_PROTO_INVALID_JSON, 0, 0},
    {"\"ping\"", SC_PROTO_INVALID_JSON, 0, 0},
    {"42", SC_PROTO_INVALID_JSON, 0, 0},
    {"null", SC_PROTO_INVALID_JSON, 0, 0},
    {"true", SC_PROTO_INVALID_JSON, 0, 0},
    {"{}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"eventId\":1}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"Type\":\"ping\"}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":1}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":null}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":true}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":[\"ping\"]}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":{\"name\":\"ping\"}}", SC_PROTO_INVALID_JSON, 0, 0},
    /* trailing garbage after the object */
    {"{\"type\":\"ping\"}x", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":\"ping\"} x", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":\"ping\"}{}", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":\"ping\"},", SC_PROTO_INVALID_JSON, 0, 0},
    {"{\"type\":\"ping\"}}", SC_PROTO_INVALID_JSON, 0, 0},

    /* unknown_type (bad_type checked apart) */
    {"{\"type\":\"subscribe\"}", SC_PROTO_UNKNOWN_TYPE, 0, 0},
    {"{\"type\":\"PING\"}", SC_PROTO_UNKNOWN_TYPE, 0, 0},
    {"{\"type\":\"\"}", SC_PROTO_UNKNOWN_TYPE, 0, 0},
    {"{\"type\":\"ping \"}", SC_PROTO_UNKNOWN_TYPE, 0, 0},

    /* missing_field */
    {"{\"type\":\"subscribe_event\"}", SC_PROTO_MISSING_FIELD, 0, 0},
    {"{\"type\":\"unsubscribe_event\"}", SC_PROTO_MISSING_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventid\":1}", SC_PROTO_MISSING_FIELD, 0,
     0},
    {"{\"type\":\"subscribe_event\",\"event_id\":1}", SC_PROTO_MISSING_FIELD, 0,
     0},

    /* invalid_field: not a positive integer below 2^53 */
    {"{\"type\":\"subscribe_event\",\"eventId\":0}", SC_PROTO_INVALID_FIELD, 0,
     0},
    {"{\"type\":\"subscribe_event\",\"eventId\":-1}", SC_PROTO_INVALID_FIELD, 0,
     0},
    {"{\"type\":\"subscribe_event\",\"eventId\":-0}", SC_PROTO_INVALID_FIELD, 0,
     0},
    {"{\"type\":\"subscribe_event\",\"eventId\":1.5}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":0.5}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":9007199254740992}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":18446744073709551616}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":1e400}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"abc\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"\"}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"12a\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"0\"}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"-1\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"+1\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\" 1\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"1.0\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"9007199254740992\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":\"99999999999999999999\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":null}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":true}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":false}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"subscribe_event\",\"eventId\":{}}", SC_PROTO_INVALID_FIELD, 0,
     0},
    {"{\"type\":\"subscribe_event\",\"eventId\":[1]}", SC_PROTO_INVALID_FIELD,
     0, 0},
    {"{\"type\":\"unsubscribe_event\",\"eventId\":\"x\"}",
     SC_PROTO_INVALID_FIELD, 0, 0},
};

#define NPARSE ((int)(sizeof(parse_cases) / sizeof(parse_cases[0])))

START_TEST(parse_table)
{
    const struct parse_case *c = &parse_cases[_i];
    struct sc_client_msg m;
    int rc;

    rc = parse_guarded(c->text, strlen(c->text), &m);
    ck_assert_msg(rc == c->rc, "case %d %s: got %d, want %d", _i, c->text, rc,
                  c->rc);
    if (rc == SC_PROTO_OK) {
        ck_assert_int_eq(m.type, c->type);
        ck_assert_uint_eq(m.event_id, c->id);
    }
}
END_TEST

/* The message is the first len bytes only: the rest is not looked at. */
START_TEST(parse_uses_len_only)
{
    const char *s = "{\"type\":\"ping\"}garbage";
    struct sc_client_msg m;

    ck_assert_int_eq(parse_guarded(s, 15, &m), SC_PROTO_OK);
    ck_assert_int_eq(m.type, SC_MSG_PING);
    ck_assert_int_eq(parse_guarded(s, 14, &m), SC_PROTO_INVALID_JSON);
    ck_assert_int_eq(parse_guarded(s, 16, &m), SC_PROTO_INVALID_JSON);
    /* a NUL inside the text is not whitespace */
    ck_assert_int_eq(parse_guarded("{\"type\":\"ping\"}\0", 16, &m),
                     SC_PROTO_INVALID_JSON);
}
END_TEST

/*
 * An escaped NUL ends the C string cJSON hands back, so "12\u0000x" would
 * read as "12" and "ping\u0000x" as "ping".  Neither is what the client
 * sent: refused (with whichever error code).
 */
static const char *const escaped_nul[] = {
    "{\"type\":\"subscribe_event\",\"eventId\":\"12\\u0000x\"}",
    "{\"type\":\"subscribe_event\",\"eventId\":\"12\\u0000\"}",
    "{\"type\":\"ping\\u0000x\"}",
};

/*
 * The same with raw bytes: a NUL inside a string (cJSON would stop
 * there), or any other raw control byte, which RFC 8259 forbids inside
 * strings.  Refused as invalid_json.
 */
static const struct {
    const char *text;
    size_t len;
} raw_control[] = {
#define RAW(s) {s, sizeof(s) - 1}
    RAW("{\"type\":\"ping\0zz\"}"),
    RAW("{\"type\":\"ping\0\"}"),
    RAW("{\"type\":\"subscribe_event\",\"eventId\":\"12\0\"}"),
    RAW("{\"type\":\"ping\x01\"}"),
    RAW("{\"type\":\"ping\x1f\"}"),
#undef RAW
};

START_TEST(parse_raw_control_byte)
{
    struct sc_client_msg m;

    ck_assert_int_eq(parse_guarded(raw_control[_i].text, raw_control[_i].len,
                                   &m),
                     SC_PROTO_INVALID_JSON);
}
END_TEST

START_TEST(parse_escaped_nul)
{
    struct sc_client_msg m;
    int rc = parse_guarded(escaped_nul[_i], strlen(escaped_nul[_i]), &m);

    ck_assert_msg(rc != SC_PROTO_OK, "%s accepted as type %d id %llu",
                  escaped_nul[_i], m.type, (unsigned long long)m.event_id);
}
END_TEST

struct bad_type_case {
    const char *text;
    const char *bad_type;
};

static const struct bad_type_case bad_type_cases[] = {
    {"{\"type\":\"subscribe\"}", "subscribe"},
    {"{\"type\":\"PING\"}", "PING"},
    {"{\"type\":\"\"}", ""},
    {"{\"type\":\"a\\\"b\\\\c\\u0001\\n\"}", "a\"b\\c\x01\n"},
    {"{\"type\":\"caf\\u00e9\"}", "caf\xc3\xa9"},
};

START_TEST(parse_unknown_type)
{
    const struct bad_type_case *c = &bad_type_cases[_i];
    struct sc_client_msg m;

    ck_assert_int_eq(parse_guarded(c->text, strlen(c->text), &m),
                     SC_PROTO_UNKNOWN_TYPE);
    ck_assert_str_eq(m.bad_type, c->bad_type);
}
END_TEST

START_TEST(parse_long_type_is_cut)
{
    char text[400], want[64];
    struct sc_client_msg m;

    memset(want, 'x', 63);
    want[63] = '\0';
    /* 300 x's */
    strcpy(text, "{\"type\":\"");
    memset(text + 9, 'x', 300);
    strcpy(text + 309, "\"}");
    ck_assert_int_eq(parse_guarded(text, strlen(text), &m),
                     SC_PROTO_UNKNOWN_TYPE);
    ck_assert_uint_eq(strlen(m.bad_type), 63);
    ck_assert_str_eq(m.bad_type, want);
}
END_TEST

/*
 * Cutting a long type must not split a UTF-8 sequence: the error message
 * goes out in a text frame, which must be valid UTF-8 (RFC 6455 8.1).
 */
static const char *const multibyte_tails[] = {
    "\xc3\xa9",         /* 2 bytes, cut after 1 */
    "\xe2\x82\xac",     /* 3 bytes */
    "\xf0\x9f\x8e\xab", /* 4 bytes */
};

START_TEST(parse_long_type_cut_keeps_utf8)
{
    char text[200], out[512];
    struct sc_client_msg m;
    long n;

    /* 62 ASCII bytes, then the multibyte character straddles byte 63 */
    strcpy(text, "{\"type\":\"");
    memset(text + 9, 'a', 62);
    text[71] = '\0';
    strcat(text, multibyte_tails[_i]);
    strcat(text, "\"}");
    ck_assert_int_eq(parse_guarded(text, strlen(text), &m),
                     SC_PROTO_UNKNOWN_TYPE);
    ck_assert_uint_le(strlen(m.bad_type), 63);
    ck_assert_msg(
        sc_utf8_valid((const uint8_t *)m.bad_type, strlen(m.bad_type)),
        "bad_type ends in a cut UTF-8 sequence (%zu bytes)",
        strlen(m.bad_type));
    n = sc_proto_parse_error(out, sizeof(out), SC_PROTO_UNKNOWN_TYPE, &m, T0);
    ck_assert_int_gt(n, 0);
    ck_assert_msg(sc_utf8_valid((const uint8_t *)out, (size_t)n),
                  "error frame is not valid UTF-8: %s", out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Encoders: exact text, field order, keys, caps                       */

static long
enc_conn(char *o, size_t c)
{
    return sc_proto_connection_established(o, c, "ws_1731321000000_abc123xyz",
                                           0, T0);
}

static long
enc_conn_event(char *o, size_t c)
{
    return sc_proto_connection_established(o, c, "ws_1731321000000_abc123xyz",
                                           123, T0);
}

static long
enc_subscribed(char *o, size_t c)
{
    return sc_proto_subscribed(o, c, 123, T0);
}

static long
enc_unsubscribed(char *o, size_t c)
{
    return sc_proto_unsubscribed(o, c, 123, T0);
}

static long
enc_seat_update(char *o, size_t c)
{
    return sc_proto_seat_update(o, c, 123, 45, 100, T0);
}

static long
enc_seat_update_big(char *o, size_t c)
{
    return sc_proto_seat_update(o, c, UINT64_C(9007199254740991),
                                -2147483647 - 1, 2147483647, T0 + 999);
}

static long
enc_booking_created(char *o, size_t c)
{
    return sc_proto_booking(o, c, 0, 123, 44, T0);
}

static long
enc_booking_cancelled(char *o, size_t c)
{
    return sc_proto_booking(o, c, 1, 123, 45, T0);
}

static long
enc_bookings_merged(char *o, size_t c)
{
    return sc_proto_bookings(o, c, 0, 123, 40, 4, T0);
}

static long
enc_cancellations_merged(char *o, size_t c)
{
    return sc_proto_bookings(o, c, 1, 123, 0, 4294967295u, T0);
}

static long
enc_bookings_one(char *o, size_t c)
{
    return sc_proto_bookings(o, c, 0, 123, 44, 1, T0);
}

static long
enc_pong(char *o, size_t c)
{
    return sc_proto_pong(o, c, T0);
}

static long
enc_stats(char *o, size_t c)
{
    return sc_proto_stats(o, c, 15, 8, T0);
}

static long
enc_err_invalid_json(char *o, size_t c)
{
    struct sc_client_msg m;

    memset(&m, 0, sizeof(m));
    return sc_proto_parse_error(o, c, SC_PROTO_INVALID_JSON, &m, T0);
}

static long
enc_err_unknown_type(char *o, size_t c)
{
    struct sc_client_msg m;

    memset(&m, 0, sizeof(m));
    strcpy(m.bad_type, "foo");
    return sc_proto_parse_error(o, c, SC_PROTO_UNKNOWN_TYPE, &m, T0);
}

static long
enc_err_missing_field(char *o, size_t c)
{
    struct sc_client_msg m;

    memset(&m, 0, sizeof(m));
    return sc_proto_parse_error(o, c, SC_PROTO_MISSING_FIELD, &m, T0);
}

static long
enc_err_invalid_field(char *o, size_t c)
{
    struct sc_client_msg m;

    memset(&m, 0, sizeof(m));
    return sc_proto_parse_error(o, c, SC_PROTO_INVALID_FIELD, &m, T0);
}

static long
enc_err_not_found(char *o, size_t c)
{
    return sc_proto_server_error(o, c, SC_PERR_NOT_FOUND, 123, T0);
}

static long
enc_err_forbidden(char *o, size_t c)
{
    return sc_proto_server_error(o, c, SC_PERR_FORBIDDEN, 123, T0);
}

static long
enc_err_limit(char *o, size_t c)
{
    return sc_proto_server_error(o, c, SC_PERR_LIMIT, 123, T0);
}

static long
enc_err_rate_limited(char *o, size_t c)
{
    return sc_proto_server_error(o, c, SC_PERR_RATE_LIMITED, 123, T0);
}

struct enc_case {
    long (*fn)(char *out, size_t cap);
    const char *want;
    const char *keys[6]; /* top-level keys in order, NULL-terminated */
};

#define ERR_KEYS                                                               \
    {                                                                          \
        "type", "code", "message", "timestamp", NULL                           \
    }
#define ERR(code, msg)                                                         \
    "{\"type\":\"error\",\"code\":\"" code "\",\"message\":\"" msg             \
    "\",\"timestamp\":\"" TS0 "\"}"

static const struct enc_case enc_cases[] = {
    {enc_conn,
     "{\"type\":\"connection_established\",\"clientId\":"
     "\"ws_1731321000000_abc123xyz\",\"timestamp\":\"" TS0 "\"}",
     {"type", "clientId", "timestamp", NULL}},
    {enc_conn_event,
     "{\"type\":\"connection_established\",\"clientId\":"
     "\"ws_1731321000000_abc123xyz\",\"eventId\":123,\"timestamp\":\"" TS0
     "\"}",
     {"type", "clientId", "eventId", "timestamp", NULL}},
    {enc_subscribed,
     "{\"type\":\"subscribed\",\"eventId\":123,\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "timestamp", NULL}},
    {enc_unsubscribed,
     "{\"type\":\"unsubscribed\",\"eventId\":123,\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "timestamp", NULL}},
    {enc_seat_update,
     "{\"type\":\"seat_update\",\"eventId\":123,\"availableSeats\":45,"
     "\"seatCapacity\":100,\"timestamp\":\"2024-11-11T10:30:00.000Z\"}",
     {"type", "eventId", "availableSeats", "seatCapacity", "timestamp", NULL}},
    {enc_seat_update_big,
     "{\"type\":\"seat_update\",\"eventId\":9007199254740991,"
     "\"availableSeats\":-2147483648,\"seatCapacity\":2147483647,"
     "\"timestamp\":\"2024-11-11T10:30:00.999Z\"}",
     {"type", "eventId", "availableSeats", "seatCapacity", "timestamp", NULL}},
    {enc_booking_created,
     "{\"type\":\"booking_created\",\"eventId\":123,\"availableSeats\":44,"
     "\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "availableSeats", "timestamp", NULL}},
    {enc_booking_cancelled,
     "{\"type\":\"booking_cancelled\",\"eventId\":123,\"availableSeats\":45,"
     "\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "availableSeats", "timestamp", NULL}},
    {enc_bookings_merged,
     "{\"type\":\"booking_created\",\"eventId\":123,\"availableSeats\":40,"
     "\"bookings\":4,\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "availableSeats", "bookings", "timestamp", NULL}},
    {enc_cancellations_merged,
     "{\"type\":\"booking_cancelled\",\"eventId\":123,\"availableSeats\":0,"
     "\"bookings\":4294967295,\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "availableSeats", "bookings", "timestamp", NULL}},
    {enc_bookings_one, /* one booking: the usual message */
     "{\"type\":\"booking_created\",\"eventId\":123,\"availableSeats\":44,"
     "\"timestamp\":\"" TS0 "\"}",
     {"type", "eventId", "availableSeats", "timestamp", NULL}},
    {enc_pong,
     "{\"type\":\"pong\",\"timestamp\":\"" TS0 "\"}",
     {"type", "timestamp", NULL}},
    {enc_stats,
     "{\"type\":\"stats\",\"data\":{\"totalClients\":15,"
     "\"eventSubscriptions\":8},\"timestamp\":\"" TS0 "\"}",
     {"type", "data", "timestamp", NULL}},
    {enc_err_invalid_json, ERR("invalid_json", "Invalid message format"),
     ERR_KEYS},
    {enc_err_unknown_type, ERR("unknown_type", "Unknown message type: foo"),
     ERR_KEYS},
    {enc_err_missing_field,
     ERR("missing_field", "Missing required field: eventId"), ERR_KEYS},
    {enc_err_invalid_field, ERR("invalid_field", "Invalid eventId"), ERR_KEYS},
    {enc_err_not_found, ERR("not_found", "Event 123 not found"), ERR_KEYS},
    {enc_err_forbidden, ERR("forbidden", "Access to event 123 denied"),
     ERR_KEYS},
    {enc_err_limit, ERR("limit_exceeded", "Subscription limit reached"),
     ERR_KEYS},
    {enc_err_rate_limited, ERR("rate_limited", "Too many messages"), ERR_KEYS},
};

#define NENC ((int)(sizeof(enc_cases) / sizeof(enc_cases[0])))

/* Checks that text parses and its object has exactly keys, in order. */
static void
assert_keys(const char *text, const char *const *keys)
{
    cJSON *root = cJSON_Parse(text);
    const cJSON *it;
    int i = 0;

    ck_assert_msg(root != NULL, "not JSON: %s", text);
    ck_assert(cJSON_IsObject(root));
    cJSON_ArrayForEach(it, root)
    {
        ck_assert_msg(keys[i] != NULL, "extra key %s in %s", it->string, text);
        ck_assert_str_eq(it->string, keys[i]);
        i++;
    }
    ck_assert_msg(keys[i] == NULL, "missing key %s in %s", keys[i], text);
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "type")));
    ck_assert(
        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "timestamp")));
    cJSON_Delete(root);
}

START_TEST(encode_exact)
{
    const struct enc_case *c = &enc_cases[_i];
    char out[SC_PROTO_MSG_MAX];
    long n;

    n = c->fn(out, sizeof(out));
    ck_assert_int_eq(n, (long)strlen(c->want));
    ck_assert_str_eq(out, c->want);
    assert_keys(out, c->keys);
}
END_TEST

/* Every cap from 0 up: -1 while the text and its NUL do not fit, the
 * length once they do, and never a byte written at or past cap. */
START_TEST(encode_caps)
{
    const struct enc_case *c = &enc_cases[_i];
    size_t len = strlen(c->want);
    char buf[SC_PROTO_MSG_MAX + 16];

    ck_assert_uint_lt(len + 8, sizeof(buf));
    for (size_t cap = 0; cap <= len + 4; cap++) {
        long n;
        memset(buf, 0xa5, sizeof(buf));
        n = c->fn(buf, cap);
        if (cap <= len) {
            ck_assert_msg(n == -1, "cap %zu of %zu: got %ld", cap, len, n);
        } else {
            ck_assert_int_eq(n, (long)len);
            ck_assert_str_eq(buf, c->want);
        }
        for (size_t i = cap; i < sizeof(buf); i++) {
            ck_assert_msg((unsigned char)buf[i] == 0xa5,
                          "cap %zu: byte %zu written", cap, i);
        }
    }
}
END_TEST

START_TEST(stats_data_keys)
{
    char out[SC_PROTO_MSG_MAX];
    const char *const keys[] = {"totalClients", "eventSubscriptions", NULL};
    cJSON *root, *data;
    const cJSON *it;
    int i = 0;

    ck_assert_int_gt(sc_proto_stats(out, sizeof(out), UINT64_C(1) << 40, 0, 0),
                     0);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    data = cJSON_GetObjectItemCaseSensitive(root, "data");
    ck_assert(cJSON_IsObject(data));
    cJSON_ArrayForEach(it, data)
    {
        ck_assert_ptr_nonnull(keys[i]);
        ck_assert_str_eq(it->string, keys[i]);
        ck_assert(cJSON_IsNumber(it));
        i++;
    }
    ck_assert_int_eq(i, 2);
    ck_assert(
        cJSON_GetObjectItemCaseSensitive(data, "totalClients")->valuedouble ==
        1099511627776.0);
    cJSON_Delete(root);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Error text escaping                                                 */

static const char *const hostile_types[] = {
    "a\"b",
    "back\\slash",
    "\"\\\"\\",
    "ctl\x01\x02\x1f end",
    "nl\n cr\r tab\t",
    "del\x7f",
    "</script>",
    "\xc3\xa9t\xc3\xa9",
    "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\""
    "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01",
};

START_TEST(error_escapes_type)
{
    struct sc_client_msg m;
    char out[1024], want[128];
    cJSON *root, *msg;
    long n;

    memset(&m, 0, sizeof(m));
    snprintf(m.bad_type, sizeof(m.bad_type), "%s", hostile_types[_i]);
    snprintf(want, sizeof(want), "Unknown message type: %s", m.bad_type);
    n = sc_proto_parse_error(out, sizeof(out), SC_PROTO_UNKNOWN_TYPE, &m, T0);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(out), (size_t)n);
    for (long i = 0; i < n; i++) {
        ck_assert_msg((unsigned char)out[i] >= 0x20, "raw control byte at %ld",
                      i);
    }
    assert_keys(out, (const char *const[])ERR_KEYS);
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(root, "code")->valuestring,
        "unknown_type");
    msg = cJSON_GetObjectItemCaseSensitive(root, "message");
    ck_assert(cJSON_IsString(msg));
    ck_assert_str_eq(msg->valuestring, want);
    cJSON_Delete(root);
}
END_TEST

/* From the wire to the error frame: parse, then answer. */
START_TEST(error_round_trip)
{
    const char *in = "{\"type\":\"x\\\"y\\\\z\\u0007\"}";
    struct sc_client_msg m;
    char out[512];
    cJSON *root;

    ck_assert_int_eq(sc_proto_parse(in, strlen(in), &m), SC_PROTO_UNKNOWN_TYPE);
    ck_assert_int_gt(
        sc_proto_parse_error(out, sizeof(out), SC_PROTO_UNKNOWN_TYPE, &m, T0),
        0);
    ck_assert_str_eq(out, "{\"type\":\"error\",\"code\":\"unknown_type\","
                          "\"message\":\"Unknown message type: "
                          "x\\\"y\\\\z\\u0007\",\"timestamp\":\"" TS0 "\"}");
    root = cJSON_Parse(out);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(root, "message")->valuestring,
        "Unknown message type: x\"y\\z\a");
    cJSON_Delete(root);
}
END_TEST

START_TEST(server_error_ids)
{
    char out[SC_PROTO_MSG_MAX];

    ck_assert_int_gt(sc_proto_server_error(out, sizeof(out), SC_PERR_NOT_FOUND,
                                           UINT64_C(9007199254740991), T0),
                     0);
    ck_assert_str_eq(out, ERR("not_found", "Event 9007199254740991 not found"));
    ck_assert_int_gt(
        sc_proto_server_error(out, sizeof(out), SC_PERR_FORBIDDEN, 1, T0), 0);
    ck_assert_str_eq(out, ERR("forbidden", "Access to event 1 denied"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Timestamps                                                          */

struct ts_case {
    uint64_t ms;
    const char *want;
};

static const struct ts_case ts_cases[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {999, "1970-01-01T00:00:00.999Z"},
    {1000, "1970-01-01T00:00:01.000Z"},
    {86399999, "1970-01-01T23:59:59.999Z"},
    {UINT64_C(1731321000000), "2024-11-11T10:30:00.000Z"},
    {UINT64_C(1731321059999), "2024-11-11T10:30:59.999Z"},
    {UINT64_C(1709251199999), "2024-02-29T23:59:59.999Z"},
    {UINT64_C(2147483647999), "2038-01-19T03:14:07.999Z"},
    {UINT64_C(2147483648000), "2038-01-19T03:14:08.000Z"},
    {UINT64_C(4102444799999), "2099-12-31T23:59:59.999Z"},
    {UINT64_C(4107542399999), "2100-02-28T23:59:59.999Z"},
    {UINT64_C(4107542400000), "2100-03-01T00:00:00.000Z"},
    {UINT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
};

START_TEST(timestamp_table)
{
    char ts[26];
    char out[SC_PROTO_MSG_MAX], want[SC_PROTO_MSG_MAX];

    memset(ts, 'Q', sizeof(ts));
    sc_proto_timestamp(ts_cases[_i].ms, ts);
    ck_assert_str_eq(ts, ts_cases[_i].want);
    ck_assert_int_eq(ts[25], 'Q');
    /* and as it appears in a message */
    snprintf(want, sizeof(want), "{\"type\":\"pong\",\"timestamp\":\"%s\"}",
             ts_cases[_i].want);
    ck_assert_int_eq(sc_proto_pong(out, sizeof(out), ts_cases[_i].ms),
                     (long)strlen(want));
    ck_assert_str_eq(out, want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Client ids                                                          */

static int
cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static uint64_t
splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

START_TEST(client_id_format)
{
    static const uint64_t times[] = {0, 1, UINT64_C(1699123456789), UINT64_MAX};
    static const uint64_t rands[] = {0,         1, 35, 36, UINT64_C(0xdeadbeef),
                                     UINT64_MAX};
    regex_t re;
    char id[48];

    ck_assert_int_eq(
        regcomp(&re, "^ws_[0-9]+_[0-9a-z]{9}$", REG_EXTENDED | REG_NOSUB), 0);
    for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
        for (size_t r = 0; r < sizeof(rands) / sizeof(rands[0]); r++) {
            char prefix[32];
            memset(id, 0, sizeof(id));
            sc_proto_client_id(id, sizeof(id), times[t], rands[r]);
            ck_assert_msg(regexec(&re, id, 0, NULL, 0) == 0, "bad id %s", id);
            snprintf(prefix, sizeof(prefix), "ws_%llu_",
                     (unsigned long long)times[t]);
            ck_assert_int_eq(strncmp(id, prefix, strlen(prefix)), 0);
        }
    }
    regfree(&re);
    sc_proto_client_id(id, sizeof(id), UINT64_C(1699123456789), 0);
    ck_assert_str_eq(id, "ws_1699123456789_000000000");
}
END_TEST

START_TEST(client_id_unique)
{
    enum { N = 5000 };
    static char ids[N][48];
    uint64_t seed = 42;

    for (int i = 0; i < N; i++) {
        sc_proto_client_id(ids[i], sizeof(ids[i]), UINT64_C(1731321000000),
                           splitmix(&seed));
    }
    /* small randoms too: they differ in the low digits */
    for (int i = 0; i < 100; i++) {
        sc_proto_client_id(ids[i], sizeof(ids[i]), UINT64_C(1731321000000),
                           (uint64_t)i);
    }
    qsort(ids, N, sizeof(ids[0]), cmp_str);
    for (int i = 1; i < N; i++) {
        ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "duplicate %s", ids[i]);
    }
}
END_TEST

static Suite *
proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tp = tcase_create("parse");
    TCase *te = tcase_create("encode");
    TCase *tc = tcase_create("client_id");

    tcase_add_loop_test(tp, parse_table, 0, NPARSE);
    tcase_add_test(tp, parse_uses_len_only);
    tcase_add_loop_test(tp, parse_raw_control_byte, 0,
                        sizeof(raw_control) / sizeof(raw_control[0]));
    tcase_add_loop_test(tp, parse_escaped_nul, 0,
                        (int)(sizeof(escaped_nul) / sizeof(escaped_nul[0])));
    tcase_add_loop_test(
        tp, parse_unknown_type, 0,
        (int)(sizeof(bad_type_cases) / sizeof(bad_type_cases[0])));
    tcase_add_test(tp, parse_long_type_is_cut);
    tcase_add_loop_test(
        tp, parse_long_type_cut_keeps_utf8, 0,
        (int)(sizeof(multibyte_tails) / sizeof(multibyte_tails[0])));
    suite_add_tcase(s, tp);

    tcase_add_loop_test(te, encode_exact, 0, NENC);
    tcase_add_loop_test(te, encode_caps, 0, NENC);
    tcase_add_test(te, stats_data_keys);
    tcase_add_loop_test(
        te, error_escapes_type, 0,
        (int)(sizeof(hostile_types) / sizeof(hostile_types[0])));
    tcase_add_test(te, error_round_trip);
    tcase_add_test(te, server_error_ids);
    tcase_add_loop_test(te, timestamp_table, 0,
                        (int)(sizeof(ts_cases) / sizeof(ts_cases[0])));
    suite_add_tcase(s, te);

    tcase_add_test(tc, client_id_format);
    tcase_add_test(tc, client_id_unique);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
