/*
 * ws_handshake.c - routing and RFC 6455 section 4.2 opening handshake
 *
 * Turns a parsed request head into a decision (struct sc_handshake) by a
 * chain of small checks, each either passing or setting the status and a
 * static reason for the log; then writes the 101 or the error response.
 * The order of the checks is part of the contract (see ws_handshake.h).
 *
 * Never: log (a token must never reach a log, and pure code does not log
 * at all), allocate beyond what libcrypto does for one digest, read the
 * clock.  Called by the worker's connection glue.
 */
#include "ws_handshake.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "base64.h"
#include "text.h"

/* RFC 6455 1.3 */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static const char subproto_name[] = "seatcast.v1";
static const char bearer_prefix[] = "bearer.";

/* Sets the failure status and reason; returns the status. */
static int
fail(struct sc_handshake *hs, int status, const char *reason)
{
    hs->status = status;
    hs->reason = reason;
    return status;
}

static bool
bytes_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);

    return alen == blen && memcmp(a, b, blen) == 0;
}

static bool
has_prefix(const char *a, size_t alen, const char *prefix)
{
    size_t plen = strlen(prefix);

    return alen >= plen && memcmp(a, prefix, plen) == 0;
}

/* True if any header line `name` holds the list element `token`. */
static bool
header_has_token(const struct sc_http_req *req, const char *name,
                 const char *token)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sc_http_header *h = &req->headers[i];

        if (sc_ascii_ieq(h->name, h->name_len, name, strlen(name)) &&
            sc_http_has_token(h->value, h->value_len, token)) {
            return true;
        }
    }
    return false;
}

/* Sets hs->route from the path; returns 0 or the failure status. */
static int
route_path(const char *path, size_t len, struct sc_handshake *hs)
{
    static const char events[] = "/ws/events/";

    if (bytes_eq(path, len, "/ws")) {
        hs->route = SC_ROUTE_WS;
    } else if (bytes_eq(path, len, "/healthz")) {
        hs->route = SC_ROUTE_HEALTHZ;
    } else if (bytes_eq(path, len, "/metrics")) {
        hs->route = SC_ROUTE_METRICS;
    } else if (has_prefix(path, len, events)) {
        size_t off = sizeof(events) - 1;

        if (sc_event_id_digits(path + off, len - off, false, &hs->event_id) != 0) {
            return fail(hs, 400, "invalid event id");
        }
        hs->route = SC_ROUTE_WS_EVENT;
    } else if (has_prefix(path, len, "/ws/")) {
        return fail(hs, 400, "unknown websocket path");
    } else {
        return fail(hs, 404, "not found");
    }
    return 0;
}

/* RFC 9112 3.2: an HTTP/1.1 request carries exactly one Host. */
static bool
host_ok(const struct sc_http_req *req)
{
    const struct sc_http_header *h = sc_http_header_find(req, "Host");

    return sc_http_header_count(req, "Host") == 1 && h->value_len > 0;
}

/* Step 3: Sec-WebSocket-Version; 426 names the one we speak. */
static int
check_version(const struct sc_http_req *req, struct sc_handshake *hs)
{
    const struct sc_http_header *h;
    size_t n = sc_http_header_count(req, "Sec-WebSocket-Version");

    if (n == 0) {
        return fail(hs, 400, "missing Sec-WebSocket-Version");
    }
    h = sc_http_header_find(req, "Sec-WebSocket-Version");
    if (n > 1 || !bytes_eq(h->value, h->value_len, "13")) {
        return fail(hs, 426, "unsupported Sec-WebSocket-Version");
    }
    return 0;
}

