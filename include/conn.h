/*
 * conn.h - one client connection inside a worker: socket I/O, the HTTP
 * request and the upgrade, the WebSocket frames, the output queue
 *
 * Loop glue: reads and writes the socket with libevent and hands bytes to
 * the pure modules (http_req, ws_handshake, ws_frame) and the client's
 * protocol decisions to session.c, carrying out the actions it returns.
 * Subscriptions are the fan-out's (fanout.h); deadlines are filed in the
 * timer wheel (wheel.h).  Only the worker that owns a connection touches
 * it.
 *
 * What connections share within a worker is struct sc_conn_env, the one
 * interface between this module and the worker: the configuration and
 * keys in force, the registry, the fan-out, the wheel, the list of
 * connections, the output batching, the read buffer.
 *
 * Memory: an idle WebSocket connection holds its struct (with the frame
 * parser) and its subscriptions, nothing else: input is read into the
 * shared read buffer, output is queued only while the socket is full, and
 * broadcast frames are shared (frame.h, reference-counted).
 */
#ifndef SC_CONN_H
#define SC_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fanout.h"
#include "session.h"
#include "wheel.h"
#include "ws_frame.h"

struct sc_config;
struct sc_frame;
struct sc_jwt_keys;
struct sc_registry;
struct sc_worker_slot;
struct event_base;

#define SC_CONN_SCRATCH 65536     /* the shared read buffer */
#define SC_CONN_FREE_Q_MAX 65536  /* recycled output queue nodes kept */

/* One queued output frame. */
struct sc_outq {
    struct sc_outq *next;
    struct sc_frame *frame; /* one reference, owned */
    uint32_t off;           /* bytes of frame already written */
};

enum sc_conn_phase {
    SC_CONN_HTTP = 0, /* reading the request head */
    SC_CONN_WS,       /* upgraded */
    SC_CONN_CLOSING,  /* close frame sent: waiting for the peer's */
    SC_CONN_FLUSH,    /* last bytes queued: close once written */
    SC_CONN_LINGER    /* written and shut down for writing: reading and
                         dropping what the peer still sends, so that
                         closing does not reset the connection */
};

#define SC_CONN_WANT_WRITE 0x01 /* write interest registered */
#define SC_CONN_AUTHED 0x02     /* counted as a client */
#define SC_CONN_USER 0x04       /* counted in the user table */
#define SC_CONN_DIRTY 0x08      /* on the flush list */

struct sc_uring;

/* One send of a batch through the ring (sc_conn_env_set_uring()). */
#define SC_URING_IOV 64 /* as many frames as one writev of flush_queue() */
struct sc_uring_send {
    struct sc_conn *c;
    struct msghdr mh;
    struct iovec iov[SC_URING_IOV];
};

/* What the connections of one worker share (the worker owns it). */
struct sc_conn_env {
    const struct sc_config *cfg;    /* in force; replaced on reload */
    const struct sc_jwt_keys *keys; /* in force; replaced on reload */
    struct sc_session_limits lim;   /* from cfg */
    struct sc_registry *reg;
    struct sc_worker_slot *slot;    /* this worker's */
    unsigned index;
    struct event_base *base;
    struct sc_fanout *fan;
    struct sc_conn *conns; /* every connection */
    uint64_t nconns;
    struct sc_wheel wheel;  /* connections by due second */
    struct sc_conn *dirty;  /* connections with output to flush */
    bool batching;          /* queue only; flush at the end of a batch */
    struct sc_uring *uring; /* writes a batch's flush, or NULL: writev */
    struct sc_uring_send *usend; /* one per ring entry, owned */
    struct sc_outq *free_q; /* recycled queue nodes, owned */
    uint32_t nfree_q;
    uint64_t rand_state;
    void (*closed)(void *host); /* called after a connection is freed */
    void *host;
    uint8_t scratch[SC_CONN_SCRATCH];
};

