/*
 * ws_frame.h - RFC 6455 frames: resumable server-side parser, encoder
 *
 * Pure: caller buffers only; no I/O, no allocation, no globals, no clock,
 * no logging.  The worker's connection glue embeds one struct sc_ws_parser
 * in each connection, feeds it whatever each read returned (a frame may be
 * split at any byte, several frames may come in one read) and acts on the
 * events.  It builds its own frames with sc_ws_frame_encode() and
 * sc_ws_close_frame(); server frames are never masked (RFC 6455 5.1).
 *
 * The parser enforces docs/PROTOCOL.md section 5 and names the close
 * code to send:
 *   1002  unmasked frame, RSV bit set, reserved opcode, control frame
 *         fragmented or over 125 bytes, continuation without a message,
 *         new data frame inside a fragmented message, non-minimal or
 *         64-bit-with-top-bit length, 1-byte close payload, invalid close
 *         code or close reason that is not UTF-8
 *   1003  binary message (refused at its first header byte)
 *   1007  text not valid UTF-8, across fragments and reads, at the read
 *         that brings the bad byte; a message ending inside a sequence
 *   1009  message (sum of its frames) over max_message_size, as soon as
 *         the frame's length field is complete, before any payload
 * Checks that apply to the same frame run in header order (a binary frame
 * inside a fragmented message is a 1002, not a 1003).
 */
#ifndef SC_WS_FRAME_H
#define SC_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "utf8.h"

/* Opcodes (RFC 6455 5.2). */
#define SC_WS_OP_CONT 0x0
#define SC_WS_OP_TEXT 0x1
#define SC_WS_OP_BINARY 0x2
#define SC_WS_OP_CLOSE 0x8
#define SC_WS_OP_PING 0x9
#define SC_WS_OP_PONG 0xA

/* Close codes seatcast sends (RFC 6455 7.4.1). */
#define SC_WS_CLOSE_NORMAL 1000
#define SC_WS_CLOSE_GOING_AWAY 1001
#define SC_WS_CLOSE_PROTOCOL 1002
#define SC_WS_CLOSE_UNSUPPORTED 1003
#define SC_WS_CLOSE_INVALID_DATA 1007
#define SC_WS_CLOSE_POLICY 1008
#define SC_WS_CLOSE_TOO_BIG 1009
#define SC_WS_CLOSE_INTERNAL 1011

#define SC_WS_CONTROL_MAX 125      /* control payload (RFC 6455 5.5) */
#define SC_WS_CLOSE_REASON_MAX 123 /* control payload less the code */
#define SC_WS_HEADER_MAX 10        /* unmasked header: 2 + 8-byte length */

/*
 * Parser state, embedded in each connection (168 bytes, 125 of them the
 * control-frame buffer).  All fields are private: use the functions below.
 * Holds no pointer, so it may be copied or moved between calls.
 */
struct sc_ws_parser {
    uint64_t max_message; /* limit on the sum of a message's lengths */
    uint64_t message_len; /* announced length of the message so far */
    uint64_t remaining;   /* payload still to come; length accumulator */
    struct sc_utf8 utf8;  /* text message validated so far */
    uint8_t mask[4];      /* masking key of the current frame */
    uint16_t error;       /* close code, once failed */
    uint8_t state;        /* header byte 1/2, length, key, payload, ... */
    uint8_t opcode;       /* of the current frame */
    uint8_t flags;        /* FIN, fragmented message open, 64-bit length */
    uint8_t need;         /* length or key bytes still to gather */
    uint8_t mask_off;     /* key index of the next payload byte */
    uint8_t ctl_len;      /* bytes in ctl */
    uint8_t ctl[SC_WS_CONTROL_MAX]; /* control payload, unmasked */
};

/* 100 000 idle connections: keep the per-connection cost in sight. */
_Static_assert(offsetof(struct sc_ws_parser, ctl) <= 48,
               "ws parser state over 48 bytes");
_Static_assert(sizeof(struct sc_ws_parser) <= 168, "ws parser over 168 bytes");

enum sc_ws_event_type {
    SC_WS_EV_TEXT,
    SC_WS_EV_PING,
    SC_WS_EV_PONG,
    SC_WS_EV_CLOSE,
    SC_WS_EV_ERROR
};

