/*
 * check_pgoutput.c - the pgoutput decoder against a stream recorded from a
 * real PostgreSQL 15 (pgoutput_vectors.h, gen_pgoutput_vectors.py): every
 * message type, the values the scenario wrote, transaction framing, every
 * prefix and overlong copy of each real message refused, the status update
 * layout, LSN text
 */
#include "pgoutput.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput_vectors.h"

/* The pgoutput message of frame i (a 'w' frame). */
static void
msg_at(size_t i, struct sc_pgo_msg *m)
{
    struct sc_pgo_copy c;
    const char *why = "unset";

    ck_assert_uint_lt(i, PGOV_NFRAMES);
    ck_assert_int_eq(sc_pgo_copy_decode(pgov_frames[i].bytes,
                                        pgov_frames[i].len, &c, &why), 0);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(c.type, 'w');
    ck_assert_int_eq(sc_pgo_decode(c.data, c.len, m, &why), 0);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(m->type, pgov_frames[i].kind[1]);
}

/* Index of the n-th (0-based) frame whose message type is t. */
static size_t
nth(char t, int n)
{
    for (size_t i = 0; i < PGOV_NFRAMES; i++) {
        if (pgov_frames[i].kind[0] == 'w' && pgov_frames[i].kind[1] == t &&
            n-- == 0) {
            return i;
        }
    }
    ck_abort_msg("no frame %c #%d", t, n);
    return 0;
}

/* Collects up to 8 values of a tuple as C strings ("<null>", "<toast>"). */
struct vals {
    int n;
    char s[8][64];
    uint32_t len[8];
};

static void
values(const struct sc_pgo_tuple *t, struct vals *v)
{
    struct sc_pgo_iter it;
    struct sc_pgo_value x;

    memset(v, 0, sizeof(*v));
    sc_pgo_tuple_iter(t, &it);
    while (sc_pgo_tuple_next(&it, &x) == 1) {
        ck_assert_int_lt(v->n, 8);
        if (x.kind == 'n') {
            snprintf(v->s[v->n], 64, "<null>");
        } else if (x.kind == 'u') {
            snprintf(v->s[v->n], 64, "<toast>");
        } else {
            ck_assert_int_eq(x.kind, 't');
            snprintf(v->s[v->n], 64, "%.*s", (int)(x.len < 63 ? x.len : 63),
                     (const char *)x.data);
        }
        v->len[v->n] = x.len;
        v->n++;
    }
    ck_assert_int_eq(v->n, t->ncols);
}

START_TEST(every_frame_decodes)
{
    int w = 0, k = 0;

    for (size_t i = 0; i < PGOV_NFRAMES; i++) {
        struct sc_pgo_copy c;
        struct sc_pgo_msg m;
        const char *why;

        ck_assert_int_eq(sc_pgo_copy_decode(pgov_frames[i].bytes,
                                            pgov_frames[i].len, &c, &why),
                         0);
        ck_assert_int_eq(c.type, pgov_frames[i].kind[0]);
        ck_assert_int_gt(c.send_time, 0);
        if (c.type == 'k') {
            k++;
            ck_assert_uint_gt(c.wal_end, 0);
            ck_assert_uint_eq(pgov_frames[i].len, 18);
            continue;
        }
        w++;
        /* a logical walsender sends the record's LSN as start and end */
        ck_assert_uint_eq(c.wal_start, c.wal_end);
        ck_assert_uint_eq(c.len, pgov_frames[i].len - 25);
        ck_assert_int_eq(sc_pgo_decode(c.data, c.len, &m, &why), 0);
        ck_assert_int_eq(m.type, pgov_frames[i].kind[1]);
    }
    ck_assert_int_gt(k, 0);
    ck_assert_int_gt(w, 50);
}
END_TEST

