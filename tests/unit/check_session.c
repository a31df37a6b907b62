/*
 * check_session.c - the client protocol's decisions (session.c), one case
 * per row of docs/PROTOCOL.md sections 3 to 5 that a session decides
 */
#include "session.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_req.h"
#include "jwt.h"

#define SECRET "check-session-secret-0123456789-0123456789-0123456789-0123456789"
#define WALL 1769882700123ULL /* 2026-01-31T18:05:00.123Z */
#define T0 1000000ULL         /* a monotonic start */

static const struct sc_session_limits lim = {.max_message_rate = 5,
                                             .max_subscriptions = 3,
                                             .jwt_leeway = 5,
                                             .jwt_issuer = "",
                                             .jwt_audience = ""};

static struct sc_session s;
static struct sc_session_action act;

static void
setup(void)
{
    sc_session_init(&s, &lim, T0);
}

static void
teardown(void)
{
    sc_session_fini(&s);
}

static void
msg(const char *text, uint64_t now)
{
    sc_session_on_message(&s, &lim, (const uint8_t *)text, strlen(text), now,
                          WALL, &act);
}

/* The reply of the last action, NUL-terminated. */
static const char *
reply_text(void)
{
    static char out[SC_PROTO_MSG_MAX + 1];

    ck_assert_int_ge(act.len, 0);
    memcpy(out, act.reply, (size_t)act.len);
    out[act.len] = '\0';
    return out;
}

static void
assert_error(const char *code, const char *message)
{
    char want[256];

    ck_assert_int_eq(act.what, SC_SESSION_REPLY);
    snprintf(want, sizeof(want),
             "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\","
             "\"timestamp\":\"2026-01-31T18:05:00.123Z\"}",
             code, message);
    ck_assert_str_eq(reply_text(), want);
}

/* A session started with a token of these claims (JSON). */
static void
start_with(const char *claims_json)
{
    struct sc_jwt_keys *k = sc_jwt_keys_new((const uint8_t *)SECRET,
                                            strlen(SECRET), NULL, 0, NULL, 0);
    struct sc_jwt_claims cl;
    char tok[1024];
    const char *why = NULL;
    long n = sc_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET),
                               claims_json, tok, sizeof(tok));

    ck_assert_ptr_nonnull(k);
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_null(sc_session_verify(k, &lim, true, false, tok,
                                         (size_t)n, WALL, &cl, &why));
    ck_assert_int_eq(sc_session_start(&s, &cl, 42), 0);
    sc_jwt_claims_fini(&cl);
    sc_jwt_keys_free(k);
}

/* ------------------------------------------------------------------ */
/* Section 4: messages                                                  */

