/*
 * text.h - small text helpers shared by the parsers and encoders:
 * ASCII case-insensitive comparison, JSON string escaping, JSON text cJSON
 * would misread, event ids
 *
 * Pure: caller buffers only, no allocation, no I/O.  One copy of each rule,
 * so that the request parser, the handshake, the client protocol, the
 * token claims and the log agree.
 */
#ifndef SC_TEXT_H
#define SC_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest event id: 2^53 - 1, exact in a JavaScript number.  Event
 * ids are 1 .. SC_EVENT_ID_MAX everywhere (URL, messages, claims, NOTIFY
 * payloads, the registry). */
#define SC_EVENT_ID_MAX ((UINT64_C(1) << 53) - 1)

/* True if the alen bytes at a equal the blen bytes at b, ASCII letters
 * compared without case (HTTP field names, tokens). */
bool sc_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen);

/*
 * Writes the NUL-terminated s, escaped as the inside of a JSON string
 * (quote, backslash and control characters), at out + pos.  A character
 * is written only while 8 bytes are free (its escape takes 6 at most), so
 * an escape is never cut and the caller keeps room to close the string.  Returns the new position
 * and sets *whole (if not NULL) to whether all of s was written; out[pos]
 * is NUL whenever pos < cap.
 */
size_t sc_json_escape(char *out, size_t cap, size_t pos, const char *s,
                      bool *whole);

/*
 * An event id written in decimal: n bytes of digits, at most 16, with a
 * value of 1 .. SC_EVENT_ID_MAX.  Leading zeros are accepted only when
 * `zeros` is true (a JSON string "007"; a URL path segment has one
 * spelling).  Returns 0 with *id set, or -1.
 */
int sc_event_id_digits(const char *s, size_t n, bool zeros, uint64_t *id);

/* An event id given as a JSON number: integral, 1 .. SC_EVENT_ID_MAX.
 * Returns 0 with *id set, or -1. */
int sc_event_id_number(double d, uint64_t *id);

/*
 * What cJSON lets through and JSON does not.  cJSON reads strings as C
 * strings, so a raw NUL byte or a \u0000 escape inside one ends it early
 * ("ping<NUL>zz" and "ping\u0000zz" would read as "ping"), and it takes
 * raw control bytes in strings, which RFC 8259 section 7 forbids.  Both
 * parsers of untrusted JSON (client messages, token parts) refuse such
 * text first.  True when s[0..n) holds no control byte but the blanks
 * tab, LF and CR, and no \u0000 escape; a backslash always escapes the
 * next byte, so "\\u0000" (an escaped backslash, then text) is not one.
 */
bool sc_json_text_ok(const uint8_t *s, size_t n);

#endif /* SC_TEXT_H */
