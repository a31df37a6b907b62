/*
 * pgoutput.c - decode pgoutput messages and replication framing (see
 * pgoutput.h)
 *
 * A small cursor reads big-endian integers and NUL-terminated strings; it
 * remembers the first failure, so that a decoder reads every field and
 * checks once at the end.  Tuples and Relation columns are walked once
 * while decoding, to prove that every length stays inside the buffer;
 * the iterators walk them again for the caller without checks.
 */
#include "pgoutput.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct cur {
    const uint8_t *p, *end;
    int err;             /* first error, 0 if none */
    const char *why;
};

static void
fail(struct cur *c, int err, const char *why)
{
    if (c->err == 0) {
        c->err = err;
        c->why = why;
    }
    c->p = c->end;
}

static uint64_t
get_be(struct cur *c, size_t n)
{
    uint64_t v = 0;

    if (c->err != 0 || (size_t)(c->end - c->p) < n) {
        fail(c, SC_PGO_ESHORT, "message ends inside a field");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | c->p[i];
    }
    c->p += n;
    return v;
}

static uint8_t
get8(struct cur *c)
{
    return (uint8_t)get_be(c, 1);
}

static uint16_t
get16(struct cur *c)
{
    return (uint16_t)get_be(c, 2);
}

static uint32_t
get32(struct cur *c)
{
    return (uint32_t)get_be(c, 4);
}

static uint64_t
get64(struct cur *c)
{
    return get_be(c, 8);
}

/* A NUL-terminated string in place; "" on error. */
static const char *
get_str(struct cur *c)
{
    const uint8_t *nul;

    if (c->err != 0) {
        return "";
    }
    nul = memchr(c->p, '\0', (size_t)(c->end - c->p));
    if (nul == NULL) {
        fail(c, SC_PGO_ESHORT, "string without its terminating NUL");
        return "";
    }
    const char *s = (const char *)c->p;
    c->p = nul + 1;
    return s;
}

/* Checks and skips tuple data; fills t. */
static void
get_tuple(struct cur *c, struct sc_pgo_tuple *t)
{
    const uint8_t *start;

    t->ncols = get16(c);
    start = c->p;
    for (uint16_t i = 0; i < t->ncols && c->err == 0; i++) {
        uint8_t kind = get8(c);
        switch (kind) {
        case 'n':
        case 'u':
            break;
        case 't':
        case 'b': {
            uint32_t n = get32(c);
            if (c->err == 0 && (size_t)(c->end - c->p) < n) {
                fail(c, SC_PGO_ESHORT, "column value longer than the "
                     "message");
                break;
            }
            c->p += n;
            break;
        }
        default:
            if (c->err == 0) {
                fail(c, SC_PGO_EVALUE, "unknown tuple column kind");
            }
            break;
        }
    }
    t->data = start;
    t->len = c->err == 0 ? (size_t)(c->p - start) : 0;
    if (c->err != 0) {
        t->ncols = 0;
    }
}

static void
get_columns(struct cur *c, struct sc_pgo_msg *m)
{
    const uint8_t *start;

    m->u.relation.ncols = get16(c);
    start = c->p;
    for (uint16_t i = 0; i < m->u.relation.ncols && c->err == 0; i++) {
        (void)get8(c);
        (void)get_str(c);
        (void)get32(c);
        (void)get32(c);
    }
    m->u.relation.cols = start;
    m->u.relation.cols_len = c->err == 0 ? (size_t)(c->p - start) : 0;
}

static int
finish(struct cur *c, const char **why)
{
    if (c->err == 0 && c->p != c->end) {
        fail(c, SC_PGO_ELONG, "bytes left after the last field");
    }
    if (why != NULL) {
        *why = c->err == 0 ? NULL : c->why;
    }
    return c->err;
}

int
sc_pgo_copy_decode(const uint8_t *buf, size_t len, struct sc_pgo_copy *out,
                   const char **why)
{
    struct cur c = {buf, buf + len, 0, NULL};

    if (buf == NULL || out == NULL) {
        if (why != NULL) {
            *why = "NULL argument";
        }
        return SC_PGO_EARG;
    }
    memset(out, 0, sizeof(*out));
    out->type = (char)get8(&c);
    switch (out->type) {
    case 'w':
        out->wal_start = get64(&c);
        out->wal_end = get64(&c);
        out->send_time = (int64_t)get64(&c);
        if (c.err == 0) {
            out->data = c.p;
            out->len = (size_t)(c.end - c.p);
            c.p = c.end;
        }
        break;
    case 'k': {
        out->wal_end = get64(&c);
        out->send_time = (int64_t)get64(&c);
        uint8_t r = get8(&c);
        if (c.err == 0 && r > 1) {
            fail(&c, SC_PGO_EVALUE, "keepalive reply flag is neither 0 "
                 "nor 1");
        }
        out->reply = r == 1;
        break;
    }
    default:
        if (c.err == 0) {
            fail(&c, SC_PGO_ETYPE, "unknown CopyData type");
        }
        break;
    }
    if (c.err != 0) {
        memset(out, 0, sizeof(*out));
    }
    return finish(&c, why);
}

