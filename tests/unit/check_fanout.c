/*
 * check_fanout.c - delivery to one worker's subscribers (fanout.c),
 * against a real registry segment and recording hooks in place of sockets
 */
#include "fanout.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static int64_t write_ms; /* how long hook_send_many takes (a slow write) */
/* batches sent, and how many of them the last flush had (the worker
 * writes what the sends queued then) */
static int nbatches, flushed;
static void let_wait(int64_t ms);

static int
hook_send_many(void *owner, struct sc_frame *const *fs, size_t n)
{
    struct fake *f = owner;

    if (write_ms > 0) {
        let_wait(write_ms - 1);
    }
    if (n > 0) {
        f->batches++;
        nbatches++;
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


static struct fake *drop_on_flush; /* its connection fails on the write */

static void
hook_flush(void *host)
{
    ck_assert_ptr_eq(host, &fan);
    flushed = nbatches;
    if (drop_on_flush != NULL) {
        sc_fanout_unsubscribe_all(&fan, &drop_on_flush->fol);
        drop_on_flush = NULL;
    }
}

static const struct sc_fanout_ops ops = {.send = hook_send,
                                         .send_many = hook_send_many,
                                         .revoked = hook_revoked,
                                         .flush = hook_flush};

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
    write_ms = 0;
    nbatches = flushed = 0;
    drop_on_flush = NULL;
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

/* A change leaving avail seats of 100: the frames are "B<v>" (booking
 * created) or "C<v>" (cancelled), if any, and "S<v>". */
static void
publish_seats(int64_t id, uint32_t kind, int64_t version, int32_t avail)
{
    struct sc_ring_msg m;
    int n = 0;

    memset(&m, 0, sizeof(m));
    m.event_id = id;
    m.version = version;
    m.kind = kind;
    m.available = avail;
    m.capacity = 100;
    if (kind == SC_CHANGE_BOOKING_CREATED ||
        kind == SC_CHANGE_BOOKING_CANCELLED) {
        n = snprintf((char *)m.frame, sizeof(m.frame), "%c%lld",
                     kind == SC_CHANGE_BOOKING_CREATED ? 'B' : 'C',
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

static void
publish(int64_t id, uint32_t kind, int64_t version)
{
    publish_seats(id, kind, version, 50);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Until what was published so far has waited more than ms in the ring. */
static void
let_wait(int64_t ms)
{
    int64_t until = mono_ms() + ms + 1;

    while (mono_ms() < until) {
        usleep(200);
    }
}

static uint64_t
merged(void)
{
    return atomic_load(&sc_registry_worker(&reg, 1)->merged);
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

/* The merged frames of event 1 as the tests expect them (no timestamp). */
#define MERGED_CREATED(avail, n)                                               \
    "{\"type\":\"booking_created\",\"eventId\":1,\"availableSeats\":" #avail    \
    n ",\"timestamp\":"
#define MERGED_CANCELLED(avail, n)                                             \
    "{\"type\":\"booking_cancelled\",\"eventId\":1,\"availableSeats\":" #avail  \
    n ",\"timestamp\":"
#define MERGED_SEATS(avail)                                                    \
    "{\"type\":\"seat_update\",\"eventId\":1,\"availableSeats\":" #avail       \
    ",\"seatCapacity\":100,\"timestamp\":"

/* The frames of got, '|'-separated, into out[] (a real text frame without
 * its 2-byte header, each cut at keep bytes): the count. */
static int
frames_of(const char *got, char out[][160], int max, size_t keep)
{
    int k = 0;

    while (*got != '\0' && k < max) {
        const char *bar = strchr(got, '|');
        size_t len = (size_t)(bar - got);
        const char *body = got;
        if (len > 2 && (unsigned char)got[0] == 0x81) {
            body += 2; /* a real text frame: skip its header */
            len -= 2;
        }
        if (len > keep) {
            len = keep;
        }
        memcpy(out[k], body, len);
        out[k++][len] = '\0';
        got = bar + 1;
    }
    return k;
}

START_TEST(changes_that_waited_are_merged)
{
    struct sc_event_entry *e = event(1, 50, 0), *e2 = event(2, 50, 0);
    struct sc_event_state st;
    struct fake a, other;
    char f[8][160];

    fake_init(&a);
    fake_init(&other);
    sc_fanout_set_max_lag(&fan, 2);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    sc_fanout_subscribe(&fan, &other.fol, e2, 2, 10, &st);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 47);
    publish_seats(1, SC_CHANGE_BOOKING_CANCELLED, 3, 48);
    publish_seats(1, SC_CHANGE_SEAT_UPDATE, 4, 58);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 5, 57);
    let_wait(2);
    /* a change of another event, not waited for: not merged */
    publish_seats(2, SC_CHANGE_BOOKING_CREATED, 1, 49);
    sc_fanout_drain(&fan);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 3);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(57, ",\"bookings\":3")), f[0]);
    ck_assert_ptr_eq(strstr(f[1], MERGED_CANCELLED(57, "")), f[1]);
    ck_assert_ptr_eq(strstr(f[2], MERGED_SEATS(57)), f[2]);
    ck_assert_int_eq(a.batches, 1);
    ck_assert_str_eq(other.got, "B1|S1|");
    ck_assert_uint_eq(merged(), 5);
    /* the ring waits were counted, the first ones over 2 ms */
    ck_assert_uint_eq(
        atomic_load(&sc_registry_worker(&reg, 1)->wait_count), 6);
    ck_assert_uint_lt(
        atomic_load(&sc_registry_worker(&reg, 1)->wait_buckets[0]), 6);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &other.fol);
}
END_TEST

START_TEST(fresh_changes_are_not_merged)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake a;

    fake_init(&a);
    sc_fanout_set_max_lag(&fan, 60000);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    publish(1, SC_CHANGE_BOOKING_CREATED, 1);
    publish(1, SC_CHANGE_BOOKING_CREATED, 2);
    sc_fanout_drain(&fan);
    ck_assert_str_eq(a.got, "B1|S1|B2|S2|");
    /* 0: never, however long they waited */
    sc_fanout_set_max_lag(&fan, 0);
    publish(1, SC_CHANGE_BOOKING_CANCELLED, 3);
    publish(1, SC_CHANGE_BOOKING_CREATED, 4);
    let_wait(2);
    sc_fanout_drain(&fan);
    ck_assert_str_eq(a.got, "B1|S1|B2|S2|C3|S3|B4|S4|");
    ck_assert_uint_eq(merged(), 0);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
}
END_TEST