struct sc_conn {
    struct sc_conn *prev, *next; /* env's list of connections */
    struct sc_conn *dirty_next;  /* env's flush list */
    struct sc_wheel_node tn;     /* filed at its next deadline */
    struct sc_conn_env *env;
    struct event ev; /* read, plus write while output is pending */
    int fd;          /* owned */
    uint8_t phase;   /* enum sc_conn_phase */
    uint8_t flags;
    uint32_t in_len;  /* bytes in `in` */
    uint8_t *in;      /* request head being read, owned, NULL otherwise */
    uint8_t *msg;     /* text message being assembled, owned */
    uint32_t msg_len;
    uint32_t msg_cap;
    struct sc_outq *out_head, *out_tail; /* owned */
    struct sc_outq *pong; /* the queued pong not yet begun, or NULL: a
                             later ping replaces its payload */
    uint64_t out_bytes;                  /* queued, not yet written */
    uint64_t created_ms;                 /* monotonic */
    uint64_t last_rx_ms;                 /* last frame or byte received */
    uint64_t deadline_ms;                /* CLOSING/FLUSH: give up then;
                                            WS: next ping */
    uint64_t user_key;                   /* hash of the user id */
    struct sc_session sess;              /* the client's protocol state */
    struct sc_follower fol;              /* its subscriptions */
    struct sc_ws_parser parser;
};

/*
 * Sets env up for worker `index` (the caller then sets base, fan, closed
 * and host).  Returns 0.
 */
int sc_conn_env_init(struct sc_conn_env *env, const struct sc_config *cfg,
                     const struct sc_jwt_keys *keys, struct sc_registry *reg,
                     unsigned index);

/* The configuration and keys in force from now on (reload). */
void sc_conn_env_set_config(struct sc_conn_env *env,
                            const struct sc_config *cfg,
                            const struct sc_jwt_keys *keys);

/*
 * Batches are written through u (set up, owned by the caller) from now
 * on; NULL: with one writev per socket.  Returns 0, or -1 when out of
 * memory (and then nothing changed).
 */
int sc_conn_env_set_uring(struct sc_conn_env *env, struct sc_uring *u);

/* Frees every connection and the recycled queue nodes. */
void sc_conn_env_fini(struct sc_conn_env *env);

/* Takes ownership of fd (a connected, non-blocking socket). NULL on
 * failure, and then fd has been closed. */
struct sc_conn *sc_conn_new(struct sc_conn_env *env, int fd);

/* Frees everything the connection owns and closes its socket. */
void sc_conn_free(struct sc_conn *c);

/* Queues a shared frame (takes a new reference). May close the
 * connection (slow consumer): returns -1 then, and c is gone. */
int sc_conn_send_frame(struct sc_conn *c, struct sc_frame *f);

/*
 * Sends frames (in order) with one writev when nothing is queued, queueing
 * only what the socket does not take; otherwise queues each as
 * sc_conn_send_frame() does.  Returns -1 if the connection was freed.
 */
int sc_conn_send_frames(struct sc_conn *c, struct sc_frame *const *fs,
                        size_t n);

/* Starts the closing handshake with code and reason (RFC 6455 7.1.2).
 * Returns -1 if the connection was freed (the socket failed). */
int sc_conn_close_ws(struct sc_conn *c, uint16_t code, const char *reason);

/* Closes (1008 Token revoked) the sessions whose token's jti hash is one
 * of hashes. */
void sc_conn_close_revoked(struct sc_conn_env *env, const uint64_t *hashes,
                           size_t n);

/* Stopping: sessions get the closing handshake with code and reason,
 * connections still in the request are freed. */
void sc_conn_close_all(struct sc_conn_env *env, uint16_t code,
                       const char *reason);

/* Timeouts, pings and token expiry of the connections due by now. */
void sc_conn_run_timers(struct sc_conn_env *env, uint64_t now);

/* Writes what the connections queued during a batch (env->dirty). */
void sc_conn_flush_dirty(struct sc_conn_env *env);

#endif /* SC_CONN_H */
