/*
 * check_wheel.c - the timer wheel (wheel.c): items come up in the second
 * they are due, never early, never twice, and a lap later stays later
 */
#include "wheel.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct item {
    struct sc_wheel_node n;
    int fired;
    uint64_t at;     /* now_ms of the run that fired it */
    uint64_t refile; /* if not 0: file again at this ms when fired */
};

static struct sc_wheel wh;

static void
on_fire(struct sc_wheel_node *n, uint64_t now, void *arg)
{
    struct item *it = (struct item *)(void *)n;

    (void)arg;
    it->fired++;
    it->at = now;
    if (it->refile != 0) {
        uint64_t r = it->refile;
        it->refile = 0;
        sc_wheel_file(&wh, n, r);
    }
}

static void
setup(void)
{
    memset(&wh, 0, sizeof(wh));
    sc_wheel_run(&wh, 100000, on_fire, NULL); /* t = 100 s handled */
}

START_TEST(fires_in_its_second)
{
    struct item a = {0};

    sc_wheel_file(&wh, &a.n, 103500); /* second 103 */
    sc_wheel_run(&wh, 102999, on_fire, NULL);
    ck_assert_int_eq(a.fired, 0);
    sc_wheel_run(&wh, 103000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
    ck_assert_uint_eq(a.n.due_s, 0);
    sc_wheel_run(&wh, 110000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
}
END_TEST

START_TEST(past_due_goes_to_the_next_second)
{
    struct item a = {0};

    sc_wheel_file(&wh, &a.n, 5000); /* long past: the next second */
    ck_assert_uint_eq(a.n.due_s, 101);
    sc_wheel_run(&wh, 101000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
}
END_TEST

START_TEST(a_lap_later_waits)
{
    struct item a = {0}, b = {0};

    /* same slot, one lap apart */
    sc_wheel_file(&wh, &a.n, (101 + SC_WHEEL_SLOTS) * 1000ULL);
    sc_wheel_file(&wh, &b.n, 101000);
    sc_wheel_run(&wh, 101000, on_fire, NULL);
    ck_assert_int_eq(b.fired, 1);
    ck_assert_int_eq(a.fired, 0);
    ck_assert_uint_eq(a.n.due_s, 101 + SC_WHEEL_SLOTS);
    sc_wheel_run(&wh, (100 + SC_WHEEL_SLOTS) * 1000ULL, on_fire, NULL);
    ck_assert_int_eq(a.fired, 0);
    sc_wheel_run(&wh, (101 + SC_WHEEL_SLOTS) * 1000ULL, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
}
END_TEST

START_TEST(removed_never_fires)
{
    struct item a = {0}, b = {0}, c = {0};

    sc_wheel_file(&wh, &a.n, 102000);
    sc_wheel_file(&wh, &b.n, 102000);
    sc_wheel_file(&wh, &c.n, 102000);
    sc_wheel_remove(&wh, &b.n);
    sc_wheel_remove(&wh, &b.n); /* harmless twice */
    sc_wheel_run(&wh, 103000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
    ck_assert_int_eq(b.fired, 0);
    ck_assert_int_eq(c.fired, 1);
}
END_TEST

START_TEST(refiled_moves)
{
    struct item a = {0};

    sc_wheel_file(&wh, &a.n, 102000);
    sc_wheel_file(&wh, &a.n, 105000); /* moved: only the new second */
    sc_wheel_run(&wh, 104000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 0);
    sc_wheel_run(&wh, 105000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
}
END_TEST

START_TEST(refiled_from_the_callback_not_again_now)
{
    struct item a = {.refile = 102000}; /* asks for the second it fired in */

    sc_wheel_file(&wh, &a.n, 102000);
    sc_wheel_run(&wh, 102000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 1);
    ck_assert_uint_eq(a.n.due_s, 103); /* the next second, not this one */
    sc_wheel_run(&wh, 103000, on_fire, NULL);
    ck_assert_int_eq(a.fired, 2);
}
END_TEST

START_TEST(long_pause_fires_everything)
{
    struct item it[SC_WHEEL_SLOTS];

    memset(it, 0, sizeof(it));
    for (int i = 0; i < SC_WHEEL_SLOTS; i++) {
        sc_wheel_file(&wh, &it[i].n, (101 + (uint64_t)i) * 1000);
    }
    /* the loop was stopped for ten minutes */
    sc_wheel_run(&wh, 700000, on_fire, NULL);
    for (int i = 0; i < SC_WHEEL_SLOTS; i++) {
        ck_assert_int_eq(it[i].fired, 1);
        ck_assert_uint_eq(it[i].at, 700000);
    }
}
END_TEST

static Suite *
wheel_suite(void)
{
    Suite *s = suite_create("wheel");
    TCase *tc = tcase_create("wheel");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, fires_in_its_second);
    tcase_add_test(tc, past_due_goes_to_the_next_second);
    tcase_add_test(tc, a_lap_later_waits);
    tcase_add_test(tc, removed_never_fires);
    tcase_add_test(tc, refiled_moves);
    tcase_add_test(tc, refiled_from_the_callback_not_again_now);
    tcase_add_test(tc, long_pause_fires_everything);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(wheel_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
