/*
 * fuzz_frame.c - libFuzzer target for the frame parser, encoder and utf8
 *
 * Input layout:
 *   byte 0       low 4 bits: k, the number of chunk-size bytes;
 *                high 3 bits: the message limit, one of limits[]
 *   bytes 1..k   chunk sizes (value + 1, used in turn; k = 0: one chunk)
 *   the rest     the client's byte stream
 *
 * The stream is fed in those chunks, each an exact-size heap copy (ASan
 * sees any over-read), then again in one piece; both runs must end with the
 * same digest of events.  Every call is checked: bytes consumed within
 * bounds, text chunks inside the caller's chunk, control payloads inside
 * the parser, messages within the limit and valid UTF-8 (by an independent
 * decoder), close codes valid, errors sticky, nothing after a close.
 * Then the encoder: the stream as a text payload and as a close reason
 * must come back through the parser unchanged (or cut at a boundary).
 */
#include "ws_frame.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                           \
        }                                                                      \
    } while (0)

static const uint64_t limits[8] = {0, 1, 16, 125, 126, 1000, 65536, UINT64_MAX};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding reference for UTF-8, independent of utf8.c. */
static bool
ref_utf8(const uint8_t *p, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0, k, len;
    uint32_t cp;

    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if ((p[i] & 0xE0) == 0xC0) {
            len = 2, cp = p[i] & 0x1F;
        } else if ((p[i] & 0xF0) == 0xE0) {
            len = 3, cp = p[i] & 0x0F;
        } else if ((p[i] & 0xF8) == 0xF0) {
            len = 4, cp = p[i] & 0x07;
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

struct run {
    struct sc_ws_parser p;
    uint64_t max;
    uint8_t *msg; /* text message gathered so far (cap: stream size) */
    size_t msg_len, msg_cap;
    uint64_t digest; /* FNV-1a over complete events */
    bool failed, closed;
    uint16_t error;
};

static void
digest(struct run *r, const void *data, size_t n)
{
    const uint8_t *b = data;

    for (size_t i = 0; i < n; i++) {
        r->digest = (r->digest ^ b[i]) * 0x100000001b3ull;
    }
}

static bool
within(const uint8_t *p, size_t n, const void *base, size_t size)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;

    return a >= b && a + n <= b + size;
}

static void
on_text(struct run *r, const struct sc_ws_event *ev, const uint8_t *chunk,
        size_t clen)
{
    FUZZ_ASSERT(within(ev->data, ev->len, chunk, clen));
    FUZZ_ASSERT(ev->len > 0 || ev->fin);
    FUZZ_ASSERT(ev->len <= r->msg_cap - r->msg_len);
    memcpy(r->msg + r->msg_len, ev->data, ev->len);
    r->msg_len += ev->len;
    FUZZ_ASSERT(r->msg_len <= r->max);
    if (ev->fin) {
        FUZZ_ASSERT(ref_utf8(r->msg, r->msg_len));
        digest(r, "T", 1);
        digest(r, &r->msg_len, sizeof(r->msg_len));
        digest(r, r->msg, r->msg_len);
        r->msg_len = 0;
    }
}

static void
on_event(struct run *r, const struct sc_ws_event *ev, const uint8_t *chunk,
         size_t clen)
{
    uint8_t tag = (uint8_t)ev->type;

    if (ev->type == SC_WS_EV_TEXT) {
        on_text(r, ev, chunk, clen);
        return;
    }
    digest(r, &tag, 1);
    digest(r, &ev->close_code, sizeof(ev->close_code));
    if (ev->type == SC_WS_EV_ERROR) {
        FUZZ_ASSERT(ev->close_code == 1002 || ev->close_code == 1003 ||
                    ev->close_code == 1007 || ev->close_code == 1009);
        FUZZ_ASSERT(ev->data == NULL && ev->len == 0);
        r->failed = true;
        r->error = ev->close_code;
        return;
    }
    FUZZ_ASSERT(within(ev->data, ev->len, r->p.ctl, sizeof(r->p.ctl)));
    FUZZ_ASSERT(ev->len <= SC_WS_CONTROL_MAX);
    if (ev->type == SC_WS_EV_CLOSE) {
        FUZZ_ASSERT(ev->len <= SC_WS_CLOSE_REASON_MAX);
        FUZZ_ASSERT(ev->close_code == 0
                        ? ev->len == 0
                        : sc_ws_close_code_valid(ev->close_code));
        FUZZ_ASSERT(ref_utf8(ev->data, ev->len));
        r->closed = true;
    } else {
        FUZZ_ASSERT(ev->close_code == 0);
    }
    digest(r, &ev->len, sizeof(ev->len));
    digest(r, ev->data, ev->len);
}

/* Feeds one chunk from an exact-size heap copy, as the glue would. */
static void
feed_chunk(struct run *r, const uint8_t *src, size_t n)
{
    uint8_t *chunk = malloc(n);
    struct sc_ws_event ev;
    size_t off = 0;
    bool have;
    long c;

    FUZZ_ASSERT(chunk != NULL);
    memcpy(chunk, src, n);
    while (off < n && !r->failed) {
        bool was_closed = r->closed;
        c = sc_ws_parser_feed(&r->p, chunk + off, n - off, &ev, &have);
        FUZZ_ASSERT(c >= 0 && (size_t)c <= n - off);
        FUZZ_ASSERT(have || (size_t)c == n - off);
        /* after a close: everything swallowed, no event */
        FUZZ_ASSERT(!was_closed || (!have && (size_t)c == n - off));
        off += (size_t)c;
        if (have) {
            on_event(r, &ev, chunk, n);
        }
    }
    if (r->failed) {
        /* sticky: nothing consumed, the same error again */
        c = sc_ws_parser_feed(&r->p, chunk, n, &ev, &have);
        FUZZ_ASSERT(c == 0 && have && ev.type == SC_WS_EV_ERROR &&
                    ev.close_code == r->error);
    }
    free(chunk);
}

static uint64_t
run_stream(const uint8_t *in, size_t len, uint64_t max, const uint8_t *sizes,
           size_t nsizes)
{
    struct run r;
    size_t off = 0, i = 0, n;

    memset(&r, 0, sizeof(r));
    sc_ws_parser_init(&r.p, max);
    r.max = max;
    r.msg_cap = len;
    r.msg = malloc(len + 1);
    r.digest = 0xcbf29ce484222325ull;
    FUZZ_ASSERT(r.msg != NULL);
    while (off < len && !r.failed) {
        n = nsizes == 0 ? len - off : (size_t)sizes[i++ % nsizes] + 1;
        n = n < len - off ? n : len - off;
        feed_chunk(&r, in + off, n);
        off += n;
    }
    free(r.msg);
    return r.digest;
}

/* utf8.c against the reference, whole and in two parts. */
static void
check_utf8(const uint8_t *s, size_t n)
{
    struct sc_utf8 u;
    bool ok = ref_utf8(s, n);
    size_t cut = n == 0 ? 0 : s[0] % (n + 1);

    FUZZ_ASSERT(sc_utf8_valid(s, n) == ok);
    sc_utf8_init(&u);
    sc_utf8_feed(&u, s, cut);
    sc_utf8_feed(&u, s + cut, n - cut);
    FUZZ_ASSERT(sc_utf8_complete(&u) == ok);
}

/* Masks an unmasked server frame into a client frame in out. */
static size_t
to_client(uint8_t *out, const uint8_t *frame, size_t len)
{
    static const uint8_t key[4] = {0x5c, 0x00, 0xa3, 0x17};
    size_t hl = (frame[1] & 0x7F) == 127   ? 10
                : (frame[1] & 0x7F) == 126 ? 4
                                           : 2;

    memcpy(out, frame, hl);
    out[1] |= 0x80;
    memcpy(out + hl, key, 4);
    memcpy(out + hl + 4, frame + hl, len - hl);
    sc_ws_mask(out + hl + 4, len - hl, key, 0);
    return len + 4;
}

/* Parses one client frame whole; returns the first event. */
static bool
parse_one(uint8_t *buf, size_t len, struct sc_ws_parser *p,
          struct sc_ws_event *ev)
{
    bool have;
    long c;

    sc_ws_parser_init(p, UINT64_MAX);
    c = sc_ws_parser_feed(p, buf, len, ev, &have);
    FUZZ_ASSERT(have && (size_t)c == len);
    return have;
}

static void
check_text_round_trip(const uint8_t *s, size_t n)
{
    uint8_t *frame = malloc(n + SC_WS_HEADER_MAX);
    uint8_t *client = malloc(n + SC_WS_HEADER_MAX + 4);
    struct sc_ws_parser p;
    struct sc_ws_event ev;
    long len;

    FUZZ_ASSERT(frame != NULL && client != NULL);
    len = sc_ws_frame_encode(frame, n + SC_WS_HEADER_MAX, SC_WS_OP_TEXT, s, n);
    FUZZ_ASSERT(len >= (long)n + 2);
    if (sc_utf8_valid(s, n)) {
        size_t cl = to_client(client, frame, (size_t)len);
        parse_one(client, cl, &p, &ev);
        FUZZ_ASSERT(ev.type == SC_WS_EV_TEXT && ev.fin && ev.len == n);
        FUZZ_ASSERT(n == 0 || memcmp(ev.data, s, n) == 0);
    }
    free(client);
    free(frame);
}

static void
check_close_round_trip(const uint8_t *s, size_t n)
{
    uint8_t frame[SC_WS_HEADER_MAX + SC_WS_CONTROL_MAX];
    uint8_t client[sizeof(frame) + 4];
    char reason[200];
    uint16_t code = n >= 2 ? (uint16_t)(s[0] << 8 | s[1]) : 1000;
    size_t rn = n > 2 ? n - 2 : 0;
    struct sc_ws_parser p;
    struct sc_ws_event ev;
    long len;

    rn = rn < sizeof(reason) - 1 ? rn : sizeof(reason) - 1;
    memcpy(reason, s + (n > 2 ? 2 : 0), rn);
    reason[rn] = '\0';
    rn = strlen(reason);
    len = sc_ws_close_frame(frame, sizeof(frame), code, reason);
    if (len < 0) {
        FUZZ_ASSERT(code != 0 && (!sc_ws_close_code_valid(code) ||
                                  !ref_utf8((const uint8_t *)reason, rn)));
        return;
    }
    FUZZ_ASSERT(code == 0 || ref_utf8((const uint8_t *)reason, rn));
    parse_one(client, to_client(client, frame, (size_t)len), &p, &ev);
    FUZZ_ASSERT(ev.type == SC_WS_EV_CLOSE && ev.close_code == code);
    /* the reason comes back whole or cut short at a character boundary */
    FUZZ_ASSERT(ev.len <= rn);
    FUZZ_ASSERT(ev.len == 0 || memcmp(ev.data, reason, ev.len) == 0);
    FUZZ_ASSERT(code != 0 || ev.len == 0);
    /* a cut backs off over at most 3 continuation bytes */
    FUZZ_ASSERT(code == 0 || ev.len == rn ||
                ev.len >= SC_WS_CLOSE_REASON_MAX - 3);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t k;
    uint64_t max, chunked, whole;

    if (size == 0) {
        return 0;
    }
    k = data[0] & 0x0F;
    max = limits[(data[0] >> 4) & 7];
    if (size < 1 + k) {
        return 0;
    }
    chunked = run_stream(data + 1 + k, size - 1 - k, max, data + 1, k);
    whole = run_stream(data + 1 + k, size - 1 - k, max, NULL, 0);
    FUZZ_ASSERT(chunked == whole);
    check_utf8(data + 1 + k, size - 1 - k);
    check_text_round_trip(data + 1 + k, size - 1 - k);
    check_close_round_trip(data + 1 + k, size - 1 - k);
    return 0;
}
