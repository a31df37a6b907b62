/*
 * channel.c - fd passing between master and workers (see channel.h)
 *
 * Each message is one sc_channel_msg with at most one descriptor in an
 * SCM_RIGHTS control message.  SOCK_SEQPACKET keeps message boundaries, so
 * a message and its descriptor always arrive together.
 */
#include "channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
sc_channel_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      0, fds);
}

int
sc_channel_send_fd(int ch, const struct sc_channel_msg *msg, int fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)msg,
                        .iov_len = sizeof(*msg)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;
    ssize_t n;

    if (fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    do {
        n = sendmsg(ch, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                   ? SC_CHANNEL_AGAIN
                   : SC_CHANNEL_ERROR;
    }
    return SC_CHANNEL_OK;
}

int
sc_channel_recv_fd(int ch, struct sc_channel_msg *msg, int *fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(8 * sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof(*msg)};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c;
    ssize_t n;

    *fd = -1;
    do {
        n = recvmsg(ch, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? SC_CHANNEL_AGAIN
                                                         : SC_CHANNEL_ERROR;
    }
    if (n == 0) {
        return SC_CHANNEL_EOF;
    }
    /* take every descriptor that came, keep one, close the rest: none
     * may leak, whatever a confused peer sent */
    int extra = 0;
    for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*fd < 0) {
                *fd = got;
            } else {
                close(got);
                extra++;
            }
        }
    }
    if ((size_t)n != sizeof(*msg) || extra > 0 ||
        (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        errno = EPROTO;
        return SC_CHANNEL_ERROR;
    }
    return SC_CHANNEL_OK;
}
