/*
 * uring.h - batched socket writes through io_uring, by raw system calls
 *
 * A worker writes one broadcast to thousands of sockets; each write(2) is
 * a system call, and in a virtual machine a system call costs as much as
 * the write itself (measured: 5.7 us per writev against 3.5 us per send
 * submitted 256 at a time).  A ring queues sendmsg requests and submits
 * them with one io_uring_enter(2), which also waits for their results.
 *
 * The sends carry MSG_DONTWAIT: a full socket completes at once with
 * -EAGAIN, as a non-blocking writev would, and nothing is left in flight
 * after sc_uring_run() returns.  No liburing: only the kernel's header.
 *
 * One thread.  The caller keeps each msghdr and the iovecs and bytes it
 * names alive until sc_uring_run() has returned.
 */
#ifndef SC_URING_H
#define SC_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct io_uring_sqe;
struct io_uring_cqe;

struct sc_uring {
    int fd; /* -1: not set up */
    unsigned entries;  /* submission queue size */
    unsigned queued;   /* requests not submitted yet */
    unsigned *sq_head, *sq_tail, *sq_array, sq_mask;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map;
    size_t sq_len, cq_len, sqes_len;
};

/*
 * Sets up a ring of `entries` (a power of two) requests.  Returns 0, or -1
 * with errno (ENOSYS: an old kernel; EPERM: io_uring disabled by
 * kernel.io_uring_disabled or a seccomp filter), and u then holds nothing.
 */
int sc_uring_init(struct sc_uring *u, unsigned entries);

void sc_uring_fini(struct sc_uring *u); /* harmless if not set up */

/* True when sc_uring_run() must come before the next sc_uring_sendmsg(). */
static inline bool
sc_uring_full(const struct sc_uring *u)
{
    return u->queued == u->entries;
}

/* Queues sendmsg(fd, mh, MSG_DONTWAIT | MSG_NOSIGNAL); `tag` comes back
 * with its result.  The ring must not be full. */
void sc_uring_sendmsg(struct sc_uring *u, int fd, const struct msghdr *mh,
                      uint64_t tag);

/*
 * Submits what is queued, waits for every result and calls done(arg, tag,
 * res) for each, in the order they complete (res: bytes written, or
 * -errno).  Returns 0, or -1 with errno if the kernel refused the batch:
 * then done() has been called with res = -errno for each request not
 * submitted, so every tag gets exactly one result.
 */
int sc_uring_run(struct sc_uring *u,
                 void (*done)(void *arg, uint64_t tag, int32_t res),
                 void *arg);

#endif /* SC_URING_H */