START_TEST(ping_gets_pong)
{
    msg("{\"type\":\"ping\"}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_REPLY);
    ck_assert_str_eq(reply_text(), "{\"type\":\"pong\",\"timestamp\":"
                                   "\"2026-01-31T18:05:00.123Z\"}");
    ck_assert(!act.rate_limited);
}
END_TEST

START_TEST(subscribe_asks_to_subscribe)
{
    msg("{\"type\":\"subscribe_event\",\"eventId\":123}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_SUBSCRIBE);
    ck_assert_uint_eq(act.event_id, 123);
}
END_TEST

START_TEST(subscribe_string_id)
{
    msg("{\"type\":\"subscribe_event\",\"eventId\":\"77\"}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_SUBSCRIBE);
    ck_assert_uint_eq(act.event_id, 77);
}
END_TEST

START_TEST(unsubscribe_always_answers)
{
    msg("{\"type\":\"unsubscribe_event\",\"eventId\":9}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_UNSUBSCRIBE);
    ck_assert_uint_eq(act.event_id, 9);
    ck_assert_str_eq(reply_text(),
                     "{\"type\":\"unsubscribed\",\"eventId\":9,\"timestamp\":"
                     "\"2026-01-31T18:05:00.123Z\"}");
}
END_TEST

START_TEST(get_stats_asks_for_totals)
{
    msg("{\"type\":\"get_stats\"}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_STATS);
}
END_TEST

START_TEST(invalid_json)
{
    msg("not json", T0);
    assert_error("invalid_json", "Invalid message format");
    msg("[1,2]", T0);
    assert_error("invalid_json", "Invalid message format");
    msg("{\"eventId\":1}", T0);
    assert_error("invalid_json", "Invalid message format");
}
END_TEST

START_TEST(unknown_type)
{
    msg("{\"type\":\"dance\"}", T0);
    assert_error("unknown_type", "Unknown message type: dance");
}
END_TEST

START_TEST(missing_field)
{
    msg("{\"type\":\"subscribe_event\"}", T0);
    assert_error("missing_field", "Missing required field: eventId");
}
END_TEST

START_TEST(invalid_field)
{
    msg("{\"type\":\"subscribe_event\",\"eventId\":0}", T0);
    assert_error("invalid_field", "Invalid eventId");
    msg("{\"type\":\"subscribe_event\",\"eventId\":9007199254740992}", T0);
    assert_error("invalid_field", "Invalid eventId");
}
END_TEST

START_TEST(not_found)
{
    sc_session_subscribe_refused(SC_SESSION_SUB_NOT_FOUND, 123, WALL, &act);
    assert_error("not_found", "Event 123 not found");
}
END_TEST

START_TEST(subscription_limit)
{
    sc_session_subscribe_refused(SC_SESSION_SUB_LIMIT, 5, WALL, &act);
    assert_error("limit_exceeded", "Subscription limit reached");
    sc_session_subscribe_refused(SC_SESSION_SUB_NOMEM, 5, WALL, &act);
    assert_error("limit_exceeded", "Subscription limit reached");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Section 3: the token                                                 */

START_TEST(events_claim_forbids_others)
{
    start_with("{\"sub\":\"u1\",\"events\":[7,\"8\"]}");
    msg("{\"type\":\"subscribe_event\",\"eventId\":7}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_SUBSCRIBE);
    msg("{\"type\":\"subscribe_event\",\"eventId\":8}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_SUBSCRIBE);
    msg("{\"type\":\"subscribe_event\",\"eventId\":9}", T0);
    assert_error("forbidden", "Access to event 9 denied");
    /* the route /ws/events/{id} follows the same claim */
    sc_session_open_event(&s, 9, WALL, &act);
    assert_error("forbidden", "Access to event 9 denied");
    sc_session_open_event(&s, 7, WALL, &act);
    ck_assert_int_eq(act.what, SC_SESSION_SUBSCRIBE);
    ck_assert_uint_eq(act.event_id, 7);
}
END_TEST

START_TEST(empty_events_claim_forbids_all)
{
    start_with("{\"sub\":\"u1\",\"events\":[]}");
    msg("{\"type\":\"subscribe_event\",\"eventId\":1}", T0);
    assert_error("forbidden", "Access to event 1 denied");
}
END_TEST

START_TEST(no_events_claim_allows_all)
{
    start_with("{\"sub\":\"u1\"}");
    ck_assert_ptr_null(s.claims); /* nothing kept per connection */
    msg("{\"type\":\"subscribe_event\",\"eventId\":31337}", T0);
    ck_assert_int_eq(act.what, SC_SESSION_SUBSCRIBE);
    ck_assert_uint_eq(s.jti_hash, 42);
}
END_TEST

START_TEST(no_token_is_authentication_required)
{
    struct sc_jwt_claims cl;
    const char *why = NULL;

    ck_assert_str_eq(sc_session_verify(NULL, &lim, false, false, NULL, 0,
                                       WALL, &cl, &why),
                     "Authentication required");
    ck_assert_str_eq(why, "no token");
}
END_TEST

START_TEST(too_long_token_is_invalid)
{
    struct sc_jwt_claims cl;
    const char *why = NULL;

    ck_assert_str_eq(sc_session_verify(NULL, &lim, true, true, NULL, 0, WALL,
                                       &cl, &why),
                     "Invalid token");
    ck_assert_str_eq(why, "token too long");
}
END_TEST

START_TEST(bad_signature_is_invalid)
{
    struct sc_jwt_keys *k = sc_jwt_keys_new((const uint8_t *)SECRET,
                                            strlen(SECRET), NULL, 0, NULL, 0);
    struct sc_jwt_claims cl;
    char tok[1024];
    const char *why = NULL;
    long n = sc_jwt_sign_hs256((const uint8_t *)"another secret", 14,
                               "{\"sub\":\"u\"}", tok, sizeof(tok));

    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(sc_session_verify(k, &lim, true, false, tok, (size_t)n,
                                       WALL, &cl, &why),
                     "Invalid token");
    ck_assert_str_eq(why, "signature mismatch");
    ck_assert_ptr_null(cl.events);
    sc_jwt_keys_free(k);
}
END_TEST

START_TEST(token_expiry_with_leeway)
{
    char claims[128];
    int64_t exp = (int64_t)(WALL / 1000) + 60;

    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}",
             (long long)exp);
    start_with(claims);
    ck_assert(!sc_session_expired(&s, &lim, WALL));
    /* the leeway (5 s) counts after exp */
    ck_assert(!sc_session_expired(&s, &lim, (uint64_t)(exp + 4) * 1000));
    ck_assert(sc_session_expired(&s, &lim, (uint64_t)(exp + 5) * 1000));
    /* due in 60 s + 5 s of leeway, less the 123 ms past the second */
    ck_assert_uint_eq(sc_session_expiry_due(&s, &lim, T0, WALL),
                      T0 + 65000 - 123);
}
END_TEST

START_TEST(no_exp_never_expires)
{
    start_with("{\"sub\":\"u\"}");
    ck_assert(!sc_session_expired(&s, &lim, UINT64_MAX / 2));
    ck_assert_uint_eq(sc_session_expiry_due(&s, &lim, T0, WALL), UINT64_MAX);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Section 5: the rate limit                                            */

START_TEST(burst_of_twice_the_rate)
{
    /* rate 5/s: a full bucket lets 10 through at once, not 11 */
    for (int i = 0; i < 10; i++) {
        msg("{\"type\":\"ping\"}", T0);
        ck_assert_msg(!act.rate_limited, "message %d refused", i);
    }
    msg("{\"type\":\"ping\"}", T0);
    ck_assert(act.rate_limited);
    assert_error("rate_limited", "Too many messages");
    /* however long the client was quiet, the bucket holds two seconds */
    for (int i = 0; i < 10; i++) {
        msg("{\"type\":\"ping\"}", T0 + 60000);
        ck_assert_msg(!act.rate_limited, "message %d refused", i);
    }
    msg("{\"type\":\"ping\"}", T0 + 60000);
    ck_assert(act.rate_limited);
}
END_TEST

START_TEST(bucket_refills_at_the_rate)
{
    for (int i = 0; i < 10; i++) {
        msg("{\"type\":\"ping\"}", T0);
    }
    msg("{\"type\":\"ping\"}", T0 + 199);
    ck_assert(act.rate_limited);
    /* 5 per second: one message every 200 ms */
    msg("{\"type\":\"ping\"}", T0 + 200);
    ck_assert(!act.rate_limited);
    ck_assert_int_eq(act.what, SC_SESSION_REPLY);
}
END_TEST

START_TEST(flood_closes_after_two_seconds)
{
    uint64_t t, closed_at = 0;

    for (int i = 0; i < 10; i++) {
        msg("{\"type\":\"ping\"}", T0);
    }
    /* a message every 10 ms from T0 on: refused (the first at T0) but for
     * one in 20 as the bucket refills, which does not end the flood */
    for (t = T0; t <= T0 + 3000 && closed_at == 0; t += 10) {
        msg("{\"type\":\"ping\"}", t);
        if (act.what == SC_SESSION_CLOSE) {
            closed_at = t;
            ck_assert(act.rate_limited);
            ck_assert_uint_eq(act.close_code, 1008);
            ck_assert_str_eq(act.close_reason, "Rate limit exceeded");
        } else if (act.rate_limited) {
            assert_error("rate_limited", "Too many messages");
        }
    }
    ck_assert_uint_ge(closed_at, T0 + 2000);
    ck_assert_uint_le(closed_at, T0 + 2010);
}
END_TEST

START_TEST(quiet_second_ends_a_flood)
{
    for (int i = 0; i < 11; i++) {
        msg("{\"type\":\"ping\"}", T0);
    }
    ck_assert(act.rate_limited);
    ck_assert_uint_eq(s.flood_since_ms, T0);
    /* a message let through half a second later does not end it */
    msg("{\"type\":\"ping\"}", T0 + 500);
    ck_assert(!act.rate_limited);
    ck_assert_uint_eq(s.flood_since_ms, T0);
    /* a second without a refusal: the next message ends the flood */
    msg("{\"type\":\"ping\"}", T0 + 1000);
    ck_assert(!act.rate_limited);
    ck_assert_uint_eq(s.flood_since_ms, 0);
    /* and refusals start a new one, with 2 s again */
    for (int i = 0; i < 20; i++) {
        msg("{\"type\":\"ping\"}", T0 + 1000);
    }
    ck_assert_int_eq(act.what, SC_SESSION_REPLY);
    ck_assert_uint_eq(s.flood_since_ms, T0 + 1000);
}
END_TEST

START_TEST(refused_message_is_not_handled)
{
    for (int i = 0; i < 10; i++) {
        msg("{\"type\":\"ping\"}", T0);
    }
    msg("{\"type\":\"subscribe_event\",\"eventId\":5}", T0);
    ck_assert(act.rate_limited);
    ck_assert_int_ne(act.what, SC_SESSION_SUBSCRIBE);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Section 2: requests that cannot be parsed                            */

START_TEST(http_malformed_is_400)
{
    char out[512];
    int status = 0;
    long n = sc_session_http_error(SC_HTTP_EBAD, out, sizeof(out), &status);

    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(status, 400);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 400 "));
    ck_assert_ptr_nonnull(strstr(out, "{\"error\":\"malformed request\"}"));
}
END_TEST

START_TEST(http_head_too_large_is_431)
{
    char out[512];
    int status = 0;
    long n =
        sc_session_http_error(SC_HTTP_ETOOBIG, out, sizeof(out), &status);

    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(status, 431);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 431 "));
    ck_assert_ptr_nonnull(strstr(out, "{\"error\":\"headers too large\"}"));
}
END_TEST

static Suite *
session_suite(void)
{
    Suite *su = suite_create("session");
    TCase *tm = tcase_create("messages");
    TCase *ta = tcase_create("token");
    TCase *tr = tcase_create("rate");
    TCase *th = tcase_create("http");

    tcase_add_checked_fixture(tm, setup, teardown);
    tcase_add_test(tm, ping_gets_pong);
    tcase_add_test(tm, subscribe_asks_to_subscribe);
    tcase_add_test(tm, subscribe_string_id);
    tcase_add_test(tm, unsubscribe_always_answers);
    tcase_add_test(tm, get_stats_asks_for_totals);
    tcase_add_test(tm, invalid_json);
    tcase_add_test(tm, unknown_type);
    tcase_add_test(tm, missing_field);
    tcase_add_test(tm, invalid_field);
    tcase_add_test(tm, not_found);
    tcase_add_test(tm, subscription_limit);
    suite_add_tcase(su, tm);

    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_add_test(ta, events_claim_forbids_others);
    tcase_add_test(ta, empty_events_claim_forbids_all);
    tcase_add_test(ta, no_events_claim_allows_all);
    tcase_add_test(ta, no_token_is_authentication_required);
    tcase_add_test(ta, too_long_token_is_invalid);
    tcase_add_test(ta, bad_signature_is_invalid);
    tcase_add_test(ta, token_expiry_with_leeway);
    tcase_add_test(ta, no_exp_never_expires);
    suite_add_tcase(su, ta);

    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_add_test(tr, burst_of_twice_the_rate);
    tcase_add_test(tr, bucket_refills_at_the_rate);
    tcase_add_test(tr, flood_closes_after_two_seconds);
    tcase_add_test(tr, quiet_second_ends_a_flood);
    tcase_add_test(tr, refused_message_is_not_handled);
    suite_add_tcase(su, tr);

    tcase_add_test(th, http_malformed_is_400);
    tcase_add_test(th, http_head_too_large_is_431);
    suite_add_tcase(su, th);
    return su;
}

int
main(void)
{
    SRunner *sr = srunner_create(session_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
