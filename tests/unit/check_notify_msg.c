/*
 * check_notify_msg.c - NOTIFY payload parsing: every type, every field,
 * strictness (integers only, ranges, trailing data), buffer boundaries
 */
#include "notify_msg.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define JTI128                                                                 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"         \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct ok_case {
    const char *payload;
    enum sc_notify_type type;
    uint64_t event_id;
    int32_t available;
    int32_t capacity;
    int64_t version;
    bool has_version;
    int64_t ts;
    const char *jti;
};

static const struct ok_case ok_cases[] = {
    /* exactly what sql/notify.sql sends (json_build_object spacing) */
    {"{\"type\" : \"booking_created\", \"eventId\" : 1, \"availableSeats\" : "
     "1, \"seatCapacity\" : 3, \"version\" : 1, \"ts\" : 1795650136728}",
     SC_NOTIFY_BOOKING_CREATED, 1, 1, 3, 1, true, 1795650136728, ""},
    {"{\"type\":\"booking_cancelled\",\"eventId\":123,\"availableSeats\":45,"
     "\"seatCapacity\":100,\"version\":18}",
     SC_NOTIFY_BOOKING_CANCELLED, 123, 45, 100, 18, true, 0, ""},
    {"{\"type\":\"seat_update\",\"eventId\":\"123\",\"availableSeats\":0,"
     "\"seatCapacity\":0,\"version\":0,\"ts\":0}",
     SC_NOTIFY_SEAT_UPDATE, 123, 0, 0, 0, true, 0, ""},
    {"{\"type\":\"event_deleted\",\"eventId\":7}", SC_NOTIFY_EVENT_DELETED, 7,
     0, 0, 0, false, 0, ""},
    {"{\"type\" : \"event_deleted\", \"eventId\" : 1, \"version\" : 6, "
     "\"ts\" : 1795650136731}",
     SC_NOTIFY_EVENT_DELETED, 1, 0, 0, 6, true, 1795650136731, ""},
    /* event_deleted ignores seat fields, even malformed ones */
    {"{\"type\":\"event_deleted\",\"eventId\":\"9\",\"availableSeats\":1.5}",
     SC_NOTIFY_EVENT_DELETED, 9, 0, 0, 0, false, 0, ""},
    {"{\"type\" : \"token_revoked\", \"jti\" : \"abc\", \"ts\" : 17}",
     SC_NOTIFY_TOKEN_REVOKED, 0, 0, 0, 0, false, 17, "abc"},
    {"{\"jti\":\"a\\\"b\\\\c\\/d\\u0041 ~\",\"type\":\"token_revoked\"}",
     SC_NOTIFY_TOKEN_REVOKED, 0, 0, 0, 0, false, 0, "a\"b\\c/dA ~"},
    {"{\"type\":\"token_revoked\",\"jti\":\"" JTI128 "\"}",
     SC_NOTIFY_TOKEN_REVOKED, 0, 0, 0, 0, false, 0, JTI128},
    /* token_revoked ignores eventId */
    {"{\"type\":\"token_revoked\",\"jti\":\"x\",\"eventId\":-1}",
     SC_NOTIFY_TOKEN_REVOKED, 0, 0, 0, 0, false, 0, "x"},
    /* limits: 2^53-1, INT32_MAX, INT64_MAX */
    {"{\"type\":\"seat_update\",\"eventId\":9007199254740991,"
     "\"availableSeats\":2147483647,\"seatCapacity\":2147483647,"
     "\"version\":9223372036854775807,\"ts\":9223372036854775807}",
     SC_NOTIFY_SEAT_UPDATE, 9007199254740991ull, 2147483647, 2147483647,
     INT64_MAX, true, INT64_MAX, ""},
    {"{\"type\":\"seat_update\",\"eventId\":\"9007199254740991\","
     "\"availableSeats\":1,\"seatCapacity\":2,\"version\":3}",
     SC_NOTIFY_SEAT_UPDATE, 9007199254740991ull, 1, 2, 3, true, 0, ""},
    /* any member order, surrounding whitespace, unknown members of any
     * shape (with tricky strings) are skipped */
    {" \t\r\n{\"version\":5,\"x\":{\"a\":[1.5,{\"b\":\"}]\\\"\"}],\"c\":null},"
     "\"seatCapacity\":10,\"availableSeats\":9,\"y\":[],\"eventId\":2,"
     "\"z\":true,\"type\":\"booking_created\",\"w\":-1e9}\n ",
     SC_NOTIFY_BOOKING_CREATED, 2, 9, 10, 5, true, 0, ""},
    /* members a type does not use may be given */
    {"{\"type\":\"seat_update\",\"eventId\":4,\"availableSeats\":1,"
     "\"seatCapacity\":1,\"version\":1,\"jti\":42}",
     SC_NOTIFY_SEAT_UPDATE, 4, 1, 1, 1, true, 0, ""},
};

