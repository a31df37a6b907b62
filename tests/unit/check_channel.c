/*
 * check_channel.c - fd passing over a real SOCK_SEQPACKET socketpair:
 * the fd that arrives is the file that was sent, nothing ever blocks, a
 * full channel is SC_CHANNEL_AGAIN, a gone peer is EOF or EPIPE (never
 * SIGPIPE), and the other side of a fork() sees the same
 */
#include "channel.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct sc_channel_msg conn_msg = {.type = SC_CHANNEL_CONN,
                                               .listen = 3};

static void
make_pair(int ch[2])
{
    ck_assert_int_eq(sc_channel_pair(ch), 0);
}

static void
make_pipe(int p[2])
{
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
}

static bool
same_file(int a, int b)
{
    struct stat sa, sb;

    ck_assert_int_eq(fstat(a, &sa), 0);
    ck_assert_int_eq(fstat(b, &sb), 0);
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int
count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* Waits until ch is readable (the channel itself never blocks). */
static void
wait_readable(int ch)
{
    struct pollfd pfd = {.fd = ch, .events = POLLIN};

    ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
}

START_TEST(pair_is_nonblocking_cloexec_seqpacket)
{
    int ch[2], type;
    socklen_t len = sizeof(type);

    make_pair(ch);
    for (int i = 0; i < 2; i++) {
        ck_assert(fcntl(ch[i], F_GETFL) & O_NONBLOCK);
        ck_assert(fcntl(ch[i], F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(getsockopt(ch[i], SOL_SOCKET, SO_TYPE, &type, &len),
                         0);
        ck_assert_int_eq(type, SOCK_SEQPACKET);
    }
    close(ch[0]);
    close(ch[1]);
}
END_TEST

START_TEST(fd_arrives_and_is_the_same_file)
{
    int ch[2], p[2], fd = -1;
    struct sc_channel_msg m;
    char buf[16];

    make_pair(ch);
    make_pipe(p);
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, p[1]), SC_CHANNEL_OK);
    memset(&m, 0, sizeof(m));
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_OK);
    ck_assert_uint_eq(m.type, SC_CHANNEL_CONN);
    ck_assert_uint_eq(m.listen, 3);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fd, p[1]);
    ck_assert(same_file(fd, p[1]));
    /* the sender still owns its copy; the receiver owns the new one */
    ck_assert_int_eq(close(p[1]), 0);
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 5);
    ck_assert_mem_eq(buf, "hello", 5);
    /* closing the received copy was the last writer: EOF on the pipe */
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 0);
    close(p[0]);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

START_TEST(received_fd_is_cloexec)
{
    int ch[2], p[2], fd = -1;
    struct sc_channel_msg m;

    make_pair(ch);
    ck_assert_int_eq(pipe(p), 0); /* sent without O_CLOEXEC on purpose */
    ck_assert_int_eq(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, p[0]), SC_CHANNEL_OK);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_OK);
    ck_assert_int_ge(fd, 0);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    close(p[0]);
    close(p[1]);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

START_TEST(message_without_fd)
{
    int ch[2], fd = 1234;
    struct sc_channel_msg out = {.type = 7, .listen = 0xfffffffe}, m;

    make_pair(ch);
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &out, -1), SC_CHANNEL_OK);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_OK);
    ck_assert_int_eq(fd, -1);
    ck_assert_uint_eq(m.type, 7);
    ck_assert_uint_eq(m.listen, 0xfffffffe);
    /* and the other way round: the pair is symmetric */
    ck_assert_int_eq(sc_channel_send_fd(ch[1], &out, -1), SC_CHANNEL_OK);
    ck_assert_int_eq(sc_channel_recv_fd(ch[0], &m, &fd), SC_CHANNEL_OK);
    ck_assert_int_eq(fd, -1);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

