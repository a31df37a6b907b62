/*
 * check_http_req.c - request-head parser: valid and malformed heads, fed
 * whole, byte by byte, in random splits and ending at a guard page; the
 * 8 KiB and 64-header limits; list tokens, query parameters, responses
 */
#include "http_req.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A string literal and its length, NUL bytes included. */
#define S(lit) lit, sizeof(lit) - 1

/* Input copied so that its last byte sits just before a PROT_NONE page. */
struct guarded {
    char *map;
    size_t maplen;
    char *data;
};

static void
guard_put(struct guarded *g, const char *s, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + page - 1) / page + 1;

    g->maplen = pages * page;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(g->map, MAP_FAILED);
    ck_assert_int_eq(mprotect(g->map + g->maplen - page, page, PROT_NONE), 0);
    g->data = g->map + g->maplen - page - n;
    memcpy(g->data, s, n);
}

static void
guard_free(struct guarded *g)
{
    munmap(g->map, g->maplen);
}

/* Small deterministic generator for split points. */
static uint32_t
next_rand(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

static bool
field_eq(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ---- valid heads ---- */

struct valid_case {
    const char *raw;
    const char *method;
    const char *path;
    const char *query;
    int minor;
    size_t nheaders;
};

static const struct valid_case valid[] = {
    {"GET /chat HTTP/1.1\r\n"
     "Host: server.example.com\r\n"
     "Upgrade: websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Origin: http://example.com\r\n"
     "Sec-WebSocket-Protocol: chat, superchat\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "\r\n",
     "GET", "/chat", "", 1, 7},
    {"GET /healthz HTTP/1.0\r\n\r\n", "GET", "/healthz", "", 0, 0},
    {"GET /ws?token=abc.def HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/ws",
     "token=abc.def", 1, 1},
    {"GET /ws/events/42? HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/ws/events/42",
     "", 1, 1},
    {"OPTIONS /a?b?c HTTP/1.1\r\nX-Empty:\r\nX-Tab:\t v \t\r\n\r\n", "OPTIONS",
     "/a", "b?c", 1, 2},
    {"GET /x|y{z}^`[]\\ HTTP/1.1\r\n\r\n", "GET", "/x|y{z}^`[]\\", "", 1, 0},
    {"GET / HTTP/1.1\r\nUser-Agent: caf\xc3\xa9\r\n\r\n", "GET", "/", "", 1, 1},
    {"M-SEARCH /%41?%zz HTTP/1.1\r\nx:y\r\n\r\n", "M-SEARCH", "/%41", "%zz", 1,
     1},
    {"get / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v a l\r\n\r\n", "get", "/", "",
     1, 1},
};

#define NVALID (int)(sizeof(valid) / sizeof(valid[0]))

static void
assert_valid_fields(const struct valid_case *vc, const struct sc_http_req *r)
{
    ck_assert(field_eq(r->method, r->method_len, vc->method));
    ck_assert(field_eq(r->path, r->path_len, vc->path));
    ck_assert(field_eq(r->query, r->query_len, vc->query));
    ck_assert_int_eq(r->minor_version, vc->minor);
    ck_assert_uint_eq(r->nheaders, vc->nheaders);
}

START_TEST(valid_whole)
{
    const struct valid_case *vc = &valid[_i];
    struct sc_http_req req;
    int n = (int)strlen(vc->raw);

    ck_assert_int_eq(sc_http_parse(vc->raw, strlen(vc->raw), &req), n);
    assert_valid_fields(vc, &req);
}
END_TEST

START_TEST(valid_byte_by_byte)
{
    const struct valid_case *vc = &valid[_i];
    size_t len = strlen(vc->raw);
    struct sc_http_req req;

    for (size_t k = 0; k < len; k++) {
        ck_assert_int_eq(sc_http_parse(vc->raw, k, &req), SC_HTTP_MORE);
    }
    ck_assert_int_eq(sc_http_parse(vc->raw, len, &req), (int)len);
    assert_valid_fields(vc, &req);
}
END_TEST

START_TEST(valid_random_splits)
{
    const struct valid_case *vc = &valid[_i];
    size_t len = strlen(vc->raw);
    uint32_t seed = 0x9e3779b9u + (uint32_t)_i;
    struct sc_http_req req;
    char buf[512];

    for (int round = 0; round < 200; round++) {
        size_t have = 0;
        int rc = SC_HTTP_MORE;

        /* reads of 1..len bytes into one buffer, re-parsed each time */
        while (rc == SC_HTTP_MORE) {
            size_t chunk = 1 + next_rand(&seed) % len;

            if (chunk > len - have) {
                chunk = len - have;
            }
            memcpy(buf + have, vc->raw + have, chunk);
            have += chunk;
            rc = sc_http_parse(buf, have, &req);
            if (have < len) {
                ck_assert_int_eq(rc, SC_HTTP_MORE);
            }
        }
        ck_assert_int_eq(rc, (int)len);
        assert_valid_fields(vc, &req);
    }
}
END_TEST

START_TEST(valid_guard_page)
{
    const struct valid_case *vc = &valid[_i];
    size_t len = strlen(vc->raw);
    struct sc_http_req req;

    /* every prefix ends where the PROT_NONE page begins */
    for (size_t k = 0; k <= len; k++) {
        struct guarded g;

        guard_put(&g, vc->raw, k);
        ck_assert_int_eq(sc_http_parse(g.data, k, &req),
                         k < len ? SC_HTTP_MORE : (int)len);
        guard_free(&g);
    }
}
END_TEST

START_TEST(valid_pipelined)
{
    const struct valid_case *vc = &valid[_i];
    size_t len = strlen(vc->raw);
    struct sc_http_req req;
    char buf[600];

    memcpy(buf, vc->raw, len);
    memcpy(buf + len, "\x81\x85garbage\r\n\r\nGET / HTTP/1.1\r\n\0\xff", 32);
    ck_assert_int_eq(sc_http_parse(buf, len + 32, &req), (int)len);
    assert_valid_fields(vc, &req);
}
END_TEST

/* ---- malformed heads ---- */

struct bad_case {
    const char *raw;
    size_t len;
    int expect;
};

static const struct bad_case bad[] = {
    {S(" GET / HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("\r\nGET / HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET  / HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /  HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET http://a/ HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET * HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.2\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/2.0\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/0.9\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / http/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1 \r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.10\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /\tHTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\n\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost: a\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost: a\r\n\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\n\rx"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\n\tX: a\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\n: a\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX(y): a\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX: a\x01"
       "b\r\n\r\n"),
     SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /a#b HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /a\x80 HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /a\x7f HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("G\0T / HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET /\0 HTTP/1.1\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\0\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX\0: a\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX: a\0\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\n\0\r\n\r\n"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n"), SC_HTTP_EBAD},
    /* decided before the head is complete */
    {S("GE\0"), SC_HTTP_EBAD},
    {S("GET h"), SC_HTTP_EBAD},
    {S("GET / HTTP/2"), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\nHost : "), SC_HTTP_EBAD},
    {S("GET / HTTP/1.1\r\n "), SC_HTTP_EBAD},
    {S("GET /\x01"), SC_HTTP_EBAD},
};

#define NBAD (int)(sizeof(bad) / sizeof(bad[0]))

START_TEST(bad_whole)
{
    struct sc_http_req req;

    ck_assert_int_eq(sc_http_parse(bad[_i].raw, bad[_i].len, &req),
                     bad[_i].expect);
}
END_TEST

START_TEST(bad_prefixes_guard_page)
{
    const struct bad_case *bc = &bad[_i];
    struct sc_http_req req;

    /* a prefix answers MORE or the same error, never a head length */
    for (size_t k = 0; k <= bc->len; k++) {
        struct guarded g;
        int rc;

        guard_put(&g, bc->raw, k);
        rc = sc_http_parse(g.data, k, &req);
        guard_free(&g);
        ck_assert(rc == SC_HTTP_MORE || rc == bc->expect);
    }
}
END_TEST

START_TEST(empty_input)
{
    struct sc_http_req req;

    ck_assert_int_eq(sc_http_parse(NULL, 0, &req), SC_HTTP_MORE);
    ck_assert_int_eq(sc_http_parse("", 0, &req), SC_HTTP_MORE);
}
END_TEST

/* ---- limits ---- */

static const char pad_line[] = "GET /ws HTTP/1.1\r\nX-Pad: ";

/* A head of exactly `total` bytes: a request line, one padding header. */
static char *
head_of_size(size_t total, size_t extra)
{
    const char *line = pad_line;
    size_t fixed = sizeof(pad_line) - 1 + 4;
    char *buf = malloc(total + extra);

    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_ge(total, fixed + 1);
    memcpy(buf, line, sizeof(pad_line) - 1);
    memset(buf + sizeof(pad_line) - 1, 'p', total - fixed);
    memcpy(buf + total - 4, "\r\n\r\n", 4);
    memset(buf + total, 'z', extra);
    return buf;
}

START_TEST(limit_8192_ok)
{
    struct sc_http_req req;
    char *buf = head_of_size(SC_HTTP_MAX_HEAD, 100);
    struct guarded g;

    ck_assert_int_eq(sc_http_parse(buf, SC_HTTP_MAX_HEAD, &req),
                     SC_HTTP_MAX_HEAD);
    ck_assert_uint_eq(req.headers[0].value_len,
                      SC_HTTP_MAX_HEAD - (sizeof(pad_line) - 1) - 4);
    /* pipelined bytes beyond the limit do not matter */
    ck_assert_int_eq(sc_http_parse(buf, SC_HTTP_MAX_HEAD + 100, &req),
                     SC_HTTP_MAX_HEAD);
    ck_assert_int_eq(sc_http_parse(buf, SC_HTTP_MAX_HEAD - 1, &req),
                     SC_HTTP_MORE);
    guard_put(&g, buf, SC_HTTP_MAX_HEAD);
    ck_assert_int_eq(sc_http_parse(g.data, SC_HTTP_MAX_HEAD, &req),
                     SC_HTTP_MAX_HEAD);
    guard_free(&g);
    free(buf);
}
END_TEST

START_TEST(limit_8193_too_big)
{
    struct sc_http_req req;
    char *buf = head_of_size(SC_HTTP_MAX_HEAD + 1, 0);
    struct guarded g;

    ck_assert_int_eq(sc_http_parse(buf, SC_HTTP_MAX_HEAD, &req), SC_HTTP_MORE);
    ck_assert_int_eq(sc_http_parse(buf, SC_HTTP_MAX_HEAD + 1, &req),
                     SC_HTTP_ETOOBIG);
    guard_put(&g, buf, SC_HTTP_MAX_HEAD + 1);
    ck_assert_int_eq(sc_http_parse(g.data, SC_HTTP_MAX_HEAD + 1, &req),
                     SC_HTTP_ETOOBIG);
    guard_free(&g);
    free(buf);
}
END_TEST

START_TEST(limit_no_blank_line)
{
    struct sc_http_req req;
    char *buf = head_of_size(20000, 0);

    /* 431 as soon as the buffer passes 8 KiB, blank line or not */
    ck_assert_int_eq(sc_http_parse(buf, SC_HTTP_MAX_HEAD + 1, &req),
                     SC_HTTP_ETOOBIG);
    ck_assert_int_eq(sc_http_parse(buf, 20000, &req), SC_HTTP_ETOOBIG);
    /* a malformed byte within the limit is still a 400 */
    buf[100] = '\n';
    ck_assert_int_eq(sc_http_parse(buf, 20000, &req), SC_HTTP_EBAD);
    free(buf);
}
END_TEST

/* "GET / HTTP/1.1\r\n" and n lines "H: v\r\n", then the blank line. */
static size_t
many_headers(char *buf, int n, bool blank)
{
    size_t o = 0;

    memcpy(buf, "GET / HTTP/1.1\r\n", 16);
    o = 16;
    for (int i = 0; i < n; i++) {
        memcpy(buf + o, "H: v\r\n", 6);
        o += 6;
    }
    if (blank) {
        memcpy(buf + o, "\r\n", 2);
        o += 2;
    }
    return o;
}

START_TEST(limit_64_headers)
{
    struct sc_http_req req;
    char buf[2048];
    size_t n = many_headers(buf, SC_HTTP_MAX_HEADERS, true);

    ck_assert_int_eq(sc_http_parse(buf, n, &req), (int)n);
    ck_assert_uint_eq(req.nheaders, SC_HTTP_MAX_HEADERS);
    n = many_headers(buf, SC_HTTP_MAX_HEADERS + 1, true);
    ck_assert_int_eq(sc_http_parse(buf, n, &req), SC_HTTP_ETOOBIG);
    /* known at the first byte of the 65th line */
    n = many_headers(buf, SC_HTTP_MAX_HEADERS, false);
    ck_assert_int_eq(sc_http_parse(buf, n, &req), SC_HTTP_MORE);
    ck_assert_int_eq(sc_http_parse(buf, n + 1, &req), SC_HTTP_ETOOBIG);
}
END_TEST

START_TEST(huge_header_count)
{
    struct sc_http_req req;
    static char buf[16384];
    size_t n = many_headers(buf, 2000, true);

    ck_assert_uint_gt(n, SC_HTTP_MAX_HEAD);
    ck_assert_int_eq(sc_http_parse(buf, n, &req), SC_HTTP_ETOOBIG);
    ck_assert_uint_eq(req.nheaders, SC_HTTP_MAX_HEADERS);
}
END_TEST

/* ---- fields and lookups ---- */

START_TEST(fields_trimmed)
{
    static const char raw[] = "GET /p?q=1 HTTP/1.1\r\n"
                              "Host:example.com\r\n"
                              "X-Empty:   \r\n"
                              "X-Ows: \t a  b \t \r\n"
                              "x-dup: one\r\n"
                              "X-DUP: two\r\n"
                              "\r\n";
    struct sc_http_req req;
    const struct sc_http_header *h;

    ck_assert_int_eq(sc_http_parse(raw, sizeof(raw) - 1, &req),
                     (int)sizeof(raw) - 1);
    ck_assert_uint_eq(req.nheaders, 5);
    ck_assert(field_eq(req.target, req.target_len, "/p?q=1"));
    h = sc_http_header_find(&req, "host");
    ck_assert_ptr_nonnull(h);
    ck_assert(field_eq(h->value, h->value_len, "example.com"));
    h = sc_http_header_find(&req, "X-EMPTY");
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->value_len, 0);
    h = sc_http_header_find(&req, "x-ows");
    ck_assert(field_eq(h->value, h->value_len, "a  b"));
    h = sc_http_header_find(&req, "X-Dup");
    ck_assert(field_eq(h->value, h->value_len, "one"));
    ck_assert_uint_eq(sc_http_header_count(&req, "x-dup"), 2);
    ck_assert_uint_eq(sc_http_header_count(&req, "host"), 1);
    ck_assert_uint_eq(sc_http_header_count(&req, "Hos"), 0);
    ck_assert_ptr_null(sc_http_header_find(&req, "Hostx"));
    ck_assert_ptr_null(sc_http_header_find(&req, "X-Du"));
}
END_TEST

struct token_case {
    const char *value;
    const char *token;
    bool expect;
};

static const struct token_case tokens[] = {
    {"keep-alive, Upgrade", "upgrade", true},
    {"Upgrade", "upgrade", true},
    {"UPGRADE", "Upgrade", true},
    {"keep-alive,upgrade", "upgrade", true},
    {" , ,upgrade , ", "upgrade", true},
    {"\tupgrade\t,x", "upgrade", true},
    {"upgrade2", "upgrade", false},
    {"xupgrade", "upgrade", false},
    {"up grade", "upgrade", false},
    {"upgrad", "upgrade", false},
    {"", "upgrade", false},
    {",,,", "upgrade", false},
    {"keep-alive", "upgrade", false},
    {"websocket/13", "websocket", false},
    {"h2c, websocket", "websocket", true},
};

START_TEST(list_tokens)
{
    const struct token_case *tc = &tokens[_i];

    ck_assert_int_eq(sc_http_has_token(tc->value, strlen(tc->value), tc->token),
                     tc->expect);
}
END_TEST

START_TEST(list_iteration)
{
    static const char v[] = ", a ,, b\t,c,";
    const char *e;
    size_t pos = 0, n;

    ck_assert(sc_http_list_next(v, sizeof(v) - 1, &pos, &e, &n));
    ck_assert(field_eq(e, n, "a"));
    ck_assert(sc_http_list_next(v, sizeof(v) - 1, &pos, &e, &n));
    ck_assert(field_eq(e, n, "b"));
    ck_assert(sc_http_list_next(v, sizeof(v) - 1, &pos, &e, &n));
    ck_assert(field_eq(e, n, "c"));
    ck_assert(!sc_http_list_next(v, sizeof(v) - 1, &pos, &e, &n));
    ck_assert(!sc_http_list_next(v, sizeof(v) - 1, &pos, &e, &n));
}
END_TEST

struct param_case {
    const char *query;
    size_t outcap;
    long expect;
    const char *value; /* expect bytes when expect >= 0 */
};

static const struct param_case params[] = {
    {"token=abc", 64, 3, "abc"},
    {"a=1&token=x%2By+z", 64, 5, "x+y z"},
    {"tokenx=1&token=2", 64, 1, "2"},
    {"xtoken=1", 64, SC_HTTP_PARAM_ABSENT, NULL},
    {"Token=1", 64, SC_HTTP_PARAM_ABSENT, NULL},
    {"", 64, SC_HTTP_PARAM_ABSENT, NULL},
    {"token", 64, 0, ""},
    {"token=", 64, 0, ""},
    {"a=1&&token=%41%4a%4A", 64, 3, "AJJ"},
    {"token=1&token=2", 64, 1, "1"},
    {"token=%e2%82%AC", 64, 3, "\xe2\x82\xac"},
    {"a=%zz&token=ok", 64, 2, "ok"},
    {"=x&token=y", 64, 1, "y"},
    {"token=a=b", 64, 3, "a=b"},
    {"token=%4", 64, SC_HTTP_PARAM_EBAD, NULL},
    {"token=%zz", 64, SC_HTTP_PARAM_EBAD, NULL},
    {"token=%", 64, SC_HTTP_PARAM_EBAD, NULL},
    {"token=a%2", 64, SC_HTTP_PARAM_EBAD, NULL},
    {"token=%g0", 64, SC_HTTP_PARAM_EBAD, NULL},
    {"token=abcd", 5, 4, "abcd"},
    {"token=abcd", 4, SC_HTTP_PARAM_ETOOLONG, NULL},
    {"token=", 1, 0, ""},
    {"token=", 0, SC_HTTP_PARAM_ETOOLONG, NULL},
    {"token=abcd%zz", 2, SC_HTTP_PARAM_EBAD, NULL},
    {"token=%41%41%41", 4, 3, "AAA"},
    {"token=%41%41%41", 3, SC_HTTP_PARAM_ETOOLONG, NULL},
};

START_TEST(query_params)
{
    const struct param_case *pc = &params[_i];
    char out[65];
    long rc;

    memset(out, 'X', sizeof(out));
    rc = sc_http_query_param(pc->query, strlen(pc->query), "token",
                             pc->outcap ? out : NULL, pc->outcap);
    ck_assert_int_eq(rc, pc->expect);
    if (rc >= 0) {
        ck_assert_mem_eq(out, pc->value, (size_t)rc);
        ck_assert_int_eq(out[rc], '\0');
    }
    /* never a byte beyond outcap */
    ck_assert_int_eq(out[pc->outcap], 'X');
}
END_TEST

START_TEST(query_param_nul)
{
    char out[8];

    ck_assert_int_eq(sc_http_query_param(S("token=a%00b"), "token", out, 8), 3);
    ck_assert_mem_eq(out, "a\0b", 4);
}
END_TEST

/* ---- responses ---- */

START_TEST(response_exact)
{
    static const char want[] = "HTTP/1.1 404 Not Found\r\n"
                               "Content-Length: 5\r\n"
                               "Connection: close\r\n"
                               "Content-Type: text/plain\r\n"
                               "X-A: 1\r\n"
                               "\r\n"
                               "a\0b\r\n";
    char out[256];
    long n;

    n = sc_http_response(404, "text/plain", "X-A: 1\r\n", "a\0b\r\n", 5, out,
                         sizeof(out));
    ck_assert_int_eq(n, (long)sizeof(want) - 1);
    ck_assert_mem_eq(out, want, sizeof(want) - 1);
    /* exactly enough room, and one byte short */
    ck_assert_int_eq(sc_http_response(404, "text/plain", "X-A: 1\r\n",
                                      "a\0b\r\n", 5, out, (size_t)n),
                     n);
    ck_assert_int_eq(sc_http_response(404, "text/plain", "X-A: 1\r\n",
                                      "a\0b\r\n", 5, out, (size_t)n - 1),
                     -1);
}
END_TEST

START_TEST(response_minimal)
{
    static const char want[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Length: 0\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    char out[128];

    ck_assert_int_eq(
        sc_http_response(503, NULL, NULL, NULL, 0, out, sizeof(out)),
        (long)sizeof(want) - 1);
    ck_assert_mem_eq(out, want, sizeof(want) - 1);
}
END_TEST

START_TEST(response_bad_status)
{
    char out[256];

    ck_assert_int_eq(sc_http_response(418, NULL, NULL, NULL, 0, out, 256), -1);
    ck_assert_int_eq(sc_http_response(101, NULL, NULL, NULL, 0, out, 256), -1);
    ck_assert_int_eq(sc_http_response(200, NULL, NULL, NULL, 0, NULL, 0), -1);
    ck_assert_str_eq(sc_http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(sc_http_reason(426), "Upgrade Required");
    ck_assert_ptr_null(sc_http_reason(0));
}
END_TEST

static Suite *
http_req_suite(void)
{
    Suite *s = suite_create("http_req");
    TCase *tc = tcase_create("parse");
    TCase *lim = tcase_create("limits");
    TCase *aux = tcase_create("helpers");

    tcase_add_loop_test(tc, valid_whole, 0, NVALID);
    tcase_add_loop_test(tc, valid_byte_by_byte, 0, NVALID);
    tcase_add_loop_test(tc, valid_random_splits, 0, NVALID);
    tcase_add_loop_test(tc, valid_guard_page, 0, NVALID);
    tcase_add_loop_test(tc, valid_pipelined, 0, NVALID);
    tcase_add_loop_test(tc, bad_whole, 0, NBAD);
    tcase_add_loop_test(tc, bad_prefixes_guard_page, 0, NBAD);
    tcase_add_test(tc, empty_input);
    tcase_add_test(tc, fields_trimmed);
    suite_add_tcase(s, tc);

    tcase_add_test(lim, limit_8192_ok);
    tcase_add_test(lim, limit_8193_too_big);
    tcase_add_test(lim, limit_no_blank_line);
    tcase_add_test(lim, limit_64_headers);
    tcase_add_test(lim, huge_header_count);
    suite_add_tcase(s, lim);

    tcase_add_loop_test(aux, list_tokens, 0,
                        (int)(sizeof(tokens) / sizeof(tokens[0])));
    tcase_add_test(aux, list_iteration);
    tcase_add_loop_test(aux, query_params, 0,
                        (int)(sizeof(params) / sizeof(params[0])));
    tcase_add_test(aux, query_param_nul);
    tcase_add_test(aux, response_exact);
    tcase_add_test(aux, response_minimal);
    tcase_add_test(aux, response_bad_status);
    suite_add_tcase(s, aux);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_req_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
