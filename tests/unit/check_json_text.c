/* check_json_text.c - raw control bytes and \u0000 refused, the rest kept */
#include "json_text.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

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
json_text_suite(void)
{
    Suite *s = suite_create("json_text");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, text_cases, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, trailing_backslash);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(json_text_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
