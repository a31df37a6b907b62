/*
 * uring.c - batched socket writes through io_uring (see uring.h)
 *
 * The ring's layout is the kernel's (io_uring_setup(2)): a submission
 * queue of indexes into an array of requests, and a completion queue of
 * results, shared with the kernel through three mappings.  The kernel
 * moves the submission queue's head and the completion queue's tail; this
 * side moves the other two, with release stores after writing entries and
 * acquire loads before reading them.
 */
#include "uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int
uring_enter(int fd, unsigned submit, unsigned wait)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait,
                        wait > 0 ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
}

static void *
map(int fd, size_t len, off_t what)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, fd, what);
    return p == MAP_FAILED ? NULL : p;
}

int
sc_uring_init(struct sc_uring *u, unsigned entries)
{
    struct io_uring_params p;
    char *sq, *cq;
    int err;

    memset(u, 0, sizeof(*u));
    memset(&p, 0, sizeof(p));
    u->fd = uring_setup(entries, &p);
    if (u->fd < 0) {
        u->fd = -1;
        return -1;
    }
    u->entries = p.sq_entries;
    u->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    u->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        /* one mapping holds both queues */
        if (u->cq_len > u->sq_len) {
            u->sq_len = u->cq_len;
        }
        u->cq_len = 0;
    }
    u->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    u->sq_map = map(u->fd, u->sq_len, IORING_OFF_SQ_RING);
    u->cq_map = u->cq_len > 0 ? map(u->fd, u->cq_len, IORING_OFF_CQ_RING)
                              : u->sq_map;
    u->sqes = map(u->fd, u->sqes_len, IORING_OFF_SQES);
    if (u->sq_map == NULL || u->cq_map == NULL || u->sqes == NULL) {
        err = errno;
        sc_uring_fini(u);
        errno = err;
        return -1;
    }
    sq = u->sq_map;
    cq = u->cq_map;
    u->sq_head = (unsigned *)(void *)(sq + p.sq_off.head);
    u->sq_tail = (unsigned *)(void *)(sq + p.sq_off.tail);
    u->sq_mask = *(unsigned *)(void *)(sq + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(void *)(sq + p.sq_off.array);
    u->cq_head = (unsigned *)(void *)(cq + p.cq_off.head);
    u->cq_tail = (unsigned *)(void *)(cq + p.cq_off.tail);
    u->cq_mask = *(unsigned *)(void *)(cq + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(void *)(cq + p.cq_off.cqes);
    return 0;
}

void
sc_uring_fini(struct sc_uring *u)
{
    if (u->sqes != NULL) {
        munmap(u->sqes, u->sqes_len);
    }
    if (u->cq_map != NULL && u->cq_map != u->sq_map) {
        munmap(u->cq_map, u->cq_len);
    }
    if (u->sq_map != NULL) {
        munmap(u->sq_map, u->sq_len);
    }
    if (u->fd >= 0) {
        close(u->fd);
    }
    memset(u, 0, sizeof(*u));
    u->fd = -1;
}

void
sc_uring_sendmsg(struct sc_uring *u, int fd, const struct msghdr *mh,
                 uint64_t tag)
{
    unsigned tail = *u->sq_tail; /* only this side writes it */
    unsigned i = tail & u->sq_mask;
    struct io_uring_sqe *sqe = &u->sqes[i];

    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_SENDMSG;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)mh;
    sqe->len = 1;
    sqe->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    sqe->user_data = tag;
    u->sq_array[i] = i;
    atomic_store_explicit((_Atomic unsigned *)u->sq_tail, tail + 1,
                          memory_order_release);
    u->queued++;
}

/* Hands each result in the completion queue to done(); returns how many. */
static unsigned
reap(struct sc_uring *u, void (*done)(void *, uint64_t, int32_t), void *arg)
{
    unsigned head = *u->cq_head;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)u->cq_tail,
                                         memory_order_acquire);
    unsigned n = 0;

    for (; head != tail; head++, n++) {
        const struct io_uring_cqe *c = &u->cqes[head & u->cq_mask];
        uint64_t tag = c->user_data;
        int32_t res = c->res;
        /* the slot is the kernel's again once the head passes it */
        atomic_store_explicit((_Atomic unsigned *)u->cq_head, head + 1,
                              memory_order_release);
        done(arg, tag, res);
    }
    return n;
}

int
sc_uring_run(struct sc_uring *u,
             void (*done)(void *arg, uint64_t tag, int32_t res), void *arg)
{
    unsigned submitted = 0, completed = 0;
    int err = 0;

    while (submitted < u->queued) {
        /* sends that find room complete during the submission itself */
        int r = uring_enter(u->fd, u->queued - submitted, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = errno;
            break;
        }
        submitted += (unsigned)r;
        completed += reap(u, done, arg);
        if (r == 0) {
            err = EAGAIN; /* the kernel takes none: do not spin */
            break;
        }
    }
    if (err != 0) {
        /* the requests the kernel did not take are withdrawn */
        unsigned head = atomic_load_explicit(
            (_Atomic unsigned *)u->sq_head, memory_order_acquire);
        for (unsigned t = head; t != *u->sq_tail; t++) {
            done(arg, u->sqes[u->sq_array[t & u->sq_mask]].user_data,
                 -err);
        }
        atomic_store_explicit((_Atomic unsigned *)u->sq_tail, head,
                              memory_order_release);
    }
    /* a send that went asynchronous after all (MSG_DONTWAIT should make
     * none) is waited for: nothing stays in flight */
    while (completed < submitted) {
        if (uring_enter(u->fd, 0, submitted - completed) < 0 &&
            errno != EINTR) {
            err = errno;
            break;
        }
        completed += reap(u, done, arg);
    }
    u->queued = 0;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}