static void
get_change(struct cur *c, struct sc_pgo_msg *m)
{
    uint8_t k;

    m->u.change.relid = get32(c);
    k = get8(c);
    if (c->err != 0) {
        return;
    }
    if (m->type == SC_PGO_INSERT) {
        if (k != 'N') {
            fail(c, SC_PGO_EVALUE, "Insert without its new tuple");
            return;
        }
        get_tuple(c, &m->u.change.new_tuple);
        return;
    }
    if (k == 'K' || k == 'O') {
        m->u.change.old_kind = (char)k;
        get_tuple(c, &m->u.change.old_tuple);
        if (m->type == SC_PGO_DELETE) {
            return;
        }
        k = get8(c);
    } else if (m->type == SC_PGO_DELETE) {
        fail(c, SC_PGO_EVALUE, "Delete without its key or old tuple");
        return;
    }
    if (c->err == 0 && k != 'N') {
        fail(c, SC_PGO_EVALUE, "Update without its new tuple");
        return;
    }
    get_tuple(c, &m->u.change.new_tuple);
}

int
sc_pgo_decode(const uint8_t *buf, size_t len, struct sc_pgo_msg *out,
              const char **why)
{
    struct cur c = {buf, buf + len, 0, NULL};
    uint8_t t;

    if (buf == NULL || out == NULL) {
        if (why != NULL) {
            *why = "NULL argument";
        }
        return SC_PGO_EARG;
    }
    memset(out, 0, sizeof(*out));
    t = get8(&c);
    out->type = (enum sc_pgo_type)t;
    switch (t) {
    case SC_PGO_BEGIN:
        out->u.begin.final_lsn = get64(&c);
        out->u.begin.commit_time = (int64_t)get64(&c);
        out->u.begin.xid = get32(&c);
        break;
    case SC_PGO_COMMIT:
        out->u.commit.flags = get8(&c);
        out->u.commit.commit_lsn = get64(&c);
        out->u.commit.end_lsn = get64(&c);
        out->u.commit.commit_time = (int64_t)get64(&c);
        break;
    case SC_PGO_ORIGIN:
        out->u.origin.lsn = get64(&c);
        out->u.origin.name = get_str(&c);
        break;
    case SC_PGO_RELATION:
        out->u.relation.oid = get32(&c);
        out->u.relation.nspname = get_str(&c);
        out->u.relation.relname = get_str(&c);
        out->u.relation.replident = (char)get8(&c);
        get_columns(&c, out);
        break;
    case SC_PGO_TYPE:
        out->u.typ.oid = get32(&c);
        out->u.typ.nspname = get_str(&c);
        out->u.typ.typname = get_str(&c);
        break;
    case SC_PGO_INSERT:
    case SC_PGO_UPDATE:
    case SC_PGO_DELETE:
        get_change(&c, out);
        break;
    case SC_PGO_TRUNCATE:
        out->u.truncate.nrels = get32(&c);
        out->u.truncate.options = get8(&c);
        if (c.err == 0 &&
            (size_t)(c.end - c.p) / 4 < out->u.truncate.nrels) {
            fail(&c, SC_PGO_ESHORT, "Truncate lists fewer relations than "
                 "it counts");
            break;
        }
        out->u.truncate.relids = c.p;
        c.p += (size_t)out->u.truncate.nrels * 4;
        break;
    case SC_PGO_MESSAGE:
        out->u.message.flags = get8(&c);
        out->u.message.lsn = get64(&c);
        out->u.message.prefix = get_str(&c);
        out->u.message.len = get32(&c);
        if (c.err == 0 && (size_t)(c.end - c.p) < out->u.message.len) {
            fail(&c, SC_PGO_ESHORT, "Message content longer than the "
                 "message");
            break;
        }
        out->u.message.content = c.p;
        c.p += out->u.message.len;
        break;
    default:
        if (c.err == 0) {
            fail(&c, SC_PGO_ETYPE, "unknown pgoutput message type");
        }
        break;
    }
    if (finish(&c, why) != 0) {
        memset(out, 0, sizeof(*out));
        return c.err;
    }
    return 0;
}

