/*
 * lg_ws.c - the load generator's client side of RFC 6455 and of SPEC 4
 *
 * Pure code (see lg_ws.h): no I/O, no allocation, no globals, no clock.
 * Called by loadgen.c for every read of every connection, so each
 * function makes one pass over its input and copies nothing.
 */
#include "lg_ws.h"

#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Upgrade response                                                     */

/* "HTTP/1.1 101 ..." -> 101, or 0 if the line is not a status line. */
static int
status_code(const char *buf, size_t len)
{
    int code = 0;

    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
        return 0;
    }
    for (size_t i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') {
            return 0;
        }
        code = code * 10 + (buf[i] - '0');
    }
    return code;
}

/* True if the header line [p, end) is Sec-WebSocket-Accept: LG_WS_ACCEPT. */
static bool
is_good_accept(const char *p, const char *end)
{
    static const char name[] = "sec-websocket-accept:";
    size_t nlen = sizeof(name) - 1;
    size_t alen = sizeof(LG_WS_ACCEPT) - 1;

    if ((size_t)(end - p) < nlen || strncasecmp(p, name, nlen) != 0) {
        return false;
    }
    p += nlen;
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    return (size_t)(end - p) == alen && memcmp(p, LG_WS_ACCEPT, alen) == 0;
}

long
lg_http_response(const char *buf, size_t len, int *status)
{
    const char *head_end = memmem(buf, len, "\r\n\r\n", 4);
    const char *line, *eol;
    bool accepted = false;

    *status = 0;
    if (memchr(buf, '\n', len) != NULL) {
        *status = status_code(buf, len);
        if (*status == 0) {
            return LG_E_HTTP;
        }
    }
    if (head_end == NULL) {
        return len > LG_HTTP_MAX ? LG_E_HTTP : LG_MORE;
    }
    if (*status != 101) {
        return LG_E_HTTP;
    }
    line = (const char *)memchr(buf, '\n', len) + 1;
    while (line < head_end + 2) {
        eol = memchr(line, '\r', (size_t)(head_end + 2 - line));
        if (eol == NULL) {
            break;
        }
        accepted = accepted || is_good_accept(line, eol);
        line = eol + 2;
    }
    if (!accepted) {
        return LG_E_ACCEPT;
    }
    return (long)(head_end + 4 - buf);
}

/* ------------------------------------------------------------------ */
/* Frames                                                               */

long
lg_ws_frame_parse(const uint8_t *buf, size_t len, struct lg_frame *f)
{
    size_t hdr = 2;
    uint64_t plen;

    if (len < 2) {
        return LG_MORE;
    }
    /* RFC 6455 5.2: no extension was negotiated, so RSV must be 0 */
    if ((buf[0] & 0x70) != 0) {
        return LG_E_PROTO;
    }
    f->opcode = buf[0] & 0x0F;
    f->fin = (buf[0] & 0x80) != 0;
    if ((f->opcode > LG_WS_OP_BINARY && f->opcode < LG_WS_OP_CLOSE) ||
        f->opcode > LG_WS_OP_PONG) {
        return LG_E_PROTO;
    }
    /* RFC 6455 5.1: a server must not mask */
    if ((buf[1] & 0x80) != 0) {
        return LG_E_PROTO;
    }
    plen = buf[1] & 0x7F;
    if (plen == 126) {
        hdr = 4;
        if (len < hdr) {
            return LG_MORE;
        }
        plen = (uint64_t)buf[2] << 8 | buf[3];
        if (plen < 126) {
            return LG_E_PROTO; /* RFC 6455 5.2: minimal length form */
        }
    } else if (plen == 127) {
        hdr = 10;
        if (len < hdr) {
            return LG_MORE;
        }
        plen = 0;
        for (int i = 2; i < 10; i++) {
            plen = plen << 8 | buf[i];
        }
        if (plen <= 0xFFFF || (plen >> 63) != 0) {
            return LG_E_PROTO;
        }
    }
    if ((f->opcode & 0x08) != 0 && (plen > 125 || !f->fin)) {
        return LG_E_PROTO; /* RFC 6455 5.5: control frames */
    }
    if (plen > LG_WS_FRAME_MAX) {
        return LG_E_TOO_BIG;
    }
    if (len - hdr < plen) {
        return LG_MORE;
    }
    f->payload = buf + hdr;
    f->len = (size_t)plen;
    return (long)(hdr + plen);
}

long
lg_ws_frame_build(uint8_t *out, size_t cap, uint8_t op, const uint8_t *payload,
                  size_t len, uint32_t key)
{
    uint8_t k[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16),
                    (uint8_t)(key >> 8), (uint8_t)key};

    if (len > 125 || cap < 6 + len) {
        return LG_E_SPACE;
    }
    out[0] = (uint8_t)(0x80 | (op & 0x0F));
    out[1] = (uint8_t)(0x80 | len); /* RFC 6455 5.3: clients mask */
    memcpy(out + 2, k, 4);
    for (size_t i = 0; i < len; i++) {
        out[6 + i] = payload[i] ^ k[i & 3];
    }
    return (long)(6 + len);
}

