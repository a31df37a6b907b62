/*
 * check_ws_frame.c - RFC 6455 frame parser and encoder: the section 5.7
 * examples, one case per SPEC section 5 row, the byte at which each error
 * is reported, text chunks per read, encoder lengths and round trips.
 *
 * Every stream is fed whole, byte by byte and in seeded random splits, each
 * chunk copied to its own exact-size heap block (so a sanitizer build sees
 * any over-read), and must give the same events (the wslay habit).
 */
#include "ws_frame.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX 16384

#define A4 "aaaa"
#define A8 A4 A4
#define A16 A8 A8
#define A32 A16 A16
#define A64 A32 A32
#define A123 A64 A32 A16 A8 "aaa"
#define A125 A123 "aa"
#define A126 A125 "a"
#define KOSME "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

/*
 * Cheap assertion for per-byte paths: ck_assert() records a mark point on
 * every success, which is slow over millions of calls.
 */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);              \
        }                                                                      \
    } while (0)

/* ---- a growable byte string ---------------------------------------- */

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

static void
bytes_put(struct bytes *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->len, data, n);
    }
    b->len += n;
    b->p[b->len] = '\0'; /* printable in messages */
}

static void
bytes_str(struct bytes *b, const char *s)
{
    bytes_put(b, s, strlen(s));
}

static void
bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- building client frames ----------------------------------------- */

/*
 * One client frame.  A spec is present when data or declare is set.  By
 * default the frame is masked, uses the minimal length form and announces
 * the size of data.
 */
struct fspec {
    uint8_t b0;       /* FIN, RSV, opcode */
    const char *data; /* payload actually sent */
    size_t dlen;      /* 0: strlen(data) */
    bool declare;     /* announce length instead (fail-fast cases) */
    uint64_t length;
    int form; /* 0: minimal; 126 or 127: force that length form */
    bool unmasked;
};

#define MAX_FRAMES 6

/* The common case: a masked frame carrying a string. */
#define FR(b, d)                                                               \
    {                                                                          \
        .b0 = (b), .data = (d)                                                 \
    }

static void
naive_mask(uint8_t *p, size_t n, const uint8_t key[4])
{
    for (size_t i = 0; i < n; i++) {
        p[i] ^= key[i % 4];
    }
}

static bool
fspec_present(const struct fspec *f)
{
    return f->data != NULL || f->declare;
}

/* Appends the frame; idx varies the masking key. */
static void
put_frame(struct bytes *out, const struct fspec *f, unsigned idx)
{
    const char *data = f->data != NULL ? f->data : "";
    size_t n = f->dlen != 0 ? f->dlen : strlen(data), hl = 0, at;
    uint64_t len = f->declare ? f->length : n;
    int form = f->form;
    uint8_t mbit = f->unmasked ? 0 : 0x80, h[14];
    uint8_t key[4] = {(uint8_t)(0x37 + idx * 11), 0xfa, (uint8_t)(0x21 ^ idx),
                      0x3d};

    if (form == 0) {
        form = len < 126 ? 0 : len <= 0xFFFF ? 126 : 127;
    }
    h[hl++] = f->b0;
    if (form == 0) {
        h[hl++] = (uint8_t)(mbit | len);
    } else if (form == 126) {
        h[hl++] = mbit | 126;
        h[hl++] = (uint8_t)(len >> 8);
        h[hl++] = (uint8_t)len;
    } else {
        h[hl++] = mbit | 127;
        for (int i = 0; i < 8; i++) {
            h[hl++] = (uint8_t)(len >> (56 - 8 * i));
        }
    }
    if (!f->unmasked) {
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    bytes_put(out, h, hl);
    at = out->len;
    bytes_put(out, data, n);
    if (!f->unmasked) {
        naive_mask(out->p + at, n, key);
    }
}

static void
put_frames(struct bytes *out, const struct fspec *f, size_t max)
{
    for (size_t i = 0; i < max && fspec_present(&f[i]); i++) {
        put_frame(out, &f[i], (unsigned)i);
    }
}

/* Turns an unmasked server frame into a masked client frame. */
static void
to_client(struct bytes *out, const uint8_t *frame, size_t len)
{
    static const uint8_t key[4] = {0xa5, 0x00, 0x5a, 0xff};
    uint8_t len7 = frame[1] & 0x7F;
    size_t hl = len7 == 127 ? 10 : len7 == 126 ? 4 : 2, at;
    uint8_t b1 = frame[1] | 0x80;

    bytes_put(out, frame, 1);
    bytes_put(out, &b1, 1);
    bytes_put(out, frame + 2, hl - 2);
    bytes_put(out, key, 4);
    at = out->len;
    bytes_put(out, frame + hl, len - hl);
    naive_mask(out->p + at, len - hl, key);
}

/* ---- running the parser --------------------------------------------- */

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/*
 * The events of one run as text: "text:<message>|" once per complete
 * message (chunks joined), "ping:<data>|", "pong:<data>|",
 * "close:<code>:<reason>|", "error:<code>|".
 */
struct run {
    struct sc_ws_parser parser;
    struct bytes log;
    struct bytes msg;   /* text message being gathered */
    bool stop;          /* an ERROR was reported */
    size_t chunk_start; /* stream offset of the chunk being fed */
    long error_at;      /* chunk_start when the ERROR came, or -1 */
};

static bool
within(const uint8_t *p, size_t n, const void *base, size_t size)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;

    return a >= b && a + n <= b + size;
}

static void
log_control(struct run *r, const char *tag, const struct sc_ws_event *ev)
{
    CHECK(within(ev->data, ev->len, r->parser.ctl, sizeof(r->parser.ctl)));
    CHECK(ev->len <= SC_WS_CONTROL_MAX);
    bytes_str(&r->log, tag);
    bytes_put(&r->log, ev->data, ev->len);
    bytes_str(&r->log, "|");
}