/* Begin/Commit pairs: same LSN and time, commits in increasing order. */
START_TEST(transactions_frame_changes)
{
    uint64_t last_end = 0;
    int txns = 0;
    bool in_txn = false;
    struct sc_pgo_msg begin;

    for (size_t i = 0; i < PGOV_NFRAMES; i++) {
        struct sc_pgo_msg m;
        struct sc_pgo_copy c;

        if (pgov_frames[i].kind[0] != 'w') {
            continue;
        }
        msg_at(i, &m);
        sc_pgo_copy_decode(pgov_frames[i].bytes, pgov_frames[i].len, &c,
                           NULL);
        if (m.type == SC_PGO_BEGIN) {
            ck_assert(!in_txn);
            in_txn = true;
            begin = m;
            ck_assert_uint_gt(begin.u.begin.xid, 0);
        } else if (m.type == SC_PGO_COMMIT) {
            ck_assert(in_txn);
            in_txn = false;
            txns++;
            ck_assert_uint_eq(m.u.commit.flags, 0);
            ck_assert_uint_eq(m.u.commit.commit_lsn,
                              begin.u.begin.final_lsn);
            ck_assert_int_eq(m.u.commit.commit_time,
                             begin.u.begin.commit_time);
            ck_assert_uint_gt(m.u.commit.end_lsn, m.u.commit.commit_lsn);
            ck_assert_uint_gt(m.u.commit.end_lsn, last_end);
            ck_assert_uint_ge(c.wal_start, m.u.commit.commit_lsn);
            last_end = m.u.commit.end_lsn;
            /* a commit time in this century, microseconds */
            ck_assert_int_gt(sc_pgo_time_to_unix_ms(m.u.commit.commit_time),
                             INT64_C(1600000000000));
        } else if (m.type != SC_PGO_MESSAGE) {
            ck_assert_msg(in_txn, "frame %zu outside a transaction", i);
        }
    }
    ck_assert(!in_txn);
    ck_assert_int_eq(txns, 15);
}
END_TEST

static void
assert_col(struct sc_pgo_iter *it, const char *name, uint32_t oid,
           uint8_t flags)
{
    struct sc_pgo_column col;

    ck_assert_int_eq(sc_pgo_column_next(it, &col), 1);
    ck_assert_str_eq(col.name, name);
    ck_assert_uint_eq(col.type_oid, oid);
    ck_assert_uint_eq(col.flags, flags);
    ck_assert_int_eq(col.typmod, -1);
}

START_TEST(relation_events)
{
    struct sc_pgo_msg m;
    struct sc_pgo_iter it;
    struct sc_pgo_column col;

    msg_at(nth('R', 0), &m);
    ck_assert_uint_gt(m.u.relation.oid, 16384);
    ck_assert_str_eq(m.u.relation.nspname, "public");
    ck_assert_str_eq(m.u.relation.relname, "events");
    ck_assert_int_eq(m.u.relation.replident, 'd');
    ck_assert_uint_eq(m.u.relation.ncols, 6);
    sc_pgo_columns_iter(&m, &it);
    assert_col(&it, "id", 20, 1);
    assert_col(&it, "name", 25, 0);
    assert_col(&it, "starts_at", 1184, 0);
    assert_col(&it, "seat_capacity", 23, 0);
    assert_col(&it, "available_seats", 23, 0);
    assert_col(&it, "version", 20, 0);
    ck_assert_int_eq(sc_pgo_column_next(&it, &col), 0);

    msg_at(nth('R', 1), &m);
    ck_assert_str_eq(m.u.relation.relname, "bookings");
    ck_assert_uint_eq(m.u.relation.ncols, 7);
    msg_at(nth('R', 2), &m);
    ck_assert_str_eq(m.u.relation.relname, "seatcast_revoked_tokens");
    ck_assert_uint_eq(m.u.relation.ncols, 3);
}
END_TEST

