/*
 * ws_handshake.h - request routing and the RFC 6455 opening handshake
 *
 * Pure: works on a request parsed by http_req, writes into caller buffers,
 * uses libcrypto for SHA-1 and nothing else outside this tree.  Called by
 * the worker's connection glue once sc_http_parse() has returned a head:
 * sc_ws_handshake_check() decides the answer (docs/PROTOCOL.md section 2),
 * then the glue writes sc_ws_handshake_response() for 101, or
 * sc_ws_handshake_error_response() for an error, or its own /healthz and
 * /metrics body with sc_http_response().
 *
 * Routes (the raw path, not percent-decoded or normalised):
 *   /ws                   SC_ROUTE_WS
 *   /ws/events/{eventId}  SC_ROUTE_WS_EVENT; eventId is 1 .. 2^53-1 in
 *                         decimal, no sign, no leading zero (one spelling
 *                         per id), nothing after it; anything else under
 *                         /ws/ (including /ws/ itself) is 400
 *   /healthz, /metrics    SC_ROUTE_HEALTHZ, SC_ROUTE_METRICS (status 200:
 *                         the glue decides between 200 and 503)
 *   anything else         404
 *
 * Checks, in this order; the first failure decides the status:
 *   1. method is not "GET" (case-sensitive), on any path    405
 *   2. path: unknown 404; bad eventId or other /ws/... path  400
 *      /healthz, /metrics: HTTP/1.1 without exactly one Host 400, else 200
 *   3. Sec-WebSocket-Version present but not exactly one "13" 426
 *   4. HTTP/1.0; Sec-WebSocket-Version missing; Host missing, empty or
 *      repeated; no "websocket" in Upgrade; no "upgrade" in Connection;
 *      Sec-WebSocket-Key missing, repeated or not 16 bytes of base64;
 *      Transfer-Encoding or a Content-Length other than 0 (bytes after the
 *      head must be WebSocket frames); Origin or Authorization repeated;
 *      a bad %XX escape in the token parameter                  400
 *   5. an allow-list is set and Origin is present but not in it 403
 *      (compared ASCII case-insensitively and otherwise exactly; a request
 *      without Origin passes: non-browser clients send none)
 * (libcrypto failing to compute the accept key gives 500.)
 *
 * Token (only on 101; docs/PROTOCOL.md section 2): the query parameter
 * "token" (an empty value counts as absent), else "Authorization: Bearer
 * <jwt>" (scheme case-insensitive; another scheme counts as absent), else the
 * subprotocol "bearer.<jwt>" offered in Sec-WebSocket-Protocol together
 * with "seatcast.v1" (several header lines and lists are merged; the first
 * bearer entry wins).  The bytes are copied, not checked: that is jwt's
 * job.  A token over SC_WS_TOKEN_MAX bytes (or over tokencap - 1) sets
 * token_too_long with its source and copies nothing: treat it as an
 * invalid token, not as a 400.
 *
 * Subprotocol: when "seatcast.v1" is offered the 101 carries
 * "Sec-WebSocket-Protocol: seatcast.v1"; the bearer entry is never echoed.
 * A client offering other subprotocols only gets no Sec-WebSocket-Protocol
 * (RFC 6455 4.2.2), and its browser fails the connection: its own doing.
 * No extension is negotiated.
 */
#ifndef SC_WS_HANDSHAKE_H
#define SC_WS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "http_req.h"

/* Longest token accepted; the token buffer needs one byte more. */
#define SC_WS_TOKEN_MAX 4096
/* Length of a Sec-WebSocket-Accept value (base64 of 20 bytes). */
#define SC_WS_ACCEPT_LEN 28

enum sc_route {
    SC_ROUTE_NONE,     /* 404, 405, or 400 for a bad /ws/ path */
    SC_ROUTE_WS,       /* /ws */
    SC_ROUTE_WS_EVENT, /* /ws/events/{eventId} */
    SC_ROUTE_HEALTHZ,  /* /healthz */
    SC_ROUTE_METRICS   /* /metrics */
};

enum sc_token_source {
    SC_TOKEN_NONE,
    SC_TOKEN_QUERY,      /* ?token= */
    SC_TOKEN_HEADER,     /* Authorization: Bearer */
    SC_TOKEN_SUBPROTOCOL /* Sec-WebSocket-Protocol: seatcast.v1, bearer.X */
};

/*
 * What the handshake may accept.  allowed_origins points at
 * nallowed_origins NUL-terminated strings (e.g. sc_config's
 * allowed_origin); owned by the caller.  NULL opts or 0 entries: any
 * Origin is allowed.
 */
struct sc_handshake_opts {
    const char (*allowed_origins)[256];
    size_t nallowed_origins;
};

/*
 * The decision.  Pointers point into the request's buffer (valid while
 * it is unchanged); they are set whatever the status, for the log.
 */
struct sc_handshake {
    /* 101 upgrade, 200 healthz/metrics (glue picks 200/503), else error */
    int status;
    enum sc_route route;
    /* SC_ROUTE_WS_EVENT only, else 0 */
    uint64_t event_id;
    /* Sec-WebSocket-Accept, NUL-terminated, on 101 */
    char accept[SC_WS_ACCEPT_LEN + 1];
    /* on 101: answer "Sec-WebSocket-Protocol: seatcast.v1" */
    bool subprotocol;
    /* on 101: where the token came from, its length in the caller's
     * buffer, and whether it was too long (then token_len is 0) */
    enum sc_token_source token_source;
    size_t token_len;
    bool token_too_long;
    /* the last X-Forwarded-For field's whole value (a list), Origin,
     * User-Agent, or NULL */
    const char *forwarded_for;
    size_t forwarded_for_len;
    const char *origin;
    size_t origin_len;
    const char *user_agent;
    size_t user_agent_len;
    /* static, for the log: "ok" or why not; never holds the token */
    const char *reason;
};

/*
 * Routes and validates a parsed request (see the top of this file) and
 * fills hs.  On 101 the token, if any, is copied NUL-terminated into
 * token[0..tokencap) (SC_WS_TOKEN_MAX + 1 bytes is enough); token may be
 * NULL when tokencap is 0.  Returns hs->status.  Any process may call it;
 * in practice a worker.
 */
int sc_ws_handshake_check(const struct sc_http_req *req,
                          const struct sc_handshake_opts *opts,
                          struct sc_handshake *hs, char *token,
                          size_t tokencap);

/*
 * Sec-WebSocket-Accept for a key (RFC 6455 4.2.2: base64 of the SHA-1 of
 * the key followed by the GUID), NUL-terminated in out.  Returns 0, or -1
 * if libcrypto fails.
 */
int sc_ws_accept_key(const char *key, size_t len,
                     char out[SC_WS_ACCEPT_LEN + 1]);

/*
 * Writes the 101 response for hs (status 101) into out.  Returns its
 * length (no NUL added) or -1 if out is too small or hs is not a 101.
 */
long sc_ws_handshake_response(const struct sc_handshake *hs, char *out,
                              size_t outlen);

/*
 * Writes the error response for hs (status 400, 403, 404, 405, 426, 431
 * or 503) with a JSON body {"error":"<hs->reason>"}, "Allow: GET" on 405
 * and "Sec-WebSocket-Version: 13" on 426.  Returns its length or -1.
 */
long sc_ws_handshake_error_response(const struct sc_handshake *hs, char *out,
                                    size_t outlen);

#endif /* SC_WS_HANDSHAKE_H */
