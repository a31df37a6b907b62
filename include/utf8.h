/*
 * utf8.h - incremental UTF-8 validator (RFC 3629)
 *
 * Pure: no I/O, no allocation, no globals.  The WebSocket parser
 * (ws_frame.c) feeds it text payloads chunk by chunk, across fragments, so
 * that a bad byte is refused as soon as it arrives (RFC 6455 8.1,
 * docs/PROTOCOL.md section 5: close 1007, failing fast).  Anyone else
 * needing a one-shot check uses sc_utf8_valid().
 *
 * "Fail fast" means the validator refuses the first byte that can no longer
 * begin or continue a valid sequence: a stray continuation byte, C0/C1 and
 * F5..FF anywhere, the second byte of an overlong (E0 80..9F, F0 80..8F),
 * of a surrogate (ED A0..BF) or of a code point above U+10FFFF (F4 90..BF),
 * and a missing continuation byte.  A sequence cut short by the end of the
 * input is only known to be bad at the end: sc_utf8_complete() says so.
 */
#ifndef SC_UTF8_H
#define SC_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Results of sc_utf8_feed(). */
#define SC_UTF8_OK 0
#define SC_UTF8_INVALID (-1)

/*
 * Validator state, embedded by its user (4 bytes).  Private fields: use the
 * functions below.
 */
struct sc_utf8 {
    uint8_t need; /* continuation bytes still expected */
    uint8_t lo;   /* range allowed for the next continuation byte */
    uint8_t hi;
    uint8_t bad; /* sticky: an invalid byte has been seen */
};

/* Starts a new text: nothing seen yet. */
void sc_utf8_init(struct sc_utf8 *u);

/*
 * Validates the next n bytes of the text.  Returns SC_UTF8_OK when every
 * byte so far can still be part of valid UTF-8, SC_UTF8_INVALID as soon as
 * one cannot (and from then on, whatever is fed).  p may be NULL when n is
 * 0.  Runs of ASCII are checked a word at a time.
 */
int sc_utf8_feed(struct sc_utf8 *u, const uint8_t *p, size_t n);

/*
 * True when the text fed so far is valid and does not end in the middle of
 * a sequence, i.e. it could end here.
 */
bool sc_utf8_complete(const struct sc_utf8 *u);

/* One-shot check: true when p[0..n) is complete, valid UTF-8. */
bool sc_utf8_valid(const uint8_t *p, size_t n);

#endif /* SC_UTF8_H */