static void
log_event(struct run *r, const struct sc_ws_event *ev, const uint8_t *chunk,
          size_t clen)
{
    char tmp[32];

    switch (ev->type) {
    case SC_WS_EV_TEXT:
        /* in the caller's chunk; empty only to end a message */
        CHECK(within(ev->data, ev->len, chunk, clen));
        CHECK(ev->len > 0 || ev->fin);
        bytes_put(&r->msg, ev->data, ev->len);
        if (ev->fin) {
            CHECK(sc_utf8_valid(r->msg.p, r->msg.len));
            bytes_str(&r->log, "text:");
            bytes_put(&r->log, r->msg.p, r->msg.len);
            bytes_str(&r->log, "|");
            r->msg.len = 0;
        }
        break;
    case SC_WS_EV_PING:
        log_control(r, "ping:", ev);
        break;
    case SC_WS_EV_PONG:
        log_control(r, "pong:", ev);
        break;
    case SC_WS_EV_CLOSE:
        CHECK(ev->len <= SC_WS_CLOSE_REASON_MAX);
        CHECK(ev->close_code != 0 || ev->len == 0);
        snprintf(tmp, sizeof(tmp), "close:%u:", ev->close_code);
        log_control(r, tmp, ev);
        break;
    case SC_WS_EV_ERROR:
        CHECK(ev->data == NULL && ev->len == 0);
        snprintf(tmp, sizeof(tmp), "error:%u|", ev->close_code);
        bytes_str(&r->log, tmp);
        r->stop = true;
        r->error_at = (long)r->chunk_start;
        break;
    }
}

/* After an ERROR the parser answers every call with it, consuming nothing. */
static void
check_sticky_error(struct run *r, uint8_t *chunk, size_t n, uint16_t code)
{
    struct sc_ws_event ev;
    bool have;

    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(sc_ws_parser_feed(&r->parser, chunk, n, &ev, &have),
                         0);
        CHECK(have && ev.type == SC_WS_EV_ERROR);
        ck_assert_uint_eq(ev.close_code, code);
    }
}

/* Feeds one chunk, as the glue would, from an exact-size heap copy. */
static void
run_chunk(struct run *r, const uint8_t *src, size_t n)
{
    uint8_t *chunk = malloc(n);
    size_t off = 0;

    CHECK(chunk != NULL);
    memcpy(chunk, src, n);
    while (off < n && !r->stop) {
        struct sc_ws_event ev;
        bool have;
        long c =
            sc_ws_parser_feed(&r->parser, chunk + off, n - off, &ev, &have);

        /* consumed within bounds; all of it unless an event stopped it */
        CHECK(c >= 0 && (size_t)c <= n - off);
        CHECK(have || (size_t)c == n - off);
        off += (size_t)c;
        if (have) {
            log_event(r, &ev, chunk, n);
        }
        if (have && ev.type == SC_WS_EV_ERROR) {
            check_sticky_error(r, chunk, n, ev.close_code);
        }
    }
    free(chunk);
}

static uint32_t
xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Runs a stream in chunks; returns the log (caller frees) and error_at. */
static struct bytes
parse_stream(const uint8_t *in, size_t len, uint64_t max, enum split how,
             uint32_t seed, size_t maxchunk, long *error_at)
{
    struct run r;
    size_t off = 0, n;

    memset(&r, 0, sizeof(r));
    r.error_at = -1;
    sc_ws_parser_init(&r.parser, max);
    bytes_str(&r.log, "");
    while (off < len && !r.stop) {
        if (how == SPLIT_WHOLE) {
            n = len - off;
        } else if (how == SPLIT_BYTES) {
            n = 1;
        } else {
            n = 1 + xorshift(&seed) % maxchunk;
            n = n < len - off ? n : len - off;
        }
        r.chunk_start = off;
        run_chunk(&r, in + off, n);
        off += n;
    }
    /* a message left open is not reported: a half message is no event */
    bytes_free(&r.msg);
    if (error_at != NULL) {
        *error_at = r.error_at;
    }
    return r.log;
}

static void
expect_log(const char *name, const char *how, struct bytes *got,
           const uint8_t *want, size_t wlen)
{
    ck_assert_msg(got->len == wlen && memcmp(got->p, want, wlen) == 0,
                  "%s (%s): got \"%.160s\", want \"%.160s\"", name, how,
                  (const char *)got->p, (const char *)want);
    bytes_free(got);
}

/*
 * Parses the stream whole, byte by byte and in random splits of several
 * sizes; each must give exactly the log want.
 */
static void
check_stream(const char *name, const uint8_t *in, size_t len, uint64_t max,
             const uint8_t *want, size_t wlen)
{
    static const size_t maxchunks[] = {2, 3, 5, 8, 13, 64, 1000, 70000};
    struct bytes got;

    got = parse_stream(in, len, max, SPLIT_WHOLE, 0, 0, NULL);
    expect_log(name, "whole", &got, want, wlen);
    got = parse_stream(in, len, max, SPLIT_BYTES, 0, 0, NULL);
    expect_log(name, "byte by byte", &got, want, wlen);
    for (uint32_t seed = 1; seed <= 24; seed++) {
        size_t mc = maxchunks[seed % 8];
        got = parse_stream(in, len, max, SPLIT_RANDOM, seed * 2654435761u, mc,
                           NULL);
        expect_log(name, "random splits", &got, want, wlen);
    }
}

static void
check_frames(const char *name, const struct fspec *f, uint64_t max,
             const char *want)
{
    struct bytes in = {0};

    put_frames(&in, f, MAX_FRAMES);
    check_stream(name, in.p, in.len, max, (const uint8_t *)want, strlen(want));
    bytes_free(&in);
}

/* ---- RFC 6455 section 5.7 examples ----------------------------------- */

static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};

#define CHECK_RAW(name, raw, max, want)                                        \
    check_stream(name, raw, sizeof(raw), max, (const uint8_t *)(want),         \
                 strlen(want))

START_TEST(rfc_single_frame_unmasked)
{
    static const uint8_t raw[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};

    /* a server's frame: from a client it must be refused */
    CHECK_RAW("unmasked Hello", raw, DEFAULT_MAX, "error:1002|");
}
END_TEST

START_TEST(rfc_single_frame_masked)
{
    CHECK_RAW("masked Hello", hello_masked, DEFAULT_MAX, "text:Hello|");
}
END_TEST

START_TEST(rfc_fragmented_unmasked)
{
    static const uint8_t raw[] = {0x01, 0x03, 0x48, 0x65, 0x6c,
                                  0x80, 0x02, 0x6c, 0x6f};

    CHECK_RAW("unmasked Hel+lo", raw, DEFAULT_MAX, "error:1002|");
}
END_TEST

