/*
 * conn.h - one client connection inside a worker: HTTP request, upgrade,
 * WebSocket frames, the client protocol, the output queue
 *
 * Loop glue: reads and writes the socket with libevent and hands bytes to
 * the pure modules (http_req, ws_handshake, ws_frame, proto, jwt); it makes
 * no protocol decision of its own.  Only the worker that owns a connection
 * touches it.
 *
 * Memory: an idle WebSocket connection holds its struct (with the frame
 * parser) and its subscriptions, nothing else: input is read into the
 * worker's scratch buffer, output is queued only while the socket is full,
 * and broadcast frames are shared (sc_frame, reference-counted).
 */
#ifndef SC_CONN_H
#define SC_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"

struct sc_jwt_claims;
struct sc_worker;
struct sc_wevent;

/* An encoded frame, shared by every connection that queues it. */
struct sc_frame {
    uint32_t refs;
    uint32_t len;
    int64_t merge_id; /* seat_update of this event: a newer one replaces */
    uint8_t data[];
};

/* Returns a frame holding a copy of data with one reference, or NULL. */
struct sc_frame *sc_frame_new(const void *data, size_t len, int64_t merge_id);
void sc_frame_release(struct sc_frame *f); /* NULL-safe */

/* A text frame carrying the n bytes of JSON, one reference; NULL if n < 0
 * or out of memory. */
struct sc_frame *sc_frame_text(const char *json, long n, int64_t merge_id);

/* One queued output frame. */
struct sc_outq {
    struct sc_outq *next;
    struct sc_frame *frame; /* one reference, owned */
    uint32_t off;           /* bytes of frame already written */
};

/* One (connection, event) subscription. */
struct sc_sub {
    struct sc_sub *ev_prev, *ev_next; /* in the event's subscriber list */
    struct sc_sub *conn_next;         /* in the connection's list */
    struct sc_conn *conn;
    struct sc_wevent *ev;
    int64_t min_version; /* changes up to this one are in its snapshot */
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
#define SC_CONN_DIRTY 0x08      /* on the worker's flush list */

struct sc_conn {
    struct sc_conn *prev, *next; /* worker's list of connections */
    struct sc_conn *dirty_next;  /* worker's flush list */
    struct sc_conn *wprev, *wnext; /* worker's timer wheel slot */
    uint64_t due_s;              /* wheel second it waits in; 0: none */
    struct sc_worker *w;
    struct event ev; /* read, plus write while output is pending */
    int fd;          /* owned */
    uint8_t phase;   /* enum sc_conn_phase */
    uint8_t flags;
    uint16_t nsubs;
    uint32_t in_len;  /* bytes in `in` */
    uint8_t *in;      /* request head being read, owned, NULL otherwise */
    uint8_t *msg;     /* text message being assembled, owned */
    uint32_t msg_len;
    uint32_t msg_cap;
    struct sc_outq *out_head, *out_tail; /* owned */
    uint64_t out_bytes;                  /* queued, not yet written */
    uint64_t created_ms;                 /* monotonic */
    uint64_t last_rx_ms;                 /* last frame or byte received */
    uint64_t deadline_ms;                /* CLOSING/FLUSH: give up then;
                                            WS: next ping */
    uint64_t rate_ms;                    /* token bucket refill time */
    uint64_t flood_since_ms;             /* first rate_limited, 0 none */
    uint64_t last_refused_ms;            /* last rate_limited */
    uint32_t rate_tokens;                /* in thousandths of a message */
    uint64_t user_key;                   /* hash of the user id */
    int64_t exp;                         /* token expiry, 0 none */
    uint64_t jti_hash;                   /* 0 if the token has no jti */
    struct sc_jwt_claims *claims;        /* the token's, kept only when
                                            it limits the events: owned */
    struct sc_sub *subs; /* owned */
    struct sc_ws_parser parser;
};

/* Takes ownership of fd (a connected, non-blocking socket). NULL on
 * failure, and then fd has been closed. */
struct sc_conn *sc_conn_new(struct sc_worker *w, int fd);

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

/*
 * When the connection's timer is due: timeouts, pings, token expiry.
 * Returns -1 if it freed c, else 0 (the caller reschedules c).
 */
int sc_conn_tick(struct sc_conn *c, uint64_t now);

/*
 * Files c in the worker's timer wheel at the second of its next deadline
 * (handshake, ping, silence, token expiry, close).  Called whenever a
 * deadline moves earlier; a later one is found when the slot comes up.
 */
void sc_conn_schedule(struct sc_conn *c);

/* Takes c out of the wheel (before it is freed or re-filed). */
void sc_conn_unschedule(struct sc_conn *c);

/* Writes what is queued; called at the end of a broadcast batch. */
void sc_conn_flush(struct sc_conn *c);

#endif /* SC_CONN_H */