START_TEST(booking_stream_values)
{
    struct sc_pgo_msg ev, m;
    struct vals v;
    static const char *avail[] = {"98", "100", "99", "98"};

    msg_at(nth('R', 0), &ev);
    /* event 1 inserted with its defaults */
    msg_at(nth('I', 0), &m);
    ck_assert_uint_eq(m.u.change.relid, ev.u.relation.oid);
    values(&m.u.change.new_tuple, &v);
    ck_assert_int_eq(v.n, 6);
    ck_assert_str_eq(v.s[0], "1");
    ck_assert_str_eq(v.s[1], "Gig");
    ck_assert_str_eq(v.s[2], "<null>");
    ck_assert_str_eq(v.s[3], "100");
    ck_assert_str_eq(v.s[4], "100");
    ck_assert_str_eq(v.s[5], "0");
    /* booking 1: event_id 1, user 7, 2 seats, confirmed */
    msg_at(nth('I', 1), &m);
    ck_assert_uint_ne(m.u.change.relid, ev.u.relation.oid);
    values(&m.u.change.new_tuple, &v);
    ck_assert_int_eq(v.n, 7);
    ck_assert_str_eq(v.s[0], "1");
    ck_assert_str_eq(v.s[1], "1");
    ck_assert_str_eq(v.s[2], "7");
    ck_assert_str_eq(v.s[3], "2");
    ck_assert_str_eq(v.s[4], "confirmed");
    ck_assert_str_eq(v.s[6], "<null>");
    /* the event row after each booking change, version by version */
    for (int i = 0; i < 4; i++) {
        int idx = i == 0 ? 0 : i == 1 ? 2 : i + 1;
        msg_at(nth('U', idx), &m);
        ck_assert_uint_eq(m.u.change.relid, ev.u.relation.oid);
        ck_assert_int_eq(m.u.change.old_kind, 0);
        values(&m.u.change.new_tuple, &v);
        ck_assert_str_eq(v.s[4], avail[i]);
        ck_assert_int_eq(atoi(v.s[5]), i + 1);
    }
    /* the cancellation: new status only, no old row (replica identity
       default, key unchanged) */
    msg_at(nth('U', 1), &m);
    ck_assert_int_eq(m.u.change.old_kind, 0);
    values(&m.u.change.new_tuple, &v);
    ck_assert_str_eq(v.s[4], "cancelled");
    ck_assert_str_ne(v.s[6], "<null>");
    /* revocation */
    msg_at(nth('I', 4), &m);
    values(&m.u.change.new_tuple, &v);
    ck_assert_str_eq(v.s[0], "jti-1");
}
END_TEST

START_TEST(type_null_long_text_full_identity)
{
    struct sc_pgo_msg m, rel;
    struct vals v;

    msg_at(nth('Y', 0), &m);
    ck_assert_uint_gt(m.u.typ.oid, 16384);
    ck_assert_str_eq(m.u.typ.nspname, "public");
    ck_assert_str_eq(m.u.typ.typname, "cap_mood");
    msg_at(nth('R', 3), &rel);
    ck_assert_str_eq(rel.u.relation.relname, "cap_full");
    ck_assert_int_eq(rel.u.relation.replident, 'f');
    msg_at(nth('I', 5), &m);
    ck_assert_uint_eq(m.u.change.relid, rel.u.relation.oid);
    values(&m.u.change.new_tuple, &v);
    ck_assert_str_eq(v.s[1], "busy");
    ck_assert_uint_eq(v.len[2], 3000);
    ck_assert_str_eq(v.s[3], "<null>");
    /* update: the whole old row ('O') then the new one */
    msg_at(nth('U', 5), &m);
    ck_assert_int_eq(m.u.change.old_kind, 'O');
    values(&m.u.change.old_tuple, &v);
    ck_assert_str_eq(v.s[3], "<null>");
    ck_assert_uint_eq(v.len[2], 3000);
    values(&m.u.change.new_tuple, &v);
    ck_assert_str_eq(v.s[3], "5");
    /* delete: the whole old row */
    msg_at(nth('D', 0), &m);
    ck_assert_int_eq(m.u.change.old_kind, 'O');
    ck_assert_uint_eq(m.u.change.new_tuple.ncols, 0);
    values(&m.u.change.old_tuple, &v);
    ck_assert_str_eq(v.s[0], "1");
    ck_assert_str_eq(v.s[3], "5");
}
END_TEST

