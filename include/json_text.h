/*
 * json_text.h - what cJSON lets through and JSON does not
 *
 * Pure: no I/O, no allocation.  cJSON reads strings as C strings, so a raw
 * NUL byte or a \u0000 escape inside one ends it early: "ping<NUL>zz" and
 * "ping\u0000zz" would both read as "ping", which is not what was sent.
 * It also takes raw control bytes inside strings, which RFC 8259 section 7
 * forbids.  Both parsers of untrusted JSON (proto.c for client messages,
 * jwt.c for token headers and claims) refuse such text before cJSON sees
 * it.
 */
#ifndef SC_JSON_TEXT_H
#define SC_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * True when s[0..n) holds no control byte but the blanks tab, LF and CR,
 * and no \u0000 escape.  A backslash always escapes the next byte, so
 * "\\u0000" (an escaped backslash, then text) is not taken for one.
 */
bool sc_json_text_ok(const uint8_t *s, size_t n);

#endif /* SC_JSON_TEXT_H */
