/*
 * check_text.c - the shared text helpers (text.c): one event-id rule, one
 * JSON string escaper, one ASCII case-insensitive comparison
 */
#include "text.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *s;
    bool zeros;
    int rc;
    uint64_t id;
} digit_cases[] = {
    {"1", false, 0, 1},
    {"123", false, 0, 123},
    {"9007199254740991", false, 0, SC_EVENT_ID_MAX},
    {"9007199254740992", false, -1, 0}, /* 2^53 */
    {"9999999999999999", false, -1, 0},
    {"10000000000000000", false, -1, 0}, /* 17 digits */
    {"0", false, -1, 0},
    {"0", true, -1, 0},
    {"007", false, -1, 0}, /* a URL has one spelling */
    {"007", true, 0, 7},   /* a JSON string may pad */
    {"0000000000000007", true, 0, 7},
    {"00000000000000007", true, -1, 0}, /* 17 characters */
    {"", true, -1, 0},
    {"-1", true, -1, 0},
    {"+1", true, -1, 0},
    {"1a", true, -1, 0},
    {" 1", true, -1, 0},
};

START_TEST(event_id_digits)
{
    uint64_t id = 0;
    int rc = sc_event_id_digits(digit_cases[_i].s, strlen(digit_cases[_i].s),
                                digit_cases[_i].zeros, &id);

    ck_assert_msg(rc == digit_cases[_i].rc, "\"%s\": rc %d",
                  digit_cases[_i].s, rc);
    if (rc == 0) {
        ck_assert_uint_eq(id, digit_cases[_i].id);
    }
}
END_TEST

START_TEST(event_id_number)
{
    uint64_t id = 0;

    ck_assert_int_eq(sc_event_id_number(1, &id), 0);
    ck_assert_uint_eq(id, 1);
    ck_assert_int_eq(sc_event_id_number(9007199254740991.0, &id), 0);
    ck_assert_uint_eq(id, SC_EVENT_ID_MAX);
    ck_assert_int_eq(sc_event_id_number(9007199254740992.0, &id), -1);
    ck_assert_int_eq(sc_event_id_number(0, &id), -1);
    ck_assert_int_eq(sc_event_id_number(-5, &id), -1);
    ck_assert_int_eq(sc_event_id_number(1.5, &id), -1);
    ck_assert_int_eq(sc_event_id_number(0.0 / 0.0, &id), -1);
}
END_TEST

START_TEST(json_escape_whole)
{
    char out[64];
    bool whole = false;
    size_t n = sc_json_escape(out, sizeof(out), 0, "a\"b\\c\n\x01", &whole);

    ck_assert(whole);
    ck_assert_str_eq(out, "a\\\"b\\\\c\\u000a\\u0001");
    ck_assert_uint_eq(n, strlen(out));
}
END_TEST

START_TEST(json_escape_appends_at_pos)
{
    char out[64] = "{\"k\":\"";
    size_t n = sc_json_escape(out, sizeof(out), 6, "v", NULL);

    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(out, "{\"k\":\"v");
}
END_TEST

START_TEST(json_escape_cut_leaves_room)
{
    char out[16];
    bool whole = true;
    size_t n = sc_json_escape(out, sizeof(out), 0, "abcdefghijklmnop", &whole);

    /* a character is written only with 8 bytes free: the caller can
     * still close the string */
    ck_assert(!whole);
    ck_assert_uint_eq(n, 9);
    ck_assert_str_eq(out, "abcdefghi");
    /* an escape is written whole or not at all */
    n = sc_json_escape(out, sizeof(out), 0, "abcdefgh\x01\x02", &whole);
    ck_assert(!whole);
    ck_assert_uint_eq(n, 14);
    ck_assert_str_eq(out, "abcdefgh\\u0001");
}
END_TEST

START_TEST(ascii_ieq)
{
    ck_assert(sc_ascii_ieq("Upgrade", 7, "upgrade", 7));
    ck_assert(sc_ascii_ieq("WEBSOCKET", 9, "websocket", 9));
    ck_assert(!sc_ascii_ieq("Upgrade", 7, "upgrad", 6));
    ck_assert(!sc_ascii_ieq("Upgrade", 6, "upgrade", 7));
    ck_assert(!sc_ascii_ieq("a-b", 3, "a_b", 3));
    /* only ASCII letters fold: '@' (0x40) is not '`' (0x60) */
    ck_assert(!sc_ascii_ieq("@", 1, "`", 1));
    ck_assert(sc_ascii_ieq("", 0, "", 0));
}
END_TEST

/* sc_json_text_ok: raw control bytes and \u0000 refused, the rest kept */
struct text_case {
    const char *text;
    size_t len;
    int ok;
};

#define T(s, ok) {s, sizeof(s) - 1, ok}
static const struct text_case cases[] = {
    T("{\"type\":\"ping\"}", 1),
    T("{\"a\":\t1,\r\n\"b\":2}", 1),          /* blanks between tokens */
    T("{\"a\":\"\\u0001\\n\\\\u0000\"}", 1), /* escapes, escaped backslash */
    T("{\"a\":\"caf\xc3\xa9\"}", 1),
    T("", 1),
    T("{\"type\":\"ping\0zz\"}", 0), /* raw NUL inside a string */
    T("{\"type\":\"ping\"}\0", 0),   /* raw NUL after the value */
    T("{\"a\":\"\x01\"}", 0),
    T("{\"a\":\"\x1f\"}", 0),
    T("{\"a\":\"x\\u0000\"}", 0), /* the escape cJSON would end at */
    T("\\u0000", 0),
    T("{\"a\":\"\\\\\\u0000\"}", 0), /* escaped backslash, then the escape */
    T("\\u000", 1),                  /* too short to be one */
};
#undef T

START_TEST(text_cases)
{
    const struct text_case *c = &cases[_i];

    ck_assert_msg(sc_json_text_ok((const uint8_t *)c->text, c->len) == c->ok,
                  "case %d", _i);
}
END_TEST

/* a backslash as the last byte does not read past the end */
START_TEST(trailing_backslash)
{
    char *p = malloc(3);

    ck_assert_ptr_nonnull(p);
    memcpy(p, "ab\\", 3);
    ck_assert(sc_json_text_ok((const uint8_t *)p, 3));
    free(p);
}
END_TEST

static Suite *
text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("text");
    TCase *tj = tcase_create("json_text");

    tcase_add_loop_test(tc, event_id_digits, 0,
                        (int)(sizeof(digit_cases) / sizeof(digit_cases[0])));
    tcase_add_test(tc, event_id_number);
    tcase_add_test(tc, json_escape_whole);
    tcase_add_test(tc, json_escape_appends_at_pos);
    tcase_add_test(tc, json_escape_cut_leaves_room);
    tcase_add_test(tc, ascii_ieq);
    tcase_add_loop_test(tj, text_cases, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tj, trailing_backslash);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tj);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(text_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
