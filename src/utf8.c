/*
 * utf8.c - incremental UTF-8 validator (see utf8.h)
 *
 * Pure code: no I/O, no allocation, no globals.
 *
 * NOTES: the state is the number of continuation bytes still expected and
 * the range the next one must fall in.  A continuation byte is normally
 * 80..BF; the lead byte narrows the range of the *second* byte only, which
 * is exactly where RFC 3629 section 4's table differs from the naive
 * pattern (E0 A0..BF, ED 80..9F, F0 90..BF, F4 80..8F).  That is what lets
 * overlongs, surrogates and code points above U+10FFFF fail at the byte
 * that makes them impossible instead of at the end of the sequence.
 */
#include "utf8.h"

#include <string.h>

/* High bit of each byte of a 64-bit word: set for any non-ASCII byte. */
#define UTF8_HIGH_BITS 0x8080808080808080ull

void
sc_utf8_init(struct sc_utf8 *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
    u->bad = 0;
}

/* Length of the run of ASCII bytes at the start of p[0..n). */
static size_t
utf8_ascii_run(const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint64_t w;

    /* memcpy: alignment-safe load, compiled to one instruction */
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, sizeof(w));
        if ((w & UTF8_HIGH_BITS) != 0) {
            break;
        }
    }
    while (i < n && p[i] < 0x80) {
        i++;
    }
    return i;
}

/*
 * Sets the expectations that follow the non-ASCII lead byte b.  Returns
 * false if b cannot start a sequence.
 */
static bool
utf8_lead(struct sc_utf8 *u, uint8_t b)
{
    u->lo = 0x80;
    u->hi = 0xBF;
    if (b < 0xC2) {
        /* 80..BF: continuation without a lead; C0, C1: overlong */
        return false;
    }
    if (b < 0xE0) {
        u->need = 1;
        return true;
    }
    if (b < 0xF0) {
        u->need = 2;
        if (b == 0xE0) {
            u->lo = 0xA0; /* below U+0800 is overlong */
        } else if (b == 0xED) {
            u->hi = 0x9F; /* U+D800..DFFF are surrogates */
        }
        return true;
    }
    if (b < 0xF5) {
        u->need = 3;
        if (b == 0xF0) {
            u->lo = 0x90; /* below U+10000 is overlong */
        } else if (b == 0xF4) {
            u->hi = 0x8F; /* above U+10FFFF */
        }
        return true;
    }
    return false; /* F5..FF never appear */
}

/* Checks one continuation byte; returns false if it is out of range. */
static bool
utf8_continue(struct sc_utf8 *u, uint8_t b)
{
    if (b < u->lo || b > u->hi) {
        return false;
    }
    u->need--;
    u->lo = 0x80;
    u->hi = 0xBF;
    return true;
}

int
sc_utf8_feed(struct sc_utf8 *u, const uint8_t *p, size_t n)
{
    size_t i = 0;
    bool ok;

    if (u->bad) {
        return SC_UTF8_INVALID;
    }
    while (i < n) {
        if (u->need == 0) {
            i += utf8_ascii_run(p + i, n - i);
            if (i == n) {
                break;
            }
            ok = utf8_lead(u, p[i]);
        } else {
            ok = utf8_continue(u, p[i]);
        }
        if (!ok) {
            u->bad = 1;
            return SC_UTF8_INVALID;
        }
        i++;
    }
    return SC_UTF8_OK;
}

bool
sc_utf8_complete(const struct sc_utf8 *u)
{
    return !u->bad && u->need == 0;
}

bool
sc_utf8_valid(const uint8_t *p, size_t n)
{
    struct sc_utf8 u;

    sc_utf8_init(&u);
    return sc_utf8_feed(&u, p, n) == SC_UTF8_OK && sc_utf8_complete(&u);
}