START_TEST(toast_and_key_change)
{
    struct sc_pgo_msg m;
    struct vals v;

    msg_at(nth('I', 6), &m);
    values(&m.u.change.new_tuple, &v);
    ck_assert_uint_eq(v.len[1], 300 * 32);
    /* an update that leaves the TOASTed value alone sends 'u' */
    msg_at(nth('U', 6), &m);
    ck_assert_int_eq(m.u.change.old_kind, 0);
    values(&m.u.change.new_tuple, &v);
    ck_assert_str_eq(v.s[1], "<toast>");
    ck_assert_str_eq(v.s[2], "1");
    /* a key change sends the old key ('K'), other columns null */
    msg_at(nth('U', 7), &m);
    ck_assert_int_eq(m.u.change.old_kind, 'K');
    values(&m.u.change.old_tuple, &v);
    ck_assert_str_eq(v.s[0], "1");
    ck_assert_str_eq(v.s[1], "<null>");
    values(&m.u.change.new_tuple, &v);
    ck_assert_str_eq(v.s[0], "2");
}
END_TEST

START_TEST(truncate_message_origin)
{
    struct sc_pgo_msg m, full, key;

    msg_at(nth('R', 4), &key);
    ck_assert_str_eq(key.u.relation.relname, "cap_key");
    ck_assert_int_eq(sc_pgo_decode(pgov_frames[nth('R', 5)].bytes + 25,
                                   pgov_frames[nth('R', 5)].len - 25, &m,
                                   NULL), 0);
    ck_assert_str_eq(m.u.relation.relname, "cap_key");
    msg_at(nth('R', 6), &full);
    ck_assert_str_eq(full.u.relation.relname, "cap_full");
    msg_at(nth('T', 0), &m);
    ck_assert_uint_eq(m.u.truncate.nrels, 2);
    ck_assert_uint_eq(m.u.truncate.options, 0);
    ck_assert_uint_eq(sc_pgo_truncate_relid(&m, 0), key.u.relation.oid);
    ck_assert_uint_eq(sc_pgo_truncate_relid(&m, 1), full.u.relation.oid);
    ck_assert_uint_eq(sc_pgo_truncate_relid(&m, 2), 0);

    msg_at(nth('M', 0), &m);
    ck_assert_uint_eq(m.u.message.flags, 1);
    ck_assert_str_eq(m.u.message.prefix, "seatcast");
    ck_assert_uint_eq(m.u.message.len, 5);
    ck_assert_mem_eq(m.u.message.content, "hello", 5);
    ck_assert_uint_gt(m.u.message.lsn, 0);
    msg_at(nth('M', 1), &m);
    ck_assert_uint_eq(m.u.message.flags, 0);
    ck_assert_mem_eq(m.u.message.content, "now", 3);

    msg_at(nth('O', 0), &m);
    ck_assert_str_eq(m.u.origin.name, "cap_origin");
    ck_assert_uint_eq(m.u.origin.lsn, 0xAB);
}
END_TEST

START_TEST(event_delete_sends_key)
{
    struct sc_pgo_msg ev, m;
    struct vals v;
    int bookings = 0;

    msg_at(nth('R', 0), &ev);
    msg_at(nth('D', 1), &m);
    ck_assert_uint_eq(m.u.change.relid, ev.u.relation.oid);
    ck_assert_int_eq(m.u.change.old_kind, 'K');
    values(&m.u.change.old_tuple, &v);
    ck_assert_int_eq(v.n, 6);
    ck_assert_str_eq(v.s[0], "1");
    for (int i = 1; i < 6; i++) {
        ck_assert_str_eq(v.s[i], "<null>");
    }
    for (int i = 2; i < 5; i++) {
        msg_at(nth('D', i), &m);
        ck_assert_int_eq(m.u.change.old_kind, 'K');
        bookings++;
    }
    ck_assert_int_eq(bookings, 3);
}
END_TEST

