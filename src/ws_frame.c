/*
 * ws_frame.c - RFC 6455 frames: resumable server-side parser, encoder
 *
 * Pure code: no I/O, no allocation, no globals, no clock, no logging.
 * Called by the connection glue of each worker (see ws_frame.h).
 *
 * NOTES: the parser is a byte-level state machine in the manner of
 * wslay_frame.c, but it keeps no copy of the header: the length is
 * accumulated into `remaining` and the key into `mask` as the bytes come,
 * so the state stays at 40 bytes.  Every rule is checked at the first byte
 * that can break it (docs/PROTOCOL.md section 5 asks to fail fast): the
 * opcode and RSV bits at header byte 1, masking at byte 2, the length
 * rules (minimal form, top bit, message size) as soon as the length field is complete,
 * and UTF-8 on each chunk of payload as it arrives.  Text payload is
 * unmasked in the caller's buffer and handed out in place; control
 * payloads (<= 125 bytes, possibly split across reads) are gathered into
 * the parser's own buffer.
 */
#include "ws_frame.h"

#include <limits.h>
#include <string.h>

/* Parser states: where the next input byte belongs. */
enum {
    ST_HDR1,    /* FIN, RSV, opcode */
    ST_HDR2,    /* MASK bit, 7-bit length */
    ST_EXTLEN,  /* 2 or 8 bytes of extended length */
    ST_MASK,    /* 4 bytes of masking key */
    ST_PAYLOAD, /* data frame payload, handed out in place */
    ST_CONTROL, /* control frame payload, gathered into ctl */
    ST_CLOSED,  /* a close frame was received: input is discarded */
    ST_FAILED   /* an error was reported: nothing more is parsed */
};

/* Bits of parser flags. */
#define PF_FIN 0x01    /* the current frame has FIN set */
#define PF_IN_MSG 0x02 /* a fragmented message awaits continuations */
#define PF_EXT64 0x04  /* the current length uses the 64-bit form */

static bool
op_is_control(int op)
{
    return (op & 0x08) != 0;
}

void
sc_ws_parser_init(struct sc_ws_parser *p, uint64_t max_message_size)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message_size;
    p->state = ST_HDR1;
    sc_utf8_init(&p->utf8);
}

/* Stops the parser for good; the feed loop reports the error. */
static void
parser_fail(struct sc_ws_parser *p, uint16_t code)
{
    p->state = ST_FAILED;
    p->error = code;
}

static void
event_set(struct sc_ws_event *ev, enum sc_ws_event_type type,
          const uint8_t *data, size_t len, bool fin, uint16_t code)
{
    ev->type = type;
    ev->data = data;
    ev->len = len;
    ev->fin = fin;
    ev->close_code = code;
}

/*
 * The close code a frame with opcode op and FIN fin must cause at this
 * point of the stream, or 0 if it is acceptable.
 */
static uint16_t
frame_opcode_error(const struct sc_ws_parser *p, int op, bool fin)
{
    bool in_msg = (p->flags & PF_IN_MSG) != 0;

    switch (op) {
    case SC_WS_OP_CONT:
        /* RFC 6455 5.4: a continuation needs a message in progress */
        return in_msg ? 0 : SC_WS_CLOSE_PROTOCOL;
    case SC_WS_OP_TEXT:
        /* RFC 6455 5.4: fragments of two messages never interleave */
        return in_msg ? SC_WS_CLOSE_PROTOCOL : 0;
    case SC_WS_OP_BINARY:
        /* PROTOCOL.md section 5: binary is not part of the protocol */
        return in_msg ? SC_WS_CLOSE_PROTOCOL : SC_WS_CLOSE_UNSUPPORTED;
    case SC_WS_OP_CLOSE:
    case SC_WS_OP_PING:
    case SC_WS_OP_PONG:
        /* RFC 6455 5.5: control frames are never fragmented */
        return fin ? 0 : SC_WS_CLOSE_PROTOCOL;
    default:
        /* RFC 6455 5.2: reserved opcodes 3-7 and 0xB-0xF */
        return SC_WS_CLOSE_PROTOCOL;
    }
}