START_TEST(merge_follows_the_changes_before_it)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake a;
    char f[8][160];

    fake_init(&a);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    /* one change alone in a merge: the usual shape, without "bookings" */
    sc_fanout_set_max_lag(&fan, 2);
    publish_seats(1, SC_CHANGE_BOOKING_CANCELLED, 1, 51);
    let_wait(2);
    sc_fanout_drain(&fan);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CANCELLED(51, "")), f[0]);
    ck_assert_ptr_eq(strstr(f[1], MERGED_SEATS(51)), f[1]);
    ck_assert_uint_eq(merged(), 0); /* nothing was merged with it */
    sc_fanout_unsubscribe_all(&fan, &a.fol);
}
END_TEST

START_TEST(merge_spares_what_a_snapshot_holds)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake early, mid, late;
    char f[8][160];

    fake_init(&early);
    fake_init(&mid);
    fake_init(&late);
    sc_fanout_set_max_lag(&fan, 2);
    sc_fanout_subscribe(&fan, &early.fol, e, 1, 10, &st);
    for (int v = 1; v <= 4; v++) {
        sc_registry_event_write(e, SC_EVENT_LIVE, 50 - v, 100, v);
        publish_seats(1, SC_CHANGE_BOOKING_CREATED, v, 50 - v);
        if (v == 2) {
            /* subscribes while two are on their way: holds them */
            sc_fanout_subscribe(&fan, &mid.fol, e, 1, 10, &st);
            ck_assert_int_eq(st.version, 2);
        }
    }
    sc_fanout_subscribe(&fan, &late.fol, e, 1, 10, &st);
    let_wait(2);
    sc_fanout_drain(&fan);
    ck_assert_int_eq(frames_of(early.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(46, ",\"bookings\":4")), f[0]);
    ck_assert_int_eq(frames_of(mid.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(46, ",\"bookings\":2")), f[0]);
    ck_assert_ptr_eq(strstr(f[1], MERGED_SEATS(46)), f[1]);
    ck_assert_uint_eq(late.len, 0); /* its snapshot holds all four */
    sc_fanout_unsubscribe_all(&fan, &early.fol);
    sc_fanout_unsubscribe_all(&fan, &mid.fol);
    sc_fanout_unsubscribe_all(&fan, &late.fol);
}
END_TEST

