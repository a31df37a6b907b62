/*
 * notify_msg.c - parse one NOTIFY payload (see notify_msg.h)
 *
 * Pure code for the listener process: no I/O, no globals, no clock, no
 * logging.  Errors come back as a code and a static reason string.
 *
 * NOTES
 *
 * cJSON checks the syntax and gives each member's JSON type, but it keeps
 * numbers only as doubles: 1e3 and 1000 look alike, and integers above
 * 2^53 are rounded.  So a second, tiny scanner walks the top-level object
 * over the same text, in step with cJSON's list of members (both are in
 * source order), and hands each member's raw value text to the field
 * parsers, which read integers digit by digit and strings escape by
 * escape.  The scanner trusts nothing: if it ever disagrees with cJSON the
 * payload is refused.
 */
#include "notify_msg.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "text.h"

/* The members we read; the order matches field_desc[]. */
enum field {
    F_TYPE,
    F_EVENT_ID,
    F_AVAILABLE,
    F_CAPACITY,
    F_VERSION,
    F_TS,
    F_JTI,
    F_COUNT
};

struct field_desc {
    const char *key;
    const char *missing;
    const char *invalid;
    const char *range;
    const char *repeated;
};

static const struct field_desc field_desc[F_COUNT] = {
    {"type", "missing field type", "invalid field type", "unknown type",
     "duplicate field type"},
    {"eventId", "missing field eventId", "invalid field eventId",
     "eventId out of range", "duplicate field eventId"},
    {"availableSeats", "missing field availableSeats",
     "invalid field availableSeats", "availableSeats out of range",
     "duplicate field availableSeats"},
    {"seatCapacity", "missing field seatCapacity", "invalid field seatCapacity",
     "seatCapacity out of range", "duplicate field seatCapacity"},
    {"version", "missing field version", "invalid field version",
     "version out of range", "duplicate field version"},
    {"ts", "missing field ts", "invalid field ts", "ts out of range",
     "duplicate field ts"},
    {"jti", "missing field jti", "invalid field jti", "jti too long",
     "duplicate field jti"},
};

static const char *const type_names[] = {
    [SC_NOTIFY_BOOKING_CREATED] = "booking_created",
    [SC_NOTIFY_BOOKING_CANCELLED] = "booking_cancelled",
    [SC_NOTIFY_SEAT_UPDATE] = "seat_update",
    [SC_NOTIFY_EVENT_DELETED] = "event_deleted",
    [SC_NOTIFY_TOKEN_REVOKED] = "token_revoked",
};

#define N_TYPES (sizeof(type_names) / sizeof(type_names[0]))

/* One member we read: cJSON's item and the raw text of its value. */
struct slot {
    const cJSON *item; /* NULL: absent */
    const char *raw;   /* points into the parse buffer */
    size_t len;
};

/* Forward scanner over the payload text. */
struct cursor {
    const char *p;
    const char *end;
};

static int
fail(const char **reason, const char *why, int code)
{
    if (reason != NULL) {
        *reason = why;
    }
    return code;
}

/* RFC 8259 section 2: the only four whitespace characters. */
static bool
is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void
skip_ws(struct cursor *c)
{
    while (c->p < c->end && is_json_ws(*c->p)) {
        c->p++;
    }
}

static bool
expect(struct cursor *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch) {
        return false;
    }
    c->p++;
    return true;
}

/* At an opening quote: moves past the closing one. */
static bool
skip_string(struct cursor *c)
{
    c->p++;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '"') {
            return true;
        }
        if (ch == '\\') {
            if (c->p >= c->end) {
                return false;
            }
            c->p++;
        }
    }
    return false;
}

/* Number or literal: everything up to a delimiter. */
static void
skip_scalar(struct cursor *c)
{
    while (c->p < c->end && !is_json_ws(*c->p) &&
           strchr(",:{}[]\"", *c->p) == NULL) {
        c->p++;
    }
}

/* Moves past one value of any kind, nested containers included. */
static bool
skip_value(struct cursor *c)
{
    size_t depth = 0;

    do {
        skip_ws(c);
        if (c->p >= c->end) {
            return false;
        }
        switch (*c->p) {
        case '"':
            if (!skip_string(c)) {
                return false;
            }
            break;
        case '{':
        case '[':
            depth++;
            c->p++;
            break;
        case '}':
        case ']':
            if (depth == 0) {
                return false;
            }
            depth--;
            c->p++;
            break;
        case ',':
        case ':':
            if (depth == 0) {
                return false;
            }
            c->p++;
            break;
        default:
            if (*c->p == '\0') {
                return false;
            }
            skip_scalar(c);
            break;
        }
    } while (depth > 0);
    return true;
}

/*
 * Scans one member ("key" : value, preceded by ',' unless first) and
 * returns the raw text of its value.
 */
