/*
 * session.c - one client's protocol decisions (see session.h)
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "http_req.h"
#include "jwt.h"

void
sc_session_init(struct sc_session *s, const struct sc_session_limits *lim,
                uint64_t now)
{
    memset(s, 0, sizeof(*s));
    s->rate_ms = now;
    s->rate_tokens = lim->max_message_rate * 2000;
}

void
sc_session_fini(struct sc_session *s)
{
    if (s->claims != NULL) {
        sc_jwt_claims_fini(s->claims);
        free(s->claims);
        s->claims = NULL;
    }
}

const char *
sc_session_verify(const struct sc_jwt_keys *keys,
                  const struct sc_session_limits *lim, bool present,
                  bool too_long, const char *token, size_t len, uint64_t wall,
                  struct sc_jwt_claims *claims, const char **why)
{
    struct sc_jwt_opts o = {.now = (int64_t)(wall / 1000),
                            .leeway = lim->jwt_leeway,
                            .issuer = lim->jwt_issuer,
                            .audience = lim->jwt_audience};

    memset(claims, 0, sizeof(*claims));
    if (!present && !too_long) {
        *why = "no token";
        return SC_SESSION_NO_TOKEN;
    }
    if (too_long) {
        *why = "token too long";
        return SC_SESSION_BAD_TOKEN;
    }
    if (sc_jwt_verify(keys, token, len, &o, claims, why) != SC_JWT_OK) {
        return SC_SESSION_BAD_TOKEN;
    }
    return NULL;
}

int
sc_session_start(struct sc_session *s, struct sc_jwt_claims *claims,
                 uint64_t jti_hash)
{
    if (claims->has_events) {
        /* the events claim is checked on every subscribe */
        s->claims = malloc(sizeof(*s->claims));
        if (s->claims == NULL) {
            return -1;
        }
        *s->claims = *claims;
        claims->events = NULL; /* now the session's */
    }
    s->exp = claims->exp;
    s->jti_hash = jti_hash;
    return 0;
}

bool
sc_session_expired(const struct sc_session *s,
                   const struct sc_session_limits *lim, uint64_t wall)
{
    return s->exp != 0 && (int64_t)(wall / 1000) >= s->exp + lim->jwt_leeway;
}

uint64_t
sc_session_expiry_due(const struct sc_session *s,
                      const struct sc_session_limits *lim, uint64_t now,
                      uint64_t wall)
{
    int64_t left;

    if (s->exp == 0) {
        return UINT64_MAX;
    }
    left = (s->exp + lim->jwt_leeway) * 1000 - (int64_t)wall;
    return now + (left > 0 ? (uint64_t)left : 0);
}

/* Token bucket: true if the message may be handled. */
static bool
rate_ok(struct sc_session *s, const struct sc_session_limits *lim,
        uint64_t now)
{
    uint64_t rate = lim->max_message_rate;
    uint64_t cap = rate * 2000; /* bursts of twice the rate */
    uint64_t tokens = s->rate_tokens + (now - s->rate_ms) * rate;

    s->rate_ms = now;
    s->rate_tokens = (uint32_t)(tokens > cap ? cap : tokens);
    if (s->rate_tokens >= 1000) {
        s->rate_tokens -= 1000;
        /* a flood still gets a message through now and then as the bucket
         * refills: only a second without a refusal ends it */
        if (s->flood_since_ms != 0 && now - s->last_refused_ms >= 1000) {
            s->flood_since_ms = 0;
        }
        return true;
    }
    s->last_refused_ms = now;
    return false;
}

static void
reply(struct sc_session_action *act, long len)
{
    act->what = len < 0 ? SC_SESSION_NOTHING : SC_SESSION_REPLY;
    act->len = len;
}

/* subscribe_event: allowed by the token's events claim, or forbidden. */
static void
subscribe_action(const struct sc_session *s, uint64_t id, uint64_t wall,
                 struct sc_session_action *act)
{
    if (!sc_jwt_claims_allows_event(s->claims, id)) {
        reply(act, sc_proto_server_error(act->reply, sizeof(act->reply),
                                         SC_PERR_FORBIDDEN, id, wall));
        return;
    }
    act->what = SC_SESSION_SUBSCRIBE;
    act->event_id = id;
}

void
sc_session_open_event(const struct sc_session *s, uint64_t event_id,
                      uint64_t wall, struct sc_session_action *act)
{
    memset(act, 0, offsetof(struct sc_session_action, reply));
    act->len = -1;
    subscribe_action(s, event_id, wall, act);
}

void
sc_session_on_message(struct sc_session *s,
                      const struct sc_session_limits *lim,
                      const uint8_t *data, size_t len, uint64_t now,
                      uint64_t wall, struct sc_session_action *act)
{
    struct sc_client_msg m;
    int rc;

    memset(act, 0, offsetof(struct sc_session_action, reply));
    act->len = -1;
    if (!rate_ok(s, lim, now)) {
        act->rate_limited = true;
        if (s->flood_since_ms == 0) {
            s->flood_since_ms = now;
        } else if (now - s->flood_since_ms >= SC_SESSION_FLOOD_MS) {
            act->what = SC_SESSION_CLOSE;
            act->close_code = SC_SESSION_CLOSE_POLICY;
            act->close_reason = SC_SESSION_FLOOD;
            return;
        }
        reply(act, sc_proto_server_error(act->reply, sizeof(act->reply),
                                         SC_PERR_RATE_LIMITED, 0, wall));
        return;
    }
    rc = sc_proto_parse((const char *)data, len, &m);
    if (rc != SC_PROTO_OK) {
        reply(act, sc_proto_parse_error(act->reply, sizeof(act->reply), rc,
                                        &m, wall));
        return;
    }
    switch (m.type) {
    case SC_MSG_SUBSCRIBE:
        subscribe_action(s, m.event_id, wall, act);
        return;
    case SC_MSG_UNSUBSCRIBE:
        act->what = SC_SESSION_UNSUBSCRIBE;
        act->event_id = m.event_id;
        act->len = sc_proto_unsubscribed(act->reply, sizeof(act->reply),
                                         m.event_id, wall);
        return;
    case SC_MSG_PING:
        reply(act, sc_proto_pong(act->reply, sizeof(act->reply), wall));
        return;
    case SC_MSG_GET_STATS:
        act->what = SC_SESSION_STATS;
        return;
    }
}

void
sc_session_subscribe_refused(enum sc_session_sub why, uint64_t event_id,
                             uint64_t wall, struct sc_session_action *act)
{
    enum sc_proto_server_err e =
        why == SC_SESSION_SUB_NOT_FOUND ? SC_PERR_NOT_FOUND : SC_PERR_LIMIT;

    memset(act, 0, offsetof(struct sc_session_action, reply));
    act->event_id = event_id;
    reply(act, sc_proto_server_error(act->reply, sizeof(act->reply), e,
                                     event_id, wall));
}

long
sc_session_http_error(int rc, char *out, size_t cap, int *status)
{
    const char *body;

    *status = rc == SC_HTTP_ETOOBIG ? 431 : 400;
    body = *status == 431 ? "{\"error\":\"headers too large\"}"
                          : "{\"error\":\"malformed request\"}";
    return sc_http_response(*status, "application/json", NULL, body,
                            strlen(body), out, cap);
}
