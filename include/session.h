/*
 * session.h - what one client's protocol decides (docs/PROTOCOL.md
 * sections 3 to 5)
 *
 * Pure: no socket, no clock (callers pass `now`, monotonic ms, and
 * `wall`, Unix ms), no registry, no logging.  The connection glue
 * (conn.c) reads bytes, hands the pieces to these functions and carries
 * out the action each returns: send a reply, subscribe, unsubscribe,
 * answer with the stats, close with a code and a reason.  Everything a
 * client can observe of the protocol, apart from the frames themselves
 * (ws_frame) and the upgrade (ws_handshake), is decided here:
 *   - message dispatch and the error replies (sc_session_on_message);
 *   - the token bucket of --max-message-rate and the flood close;
 *   - the events a token may follow, --max-subscriptions
 *     (sc_session_subscribe_refused);
 *   - the token check's result as a close reason (sc_session_verify),
 *     token expiry (sc_session_expired);
 *   - the HTTP error answers to a request that cannot be parsed
 *     (sc_session_http_error).
 */
#ifndef SC_SESSION_H
#define SC_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct sc_jwt_claims;
struct sc_jwt_keys;

/* Close reasons (all with code SC_SESSION_CLOSE_POLICY, 1008). */
#define SC_SESSION_CLOSE_POLICY 1008
#define SC_SESSION_NO_TOKEN "Authentication required"
#define SC_SESSION_BAD_TOKEN "Invalid token"
#define SC_SESSION_EXPIRED "Token expired"
#define SC_SESSION_REVOKED "Token revoked"
#define SC_SESSION_FLOOD "Rate limit exceeded"
#define SC_SESSION_USER_LIMIT "Too many connections"
#define SC_SESSION_SLOW "Slow consumer"

#define SC_SESSION_FLOOD_MS 2000 /* refusals for this long: close */

/* The settings a session follows (from the configuration). */
struct sc_session_limits {
    uint32_t max_message_rate;  /* messages per second; bursts of twice */
    uint32_t max_subscriptions; /* per connection */
    int jwt_leeway;             /* seconds */
    const char *jwt_issuer;     /* "" or NULL: not checked */
    const char *jwt_audience;
};

struct sc_session {
    uint64_t rate_ms;         /* token bucket refill time */
    uint64_t flood_since_ms;  /* first refusal of a flood, 0 none */
    uint64_t last_refused_ms; /* last refusal */
    uint32_t rate_tokens;     /* in thousandths of a message */
    int64_t exp;              /* token expiry (Unix s), 0 none */
    uint64_t jti_hash;        /* the token's jti (registry hash), 0 none */
    struct sc_jwt_claims *claims; /* kept only when it limits the events */
};

enum sc_session_do {
    SC_SESSION_NOTHING = 0,
    SC_SESSION_REPLY,       /* send reply */
    SC_SESSION_SUBSCRIBE,   /* subscribe to event_id (then see
                               sc_session_subscribe_refused) */
    SC_SESSION_UNSUBSCRIBE, /* drop event_id, then send reply */
    SC_SESSION_STATS,       /* send sc_proto_stats() of the totals */
    SC_SESSION_CLOSE        /* close with close_code, close_reason */
};

struct sc_session_action {
    enum sc_session_do what;
    bool rate_limited;        /* the message was refused by the bucket */
    uint64_t event_id;        /* SUBSCRIBE, UNSUBSCRIBE */
    uint16_t close_code;      /* CLOSE */
    const char *close_reason; /* CLOSE */
    long len;                 /* REPLY, UNSUBSCRIBE: bytes in reply */
    char reply[SC_PROTO_MSG_MAX];
};

/* A new connection: a full bucket (twice the rate), no token yet. */
void sc_session_init(struct sc_session *s,
                     const struct sc_session_limits *lim, uint64_t now);

/* Frees what the session holds.  Idempotent. */
void sc_session_fini(struct sc_session *s);

/*
 * Checks the token of an upgrade: `present` false when the request had
 * none, `too_long` when it had one over the limit.  Returns NULL when it
 * is valid (claims filled; the caller still checks the jti against the
 * revoked set), else the close reason, with the precise cause for the log
 * in *why and claims empty.
 */
const char *sc_session_verify(const struct sc_jwt_keys *keys,
                              const struct sc_session_limits *lim,
                              bool present, bool too_long, const char *token,
                              size_t len, uint64_t wall,
                              struct sc_jwt_claims *claims, const char **why);

/*
 * The upgrade is done with a valid token: the session keeps its expiry,
 * its jti (jti_hash, computed by the caller) and, when the token limits
 * the events, the claims (their heap part moves into the session).
 * Returns -1 out of memory.
 */
int sc_session_start(struct sc_session *s, struct sc_jwt_claims *claims,
                     uint64_t jti_hash);

/* True once the token's exp (plus the leeway) has passed. */
bool sc_session_expired(const struct sc_session *s,
                        const struct sc_session_limits *lim, uint64_t wall);

/* Monotonic ms at which the token expires, given now/wall; UINT64_MAX if
 * it does not. */
uint64_t sc_session_expiry_due(const struct sc_session *s,
                               const struct sc_session_limits *lim,
                               uint64_t now, uint64_t wall);

/*
 * One complete text message from the client: what to do.  Counts it
 * against the bucket first (a refusal is an error reply, or after
 * SC_SESSION_FLOOD_MS of refusals a close), then parses and dispatches it.
 * A subscription to an event the token does not allow is refused here.
 */
void sc_session_on_message(struct sc_session *s,
                           const struct sc_session_limits *lim,
                           const uint8_t *data, size_t len, uint64_t now,
                           uint64_t wall, struct sc_session_action *act);

/*
 * The event of /ws/events/{eventId}, right after connection_established:
 * SUBSCRIBE, or the forbidden error when the token does not allow it, as
 * for a subscribe_event message.
 */
void sc_session_open_event(const struct sc_session *s, uint64_t event_id,
                           uint64_t wall, struct sc_session_action *act);

/* Why a subscription could not be made, once the glue knows. */
enum sc_session_sub {
    SC_SESSION_SUB_NOT_FOUND, /* not in the registry, or deleted */
    SC_SESSION_SUB_LIMIT,     /* --max-subscriptions reached */
    SC_SESSION_SUB_NOMEM      /* out of memory: said as the limit */
};

/* The error reply for it, in act (what = REPLY). */
void sc_session_subscribe_refused(enum sc_session_sub why, uint64_t event_id,
                                  uint64_t wall,
                                  struct sc_session_action *act);

/*
 * The answer to a request head that cannot be parsed (http_req's error
 * rc: SC_HTTP_ETOOBIG gives 431, anything else 400), a whole HTTP
 * response in out.  Returns its length, or -1; *status gets the status.
 */
long sc_session_http_error(int rc, char *out, size_t cap, int *status);

#endif /* SC_SESSION_H */