/*
 * What the parser found.
 *   TEXT   data/len: the next chunk of the message, unmasked and valid
 *          UTF-8 so far; it points into the caller's buffer and lives as
 *          long as that buffer's contents.  Chunks come as the reads do
 *          (not buffered); len may be 0 only when fin is set (a message,
 *          or its last frame, with an empty payload).  fin: this chunk ends
 *          the message, and the whole message is valid UTF-8.
 *   PING   data/len: the whole payload (<= 125 bytes), to echo in a pong
 *   PONG   before anything else (RFC 6455 5.5.2).  Points into the parser:
 *          valid until the next call on it.
 *   CLOSE  close_code: the code received, or 0 when the frame had no
 *          payload (then echo a close with no code: 1005 semantics).
 *          data/len: the reason (<= 123 bytes, valid UTF-8), in the parser.
 *          Anything the peer sends after a close is discarded.
 *   ERROR  close_code: what the server must send (1002, 1003, 1007 or
 *          1009) before closing.  data is NULL, len 0.
 */
struct sc_ws_event {
    enum sc_ws_event_type type;
    const uint8_t *data;
    size_t len;
    bool fin;
    uint16_t close_code;
};

/*
 * Readies p for a new connection.  max_message_size bounds the sum of the
 * payload lengths of one data message (control frames do not count);
 * UINT64_MAX means no limit.
 */
void sc_ws_parser_init(struct sc_ws_parser *p, uint64_t max_message_size);

/*
 * Consumes buf[0..len) until one event is ready or the input is exhausted,
 * unmasking payloads in place (buf is the caller's read buffer).  Returns
 * the number of bytes consumed, 0..len (len is capped at LONG_MAX), and
 * sets *have_event; *ev is filled only then.  Every call either consumes a
 * byte or reports an event, so the caller loops:
 *
 *     while (off < len) {
 *         off += sc_ws_parser_feed(p, buf + off, len - off, &ev, &have);
 *         if (have) { act on ev; stop on ERROR or CLOSE }
 *     }
 *
 * After an ERROR the parser stays failed: each later call returns 0 and
 * the same ERROR.  After a CLOSE it swallows all input with no event.
 * Single-threaded: one parser per connection, used by its worker only.
 */
long sc_ws_parser_feed(struct sc_ws_parser *p, uint8_t *buf, size_t len,
                       struct sc_ws_event *ev, bool *have_event);

/*
 * XORs buf[0..len) with the masking key (RFC 6455 5.3), starting at key
 * index offset % 4, a word at a time.  Masking and unmasking are the same.
 */
void sc_ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], size_t offset);

/*
 * Writes the header of an unmasked frame with the minimal length form into
 * out and returns its size (2, 4 or 10), or 0 if len >= 2^63.  The opcode
 * is taken modulo 16; nothing else is checked.
 */
size_t sc_ws_frame_header(uint8_t out[SC_WS_HEADER_MAX], int opcode, bool fin,
                          uint64_t len);

/*
 * Writes one complete unmasked frame (FIN set): header then payload, which
 * may overlap out.  Returns the frame size, or -1 if it does not fit in
 * cap, if opcode is not one of SC_WS_OP_*, or if a control payload exceeds
 * 125 bytes.
 */
long sc_ws_frame_encode(uint8_t *out, size_t cap, int opcode,
                        const void *payload, size_t len);

/*
 * Writes a close frame.  code 0 gives an empty payload (reason ignored);
 * otherwise code must pass sc_ws_close_code_valid() and reason (NULL for
 * none) must be valid UTF-8 as a whole; it is then cut to 123 bytes at a
 * character boundary.  Returns the frame size or -1 (bad code, reason not
 * UTF-8, cap too small).
 */
long sc_ws_close_frame(uint8_t *out, size_t cap, uint16_t code,
                       const char *reason);

/*
 * True for the close codes a peer may send: 1000-1003, 1007-1011 and
 * 3000-4999 (as Autobahn|Testsuite has it; 1012-1014 are refused).
 */
bool sc_ws_close_code_valid(uint16_t code);

#endif /* SC_WS_FRAME_H */