START_TEST(parses_valid)
{
    const struct ok_case *c = &ok_cases[_i];
    struct sc_notify n;
    const char *reason = "unset";
    int rc;

    rc = sc_notify_parse(c->payload, strlen(c->payload), &n, &reason);
    ck_assert_msg(rc == 0, "case %d: rc %d (%s)", _i, rc,
                  reason ? reason : "-");
    ck_assert_ptr_null(reason);
    ck_assert_int_eq(n.type, c->type);
    ck_assert_uint_eq(n.event_id, c->event_id);
    ck_assert_int_eq(n.available_seats, c->available);
    ck_assert_int_eq(n.seat_capacity, c->capacity);
    ck_assert_int_eq(n.version, c->version);
    ck_assert_int_eq(n.has_version, c->has_version);
    ck_assert_int_eq(n.ts_ms, c->ts);
    ck_assert_str_eq(n.jti, c->jti);
}
END_TEST

struct bad_case {
    const char *payload;
    int rc;
    const char *reason;
};

/* A complete, valid seat_update with one member replaced. */
#define SU_ID(v)                                                               \
    "{\"type\":\"seat_update\",\"eventId\":" v ",\"availableSeats\":1,"        \
    "\"seatCapacity\":2,\"version\":3}"
#define SU_AV(v)                                                               \
    "{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":" v ","        \
    "\"seatCapacity\":2147483647,\"version\":3}"
#define SU_CAP(v)                                                              \
    "{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":0,"            \
    "\"seatCapacity\":" v ",\"version\":3}"
#define SU_VER(v)                                                              \
    "{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":0,"            \
    "\"seatCapacity\":2,\"version\":" v "}"
#define SU_TS(v)                                                               \
    "{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":0,"            \
    "\"seatCapacity\":2,\"version\":3,\"ts\":" v "}"
#define TR_JTI(v) "{\"type\":\"token_revoked\",\"jti\":" v "}"
#define VALID SU_ID("1")

#define EJ SC_NOTIFY_EJSON
#define ET SC_NOTIFY_ETYPE
#define EM SC_NOTIFY_EMISSING
#define EF SC_NOTIFY_EFIELD

