/*
 * http_req.c - HTTP/1.1 request-head parser and response writer
 *
 * A stateless, zero-copy parser in the manner of picohttpparser: one short
 * function per grammar element, each advancing a cursor over the caller's
 * buffer and answering 0 (element done), SC_HTTP_MORE (the buffer ends
 * inside it) or SC_HTTP_EBAD / SC_HTTP_ETOOBIG.  The cursor never passes
 * its end, so no byte beyond the caller's length is ever read.
 *
 * Never: allocate, log, keep state between calls, or decode the target.
 * Called by the worker's connection glue and by ws_handshake.
 */
#include "http_req.h"

#include <stdio.h>
#include <string.h>

#include "text.h"

/* The bytes of the buffer still to parse. */
struct cursor {
    const char *buf;
    size_t len;
    size_t pos;
};

/* RFC 9110 section 5.6.2: tchar */
static bool
is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool
is_target_char(unsigned char c)
{
    /* VCHAR; RFC 9112 3.2: a fragment is never part of a request-target */
    return c > 0x20 && c < 0x7f && c != '#';
}

static bool
is_value_char(unsigned char c)
{
    /* RFC 9110 5.5: field-vchar / SP / HTAB; obs-text is accepted */
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Reads 1*tchar up to and including the byte `stop`, which is not part of
 * the token.  An empty token or any other byte is malformed.
 */
static int
parse_token(struct cursor *c, char stop, const char **tok, size_t *toklen)
{
    size_t start = c->pos;

    for (; c->pos < c->len; c->pos++) {
        unsigned char ch = (unsigned char)c->buf[c->pos];

        if (ch == (unsigned char)stop) {
            if (c->pos == start) {
                return SC_HTTP_EBAD;
            }
            *tok = c->buf + start;
            *toklen = c->pos - start;
            c->pos++;
            return 0;
        }
        if (!is_tchar(ch)) {
            return SC_HTTP_EBAD;
        }
    }
    return SC_HTTP_MORE;
}

/* Reads CRLF. */
static int
parse_crlf(struct cursor *c)
{
    if (c->pos == c->len) {
        return SC_HTTP_MORE;
    }
    if (c->buf[c->pos] != '\r') {
        return SC_HTTP_EBAD;
    }
    c->pos++;
    if (c->pos == c->len) {
        return SC_HTTP_MORE;
    }
    if (c->buf[c->pos] != '\n') {
        return SC_HTTP_EBAD;
    }
    c->pos++;
    return 0;
}

/* Reads origin-form and the SP after it; splits path and query. */
static int
parse_target(struct cursor *c, struct sc_http_req *req)
{
    size_t start = c->pos;
    const char *q;

    if (c->pos == c->len) {
        return SC_HTTP_MORE;
    }
    /* RFC 9112 3.2.1: origin-form only; absolute-form and '*' are refused */
    if (c->buf[c->pos] != '/') {
        return SC_HTTP_EBAD;
    }
    for (; c->pos < c->len; c->pos++) {
        unsigned char ch = (unsigned char)c->buf[c->pos];

        if (ch == ' ') {
            break;
        }
        if (!is_target_char(ch)) {
            return SC_HTTP_EBAD;
        }
    }
    if (c->pos == c->len) {
        return SC_HTTP_MORE;
    }
    req->target = c->buf + start;
    req->target_len = c->pos - start;
    c->pos++;
    q = memchr(req->target, '?', req->target_len);
    req->path = req->target;
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    req->query = q ? q + 1 : req->target + req->target_len;
    req->query_len = req->target_len - req->path_len - (q ? 1 : 0);
    return 0;
}

/* Reads "HTTP/1.0" or "HTTP/1.1" and the CRLF ending the request line. */
static int
parse_version(struct cursor *c, struct sc_http_req *req)
{
    static const char prefix[] = "HTTP/1.";
    size_t i;
    char minor;

    for (i = 0; i < sizeof(prefix) - 1; i++, c->pos++) {
        if (c->pos == c->len) {
            return SC_HTTP_MORE;
        }
        if (c->buf[c->pos] != prefix[i]) {
            return SC_HTTP_EBAD;
        }
    }
    if (c->pos == c->len) {
        return SC_HTTP_MORE;
    }
    minor = c->buf[c->pos++];
    if (minor != '0' && minor != '1') {
        return SC_HTTP_EBAD;
    }
    req->minor_version = minor - '0';
    return parse_crlf(c);
}

/* Reads a field value and its CRLF; trims OWS on both sides. */
static int
parse_value(struct cursor *c, struct sc_http_header *h)
{
    size_t start = c->pos, end;
    int rc;

    while (c->pos < c->len && c->buf[c->pos] != '\r') {
        if (!is_value_char((unsigned char)c->buf[c->pos])) {
            return SC_HTTP_EBAD;
        }
        c->pos++;
    }
    end = c->pos;
    rc = parse_crlf(c);
    if (rc != 0) {
        return rc;
    }
    while (start < end && is_ows(c->buf[start])) {
        start++;
    }
    while (end > start && is_ows(c->buf[end - 1])) {
        end--;
    }
    h->value = c->buf + start;
    h->value_len = end - start;
    return 0;
}

/*
 * Reads one field line, or the blank line ending the head: then returns 1.
 */
static int
parse_field_line(struct cursor *c, struct sc_http_req *req)
{
    struct sc_http_header *h;
    int rc;

    if (c->pos == c->len) {
        return SC_HTTP_MORE;
    }
    if (c->buf[c->pos] == '\r') {
        rc = parse_crlf(c);
        return rc == 0 ? 1 : rc;
    }
    if (req->nheaders == SC_HTTP_MAX_HEADERS) {
        return SC_HTTP_ETOOBIG;
    }
    /* a leading SP/HTAB (obs-fold, RFC 9112 5.2) is not a tchar: 400 */
    h = &req->headers[req->nheaders];
    rc = parse_token(c, ':', &h->name, &h->name_len);
    if (rc != 0) {
        return rc;
    }
    rc = parse_value(c, h);
    if (rc != 0) {
        return rc;
    }
    req->nheaders++;
    return 0;
}

/* Parses buf[0..len), len already capped at SC_HTTP_MAX_HEAD. */
static int
parse_head(const char *buf, size_t len, struct sc_http_req *req)
{
    struct cursor c = {buf, len, 0};
    int rc;

    rc = parse_token(&c, ' ', &req->method, &req->method_len);
    if (rc == 0) {
        rc = parse_target(&c, req);
    }
    if (rc == 0) {
        rc = parse_version(&c, req);
    }
    while (rc == 0) {
        rc = parse_field_line(&c, req);
    }
    return rc == 1 ? (int)c.pos : rc;
}

int
sc_http_parse(const char *buf, size_t len, struct sc_http_req *req)
{
    size_t n = len > SC_HTTP_MAX_HEAD ? SC_HTTP_MAX_HEAD : len;
    int rc;

    req->method = req->target = req->path = req->query = NULL;
    req->method_len = req->target_len = req->path_len = req->query_len = 0;
    req->minor_version = 0;
    req->nheaders = 0;
    if (n == 0) {
        return SC_HTTP_MORE;
    }
    rc = parse_head(buf, n, req);
    /* no blank line within the limit, and the buffer already exceeds it */
    if (rc == SC_HTTP_MORE && len > SC_HTTP_MAX_HEAD) {
        return SC_HTTP_ETOOBIG;
    }
    return rc;
}

const struct sc_http_header *
sc_http_header_find(const struct sc_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sc_http_header *h = &req->headers[i];

        if (sc_ascii_ieq(h->name, h->name_len, name, strlen(name))) {
            return h;
        }
    }
    return NULL;
}

