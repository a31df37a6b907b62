/*
 * base64.h - RFC 4648 base64 and base64url, strict decoding
 *
 * Pure: caller buffers only.  Used by the WebSocket handshake (standard
 * alphabet, padded) and by JWT (url alphabet, no padding).
 */
#ifndef SC_BASE64_H
#define SC_BASE64_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Bytes needed to encode n bytes (padded form, without a NUL). */
#define SC_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Upper bound of bytes produced by decoding n characters. */
#define SC_BASE64_DECODED_MAX(n) ((((n) + 3) / 4) * 3)

/*
 * Encodes src into out (NUL-terminated).  url selects the base64url
 * alphabet and drops the padding.  Returns the length written (without the
 * NUL) or -1 when outlen is too small.
 */
long sc_base64_encode(const uint8_t *src, size_t len, char *out, size_t outlen,
                      bool url);

/*
 * Decodes strictly: standard alphabet with exact '=' padding (length a
 * multiple of 4), or url alphabet with no padding at all (length mod 4 != 1).
 * Non-zero bits left over in the last character are rejected, so that every
 * value has exactly one encoding.  Returns the decoded length or -1.
 */
long sc_base64_decode(const char *src, size_t len, uint8_t *out, size_t outlen,
                      bool url);

#endif /* SC_BASE64_H */
