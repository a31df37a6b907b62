/* check_base64.c - RFC 4648 section 10 vectors, url form, strictness */
#include "base64.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba",
                                    "foobar"};
static const char *const std[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const url[] = {"",       "Zg",     "Zm8",     "Zm9v",
                                  "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

START_TEST(rfc4648_vectors)
{
    char out[32];
    uint8_t dec[32];
    size_t n = strlen(plain[_i]);

    ck_assert_int_eq(sc_base64_encode((const uint8_t *)plain[_i], n, out,
                                      sizeof(out), false),
                     (long)strlen(std[_i]));
    ck_assert_str_eq(out, std[_i]);
    ck_assert_int_eq(sc_base64_encode((const uint8_t *)plain[_i], n, out,
                                      sizeof(out), true),
                     (long)strlen(url[_i]));
    ck_assert_str_eq(out, url[_i]);
    ck_assert_int_eq(
        sc_base64_decode(std[_i], strlen(std[_i]), dec, sizeof(dec), false),
        (long)n);
    ck_assert_mem_eq(dec, plain[_i], n);
    ck_assert_int_eq(
        sc_base64_decode(url[_i], strlen(url[_i]), dec, sizeof(dec), true),
        (long)n);
    ck_assert_mem_eq(dec, plain[_i], n);
}
END_TEST

START_TEST(url_alphabet)
{
    const uint8_t raw[] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t dec[8];

    sc_base64_encode(raw, 3, out, sizeof(out), true);
    ck_assert_str_eq(out, "-_-_");
    sc_base64_encode(raw, 3, out, sizeof(out), false);
    ck_assert_str_eq(out, "+/+/");
    ck_assert_int_eq(sc_base64_decode("-_-_", 4, dec, sizeof(dec), true), 3);
    ck_assert_int_eq(sc_base64_decode("-_-_", 4, dec, sizeof(dec), false), -1);
    ck_assert_int_eq(sc_base64_decode("+/+/", 4, dec, sizeof(dec), true), -1);
}
END_TEST

START_TEST(rejects_noncanonical)
{
    uint8_t dec[16];

    /* padding in url form, missing padding in std form */
    ck_assert_int_eq(sc_base64_decode("Zg==", 4, dec, sizeof(dec), true), -1);
    ck_assert_int_eq(sc_base64_decode("Zg", 2, dec, sizeof(dec), false), -1);
    /* leftover bits set: "Zh==" decodes to 'f' in lax decoders */
    ck_assert_int_eq(sc_base64_decode("Zh==", 4, dec, sizeof(dec), false), -1);
    ck_assert_int_eq(sc_base64_decode("Zh", 2, dec, sizeof(dec), true), -1);
    /* impossible length, bad character, padding inside */
    ck_assert_int_eq(sc_base64_decode("Zm9vY", 5, dec, sizeof(dec), true), -1);
    ck_assert_int_eq(sc_base64_decode("Zm9*", 4, dec, sizeof(dec), false), -1);
    ck_assert_int_eq(sc_base64_decode("Z=9v", 4, dec, sizeof(dec), false), -1);
    ck_assert_int_eq(sc_base64_decode("Zm9v Zg==", 9, dec, sizeof(dec), false),
                     -1);
}
END_TEST

START_TEST(output_too_small)
{
    char out[4];
    uint8_t dec[2];

    ck_assert_int_eq(
        sc_base64_encode((const uint8_t *)"foo", 3, out, sizeof(out), false),
        -1);
    ck_assert_int_eq(sc_base64_decode("Zm9v", 4, dec, sizeof(dec), false), -1);
}
END_TEST

static Suite *
base64_suite(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, rfc4648_vectors, 0, 7);
    tcase_add_test(tc, url_alphabet);
    tcase_add_test(tc, rejects_noncanonical);
    tcase_add_test(tc, output_too_small);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(base64_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