static const struct bad_case bad_cases[] = {
    /* not JSON, not an object, trailing data */
    {"", EJ, "invalid JSON"},
    {"   ", EJ, "invalid JSON"},
    {"garbage", EJ, "invalid JSON"},
    {"{\"type\":\"seat_update\"", EJ, "invalid JSON"},
    {"{\"type\":\"seat_update\",}", EJ, "invalid JSON"},
    {"{'type':'seat_update'}", EJ, "invalid JSON"},
    {"[{\"type\":\"seat_update\"}]", EJ, "payload is not a JSON object"},
    {"\"seat_update\"", EJ, "payload is not a JSON object"},
    {"42", EJ, "payload is not a JSON object"},
    {"null", EJ, "payload is not a JSON object"},
    {VALID " x", EJ, "trailing data after JSON object"},
    {VALID VALID, EJ, "trailing data after JSON object"},
    {VALID ",", EJ, "trailing data after JSON object"},
    {VALID "\x01", EJ, "trailing data after JSON object"},
    {VALID "\f", EJ, "trailing data after JSON object"},
    /* whitespace that is not JSON whitespace, a byte order mark */
    {"\x01" VALID, EJ, "invalid JSON"},
    {"\f" VALID, EJ, "invalid JSON"},
    {"\xef\xbb\xbf" VALID, EJ, "invalid JSON"},
    /* type */
    {"{}", ET, "missing field type"},
    {"{\"eventId\":1,\"availableSeats\":1,\"seatCapacity\":2,\"version\":3}",
     ET, "missing field type"},
    {"{\"type\":5}", ET, "invalid field type"},
    {"{\"type\":null}", ET, "invalid field type"},
    {"{\"type\":[\"seat_update\"]}", ET, "invalid field type"},
    {"{\"type\":\"seat_update\\u0000\"}", ET, "invalid field type"},
    {"{\"type\":\"booking_updated\"}", ET, "unknown type"},
    {"{\"type\":\"SEAT_UPDATE\"}", ET, "unknown type"},
    {"{\"type\":\"\"}", ET, "unknown type"},
    {"{\"type\":\"seat_update_with_a_very_long_suffix_beyond_32\"}", ET,
     "unknown type"},
    {"{\"Type\":\"seat_update\"}", ET, "missing field type"},
    /* duplicates */
    {"{\"type\":\"seat_update\",\"type\":\"seat_update\"}", EF,
     "duplicate field type"},
    {"{\"type\":\"event_deleted\",\"eventId\":1,\"eventId\":2}", EF,
     "duplicate field eventId"},
    /* missing members, per type */
    {"{\"type\":\"booking_created\",\"availableSeats\":1,\"seatCapacity\":2,"
     "\"version\":3}",
     EM, "missing field eventId"},
    {"{\"type\":\"booking_cancelled\",\"eventId\":1,\"seatCapacity\":2,"
     "\"version\":3}",
     EM, "missing field availableSeats"},
    {"{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":1,"
     "\"version\":3}",
     EM, "missing field seatCapacity"},
    {"{\"type\":\"booking_created\",\"eventId\":1,\"availableSeats\":1,"
     "\"seatCapacity\":2}",
     EM, "missing field version"},
    {"{\"type\":\"event_deleted\"}", EM, "missing field eventId"},
    {"{\"type\":\"event_deleted\",\"version\":1}", EM, "missing field eventId"},
    {"{\"type\":\"token_revoked\"}", EM, "missing field jti"},
    {"{\"type\":\"token_revoked\",\"eventId\":1}", EM, "missing field jti"},
    /* eventId */
    {SU_ID("0"), EF, "eventId out of range"},
    {SU_ID("-1"), EF, "eventId out of range"},
    {SU_ID("-0"), EF, "eventId out of range"},
    {SU_ID("9007199254740992"), EF, "eventId out of range"},
    {SU_ID("18446744073709551616"), EF, "eventId out of range"},
    {SU_ID("99999999999999999999999999999999"), EF, "eventId out of range"},
    {SU_ID("1.5"), EF, "invalid field eventId"},
    {SU_ID("1.0"), EF, "invalid field eventId"},
    {SU_ID("1e3"), EF, "invalid field eventId"},
    {SU_ID("1E3"), EF, "invalid field eventId"},
    {SU_ID("01"), EF, "invalid field eventId"},
    {SU_ID("true"), EF, "invalid field eventId"},
    {SU_ID("null"), EF, "invalid field eventId"},
    {SU_ID("[1]"), EF, "invalid field eventId"},
    {SU_ID("{\"id\":1}"), EF, "invalid field eventId"},
    {SU_ID("\"\""), EF, "invalid field eventId"},
    {SU_ID("\"12a\""), EF, "invalid field eventId"},
    {SU_ID("\" 12\""), EF, "invalid field eventId"},
    {SU_ID("\"-5\""), EF, "invalid field eventId"},
    {SU_ID("\"+5\""), EF, "invalid field eventId"},
    {SU_ID("\"007\""), EF, "invalid field eventId"},
    {SU_ID("\"1.5\""), EF, "invalid field eventId"},
    {SU_ID("\"\\u0031\""), EF, "invalid field eventId"},
    {SU_ID("\"0\""), EF, "eventId out of range"},
    {SU_ID("\"9007199254740992\""), EF, "eventId out of range"},
    /* availableSeats and seatCapacity */
    {SU_AV("-1"), EF, "availableSeats out of range"},
    {SU_AV("2147483648"), EF, "availableSeats out of range"},
    {SU_AV("1.5"), EF, "invalid field availableSeats"},
    {SU_AV("1e1"), EF, "invalid field availableSeats"},
    {SU_AV("\"5\""), EF, "invalid field availableSeats"},
    {SU_AV("false"), EF, "invalid field availableSeats"},
    {SU_CAP("-1"), EF, "seatCapacity out of range"},
    {SU_CAP("2147483648"), EF, "seatCapacity out of range"},
    {SU_CAP("2.0"), EF, "invalid field seatCapacity"},
    {SU_CAP("\"2\""), EF, "invalid field seatCapacity"},
    {"{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":3,"
     "\"seatCapacity\":2,\"version\":3}",
     EF, "availableSeats exceeds seatCapacity"},
    /* version */
    {SU_VER("-1"), EF, "version out of range"},
    {SU_VER("9223372036854775808"), EF, "version out of range"},
    {SU_VER("1e2"), EF, "invalid field version"},
    {SU_VER("\"17\""), EF, "invalid field version"},
    {"{\"type\":\"event_deleted\",\"eventId\":1,\"version\":0.5}", EF,
     "invalid field version"},
    {"{\"type\":\"event_deleted\",\"eventId\":1,\"version\":-2}", EF,
     "version out of range"},
    /* ts, optional but checked when present */
    {SU_TS("-1"), EF, "ts out of range"},
    {SU_TS("1.5"), EF, "invalid field ts"},
    {SU_TS("1731321000000.0"), EF, "invalid field ts"},
    {SU_TS("\"1731321000000\""), EF, "invalid field ts"},
    {SU_TS("9223372036854775808"), EF, "ts out of range"},
    {"{\"type\":\"token_revoked\",\"jti\":\"a\",\"ts\":null}", EF,
     "invalid field ts"},
    /* jti */
    {TR_JTI("\"" JTI128 "x\""), EF, "jti too long"},
    {TR_JTI("\"\""), EF, "invalid field jti"},
    {TR_JTI("5"), EF, "invalid field jti"},
    {TR_JTI("null"), EF, "invalid field jti"},
    {TR_JTI("\"a\\nb\""), EF, "invalid field jti"},
    {TR_JTI("\"a\\u0000b\""), EF, "invalid field jti"},
    {TR_JTI("\"a\\u00e9\""), EF, "invalid field jti"},
    {TR_JTI("\"a\xc3\xa9\""), EF, "invalid field jti"},
    {TR_JTI("\"a\x7f\""), EF, "invalid field jti"},
};