START_TEST(a_surge_sweeps_spaced_until_it_ends)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake a;
    char f[8][160];
    uint64_t due;
    int64_t began;

    fake_init(&a);
    sc_fanout_set_max_lag(&fan, 40); /* sweeps at most every 40 ms */
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    let_wait(40);
    /* waited: merged and swept at once, nothing else due */
    began = mono_ms();
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_int_eq(a.batches, 1);
    /* fresh changes of the surging event merge too, and wait for the
     * next sweep, 40 ms after the last one began */
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 3, 47);
    publish_seats(1, SC_CHANGE_BOOKING_CANCELLED, 4, 48);
    due = sc_fanout_drain(&fan);
    ck_assert_uint_ge(due, (uint64_t)began + 40);
    ck_assert_int_eq(a.batches, 1);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 5, 47);
    ck_assert_uint_eq(sc_fanout_drain(&fan), due);
    ck_assert_uint_eq(sc_fanout_sweep(&fan, due - 1), due);
    ck_assert_int_eq(a.batches, 1);
    ck_assert_uint_eq(sc_fanout_sweep(&fan, due), 0);
    ck_assert_int_eq(a.batches, 2);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 5);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, ",\"bookings\":2")), f[2]);
    ck_assert_ptr_eq(strstr(f[3], MERGED_CANCELLED(47, "")), f[3]);
    ck_assert_ptr_eq(strstr(f[4], MERGED_SEATS(47)), f[4]);
    /* one change in a sweep: the surge is over, the next goes batched */
    publish_seats(1, SC_CHANGE_SEAT_UPDATE, 6, 60);
    due = sc_fanout_drain(&fan);
    ck_assert_uint_eq(sc_fanout_sweep(&fan, due), 0);
    ck_assert_int_eq(a.batches, 3);
    publish(1, SC_CHANGE_BOOKING_CREATED, 7);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_int_eq(a.batches, 4);
    ck_assert_ptr_nonnull(strstr(a.got, "|B7|S7|"));
    sc_fanout_unsubscribe_all(&fan, &a.fol);
}
END_TEST

START_TEST(a_batch_written_too_late_starts_a_surge)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake a;
    char f[8][160];
    uint64_t due;

    fake_init(&a);
    sc_fanout_set_max_lag(&fan, 40);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    /* read after 15 ms, written 30 ms later: 45 ms after it was
     * published (a write of 30 ms alone would be in time: the next
     * changes are not merged for being foreseen late) */
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    let_wait(15);
    write_ms = 30;
    sc_fanout_drain(&fan);
    ck_assert_str_eq(a.got, "B1|S1|");
    write_ms = 0;
    /* the next changes, fresh, merge, and the first sweep goes at once
     * (they waited for that write already) */
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 3, 47);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 4);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, ",\"bookings\":2")), f[2]);
    /* the next one waits for the next sweep (--max-lag after this one
     * began: 200 ms) */
    sc_fanout_set_max_lag(&fan, 200);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 4, 46);
    due = sc_fanout_drain(&fan);
    ck_assert_uint_ne(due, 0);
    ck_assert_int_eq(a.batches, 2);
    ck_assert_uint_eq(sc_fanout_sweep(&fan, due), 0);
    ck_assert_int_eq(a.batches, 3);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
}
END_TEST

START_TEST(a_batch_that_would_be_written_too_late_is_merged)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake a;
    char f[8][160];

    fake_init(&a);
    sc_fanout_set_max_lag(&fan, 40);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    /* a write of 30 ms, in time */
    write_ms = 30;
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    sc_fanout_drain(&fan);
    ck_assert_str_eq(a.got, "B1|S1|");
    /* two changes that waited 15 ms: written as long, they would have
     * waited 45, past 40: merged and sent at once */
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 3, 47);
    let_wait(15);
    write_ms = 0;
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 4);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, ",\"bookings\":2")), f[2]);
    ck_assert_ptr_eq(strstr(f[3], MERGED_SEATS(47)), f[3]);
    ck_assert_uint_eq(merged(), 2);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
}
END_TEST