START_TEST(rfc_fragmented_masked)
{
    static const uint8_t raw[] = {
        0x01, 0x83, 0x01, 0x02, 0x03, 0x04, 'H' ^ 1,    'e' ^ 2,   'l' ^ 3,
        0x80, 0x82, 0xf0, 0x0f, 0x00, 0xff, 'l' ^ 0xf0, 'o' ^ 0x0f};

    CHECK_RAW("masked Hel+lo", raw, DEFAULT_MAX, "text:Hello|");
}
END_TEST

START_TEST(rfc_ping_pong)
{
    static const uint8_t ping_unmasked[] = {0x89, 0x05, 0x48, 0x65,
                                            0x6c, 0x6c, 0x6f};
    uint8_t ping[sizeof(hello_masked)], pong[sizeof(hello_masked)];

    memcpy(ping, hello_masked, sizeof(ping));
    memcpy(pong, hello_masked, sizeof(pong));
    ping[0] = 0x89;
    pong[0] = 0x8a;
    CHECK_RAW("unmasked ping", ping_unmasked, DEFAULT_MAX, "error:1002|");
    CHECK_RAW("masked ping", ping, DEFAULT_MAX, "ping:Hello|");
    CHECK_RAW("masked pong", pong, DEFAULT_MAX, "pong:Hello|");
}
END_TEST

START_TEST(rfc_binary_refused)
{
    /* 256 bytes in the 16-bit form, 64 KiB in the 64-bit form */
    static const uint8_t b256[] = {0x82, 0x7E, 0x01, 0x00};
    static const uint8_t b64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x01, 0x00, 0x00};
    static const uint8_t b256m[] = {0x82, 0xFE, 0x01, 0x00};

    CHECK_RAW("binary 256", b256, DEFAULT_MAX, "error:1003|");
    CHECK_RAW("binary 64K", b64k, 1 << 20, "error:1003|");
    CHECK_RAW("masked binary 256", b256m, DEFAULT_MAX, "error:1003|");
}
END_TEST

/* Text of exactly n bytes, mixing ASCII and 2-byte characters. */
static char *
make_text(size_t n)
{
    char *s = malloc(n + 1);
    size_t i = 0;

    ck_assert_ptr_nonnull(s);
    while (i < n) {
        if (i % 7 == 3 && i + 2 <= n) {
            s[i++] = (char)0xc3; /* U+00E9 */
            s[i++] = (char)0xa9;
        } else {
            s[i] = (char)('a' + i % 26);
            i++;
        }
    }
    s[n] = '\0';
    return s;
}

static void
check_big_text(size_t n, uint64_t max, bool fits)
{
    char *text = make_text(n);
    struct fspec f[2] = {{.b0 = 0x81, .data = text}};
    struct bytes in = {0}, want = {0};

    if (fits) {
        bytes_str(&want, "text:");
        bytes_str(&want, text);
        bytes_str(&want, "|");
    } else {
        bytes_str(&want, "error:1009|");
    }
    put_frames(&in, f, 2);
    check_stream("big text", in.p, in.len, max, want.p, want.len);
    bytes_free(&in);
    bytes_free(&want);
    free(text);
}

START_TEST(rfc_text_256_and_64k)
{
    check_big_text(256, DEFAULT_MAX, true);
    check_big_text(65536, 65536, true);
    check_big_text(65536, DEFAULT_MAX, false);
    check_big_text(65537, 65536, false);
}
END_TEST

START_TEST(rfc_all_in_one_stream)
{
    struct fspec f[] = {FR(0x81, "Hello"), FR(0x89, "Hello"), FR(0x8A, "Hello"),
                        FR(0x01, "Hel"),   FR(0x80, "lo"),    {0}};

    check_frames("5.7 in one stream", f, DEFAULT_MAX,
                 "text:Hello|ping:Hello|pong:Hello|text:Hello|");
}
END_TEST

/* ---- SPEC section 5, one row per rule --------------------------------- */

struct spec_case {
    const char *name;
    uint64_t max; /* 0: DEFAULT_MAX */
    const char *want;
    struct fspec f[MAX_FRAMES];
};