/* Step 4: the key must decode to exactly 16 bytes (RFC 6455 4.1). */
static int
check_key(const struct sc_http_req *req, struct sc_handshake *hs)
{
    const struct sc_http_header *h;
    uint8_t raw[SC_BASE64_DECODED_MAX(24)];

    if (sc_http_header_count(req, "Sec-WebSocket-Key") != 1) {
        return fail(hs, 400, "missing or repeated Sec-WebSocket-Key");
    }
    h = sc_http_header_find(req, "Sec-WebSocket-Key");
    if (h->value_len != 24 || sc_base64_decode(h->value, h->value_len, raw,
                                               sizeof(raw), false) != 16) {
        return fail(hs, 400, "invalid Sec-WebSocket-Key");
    }
    if (sc_ws_accept_key(h->value, h->value_len, hs->accept) != 0) {
        return fail(hs, 500, "could not compute Sec-WebSocket-Accept");
    }
    return 0;
}

/*
 * Step 4: a GET upgrade has no body; bytes after the head are frames, so
 * a body announced by the client would be read as frames.
 */
static int
check_no_body(const struct sc_http_req *req, struct sc_handshake *hs)
{
    const struct sc_http_header *h;
    size_t n = sc_http_header_count(req, "Content-Length");

    if (sc_http_header_count(req, "Transfer-Encoding") > 0) {
        return fail(hs, 400, "request body on upgrade");
    }
    h = sc_http_header_find(req, "Content-Length");
    if (n > 1 || (n == 1 && !bytes_eq(h->value, h->value_len, "0"))) {
        return fail(hs, 400, "request body on upgrade");
    }
    return 0;
}

/* Step 4: everything RFC 6455 4.2.1 asks of the request. */
static int
check_upgrade(const struct sc_http_req *req, struct sc_handshake *hs)
{
    if (req->minor_version != 1) {
        return fail(hs, 400, "websocket upgrade needs HTTP/1.1");
    }
    if (!host_ok(req)) {
        return fail(hs, 400, "missing, empty or repeated Host");
    }
    if (!header_has_token(req, "Upgrade", "websocket")) {
        return fail(hs, 400, "not a websocket upgrade");
    }
    if (!header_has_token(req, "Connection", "upgrade")) {
        return fail(hs, 400, "Connection lacks upgrade");
    }
    if (check_key(req, hs) != 0) {
        return hs->status;
    }
    if (check_no_body(req, hs) != 0) {
        return hs->status;
    }
    if (sc_http_header_count(req, "Origin") > 1) {
        return fail(hs, 400, "repeated Origin");
    }
    if (sc_http_header_count(req, "Authorization") > 1) {
        return fail(hs, 400, "repeated Authorization");
    }
    return 0;
}

/* Step 5: the Origin allow-list. */
static int
check_origin(const struct sc_handshake_opts *opts, struct sc_handshake *hs)
{
    if (opts == NULL || opts->nallowed_origins == 0 || hs->origin == NULL) {
        return 0;
    }
    for (size_t i = 0; i < opts->nallowed_origins; i++) {
        const char *o = opts->allowed_origins[i];

        if (sc_ascii_ieq(hs->origin, hs->origin_len, o, strnlen(o, 256))) {
            return 0;
        }
    }
    return fail(hs, 403, "origin not allowed");
}

/*
 * Copies a token into the caller's buffer, or flags it too long.
 */
static void
take_token(struct sc_handshake *hs, enum sc_token_source src, const char *s,
           size_t n, char *token, size_t tokencap)
{
    hs->token_source = src;
    if (n > SC_WS_TOKEN_MAX || n >= tokencap) {
        hs->token_too_long = true;
        return;
    }
    memcpy(token, s, n);
    token[n] = '\0';
    hs->token_len = n;
}

/*
 * The credentials of "Authorization: Bearer <token>", or NULL when the
 * header is absent, uses another scheme or has no credentials.
 */
