/*
 * http_req.h - HTTP/1.1 request-head parser and plain response writer
 *
 * Pure: caller buffers only, no allocation, no I/O, no state kept between
 * calls.  sc_http_parse() re-parses the whole buffer each time it is called
 * (the head is at most SC_HTTP_MAX_HEAD bytes, so this costs little) and
 * fills pointer + length pairs that point into the caller's buffer.
 *
 * Called by the worker's connection glue after every read until the head is
 * complete, then by ws_handshake; sc_http_response() by the glue for every
 * non-101 answer (errors, /healthz, /metrics).
 *
 * Grammar accepted (RFC 9112, strict; anything else is SC_HTTP_EBAD):
 *   request-line = method SP origin-form SP "HTTP/1." ("0" / "1") CRLF
 *   method       = 1*tchar (case-sensitive; the caller decides 405)
 *   origin-form  = "/" *( VCHAR except "#" ); absolute-form and "*" are 400
 *   field-line   = field-name ":" OWS field-value OWS CRLF
 *   field-name   = 1*tchar, no whitespace before ":"
 *   field-value  = *( HTAB / SP / VCHAR / obs-text ), no other control
 * Lines end with CRLF only: a bare LF or a CR not followed by LF is
 * malformed (one spelling, nothing for a proxy in front to read otherwise).
 * No empty line may precede the request line, and obs-fold (a field line
 * starting with SP or HTAB) is rejected.  The target is not percent-decoded
 * or normalised here; bytes other than VCHAR are refused, but the printable
 * characters that RFC 3986 forbids and browsers send raw ("|", "{", ...)
 * are let through.
 */
#ifndef SC_HTTP_REQ_H
#define SC_HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Longest request head, request line through the blank line (431 above). */
#define SC_HTTP_MAX_HEAD 8192
/* Most header fields in one request (431 above). */
#define SC_HTTP_MAX_HEADERS 64

/* sc_http_parse() results other than a head length. */
#define SC_HTTP_MORE (-1)    /* incomplete: call again with more bytes */
#define SC_HTTP_EBAD (-2)    /* malformed: answer 400 and close */
#define SC_HTTP_ETOOBIG (-3) /* head or header count too large: 431 */

/* sc_http_query_param() results other than a decoded length. */
#define SC_HTTP_PARAM_ABSENT (-1)   /* no such parameter */
#define SC_HTTP_PARAM_EBAD (-2)     /* bad %XX escape */
#define SC_HTTP_PARAM_ETOOLONG (-3) /* decoded value does not fit outcap */

/* One header field; both pointers point into the parsed buffer. */
struct sc_http_header {
    const char *name; /* as received, not NUL-terminated */
    size_t name_len;
    const char *value; /* leading and trailing SP/HTAB removed */
    size_t value_len;
};

/*
 * A parsed request head.  Every pointer points into the buffer given to
 * sc_http_parse() and is valid only while that buffer is unchanged (in the
 * glue: until the next read into it).  Nothing is NUL-terminated.  Filled
 * completely only when sc_http_parse() returned a length.
 */
struct sc_http_req {
    const char *method;
    size_t method_len;
    const char *target; /* whole request-target */
    size_t target_len;
    const char *path; /* target before the first '?' */
    size_t path_len;
    const char *query; /* target after the first '?', may be empty */
    size_t query_len;
    int minor_version; /* 0 or 1 */
    struct sc_http_header headers[SC_HTTP_MAX_HEADERS];
    size_t nheaders;
};

/*
 * Parses the request head at the start of buf[0..len).  Returns the length
 * of the complete head (request line through the blank line; bytes after it
 * are the caller's, e.g. pipelined data), or SC_HTTP_MORE, SC_HTTP_EBAD or
 * SC_HTTP_ETOOBIG.  Errors are reported as soon as the bytes seen prove
 * them, even before the head is complete: an invalid byte at once, 431 as
 * soon as a 65th field line starts or len exceeds SC_HTTP_MAX_HEAD without
 * a complete head.  A prefix of an input never gives a different answer
 * than SC_HTTP_MORE or the input's own answer.  Never reads buf[len] or
 * beyond.  buf may be NULL when len is 0.
 */
int sc_http_parse(const char *buf, size_t len, struct sc_http_req *req);

/*
 * First header whose name equals `name` (NUL-terminated), ASCII
 * case-insensitively, or NULL.
 */
const struct sc_http_header *sc_http_header_find(const struct sc_http_req *req,
                                                 const char *name);

/* Number of header fields named `name` (case-insensitive). */
size_t sc_http_header_count(const struct sc_http_req *req, const char *name);

/*
 * Iterates a comma-separated list (RFC 9110 section 5.6.1): sets *elem and
 * *elem_len to the next non-empty element with OWS trimmed, advances *pos
 * (start with 0), and returns true; false when the list is exhausted.
 */
bool sc_http_list_next(const char *value, size_t len, size_t *pos,
                       const char **elem, size_t *elem_len);

/*
 * True if the list `value` holds the element `token` (NUL-terminated),
 * ASCII case-insensitively: "keep-alive, Upgrade" holds "upgrade".
 */
bool sc_http_has_token(const char *value, size_t len, const char *token);

/*
 * Finds parameter `name` in a query string ("a=1&token=x%2By") and
 * percent-decodes its value into out ('+' is a space), NUL-terminated.
 * Names are compared byte for byte, undecoded; the first occurrence wins;
 * "name" without "=" has an empty value.  Returns the decoded length (out
 * needs one more byte for the NUL), SC_HTTP_PARAM_ABSENT,
 * SC_HTTP_PARAM_EBAD for a bad %XX escape, or SC_HTTP_PARAM_ETOOLONG when
 * the value does not fit (a bad escape wins over the length); after an
 * error out holds unspecified bytes.  out may be NULL when outcap is 0.
 */
long sc_http_query_param(const char *query, size_t qlen, const char *name,
                         char *out, size_t outcap);

/* Reason phrase for 101, 200, 400, 403, 404, 405, 426, 431, 500, 503. */
const char *sc_http_reason(int status);

/*
 * Writes a complete response into out: "HTTP/1.1 <status> <reason>",
 * Content-Length, "Connection: close", Content-Type when content_type is
 * not NULL, then extra_headers as given (NULL or complete lines, each
 * ending in CRLF), the blank line and bodylen bytes of body.  Returns the
 * length written (no NUL is added after the body) or -1 when out is too
 * small or status is not one of sc_http_reason()'s (101 excluded).
 */
long sc_http_response(int status, const char *content_type,
                      const char *extra_headers, const char *body,
                      size_t bodylen, char *out, size_t outlen);

#endif /* SC_HTTP_REQ_H */
