/*
 * lg_ws.h - the load generator's client side of RFC 6455 and of SPEC 4
 *
 * Pure: caller buffers only; no I/O, no allocation, no globals, no clock.
 * loadgen.c feeds it the bytes each read returned, from a buffer shared by
 * every connection, so nothing here keeps a pointer past the call.
 *
 * - lg_http_response() checks the server's answer to the upgrade request
 *   (status 101 and the Sec-WebSocket-Accept of LG_WS_KEY).
 * - lg_ws_frame_parse() cuts one server frame off the front of a buffer.
 *   Server frames are never masked (RFC 6455 5.1): a masked one, an RSV
 *   bit, a reserved opcode or a non-minimal length is an error.
 * - lg_ws_frame_build() writes a masked client frame (pong, close).
 * - lg_json_scan() reads "type", "eventId", "availableSeats" and
 *   "bookings" (how many bookings a merged booking_created or
 *   booking_cancelled stands for, SPEC 4 "Surges") from the top level of
 *   a server message without a JSON library: keys are compared, other
 *   values skipped (strings with escapes, nested objects and arrays,
 *   numbers, literals).
 */
#ifndef LG_WS_H
#define LG_WS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Every connection sends the key of RFC 6455 1.3; its accept value is
 * the one the RFC computes, so no SHA-1 is needed here. */
#define LG_WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define LG_WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define LG_WS_OP_CONT 0x0
#define LG_WS_OP_TEXT 0x1
#define LG_WS_OP_BINARY 0x2
#define LG_WS_OP_CLOSE 0x8
#define LG_WS_OP_PING 0x9
#define LG_WS_OP_PONG 0xA

/* Largest server frame accepted; seatcast's messages are ~130 bytes;
 * frame and response both fit the uint16_t carry of a connection. */
#define LG_WS_FRAME_MAX 16384
/* Largest upgrade response accepted (headers). */
#define LG_HTTP_MAX 8192

/* Results: progress is >= 0, errors are grouped as in seatcast. */
#define LG_MORE 0           /* incomplete: feed more bytes */
#define LG_E_PROTO (-200)   /* not RFC 6455 (mask, RSV, opcode, length) */
#define LG_E_TOO_BIG (-201) /* frame over LG_WS_FRAME_MAX */
#define LG_E_HTTP (-210)    /* response is not HTTP or has no 101 */
#define LG_E_ACCEPT (-211)  /* 101 without the right accept value */
#define LG_E_JSON (-220)    /* payload is not a JSON object */
#define LG_E_SPACE (-300)   /* caller's output buffer too small */

/* One server frame; payload points into the caller's buffer. */
struct lg_frame {
    const uint8_t *payload;
    size_t len;
    uint8_t opcode;
    bool fin;
};

/* Message types seatcast sends (SPEC 4). */
enum lg_msg_type {
    LG_MSG_OTHER = 0,
    LG_MSG_ESTABLISHED,
    LG_MSG_SEAT_UPDATE,
    LG_MSG_BOOKING_CREATED,
    LG_MSG_BOOKING_CANCELLED,
    LG_MSG_ERROR
};

/* What lg_json_scan() found; a field not present keeps has_x false. */
struct lg_msg {
    int64_t event_id;
    int64_t available;
    int64_t bookings; /* "bookings" (absent: 1; not an integer: 0) */
    enum lg_msg_type type;
    bool has_event;
    bool has_available;
    bool has_bookings;
};

/*
 * Parses the response to the upgrade request at the start of buf.
 * Returns the length of the status line and headers (through the empty
 * line) when they are complete and say 101 with accept LG_WS_ACCEPT,
 * LG_MORE when the empty line has not come yet (LG_E_HTTP past
 * LG_HTTP_MAX bytes), LG_E_HTTP or LG_E_ACCEPT.  *status gets the status
 * code once the status line is complete (else 0).
 */
long lg_http_response(const char *buf, size_t len, int *status);

/*
 * Parses the frame at the start of buf.  Returns its size (header and
 * payload) and fills *f when it is complete, LG_MORE when more bytes are
 * needed, or LG_E_PROTO / LG_E_TOO_BIG.
 */
long lg_ws_frame_parse(const uint8_t *buf, size_t len, struct lg_frame *f);

/*
 * Writes a final client frame of opcode op with payload (len <= 125:
 * only control frames are ever sent) masked with key into out.  Returns
 * the frame's size or LG_E_SPACE.
 */
long lg_ws_frame_build(uint8_t *out, size_t cap, uint8_t op,
                       const uint8_t *payload, size_t len, uint32_t key);

/*
 * Scans the JSON object in p[0..len) and fills *m.  Returns 0 or
 * LG_E_JSON (not an object, or cut short).
 */
int lg_json_scan(const char *p, size_t len, struct lg_msg *m);

#endif /* LG_WS_H */
