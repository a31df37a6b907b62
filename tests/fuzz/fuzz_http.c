/*
 * fuzz_http.c - libFuzzer target for http_req and ws_handshake
 *
 * Feeds any bytes to sc_http_parse() and checks its promises: a prefix
 * answers SC_HTTP_MORE or the input's own answer, a head length never
 * exceeds the input or SC_HTTP_MAX_HEAD, every field points inside the
 * head.  On whatever parses it runs the lookups, sc_ws_handshake_check()
 * (with and without an Origin allow-list, with a small and a full token
 * buffer) and the response writers.  ASan sees any read past the input.
 */
#include "http_req.h"
#include "ws_handshake.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char origins[][256] = {"https://app.example.com",
                                    "http://localhost:3000"};

static void
require(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* The prefix promise of sc_http_parse(). */
static void
check_prefix(const char *buf, size_t k, int full)
{
    struct sc_http_req req;
    int rc = sc_http_parse(buf, k, &req);

    if (full > 0 && k >= (size_t)full) {
        require(rc == full);
    } else {
        require(rc == SC_HTTP_MORE || rc == full);
    }
}

static bool
inside(const char *p, size_t n, const char *buf, size_t head)
{
    return p >= buf && n <= head && (size_t)(p - buf) <= head - n;
}

static void
check_fields(const struct sc_http_req *req, const char *buf, size_t head)
{
    char out[64];

    require(inside(req->method, req->method_len, buf, head));
    require(inside(req->target, req->target_len, buf, head));
    require(inside(req->query, req->query_len, buf, head));
    require(req->path == req->target && req->path_len <= req->target_len);
    require(req->nheaders <= SC_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sc_http_header *h = &req->headers[i];

        require(inside(h->name, h->name_len, buf, head));
        require(inside(h->value, h->value_len, buf, head));
        (void)sc_http_has_token(h->value, h->value_len, "upgrade");
    }
    (void)sc_http_query_param(req->query, req->query_len, "token", out,
                              sizeof(out));
    (void)sc_http_query_param(req->query, req->query_len, "a", NULL, 0);
}

static void
check_handshake(const struct sc_http_req *req, bool allow_list, size_t tokencap)
{
    static char token[SC_WS_TOKEN_MAX + 1];
    static char out[16384];
    struct sc_handshake_opts opts = {origins, allow_list ? 2 : 0};
    struct sc_handshake hs;
    long n;
    int st = sc_ws_handshake_check(req, &opts, &hs, token, tokencap);

    require(st == hs.status && hs.reason != NULL);
    require(hs.token_len == 0 || hs.token_len < tokencap);
    if (st == 101) {
        n = sc_ws_handshake_response(&hs, out, sizeof(out));
        require(n > 0);
        /* the bearer entry is never echoed */
        require(memmem(out, (size_t)n, "bearer", 6) == NULL);
    } else if (st == 200) {
        require(hs.route == SC_ROUTE_HEALTHZ || hs.route == SC_ROUTE_METRICS);
    } else {
        require(st == 400 || st == 403 || st == 404 || st == 405 || st == 426 ||
                st == 500);
        require(hs.token_source == SC_TOKEN_NONE && hs.token_len == 0);
        n = sc_ws_handshake_error_response(&hs, out, sizeof(out));
        require(n > 0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct sc_http_req req;
    int full = sc_http_parse(buf, size, &req);

    require(full == SC_HTTP_MORE || full == SC_HTTP_EBAD ||
            full == SC_HTTP_ETOOBIG ||
            (full > 0 && (size_t)full <= size && full <= SC_HTTP_MAX_HEAD));
    if (size > 0) {
        check_prefix(buf, size - 1, full);
        check_prefix(buf, size / 2, full);
    }
    if (full <= 0) {
        return 0;
    }
    check_fields(&req, buf, (size_t)full);
    check_handshake(&req, size % 2 == 0, SC_WS_TOKEN_MAX + 1);
    check_handshake(&req, size % 2 == 1, 8);
    return 0;
}
