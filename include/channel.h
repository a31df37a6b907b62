/*
 * channel.h - master-to-worker channel: a Unix SOCK_SEQPACKET socketpair
 * carrying one accepted connection per message (SCM_RIGHTS)
 *
 * Process code: no WebSocket, no PostgreSQL.  Both ends are non-blocking;
 * a full channel is a state (SC_CHANNEL_AGAIN), not an error, so the
 * master can skip a busy worker without ever blocking its accept loop.
 * The same channel carries the configuration reloaded on SIGHUP, in order
 * with the connections.
 */
#ifndef SC_CHANNEL_H
#define SC_CHANNEL_H

#include <stdint.h>

#define SC_CHANNEL_OK 0
#define SC_CHANNEL_AGAIN 1 /* would block: channel full / nothing to read */
#define SC_CHANNEL_EOF 2   /* the other end closed */
#define SC_CHANNEL_ERROR (-1)

/* What the master says with each fd. */
struct sc_channel_msg {
    uint32_t type;   /* SC_CHANNEL_CONN or SC_CHANNEL_RELOAD */
    uint32_t listen; /* CONN: index of the listener that accepted it */
};

#define SC_CHANNEL_CONN 1   /* fd: an accepted client connection */
#define SC_CHANNEL_RELOAD 2 /* fd: the reload snapshot (reload.h) */

/* Creates a non-blocking, close-on-exec pair: fds[0] master, fds[1] child.
 * Returns 0 or -1 with errno set. */
int sc_channel_pair(int fds[2]);

/*
 * Sends msg with fd attached.  On SC_CHANNEL_OK the receiver owns a copy
 * of fd; the caller still owns (and must close) its own.  SC_CHANNEL_AGAIN
 * when the channel is full; SC_CHANNEL_ERROR with errno (EPIPE: child gone).
 */
int sc_channel_send_fd(int ch, const struct sc_channel_msg *msg, int fd);

/*
 * Receives one message.  On SC_CHANNEL_OK *fd is a new descriptor owned by
 * the caller (or -1 if the message carried none).  SC_CHANNEL_AGAIN when
 * empty, SC_CHANNEL_EOF when the master is gone, SC_CHANNEL_ERROR (errno).
 */
int sc_channel_recv_fd(int ch, struct sc_channel_msg *msg, int *fd);

#endif /* SC_CHANNEL_H */