START_TEST(rejects_invalid)
{
    const struct bad_case *c = &bad_cases[_i];
    struct sc_notify n;
    const char *reason = NULL;
    int rc;

    rc = sc_notify_parse(c->payload, strlen(c->payload), &n, &reason);
    ck_assert_msg(rc == c->rc, "case %d \"%s\": rc %d, want %d (%s)", _i,
                  c->payload, rc, c->rc, reason ? reason : "-");
    if (c->reason == NULL) {
        ck_assert_ptr_null(reason);
    } else {
        ck_assert_ptr_nonnull(reason);
        ck_assert_str_eq(reason, c->reason);
    }
}
END_TEST

START_TEST(null_arguments)
{
    struct sc_notify n;
    const char *reason = NULL;

    ck_assert_int_eq(sc_notify_parse(NULL, 0, &n, &reason), SC_NOTIFY_EARG);
    ck_assert_ptr_nonnull(reason);
    ck_assert_int_eq(sc_notify_parse(VALID, strlen(VALID), NULL, &reason),
                     SC_NOTIFY_EARG);
    /* reason is optional */
    ck_assert_int_eq(sc_notify_parse(VALID, strlen(VALID), &n, NULL), 0);
    ck_assert_int_eq(sc_notify_parse("{}", 2, &n, NULL), SC_NOTIFY_ETYPE);
}
END_TEST

START_TEST(length_is_honoured)
{
    char buf[256];
    struct sc_notify n;
    const char *reason = NULL;
    size_t len = strlen(VALID);

    /* not NUL-terminated: only len bytes count */
    snprintf(buf, sizeof(buf), "%sGARBAGE", VALID);
    ck_assert_int_eq(sc_notify_parse(buf, len, &n, &reason), 0);
    ck_assert_uint_eq(n.event_id, 1);
    /* one byte short: the object is cut */
    ck_assert_int_eq(sc_notify_parse(buf, len - 1, &n, &reason),
                     SC_NOTIFY_EJSON);
    ck_assert_str_eq(reason, "invalid JSON");
    /* an embedded NUL is an error, not an end */
    memcpy(buf, VALID, len);
    buf[len] = '\0';
    buf[len + 1] = ' ';
    ck_assert_int_eq(sc_notify_parse(buf, len + 2, &n, &reason),
                     SC_NOTIFY_EJSON);
    ck_assert_str_eq(reason, "NUL byte in payload");
    ck_assert_int_eq(sc_notify_parse(buf, 0, &n, &reason), SC_NOTIFY_EJSON);
}
END_TEST