static const char *
bearer_credentials(const struct sc_http_req *req, size_t *len)
{
    const struct sc_http_header *h = sc_http_header_find(req, "Authorization");
    const char *sp;
    size_t off;

    if (h == NULL) {
        return NULL;
    }
    sp = memchr(h->value, ' ', h->value_len);
    if (sp == NULL ||
        !sc_ascii_ieq(h->value, (size_t)(sp - h->value), "Bearer", 6)) {
        return NULL;
    }
    off = (size_t)(sp - h->value);
    /* RFC 9110 11.4: 1*SP between scheme and credentials */
    while (off < h->value_len && h->value[off] == ' ') {
        off++;
    }
    *len = h->value_len - off;
    return *len > 0 ? h->value + off : NULL;
}

/*
 * Scans every Sec-WebSocket-Protocol line: sets hs->subprotocol when
 * seatcast.v1 is offered, and returns the first bearer.X entry's X (or
 * NULL), usable only together with seatcast.v1.
 */
static const char *
scan_subprotocols(const struct sc_http_req *req, struct sc_handshake *hs,
                  size_t *len)
{
    const char *bearer = NULL;
    size_t plen = sizeof(bearer_prefix) - 1;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sc_http_header *h = &req->headers[i];
        size_t pos = 0, elen;
        const char *elem;

        if (!sc_ascii_ieq(h->name, h->name_len, "Sec-WebSocket-Protocol", 22)) {
            continue;
        }
        while (sc_http_list_next(h->value, h->value_len, &pos, &elem, &elen)) {
            if (bytes_eq(elem, elen, subproto_name)) {
                hs->subprotocol = true;
            } else if (bearer == NULL && elen > plen &&
                       has_prefix(elem, elen, bearer_prefix)) {
                bearer = elem + plen;
                *len = elen - plen;
            }
        }
    }
    return hs->subprotocol ? bearer : NULL;
}

/* Step 4 (bad escape) and the token: query, then header, then protocol. */
static int
extract_token(const struct sc_http_req *req, struct sc_handshake *hs,
              char *token, size_t tokencap)
{
    size_t cap = tokencap > SC_WS_TOKEN_MAX ? SC_WS_TOKEN_MAX + 1 : tokencap;
    size_t blen = 0, slen = 0;
    const char *bearer, *sub;
    long n;

    sub = scan_subprotocols(req, hs, &slen);
    n = sc_http_query_param(req->query, req->query_len, "token", token, cap);
    if (n == SC_HTTP_PARAM_EBAD) {
        return fail(hs, 400, "bad escape in token parameter");
    }
    if (n == SC_HTTP_PARAM_ETOOLONG) {
        hs->token_source = SC_TOKEN_QUERY;
        hs->token_too_long = true;
        return 0;
    }
    if (n > 0) {
        hs->token_source = SC_TOKEN_QUERY;
        hs->token_len = (size_t)n;
        return 0;
    }
    bearer = bearer_credentials(req, &blen);
    if (bearer != NULL) {
        take_token(hs, SC_TOKEN_HEADER, bearer, blen, token, tokencap);
    } else if (sub != NULL) {
        take_token(hs, SC_TOKEN_SUBPROTOCOL, sub, slen, token, tokencap);
    }
    return 0;
}

/* The headers the glue logs, whatever the outcome. */
static void
collect_info(const struct sc_http_req *req, struct sc_handshake *hs)
{
    const struct sc_http_header *h;
    size_t pos = 0;

    /* the last X-Forwarded-For field, whole: the nearest proxy appends
     * to it, and the glue walks it from the right past trusted proxies */
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sc_http_header *f = &req->headers[i];
        const char *e;
        size_t el;
        if (f->name_len == 15 &&
            strncasecmp(f->name, "X-Forwarded-For", 15) == 0) {
            pos = 0;
            if (sc_http_list_next(f->value, f->value_len, &pos, &e, &el)) {
                hs->forwarded_for = f->value;
                hs->forwarded_for_len = f->value_len;
            }
        }
    }
    h = sc_http_header_find(req, "Origin");
    if (h != NULL) {
        hs->origin = h->value;
        hs->origin_len = h->value_len;
    }
    h = sc_http_header_find(req, "User-Agent");
    if (h != NULL) {
        hs->user_agent = h->value;
        hs->user_agent_len = h->value_len;
    }
}

