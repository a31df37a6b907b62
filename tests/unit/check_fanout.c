/*
 * check_fanout.c - delivery to one worker's subscribers (fanout.c),
 * against a real registry segment and recording hooks in place of sockets
 */
#include "fanout.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "registry.h"

static const struct sc_shm_params params = {
    .nworkers = 2, .max_events = 64, .ring_slots = 16, .user_slots = 64};

/* A connection as the fan-out sees it: its follower and what it got. */
struct fake {
    struct sc_follower fol;
    char got[4096]; /* every frame's bytes, '|' after each */
    size_t len;
    int sends, batches;
};

static struct sc_registry reg;
static char name[64];
static struct sc_fanout fan;
static uint64_t revoked[64];
static size_t nrevoked;

static void
record(struct fake *f, const struct sc_frame *fr)
{
    ck_assert_uint_lt(f->len + fr->len + 1, sizeof(f->got));
    memcpy(f->got + f->len, fr->data, fr->len);
    f->len += fr->len;
    f->got[f->len++] = '|';
    f->got[f->len] = '\0';
}

static int
hook_send(void *owner, struct sc_frame *fr)
{
    struct fake *f = owner;

    f->sends++;
    record(f, fr);
    return 0;
}

static int
hook_send_many(void *owner, struct sc_frame *const *fs, size_t n)
{
    struct fake *f = owner;

    if (n > 0) {
        f->batches++;
    }
    for (size_t i = 0; i < n; i++) {
        record(f, fs[i]);
    }
    return 0;
}

static void
hook_revoked(void *host, const uint64_t *hashes, size_t n)
{
    ck_assert_ptr_eq(host, &fan);
    memcpy(revoked + nrevoked, hashes, n * sizeof(*hashes));
    nrevoked += n;
}

static const struct sc_fanout_ops ops = {.send = hook_send,
                                         .send_many = hook_send_many,
                                         .revoked = hook_revoked};

static void
setup(void)
{
    char err[256];
    pid_t live;
    bool replaced;

    snprintf(name, sizeof(name), "/sc-test-fanout-%d", (int)getpid());
    sc_registry_unlink(name);
    ck_assert_int_eq(sc_registry_create(&reg, name, &params, getpid(), "",
                                        &live, &replaced, err, sizeof(err)),
                     SC_REG_OK);
    ck_assert_int_eq(sc_fanout_init(&fan, &reg, 1, &ops, &fan), 0);
    nrevoked = 0;
}

static void
teardown(void)
{
    sc_fanout_fini(&fan);
    sc_registry_detach(&reg);
    sc_registry_unlink(name);
}

static void
fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->fol.owner = f;
}

/* The listener's part: the event's row and its change on the ring. */
static struct sc_event_entry *
event(int64_t id, int32_t avail, int64_t version)
{
    bool ins;
    struct sc_event_entry *e = sc_registry_event_insert(&reg, id, &ins);

    ck_assert_ptr_nonnull(e);
    sc_registry_event_write(e, SC_EVENT_LIVE, avail, 100, version);
    return e;
}

/* A change: the frames are "B<v>" (booking, if any) and "S<v>". */
static void
publish(int64_t id, uint32_t kind, int64_t version)
{
    struct sc_ring_msg m;
    int n = 0;

    memset(&m, 0, sizeof(m));
    m.event_id = id;
    m.version = version;
    m.kind = kind;
    if (kind == SC_CHANGE_BOOKING_CREATED) {
        n = snprintf((char *)m.frame, sizeof(m.frame), "B%lld",
                     (long long)version);
        m.update_off = (uint16_t)n;
    }
    if (kind != SC_CHANGE_EVENT_DELETED) {
        n += snprintf((char *)m.frame + n, sizeof(m.frame) - (size_t)n,
                      "S%lld", (long long)version);
    }
    m.frame_len = (uint16_t)n;
    sc_registry_ring_publish(&reg, &m);
}

static uint64_t
worker_subs(void)
{
    return atomic_load(&sc_registry_worker(&reg, 1)->subscriptions);
}

START_TEST(subscribe_counts_and_limits)
{
    struct sc_event_entry *e1 = event(1, 50, 3), *e2 = event(2, 50, 0);
    struct sc_event_state st;
    struct fake a;

    fake_init(&a);
    ck_assert_int_eq(sc_fanout_subscribe(&fan, &a.fol, e1, 1, 1, &st), 1);
    ck_assert_int_eq(st.version, 3); /* the snapshot */
    ck_assert_int_eq(st.available, 50);
    /* already subscribed: not an error, even at the limit */
    ck_assert_int_eq(sc_fanout_subscribe(&fan, &a.fol, e1, 1, 1, &st), 0);
    /* a new one over the limit */
    ck_assert_int_eq(sc_fanout_subscribe(&fan, &a.fol, e2, 2, 1, &st), -2);
    ck_assert_uint_eq(a.fol.nsubs, 1);
    ck_assert_uint_eq(worker_subs(), 1);
    ck_assert_uint_eq(atomic_load(&e1->subs[1]), 1);
    ck_assert_uint_eq(atomic_load(&e1->subs_total), 1);
    ck_assert_uint_eq(atomic_load(&e2->subs_total), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 1);
    ck_assert_int_eq(sc_fanout_unsubscribe(&fan, &a.fol, 2), 0);
    ck_assert_int_eq(sc_fanout_unsubscribe(&fan, &a.fol, 1), 1);
    ck_assert_uint_eq(a.fol.nsubs, 0);
    ck_assert_uint_eq(worker_subs(), 0);
    ck_assert_uint_eq(atomic_load(&e1->subs_total), 0);
    ck_assert_uint_eq(atomic_load(&reg.hdr->events_watched), 0);
    ck_assert_uint_eq(fan.nevents, 0);
}
END_TEST