START_TEST(keepalive_flags)
{
    uint8_t k[18];
    struct sc_pgo_copy c;
    const char *why;

    ck_assert_str_eq(pgov_frames[0].kind, "k");
    memcpy(k, pgov_frames[0].bytes, sizeof(k));
    ck_assert_int_eq(sc_pgo_copy_decode(k, sizeof(k), &c, &why), 0);
    ck_assert(!c.reply);
    k[17] = 1;
    ck_assert_int_eq(sc_pgo_copy_decode(k, sizeof(k), &c, &why), 0);
    ck_assert(c.reply);
    k[17] = 2;
    ck_assert_int_eq(sc_pgo_copy_decode(k, sizeof(k), &c, &why),
                     SC_PGO_EVALUE);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(c.type, 0);
}
END_TEST

/* Every proper prefix of every real message is refused; so is one more
   byte.  Decoded from a heap copy of exactly that length (ASan sees any
   read past it). */
START_TEST(every_prefix_refused)
{
    for (size_t i = 0; i < PGOV_NFRAMES; i++) {
        const uint8_t *f = pgov_frames[i].bytes;
        size_t len = pgov_frames[i].len;
        size_t off = f[0] == 'w' ? 25 : 0;
        struct sc_pgo_copy c;
        struct sc_pgo_msg m;
        const char *why;
        uint8_t *b;
        int rc;

        for (size_t n = 0; n < len; n++) {
            b = malloc(n ? n : 1);
            memcpy(b, f, n);
            why = NULL;
            if (n < off || off == 0) {
                rc = sc_pgo_copy_decode(b, n, &c, &why);
            } else {
                rc = sc_pgo_decode(b + off, n - off, &m, &why);
            }
            ck_assert_msg(rc == SC_PGO_ESHORT, "frame %zu prefix %zu: %d", i,
                          n, rc);
            ck_assert_ptr_nonnull(why);
            free(b);
        }
        b = malloc(len + 1);
        memcpy(b, f, len);
        b[len] = 0;
        why = NULL;
        if (off == 0) {
            rc = sc_pgo_copy_decode(b, len + 1, &c, &why);
        } else {
            rc = sc_pgo_decode(b + off, len + 1 - off, &m, &why);
        }
        ck_assert_int_eq(rc, SC_PGO_ELONG);
        ck_assert_ptr_nonnull(why);
        free(b);
    }
}
END_TEST

START_TEST(bad_values_refused)
{
    struct sc_pgo_msg m;
    const char *why;
    size_t i = nth('I', 0);
    const uint8_t *msg = pgov_frames[i].bytes + 25;
    size_t len = pgov_frames[i].len - 25;
    uint8_t b[512];

    ck_assert_uint_lt(len, sizeof(b));
    /* unknown message type */
    memcpy(b, msg, len);
    b[0] = 'Z';
    ck_assert_int_eq(sc_pgo_decode(b, len, &m, &why), SC_PGO_ETYPE);
    /* Insert whose tuple marker is not 'N' */
    memcpy(b, msg, len);
    b[5] = 'K';
    ck_assert_int_eq(sc_pgo_decode(b, len, &m, &why), SC_PGO_EVALUE);
    /* unknown column kind: the first column's kind byte follows ncols */
    memcpy(b, msg, len);
    ck_assert_int_eq(b[8], 't');
    b[8] = 'x';
    ck_assert_int_eq(sc_pgo_decode(b, len, &m, &why), SC_PGO_EVALUE);
    ck_assert_int_eq(m.type, 0);
    /* a value length beyond the message */
    memcpy(b, msg, len);
    b[9] = 0x7f;
    ck_assert_int_eq(sc_pgo_decode(b, len, &m, &why), SC_PGO_ESHORT);
    /* one column fewer than counted */
    memcpy(b, msg, len);
    b[7] = (uint8_t)(b[7] + 1);
    ck_assert_int_eq(sc_pgo_decode(b, len, &m, &why), SC_PGO_ESHORT);
    /* Delete with neither key nor old row */
    memcpy(b, msg, len);
    b[0] = 'D';
    ck_assert_int_eq(sc_pgo_decode(b, len, &m, &why), SC_PGO_EVALUE);
    /* NULL */
    ck_assert_int_eq(sc_pgo_decode(NULL, 0, &m, &why), SC_PGO_EARG);
    ck_assert_int_eq(sc_pgo_decode(b, len, NULL, &why), SC_PGO_EARG);
    ck_assert_int_eq(sc_pgo_copy_decode(NULL, 0, NULL, NULL), SC_PGO_EARG);
    /* a Truncate counting more relations than it lists */
    {
        static const uint8_t t[] = {'T', 0x40, 0, 0, 0, 0, 0, 0, 0, 1};
        ck_assert_int_eq(sc_pgo_decode(t, sizeof(t), &m, &why),
                         SC_PGO_ESHORT);
    }
}
END_TEST