static const struct spec_case spec_cases[] = {
    /* 1002: masking */
    {"unmasked text",
     0,
     "error:1002|",
     {{.b0 = 0x81, .data = "Hello", .unmasked = true}}},
    {"unmasked ping",
     0,
     "error:1002|",
     {{.b0 = 0x89, .data = "Hello", .unmasked = true}}},
    {"unmasked after masked",
     0,
     "text:a|error:1002|",
     {FR(0x81, "a"), {.b0 = 0x81, .data = "b", .unmasked = true}}},
    /* 1002: RSV bits */
    {"rsv1", 0, "error:1002|", {FR(0xC1, "Hello")}},
    {"rsv2", 0, "error:1002|", {FR(0xA1, "Hello")}},
    {"rsv3", 0, "error:1002|", {FR(0x91, "Hello")}},
    {"rsv on continuation",
     0,
     "error:1002|",
     {FR(0x01, "He"), FR(0xC0, "llo")}},
    {"rsv on ping", 0, "error:1002|", {FR(0xC9, "x")}},
    /* 1002: fragmented or long control frames */
    {"ping fin=0", 0, "error:1002|", {FR(0x09, "x")}},
    {"pong fin=0", 0, "error:1002|", {FR(0x0A, "")}},
    {"close fin=0", 0, "error:1002|", {FR(0x08, "")}},
    {"ping 126 bytes", 0, "error:1002|", {FR(0x89, A126)}},
    {"close 200 bytes, header only",
     0,
     "error:1002|",
     {{.b0 = 0x88, .data = "", .declare = true, .length = 200}}},
    {"ping 125 bytes in 16-bit form",
     0,
     "error:1002|",
     {{.b0 = 0x89, .data = A125, .form = 126}}},
    /* 1002: continuation without start, data frame inside a message */
    {"continuation without start", 0, "error:1002|", {FR(0x80, "x")}},
    {"continuation fin=0 without start", 0, "error:1002|", {FR(0x00, "x")}},
    {"continuation after a complete message",
     0,
     "text:a|error:1002|",
     {FR(0x81, "a"), FR(0x80, "b")}},
    {"text inside fragmented message",
     0,
     "error:1002|",
     {FR(0x01, "a"), FR(0x81, "b")}},
    {"text fin=0 inside fragmented message",
     0,
     "error:1002|",
     {FR(0x01, "a"), FR(0x01, "b")}},
    {"binary inside fragmented message",
     0,
     "error:1002|",
     {FR(0x01, "a"), FR(0x82, "b")}},
    /* 1002: non-minimal length, 64-bit top bit */
    {"16-bit form carrying 5",
     0,
     "error:1002|",
     {{.b0 = 0x81, .data = "Hello", .form = 126}}},
    {"16-bit form carrying 125",
     0,
     "error:1002|",
     {{.b0 = 0x81, .data = A125, .form = 126}}},
    {"16-bit form carrying 126",
     0,
     "text:" A126 "|",
     {{.b0 = 0x81, .data = A126, .form = 126}}},
    {"64-bit form carrying 5",
     0,
     "error:1002|",
     {{.b0 = 0x81, .data = "Hello", .form = 127}}},
    {"64-bit form carrying 65535",
     0,
     "error:1002|",
     {{.b0 = 0x81, .data = "", .declare = true, .length = 65535, .form = 127}}},
    {"64-bit length with top bit",
     UINT64_MAX,
     "error:1002|",
     {{.b0 = 0x81, .data = "", .declare = true, .length = 1ull << 63}}},
    {"64-bit length all ones",
     UINT64_MAX,
     "error:1002|",
     {{.b0 = 0x81, .data = "", .declare = true, .length = UINT64_MAX}}},
    /* 1002: close payload */
    {"close 1-byte payload",
     0,
     "error:1002|",
     {{.b0 = 0x88, .data = "\x03", .dlen = 1}}},
    {"close code 0",
     0,
     "error:1002|",
     {{.b0 = 0x88, .data = "\0\0", .dlen = 2}}},
    {"close reason invalid UTF-8",
     0,
     "error:1002|",
     {FR(0x88, "\x03\xe8\xff")}},
    {"close reason surrogate",
     0,
     "error:1002|",
     {FR(0x88, "\x03\xe8\xed\xa0\x80")}},
    {"close reason cut sequence",
     0,
     "error:1002|",
     {{.b0 = 0x88,
       .data = "\x03\xe8"
               "ok\xce"}}},
    {"close reason UTF-8",
     0,
     "close:1000:" KOSME "|",
     {{.b0 = 0x88, .data = "\x03\xe8" KOSME}}},
    {"close 123-byte reason",
     0,
     "close:1000:" A123 "|",
     {{.b0 = 0x88, .data = "\x03\xe8" A123}}},
    {"close 124-byte reason",
     0,
     "error:1002|",
     {{.b0 = 0x88, .data = "\x03\xe8" A123 "a"}}},
    /* 1003: binary, refused at the header */
    {"binary", 0, "error:1003|", {FR(0x82, "abc")}},
    {"binary, header only",
     0,
     "error:1003|",
     {{.b0 = 0x82, .data = "", .declare = true, .length = 1000}}},
    {"binary fragment", 0, "error:1003|", {FR(0x02, "abc"), FR(0x80, "def")}},
    {"binary after text",
     0,
     "text:ok|error:1003|",
     {FR(0x81, "ok"), FR(0x82, "x")}},
    /* 1007: UTF-8 across fragments, failing fast */
    {"text invalid byte", 0, "error:1007|", {FR(0x81, "\xff")}},
    {"text overlong", 0, "error:1007|", {FR(0x81, "\xc0\xaf")}},
    {"text surrogate", 0, "error:1007|", {FR(0x81, "ok\xed\xa0\x80")}},
    {"text above U+10FFFF", 0, "error:1007|", {FR(0x81, "\xf4\x90\x80\x80")}},
    {"bad byte before the rest of the frame",
     0,
     "error:1007|",
     {{.b0 = 0x81, .data = "ab\xc0", .declare = true, .length = 100}}},
    {"valid across fragments",
     0,
     "text:\xce\xba|",
     {FR(0x01, "\xce"), FR(0x80, "\xba")}},
    {"surrogate across fragments",
     0,
     "error:1007|",
     {FR(0x01, "\xed"), FR(0x80, "\xa0\x80")}},
    {"overlong across fragments, before the rest",
     0,
     "error:1007|",
     {FR(0x01, "a\xe0"),
      {.b0 = 0x80, .data = "\x80", .declare = true, .length = 50}}},
    {"incomplete at the end", 0, "error:1007|", {FR(0x81, "a\xce")}},
    {"incomplete at an empty final fragment",
     0,
     "error:1007|",
     {FR(0x01, "a\xe2\x82"), FR(0x80, "")}},
    {"incomplete across a ping",
     0,
     "ping:p|error:1007|",
     {FR(0x01, "\xf0\x9f"), FR(0x89, "p"), FR(0x80, "\x98")}},
    {"4-byte character in 3 fragments and a ping",
     0,
     "ping:p|text:\xf0\x9f\x98\x80|",
     {FR(0x01, "\xf0\x9f"), FR(0x89, "p"), FR(0x00, "\x98"), FR(0x80, "\x80")}},
    /* 1009: from the header, before the payload */
    {"over the limit, header only",
     16,
     "error:1009|",
     {{.b0 = 0x81, .data = "", .declare = true, .length = 17}}},
    {"at the limit", 16, "text:" A16 "|", {FR(0x81, A16)}},
    {"over the limit, 16-bit form",
     200,
     "error:1009|",
     {{.b0 = 0x81, .data = "", .declare = true, .length = 300}}},
    {"over the limit, 64-bit form",
     0,
     "error:1009|",
     {{.b0 = 0x81, .data = "", .declare = true, .length = 1ull << 40}}},
    {"sum of fragments over the limit",
     10,
     "error:1009|",
     {FR(0x01, "hello"),
      {.b0 = 0x80, .data = "", .declare = true, .length = 6}}},
    {"sum of fragments at the limit",
     10,
     "text:helloworld|",
     {FR(0x01, "hello"), FR(0x80, "world")}},
    {"control frames do not count",
     5,
     "ping:pingpayload|text:hello|",
     {FR(0x01, "hel"), FR(0x89, "pingpayload"), FR(0x80, "lo")}},
    {"the limit is per message",
     5,
     "text:hello|text:world|",
     {FR(0x81, "hello"), FR(0x81, "world")}},
    /* ping: the payload to echo */
    {"ping payload", 0, "ping:Hello|", {FR(0x89, "Hello")}},
    {"empty ping", 0, "ping:|", {FR(0x89, "")}},
    {"ping 125 bytes", 0, "ping:" A125 "|", {FR(0x89, A125)}},
    {"pong", 0, "pong:Hello|", {FR(0x8A, "Hello")}},
    /* control frames between fragments */
    {"ping and pong between fragments",
     0,
     "ping:p|pong:q|text:Hello|",
     {FR(0x01, "Hel"), FR(0x89, "p"), FR(0x00, "l"), FR(0x8A, "q"),
      FR(0x80, "o")}},
    {"close between fragments",
     0,
     "close:1000:|",
     {FR(0x01, "Hel"), FR(0x88, "\x03\xe8"), FR(0x80, "lo")}},
    /* close */
    {"empty close: code 0", 0, "close:0:|", {FR(0x88, "")}},
    {"close with reason",
     0,
     "close:1000:bye|",
     {{.b0 = 0x88,
       .data = "\x03\xe8"
               "bye"}}},
    {"input after close is discarded",
     0,
     "close:1001:|",
     {FR(0x88, "\x03\xe9"), FR(0x81, "Hello"), FR(0x82, "x"), FR(0xFF, "x")}},
    /* empty messages */
    {"empty text", 0, "text:|", {FR(0x81, "")}},
    {"empty fragments",
     0,
     "text:|",
     {FR(0x01, ""), FR(0x00, ""), FR(0x80, "")}},
    {"empty then text", 0, "text:|text:a|", {FR(0x81, ""), FR(0x81, "a")}},
    {"text with empty fragments",
     0,
     "text:ab|",
     {FR(0x01, ""), FR(0x00, "a"), FR(0x00, ""), FR(0x80, "b")}},
};

