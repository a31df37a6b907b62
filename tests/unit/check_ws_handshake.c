/*
 * check_ws_handshake.c - routing, RFC 6455 4.2 validation and the order of
 * the checks, token sources and precedence, Origin allow-list, the accept
 * key (RFC 6455 1.3 example) and the responses written
 */
#include "ws_handshake.h"
#include "text.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H_HOST "Host: server.example.com\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define GOOD H_HOST H_UPG H_CONN H_KEY H_VER
#define NO_VER H_HOST H_UPG H_CONN H_KEY

/* The request stays here while the test looks at hs's pointers. */
static char reqbuf[16384];
static struct sc_http_req req;
static char token[SC_WS_TOKEN_MAX + 1];

static bool
field_eq(const char *p, size_t n, const char *want)
{
    return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* Builds and parses "METHOD TARGET HTTP/1.x" plus header lines. */
static void
parse_req(const char *method, const char *target, int minor,
          const char *headers)
{
    int n = snprintf(reqbuf, sizeof(reqbuf), "%s %s HTTP/1.%d\r\n%s\r\n",
                     method, target, minor, headers);

    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, (int)sizeof(reqbuf));
    ck_assert_int_eq(sc_http_parse(reqbuf, (size_t)n, &req), n);
}

static int
check_req(const char *method, const char *target, int minor,
          const char *headers, const struct sc_handshake_opts *opts,
          struct sc_handshake *hs)
{
    parse_req(method, target, minor, headers);
    memset(token, 'T', sizeof(token));
    return sc_ws_handshake_check(&req, opts, hs, token, sizeof(token));
}

/* ---- status of each request class ---- */

struct status_case {
    const char *method;
    const char *target;
    int minor;
    const char *headers;
    int status;
    enum sc_route route;
};