static void
header_byte1(struct sc_ws_parser *p, uint8_t b)
{
    int op = b & 0x0F;
    bool fin = (b & 0x80) != 0;
    uint16_t err = frame_opcode_error(p, op, fin);

    /* RFC 6455 5.2: no extension is negotiated, so RSV1-3 must be 0 */
    if ((b & 0x70) != 0) {
        err = SC_WS_CLOSE_PROTOCOL;
    }
    if (err != 0) {
        parser_fail(p, err);
        return;
    }
    p->opcode = (uint8_t)op;
    p->flags = (uint8_t)((p->flags & PF_IN_MSG) | (fin ? PF_FIN : 0));
    if (op == SC_WS_OP_TEXT) {
        p->message_len = 0;
        sc_utf8_init(&p->utf8);
    }
    if (!op_is_control(op)) {
        /* the next frame header comes only after this frame's payload */
        p->flags =
            (uint8_t)(fin ? p->flags & ~PF_IN_MSG : p->flags | PF_IN_MSG);
    }
    p->state = ST_HDR2;
}

/* The length is known: check it against the form and the message limit. */
static void
header_length_done(struct sc_ws_parser *p, bool extended)
{
    uint64_t min = (p->flags & PF_EXT64) ? 65536 : 126;

    /* RFC 6455 5.2: "the minimal number of bytes MUST be used" */
    if (extended && p->remaining < min) {
        parser_fail(p, SC_WS_CLOSE_PROTOCOL);
        return;
    }
    if (!op_is_control(p->opcode)) {
        /* fail fast: refuse from the header, before the payload comes */
        if (p->remaining > p->max_message - p->message_len) {
            parser_fail(p, SC_WS_CLOSE_TOO_BIG);
            return;
        }
        p->message_len += p->remaining;
    }
    p->state = ST_MASK;
    p->need = 4;
}

static void
header_byte2(struct sc_ws_parser *p, uint8_t b)
{
    uint8_t len7 = b & 0x7F;

    /* RFC 6455 5.1: the server closes on any unmasked client frame */
    if ((b & 0x80) == 0) {
        parser_fail(p, SC_WS_CLOSE_PROTOCOL);
        return;
    }
    /* RFC 6455 5.5: control payloads are at most 125 bytes */
    if (op_is_control(p->opcode) && len7 > SC_WS_CONTROL_MAX) {
        parser_fail(p, SC_WS_CLOSE_PROTOCOL);
        return;
    }
    p->remaining = 0;
    p->flags &= (uint8_t)~PF_EXT64;
    if (len7 == 126) {
        p->need = 2;
        p->state = ST_EXTLEN;
    } else if (len7 == 127) {
        p->need = 8;
        p->flags |= PF_EXT64;
        p->state = ST_EXTLEN;
    } else {
        p->remaining = len7;
        header_length_done(p, false);
    }
}

static void
header_extlen(struct sc_ws_parser *p, uint8_t b)
{
    /* RFC 6455 5.2: the most significant bit of a 64-bit length is 0 */
    if (p->need == 8 && (b & 0x80) != 0) {
        parser_fail(p, SC_WS_CLOSE_PROTOCOL);
        return;
    }
    p->remaining = (p->remaining << 8) | b;
    if (--p->need == 0) {
        header_length_done(p, true);
    }
}

/*
 * Ends a stretch of text payload data[0..n) that passed UTF-8 so far: an
 * event for it, final if it closes the message.
 */
static void
text_chunk(struct sc_ws_parser *p, const uint8_t *data, size_t n,
           struct sc_ws_event *ev, bool *have_event)
{
    bool fin = p->remaining == 0 && (p->flags & PF_FIN) != 0;

    if (p->remaining == 0) {
        p->state = ST_HDR1;
    }
    /* RFC 6455 8.1: the message as a whole must be valid UTF-8 */
    if (fin && !sc_utf8_complete(&p->utf8)) {
        parser_fail(p, SC_WS_CLOSE_INVALID_DATA);
        return;
    }
    if (n > 0 || fin) {
        event_set(ev, SC_WS_EV_TEXT, data, n, fin, 0);
        *have_event = true;
    }
}