#define NSPEC (sizeof(spec_cases) / sizeof(spec_cases[0]))

START_TEST(spec_rows)
{
    const struct spec_case *c = &spec_cases[_i];

    check_frames(c->name, c->f, c->max != 0 ? c->max : DEFAULT_MAX, c->want);
}
END_TEST

START_TEST(reserved_opcodes)
{
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    struct fspec f[2] = {{0}};

    for (size_t i = 0; i < sizeof(ops); i++) {
        f[0] = (struct fspec){.b0 = (uint8_t)(0x80 | ops[i]), .data = "x"};
        check_frames("reserved opcode", f, DEFAULT_MAX, "error:1002|");
        f[0].b0 = ops[i];
        check_frames("reserved opcode fin=0", f, DEFAULT_MAX, "error:1002|");
    }
}
END_TEST

static const struct {
    uint16_t code;
    bool valid;
} close_codes[] = {
    {0, false},    {1, false},    {999, false},   {1000, true},  {1001, true},
    {1002, true},  {1003, true},  {1004, false},  {1005, false}, {1006, false},
    {1007, true},  {1008, true},  {1009, true},   {1010, true},  {1011, true},
    {1012, false}, {1013, false}, {1014, false},  {1015, false}, {1016, false},
    {2000, false}, {2999, false}, {3000, true},   {3999, true},  {4000, true},
    {4999, true},  {5000, false}, {65535, false},
};

START_TEST(close_code_validation)
{
    uint16_t code = close_codes[_i].code;
    bool valid = close_codes[_i].valid;
    char payload[3] = {(char)(code >> 8), (char)code, 'x'}, want[32];
    struct fspec f[2] = {{.b0 = 0x88, .data = payload, .dlen = 3}};

    ck_assert_msg(sc_ws_close_code_valid(code) == valid, "%u", code);
    if (valid) {
        snprintf(want, sizeof(want), "close:%u:x|", code);
    } else {
        snprintf(want, sizeof(want), "error:1002|");
    }
    check_frames("close code", f, DEFAULT_MAX, want);
}
END_TEST

/* ---- the byte at which each error is reported --------------------------- */

struct fast_case {
    const char *name;
    uint64_t max; /* 0: DEFAULT_MAX */
    uint16_t code;
    long at; /* index of the byte whose arrival gives the error */
    struct fspec f[3];
};

static const struct fast_case fast_cases[] = {
    {"RSV bit", 0, 1002, 0, {FR(0xC1, "x")}},
    {"unmasked", 0, 1002, 1, {{.b0 = 0x81, .data = "x", .unmasked = true}}},
    {"ping 126 bytes",
     0,
     1002,
     1,
     {{.b0 = 0x89, .data = "", .declare = true, .length = 126}}},
    {"64-bit top bit",
     UINT64_MAX,
     1002,
     2,
     {{.b0 = 0x81, .data = "", .declare = true, .length = 1ull << 63}}},
    {"16-bit non-minimal",
     0,
     1002,
     3,
     {{.b0 = 0x81, .data = "Hello", .form = 126}}},
    {"64-bit non-minimal",
     0,
     1002,
     9,
     {{.b0 = 0x81, .data = "Hello", .form = 127}}},
    {"1-byte close", 0, 1002, 6, {{.b0 = 0x88, .data = "\x03", .dlen = 1}}},
    {"bad close code", 0, 1002, 7, {FR(0x88, "\x03\xed")}},
    {"binary",
     0,
     1003,
     0,
     {{.b0 = 0x82, .data = "", .declare = true, .length = 1000}}},
    {"bad byte in a frame",
     0,
     1007,
     8,
     {{.b0 = 0x81, .data = "ab\xc0", .declare = true, .length = 100}}},
    {"surrogate across fragments",
     0,
     1007,
     13,
     {FR(0x01, "\xed"), FR(0x80, "\xa0\x80")}},
    {"incomplete at the end", 0, 1007, 7, {FR(0x81, "a\xce")}},
    {"incomplete at an empty final fragment",
     0,
     1007,
     14,
     {FR(0x01, "a\xe2\x82"), FR(0x80, "")}},
    {"too big, 7-bit",
     16,
     1009,
     1,
     {{.b0 = 0x81, .data = "", .declare = true, .length = 17}}},
    {"too big, 16-bit",
     200,
     1009,
     3,
     {{.b0 = 0x81, .data = "", .declare = true, .length = 300}}},
    {"too big, 64-bit",
     0,
     1009,
     9,
     {{.b0 = 0x81, .data = "", .declare = true, .length = 1ull << 40}}},
    {"too big, second fragment",
     10,
     1009,
     12,
     {FR(0x01, "hello"),
      {.b0 = 0x80, .data = "", .declare = true, .length = 6}}},
};