START_TEST(change_reaches_its_subscribers_in_order)
{
    struct sc_event_entry *e1 = event(1, 50, 0), *e2 = event(2, 50, 0);
    struct sc_event_state st;
    struct fake a, b, c;

    fake_init(&a);
    fake_init(&b);
    fake_init(&c);
    sc_fanout_subscribe(&fan, &a.fol, e1, 1, 10, &st);
    sc_fanout_subscribe(&fan, &b.fol, e1, 1, 10, &st);
    sc_fanout_subscribe(&fan, &c.fol, e2, 2, 10, &st);
    publish(1, SC_CHANGE_BOOKING_CREATED, 1);
    publish(2, SC_CHANGE_SEAT_UPDATE, 1);
    publish(1, SC_CHANGE_SEAT_UPDATE, 2);
    sc_fanout_drain(&fan);
    /* each gets its event's frames, in order, in one write */
    ck_assert_str_eq(a.got, "B1|S1|S2|");
    ck_assert_str_eq(b.got, "B1|S1|S2|");
    ck_assert_str_eq(c.got, "S1|");
    ck_assert_int_eq(a.batches, 1);
    ck_assert_int_eq(c.batches, 1);
    ck_assert_uint_eq(fan.ring_seq, 3);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 1)->ring_seq), 3);
    /* nothing new: nothing sent */
    sc_fanout_drain(&fan);
    ck_assert_int_eq(a.batches, 1);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &b.fol);
    sc_fanout_unsubscribe_all(&fan, &c.fol);
    ck_assert_uint_eq(worker_subs(), 0);
}
END_TEST

START_TEST(snapshot_holds_back_older_changes)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake early, late;

    fake_init(&early);
    fake_init(&late);
    sc_fanout_subscribe(&fan, &early.fol, e, 1, 10, &st);
    /* two changes on their way; the late subscriber's snapshot already
     * holds the first */
    sc_registry_event_write(e, SC_EVENT_LIVE, 49, 100, 1);
    publish(1, SC_CHANGE_SEAT_UPDATE, 1);
    sc_fanout_subscribe(&fan, &late.fol, e, 1, 10, &st);
    ck_assert_int_eq(st.version, 1);
    sc_registry_event_write(e, SC_EVENT_LIVE, 48, 100, 2);
    publish(1, SC_CHANGE_SEAT_UPDATE, 2);
    sc_fanout_drain(&fan);
    ck_assert_str_eq(early.got, "S1|S2|");
    ck_assert_str_eq(late.got, "S2|");
    sc_fanout_unsubscribe_all(&fan, &early.fol);
    sc_fanout_unsubscribe_all(&fan, &late.fol);
}
END_TEST

START_TEST(version_already_delivered_is_skipped)
{
    struct sc_event_entry *e = event(1, 50, 5);
    struct sc_event_state st;
    struct fake a;

    fake_init(&a);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    publish(1, SC_CHANGE_SEAT_UPDATE, 5); /* the version it started at */
    publish(1, SC_CHANGE_SEAT_UPDATE, 6);
    publish(1, SC_CHANGE_SEAT_UPDATE, 6); /* repeated */
    sc_fanout_drain(&fan);
    ck_assert_str_eq(a.got, "S6|");
    sc_fanout_unsubscribe_all(&fan, &a.fol);
}
END_TEST

START_TEST(deleted_event_unsubscribes)
{
    struct sc_event_entry *e = event(7, 50, 0);
    struct sc_event_state st;
    struct fake a, b;

    fake_init(&a);
    fake_init(&b);
    sc_fanout_subscribe(&fan, &a.fol, e, 7, 10, &st);
    sc_fanout_subscribe(&fan, &b.fol, e, 7, 10, &st);
    publish(7, SC_CHANGE_SEAT_UPDATE, 1);
    publish(7, SC_CHANGE_EVENT_DELETED, 2);
    sc_fanout_drain(&fan);
    /* the change first, then `unsubscribed` */
    ck_assert_ptr_nonnull(strstr(a.got, "S1|"));
    ck_assert_ptr_nonnull(strstr(a.got, "\"type\":\"unsubscribed\","
                                        "\"eventId\":7,"));
    ck_assert(strstr(a.got, "S1|") < strstr(a.got, "unsubscribed"));
    ck_assert_ptr_nonnull(strstr(b.got, "\"type\":\"unsubscribed\""));
    ck_assert_uint_eq(a.fol.nsubs, 0);
    ck_assert_uint_eq(b.fol.nsubs, 0);
    ck_assert_uint_eq(worker_subs(), 0);
    ck_assert_uint_eq(fan.nevents, 0);
}
END_TEST