START_TEST(messages_keep_order_and_boundaries)
{
    int ch[2], p[2], fd;
    struct sc_channel_msg m;

    make_pair(ch);
    make_pipe(p);
    for (uint32_t i = 0; i < 8; i++) {
        struct sc_channel_msg out = {.type = SC_CHANNEL_CONN, .listen = i};
        ck_assert_int_eq(sc_channel_send_fd(ch[0], &out, i % 2 ? p[0] : -1),
                         SC_CHANNEL_OK);
    }
    for (uint32_t i = 0; i < 8; i++) {
        ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_OK);
        ck_assert_uint_eq(m.listen, i);
        if (i % 2) {
            ck_assert(same_file(fd, p[0]));
            close(fd);
        } else {
            ck_assert_int_eq(fd, -1);
        }
    }
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_AGAIN);
    close(p[0]);
    close(p[1]);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

START_TEST(empty_channel_is_again)
{
    int ch[2], fd = 99;
    struct sc_channel_msg m;

    make_pair(ch);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_AGAIN);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(sc_channel_recv_fd(ch[0], &m, &fd), SC_CHANNEL_AGAIN);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

/* Fills the channel until AGAIN (the call returns at once), then drains. */
static void
fill_and_drain(bool with_fd)
{
    int ch[2], p[2], fd, rc;
    struct sc_channel_msg m;
    long sent = 0, got = 0;
    int before;

    make_pair(ch);
    make_pipe(p);
    before = count_open_fds();
    for (;;) {
        struct sc_channel_msg out = {.type = SC_CHANNEL_CONN,
                                     .listen = (uint32_t)sent};
        rc = sc_channel_send_fd(ch[0], &out, with_fd ? p[1] : -1);
        if (rc != SC_CHANNEL_OK) {
            break;
        }
        sent++;
        ck_assert_int_lt(sent, 1000000);
    }
    ck_assert_int_eq(rc, SC_CHANNEL_AGAIN);
    ck_assert_int_gt(sent, 1);
    /* still full: again AGAIN, at once */
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, -1),
                     SC_CHANNEL_AGAIN);
    for (;;) {
        rc = sc_channel_recv_fd(ch[1], &m, &fd);
        if (rc != SC_CHANNEL_OK) {
            break;
        }
        ck_assert_uint_eq(m.listen, (uint32_t)got);
        if (with_fd) {
            ck_assert(same_file(fd, p[1]));
            close(fd);
        } else {
            ck_assert_int_eq(fd, -1);
        }
        got++;
    }
    ck_assert_int_eq(rc, SC_CHANNEL_AGAIN);
    ck_assert_int_eq(got, sent);
    ck_assert_int_eq(count_open_fds(), before);
    /* room again */
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, p[1]), SC_CHANNEL_OK);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_OK);
    close(fd);
    close(p[0]);
    close(p[1]);
    close(ch[0]);
    close(ch[1]);
}

START_TEST(fill_with_fds_then_drain)
{
    fill_and_drain(true);
}
END_TEST

START_TEST(fill_without_fds_then_drain)
{
    fill_and_drain(false);
}
END_TEST

START_TEST(eof_after_peer_closes)
{
    int ch[2], p[2], fd;
    struct sc_channel_msg m;

    make_pair(ch);
    make_pipe(p);
    /* what was queued before the close is still delivered, then EOF */
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, p[0]), SC_CHANNEL_OK);
    close(ch[0]);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_OK);
    ck_assert(same_file(fd, p[0]));
    close(fd);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_EOF);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_EOF);
    close(p[0]);
    close(p[1]);
    close(ch[1]);
}
END_TEST

START_TEST(send_to_closed_peer_is_epipe)
{
    int ch[2], p[2];

    /* the default disposition: a SIGPIPE would kill this process */
    signal(SIGPIPE, SIG_DFL);
    make_pair(ch);
    make_pipe(p);
    close(ch[1]);
    errno = 0;
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, p[0]),
                     SC_CHANNEL_ERROR);
    ck_assert_int_eq(errno, EPIPE);
    errno = 0;
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, -1),
                     SC_CHANNEL_ERROR);
    ck_assert_int_eq(errno, EPIPE);
    close(p[0]);
    close(p[1]);
    close(ch[0]);
}
END_TEST