void
sc_pgo_tuple_iter(const struct sc_pgo_tuple *t, struct sc_pgo_iter *it)
{
    it->p = t->data;
    it->end = t->data != NULL ? t->data + t->len : NULL;
    it->left = t->data != NULL ? t->ncols : 0;
}

void
sc_pgo_columns_iter(const struct sc_pgo_msg *rel, struct sc_pgo_iter *it)
{
    it->p = rel->u.relation.cols;
    it->end = it->p != NULL ? it->p + rel->u.relation.cols_len : NULL;
    it->left = it->p != NULL ? rel->u.relation.ncols : 0;
}

int
sc_pgo_tuple_next(struct sc_pgo_iter *it, struct sc_pgo_value *out)
{
    struct cur c;

    if (it->left == 0) {
        return 0;
    }
    c = (struct cur){it->p, it->end, 0, NULL};
    memset(out, 0, sizeof(*out));
    out->kind = (char)get8(&c);
    if (out->kind == 't' || out->kind == 'b') {
        out->len = get32(&c);
        out->data = c.p;
        if (c.err == 0 && (size_t)(c.end - c.p) >= out->len) {
            c.p += out->len;
        } else {
            fail(&c, SC_PGO_ESHORT, "value");
        }
    }
    if (c.err != 0) {
        it->left = 0;
        return 0;
    }
    it->p = c.p;
    it->left--;
    return 1;
}

int
sc_pgo_column_next(struct sc_pgo_iter *it, struct sc_pgo_column *out)
{
    struct cur c;

    if (it->left == 0) {
        return 0;
    }
    c = (struct cur){it->p, it->end, 0, NULL};
    out->flags = get8(&c);
    out->name = get_str(&c);
    out->type_oid = get32(&c);
    out->typmod = (int32_t)get32(&c);
    if (c.err != 0) {
        it->left = 0;
        return 0;
    }
    it->p = c.p;
    it->left--;
    return 1;
}

uint32_t
sc_pgo_truncate_relid(const struct sc_pgo_msg *m, uint32_t i)
{
    const uint8_t *p = m->u.truncate.relids + (size_t)i * 4;

    if (i >= m->u.truncate.nrels) {
        return 0;
    }
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        *p++ = (uint8_t)(v >> (i * 8));
    }
    return p;
}

void
sc_pgo_status_build(uint8_t out[SC_PGO_STATUS_LEN], uint64_t write,
                    uint64_t flush, uint64_t apply, int64_t now, bool reply)
{
    uint8_t *p = out;

    *p++ = 'r';
    p = put64(p, write);
    p = put64(p, flush);
    p = put64(p, apply);
    p = put64(p, (uint64_t)now);
    *p = reply ? 1 : 0;
}

int64_t
sc_pgo_time_from_unix_us(int64_t unix_us)
{
    return unix_us - SC_PGO_EPOCH_OFFSET_S * 1000000;
}

int64_t
sc_pgo_time_to_unix_ms(int64_t pg_us)
{
    return pg_us / 1000 + SC_PGO_EPOCH_OFFSET_S * 1000;
}

void
sc_pgo_lsn_format(uint64_t lsn, char out[SC_PGO_LSN_STRLEN])
{
    snprintf(out, SC_PGO_LSN_STRLEN, "%" PRIX32 "/%" PRIX32,
             (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

static int
hex_part(const char **s, uint32_t *out)
{
    uint64_t v = 0;
    int n = 0;

    for (; n < 9; n++, (*s)++) {
        char ch = **s;
        unsigned d;
        if (ch >= '0' && ch <= '9') {
            d = (unsigned)(ch - '0');
        } else if (ch >= 'A' && ch <= 'F') {
            d = (unsigned)(ch - 'A' + 10);
        } else if (ch >= 'a' && ch <= 'f') {
            d = (unsigned)(ch - 'a' + 10);
        } else {
            break;
        }
        v = v << 4 | d;
    }
    if (n == 0 || n > 8) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int
sc_pgo_lsn_parse(const char *text, uint64_t *out)
{
    uint32_t hi, lo;
    const char *s = text;

    if (text == NULL || out == NULL || hex_part(&s, &hi) != 0 || *s++ != '/'
        || hex_part(&s, &lo) != 0 || *s != '\0') {
        return -1;
    }
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}