static const struct status_case statuses[] = {
    {"GET", "/ws", 1, GOOD, 101, SC_ROUTE_WS},
    {"GET", "/ws?token=abc", 1, GOOD, 101, SC_ROUTE_WS},
    {"GET", "/ws/events/1", 1, GOOD, 101, SC_ROUTE_WS_EVENT},
    {"GET", "/ws/events/42?token=x", 1, GOOD, 101, SC_ROUTE_WS_EVENT},
    {"GET", "/ws/events/9007199254740991", 1, GOOD, 101, SC_ROUTE_WS_EVENT},
    {"GET", "/healthz", 1, H_HOST, 200, SC_ROUTE_HEALTHZ},
    {"GET", "/healthz?verbose=1", 1, H_HOST, 200, SC_ROUTE_HEALTHZ},
    {"GET", "/healthz", 0, "", 200, SC_ROUTE_HEALTHZ},
    {"GET", "/metrics", 1, GOOD, 200, SC_ROUTE_METRICS},
    /* 1: method, on any path */
    {"POST", "/ws", 1, GOOD, 405, SC_ROUTE_NONE},
    {"POST", "/healthz", 1, H_HOST, 405, SC_ROUTE_NONE},
    {"HEAD", "/metrics", 1, H_HOST, 405, SC_ROUTE_NONE},
    {"get", "/ws", 1, GOOD, 405, SC_ROUTE_NONE},
    {"PUT", "/foo", 1, "", 405, SC_ROUTE_NONE},
    /* 2: route */
    {"GET", "/foo", 1, GOOD, 404, SC_ROUTE_NONE},
    {"GET", "/", 1, GOOD, 404, SC_ROUTE_NONE},
    {"GET", "/wsx", 1, GOOD, 404, SC_ROUTE_NONE},
    {"GET", "/WS", 1, GOOD, 404, SC_ROUTE_NONE},
    {"GET", "/ws.json", 1, GOOD, 404, SC_ROUTE_NONE},
    {"GET", "/healthz/", 1, H_HOST, 404, SC_ROUTE_NONE},
    {"GET", "/ws/", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/foo", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/0", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/00", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/0123", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/abc", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/12a", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/-1", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/+1", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/1.0", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/1%32", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/9007199254740992", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/18446744073709551617", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/1/x", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/ws/events/1/", 1, GOOD, 400, SC_ROUTE_NONE},
    {"GET", "/healthz", 1, "", 400, SC_ROUTE_HEALTHZ},
    {"GET", "/metrics", 1, H_HOST H_HOST, 400, SC_ROUTE_METRICS},
    /* 3: version, before anything else about the upgrade */
    {"GET", "/ws", 1, NO_VER "Sec-WebSocket-Version: 8\r\n", 426, SC_ROUTE_WS},
    {"GET", "/ws", 1, NO_VER "Sec-WebSocket-Version: 013\r\n", 426,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, NO_VER "Sec-WebSocket-Version: 13, 8\r\n", 426,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD H_VER, 426, SC_ROUTE_WS},
    {"GET", "/ws", 0, NO_VER "Sec-WebSocket-Version: 7\r\n", 426, SC_ROUTE_WS},
    {"GET", "/ws/events/5", 1, "Sec-WebSocket-Version: 8\r\n", 426,
     SC_ROUTE_WS_EVENT},
    /* 4: the rest of RFC 6455 4.2.1 */
    {"GET", "/ws", 1, NO_VER, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST, 400, SC_ROUTE_WS},
    {"GET", "/ws", 0, GOOD, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, H_UPG H_CONN H_KEY H_VER, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD H_HOST, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, "Host:\r\n" H_UPG H_CONN H_KEY H_VER, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST H_CONN H_KEY H_VER, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VER, 400,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST "Upgrade: websocket2\r\n" H_CONN H_KEY H_VER, 400,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST "Upgrade: WebSocket\r\n" H_CONN H_KEY H_VER, 101,
     SC_ROUTE_WS},
    {"GET", "/ws", 1,
     H_HOST "Upgrade: h2c\r\nUpgrade: websocket\r\n" H_CONN H_KEY H_VER, 101,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST H_UPG H_KEY H_VER, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST H_UPG "Connection: keep-alive\r\n" H_KEY H_VER,
     400, SC_ROUTE_WS},
    {"GET", "/ws", 1,
     H_HOST H_UPG "Connection: keep-alive, Upgrade\r\n" H_KEY H_VER, 101,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST H_UPG "connection: upgrade\r\n" H_KEY H_VER, 101,
     SC_ROUTE_WS},
    {"GET", "/ws", 1, H_HOST H_UPG H_CONN H_VER, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD H_KEY, 400, SC_ROUTE_WS},
    {"GET", "/ws", 1,
     H_HOST H_UPG H_CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" H_VER,
     400, SC_ROUTE_WS},
    {"GET", "/ws", 1,
     H_HOST H_UPG H_CONN
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" H_VER,
     400, SC_ROUTE_WS},
    {"GET", "/ws", 1,
     H_HOST H_UPG H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" H_VER,
     400, SC_ROUTE_WS},
    {"GET", "/ws", 1,
     H_HOST H_UPG H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ*=\r\n" H_VER,
     400, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD "Content-Length: 5\r\n", 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD "Content-Length: 0\r\n", 101, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD "Transfer-Encoding: chunked\r\n", 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD "Origin: a\r\nOrigin: b\r\n", 400, SC_ROUTE_WS},
    {"GET", "/ws", 1, GOOD "Authorization: a\r\nAuthorization: b\r\n", 400,
     SC_ROUTE_WS},
    {"GET", "/ws?token=%zz", 1, GOOD, 400, SC_ROUTE_WS},
    {"GET", "/ws?a=%zz", 1, GOOD, 101, SC_ROUTE_WS},
};

START_TEST(status_table)
{
    const struct status_case *sc = &statuses[_i];
    struct sc_handshake hs;

    ck_assert_int_eq(
        check_req(sc->method, sc->target, sc->minor, sc->headers, NULL, &hs),
        sc->status);
    ck_assert_int_eq(hs.status, sc->status);
    ck_assert_int_eq(hs.route, sc->route);
    ck_assert_ptr_nonnull(hs.reason);
    if (sc->status != 101) {
        ck_assert_int_eq(hs.token_source, SC_TOKEN_NONE);
        ck_assert_uint_eq(hs.token_len, 0);
        ck_assert_str_eq(hs.accept, "");
    }
}
END_TEST