START_TEST(revocations_go_to_the_worker)
{
    struct sc_ring_msg m;
    uint64_t h[3] = {11, 22, 0x1234567890abcdefULL};

    memset(&m, 0, sizeof(m));
    m.kind = SC_CHANGE_TOKEN_REVOKED;
    memcpy(m.frame, h, sizeof(h));
    m.frame_len = sizeof(h);
    sc_registry_ring_publish(&reg, &m);
    /* even a worker that follows no event hears of them */
    sc_fanout_drain(&fan);
    ck_assert_uint_eq(nrevoked, 3);
    ck_assert_mem_eq(revoked, h, sizeof(h));
}
END_TEST

START_TEST(overrun_resyncs_from_the_table)
{
    struct sc_event_entry *e1 = event(1, 50, 0), *e2 = event(2, 70, 0);
    struct sc_event_state st;
    struct fake a, b;

    fake_init(&a);
    fake_init(&b);
    sc_fanout_subscribe(&fan, &a.fol, e1, 1, 10, &st);
    sc_fanout_subscribe(&fan, &b.fol, e2, 2, 10, &st);
    /* b's event changes once, delivered as usual */
    sc_registry_event_write(e2, SC_EVENT_LIVE, 69, 100, 1);
    publish(2, SC_CHANGE_SEAT_UPDATE, 1);
    sc_fanout_drain(&fan);
    ck_assert_str_eq(b.got, "S1|");
    /* more changes than the ring holds before the worker drains */
    for (int v = 1; v <= 40; v++) {
        sc_registry_event_write(e1, SC_EVENT_LIVE, 50 - v, 100, v);
        publish(1, SC_CHANGE_SEAT_UPDATE, v);
    }
    sc_fanout_drain(&fan);
    ck_assert_uint_eq(atomic_load(&sc_registry_worker(&reg, 1)->resyncs), 1);
    /* the latest state only, as a seat_update; nothing for an event that
     * did not change */
    ck_assert_int_eq(a.sends, 1);
    ck_assert_ptr_nonnull(strstr(a.got, "\"type\":\"seat_update\","
                                        "\"eventId\":1,"
                                        "\"availableSeats\":10,"
                                        "\"seatCapacity\":100,"));
    ck_assert_str_eq(b.got, "S1|"); /* had it already */
    ck_assert_uint_eq(fan.ring_seq, atomic_load(&reg.hdr->ring_head));
    /* and the ring from there on as usual, without repeating */
    publish(1, SC_CHANGE_SEAT_UPDATE, 40);
    publish(1, SC_CHANGE_SEAT_UPDATE, 41);
    sc_fanout_drain(&fan);
    ck_assert_ptr_nonnull(strstr(a.got, "|S41|"));
    ck_assert_ptr_null(strstr(a.got, "S40|"));
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &b.fol);
}
END_TEST

START_TEST(resync_spares_a_fresh_snapshot)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake early, late;

    fake_init(&early);
    fake_init(&late);
    sc_fanout_subscribe(&fan, &early.fol, e, 1, 10, &st);
    for (int v = 1; v <= 40; v++) {
        sc_registry_event_write(e, SC_EVENT_LIVE, 50 - v, 100, v);
        publish(1, SC_CHANGE_SEAT_UPDATE, v);
    }
    /* subscribes before the worker drains: its snapshot is the latest */
    sc_fanout_subscribe(&fan, &late.fol, e, 1, 10, &st);
    ck_assert_int_eq(st.version, 40);
    sc_fanout_drain(&fan);
    ck_assert_int_eq(early.sends, 1);
    ck_assert_ptr_nonnull(strstr(early.got, "\"availableSeats\":10,"));
    ck_assert_uint_eq(late.len, 0);
    sc_fanout_unsubscribe_all(&fan, &early.fol);
    sc_fanout_unsubscribe_all(&fan, &late.fol);
}
END_TEST

static Suite *
fanout_suite(void)
{
    Suite *s = suite_create("fanout");
    TCase *tc = tcase_create("fanout");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, subscribe_counts_and_limits);
    tcase_add_test(tc, change_reaches_its_subscribers_in_order);
    tcase_add_test(tc, snapshot_holds_back_older_changes);
    tcase_add_test(tc, version_already_delivered_is_skipped);
    tcase_add_test(tc, deleted_event_unsubscribes);
    tcase_add_test(tc, revocations_go_to_the_worker);
    tcase_add_test(tc, overrun_resyncs_from_the_table);
    tcase_add_test(tc, resync_spares_a_fresh_snapshot);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(fanout_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
