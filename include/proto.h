/*
 * proto.h - seatcast's client protocol (docs/PROTOCOL.md section 4):
 * parsing client messages and encoding server messages
 *
 * Pure: caller buffers, cJSON for parsing, no I/O, no clock (timestamps
 * are passed in as epoch milliseconds), no logging.  Encoders write one
 * JSON text with `type` first and `timestamp` last, exactly as the
 * protocol spells the fields, and return its length or -1 if cap is too small.
 */
#ifndef SC_PROTO_H
#define SC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SC_PROTO_MSG_MAX 640 /* room for any server message */

enum sc_msg_type {
    SC_MSG_SUBSCRIBE = 1,
    SC_MSG_UNSUBSCRIBE,
    SC_MSG_PING,
    SC_MSG_GET_STATS
};

enum sc_proto_err {
    SC_PROTO_OK = 0,
    SC_PROTO_INVALID_JSON = -1,  /* not JSON, not an object, bad type */
    SC_PROTO_UNKNOWN_TYPE = -2,
    SC_PROTO_MISSING_FIELD = -3, /* eventId absent */
    SC_PROTO_INVALID_FIELD = -4  /* eventId not a positive id */
};

struct sc_client_msg {
    enum sc_msg_type type;
    uint64_t event_id; /* subscribe/unsubscribe */
    char bad_type[64]; /* SC_PROTO_UNKNOWN_TYPE: the type, cut to fit */
};

/*
 * Parses one client text message.  Returns SC_PROTO_OK or an
 * SC_PROTO_* error; sc_proto_error_text() gives its code and message.
 */
int sc_proto_parse(const char *text, size_t len, struct sc_client_msg *out);

/*
 * Encodes {"type":"error","code":C,"message":M,"timestamp":T} for err
 * (an SC_PROTO_* parse error) or for one of the protocol-level codes below.
 */
long sc_proto_parse_error(char *out, size_t cap, int err,
                          const struct sc_client_msg *msg, uint64_t now_ms);

/* Error codes raised by the server outside parsing. */
enum sc_proto_server_err {
    SC_PERR_NOT_FOUND,     /* Event N not found */
    SC_PERR_FORBIDDEN,     /* Access to event N denied */
    SC_PERR_LIMIT,         /* Subscription limit reached */
    SC_PERR_RATE_LIMITED   /* Too many messages */
};
long sc_proto_server_error(char *out, size_t cap, enum sc_proto_server_err e,
                           uint64_t event_id, uint64_t now_ms);

/* "2024-11-11T10:30:00.000Z" into out[25]. */
void sc_proto_timestamp(uint64_t ms, char out[25]);

/* event_id 0 = general connection (no eventId field). */
long sc_proto_connection_established(char *out, size_t cap,
                                     const char *client_id,
                                     uint64_t event_id, uint64_t now_ms);
long sc_proto_subscribed(char *out, size_t cap, uint64_t event_id,
                         uint64_t now_ms);
long sc_proto_unsubscribed(char *out, size_t cap, uint64_t event_id,
                           uint64_t now_ms);
long sc_proto_seat_update(char *out, size_t cap, uint64_t event_id,
                          int32_t available, int32_t capacity,
                          uint64_t now_ms);
/* cancelled = 0: booking_created, 1: booking_cancelled */
long sc_proto_booking(char *out, size_t cap, int cancelled, uint64_t event_id,
                      int32_t available, uint64_t now_ms);
/* The same for n bookings merged into one message (--max-lag): carries
 * "bookings": n when n > 1. */
long sc_proto_bookings(char *out, size_t cap, int cancelled,
                       uint64_t event_id, int32_t available, uint32_t n,
                       uint64_t now_ms);
long sc_proto_pong(char *out, size_t cap, uint64_t now_ms);
long sc_proto_stats(char *out, size_t cap, uint64_t total_clients,
                    uint64_t event_subscriptions, uint64_t now_ms);

/*
 * "ws_<unix ms>_<base36>" from the time and a 64-bit random value.
 * out needs 48 bytes.
 */
void sc_proto_client_id(char *out, size_t cap, uint64_t now_ms,
                        uint64_t random);

#endif /* SC_PROTO_H */