START_TEST(size_limit)
{
    static char buf[SC_NOTIFY_MAX_PAYLOAD + 2];
    struct sc_notify n;
    const char *reason = NULL;
    size_t len = strlen(VALID);

    /* the largest payload NOTIFY allows: padded with whitespace */
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, VALID, len);
    ck_assert_int_eq(sc_notify_parse(buf, SC_NOTIFY_MAX_PAYLOAD, &n, &reason),
                     0);
    ck_assert_int_eq(
        sc_notify_parse(buf, SC_NOTIFY_MAX_PAYLOAD + 1, &n, &reason),
        SC_NOTIFY_EJSON);
    ck_assert_str_eq(reason, "payload too long");
}
END_TEST

/*
 * Payloads that end where an unreadable page begins: any read past len
 * faults (picohttpparser's trick).
 */
START_TEST(guard_page)
{
    static const char *const inputs[] = {
        VALID,
        "{\"type\":\"token_revoked\",\"jti\":\"" JTI128 "\"}",
        "{\"type\":\"token_revoked\",\"jti\":\"abc\\",
        "{\"type\":\"seat_update\",\"eventId\":\"12",
        "{\"type\":\"seat_update\",\"eventId\":12",
        "{\"a\":[[[[{\"b\":\"\\",
        "{",
        "1",
        "",
    };
    long page = sysconf(_SC_PAGESIZE);
    char *map;

    ck_assert_int_gt(page, 0);
    map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        size_t len = strlen(inputs[i]);
        char *p = map + page - len;
        struct sc_notify n;
        const char *reason = NULL;
        int rc;

        memcpy(p, inputs[i], len);
        rc = sc_notify_parse(p, len, &n, &reason);
        ck_assert_int_eq(rc, i < 2 ? 0 : SC_NOTIFY_EJSON);
    }
    munmap(map, (size_t)page * 2);
}
END_TEST

/* Every prefix of a valid payload is refused, without crashing. */
START_TEST(every_prefix)
{
    static const char p[] =
        "{\"type\":\"token_revoked\",\"jti\":\"a\\\"b\",\"x\":[1,{\"y\":2}]}";
    struct sc_notify n;
    const char *reason;

    for (size_t len = 0; len < sizeof(p) - 1; len++) {
        reason = NULL;
        ck_assert_int_eq(sc_notify_parse(p, len, &n, &reason), SC_NOTIFY_EJSON);
        ck_assert_ptr_nonnull(reason);
    }
    ck_assert_int_eq(sc_notify_parse(p, sizeof(p) - 1, &n, &reason), 0);
    ck_assert_str_eq(n.jti, "a\"b");
}
END_TEST

/* Deep nesting in an unknown member is skipped (cJSON limits it). */
START_TEST(deep_nesting)
{
    char buf[4096];
    size_t o = 0;
    struct sc_notify n;
    const char *reason = NULL;

    o += (size_t)snprintf(buf, sizeof(buf), "{\"deep\":");
    for (int i = 0; i < 500; i++) {
        buf[o++] = '[';
    }
    for (int i = 0; i < 500; i++) {
        buf[o++] = ']';
    }
    o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                          ",\"type\":\"event_deleted\",\"eventId\":3}");
    ck_assert_int_eq(sc_notify_parse(buf, o, &n, &reason), 0);
    ck_assert_uint_eq(n.event_id, 3);

    /* beyond cJSON's nesting limit: refused, not a crash */
    o = 0;
    buf[o++] = '{';
    buf[o++] = '"';
    buf[o++] = 'd';
    buf[o++] = '"';
    buf[o++] = ':';
    for (int i = 0; i < 2000; i++) {
        buf[o++] = '[';
    }
    for (int i = 0; i < 2000; i++) {
        buf[o++] = ']';
    }
    buf[o++] = '}';
    ck_assert_int_eq(sc_notify_parse(buf, o, &n, &reason), SC_NOTIFY_EJSON);
}
END_TEST

START_TEST(type_names)
{
    static const char *const names[] = {"booking_created", "booking_cancelled",
                                        "seat_update", "event_deleted",
                                        "token_revoked"};

    for (int t = 0; t < 5; t++) {
        ck_assert_str_eq(sc_notify_type_name((enum sc_notify_type)t), names[t]);
    }
    ck_assert_ptr_null(sc_notify_type_name((enum sc_notify_type)5));
}
END_TEST