/* The close frame is complete in ctl: check code and reason. */
static void
close_done(struct sc_ws_parser *p, struct sc_ws_event *ev, bool *have_event)
{
    uint16_t code = 0;
    size_t skip = 0;

    if (p->ctl_len == 1) {
        /* RFC 6455 5.5.1: a body starts with a 2-byte status code */
        parser_fail(p, SC_WS_CLOSE_PROTOCOL);
        return;
    }
    if (p->ctl_len >= 2) {
        code = (uint16_t)(p->ctl[0] << 8 | p->ctl[1]);
        skip = 2;
        /* PROTOCOL.md section 5: invalid close code or reason -> 1002 */
        if (!sc_ws_close_code_valid(code) ||
            !sc_utf8_valid(p->ctl + 2, p->ctl_len - 2u)) {
            parser_fail(p, SC_WS_CLOSE_PROTOCOL);
            return;
        }
    }
    p->state = ST_CLOSED;
    event_set(ev, SC_WS_EV_CLOSE, p->ctl + skip, p->ctl_len - skip, true, code);
    *have_event = true;
}

/* The control frame is complete in ctl: report it. */
static void
control_done(struct sc_ws_parser *p, struct sc_ws_event *ev, bool *have_event)
{
    p->state = ST_HDR1;
    if (p->opcode == SC_WS_OP_CLOSE) {
        close_done(p, ev, have_event);
        return;
    }
    event_set(ev, p->opcode == SC_WS_OP_PING ? SC_WS_EV_PING : SC_WS_EV_PONG,
              p->ctl, p->ctl_len, true, 0);
    *have_event = true;
}

/*
 * Takes masking key byte b; once the key is complete the payload starts,
 * or the frame ends at once if it is empty (next: the byte after the
 * header, where an empty text chunk points).
 */
static void
header_mask(struct sc_ws_parser *p, uint8_t b, const uint8_t *next,
            struct sc_ws_event *ev, bool *have_event)
{
    p->mask[4 - p->need] = b;
    if (--p->need > 0) {
        return;
    }
    p->mask_off = 0;
    if (op_is_control(p->opcode)) {
        p->ctl_len = 0;
        p->state = ST_CONTROL;
        if (p->remaining == 0) {
            control_done(p, ev, have_event);
        }
        return;
    }
    p->state = ST_PAYLOAD;
    if (p->remaining == 0) {
        text_chunk(p, next, 0, ev, have_event);
    }
}

/* Unmasks the next n payload bytes at data, keeping the key position. */
static void
payload_unmask(struct sc_ws_parser *p, uint8_t *data, size_t n)
{
    sc_ws_mask(data, n, p->mask, p->mask_off);
    p->mask_off = (uint8_t)((p->mask_off + n) & 3);
    p->remaining -= n;
}

/* Data payload: unmask in place, validate, hand out.  Returns bytes used. */
static size_t
payload_data(struct sc_ws_parser *p, uint8_t *in, size_t avail,
             struct sc_ws_event *ev, bool *have_event)
{
    size_t n = p->remaining < avail ? (size_t)p->remaining : avail;

    payload_unmask(p, in, n);
    /* PROTOCOL.md section 5: fail at the read that brings the bad byte */
    if (sc_utf8_feed(&p->utf8, in, n) != SC_UTF8_OK) {
        parser_fail(p, SC_WS_CLOSE_INVALID_DATA);
        return n;
    }
    text_chunk(p, in, n, ev, have_event);
    return n;
}

/* Control payload: gather into ctl.  Returns bytes used. */
static size_t
payload_control(struct sc_ws_parser *p, const uint8_t *in, size_t avail,
                struct sc_ws_event *ev, bool *have_event)
{
    size_t n = p->remaining < avail ? (size_t)p->remaining : avail;
    uint8_t *dst = p->ctl + p->ctl_len;

    /* remaining <= 125 - ctl_len, checked at header byte 2 */
    memcpy(dst, in, n);
    payload_unmask(p, dst, n);
    p->ctl_len = (uint8_t)(p->ctl_len + n);
    if (p->remaining == 0) {
        control_done(p, ev, have_event);
    }
    return n;
}

/* One step of the state machine on in[0..n), n > 0.  Returns bytes used. */
static size_t
parser_step(struct sc_ws_parser *p, uint8_t *in, size_t n,
            struct sc_ws_event *ev, bool *have_event)
{
    switch (p->state) {
    case ST_HDR1:
        header_byte1(p, in[0]);
        return 1;
    case ST_HDR2:
        header_byte2(p, in[0]);
        return 1;
    case ST_EXTLEN:
        header_extlen(p, in[0]);
        return 1;
    case ST_MASK:
        header_mask(p, in[0], in + 1, ev, have_event);
        return 1;
    case ST_PAYLOAD:
        return payload_data(p, in, n, ev, have_event);
    case ST_CONTROL:
        return payload_control(p, in, n, ev, have_event);
    default:
        /* RFC 6455 5.5.1: nothing is to follow a close frame */
        return n;
    }
}