START_TEST(bad_fd_is_error)
{
    int ch[2];

    make_pair(ch);
    errno = 0;
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, 987654),
                     SC_CHANNEL_ERROR);
    ck_assert_int_eq(errno, EBADF);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

/* Sends raw bytes with n fds attached (a sender not following the rules). */
static void
send_raw(int ch, const void *data, size_t len, const int *fds, int n)
{
    char buf[CMSG_SPACE(sizeof(int) * 4)] __attribute__((aligned(8)));
    struct iovec iov = {.iov_base = (void *)(uintptr_t)data, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;

    ck_assert_int_le(n, 4);
    memset(buf, 0, sizeof(buf));
    if (n > 0) {
        mh.msg_control = buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    ck_assert_int_eq(sendmsg(ch, &mh, 0), (ssize_t)len);
}

/* A short message is a protocol error; its fd is not leaked. */
START_TEST(short_message_is_eproto)
{
    int ch[2], p[2], fd = 5, before;
    struct sc_channel_msg m;

    make_pair(ch);
    make_pipe(p);
    send_raw(ch[0], "abc", 3, &p[0], 1);
    before = count_open_fds();
    errno = 0;
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_ERROR);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(count_open_fds(), before);
    close(p[0]);
    close(p[1]);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

/* A message longer than sc_channel_msg is not one of ours: refused. */
START_TEST(long_message_is_eproto)
{
    int ch[2], p[2], fd = 5, before;
    struct sc_channel_msg m;
    uint32_t words[4] = {SC_CHANNEL_CONN, 1, 2, 3};

    make_pair(ch);
    make_pipe(p);
    send_raw(ch[0], words, sizeof(words), &p[0], 1);
    before = count_open_fds();
    errno = 0;
    ck_assert_int_eq(sc_channel_recv_fd(ch[1], &m, &fd), SC_CHANNEL_ERROR);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(count_open_fds(), before);
    close(p[0]);
    close(p[1]);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

/* Several fds in one message: refused, and none of them stays open. */
START_TEST(extra_fds_are_not_leaked)
{
    int ch[2], p[2], fd = 5, before, fds[3];
    struct sc_channel_msg m;

    make_pair(ch);
    make_pipe(p);
    fds[0] = fds[1] = fds[2] = p[0];
    for (int n = 2; n <= 3; n++) {
        send_raw(ch[0], &conn_msg, sizeof(conn_msg), fds, n);
        before = count_open_fds();
        int rc = sc_channel_recv_fd(ch[1], &m, &fd);
        int kept = fd >= 0 ? 1 : 0;
        int leaked = count_open_fds() - before - kept;
        ck_assert(rc == SC_CHANNEL_OK || rc == SC_CHANNEL_ERROR);
        ck_assert(rc == SC_CHANNEL_OK || kept == 0);
        ck_assert_msg(leaked == 0,
                      "%d fds in one message: rc %d, fd %d, %d descriptors "
                      "left open that nobody owns",
                      n, rc, fd, leaked);
        if (kept) {
            close(fd);
        }
    }
    close(p[0]);
    close(p[1]);
    close(ch[0]);
    close(ch[1]);
}
END_TEST

/*
 * Across fork(): the parent (master) passes one end of a fresh socketpair
 * per message; the child (worker) echoes what arrives on it, upper-cased,
 * and exits 0 on EOF.  Exit codes name the child's failure.
 */
static void
echo_child(int ch)
{
    struct sc_channel_msg m;
    char buf[64];
    int fd, rc;
    ssize_t n;

    for (;;) {
        struct pollfd pfd = {.fd = ch, .events = POLLIN};
        if (poll(&pfd, 1, 5000) != 1) {
            _exit(10);
        }
        rc = sc_channel_recv_fd(ch, &m, &fd);
        if (rc == SC_CHANNEL_EOF) {
            _exit(0);
        }
        if (rc == SC_CHANNEL_AGAIN) {
            continue;
        }
        if (rc != SC_CHANNEL_OK || fd < 0 || m.type != SC_CHANNEL_CONN) {
            _exit(11);
        }
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
            _exit(12);
        }
        n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            _exit(13);
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= 'a' && buf[i] <= 'z') {
                buf[i] = (char)(buf[i] - 'a' + 'A');
            }
        }
        buf[0] = (char)('0' + m.listen % 10);
        if (write(fd, buf, (size_t)n) != n) {
            _exit(14);
        }
        close(fd);
    }
}