/* a, b, c and d leave event 1. */
static void
leave_four(struct fake *a, struct fake *b, struct fake *c, struct fake *d)
{
    sc_fanout_unsubscribe_all(&fan, &a->fol);
    sc_fanout_unsubscribe_all(&fan, &b->fol);
    sc_fanout_unsubscribe_all(&fan, &c->fol);
    sc_fanout_unsubscribe_all(&fan, &d->fol);
}

/* a, b, c and d follow event 1 (e), swept one at a time (d, c, b, a),
 * merging past 40 ms. */
static void
four_one_at_a_time(struct sc_event_entry *e, struct fake *a, struct fake *b,
                   struct fake *c, struct fake *d)
{
    struct fake *all[4] = {a, b, c, d};
    struct sc_event_state st;

    fan.sweep_chunk = 1;
    sc_fanout_set_max_lag(&fan, 40);
    for (int i = 0; i < 4; i++) {
        fake_init(all[i]);
        sc_fanout_subscribe(&fan, &all[i]->fol, e, 1, 10, &st);
    }
}

START_TEST(a_sweep_in_progress_takes_the_changes_that_come_meanwhile)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct fake a, b, c, d;
    char f[8][160];
    uint64_t due;

    four_one_at_a_time(e, &a, &b, &c, &d);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    let_wait(40);
    /* the sweep begins: d only, and the worker is asked back at once */
    due = sc_fanout_drain(&fan);
    ck_assert_uint_ne(due, 0);
    ck_assert_uint_le(due, (uint64_t)mono_ms());
    ck_assert_int_eq(d.batches, 1);
    ck_assert_int_eq(c.batches + b.batches + a.batches, 0);
    /* a change comes meanwhile: the subscribers not written yet get it
     * too, in the same sums; the one the sweep was to write next leaves */
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 3, 47);
    sc_fanout_unsubscribe_all(&fan, &c.fol);
    sc_fanout_drain(&fan);
    ck_assert_int_eq(b.batches, 1);
    ck_assert_int_eq(a.batches, 0);
    due = sc_fanout_sweep(&fan, (uint64_t)mono_ms());
    ck_assert_int_eq(a.batches, 1);
    ck_assert_str_eq(a.got, b.got);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(47, ",\"bookings\":3")), f[0]);
    ck_assert_ptr_eq(strstr(f[1], MERGED_SEATS(47)), f[1]);
    /* the sweep ended; the next, spaced, brings d the third alone */
    ck_assert_uint_gt(due, (uint64_t)mono_ms());
    ck_assert_int_eq(d.batches, 1);
    while (due != 0) {
        due = sc_fanout_sweep(&fan, due);
    }
    ck_assert_int_eq(d.batches, 2);
    ck_assert_int_eq(frames_of(d.got, f, 8, sizeof(f[0]) - 1), 4);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(48, ",\"bookings\":2")), f[0]);
    ck_assert_ptr_eq(strstr(f[1], MERGED_SEATS(48)), f[1]);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, "")), f[2]);
    ck_assert_ptr_eq(strstr(f[3], MERGED_SEATS(47)), f[3]);
    ck_assert_int_eq(a.batches + b.batches, 2); /* nothing twice */
    /* one change in that sweep: the surge is over */
    publish(1, SC_CHANGE_BOOKING_CREATED, 4);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_ptr_nonnull(strstr(a.got, "|B4|S4|"));
    ck_assert_ptr_nonnull(strstr(d.got, "|B4|S4|"));
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &b.fol);
    sc_fanout_unsubscribe_all(&fan, &d.fol);
}
END_TEST

/* a follows event 1 (e), which surges (two changes merged and sent) and
 * holds a third change (seats 47) for its next sweep. */
static void
surge_held(struct sc_event_entry *e, struct fake *a)
{
    struct sc_event_state st;

    fake_init(a);
    sc_fanout_set_max_lag(&fan, 40);
    sc_fanout_subscribe(&fan, &a->fol, e, 1, 10, &st);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    let_wait(40);
    sc_fanout_drain(&fan);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 3, 47);
}

#define CREATED_49                                                             \
    "{\"type\":\"booking_created\",\"eventId\":2,\"availableSeats\":49,"
#define SEATS_49                                                               \
    "{\"type\":\"seat_update\",\"eventId\":2,\"availableSeats\":49,"