static bool
scan_member(struct cursor *c, bool first, const char **raw, size_t *len)
{
    if (!first && !expect(c, ',')) {
        return false;
    }
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"' || !skip_string(c)) {
        return false;
    }
    if (!expect(c, ':')) {
        return false;
    }
    skip_ws(c);
    *raw = c->p;
    if (!skip_value(c)) {
        return false;
    }
    *len = (size_t)(c->p - *raw);
    return true;
}

/* Whether only whitespace follows end, cJSON's stop in buf[0..len). */
static bool
only_ws_left(const char *end, const char *buf, size_t len)
{
    struct cursor c = {end, buf + len};

    if (end == NULL || end < buf || end > buf + len) {
        return false;
    }
    skip_ws(&c);
    return c.p == c.end;
}

static int
field_index(const char *key)
{
    for (int f = 0; f < F_COUNT; f++) {
        if (strcmp(key, field_desc[f].key) == 0) {
            return f;
        }
    }
    return -1;
}

/*
 * Walks the object's members in step with cJSON's children and files the
 * ones we know into slots.  Unknown members are skipped.
 */
static int
collect(const cJSON *root, const char *text, size_t len,
        struct slot slots[F_COUNT], const char **reason)
{
    struct cursor c = {text, text + len};
    bool first = true;

    if (!expect(&c, '{')) {
        return fail(reason, "invalid JSON", SC_NOTIFY_EJSON);
    }
    for (const cJSON *it = root->child; it != NULL; it = it->next) {
        const char *raw;
        size_t rawlen;
        int f;

        if (it->string == NULL || !scan_member(&c, first, &raw, &rawlen)) {
            return fail(reason, "invalid JSON", SC_NOTIFY_EJSON);
        }
        first = false;
        f = field_index(it->string);
        if (f < 0) {
            continue;
        }
        if (slots[f].item != NULL) {
            return fail(reason, field_desc[f].repeated, SC_NOTIFY_EFIELD);
        }
        slots[f] = (struct slot){it, raw, rawlen};
    }
    if (!expect(&c, '}')) {
        return fail(reason, "invalid JSON", SC_NOTIFY_EJSON);
    }
    return 0;
}

/*
 * Reads a JSON integer lexeme -?(0|[1-9][0-9]*) exactly.  Returns 0 with
 * *v set, -1 if the text is not such a lexeme (fraction, exponent, sign,
 * leading zero), -2 if it is negative or above max.
 */
static int
parse_digits(const char *s, size_t n, uint64_t max, uint64_t *v)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t acc = 0;
    size_t i = neg ? 1 : 0;

    if (i == n || (s[i] == '0' && n - i > 1)) {
        return -1;
    }
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
    }
    if (neg) {
        return -2;
    }
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > max || acc > (max - d) / 10) {
            return -2;
        }
        acc = acc * 10 + d;
    }
    *v = acc;
    return 0;
}