/* ------------------------------------------------------------------ */
/* JSON: the few fields the bench needs                                 */

static size_t
skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len &&
           (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) {
        i++;
    }
    return i;
}

/* p[i] is '"': returns the index after the closing quote, or len. */
static size_t
skip_string(const char *p, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\') {
            i++;
        } else if (p[i] == '"') {
            return i + 1;
        }
    }
    return len;
}

/* Skips any value at p[i]; returns the index after it, or len. */
static size_t
skip_value(const char *p, size_t i, size_t len)
{
    int depth = 0;

    if (i < len && p[i] == '"') {
        return skip_string(p, i, len);
    }
    if (i < len && p[i] != '{' && p[i] != '[') {
        while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']' &&
               p[i] != ' ' && p[i] != '\n' && p[i] != '\r' && p[i] != '\t') {
            i++;
        }
        return i;
    }
    while (i < len) {
        if (p[i] == '"') {
            i = skip_string(p, i, len);
            continue;
        }
        if (p[i] == '{' || p[i] == '[') {
            depth++;
        } else if (p[i] == '}' || p[i] == ']') {
            if (--depth == 0) {
                return i + 1;
            }
        }
        i++;
    }
    return len;
}

/* An integer at p[i] (optionally negative); false if there is none. */
static bool
parse_int(const char *p, size_t i, size_t len, int64_t *out)
{
    bool neg = i < len && p[i] == '-';
    int64_t v = 0;
    size_t start;

    i += neg;
    start = i;
    while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 18) {
        v = v * 10 + (p[i] - '0');
        i++;
    }
    if (i == start || (i < len && (p[i] == '.' || p[i] == 'e'))) {
        return false;
    }
    *out = neg ? -v : v;
    return true;
}

static enum lg_msg_type
msg_type(const char *s, size_t n)
{
    static const struct {
        const char *name;
        enum lg_msg_type type;
    } types[] = {
        {"seat_update", LG_MSG_SEAT_UPDATE},
        {"booking_created", LG_MSG_BOOKING_CREATED},
        {"booking_cancelled", LG_MSG_BOOKING_CANCELLED},
        {"connection_established", LG_MSG_ESTABLISHED},
        {"error", LG_MSG_ERROR},
    };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strlen(types[i].name) == n && memcmp(types[i].name, s, n) == 0) {
            return types[i].type;
        }
    }
    return LG_MSG_OTHER;
}

static bool
key_is(const char *p, size_t klen, const char *want)
{
    return strlen(want) == klen && memcmp(p, want, klen) == 0;
}

/* Records the value at p[v..vend) if key p[k..k+klen) is one we want. */
static void
take_field(const char *p, size_t k, size_t klen, size_t v, size_t vend,
           struct lg_msg *m)
{
    if (key_is(p + k, klen, "type") && p[v] == '"' && vend >= v + 2) {
        m->type = msg_type(p + v + 1, vend - v - 2);
    } else if (key_is(p + k, klen, "availableSeats")) {
        m->has_available = parse_int(p, v, vend, &m->available);
    } else if (key_is(p + k, klen, "eventId")) {
        m->has_event = parse_int(p, v, vend, &m->event_id);
    } else if (key_is(p + k, klen, "bookings")) {
        /* present but not an integer: 0, which no merge stands for */
        m->has_bookings = true;
        if (!parse_int(p, v, vend, &m->bookings)) {
            m->bookings = 0;
        }
    }
}

int
lg_json_scan(const char *p, size_t len, struct lg_msg *m)
{
    size_t i = skip_ws(p, 0, len);

    memset(m, 0, sizeof(*m));
    m->bookings = 1;
    if (i >= len || p[i] != '{') {
        return LG_E_JSON;
    }
    i = skip_ws(p, i + 1, len);
    while (i < len && p[i] != '}') {
        size_t k, kend, v;

        if (p[i] != '"') {
            return LG_E_JSON;
        }
        k = i + 1;
        kend = skip_string(p, i, len);
        i = skip_ws(p, kend, len);
        if (kend >= len || i >= len || p[i] != ':') {
            return LG_E_JSON;
        }
        v = skip_ws(p, i + 1, len);
        i = skip_value(p, v, len);
        if (v >= len || i >= len) {
            return LG_E_JSON;
        }
        take_field(p, k, kend - 1 - k, v, i, m);
        i = skip_ws(p, i, len);
        if (i < len && p[i] == ',') {
            i = skip_ws(p, i + 1, len);
        }
    }
    return i < len ? 0 : LG_E_JSON;
}
