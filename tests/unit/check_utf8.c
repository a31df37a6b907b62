/*
 * check_utf8.c - incremental UTF-8 validator: a Kuhn-style table, every
 * code point and boundary, exhaustive 1-3 byte inputs against a decoding
 * reference, the ASCII word path, splits at every position
 */
#include "utf8.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/*
 * Index of the byte at which byte-by-byte feeding first fails, or -1.
 * *complete: whether the input could end where it does.
 */
static long
first_bad(const uint8_t *p, size_t n, bool *complete)
{
    struct sc_utf8 u;

    sc_utf8_init(&u);
    for (size_t i = 0; i < n; i++) {
        if (sc_utf8_feed(&u, p + i, 1) != SC_UTF8_OK) {
            *complete = false;
            return (long)i;
        }
    }
    *complete = sc_utf8_complete(&u);
    return -1;
}

/*
 * Independent reference: decodes each sequence by its bit pattern and
 * checks the value (shortest form, no surrogate, at most U+10FFFF).
 */
static bool
ref_valid(const uint8_t *p, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0, k, len;
    uint32_t cp;

    while (i < n) {
        uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min_cp[len] || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

/* Encodes cp in exactly len bytes (overlong if len is not minimal). */
static void
encode_len(uint32_t cp, size_t len, uint8_t *out)
{
    static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};

    if (len == 1) {
        out[0] = (uint8_t)cp;
        return;
    }
    for (size_t k = len - 1; k > 0; k--) {
        out[k] = (uint8_t)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (uint8_t)(lead[len] | cp);
}

/*
 * Kuhn-style table.  fail: index of the byte that must be refused, or -1
 * when every byte is accepted; then complete says whether it may end.
 */
struct utf8_case {
    const char *name;
    const char *s;
    size_t len; /* 0: strlen(s) */
    long fail;
    bool complete;
};

static const struct utf8_case cases[] = {
    /* 1 correct text */
    {"empty", "", 0, -1, true},
    {"ascii", "Hello, world", 0, -1, true},
    {"kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 0, -1, true},
    {"nul", "a\0b", 3, -1, true},
    /* 2.1 first possible sequence of each length */
    {"first 1", "\x00", 1, -1, true},
    {"first 2", "\xc2\x80", 0, -1, true},
    {"first 3", "\xe0\xa0\x80", 0, -1, true},
    {"first 4", "\xf0\x90\x80\x80", 0, -1, true},
    /* 2.2 last possible sequence of each length */
    {"last 1", "\x7f", 0, -1, true},
    {"last 2", "\xdf\xbf", 0, -1, true},
    {"last 3", "\xef\xbf\xbf", 0, -1, true},
    {"last 4 (U+10FFFF)", "\xf4\x8f\xbf\xbf", 0, -1, true},
    /* 2.3 other boundaries */
    {"U+D7FF", "\xed\x9f\xbf", 0, -1, true},
    {"U+E000", "\xee\x80\x80", 0, -1, true},
    {"U+FFFD", "\xef\xbf\xbd", 0, -1, true},
    {"U+FFFE nonchar", "\xef\xbf\xbe", 0, -1, true},
    {"U+1FFFF", "\xf0\x9f\xbf\xbf", 0, -1, true},
    {"U+40000", "\xf1\x80\x80\x80", 0, -1, true},
    {"U+FFFFF", "\xf3\xbf\xbf\xbf", 0, -1, true},
    {"U+100000", "\xf4\x80\x80\x80", 0, -1, true},
    {"U+110000", "\xf4\x90\x80\x80", 0, 1, false},
    {"F4 BF", "\xf4\xbf\xbf\xbf", 0, 1, false},
    {"F5 lead", "\xf5\x80\x80\x80", 0, 0, false},
    {"F7 lead", "\xf7\xbf\xbf\xbf", 0, 0, false},
    {"5-byte form", "\xf8\x88\x80\x80\x80", 0, 0, false},
    {"6-byte form", "\xfc\x84\x80\x80\x80\x80", 0, 0, false},
    /* 3.1 unexpected continuation bytes */
    {"lone 80", "\x80", 0, 0, false},
    {"lone BF", "\xbf", 0, 0, false},
    {"80 BF", "\x80\xbf", 0, 0, false},
    {"ascii then 80", "abc\x80", 0, 3, false},
    {"extra continuation", "\xc2\x80\x80", 0, 2, false},
    {"4-byte + continuation", "\xf0\x90\x80\x80\xbf", 0, 4, false},
    /* 3.2 lonely start characters */
    {"C2 space", "\xc2 ", 0, 1, false},
    {"DF space", "\xdf ", 0, 1, false},
    {"E1 space", "\xe1 ", 0, 1, false},
    {"E1 80 space", "\xe1\x80 ", 0, 2, false},
    {"F1 space", "\xf1 ", 0, 1, false},
    {"F1 80 80 space", "\xf1\x80\x80 ", 0, 3, false},
    {"lead then lead", "\xc3\xc3", 0, 1, false},
    /* 3.3 sequences with the last byte missing, at the end */
    {"C2 at end", "\xc2", 0, -1, false},
    {"E0 at end", "\xe0", 0, -1, false},
    {"E0 A0 at end", "\xe0\xa0", 0, -1, false},
    {"ED 9F at end", "\xed\x9f", 0, -1, false},
    {"F0 90 80 at end", "\xf0\x90\x80", 0, -1, false},
    {"F4 8F BF at end", "\xf4\x8f\xbf", 0, -1, false},
    {"kosme cut", "\xce\xba\xe1\xbd", 0, -1, false},
    /* 3.5 impossible bytes */
    {"FE", "\xfe", 0, 0, false},
    {"FF", "\xff", 0, 0, false},
    {"FE FE FF FF", "\xfe\xfe\xff\xff", 0, 0, false},
    /* 4 overlong forms, refused at the first impossible byte */
    {"C0 AF", "\xc0\xaf", 0, 0, false},
    {"C1 BF", "\xc1\xbf", 0, 0, false},
    {"C0 80 (NUL)", "\xc0\x80", 0, 0, false},
    {"E0 80 AF", "\xe0\x80\xaf", 0, 1, false},
    {"E0 9F BF", "\xe0\x9f\xbf", 0, 1, false},
    {"E0 80 80", "\xe0\x80\x80", 0, 1, false},
    {"F0 80 80 AF", "\xf0\x80\x80\xaf", 0, 1, false},
    {"F0 8F BF BF", "\xf0\x8f\xbf\xbf", 0, 1, false},
    {"F8 80 80 80 AF", "\xf8\x80\x80\x80\xaf", 0, 0, false},
    {"FC 80 80 80 80 AF", "\xfc\x80\x80\x80\x80\xaf", 0, 0, false},
    /* 5.1 single surrogates */
    {"U+D800", "\xed\xa0\x80", 0, 1, false},
    {"U+DB7F", "\xed\xad\xbf", 0, 1, false},
    {"U+DB80", "\xed\xae\x80", 0, 1, false},
    {"U+DBFF", "\xed\xaf\xbf", 0, 1, false},
    {"U+DC00", "\xed\xb0\x80", 0, 1, false},
    {"U+DFFF", "\xed\xbf\xbf", 0, 1, false},
    /* 5.2 paired surrogates */
    {"U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", 0, 1, false},
    {"U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf", 0, 1, false},
    /* bad byte after a long ASCII run (word path) */
    {"ascii run then FF", "0123456789abcdefghij\xff", 0, 20, false},
    {"ascii run then kosme", "0123456789abcdefg\xce\xba", 0, -1, true},
    {"mixed", "abcdefgh\xc3\xa9ijklmnop\xe2\x82\xac qrstuvwxyz", 0, -1, true},
    {"mixed then surrogate", "abcdefgh\xc3\xa9ijklmnopq\xed\xa0\x80", 0, 20,
     false},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static size_t
case_len(const struct utf8_case *c)
{
    return c->len != 0 ? c->len : strlen(c->s);
}

START_TEST(kuhn_table_whole)
{
    const struct utf8_case *c = &cases[_i];
    const uint8_t *p = (const uint8_t *)c->s;
    size_t n = case_len(c);
    struct sc_utf8 u;
    int want = c->fail >= 0 ? SC_UTF8_INVALID : SC_UTF8_OK;

    sc_utf8_init(&u);
    ck_assert_msg(sc_utf8_feed(&u, p, n) == want, "%s", c->name);
    ck_assert_msg(sc_utf8_complete(&u) == c->complete, "%s", c->name);
    ck_assert_msg(sc_utf8_valid(p, n) == c->complete, "%s", c->name);
    ck_assert_msg(ref_valid(p, n) == c->complete, "%s (reference)", c->name);
}
END_TEST

START_TEST(kuhn_table_byte_by_byte)
{
    const struct utf8_case *c = &cases[_i];
    bool complete;
    long bad = first_bad((const uint8_t *)c->s, case_len(c), &complete);

    ck_assert_msg(bad == c->fail, "%s: failed at %ld, want %ld", c->name, bad,
                  c->fail);
    ck_assert_msg(complete == c->complete, "%s", c->name);
}
END_TEST

START_TEST(kuhn_table_every_split)
{
    const struct utf8_case *c = &cases[_i];
    const uint8_t *p = (const uint8_t *)c->s;
    size_t n = case_len(c);

    for (size_t cut = 0; cut <= n; cut++) {
        struct sc_utf8 u;
        int r1, r2;

        sc_utf8_init(&u);
        r1 = sc_utf8_feed(&u, p, cut);
        r2 = sc_utf8_feed(&u, p + cut, n - cut);
        /* the first part fails alone iff it holds the bad byte */
        ck_assert_msg((r1 == SC_UTF8_INVALID) ==
                          (c->fail >= 0 && c->fail < (long)cut),
                      "%s cut %zu", c->name, cut);
        ck_assert_msg((r2 == SC_UTF8_INVALID) == (c->fail >= 0), "%s cut %zu",
                      c->name, cut);
        ck_assert_msg(sc_utf8_complete(&u) == c->complete, "%s cut %zu",
                      c->name, cut);
    }
}
END_TEST

/* Every code point in its shortest form, and the surrogates refused. */
START_TEST(every_code_point)
{
    uint8_t b[4];
    size_t len;
    bool complete;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        encode_len(cp, len, b);
        long bad = first_bad(b, len, &complete);
        bool ok = surrogate ? bad == 1 : bad == -1 && complete;
        /* not ck_assert: it records a mark point per call */
        if (!ok || sc_utf8_valid(b, len) == surrogate) {
            ck_abort_msg("U+%04X", (unsigned)cp);
        }
    }
}
END_TEST

/* Overlong forms fail at the lead (C0 C1) or at the second byte. */
START_TEST(every_overlong)
{
    uint8_t b[4];
    bool complete;

    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        size_t min = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
        for (size_t len = min + 1; len <= 4; len++) {
            encode_len(cp, len, b);
            long want = len == 2 ? 0 : 1;
            if (first_bad(b, len, &complete) != want) {
                ck_abort_msg("U+%04X in %zu bytes", (unsigned)cp, len);
            }
        }
    }
}
END_TEST

/* Values above U+10FFFF in the 4-byte pattern: F4 90+ at 1, F5+ at 0. */
START_TEST(beyond_max)
{
    uint8_t b[4];
    bool complete;

    for (uint32_t cp = 0x110000; cp <= 0x1FFFFF; cp++) {
        encode_len(cp, 4, b);
        long want = b[0] == 0xF4 ? 1 : 0;
        if (first_bad(b, 4, &complete) != want) {
            ck_abort_msg("0x%X", (unsigned)cp);
        }
    }
}
END_TEST

/* All 1-, 2- and 3-byte inputs agree with the reference. */
START_TEST(exhaustive_short)
{
    uint8_t b[3];

    for (uint32_t v = 0; v < 0x1000000; v++) {
        b[0] = (uint8_t)(v >> 16);
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        if (sc_utf8_valid(b, 3) != ref_valid(b, 3) ||
            sc_utf8_valid(b, 2) != ref_valid(b, 2) ||
            sc_utf8_valid(b, 1) != ref_valid(b, 1)) {
            ck_abort_msg("%06X", (unsigned)v);
        }
    }
}
END_TEST

/* 4-byte inputs: every lead and second byte, boundary values after. */
START_TEST(four_byte_boundaries)
{
    static const uint8_t tail[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F,
                                   0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                   0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
    uint8_t b[4];

    for (unsigned b0 = 0; b0 < 256; b0++) {
        for (unsigned b1 = 0; b1 < 256; b1++) {
            for (size_t i = 0; i < sizeof(tail); i++) {
                for (size_t j = 0; j < sizeof(tail); j++) {
                    b[0] = (uint8_t)b0, b[1] = (uint8_t)b1;
                    b[2] = tail[i], b[3] = tail[j];
                    if (sc_utf8_valid(b, 4) != ref_valid(b, 4)) {
                        ck_abort_msg("%02X %02X %02X %02X", b0, b1, b[2], b[3]);
                    }
                }
            }
        }
    }
}
END_TEST

/*
 * The word-at-a-time ASCII path: a bad byte or a 2-byte character at every
 * position of runs up to 40 bytes, from every alignment.
 */
START_TEST(ascii_word_path)
{
    uint8_t buf[64];
    bool complete;

    for (size_t align = 0; align < 8; align++) {
        for (size_t n = 1; n <= 40; n++) {
            for (size_t pos = 0; pos < n; pos++) {
                uint8_t *p = buf + align;
                memset(p, 'a', n + 1);
                p[pos] = 0xFF;
                ck_assert(!sc_utf8_valid(p, n));
                ck_assert_int_eq(first_bad(p, n, &complete), (long)pos);
                p[pos] = 0xC3;
                p[pos + 1] = 0xA9;
                ck_assert(sc_utf8_valid(p, n + 1));
                ck_assert(!sc_utf8_valid(p, pos + 1));
            }
        }
    }
}
END_TEST

START_TEST(sticky_failure)
{
    struct sc_utf8 u;
    const uint8_t bad[] = {0xC0}, good[] = {'o', 'k'};

    sc_utf8_init(&u);
    ck_assert_int_eq(sc_utf8_feed(&u, bad, 1), SC_UTF8_INVALID);
    ck_assert_int_eq(sc_utf8_feed(&u, good, 2), SC_UTF8_INVALID);
    ck_assert_int_eq(sc_utf8_feed(&u, NULL, 0), SC_UTF8_INVALID);
    ck_assert(!sc_utf8_complete(&u));
    sc_utf8_init(&u);
    ck_assert_int_eq(sc_utf8_feed(&u, good, 2), SC_UTF8_OK);
    ck_assert_int_eq(sc_utf8_feed(&u, NULL, 0), SC_UTF8_OK);
    ck_assert(sc_utf8_complete(&u));
    ck_assert_uint_eq(sizeof(u), 4);
}
END_TEST

/* A long mixed text split at every position gives the same answer. */
START_TEST(long_text_every_split)
{
    uint8_t text[600];
    size_t n = 0;
    uint32_t x = 12345;

    while (n + 4 <= sizeof(text)) {
        static const uint32_t sample[] = {'a',  0xE9,     0x20AC, 0x1F600,
                                          0x7F, 0x10FFFF, 0x800,  0xFFFD};
        uint32_t cp;
        size_t len;
        x = x * 1103515245u + 12345u;
        cp = sample[(x >> 16) % 8];
        len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        encode_len(cp, len, text + n);
        n += len;
    }
    for (size_t cut = 0; cut <= n; cut++) {
        struct sc_utf8 u;
        sc_utf8_init(&u);
        ck_assert_int_eq(sc_utf8_feed(&u, text, cut), SC_UTF8_OK);
        ck_assert_int_eq(sc_utf8_feed(&u, text + cut, n - cut), SC_UTF8_OK);
        ck_assert(sc_utf8_complete(&u));
    }
}
END_TEST

static Suite *
utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, kuhn_table_whole, 0, NCASES);
    tcase_add_loop_test(tc, kuhn_table_byte_by_byte, 0, NCASES);
    tcase_add_loop_test(tc, kuhn_table_every_split, 0, NCASES);
    tcase_add_test(tc, every_code_point);
    tcase_add_test(tc, every_overlong);
    tcase_add_test(tc, beyond_max);
    tcase_add_test(tc, exhaustive_short);
    tcase_add_test(tc, four_byte_boundaries);
    tcase_add_test(tc, ascii_word_path);
    tcase_add_test(tc, sticky_failure);
    tcase_add_test(tc, long_text_every_split);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