/* A required (or present optional) JSON integer in 0..max. */
static int
get_integer(const struct slot *s, enum field f, uint64_t max, uint64_t *v,
            const char **reason)
{
    int r;

    if (s->item == NULL) {
        return fail(reason, field_desc[f].missing, SC_NOTIFY_EMISSING);
    }
    if (!cJSON_IsNumber(s->item)) {
        return fail(reason, field_desc[f].invalid, SC_NOTIFY_EFIELD);
    }
    r = parse_digits(s->raw, s->len, max, v);
    if (r == -1) {
        return fail(reason, field_desc[f].invalid, SC_NOTIFY_EFIELD);
    }
    if (r == -2) {
        return fail(reason, field_desc[f].range, SC_NOTIFY_EFIELD);
    }
    return 0;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * Decodes one escape after a backslash at raw[*i] (the character after
 * the backslash), advancing *i.  Returns the byte, or -1 if the escape is
 * bad or does not stand for a printable ASCII character.
 */
static int
decode_escape(const char *raw, size_t n, size_t *i)
{
    static const char simple[] = "\"\\/";
    char e = raw[(*i)++];
    int v = 0;

    if (e != '\0' && strchr(simple, e) != NULL) {
        return e;
    }
    if (e != 'u' || n - *i < 4) {
        return -1; /* \b \f \n \r \t are control characters */
    }
    for (int k = 0; k < 4; k++) {
        int h = hex_value(raw[(*i)++]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v >= 0x20 && v <= 0x7e ? v : -1;
}

/*
 * Decodes the raw text of a JSON string that may hold only printable ASCII
 * (0x20..0x7e, escaped or not) into out (NUL-terminated).  Returns the
 * length, -1 for a bad or non-printable character, -2 if longer than
 * outsz - 1.
 */
static long
decode_ascii(const char *raw, size_t rawlen, char *out, size_t outsz)
{
    size_t o = 0, n;

    if (rawlen < 2 || raw[0] != '"' || raw[rawlen - 1] != '"') {
        return -1;
    }
    raw++;
    n = rawlen - 2;
    for (size_t i = 0; i < n;) {
        int ch = (unsigned char)raw[i++];
        if (ch == '\\') {
            if (i >= n) {
                return -1;
            }
            ch = decode_escape(raw, n, &i);
        } else if (ch < 0x20 || ch > 0x7e || ch == '"') {
            ch = -1;
        }
        if (ch < 0) {
            return -1;
        }
        if (o + 1 >= outsz) {
            return -2;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return (long)o;
}

static int
get_type(const struct slot *s, enum sc_notify_type *type, const char **reason)
{
    char name[32];
    long n;

    if (s->item == NULL) {
        return fail(reason, field_desc[F_TYPE].missing, SC_NOTIFY_ETYPE);
    }
    if (!cJSON_IsString(s->item)) {
        return fail(reason, field_desc[F_TYPE].invalid, SC_NOTIFY_ETYPE);
    }
    n = decode_ascii(s->raw, s->len, name, sizeof(name));
    if (n == -1) {
        return fail(reason, field_desc[F_TYPE].invalid, SC_NOTIFY_ETYPE);
    }
    /* n == -2, too long for name[], is an unknown type as well */
    for (size_t t = 0; n >= 0 && t < N_TYPES; t++) {
        if (strcmp(name, type_names[t]) == 0) {
            *type = (enum sc_notify_type)t;
            return 0;
        }
    }
    return fail(reason, field_desc[F_TYPE].range, SC_NOTIFY_ETYPE);
}

/* eventId: a JSON integer, or a string of digits (PROTOCOL.md section 7) */
static int
get_event_id(const struct slot *s, uint64_t *id, const char **reason)
{
    const struct field_desc *d = &field_desc[F_EVENT_ID];
    uint64_t v = 0;
    int r;

    if (s->item != NULL && cJSON_IsString(s->item)) {
        /* the raw text, quotes excluded: escapes are not digits */
        r = s->len >= 2 && s->raw[1] != '-'
                ? parse_digits(s->raw + 1, s->len - 2, SC_EVENT_ID_MAX,
                               &v)
                : -1;
        if (r == -1) {
            return fail(reason, d->invalid, SC_NOTIFY_EFIELD);
        }
        if (r == -2) {
            return fail(reason, d->range, SC_NOTIFY_EFIELD);
        }
    } else {
        r = get_integer(s, F_EVENT_ID, SC_EVENT_ID_MAX, &v, reason);
        if (r < 0) {
            return r;
        }
    }
    if (v == 0) {
        return fail(reason, d->range, SC_NOTIFY_EFIELD);
    }
    *id = v;
    return 0;
}

/* availableSeats, seatCapacity and version: all required. */
static int
get_seats(const struct slot slots[F_COUNT], struct sc_notify *out,
          const char **reason)
{
    uint64_t avail, cap, version;
    int r;

    if ((r = get_integer(&slots[F_AVAILABLE], F_AVAILABLE, INT32_MAX, &avail,
                         reason)) < 0 ||
        (r = get_integer(&slots[F_CAPACITY], F_CAPACITY, INT32_MAX, &cap,
                         reason)) < 0 ||
        (r = get_integer(&slots[F_VERSION], F_VERSION, INT64_MAX, &version,
                         reason)) < 0) {
        return r;
    }
    if (avail > cap) {
        return fail(reason, "availableSeats exceeds seatCapacity",
                    SC_NOTIFY_EFIELD);
    }
    out->available_seats = (int32_t)avail;
    out->seat_capacity = (int32_t)cap;
    out->version = (int64_t)version;
    out->has_version = true;
    return 0;
}

static int
get_optional_version(const struct slot *s, struct sc_notify *out,
                     const char **reason)
{
    uint64_t v;
    int r;

    if (s->item == NULL) {
        return 0;
    }
    r = get_integer(s, F_VERSION, INT64_MAX, &v, reason);
    if (r < 0) {
        return r;
    }
    out->version = (int64_t)v;
    out->has_version = true;
    return 0;
}

static int
get_jti(const struct slot *s, char *jti, const char **reason)
{
    const struct field_desc *d = &field_desc[F_JTI];
    long n;

    if (s->item == NULL) {
        return fail(reason, d->missing, SC_NOTIFY_EMISSING);
    }
    if (!cJSON_IsString(s->item)) {
        return fail(reason, d->invalid, SC_NOTIFY_EFIELD);
    }
    n = decode_ascii(s->raw, s->len, jti, SC_NOTIFY_JTI_MAX + 1);
    if (n == -2) {
        return fail(reason, d->range, SC_NOTIFY_EFIELD);
    }
    if (n <= 0) {
        return fail(reason, d->invalid, SC_NOTIFY_EFIELD);
    }
    return 0;
}

/* Fills *out from the collected members, as the type requires. */
static int
build(const struct slot slots[F_COUNT], struct sc_notify *out,
      const char **reason)
{
    uint64_t ts = 0;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = get_type(&slots[F_TYPE], &out->type, reason)) < 0) {
        return r;
    }
    if (slots[F_TS].item != NULL &&
        (r = get_integer(&slots[F_TS], F_TS, INT64_MAX, &ts, reason)) < 0) {
        return r;
    }
    out->ts_ms = (int64_t)ts;

    switch (out->type) {
    case SC_NOTIFY_TOKEN_REVOKED:
        return get_jti(&slots[F_JTI], out->jti, reason);
    case SC_NOTIFY_EVENT_DELETED:
        if ((r = get_event_id(&slots[F_EVENT_ID], &out->event_id, reason)) <
            0) {
            return r;
        }
        return get_optional_version(&slots[F_VERSION], out, reason);
    default:
        if ((r = get_event_id(&slots[F_EVENT_ID], &out->event_id, reason)) <
            0) {
            return r;
        }
        return get_seats(slots, out, reason);
    }
}

int
sc_notify_parse(const char *payload, size_t len, struct sc_notify *out,
                const char **reason)
{
    /* cJSON wants a NUL-terminated string; NOTIFY payloads are small */
    char buf[SC_NOTIFY_MAX_PAYLOAD + 1];
    struct slot slots[F_COUNT];
    const char *end = NULL;
    cJSON *root;
    int rc;

    if (reason != NULL) {
        *reason = NULL;
    }
    if (payload == NULL || out == NULL) {
        return fail(reason, "invalid arguments", SC_NOTIFY_EARG);
    }
    if (len > SC_NOTIFY_MAX_PAYLOAD) {
        return fail(reason, "payload too long", SC_NOTIFY_EJSON);
    }
    if (memchr(payload, '\0', len) != NULL) {
        return fail(reason, "NUL byte in payload", SC_NOTIFY_EJSON);
    }
    memcpy(buf, payload, len);
    buf[len] = '\0';

    root = cJSON_ParseWithOpts(buf, &end, 0);
    if (root == NULL) {
        return fail(reason, "invalid JSON", SC_NOTIFY_EJSON);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(reason, "payload is not a JSON object", SC_NOTIFY_EJSON);
    }
    if (!only_ws_left(end, buf, len)) {
        cJSON_Delete(root);
        return fail(reason, "trailing data after JSON object", SC_NOTIFY_EJSON);
    }
    memset(slots, 0, sizeof(slots));
    rc = collect(root, buf, len, slots, reason);
    if (rc == 0) {
        rc = build(slots, out, reason);
    }
    cJSON_Delete(root);
    if (rc == 0 && reason != NULL) {
        *reason = NULL;
    }
    return rc;
}

const char *
sc_notify_type_name(enum sc_notify_type type)
{
    if ((size_t)type >= N_TYPES) {
        return NULL;
    }
    return type_names[type];
}

static const struct sc_seat_row *
find_row(const struct sc_seat_row *rows, size_t nrows, uint64_t id)
{
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].event_id == id) {
            return &rows[i];
        }
    }
    return NULL;
}