START_TEST(across_fork)
{
    int ch[2], status;
    pid_t pid;

    make_pair(ch);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ch[0]);
        echo_child(ch[1]);
    }
    close(ch[1]);
    for (uint32_t i = 0; i < 50; i++) {
        struct sc_channel_msg out = {.type = SC_CHANNEL_CONN, .listen = i};
        char want[32], got[32];
        int s[2], rc;
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s),
                         0);
        do {
            rc = sc_channel_send_fd(ch[0], &out, s[1]);
        } while (rc == SC_CHANNEL_AGAIN);
        ck_assert_int_eq(rc, SC_CHANNEL_OK);
        close(s[1]); /* the child has its own copy now */
        snprintf(want, sizeof(want), "xmessage %u", i);
        ck_assert_int_eq(write(s[0], want, strlen(want)),
                         (ssize_t)strlen(want));
        wait_readable(s[0]);
        memset(got, 0, sizeof(got));
        ck_assert_int_eq(read(s[0], got, sizeof(got) - 1),
                         (ssize_t)strlen(want));
        snprintf(want, sizeof(want), "%uMESSAGE %u", i % 10, i);
        ck_assert_str_eq(got, want);
        /* the child closed its copy: EOF */
        wait_readable(s[0]);
        ck_assert_int_eq(read(s[0], got, sizeof(got)), 0);
        close(s[0]);
    }
    close(ch[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x", status);
}
END_TEST

/* The child dies: the parent's next send is EPIPE, its recv is EOF. */
START_TEST(child_death_seen_by_parent)
{
    int ch[2], status, fd;
    struct sc_channel_msg m;
    pid_t pid;

    signal(SIGPIPE, SIG_DFL);
    make_pair(ch);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ch[0]);
        _exit(0);
    }
    close(ch[1]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    errno = 0;
    ck_assert_int_eq(sc_channel_send_fd(ch[0], &conn_msg, -1),
                     SC_CHANNEL_ERROR);
    ck_assert_int_eq(errno, EPIPE);
    ck_assert_int_eq(sc_channel_recv_fd(ch[0], &m, &fd), SC_CHANNEL_EOF);
    close(ch[0]);
}
END_TEST

static Suite *
channel_suite(void)
{
    Suite *s = suite_create("channel");
    TCase *tc = tcase_create("core");
    TCase *tf = tcase_create("fork");

    tcase_add_test(tc, pair_is_nonblocking_cloexec_seqpacket);
    tcase_add_test(tc, fd_arrives_and_is_the_same_file);
    tcase_add_test(tc, received_fd_is_cloexec);
    tcase_add_test(tc, message_without_fd);
    tcase_add_test(tc, messages_keep_order_and_boundaries);
    tcase_add_test(tc, empty_channel_is_again);
    tcase_add_test(tc, fill_with_fds_then_drain);
    tcase_add_test(tc, fill_without_fds_then_drain);
    tcase_add_test(tc, eof_after_peer_closes);
    tcase_add_test(tc, send_to_closed_peer_is_epipe);
    tcase_add_test(tc, bad_fd_is_error);
    tcase_add_test(tc, short_message_is_eproto);
    tcase_add_test(tc, long_message_is_eproto);
    tcase_add_test(tc, extra_fds_are_not_leaked);
    suite_add_tcase(s, tc);

    tcase_add_test(tf, across_fork);
    tcase_add_test(tf, child_death_seen_by_parent);
    tcase_set_timeout(tf, 20);
    suite_add_tcase(s, tf);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(channel_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