START_TEST(a_large_event_is_first_sent_a_chunk_at_a_time)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_event_state st;
    struct fake a, b, c, d;
    char f[8][160];
    uint64_t due;

    fake_init(&a);
    fake_init(&b);
    fake_init(&c);
    fake_init(&d);
    fan.sweep_chunk = 2;
    sc_fanout_set_max_lag(&fan, 40);
    sc_fanout_subscribe(&fan, &a.fol, e, 1, 10, &st);
    sc_fanout_subscribe(&fan, &b.fol, e, 1, 10, &st);
    /* two subscribers written at 15 ms each: 30 ms, in time; it was a
     * large sending (a whole chunk): 15 ms per subscriber from now on */
    write_ms = 15;
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_str_eq(a.got, "B1|S1|");
    ck_assert_str_eq(b.got, "B1|S1|");
    ck_assert_int_eq(flushed, 2); /* written before it was timed */
    ck_assert_uint_ge(fan.sub_us, 13000);
    write_ms = 0;
    /* four subscribers of an event never sent: 60 ms foreseen, past
     * 40: its first change goes out by a sweep, two subscribers at a
     * time, each chunk written before the next is addressed */
    struct sc_event_entry *e2 = event(2, 50, 0);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &b.fol);
    sc_fanout_subscribe(&fan, &a.fol, e2, 2, 10, &st);
    sc_fanout_subscribe(&fan, &b.fol, e2, 2, 10, &st);
    sc_fanout_subscribe(&fan, &c.fol, e2, 2, 10, &st);
    sc_fanout_subscribe(&fan, &d.fol, e2, 2, 10, &st);
    a.len = b.len = 0;
    publish_seats(2, SC_CHANGE_BOOKING_CREATED, 1, 49);
    due = sc_fanout_drain(&fan);
    ck_assert_uint_ne(due, 0);
    ck_assert_uint_le(due, (uint64_t)mono_ms());
    ck_assert_int_eq(d.batches + c.batches, 2);
    ck_assert_int_eq(b.batches + a.batches, 2); /* the first event's */
    ck_assert_int_eq(flushed, nbatches);
    /* a change alone is the same message, merged or not: nothing is
     * counted as merged */
    ck_assert_int_eq(frames_of(d.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], CREATED_49), f[0]);
    ck_assert_ptr_eq(strstr(f[1], SEATS_49), f[1]);
    sc_fanout_sweep(&fan, due);
    ck_assert_int_eq(a.batches + b.batches, 4);
    ck_assert_int_eq(flushed, nbatches);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], CREATED_49), f[0]);
    ck_assert_ptr_eq(strstr(f[1], SEATS_49), f[1]);
    ck_assert_uint_eq(merged(), 0);
    leave_four(&a, &b, &c, &d);
}
END_TEST

START_TEST(a_sending_goes_on_past_a_subscriber_its_writes_dropped)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct fake a, b, c, d;

    four_one_at_a_time(e, &a, &b, &c, &d);
    /* written a chunk at a time; c, the next after d, fails when d's
     * chunk is written */
    drop_on_flush = &c;
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_str_eq(d.got, "B1|S1|");
    ck_assert_int_eq(c.batches, 0);
    ck_assert_str_eq(b.got, "B1|S1|");
    ck_assert_str_eq(a.got, "B1|S1|");
    ck_assert_uint_eq(worker_subs(), 3);
    leave_four(&a, &b, &c, &d);
}
END_TEST