void
sc_notify_verify(struct sc_notify *hints, size_t n,
                 const struct sc_seat_row *rows, size_t nrows,
                 const char *const *revoked, size_t nrevoked,
                 enum sc_notify_verdict *verdicts)
{
    for (size_t i = 0; i < n; i++) {
        struct sc_notify *h = &hints[i];
        const struct sc_seat_row *r;

        if (h->type == SC_NOTIFY_TOKEN_REVOKED) {
            verdicts[i] = SC_VERIFY_FORGED;
            for (size_t j = 0; j < nrevoked; j++) {
                if (strcmp(revoked[j], h->jti) == 0) {
                    verdicts[i] = SC_VERIFY_APPLY;
                    break;
                }
            }
            continue;
        }
        r = find_row(rows, nrows, h->event_id);
        if (h->type == SC_NOTIFY_EVENT_DELETED) {
            verdicts[i] = r == NULL ? SC_VERIFY_APPLY : SC_VERIFY_FORGED;
            continue;
        }
        if (r == NULL) {
            verdicts[i] = SC_VERIFY_UNKNOWN;
        } else if (h->version > r->version) {
            verdicts[i] = SC_VERIFY_FORGED;
        } else {
            verdicts[i] = SC_VERIFY_APPLY;
            if (h->version == r->version) {
                h->available_seats = r->available_seats;
                h->seat_capacity = r->seat_capacity;
            }
        }
    }
}