#define NFAST (sizeof(fast_cases) / sizeof(fast_cases[0]))

START_TEST(fail_fast_position)
{
    const struct fast_case *c = &fast_cases[_i];
    struct bytes in = {0}, got;
    char want[32];
    long at;

    put_frames(&in, c->f, 3);
    got = parse_stream(in.p, in.len, c->max != 0 ? c->max : DEFAULT_MAX,
                       SPLIT_BYTES, 0, 0, &at);
    snprintf(want, sizeof(want), "error:%u|", c->code);
    ck_assert_msg(strcmp((const char *)got.p, want) == 0, "%s: %s", c->name,
                  (const char *)got.p);
    ck_assert_msg(at == c->at, "%s: error at byte %ld, want %ld", c->name, at,
                  c->at);
    bytes_free(&got);
    bytes_free(&in);
}
END_TEST

/* ---- events per call ------------------------------------------------------
 */

/* One feed call on a private copy; returns consumed. */
static long
feed(struct sc_ws_parser *p, uint8_t *buf, size_t len, struct sc_ws_event *ev,
     bool *have)
{
    long n = sc_ws_parser_feed(p, buf, len, ev, have);

    ck_assert(n >= 0 && (size_t)n <= len);
    return n;
}

START_TEST(text_chunks_per_read)
{
    uint8_t buf[sizeof(hello_masked)];
    struct sc_ws_parser p;
    struct sc_ws_event ev;
    bool have;

    memcpy(buf, hello_masked, sizeof(buf));
    sc_ws_parser_init(&p, DEFAULT_MAX);
    /* header and "He": one chunk, not the end of the message */
    ck_assert_int_eq(feed(&p, buf, 8, &ev, &have), 8);
    ck_assert(have && ev.type == SC_WS_EV_TEXT && !ev.fin);
    ck_assert(ev.data == buf + 6 && ev.len == 2);
    ck_assert_mem_eq(ev.data, "He", 2);
    /* "llo": unmasked in place with the key position carried over */
    ck_assert_int_eq(feed(&p, buf + 8, 3, &ev, &have), 3);
    ck_assert(have && ev.type == SC_WS_EV_TEXT && ev.fin);
    ck_assert(ev.data == buf + 8 && ev.len == 3);
    ck_assert_mem_eq(buf + 6, "Hello", 5);
    /* nothing more */
    ck_assert_int_eq(feed(&p, buf, 0, &ev, &have), 0);
    ck_assert(!have);
}
END_TEST

START_TEST(several_frames_in_one_read)
{
    struct fspec f[] = {FR(0x81, "ab"), FR(0x89, "p"), FR(0x01, ""),
                        FR(0x80, ""),   FR(0x81, "c"), {0}};
    static const struct {
        enum sc_ws_event_type type;
        const char *data;
        bool fin;
    } want[] = {{SC_WS_EV_TEXT, "ab", true},
                {SC_WS_EV_PING, "p", true},
                {SC_WS_EV_TEXT, "", true},
                {SC_WS_EV_TEXT, "c", true}};
    struct bytes in = {0};
    struct sc_ws_parser p;
    struct sc_ws_event ev;
    size_t off = 0, k = 0;
    bool have;

    put_frames(&in, f, MAX_FRAMES);
    sc_ws_parser_init(&p, DEFAULT_MAX);
    while (off < in.len) {
        off += (size_t)feed(&p, in.p + off, in.len - off, &ev, &have);
        if (!have) {
            continue;
        }
        ck_assert_uint_lt(k, 4);
        ck_assert_int_eq(ev.type, want[k].type);
        ck_assert_uint_eq(ev.len, strlen(want[k].data));
        ck_assert_mem_eq(ev.data, want[k].data, ev.len);
        ck_assert(ev.fin == want[k].fin);
        k++;
    }
    ck_assert_uint_eq(k, 4);
    bytes_free(&in);
}
END_TEST

START_TEST(empty_text_frame_event)
{
    uint8_t buf[] = {0x81, 0x80, 1, 2, 3, 4};
    struct sc_ws_parser p;
    struct sc_ws_event ev;
    bool have;

    sc_ws_parser_init(&p, 0); /* a zero limit still admits empty text */
    ck_assert_int_eq(feed(&p, buf, sizeof(buf), &ev, &have), 6);
    ck_assert(have && ev.type == SC_WS_EV_TEXT && ev.fin && ev.len == 0);
    ck_assert(ev.data == buf + sizeof(buf));
    buf[1] = 0x81;
    sc_ws_parser_init(&p, 0);
    ck_assert_int_eq(feed(&p, buf, sizeof(buf), &ev, &have), 2);
    ck_assert(have && ev.type == SC_WS_EV_ERROR && ev.close_code == 1009);
}
END_TEST

START_TEST(close_event_fields)
{
    struct fspec f[] = {{.b0 = 0x88,
                         .data = "\x0b\xb8"
                                 "reason"},
                        FR(0x81, "ignored"),
                        {0}};
    struct bytes in = {0};
    struct sc_ws_parser p;
    struct sc_ws_event ev;
    bool have;
    long n;

    put_frames(&in, f, MAX_FRAMES);
    sc_ws_parser_init(&p, DEFAULT_MAX);
    n = feed(&p, in.p, in.len, &ev, &have);
    ck_assert_int_eq(n, 6 + 8);
    ck_assert(have && ev.type == SC_WS_EV_CLOSE && ev.close_code == 3000);
    ck_assert_uint_eq(ev.len, 6);
    ck_assert_mem_eq(ev.data, "reason", 6);
    /* the rest is swallowed without events */
    ck_assert_int_eq(feed(&p, in.p + n, in.len - (size_t)n, &ev, &have),
                     (long)(in.len - (size_t)n));
    ck_assert(!have);
    bytes_free(&in);
}
END_TEST