START_TEST(a_sending_foreseen_late_midway_is_finished_by_a_sweep)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct fake a, b, c, d;
    char f[8][160];
    uint64_t due;

    four_one_at_a_time(e, &a, &b, &c, &d);
    /* four subscribers at 10 us foreseen: 0 ms, sent as they are; but
     * the first takes 12 ms, so the four would take 48, past 40 */
    write_ms = 12;
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    due = sc_fanout_drain(&fan);
    ck_assert_str_eq(d.got, "B1|S1|B2|S2|");
    ck_assert_int_eq(flushed, nbatches); /* timed once written */
    /* a sweep finishes it, at once: c, the next, has their sums */
    ck_assert_uint_ne(due, 0);
    ck_assert_uint_le(due, (uint64_t)mono_ms());
    ck_assert_int_eq(c.batches, 1);
    ck_assert_int_eq(frames_of(c.got, f, 8, sizeof(f[0]) - 1), 2);
    ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(48, ",\"bookings\":2")), f[0]);
    ck_assert_ptr_eq(strstr(f[1], MERGED_SEATS(48)), f[1]);
    ck_assert_int_eq(b.batches + a.batches, 0);
    /* a third change comes meanwhile: b and a get the three summed */
    write_ms = 0;
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 3, 47);
    due = sc_fanout_drain(&fan);
    ck_assert_int_eq(b.batches, 1);
    while (a.batches == 0) {
        due = sc_fanout_sweep(&fan, due);
    }
    for (struct fake *x = &a; x != NULL; x = x == &a ? &b : NULL) {
        ck_assert_int_eq(frames_of(x->got, f, 8, sizeof(f[0]) - 1), 2);
        ck_assert_ptr_eq(strstr(f[0], MERGED_CREATED(47, ",\"bookings\":3")),
                         f[0]);
        ck_assert_ptr_eq(strstr(f[1], MERGED_SEATS(47)), f[1]);
    }
    /* the next sweep brings d and c the third alone: d's first two were
     * written by the sending, not summed again */
    while (due != 0) {
        due = sc_fanout_sweep(&fan, due);
    }
    ck_assert_int_eq(frames_of(d.got, f, 8, sizeof(f[0]) - 1), 6);
    ck_assert_ptr_eq(strstr(f[4], MERGED_CREATED(47, "")), f[4]);
    ck_assert_ptr_eq(strstr(f[5], MERGED_SEATS(47)), f[5]);
    ck_assert_int_eq(frames_of(c.got, f, 8, sizeof(f[0]) - 1), 4);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, "")), f[2]);
    ck_assert_int_eq(a.batches + b.batches, 2);
    ck_assert_uint_eq(merged(), 2);
    leave_four(&a, &b, &c, &d);
}
END_TEST

/* What worker w says of its sweeps. */
static void
say_front(unsigned w, uint64_t front, uint64_t said)
{
    struct sc_worker_slot *slot = sc_registry_worker(&reg, w);

    atomic_store(&slot->sweep_front_ms, front);
    atomic_store(&slot->sweep_said_ms, said);
}

/* a and b follow event 1 (e), whose sweep of two merged changes has
 * written b, one subscriber at a time; returns the time before the first
 * change was published. */
static uint64_t
swept_one_of_two(struct sc_event_entry *e, struct fake *a, struct fake *b)
{
    struct sc_event_state st;
    uint64_t before;

    fake_init(a);
    fake_init(b);
    fan.sweep_chunk = 1;
    sc_fanout_set_max_lag(&fan, 40);
    sc_fanout_subscribe(&fan, &a->fol, e, 1, 10, &st);
    sc_fanout_subscribe(&fan, &b->fol, e, 1, 10, &st);
    before = (uint64_t)mono_ms();
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 1, 49);
    publish_seats(1, SC_CHANGE_BOOKING_CREATED, 2, 48);
    let_wait(40);
    sc_fanout_drain(&fan);
    ck_assert_int_eq(b->batches, 1);
    ck_assert_int_eq(a->batches, 0);
    return before;
}

START_TEST(a_sweep_waits_its_turn_for_a_worker_further_behind)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_worker_slot *mine = sc_registry_worker(&reg, 1);
    struct fake a, b;
    uint64_t before = swept_one_of_two(e, &a, &b), front, now;

    /* it says its front: a lacks the first change since it was
     * published (before the 40 ms wait) */
    front = atomic_load(&mine->sweep_front_ms);
    ck_assert_uint_ge(front, before);
    ck_assert_uint_lt(front, before + 40);
    /* worker 0 is further behind, said just now: on one core, a waits,
     * a millisecond at a time */
    now = (uint64_t)mono_ms();
    say_front(0, front - SC_FANOUT_TURN_MS - 1, now);
    fan.cores = 1;
    ck_assert_uint_eq(sc_fanout_sweep(&fan, now), now + 1);
    ck_assert_uint_eq(sc_fanout_sweep(&fan, now + 1), now + 2);
    ck_assert_int_eq(a.batches, 0);
    ck_assert_uint_eq(atomic_load(&mine->sweep_turns), 2);
    /* said too long ago (a worker stopped mid-sweep): no more waiting */
    now = (uint64_t)mono_ms() + SC_FANOUT_TURN_FRESH_MS;
    ck_assert_uint_ne(sc_fanout_sweep(&fan, now), now + 1);
    ck_assert_int_eq(a.batches, 1);
    /* the sweep ended: nothing to say, nobody waits for it */
    ck_assert_uint_eq(atomic_load(&mine->sweep_front_ms), 0);
    ck_assert_uint_eq(atomic_load(&mine->sweep_turns), 2);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &b.fol);
}
END_TEST

