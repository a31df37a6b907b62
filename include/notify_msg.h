/*
 * notify_msg.h - parse one NOTIFY payload from the booking database
 *
 * The triggers of sql/notify.sql send, on the seatcast channel, one JSON
 * object per change (PROTOCOL.md section 7):
 *
 *   {"type":"booking_created","eventId":12,"availableSeats":44,
 *    "seatCapacity":100,"version":17,"ts":1731321000000}
 *   {"type":"event_deleted","eventId":12,"version":18}
 *   {"type":"token_revoked","jti":"0f3c..."}
 *
 * sc_notify_parse() turns one payload into a struct sc_notify, strictly:
 * a malformed payload is refused with a reason for the log, never half
 * applied.  Pure: no I/O, no globals, no clock, no logging; the listener
 * process calls it for each notification libpq hands over.
 */
#ifndef SC_NOTIFY_MSG_H
#define SC_NOTIFY_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* NOTIFY refuses payloads of 8000 bytes or more; so do we. */
#define SC_NOTIFY_MAX_PAYLOAD 7999
/* Longest jti accepted, in bytes (printable ASCII only). */
#define SC_NOTIFY_JTI_MAX 128
enum sc_notify_type {
    SC_NOTIFY_BOOKING_CREATED,
    SC_NOTIFY_BOOKING_CANCELLED,
    SC_NOTIFY_SEAT_UPDATE,
    SC_NOTIFY_EVENT_DELETED,
    SC_NOTIFY_TOKEN_REVOKED
};

/*
 * Errors of sc_notify_parse(), by kind: payload (-200s), misuse (-300).
 */
enum sc_notify_err {
    SC_NOTIFY_EJSON = -201,    /* not JSON, not an object, trailing data,
                                  too long (or cJSON out of memory) */
    SC_NOTIFY_ETYPE = -202,    /* "type" missing, not a string, unknown */
    SC_NOTIFY_EMISSING = -203, /* a field the type needs is absent */
    SC_NOTIFY_EFIELD = -204,   /* a field of the wrong JSON type, not an
                                  integer, out of range, or repeated */
    SC_NOTIFY_EARG = -301      /* NULL payload or out */
};

/*
 * One parsed notification.  Which fields are set depends on type:
 *
 *   booking_created, booking_cancelled, seat_update:
 *       event_id, available_seats, seat_capacity, version (has_version)
 *   event_deleted:  event_id; version if present (has_version)
 *   token_revoked:  jti
 *
 * Fields a type does not use are zero (jti empty).  ts_ms is the optional
 * "ts" of every type (commit time, epoch ms), 0 when absent.
 */
struct sc_notify {
    enum sc_notify_type type;
    uint64_t event_id;       /* 1 .. SC_EVENT_ID_MAX (text.h) */
    int32_t available_seats; /* 0 .. seat_capacity */
    int32_t seat_capacity;   /* 0 .. INT32_MAX */
    int64_t version;         /* 0 .. INT64_MAX, valid if has_version */
    bool has_version;
    int64_t ts_ms;                   /* 0 .. INT64_MAX; 0 = absent */
    char jti[SC_NOTIFY_JTI_MAX + 1]; /* NUL-terminated, "" unless revoked */
};

/*
 * Parses payload[0..len) (no NUL needed; an embedded NUL is an error) into
 * *out.  The payload must be exactly one JSON object, optionally surrounded
 * by JSON whitespace.  Members:
 *
 *   type            string, one of the five names, required
 *   eventId         JSON integer or a string of digits (no sign, no
 *                   leading zero), 1 .. 2^53-1
 *   availableSeats  JSON integer 0 .. 2^31-1, <= seatCapacity
 *   seatCapacity    JSON integer 0 .. 2^31-1
 *   version         JSON integer 0 .. 2^63-1
 *   ts              JSON integer 0 .. 2^63-1, optional for every type
 *   jti             string of 1..128 printable ASCII bytes
 *
 * Numbers must be written as integers: 1.5, 1e3, 1.0, -0, +1 and 01 are
 * refused, and a value is never rounded.  Members a type does not use are
 * ignored, as are unknown ones (payloads may grow); a known member given
 * twice is an error.
 *
 * Returns 0, or a negative SC_NOTIFY_E* with *reason (if reason is not
 * NULL) set to a static string such as "missing field eventId" or
 * "availableSeats out of range"; on success *reason is NULL.  *out is fully
 * written on success and undefined on error.  Any process may call it.
 */
int sc_notify_parse(const char *payload, size_t len, struct sc_notify *out,
                    const char **reason);

/*
 * Verifying notifications against the database (SPEC section 7: a payload
 * is only a hint).  Any role that can connect may NOTIFY the channel, so
 * the listener re-reads, once per drain of notifications, the rows of
 * seatcast_seat_state of the events named and the revoked-token rows of
 * the jtis named, and asks sc_notify_verify() what each hint may do.
 */
struct sc_seat_row {
    uint64_t event_id;
    int32_t available_seats;
    int32_t seat_capacity;
    int64_t version;
};

enum sc_notify_verdict {
    SC_VERIFY_APPLY,   /* apply (seat fields may have been replaced) */
    SC_VERIFY_FORGED,  /* contradicts the database: dropped */
    SC_VERIFY_UNKNOWN  /* names an event the database does not have */
};

/*
 * Decides, for each of the n hints in arrival order, against the rows the
 * database returned (rows: the events named that exist; revoked: the jtis
 * named that the table holds):
 *
 *   token_revoked    APPLY if its jti is in revoked, else FORGED
 *   event_deleted    APPLY if the event has no row, else FORGED
 *   seat types       UNKNOWN if the event has no row; FORGED if the
 *                    version is beyond the row's (a notification is read
 *                    after its commit, so the row is at least as new); the
 *                    row's version: APPLY with the row's seats and capacity
 *                    (the payload's are replaced); an older version: APPLY
 *                    as sent (an intermediate state the database no longer
 *                    holds; the listener still drops what the registry has
 *                    already passed).
 *
 * Pure; verdicts[n] is written, hints[] may be changed (seat fields).
 */
void sc_notify_verify(struct sc_notify *hints, size_t n,
                      const struct sc_seat_row *rows, size_t nrows,
                      const char *const *revoked, size_t nrevoked,
                      enum sc_notify_verdict *verdicts);

/* "booking_created" ... "token_revoked", or NULL for a bad value. */
const char *sc_notify_type_name(enum sc_notify_type type);

#endif /* SC_NOTIFY_MSG_H */