/* Steps 3 to 5, for /ws and /ws/events/{id}. */
static int
check_websocket(const struct sc_http_req *req,
                const struct sc_handshake_opts *opts, struct sc_handshake *hs,
                char *token, size_t tokencap)
{
    if (check_version(req, hs) != 0 || check_upgrade(req, hs) != 0 ||
        extract_token(req, hs, token, tokencap) != 0 ||
        check_origin(opts, hs) != 0) {
        /* nothing about the token is reported unless the answer is 101 */
        hs->token_source = SC_TOKEN_NONE;
        hs->token_len = 0;
        hs->token_too_long = false;
        hs->subprotocol = false;
        hs->accept[0] = '\0';
        return hs->status;
    }
    hs->status = 101;
    return 101;
}

int
sc_ws_handshake_check(const struct sc_http_req *req,
                      const struct sc_handshake_opts *opts,
                      struct sc_handshake *hs, char *token, size_t tokencap)
{
    memset(hs, 0, sizeof(*hs));
    hs->route = SC_ROUTE_NONE;
    hs->token_source = SC_TOKEN_NONE;
    hs->reason = "ok";
    collect_info(req, hs);
    if (!bytes_eq(req->method, req->method_len, "GET")) {
        return fail(hs, 405, "method not allowed");
    }
    if (route_path(req->path, req->path_len, hs) != 0) {
        return hs->status;
    }
    if (hs->route == SC_ROUTE_HEALTHZ || hs->route == SC_ROUTE_METRICS) {
        if (req->minor_version == 1 && !host_ok(req)) {
            return fail(hs, 400, "missing, empty or repeated Host");
        }
        hs->status = 200;
        return 200;
    }
    return check_websocket(req, opts, hs, token, tokencap);
}

int
sc_ws_accept_key(const char *key, size_t len, char out[SC_WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok;

    if (ctx == NULL) {
        return -1;
    }
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, key, len) == 1 &&
         EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen != 20) {
        return -1;
    }
    if (sc_base64_encode(md, mdlen, out, SC_WS_ACCEPT_LEN + 1, false) !=
        SC_WS_ACCEPT_LEN) {
        return -1;
    }
    return 0;
}

long
sc_ws_handshake_response(const struct sc_handshake *hs, char *out,
                         size_t outlen)
{
    int n;

    if (hs->status != 101 || strlen(hs->accept) != SC_WS_ACCEPT_LEN) {
        return -1;
    }
    n = snprintf(out, outlen,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "%s%s%s\r\n",
                 hs->accept, hs->subprotocol ? "Sec-WebSocket-Protocol: " : "",
                 hs->subprotocol ? subproto_name : "",
                 hs->subprotocol ? "\r\n" : "");
    if (n < 0 || (size_t)n >= outlen) {
        return -1;
    }
    return n;
}

long
sc_ws_handshake_error_response(const struct sc_handshake *hs, char *out,
                               size_t outlen)
{
    const char *extra = NULL;
    const char *reason = hs->reason;
    char body[192];
    int n;

    if (hs->status < 400 || sc_http_reason(hs->status) == NULL) {
        return -1;
    }
    if (reason == NULL) {
        reason = sc_http_reason(hs->status);
    }
    if (hs->status == 405) {
        extra = "Allow: GET\r\n";
    } else if (hs->status == 426) {
        /* RFC 6455 4.4: name the version we speak */
        extra = "Sec-WebSocket-Version: 13\r\n";
    }
    /* reasons are static texts without '"' or '\\': no JSON escaping */
    n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", reason);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        return -1;
    }
    return sc_http_response(hs->status, "application/json", extra, body,
                            (size_t)n, out, outlen);
}
