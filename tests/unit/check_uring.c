/*
 * check_uring.c - batched socket writes through io_uring (uring.c),
 * against real sockets (socketpair)
 */
#include "uring.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXR 64

static struct sc_uring u;
static uint64_t tags[MAXR];
static int32_t results[MAXR];
static int nresults;

static void
done(void *arg, uint64_t tag, int32_t res)
{
    ck_assert_ptr_eq(arg, &u);
    ck_assert_int_lt(nresults, MAXR);
    tags[nresults] = tag;
    results[nresults++] = res;
}

/* The result for tag (each must come exactly once). */
static int32_t
result_of(uint64_t tag)
{
    int found = -1;

    for (int i = 0; i < nresults; i++) {
        if (tags[i] == tag) {
            ck_assert_int_eq(found, -1);
            found = i;
        }
    }
    ck_assert_int_ne(found, -1);
    return results[found];
}

static void
setup(void)
{
    ck_assert_int_eq(sc_uring_init(&u, 4), 0);
    ck_assert_uint_eq(u.entries, 4);
    nresults = 0;
}

static void
teardown(void)
{
    sc_uring_fini(&u);
    ck_assert_int_eq(u.fd, -1);
}

/* A connected pair; sv[0] non-blocking, as the worker's sockets are. */
static void
pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static void
msg(struct msghdr *mh, struct iovec *iov, size_t n)
{
    memset(mh, 0, sizeof(*mh));
    mh->msg_iov = iov;
    mh->msg_iovlen = n;
}

START_TEST(sends_go_out_in_one_submission)
{
    int s[3][2];
    char a[] = "first,", b[] = "second";
    struct iovec iov[2] = {{a, 6}, {b, 6}};
    struct msghdr mh;
    char got[32];

    msg(&mh, iov, 2);
    for (int i = 0; i < 3; i++) {
        pair(s[i]);
        ck_assert(!sc_uring_full(&u));
        sc_uring_sendmsg(&u, s[i][0], &mh, 100 + (uint64_t)i);
    }
    ck_assert_uint_eq(u.queued, 3);
    ck_assert_int_eq(sc_uring_run(&u, done, &u), 0);
    ck_assert_uint_eq(u.queued, 0);
    ck_assert_int_eq(nresults, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(result_of(100 + (uint64_t)i), 12);
        ck_assert_int_eq(read(s[i][1], got, sizeof(got)), 12);
        ck_assert_int_eq(memcmp(got, "first,second", 12), 0);
        close(s[i][0]);
        close(s[i][1]);
    }
    /* nothing queued: nothing happens */
    ck_assert_int_eq(sc_uring_run(&u, done, &u), 0);
    ck_assert_int_eq(nresults, 3);
}
END_TEST

START_TEST(a_full_ring_is_run_then_reused)
{
    int s[2];
    char c = 'x';
    struct iovec iov = {&c, 1};
    struct msghdr mh;
    char got[16];

    pair(s);
    msg(&mh, &iov, 1);
    for (int round = 0; round < 3; round++) {
        for (uint64_t t = 0; t < 4; t++) {
            sc_uring_sendmsg(&u, s[0], &mh, t);
        }
        ck_assert(sc_uring_full(&u));
        ck_assert_int_eq(sc_uring_run(&u, done, &u), 0);
        ck_assert(!sc_uring_full(&u));
    }
    ck_assert_int_eq(nresults, 12);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(results[i], 1);
    }
    ck_assert_int_eq(read(s[1], got, sizeof(got)), 12);
    close(s[0]);
    close(s[1]);
}
END_TEST

START_TEST(a_full_socket_answers_eagain_at_once)
{
    int s[2];
    static char big[1 << 20];
    struct iovec iov = {big, sizeof(big)};
    struct msghdr mh;
    int sz = 4096;

    pair(s);
    ck_assert_int_eq(
        setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
    msg(&mh, &iov, 1);
    /* more than the socket holds: a short write, not a wait */
    sc_uring_sendmsg(&u, s[0], &mh, 1);
    ck_assert_int_eq(sc_uring_run(&u, done, &u), 0);
    ck_assert_int_gt(results[0], 0);
    ck_assert_int_lt(results[0], (int32_t)sizeof(big));
    /* now full: -EAGAIN, as a non-blocking writev would say */
    sc_uring_sendmsg(&u, s[0], &mh, 2);
    ck_assert_int_eq(sc_uring_run(&u, done, &u), 0);
    ck_assert_int_eq(result_of(2), -EAGAIN);
    close(s[0]);
    close(s[1]);
}
END_TEST

START_TEST(errors_come_back_per_send)
{
    int s[2], t[2];
    char c = 'y';
    struct iovec iov = {&c, 1};
    struct msghdr mh;

    pair(s);
    pair(t);
    msg(&mh, &iov, 1);
    close(t[1]); /* the peer is gone: EPIPE, and no SIGPIPE */
    sc_uring_sendmsg(&u, s[0], &mh, 1);
    sc_uring_sendmsg(&u, t[0], &mh, 2);
    sc_uring_sendmsg(&u, 1000, &mh, 3); /* not a descriptor */
    ck_assert_int_eq(sc_uring_run(&u, done, &u), 0);
    ck_assert_int_eq(nresults, 3);
    ck_assert_int_eq(result_of(1), 1);
    ck_assert_int_eq(result_of(2), -EPIPE);
    ck_assert_int_eq(result_of(3), -EBADF);
    close(s[0]);
    close(s[1]);
    close(t[0]);
}
END_TEST

START_TEST(a_refused_setup_leaves_nothing)
{
    struct sc_uring v;

    /* 0 entries: the kernel refuses (EINVAL) */
    ck_assert_int_eq(sc_uring_init(&v, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(v.fd, -1);
    ck_assert_ptr_null(v.sqes);
    sc_uring_fini(&v); /* harmless */
    ck_assert_int_eq(v.fd, -1);
}
END_TEST

static Suite *
uring_suite(void)
{
    Suite *s = suite_create("uring");
    TCase *tc = tcase_create("uring");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, sends_go_out_in_one_submission);
    tcase_add_test(tc, a_full_ring_is_run_then_reused);
    tcase_add_test(tc, a_full_socket_answers_eagain_at_once);
    tcase_add_test(tc, errors_come_back_per_send);
    tcase_add_test(tc, a_refused_setup_leaves_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(uring_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