/* The state holds no pointer: a parser copied mid-frame carries on. */
START_TEST(parser_is_copyable)
{
    uint8_t buf[sizeof(hello_masked)];
    struct sc_ws_parser a, b;
    struct sc_ws_event ev;
    bool have;

    memcpy(buf, hello_masked, sizeof(buf));
    sc_ws_parser_init(&a, DEFAULT_MAX);
    feed(&a, buf, 4, &ev, &have);
    ck_assert(!have);
    memcpy(&b, &a, sizeof(b));
    memset(&a, 0xff, sizeof(a));
    ck_assert_int_eq(feed(&b, buf + 4, 7, &ev, &have), 7);
    ck_assert(have && ev.fin && ev.len == 5);
    ck_assert_mem_eq(ev.data, "Hello", 5);
}
END_TEST

START_TEST(parser_size)
{
    ck_assert_uint_le(offsetof(struct sc_ws_parser, ctl), 48);
    ck_assert_uint_le(sizeof(struct sc_ws_parser), 168);
}
END_TEST

/* ---- masking ------------------------------------------------------------ */

START_TEST(mask_matches_naive)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t a[64], b[64];

    for (size_t align = 0; align < 8; align++) {
        for (size_t off = 0; off < 8; off++) {
            for (size_t n = 0; n <= 40; n++) {
                for (size_t i = 0; i < sizeof(a); i++) {
                    a[i] = b[i] = (uint8_t)(i * 7 + 1);
                }
                sc_ws_mask(a + align, n, key, off);
                for (size_t i = 0; i < n; i++) {
                    b[align + i] ^= key[(off + i) % 4];
                }
                ck_assert_mem_eq(a, b, sizeof(a));
                sc_ws_mask(a + align, n, key, off);
                for (size_t i = 0; i < sizeof(a); i++) {
                    ck_assert_uint_eq(a[i], (uint8_t)(i * 7 + 1));
                }
            }
        }
    }
}
END_TEST

/* ---- encoder ----------------------------------------------------------- */

static const struct {
    uint64_t len;
    size_t size;
    uint8_t hdr[10];
} header_cases[] = {
    {0, 2, {0x81, 0x00}},
    {5, 2, {0x81, 0x05}},
    {125, 2, {0x81, 0x7D}},
    {126, 4, {0x81, 0x7E, 0x00, 0x7E}},
    {256, 4, {0x81, 0x7E, 0x01, 0x00}},
    {65535, 4, {0x81, 0x7E, 0xFF, 0xFF}},
    {65536, 10, {0x81, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
    {1ull << 32, 10, {0x81, 0x7F, 0, 0, 0, 0x01, 0, 0, 0, 0}},
    {(1ull << 63) - 1,
     10,
     {0x81, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
    {1ull << 63, 0, {0}},
};

START_TEST(header_minimal_lengths)
{
    uint8_t out[SC_WS_HEADER_MAX];
    size_t n =
        sc_ws_frame_header(out, SC_WS_OP_TEXT, true, header_cases[_i].len);

    ck_assert_uint_eq(n, header_cases[_i].size);
    ck_assert_mem_eq(out, header_cases[_i].hdr, n);
}
END_TEST

START_TEST(header_opcode_and_fin)
{
    uint8_t out[SC_WS_HEADER_MAX];

    sc_ws_frame_header(out, SC_WS_OP_BINARY, true, 256);
    ck_assert_mem_eq(out, "\x82\x7e\x01\x00", 4);
    sc_ws_frame_header(out, SC_WS_OP_TEXT, false, 3);
    ck_assert_mem_eq(out, "\x01\x03", 2);
    sc_ws_frame_header(out, SC_WS_OP_CONT, true, 0);
    ck_assert_mem_eq(out, "\x80\x00", 2);
    sc_ws_frame_header(out, SC_WS_OP_PONG, true, 1);
    ck_assert_mem_eq(out, "\x8a\x01", 2);
}
END_TEST

START_TEST(encode_frames)
{
    uint8_t out[200];

    /* RFC 6455 5.7: the unmasked server frames */
    ck_assert_int_eq(
        sc_ws_frame_encode(out, sizeof(out), SC_WS_OP_TEXT, "Hello", 5), 7);
    ck_assert_mem_eq(out, "\x81\x05Hello", 7);
    ck_assert_int_eq(
        sc_ws_frame_encode(out, sizeof(out), SC_WS_OP_PING, "Hello", 5), 7);
    ck_assert_mem_eq(out, "\x89\x05Hello", 7);
    ck_assert_int_eq(sc_ws_frame_encode(out, 2, SC_WS_OP_PONG, NULL, 0), 2);
    ck_assert_mem_eq(out, "\x8a\x00", 2);
    /* exactly enough room, one byte short */
    ck_assert_int_eq(sc_ws_frame_encode(out, 7, SC_WS_OP_TEXT, "Hello", 5), 7);
    ck_assert_int_eq(sc_ws_frame_encode(out, 6, SC_WS_OP_TEXT, "Hello", 5), -1);
    ck_assert_int_eq(sc_ws_frame_encode(out, 0, SC_WS_OP_TEXT, NULL, 0), -1);
    /* control payloads are at most 125 bytes, opcodes must exist */
    ck_assert_int_eq(
        sc_ws_frame_encode(out, sizeof(out), SC_WS_OP_PING, A125, 125), 127);
    ck_assert_int_eq(
        sc_ws_frame_encode(out, sizeof(out), SC_WS_OP_PING, A126, 126), -1);
    ck_assert_int_eq(sc_ws_frame_encode(out, sizeof(out), 3, "x", 1), -1);
    ck_assert_int_eq(sc_ws_frame_encode(out, sizeof(out), 0xB, "x", 1), -1);
    /* the payload may already sit where the header goes */
    memcpy(out, "Hello", 5);
    ck_assert_int_eq(
        sc_ws_frame_encode(out, sizeof(out), SC_WS_OP_TEXT, out, 5), 7);
    ck_assert_mem_eq(out, "\x81\x05Hello", 7);
}
END_TEST

START_TEST(encode_close_frames)
{
    uint8_t out[200];
    char reason[200];

    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 0, "ignored"), 2);
    ck_assert_mem_eq(out, "\x88\x00", 2);
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, NULL), 4);
    ck_assert_mem_eq(out, "\x88\x02\x03\xe8", 4);
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1008, "Invalid token"),
                     17);
    ck_assert_mem_eq(out, "\x88\x0f\x03\xf0Invalid token", 17);
    /* codes that must never be sent */
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1005, NULL), -1);
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 999, NULL), -1);
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 5000, NULL), -1);
    /* too small, invalid reason */
    ck_assert_int_eq(sc_ws_close_frame(out, 16, 1008, "Invalid token"), -1);
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, "\xff"), -1);
    /* long reasons are cut to 123 bytes */
    memset(reason, 'a', 130);
    reason[130] = '\0';
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, reason), 127);
    ck_assert_uint_eq(out[1], 125);
    /* ... never inside a character: 122 + 2 bytes cut before the 2 */
    memset(reason, 'a', 122);
    strcpy(reason + 122, "\xc3\xa9");
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, reason),
                     2 + 2 + 122);
    /* 121 + 2 bytes fits whole */
    memset(reason, 'a', 121);
    strcpy(reason + 121, "\xc3\xa9");
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, reason),
                     2 + 2 + 123);
    /* 121 + 3 bytes, and 120 + 4 bytes: back to 121 and 120 */
    strcpy(reason + 121, "\xe2\x82\xac");
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, reason),
                     2 + 2 + 121);
    memset(reason, 'a', 120);
    strcpy(reason + 120, "\xf0\x9f\x98\x80");
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, reason),
                     2 + 2 + 120);
    /* the whole reason must be UTF-8, not just the part that is kept */
    memset(reason, 'a', 130);
    strcpy(reason + 130, "\x81");
    ck_assert_int_eq(sc_ws_close_frame(out, sizeof(out), 1000, reason), -1);
}
END_TEST