/* --- verification against the database ----------------------------- */

static struct sc_notify
hint(enum sc_notify_type t, uint64_t id, int32_t a, int32_t c, int64_t v)
{
    struct sc_notify n;

    memset(&n, 0, sizeof(n));
    n.type = t;
    n.event_id = id;
    n.available_seats = a;
    n.seat_capacity = c;
    n.version = v;
    n.has_version = true;
    return n;
}

START_TEST(verify_against_rows)
{
    const struct sc_seat_row rows[] = {{1, 40, 100, 7}, {2, 0, 5, 3}};
    const char *const revoked[] = {"real-jti"};
    struct sc_notify h[10];
    enum sc_notify_verdict v[10];

    h[0] = hint(SC_NOTIFY_BOOKING_CREATED, 1, 41, 100, 6); /* older */
    h[1] = hint(SC_NOTIFY_BOOKING_CREATED, 1, 99, 100, 7); /* current, lies */
    h[2] = hint(SC_NOTIFY_SEAT_UPDATE, 1, 0, 100, INT64_MAX); /* ahead */
    h[3] = hint(SC_NOTIFY_SEAT_UPDATE, 3, 1, 2, 1);       /* no such event */
    h[4] = hint(SC_NOTIFY_EVENT_DELETED, 2, 0, 0, 4);     /* still there */
    h[5] = hint(SC_NOTIFY_EVENT_DELETED, 9, 0, 0, 4);     /* gone: fine */
    h[6] = hint(SC_NOTIFY_TOKEN_REVOKED, 0, 0, 0, 0);
    snprintf(h[6].jti, sizeof(h[6].jti), "real-jti");
    h[7] = hint(SC_NOTIFY_TOKEN_REVOKED, 0, 0, 0, 0);
    snprintf(h[7].jti, sizeof(h[7].jti), "forged-jti");
    h[8] = hint(SC_NOTIFY_SEAT_UPDATE, 2, 5, 5, 3);       /* current */
    h[9] = hint(SC_NOTIFY_SEAT_UPDATE, 2, 0, 5, 4);       /* one ahead */
    sc_notify_verify(h, 10, rows, 2, revoked, 1, v);
    ck_assert_int_eq(v[0], SC_VERIFY_APPLY);
    ck_assert_int_eq(h[0].available_seats, 41); /* intermediate: as sent */
    ck_assert_int_eq(v[1], SC_VERIFY_APPLY);
    ck_assert_int_eq(h[1].available_seats, 40); /* the database's */
    ck_assert_int_eq(h[1].seat_capacity, 100);
    ck_assert_int_eq(v[2], SC_VERIFY_FORGED);
    ck_assert_int_eq(v[3], SC_VERIFY_UNKNOWN);
    ck_assert_int_eq(v[4], SC_VERIFY_FORGED);
    ck_assert_int_eq(v[5], SC_VERIFY_APPLY);
    ck_assert_int_eq(v[6], SC_VERIFY_APPLY);
    ck_assert_int_eq(v[7], SC_VERIFY_FORGED);
    ck_assert_int_eq(v[8], SC_VERIFY_APPLY);
    ck_assert_int_eq(h[8].available_seats, 0);
    ck_assert_int_eq(v[9], SC_VERIFY_FORGED);
    /* nothing known: every seat hint unknown, every jti forged */
    sc_notify_verify(h, 3, NULL, 0, NULL, 0, v);
    ck_assert_int_eq(v[0], SC_VERIFY_UNKNOWN);
    ck_assert_int_eq(v[2], SC_VERIFY_UNKNOWN);
}
END_TEST

static Suite *
notify_msg_suite(void)
{
    Suite *s = suite_create("notify_msg");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, parses_valid, 0,
                        (int)(sizeof(ok_cases) / sizeof(ok_cases[0])));
    tcase_add_loop_test(tc, rejects_invalid, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, null_arguments);
    tcase_add_test(tc, length_is_honoured);
    tcase_add_test(tc, size_limit);
    tcase_add_test(tc, guard_page);
    tcase_add_test(tc, every_prefix);
    tcase_add_test(tc, deep_nesting);
    tcase_add_test(tc, type_names);
    tcase_add_test(tc, verify_against_rows);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(notify_msg_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
