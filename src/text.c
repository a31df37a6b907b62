/*
 * text.c - small text helpers (see text.h)
 */
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool
sc_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) {
        return false;
    }
    for (size_t i = 0; i < alen; i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

size_t
sc_json_escape(char *out, size_t cap, size_t pos, const char *s, bool *whole)
{
    /* the longest escape is \u00XX: 6 bytes, then room for '"' and NUL */
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    if (pos < cap) {
        out[pos] = '\0';
    }
    if (whole != NULL) {
        *whole = *s == '\0';
    }
    return pos;
}

int
sc_event_id_digits(const char *s, size_t n, bool zeros, uint64_t *id)
{
    uint64_t v = 0;

    /* 16 digits cannot overflow 64 bits (2^53 - 1 has 16) */
    if (n == 0 || n > 16 || (!zeros && s[0] == '0')) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > SC_EVENT_ID_MAX) {
        return -1;
    }
    *id = v;
    return 0;
}

int
sc_event_id_number(double d, uint64_t *id)
{
    if (!(d >= 1) || d > (double)SC_EVENT_ID_MAX || floor(d) != d) {
        return -1;
    }
    *id = (uint64_t)d;
    return 0;
}

bool
sc_json_text_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            return false;
        }
        if (s[i] == '\\') {
            if (n - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0) {
                return false;
            }
            i++;
        }
    }
    return true;
}
