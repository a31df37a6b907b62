/*
 * base64.c - RFC 4648 base64 and base64url (see base64.h)
 *
 * Pure code: no I/O, no allocation.  Decoding refuses anything that is not
 * the canonical encoding (RFC 4648 section 3.5), because a token or a
 * handshake key with two spellings is a source of confusion.
 */
#include "base64.h"

static const char alpha_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alpha_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

long
sc_base64_encode(const uint8_t *src, size_t len, char *out, size_t outlen,
                 bool url)
{
    const char *a = url ? alpha_url : alpha_std;
    size_t need = SC_BASE64_ENCODED_LEN(len), o = 0, i = 0;

    if (len > (SIZE_MAX / 4) * 3 - 3 || need + 1 > outlen) {
        return -1;
    }
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 |
                     src[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)src[i] << 16;
        bool two = i + 1 < len;
        if (two) {
            v |= (uint32_t)src[i + 1] << 8;
        }
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        if (two) {
            out[o++] = a[(v >> 6) & 63];
        }
        if (!url) {
            if (!two) {
                out[o++] = '=';
            }
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* Value of one character in the alphabet, or -1. */
static int
b64_value(char c, bool url)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (url ? '-' : '+')) {
        return 62;
    }
    if (c == (url ? '_' : '/')) {
        return 63;
    }
    return -1;
}

long
sc_base64_decode(const char *src, size_t len, uint8_t *out, size_t outlen,
                 bool url)
{
    size_t pad = 0, n, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (!url) {
        if (len % 4 != 0) {
            return -1;
        }
        while (pad < 2 && pad < len && src[len - 1 - pad] == '=') {
            pad++;
        }
    } else if (len % 4 == 1) {
        return -1;
    }
    n = len - pad;
    if ((n * 6) / 8 > outlen) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(src[i], url);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* canonical form: leftover bits must be zero */
    if (acc != 0) {
        return -1;
    }
    return (long)o;
}