START_TEST(status_update_layout)
{
    uint8_t b[SC_PGO_STATUS_LEN];
    static const uint8_t want[SC_PGO_STATUS_LEN] = {
        'r',
        0x00, 0x00, 0x00, 0x16, 0xb3, 0x74, 0xd8, 0x48,
        0x00, 0x00, 0x00, 0x16, 0xb3, 0x74, 0xd8, 0x40,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x02, 0xb5, 0xe3, 0xaf, 0x16, 0xb1, 0x88,
        1};

    sc_pgo_status_build(b, UINT64_C(0x16B374D848), UINT64_C(0x16B374D840), 1,
                        INT64_C(0x0002b5e3af16b188), true);
    ck_assert_mem_eq(b, want, sizeof(want));
    sc_pgo_status_build(b, 0, 0, 0, 0, false);
    ck_assert_int_eq(b[33], 0);
}
END_TEST

START_TEST(lsn_text_and_time)
{
    char s[SC_PGO_LSN_STRLEN];
    uint64_t v;

    sc_pgo_lsn_format(UINT64_C(0x16B374D848), s);
    ck_assert_str_eq(s, "16/B374D848");
    sc_pgo_lsn_format(UINT64_MAX, s);
    ck_assert_str_eq(s, "FFFFFFFF/FFFFFFFF");
    sc_pgo_lsn_format(0, s);
    ck_assert_str_eq(s, "0/0");
    ck_assert_int_eq(sc_pgo_lsn_parse("16/b374d848", &v), 0);
    ck_assert_uint_eq(v, UINT64_C(0x16B374D848));
    ck_assert_int_eq(sc_pgo_lsn_parse("FFFFFFFF/FFFFFFFF", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(sc_pgo_lsn_parse("1FFFFFFFF/0", &v), -1);
    ck_assert_int_eq(sc_pgo_lsn_parse("/0", &v), -1);
    ck_assert_int_eq(sc_pgo_lsn_parse("0/", &v), -1);
    ck_assert_int_eq(sc_pgo_lsn_parse("0/0 ", &v), -1);
    ck_assert_int_eq(sc_pgo_lsn_parse("0-0", &v), -1);
    ck_assert_int_eq(sc_pgo_lsn_parse(NULL, &v), -1);
    /* 2000-01-01 is PostgreSQL's zero */
    ck_assert_int_eq(sc_pgo_time_from_unix_us(INT64_C(946684800000000)), 0);
    ck_assert_int_eq(sc_pgo_time_to_unix_ms(0), INT64_C(946684800000));
    ck_assert_int_eq(sc_pgo_time_to_unix_ms(1500000), INT64_C(946684801500));
}
END_TEST

static Suite *
pgoutput_suite(void)
{
    Suite *s = suite_create("pgoutput");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, every_frame_decodes);
    tcase_add_test(tc, transactions_frame_changes);
    tcase_add_test(tc, relation_events);
    tcase_add_test(tc, booking_stream_values);
    tcase_add_test(tc, type_null_long_text_full_identity);
    tcase_add_test(tc, toast_and_key_change);
    tcase_add_test(tc, truncate_message_origin);
    tcase_add_test(tc, event_delete_sends_key);
    tcase_add_test(tc, keepalive_flags);
    tcase_add_test(tc, every_prefix_refused);
    tcase_add_test(tc, bad_values_refused);
    tcase_add_test(tc, status_update_layout);
    tcase_add_test(tc, lsn_text_and_time);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pgoutput_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