long
sc_ws_parser_feed(struct sc_ws_parser *p, uint8_t *buf, size_t len,
                  struct sc_ws_event *ev, bool *have_event)
{
    size_t off = 0;

    *have_event = false;
    if (len > LONG_MAX) {
        len = LONG_MAX;
    }
    while (off < len && !*have_event && p->state != ST_FAILED) {
        off += parser_step(p, buf + off, len - off, ev, have_event);
    }
    if (p->state == ST_FAILED) {
        event_set(ev, SC_WS_EV_ERROR, NULL, 0, false, p->error);
        *have_event = true;
    }
    return (long)off;
}

void
sc_ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], size_t offset)
{
    uint8_t k8[8];
    uint64_t k, w;
    size_t i;

    /* the key repeats every 4 bytes, so a word holds it twice */
    for (i = 0; i < 8; i++) {
        k8[i] = key[(offset + i) & 3];
    }
    memcpy(&k, k8, sizeof(k));
    /* memcpy: alignment-safe loads and stores, one instruction each */
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, buf + i, sizeof(w));
        w ^= k;
        memcpy(buf + i, &w, sizeof(w));
    }
    for (; i < len; i++) {
        buf[i] ^= k8[i & 7];
    }
}

size_t
sc_ws_frame_header(uint8_t out[SC_WS_HEADER_MAX], int opcode, bool fin,
                   uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    if (len >> 63 != 0) {
        return 0;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return 10;
}

static bool
op_is_known(int op)
{
    switch (op) {
    case SC_WS_OP_CONT:
    case SC_WS_OP_TEXT:
    case SC_WS_OP_BINARY:
    case SC_WS_OP_CLOSE:
    case SC_WS_OP_PING:
    case SC_WS_OP_PONG:
        return true;
    default:
        return false;
    }
}

long
sc_ws_frame_encode(uint8_t *out, size_t cap, int opcode, const void *payload,
                   size_t len)
{
    uint8_t hdr[SC_WS_HEADER_MAX];
    size_t h;

    if (!op_is_known(opcode) ||
        (op_is_control(opcode) && len > SC_WS_CONTROL_MAX)) {
        return -1;
    }
    h = sc_ws_frame_header(hdr, opcode, true, len);
    if (h == 0 || len > cap || h > cap - len || len > LONG_MAX - h) {
        return -1;
    }
    /* payload first: it may sit where the header goes */
    if (len > 0) {
        memmove(out + h, payload, len);
    }
    memcpy(out, hdr, h);
    return (long)(h + len);
}

/*
 * Length of the valid UTF-8 reason of n bytes cut to SC_WS_CLOSE_REASON_MAX
 * without splitting a sequence: the cut moves back over continuation bytes
 * (at most 3, since the whole reason is valid).
 */
static size_t
close_reason_cut(const char *reason, size_t n)
{
    if (n <= SC_WS_CLOSE_REASON_MAX) {
        return n;
    }
    n = SC_WS_CLOSE_REASON_MAX;
    while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

long
sc_ws_close_frame(uint8_t *out, size_t cap, uint16_t code, const char *reason)
{
    uint8_t body[SC_WS_CONTROL_MAX];
    size_t rlen = 0;

    if (code == 0) {
        return sc_ws_frame_encode(out, cap, SC_WS_OP_CLOSE, NULL, 0);
    }
    if (!sc_ws_close_code_valid(code)) {
        return -1;
    }
    if (reason != NULL) {
        rlen = strlen(reason);
        if (!sc_utf8_valid((const uint8_t *)reason, rlen)) {
            return -1;
        }
        rlen = close_reason_cut(reason, rlen);
        memcpy(body + 2, reason, rlen);
    }
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    return sc_ws_frame_encode(out, cap, SC_WS_OP_CLOSE, body, rlen + 2);
}

bool
sc_ws_close_code_valid(uint16_t code)
{
    /* 3000-3999 registered with IANA, 4000-4999 private use */
    if (code >= 3000 && code <= 4999) {
        return true;
    }
    /* RFC 6455 7.4.1; 1004-1006 and 1015 are never sent on the wire */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011);
}