/* Worker 0's sweeps are `lead` ms further behind; on `cores` cores the
 * sweep in progress goes on. */
static void
sweeps_on_with(uint64_t lead, uint32_t cores)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct sc_worker_slot *mine = sc_registry_worker(&reg, 1);
    struct fake a, b;
    uint64_t now;

    swept_one_of_two(e, &a, &b);
    fan.cores = cores;
    now = (uint64_t)mono_ms();
    say_front(0, atomic_load(&mine->sweep_front_ms) - lead, now);
    sc_fanout_sweep(&fan, now);
    ck_assert_int_eq(a.batches, 1);
    ck_assert_uint_eq(atomic_load(&mine->sweep_turns), 0);
    sc_fanout_unsubscribe_all(&fan, &a.fol);
    sc_fanout_unsubscribe_all(&fan, &b.fol);
}

START_TEST(a_worker_behind_by_little_does_not_wait)
{
    sweeps_on_with(SC_FANOUT_TURN_MS, 1); /* not more */
}
END_TEST

START_TEST(as_many_workers_as_cores_never_wait)
{
    sweeps_on_with(SC_FANOUT_TURN_MS + 1, 2); /* worker 0 has the other */
}
END_TEST

START_TEST(a_deletion_sends_the_held_merge_first)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct fake a;
    char f[8][160];

    surge_held(e, &a);
    ck_assert_uint_ne(sc_fanout_drain(&fan), 0); /* held */
    ck_assert_int_eq(a.batches, 1);
    publish(1, SC_CHANGE_EVENT_DELETED, 4);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 5);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, "")), f[2]);
    ck_assert_ptr_eq(strstr(f[4], "{\"type\":\"unsubscribed\""), f[4]);
    ck_assert_uint_eq(worker_subs(), 0);
}
END_TEST

START_TEST(turning_merging_off_sends_the_held_merge_first)
{
    struct sc_event_entry *e = event(1, 50, 0);
    struct fake a;
    char f[8][160];

    surge_held(e, &a);
    ck_assert_uint_ne(sc_fanout_drain(&fan), 0);
    sc_fanout_set_max_lag(&fan, 0); /* a reload */
    publish(1, SC_CHANGE_BOOKING_CREATED, 4);
    ck_assert_uint_eq(sc_fanout_drain(&fan), 0);
    ck_assert_int_eq(frames_of(a.got, f, 8, sizeof(f[0]) - 1), 6);
    ck_assert_ptr_eq(strstr(f[2], MERGED_CREATED(47, "")), f[2]);
    ck_assert_str_eq(f[4], "B4");
    ck_assert_str_eq(f[5], "S4");
    sc_fanout_unsubscribe_all(&fan, &a.fol);
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
    tcase_add_test(tc, changes_that_waited_are_merged);
    tcase_add_test(tc, fresh_changes_are_not_merged);
    tcase_add_test(tc, merge_follows_the_changes_before_it);
    tcase_add_test(tc, merge_spares_what_a_snapshot_holds);
    tcase_add_test(tc, a_surge_sweeps_spaced_until_it_ends);
    tcase_add_test(tc, a_batch_written_too_late_starts_a_surge);
    tcase_add_test(tc, a_batch_that_would_be_written_too_late_is_merged);
    tcase_add_test(tc, a_sweep_in_progress_takes_the_changes_that_come_meanwhile);
    tcase_add_test(tc, a_large_event_is_first_sent_a_chunk_at_a_time);
    tcase_add_test(tc, a_sending_goes_on_past_a_subscriber_its_writes_dropped);
    tcase_add_test(tc, a_sending_foreseen_late_midway_is_finished_by_a_sweep);
    tcase_add_test(tc, a_sweep_waits_its_turn_for_a_worker_further_behind);
    tcase_add_test(tc, a_worker_behind_by_little_does_not_wait);
    tcase_add_test(tc, as_many_workers_as_cores_never_wait);
    tcase_add_test(tc, a_deletion_sends_the_held_merge_first);
    tcase_add_test(tc, turning_merging_off_sends_the_held_merge_first);
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