static const size_t trip_lengths[] = {0,   1,   7,    8,     9,     125,
                                      126, 127, 1000, 65535, 65536, 70000};

/* encode -> mask as a client would -> parse gives the payload back */
START_TEST(round_trip)
{
    size_t n = trip_lengths[_i];
    char *text = make_text(n);
    uint8_t *frame = malloc(n + SC_WS_HEADER_MAX);
    struct bytes in = {0}, want = {0};
    long len;

    ck_assert_ptr_nonnull(frame);
    len =
        sc_ws_frame_encode(frame, n + SC_WS_HEADER_MAX, SC_WS_OP_TEXT, text, n);
    ck_assert_int_eq(len, (long)(n + (n < 126 ? 2 : n < 65536 ? 4 : 10)));
    to_client(&in, frame, (size_t)len);
    bytes_str(&want, "text:");
    bytes_str(&want, text);
    bytes_str(&want, "|");
    if (n <= SC_WS_CONTROL_MAX) {
        len = sc_ws_frame_encode(frame, n + SC_WS_HEADER_MAX, SC_WS_OP_PING,
                                 text, n);
        to_client(&in, frame, (size_t)len);
        bytes_str(&want, "ping:");
        bytes_str(&want, text);
        bytes_str(&want, "|");
    }
    check_stream("round trip", in.p, in.len, 1 << 20, want.p, want.len);
    bytes_free(&in);
    bytes_free(&want);
    free(frame);
    free(text);
}
END_TEST

START_TEST(round_trip_close)
{
    uint8_t frame[SC_WS_HEADER_MAX + SC_WS_CONTROL_MAX];
    struct bytes in = {0};
    long len;
    static const char want[] = "close:1001:Server shutting down|";

    len = sc_ws_close_frame(frame, sizeof(frame), 1001, "Server shutting down");
    ck_assert_int_gt(len, 0);
    to_client(&in, frame, (size_t)len);
    check_stream("close round trip", in.p, in.len, DEFAULT_MAX,
                 (const uint8_t *)want, strlen(want));
    in.len = 0;
    len = sc_ws_close_frame(frame, sizeof(frame), 0, NULL);
    to_client(&in, frame, (size_t)len);
    check_stream("empty close round trip", in.p, in.len, DEFAULT_MAX,
                 (const uint8_t *)"close:0:|", 9);
    bytes_free(&in);
}
END_TEST

static Suite *
ws_frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *rfc = tcase_create("rfc6455");
    TCase *spec = tcase_create("spec");
    TCase *api = tcase_create("api");
    TCase *enc = tcase_create("encoder");

    tcase_set_timeout(rfc, 120);
    tcase_add_test(rfc, rfc_single_frame_unmasked);
    tcase_add_test(rfc, rfc_single_frame_masked);
    tcase_add_test(rfc, rfc_fragmented_unmasked);
    tcase_add_test(rfc, rfc_fragmented_masked);
    tcase_add_test(rfc, rfc_ping_pong);
    tcase_add_test(rfc, rfc_binary_refused);
    tcase_add_test(rfc, rfc_text_256_and_64k);
    tcase_add_test(rfc, rfc_all_in_one_stream);
    suite_add_tcase(s, rfc);

    tcase_add_loop_test(spec, spec_rows, 0, NSPEC);
    tcase_add_test(spec, reserved_opcodes);
    tcase_add_loop_test(spec, close_code_validation, 0,
                        sizeof(close_codes) / sizeof(close_codes[0]));
    tcase_add_loop_test(spec, fail_fast_position, 0, NFAST);
    suite_add_tcase(s, spec);

    tcase_add_test(api, text_chunks_per_read);
    tcase_add_test(api, several_frames_in_one_read);
    tcase_add_test(api, empty_text_frame_event);
    tcase_add_test(api, close_event_fields);
    tcase_add_test(api, parser_is_copyable);
    tcase_add_test(api, parser_size);
    tcase_add_test(api, mask_matches_naive);
    suite_add_tcase(s, api);

    tcase_set_timeout(enc, 120);
    tcase_add_loop_test(enc, header_minimal_lengths, 0,
                        sizeof(header_cases) / sizeof(header_cases[0]));
    tcase_add_test(enc, header_opcode_and_fin);
    tcase_add_test(enc, encode_frames);
    tcase_add_test(enc, encode_close_frames);
    tcase_add_loop_test(enc, round_trip, 0,
                        sizeof(trip_lengths) / sizeof(trip_lengths[0]));
    tcase_add_test(enc, round_trip_close);
    suite_add_tcase(s, enc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ws_frame_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
