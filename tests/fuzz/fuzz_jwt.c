/*
 * fuzz_jwt.c - libFuzzer target for src/jwt.c
 *
 * Input layout.  Byte 0 (mod 5) says what the rest is:
 *   0  a token, verified with the test secret and the P-256 key
 *   1  a token, verified with the RSA key
 *   2  a token, verified with the P-384 key
 *   3  a claims object: signed here with sc_jwt_sign_hs256(), then
 *      verified, so that the claim checks see arbitrary signed input
 *   4  a PEM for sc_jwt_keys_new()
 * Byte 1: options (bit 0: issuer "booking-api", bit 1: audience
 * "seatcast", bits 2-4: leeway in seconds).  Keys and seeds come from
 * tests/unit/jwt_vectors.h and tests/unit/gen_jwt_vectors.sh, which writes
 * tests/fuzz/corpus/jwt/ in this layout.
 *
 * Besides ASan/UBSan findings, the target aborts when an invariant breaks:
 * a token this module signed fails its own signature check, or a verified
 * token yields an empty or over-long user or an unsorted events array.
 */
#include "jwt.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

#include "../unit/jwt_vectors.h"

enum { MODE_KEYS = 3, MODE_CLAIMS = 3, MODE_PEM = 4, MODES = 5 };

/* Made once per process; the fuzzer never frees them. */
static struct sc_jwt_keys *fuzz_keys[MODE_KEYS];

static struct sc_jwt_keys *
fuzz_make_keys(bool secret, const char *pem)
{
    struct sc_jwt_keys *k;

    k = sc_jwt_keys_new(secret ? (const uint8_t *)jwtv_secret : NULL,
                        strlen(jwtv_secret), pem, strlen(pem), NULL, 0);
    if (k == NULL) {
        abort();
    }
    return k;
}

static void
fuzz_check_claims(const struct sc_jwt_claims *c)
{
    size_t ulen = strlen(c->user);

    if (ulen == 0 || ulen > SC_JWT_MAX_CLAIM ||
        strlen(c->jti) > SC_JWT_MAX_CLAIM) {
        abort();
    }
    if ((c->nevents > 0) != (c->events != NULL) ||
        (c->nevents > 0 && !c->has_events)) {
        abort();
    }
    for (size_t i = 0; i < c->nevents; i++) {
        if (c->events[i] == 0 || c->events[i] > SC_EVENT_ID_MAX ||
            (i > 0 && c->events[i - 1] >= c->events[i]) ||
            !sc_jwt_claims_allows_event(c, c->events[i])) {
            abort();
        }
    }
}

static int
fuzz_verify(const struct sc_jwt_keys *k, const char *tok, size_t len,
            const struct sc_jwt_opts *o)
{
    struct sc_jwt_claims c;
    const char *why = NULL;
    int rc = sc_jwt_verify(k, tok, len, o, &c, &why);

    if (why == NULL) {
        abort();
    }
    if (rc == SC_JWT_OK) {
        fuzz_check_claims(&c);
    } else if (c.events != NULL || c.has_events) {
        abort();
    }
    sc_jwt_claims_fini(&c);
    return rc;
}

/* Signs the claims; a token we made must always pass its signature. */
static void
fuzz_sign_verify(const uint8_t *data, size_t size, const struct sc_jwt_opts *o)
{
    char *cl = malloc(size + 1);
    char tok[SC_JWT_MAX_TOKEN + 1];
    long n;
    int rc;

    if (cl == NULL) {
        return;
    }
    memcpy(cl, data, size);
    cl[size] = '\0';
    n = sc_jwt_sign_hs256((const uint8_t *)jwtv_secret, strlen(jwtv_secret), cl,
                          tok, sizeof(tok));
    free(cl);
    if (n < 0) {
        return;
    }
    rc = fuzz_verify(fuzz_keys[0], tok, (size_t)n, o);
    if (rc > -200 && rc < 0) {
        abort();
    }
}

static void
fuzz_pem(const uint8_t *data, size_t size, bool with_secret)
{
    char err[128];
    struct sc_jwt_keys *k;

    k = sc_jwt_keys_new(with_secret ? (const uint8_t *)jwtv_secret : NULL,
                        strlen(jwtv_secret), (const char *)data, size, err,
                        sizeof(err));
    sc_jwt_keys_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sc_jwt_opts o = {JWTV_NOW, 0, NULL, NULL};
    int mode, flags;

    if (fuzz_keys[0] == NULL) {
        fuzz_keys[0] = fuzz_make_keys(true, jwtv_ec256_pub);
        fuzz_keys[1] = fuzz_make_keys(false, jwtv_rsa_pub);
        fuzz_keys[2] = fuzz_make_keys(false, jwtv_ec384_pub);
    }
    if (size < 2) {
        return 0;
    }
    mode = data[0] % MODES;
    flags = data[1];
    o.issuer = (flags & 1) ? "booking-api" : NULL;
    o.audience = (flags & 2) ? "seatcast" : NULL;
    o.leeway = (flags >> 2) & 7;
    data += 2;
    size -= 2;
    if (mode < MODE_KEYS) {
        fuzz_verify(fuzz_keys[mode], (const char *)data, size, &o);
    } else if (mode == MODE_CLAIMS) {
        fuzz_sign_verify(data, size, &o);
    } else {
        fuzz_pem(data, size, flags & 1);
    }
    return 0;
}