size_t
sc_http_header_count(const struct sc_http_req *req, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sc_http_header *h = &req->headers[i];

        if (sc_ascii_ieq(h->name, h->name_len, name, strlen(name))) {
            n++;
        }
    }
    return n;
}

bool
sc_http_list_next(const char *value, size_t len, size_t *pos, const char **elem,
                  size_t *elem_len)
{
    while (*pos < len) {
        size_t start = *pos, end;
        const char *comma = memchr(value + start, ',', len - start);

        end = comma ? (size_t)(comma - value) : len;
        *pos = comma ? end + 1 : len;
        while (start < end && is_ows(value[start])) {
            start++;
        }
        while (end > start && is_ows(value[end - 1])) {
            end--;
        }
        /* RFC 9110 5.6.1: empty elements are ignored */
        if (end > start) {
            *elem = value + start;
            *elem_len = end - start;
            return true;
        }
    }
    return false;
}

bool
sc_http_has_token(const char *value, size_t len, const char *token)
{
    size_t pos = 0, elen;
    const char *elem;

    while (sc_http_list_next(value, len, &pos, &elem, &elen)) {
        if (sc_ascii_ieq(elem, elen, token, strlen(token))) {
            return true;
        }
    }
    return false;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Percent-decodes s[0..n) into out, NUL-terminated. */
static long
percent_decode(const char *s, size_t n, char *out, size_t outcap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++, o++) {
        int ch = (unsigned char)s[i];

        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int hi = n - i > 2 ? hex_value(s[i + 1]) : -1;
            int lo = n - i > 2 ? hex_value(s[i + 2]) : -1;

            if (hi < 0 || lo < 0) {
                return SC_HTTP_PARAM_EBAD;
            }
            ch = hi << 4 | lo;
            i += 2;
        }
        if (o + 1 < outcap) {
            out[o] = (char)ch;
        }
    }
    if (o >= outcap) {
        return SC_HTTP_PARAM_ETOOLONG;
    }
    out[o] = '\0';
    return (long)o;
}

long
sc_http_query_param(const char *query, size_t qlen, const char *name, char *out,
                    size_t outcap)
{
    size_t nlen = strlen(name), pos = 0;

    while (pos < qlen) {
        const char *pair = query + pos;
        const char *amp = memchr(pair, '&', qlen - pos);
        size_t plen = amp ? (size_t)(amp - pair) : qlen - pos;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;

        pos += plen + 1;
        if (klen != nlen || memcmp(pair, name, nlen) != 0) {
            continue;
        }
        if (eq == NULL) {
            return percent_decode(pair, 0, out, outcap);
        }
        return percent_decode(eq + 1, plen - klen - 1, out, outcap);
    }
    return SC_HTTP_PARAM_ABSENT;
}

const char *
sc_http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return NULL;
    }
}

long
sc_http_response(int status, const char *content_type,
                 const char *extra_headers, const char *body, size_t bodylen,
                 char *out, size_t outlen)
{
    const char *reason = sc_http_reason(status);
    bool ct = content_type != NULL;
    int n;

    /* a 1xx response has no content, hence no Content-Length */
    if (reason == NULL || status < 200) {
        return -1;
    }
    n = snprintf(out, outlen,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n"
                 "%s%s%s%s\r\n",
                 status, reason, bodylen, ct ? "Content-Type: " : "",
                 ct ? content_type : "", ct ? "\r\n" : "",
                 extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= outlen || bodylen > outlen - (size_t)n) {
        return -1;
    }
    if (bodylen > 0) {
        memcpy(out + n, body, bodylen);
    }
    return (long)((size_t)n + bodylen);
}