START_TEST(event_ids)
{
    struct sc_handshake hs;

    check_req("GET", "/ws/events/123", 1, GOOD, NULL, &hs);
    ck_assert_int_eq(hs.status, 101);
    ck_assert_uint_eq(hs.event_id, 123);
    check_req("GET", "/ws/events/9007199254740991", 1, GOOD, NULL, &hs);
    ck_assert_uint_eq(hs.event_id, SC_EVENT_ID_MAX);
    check_req("GET", "/ws", 1, GOOD, NULL, &hs);
    ck_assert_uint_eq(hs.event_id, 0);
}
END_TEST

/* ---- accept key and 101 ---- */

START_TEST(accept_key_rfc_example)
{
    char out[SC_WS_ACCEPT_LEN + 1];

    /* RFC 6455 1.3 */
    ck_assert_int_eq(sc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(response_101_exact)
{
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: "
                               "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "\r\n";
    struct sc_handshake hs;
    char out[512];
    long n;

    ck_assert_int_eq(check_req("GET", "/ws", 1, GOOD, NULL, &hs), 101);
    ck_assert_str_eq(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert(!hs.subprotocol);
    n = sc_ws_handshake_response(&hs, out, sizeof(out));
    ck_assert_int_eq(n, (long)sizeof(want) - 1);
    ck_assert_mem_eq(out, want, sizeof(want) - 1);
    ck_assert_int_eq(sc_ws_handshake_response(&hs, out, (size_t)n), -1);
    ck_assert_int_eq(sc_ws_handshake_response(&hs, out, (size_t)n + 1), n);
    hs.status = 400;
    ck_assert_int_eq(sc_ws_handshake_response(&hs, out, sizeof(out)), -1);
}
END_TEST

/* ---- tokens ---- */

#define Q_TOK "/ws?token=from.query"
#define A_TOK "Authorization: Bearer from.header\r\n"
#define P_TOK "Sec-WebSocket-Protocol: seatcast.v1, bearer.from.proto\r\n"

struct token_case {
    const char *target;
    const char *headers;
    enum sc_token_source source;
    const char *token;
    bool subprotocol;
};

static const struct token_case tokens[] = {
    {Q_TOK, GOOD A_TOK P_TOK, SC_TOKEN_QUERY, "from.query", true},
    {"/ws", GOOD A_TOK P_TOK, SC_TOKEN_HEADER, "from.header", true},
    {"/ws", GOOD P_TOK, SC_TOKEN_SUBPROTOCOL, "from.proto", true},
    {Q_TOK, GOOD, SC_TOKEN_QUERY, "from.query", false},
    {"/ws?token=a%2Eb+c", GOOD, SC_TOKEN_QUERY, "a.b c", false},
    {"/ws?token=", GOOD A_TOK, SC_TOKEN_HEADER, "from.header", false},
    {"/ws", GOOD "Authorization: bEARER   t.k\r\n", SC_TOKEN_HEADER, "t.k",
     false},
    {"/ws", GOOD "Authorization: Basic dTpw\r\n", SC_TOKEN_NONE, NULL, false},
    {"/ws", GOOD "Authorization: Bearer\r\n", SC_TOKEN_NONE, NULL, false},
    {"/ws", GOOD "Authorization: Bearer \r\n", SC_TOKEN_NONE, NULL, false},
    {"/ws", GOOD "Authorization: Basic x\r\n" P_TOK, SC_TOKEN_SUBPROTOCOL,
     "from.proto", true},
    {"/ws", GOOD "Sec-WebSocket-Protocol: bearer.t\r\n", SC_TOKEN_NONE, NULL,
     false},
    {"/ws", GOOD "Sec-WebSocket-Protocol: seatcast.v1\r\n", SC_TOKEN_NONE, NULL,
     true},
    {"/ws", GOOD "Sec-WebSocket-Protocol: chat, superchat\r\n", SC_TOKEN_NONE,
     NULL, false},
    {"/ws", GOOD "Sec-WebSocket-Protocol: SEATCAST.V1, bearer.t\r\n",
     SC_TOKEN_NONE, NULL, false},
    {"/ws",
     GOOD "Sec-WebSocket-Protocol: bearer.one\r\n"
          "Sec-WebSocket-Protocol: chat,seatcast.v1 , bearer.two\r\n",
     SC_TOKEN_SUBPROTOCOL, "one", true},
    {"/ws", GOOD "Sec-WebSocket-Protocol: bearer., seatcast.v1\r\n",
     SC_TOKEN_NONE, NULL, true},
    {"/ws", GOOD, SC_TOKEN_NONE, NULL, false},
};

START_TEST(token_sources)
{
    const struct token_case *tc = &tokens[_i];
    struct sc_handshake hs;

    ck_assert_int_eq(check_req("GET", tc->target, 1, tc->headers, NULL, &hs),
                     101);
    ck_assert_int_eq(hs.token_source, tc->source);
    ck_assert(!hs.token_too_long);
    ck_assert_int_eq(hs.subprotocol, tc->subprotocol);
    if (tc->token != NULL) {
        ck_assert_uint_eq(hs.token_len, strlen(tc->token));
        ck_assert_str_eq(token, tc->token);
    } else {
        ck_assert_uint_eq(hs.token_len, 0);
    }
}
END_TEST

START_TEST(subprotocol_never_echoes_token)
{
    struct sc_handshake hs;
    char out[512];
    long n;

    check_req("GET", "/ws", 1, GOOD P_TOK, NULL, &hs);
    ck_assert_int_eq(hs.status, 101);
    n = sc_ws_handshake_response(&hs, out, sizeof(out) - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Protocol: "
                                      "seatcast.v1\r\n\r\n"));
    ck_assert_ptr_null(strstr(out, "bearer"));
    ck_assert_ptr_null(strstr(out, "from.proto"));
}
END_TEST

/* A request whose token, in `where`, has n bytes. */
static void
long_token_req(int where, size_t n, size_t tokencap, struct sc_handshake *hs)
{
    static char tok[SC_WS_TOKEN_MAX + 8];
    static char target[SC_WS_TOKEN_MAX + 32];
    static char headers[SC_WS_TOKEN_MAX + 512];

    memset(tok, 'a', n);
    tok[n] = '\0';
    snprintf(target, sizeof(target), "/ws?token=%s", where == 0 ? tok : "");
    if (where == 1) {
        snprintf(headers, sizeof(headers), GOOD "Authorization: Bearer %s\r\n",
                 tok);
    } else if (where == 2) {
        snprintf(headers, sizeof(headers),
                 GOOD "Sec-WebSocket-Protocol: seatcast.v1, bearer.%s\r\n",
                 tok);
    } else {
        snprintf(headers, sizeof(headers), GOOD);
    }
    parse_req("GET", target, 1, headers);
    memset(token, 'T', sizeof(token));
    ck_assert_int_eq(sc_ws_handshake_check(&req, NULL, hs, token, tokencap),
                     101);
}

START_TEST(token_length_limit)
{
    static const enum sc_token_source src[] = {SC_TOKEN_QUERY, SC_TOKEN_HEADER,
                                               SC_TOKEN_SUBPROTOCOL};
    struct sc_handshake hs;

    /* _i selects where the token is */
    long_token_req(_i, SC_WS_TOKEN_MAX, sizeof(token), &hs);
    ck_assert_int_eq(hs.token_source, src[_i]);
    ck_assert(!hs.token_too_long);
    ck_assert_uint_eq(hs.token_len, SC_WS_TOKEN_MAX);
    ck_assert_uint_eq(strlen(token), SC_WS_TOKEN_MAX);

    long_token_req(_i, SC_WS_TOKEN_MAX + 1, sizeof(token), &hs);
    ck_assert_int_eq(hs.token_source, src[_i]);
    ck_assert(hs.token_too_long);
    ck_assert_uint_eq(hs.token_len, 0);

    /* the caller's smaller buffer is the limit too, never overrun */
    long_token_req(_i, 100, 100, &hs);
    ck_assert(hs.token_too_long);
    ck_assert_int_eq(token[100], 'T');
    long_token_req(_i, 99, 100, &hs);
    ck_assert(!hs.token_too_long);
    ck_assert_uint_eq(hs.token_len, 99);
    ck_assert_int_eq(token[99], '\0');

    /* no buffer at all: any token is too long */
    long_token_req(_i, 5, 0, &hs);
    ck_assert(hs.token_too_long);
}
END_TEST

START_TEST(token_kept_out_of_errors)
{
    struct sc_handshake hs;
    char out[1024];
    long n;

    check_req("GET", "/ws?token=SECRET", 1, H_HOST H_UPG H_CONN H_VER, NULL,
              &hs);
    ck_assert_int_eq(hs.status, 400);
    ck_assert_int_eq(hs.token_source, SC_TOKEN_NONE);
    ck_assert_ptr_null(strstr(hs.reason, "SECRET"));
    n = sc_ws_handshake_error_response(&hs, out, sizeof(out) - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_null(strstr(out, "SECRET"));
}
END_TEST

/* ---- Origin allow-list ---- */

static const char origins[][256] = {"https://app.example.com",
                                    "http://localhost:3000"};

struct origin_case {
    const char *headers;
    size_t norigins;
    int status;
};

static const struct origin_case origin_cases[] = {
    {GOOD "Origin: https://app.example.com\r\n", 2, 101},
    {GOOD "Origin: http://localhost:3000\r\n", 2, 101},
    {GOOD "Origin: HTTPS://App.Example.COM\r\n", 2, 101},
    {GOOD, 2, 101},
    {GOOD "Origin: https://evil.example\r\n", 2, 403},
    {GOOD "Origin: https://app.example.com.evil.example\r\n", 2, 403},
    {GOOD "Origin: https://app.example.com/\r\n", 2, 403},
    {GOOD "Origin: https://app.example.co\r\n", 2, 403},
    {GOOD "Origin: http://localhost:3001\r\n", 2, 403},
    {GOOD "Origin: null\r\n", 2, 403},
    {GOOD "Origin: https://evil.example\r\n", 0, 101},
    /* 400 comes before 403 */
    {H_HOST H_UPG H_VER "Origin: https://evil.example\r\n", 2, 400},
    /* 426 too */
    {NO_VER "Sec-WebSocket-Version: 8\r\nOrigin: https://evil.example\r\n", 2,
     426},
};

START_TEST(origin_allow_list)
{
    const struct origin_case *oc = &origin_cases[_i];
    struct sc_handshake_opts opts = {origins, oc->norigins};
    struct sc_handshake hs;

    ck_assert_int_eq(check_req("GET", "/ws", 1, oc->headers, &opts, &hs),
                     oc->status);
}
END_TEST

START_TEST(origin_no_opts)
{
    struct sc_handshake hs;

    ck_assert_int_eq(check_req("GET", "/ws", 1,
                               GOOD "Origin: https://evil.example\r\n", NULL,
                               &hs),
                     101);
    ck_assert(field_eq(hs.origin, hs.origin_len, "https://evil.example"));
}
END_TEST

/* ---- error responses ---- */

START_TEST(error_426_has_version)
{
    struct sc_handshake hs;
    char out[1024];
    long n;

    check_req("GET", "/ws", 1, NO_VER "Sec-WebSocket-Version: 8\r\n", NULL,
              &hs);
    n = sc_ws_handshake_error_response(&hs, out, sizeof(out) - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_eq(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n"), out);
    ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nConnection: close\r\n"));
}
END_TEST

START_TEST(error_405_has_allow)
{
    struct sc_handshake hs;
    char out[1024];
    long n;

    check_req("POST", "/ws", 1, GOOD, NULL, &hs);
    n = sc_ws_handshake_error_response(&hs, out, sizeof(out) - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_eq(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"), out);
    ck_assert_ptr_nonnull(strstr(out, "\r\nAllow: GET\r\n"));
}
END_TEST

START_TEST(error_404_exact)
{
    static const char want[] = "HTTP/1.1 404 Not Found\r\n"
                               "Content-Length: 22\r\n"
                               "Connection: close\r\n"
                               "Content-Type: application/json\r\n"
                               "\r\n"
                               "{\"error\":\"not found\"}\n";
    struct sc_handshake hs;
    char out[1024];
    long n;

    check_req("GET", "/foo", 1, GOOD, NULL, &hs);
    n = sc_ws_handshake_error_response(&hs, out, sizeof(out));
    ck_assert_int_eq(n, (long)sizeof(want) - 1);
    ck_assert_mem_eq(out, want, sizeof(want) - 1);
    ck_assert_int_eq(sc_ws_handshake_error_response(&hs, out, (size_t)n - 1),
                     -1);
}
END_TEST

START_TEST(error_response_needs_error)
{
    struct sc_handshake hs;
    char out[1024];
    long n;

    check_req("GET", "/ws", 1, GOOD, NULL, &hs);
    ck_assert_int_eq(sc_ws_handshake_error_response(&hs, out, sizeof(out)), -1);
    check_req("GET", "/healthz", 1, GOOD, NULL, &hs);
    ck_assert_int_eq(sc_ws_handshake_error_response(&hs, out, sizeof(out)), -1);
    /* the glue's own 431 and 503 go through the same writer */
    memset(&hs, 0, sizeof(hs));
    hs.status = 431;
    n = sc_ws_handshake_error_response(&hs, out, sizeof(out) - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "Request Header Fields Too Large"));
}
END_TEST

/* ---- logged fields ---- */

START_TEST(logged_fields)
{
    struct sc_handshake hs;

    check_req("GET", "/ws", 1,
              GOOD "X-Forwarded-For:  203.0.113.7 , 10.0.0.1\r\n"
                   "X-Forwarded-For: 10.0.0.2\r\n"
                   "User-Agent: curl/8.0\r\n",
              NULL, &hs);
    /* the last field, whole: the nearest proxy appended to it */
    ck_assert(field_eq(hs.forwarded_for, hs.forwarded_for_len, "10.0.0.2"));
    ck_assert(field_eq(hs.user_agent, hs.user_agent_len, "curl/8.0"));
    ck_assert_ptr_null(hs.origin);
    check_req("GET", "/ws", 1,
              GOOD "X-Forwarded-For:  203.0.113.7 , 10.0.0.1\r\n", NULL, &hs);
    ck_assert(field_eq(hs.forwarded_for, hs.forwarded_for_len,
                       "203.0.113.7 , 10.0.0.1"));
    /* also on errors, for the log */
    check_req("POST", "/x", 1, "X-Forwarded-For: , ,\r\nOrigin: o\r\n", NULL,
              &hs);
    ck_assert_ptr_null(hs.forwarded_for);
    ck_assert(field_eq(hs.origin, hs.origin_len, "o"));
    ck_assert_ptr_null(hs.user_agent);
}
END_TEST

static Suite *
ws_handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *tc = tcase_create("check");
    TCase *tok = tcase_create("token");
    TCase *out = tcase_create("response");

    tcase_add_loop_test(tc, status_table, 0,
                        (int)(sizeof(statuses) / sizeof(statuses[0])));
    tcase_add_test(tc, event_ids);
    tcase_add_loop_test(tc, origin_allow_list, 0,
                        (int)(sizeof(origin_cases) / sizeof(origin_cases[0])));
    tcase_add_test(tc, origin_no_opts);
    tcase_add_test(tc, logged_fields);
    suite_add_tcase(s, tc);

    tcase_add_loop_test(tok, token_sources, 0,
                        (int)(sizeof(tokens) / sizeof(tokens[0])));
    tcase_add_test(tok, subprotocol_never_echoes_token);
    tcase_add_loop_test(tok, token_length_limit, 0, 3);
    tcase_add_test(tok, token_kept_out_of_errors);
    suite_add_tcase(s, tok);

    tcase_add_test(out, accept_key_rfc_example);
    tcase_add_test(out, response_101_exact);
    tcase_add_test(out, error_426_has_version);
    tcase_add_test(out, error_405_has_allow);
    tcase_add_test(out, error_404_exact);
    tcase_add_test(out, error_response_needs_error);
    suite_add_tcase(s, out);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ws_handshake_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
