/*
 * check_jwt.c - JWT verification against outside tokens and tampering
 *
 * Vectors (jwt_vectors.h, made by gen_jwt_vectors.sh): RFC 7515 appendix
 * A.1-A.3, and tokens for every supported alg made by the OpenSSL command
 * line and by npm jsonwebtoken.  Tampered tokens are built here by
 * decode-modify-encode; tokens with odd headers or claims are signed here
 * with HS256 (HMAC() directly, or sc_jwt_sign_hs256() once that is shown
 * to agree with jsonwebtoken byte for byte).
 */
#include "jwt.h"
#include "base64.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jwt_vectors.h"

#define FAR 4102444800LL /* exp of the outside tokens */
#define BIG (SC_JWT_MAX_TOKEN * 2)

static const char *reason;
static struct sc_jwt_claims claims;

/* Asserts a verify result and its reason, at the caller's line. */
#define ck_verify(expr, want_rc, want_why)                                     \
    do {                                                                       \
        int got_ = (expr);                                                     \
        ck_assert_msg(got_ == (want_rc), "rc %d, want %d (%s)", got_,          \
                      (int)(want_rc), reason);                                 \
        ck_assert_str_eq(reason, (want_why));                                  \
    } while (0)

static void
teardown(void)
{
    sc_jwt_claims_fini(&claims);
}

/*--------------------------------------------------------------------------*/
/* helpers */

static const char *
vec(const char *name)
{
    for (size_t i = 0; i < sizeof(jwtv_tokens) / sizeof(jwtv_tokens[0]); i++) {
        if (strcmp(jwtv_tokens[i].name, name) == 0) {
            return jwtv_tokens[i].token;
        }
    }
    ck_abort_msg("no vector %s", name);
    return NULL;
}

static struct sc_jwt_keys *
keys(bool secret, const char *pem)
{
    char err[256] = "";
    struct sc_jwt_keys *k;

    k = sc_jwt_keys_new(secret ? (const uint8_t *)jwtv_secret : NULL,
                        strlen(jwtv_secret), pem, pem ? strlen(pem) : 0, err,
                        sizeof(err));
    ck_assert_msg(k != NULL, "keys: %s", err);
    return k;
}

static int
verify_opts(const struct sc_jwt_keys *k, const char *tok, int64_t now,
            int leeway, const char *iss, const char *aud)
{
    struct sc_jwt_opts o = {now, leeway, iss, aud};

    sc_jwt_claims_fini(&claims);
    reason = NULL;
    return sc_jwt_verify(k, tok, strlen(tok), &o, &claims, &reason);
}

static int
verify(const struct sc_jwt_keys *k, const char *tok)
{
    return verify_opts(k, tok, JWTV_NOW, 0, NULL, NULL);
}

static void
b64_append(const void *src, size_t len, char *out, size_t *pos)
{
    long n = sc_base64_encode(src, len, out + *pos, BIG - *pos, true);

    ck_assert_int_ge(n, 0);
    *pos += (size_t)n;
}

/* header.claims.sig with HS256 over any bytes, for odd headers. */
static const char *
hs256n(const char *hdr, size_t hlen, const char *cl, size_t clen)
{
    static char tok[BIG];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t pos = 0;

    b64_append(hdr, hlen, tok, &pos);
    tok[pos++] = '.';
    b64_append(cl, clen, tok, &pos);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), jwtv_secret,
                               (int)strlen(jwtv_secret),
                               (const unsigned char *)tok, pos, mac, &maclen));
    tok[pos++] = '.';
    b64_append(mac, maclen, tok, &pos);
    return tok;
}

static const char *
hs256(const char *hdr, const char *cl)
{
    return hs256n(hdr, strlen(hdr), cl, strlen(cl));
}

/* Claims signed with the standard header by sc_jwt_sign_hs256(). */
static const char *
signed_claims(const char *cl)
{
    static char tok[BIG];
    long n = sc_jwt_sign_hs256((const uint8_t *)jwtv_secret,
                               strlen(jwtv_secret), cl, tok, sizeof(tok));

    ck_assert_msg(n > 0, "cannot sign %s", cl);
    return tok;
}

/* Copies tok with part i replaced by base64url(text). */
static const char *
replace_part(const char *tok, int i, const char *text)
{
    static char out[BIG];
    const char *p = tok;
    size_t pos = 0;

    for (int k = 0; k < 3; k++) {
        const char *end = strchr(p, '.');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (k == i) {
            b64_append(text, strlen(text), out, &pos);
        } else {
            memcpy(out + pos, p, len);
            pos += len;
        }
        if (k < 2) {
            out[pos++] = '.';
        }
        p += len + 1;
    }
    out[pos] = '\0';
    return out;
}

/*
 * Copies tok with its signature decoded, byte at flipped (negative: from
 * the end) xored with 0x01, resized to newlen bytes (0: unchanged), and
 * encoded again.
 */
static const char *
tamper_sig(const char *tok, int flip, size_t newlen)
{
    static char out[BIG];
    uint8_t sig[BIG];
    const char *s = strrchr(tok, '.') + 1;
    size_t head = (size_t)(s - tok), pos;
    long n = sc_base64_decode(s, strlen(s), sig, sizeof(sig), true);

    ck_assert_int_gt(n, 0);
    sig[flip >= 0 ? (size_t)flip : (size_t)(n + flip)] ^= 0x01;
    if (newlen != 0) {
        if (newlen > (size_t)n) {
            memset(sig + n, 0x5a, newlen - (size_t)n);
        }
        n = (long)newlen;
    }
    memcpy(out, tok, head);
    pos = head;
    b64_append(sig, (size_t)n, out, &pos);
    out[pos] = '\0';
    return out;
}

/*--------------------------------------------------------------------------*/
/* RFC 7515 appendix A */

START_TEST(rfc7515_a1_hs256)
{
    uint8_t secret[64];
    long n = sc_base64_decode(jwtv_rfc_a1_key, strlen(jwtv_rfc_a1_key), secret,
                              sizeof(secret), true);
    struct sc_jwt_keys *k;
    const char *tok = vec("rfc_a1");

    ck_assert_int_eq(n, 64);
    k = sc_jwt_keys_new(secret, (size_t)n, NULL, 0, NULL, 0);
    ck_assert_ptr_nonnull(k);
    /* the signature holds; the example simply has no user claim */
    ck_verify(verify_opts(k, tok, 1300819379, 0, "joe", NULL), SC_JWT_ENOUSER,
              "no user claim");
    ck_verify(verify_opts(k, tok, 1300819380, 0, NULL, NULL), SC_JWT_EEXPIRED,
              "expired");
    ck_verify(verify_opts(k, tok, 1300819379, 0, "bob", NULL), SC_JWT_EISSUER,
              "issuer mismatch");
    ck_verify(verify_opts(k, tamper_sig(tok, 0, 0), 1300819379, 0, NULL, NULL),
              SC_JWT_ESIG, "signature mismatch");
    sc_jwt_keys_free(k);
}
END_TEST

START_TEST(rfc7515_a2_rs256)
{
    struct sc_jwt_keys *k = keys(false, jwtv_rfc_a2_pub);
    const char *tok = vec("rfc_a2");

    ck_verify(verify_opts(k, tok, 1300819379, 0, NULL, NULL), SC_JWT_ENOUSER,
              "no user claim");
    ck_verify(verify_opts(k, tamper_sig(tok, -1, 0), 1300819379, 0, NULL, NULL),
              SC_JWT_ESIG, "signature mismatch");
    sc_jwt_keys_free(k);
}
END_TEST

START_TEST(rfc7515_a3_es256)
{
    struct sc_jwt_keys *k = keys(false, jwtv_rfc_a3_pub);
    const char *tok = vec("rfc_a3");

    ck_verify(verify_opts(k, tok, 1300819379, 0, NULL, NULL), SC_JWT_ENOUSER,
              "no user claim");
    /* flip a byte of r, then of s */
    ck_verify(verify_opts(k, tamper_sig(tok, 5, 0), 1300819379, 0, NULL, NULL),
              SC_JWT_ESIG, "signature mismatch");
    ck_verify(verify_opts(k, tamper_sig(tok, 40, 0), 1300819379, 0, NULL, NULL),
              SC_JWT_ESIG, "signature mismatch");
    sc_jwt_keys_free(k);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* every alg, tokens from the OpenSSL command line and jsonwebtoken */

enum { K_SECRET, K_RSA, K_EC256, K_EC384, K_NKINDS };

struct ext_case {
    const char *name;
    int kind;
    const char *user;
};

static const struct ext_case ext_cases[] = {
    {"ossl_hs256", K_SECRET, "user-ossl"},
    {"ossl_hs384", K_SECRET, "user-ossl"},
    {"ossl_hs512", K_SECRET, "user-ossl"},
    {"ossl_rs256", K_RSA, "user-ossl"},
    {"ossl_rs384", K_RSA, "user-ossl"},
    {"ossl_rs512", K_RSA, "user-ossl"},
    {"ossl_es256", K_EC256, "user-ossl"},
    {"ossl_es384", K_EC384, "user-ossl"},
    {"node_hs256", K_SECRET, "user-node"},
    {"node_hs384", K_SECRET, "user-node"},
    {"node_hs512", K_SECRET, "user-node"},
    {"node_rs256", K_RSA, "user-node"},
    {"node_rs384", K_RSA, "user-node"},
    {"node_rs512", K_RSA, "user-node"},
    {"node_es256", K_EC256, "user-node"},
    {"node_es384", K_EC384, "user-node"},
};
#define N_EXT ((int)(sizeof(ext_cases) / sizeof(ext_cases[0])))

static struct sc_jwt_keys *
keys_of_kind(int kind, bool with_secret)
{
    static const char *const pems[K_NKINDS] = {NULL, jwtv_rsa_pub,
                                               jwtv_ec256_pub, jwtv_ec384_pub};

    return keys(kind == K_SECRET || with_secret, pems[kind]);
}

START_TEST(outside_tokens_verify)
{
    const struct ext_case *e = &ext_cases[_i];
    struct sc_jwt_keys *k = keys_of_kind(e->kind, false);
    struct sc_jwt_keys *both = keys_of_kind(e->kind, true);

    ck_verify(verify(k, vec(e->name)), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, e->user);
    ck_assert_str_eq(claims.jti, "");
    ck_assert(!claims.has_events);
    if (e->name[0] == 'o') {
        /* 4102444800.5 rounds down, 1699999999.25 up */
        ck_assert_int_eq(claims.exp, FAR);
        ck_assert_int_eq(claims.nbf, JWTV_NOW);
    } else {
        ck_assert_int_eq(claims.exp, FAR);
        ck_assert_int_eq(claims.nbf, 0);
    }
    /* a secret configured next to the public key changes nothing */
    ck_verify(verify(both, vec(e->name)), SC_JWT_OK, "ok");
    sc_jwt_keys_free(both);
    sc_jwt_keys_free(k);
}
END_TEST

/* Each token against each other kind of key: refused before any crypto. */
START_TEST(alg_must_fit_key)
{
    const struct ext_case *e = &ext_cases[_i];

    for (int kind = 0; kind < K_NKINDS; kind++) {
        struct sc_jwt_keys *k = keys_of_kind(kind, false);

        if (kind == e->kind) {
            ck_verify(verify(k, vec(e->name)), SC_JWT_OK, "ok");
        } else {
            ck_verify(verify(k, vec(e->name)), SC_JWT_EALG,
                      "alg does not fit the configured key");
        }
        sc_jwt_keys_free(k);
    }
}
END_TEST

START_TEST(signature_byte_flipped)
{
    const struct ext_case *e = &ext_cases[_i];
    struct sc_jwt_keys *k = keys_of_kind(e->kind, false);
    const char *tok = vec(e->name);

    ck_verify(verify(k, tamper_sig(tok, 0, 0)), SC_JWT_ESIG,
              "signature mismatch");
    ck_verify(verify(k, tamper_sig(tok, -1, 0)), SC_JWT_ESIG,
              "signature mismatch");
    /* one byte short, one byte long, or missing altogether */
    ck_verify(verify(k, tamper_sig(tok, 0, strlen(tok) > 400 ? 255 : 20)),
              SC_JWT_ESIG, "bad signature length");
    ck_verify(verify(k, tamper_sig(tok, 0, 520)), SC_JWT_ESIG,
              "bad signature length");
    {
        char stripped[BIG];
        size_t head = (size_t)(strrchr(tok, '.') - tok) + 1;

        memcpy(stripped, tok, head);
        stripped[head] = '\0';
        ck_verify(verify(k, stripped), SC_JWT_ESIG, "bad signature length");
    }
    sc_jwt_keys_free(k);
}
END_TEST

/* Claims changed under an intact signature. */
START_TEST(claims_swapped)
{
    const struct ext_case *e = &ext_cases[_i];
    struct sc_jwt_keys *k = keys_of_kind(e->kind, false);
    const char *tok =
        replace_part(vec(e->name), 1, "{\"sub\":\"admin\",\"exp\":4102444800}");

    ck_verify(verify(k, tok), SC_JWT_ESIG, "signature mismatch");
    sc_jwt_keys_free(k);
}
END_TEST

START_TEST(cert_pem_verifies_rs256)
{
    struct sc_jwt_keys *k = keys(false, jwtv_rsa_cert);

    ck_verify(verify(k, vec("node_rs256")), SC_JWT_OK, "ok");
    ck_verify(verify(k, vec("ossl_rs512")), SC_JWT_OK, "ok");
    sc_jwt_keys_free(k);
}
END_TEST

START_TEST(wrong_key_of_right_kind)
{
    struct sc_jwt_keys *k = keys(false, jwtv_rsa_other_pub);
    static const char other[] =
        "another secret, 64 bytes long: long enough for HS512 tokens.....";
    struct sc_jwt_keys *s = sc_jwt_keys_new((const uint8_t *)other,
                                            sizeof(other) - 1, NULL, 0, NULL,
                                            0);

    ck_assert_int_eq(sizeof(other) - 1, 64);
    ck_verify(verify(k, vec("node_rs256")), SC_JWT_ESIG, "signature mismatch");
    ck_verify(verify(s, vec("node_hs256")), SC_JWT_ESIG, "signature mismatch");
    ck_verify(verify(s, vec("ossl_hs512")), SC_JWT_ESIG, "signature mismatch");
    sc_jwt_keys_free(s);
    sc_jwt_keys_free(k);
}
END_TEST

/*
 * RFC 7518 section 3.2: an HMAC key at least as long as the hash.  A
 * 32-byte secret verifies HS256 but refuses HS384 and HS512 tokens, even
 * ones it signed itself, before any MAC is compared.
 */
START_TEST(hmac_secret_shorter_than_the_hash)
{
    static const char k32[] = "0123456789abcdef0123456789abcdef";
    static const char k48[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef";
    struct sc_jwt_keys *s = sc_jwt_keys_new((const uint8_t *)k32,
                                            sizeof(k32) - 1, NULL, 0, NULL,
                                            0);
    struct sc_jwt_keys *m = sc_jwt_keys_new((const uint8_t *)k48,
                                            sizeof(k48) - 1, NULL, 0, NULL,
                                            0);

    ck_verify(verify(s, vec("ossl_hs384")), SC_JWT_EALG,
              "secret shorter than the hash of this algorithm");
    ck_verify(verify(s, vec("ossl_hs512")), SC_JWT_EALG,
              "secret shorter than the hash of this algorithm");
    ck_verify(verify(m, vec("ossl_hs512")), SC_JWT_EALG,
              "secret shorter than the hash of this algorithm");
    /* long enough: reaches the MAC (another key's token: a mismatch) */
    ck_verify(verify(s, vec("node_hs256")), SC_JWT_ESIG, "signature mismatch");
    ck_verify(verify(m, vec("ossl_hs384")), SC_JWT_ESIG, "signature mismatch");
    sc_jwt_keys_free(m);
    sc_jwt_keys_free(s);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* headers: alg relabelled, none, key confusion, crit */

START_TEST(alg_relabelled)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    struct sc_jwt_keys *r = keys(false, jwtv_rsa_pub);
    struct sc_jwt_keys *e = keys(false, jwtv_ec256_pub);

    /* HS256 MAC presented as HS384: 32 bytes where 48 are due */
    ck_verify(verify(s, replace_part(vec("node_hs256"), 0,
                                     "{\"alg\":\"HS384\",\"typ\":\"JWT\"}")),
              SC_JWT_ESIG, "bad signature length");
    ck_verify(verify(s, replace_part(vec("node_hs512"), 0,
                                     "{\"alg\":\"HS256\",\"typ\":\"JWT\"}")),
              SC_JWT_ESIG, "bad signature length");
    /* same length, other digest */
    ck_verify(verify(r, replace_part(vec("node_rs256"), 0,
                                     "{\"alg\":\"RS384\",\"typ\":\"JWT\"}")),
              SC_JWT_ESIG, "signature mismatch");
    ck_verify(verify(e, replace_part(vec("node_es256"), 0,
                                     "{\"alg\":\"ES384\",\"typ\":\"JWT\"}")),
              SC_JWT_EALG, "alg does not fit the configured key");
    sc_jwt_keys_free(e);
    sc_jwt_keys_free(r);
    sc_jwt_keys_free(s);
}
END_TEST

/* RS256 claims relabelled HS256 and MACed with the public key PEM. */
START_TEST(key_confusion_refused)
{
    struct sc_jwt_keys *r = keys(false, jwtv_rsa_pub);
    struct sc_jwt_keys *both = keys(true, jwtv_rsa_pub);
    struct sc_jwt_keys *pem_as_secret = sc_jwt_keys_new(
        (const uint8_t *)jwtv_rsa_pub, strlen(jwtv_rsa_pub), NULL, 0, NULL, 0);

    /* the vector really is a valid MAC keyed by the PEM bytes */
    ck_verify(verify(pem_as_secret, vec("ossl_confusion")), SC_JWT_OK, "ok");
    ck_verify(verify(r, vec("ossl_confusion")), SC_JWT_EALG,
              "alg does not fit the configured key");
    /* with a secret too, HS* is checked with the secret, never the PEM */
    ck_verify(verify(both, vec("ossl_confusion")), SC_JWT_ESIG,
              "signature mismatch");
    sc_jwt_keys_free(pem_as_secret);
    sc_jwt_keys_free(both);
    sc_jwt_keys_free(r);
}
END_TEST

static const char *const none_headers[] = {
    "{\"alg\":\"none\"}", "{\"alg\":\"None\",\"typ\":\"JWT\"}",
    "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\"}"};

START_TEST(alg_none_refused)
{
    struct sc_jwt_keys *s = keys(true, jwtv_rsa_pub);
    char tok[BIG];
    size_t pos = 0;
    const char *cl = "{\"sub\":\"admin\",\"exp\":4102444800}";

    b64_append(none_headers[_i], strlen(none_headers[_i]), tok, &pos);
    tok[pos++] = '.';
    b64_append(cl, strlen(cl), tok, &pos);
    tok[pos++] = '.';
    tok[pos] = '\0';
    ck_verify(verify(s, tok), SC_JWT_EALG, "alg none refused");
    /* with a signature of some HS256 token appended */
    ck_verify(verify(s, hs256(none_headers[_i], cl)), SC_JWT_EALG,
              "alg none refused");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(unknown_algs)
{
    struct sc_jwt_keys *s = keys(true, jwtv_rsa_pub);
    static const char *const hdrs[] = {
        "{\"alg\":\"hs256\"}", "{\"alg\":\"HS1\"}",     "{\"alg\":\"EdDSA\"}",
        "{\"alg\":\"\"}",      "{\"alg\":\"HS256 \"}",  "{\"alg\":\"PS256\"}",
        "{\"alg\":\"ES512\"}", "{\"alg\":\"RSA-OAEP\"}"};
    const char *cl = "{\"sub\":\"u\"}";

    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        ck_verify(verify(s, hs256(hdrs[i], cl)), SC_JWT_EALG, "unknown alg");
    }
    /* a real PS256 token from jsonwebtoken */
    ck_verify(verify(s, vec("node_ps256")), SC_JWT_EALG, "unknown alg");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(header_checks)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *cl = "{\"sub\":\"u\"}";

    /* typ is not checked, but must be a string */
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", cl)),
              SC_JWT_OK, "ok");
    ck_verify(verify(s, hs256("{\"typ\":\"JWT\",\"kid\":\"k1\",\"alg\":"
                              "\"HS256\"}",
                              cl)),
              SC_JWT_OK, "ok");
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\",\"typ\":5}", cl)),
              SC_JWT_EMALFORMED, "typ header not a string");
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\",\"crit\":[\"exp\"],"
                              "\"exp\":1}",
                              cl)),
              SC_JWT_EMALFORMED, "crit header refused");
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\",\"b64\":false,\"crit\":"
                              "[\"b64\"]}",
                              cl)),
              SC_JWT_EMALFORMED, "crit header refused");
    ck_verify(verify(s, hs256("{\"typ\":\"JWT\"}", cl)), SC_JWT_EMALFORMED,
              "no alg in header");
    ck_verify(verify(s, hs256("{\"ALG\":\"HS256\"}", cl)), SC_JWT_EMALFORMED,
              "no alg in header");
    ck_verify(verify(s, hs256("{\"alg\":256}", cl)), SC_JWT_EMALFORMED,
              "no alg in header");
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\",\"alg\":\"none\"}", cl)),
              SC_JWT_EMALFORMED, "duplicate header parameter");
    ck_verify(verify(s, hs256("{\"alg\":\"none\",\"alg\":\"HS256\"}", cl)),
              SC_JWT_EMALFORMED, "duplicate header parameter");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(header_not_object)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    static const char *const hdrs[] = {
        "",
        "[]",
        "\"HS256\"",
        "null",
        "{",
        "{\"alg\":\"HS256\"",
        "{\"alg\":\"HS256\"} x",
        "{\"alg\":\"HS256\"}{}",
        "{\"alg\":\"HS256\"},",
        "{'alg':'HS256'}",
        "{\"alg\":\"HS256\"\x01}",
        "\x0b{\"alg\":\"HS256\"}",
        "{\"alg\":\"HS\\u00002\"}",
    };
    const char *cl = "{\"sub\":\"u\"}";

    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        ck_verify(verify(s, hs256(hdrs[i], cl)), SC_JWT_EMALFORMED,
                  "header is not a JSON object");
    }
    /* a NUL byte, then more: must not end the JSON early */
    ck_verify(verify(s, hs256n("{\"alg\":\"HS256\"}\0x", 17, cl, strlen(cl))),
              SC_JWT_EMALFORMED, "header is not a JSON object");
    ck_verify(verify(s, hs256n("{\"alg\":\"HS256\"}\0", 16, cl, strlen(cl))),
              SC_JWT_EMALFORMED, "header is not a JSON object");
    /* RFC 8259 blanks around the object are fine (RFC 7515 A.1 has CRLF) */
    ck_verify(verify(s, hs256(" \r\n\t{\"alg\" : \"HS256\"}\r\n", cl)),
              SC_JWT_OK, "ok");
    sc_jwt_keys_free(s);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* token structure */

START_TEST(structure)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *good = vec("node_hs256");
    char buf[BIG];
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "...",
        "a.b",
        "a.b.c.d",
        "abc",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJhbGciOiJIUzI1NiJ9..",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(verify(s, bad[i]) < 0, 1);
    }
    ck_verify(verify(s, ""), SC_JWT_EMALFORMED, "empty token");
    ck_verify(verify(s, "a.b"), SC_JWT_EMALFORMED, "not three parts");
    ck_verify(verify(s, "a.b.c.d"), SC_JWT_EMALFORMED, "not three parts");
    snprintf(buf, sizeof(buf), "%s.%s", good, "e30");
    ck_verify(verify(s, buf), SC_JWT_EMALFORMED, "not three parts");
    snprintf(buf, sizeof(buf), ".%s", good);
    ck_verify(verify(s, buf), SC_JWT_EMALFORMED, "not three parts");
    sc_jwt_keys_free(s);
}
END_TEST

/* Copies tok into buf with text inserted at offset at. */
static const char *
splice(char *buf, const char *tok, size_t at, const char *text)
{
    snprintf(buf, BIG, "%.*s%s%s", (int)at, tok, text, tok + at);
    return buf;
}

START_TEST(bad_base64url)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *tok = vec("node_hs256");
    size_t d1 = (size_t)(strchr(tok, '.') - tok);
    size_t d2 = (size_t)(strrchr(tok, '.') - tok);
    size_t end = strlen(tok);
    char buf[BIG];

    ck_verify(verify(s, tok), SC_JWT_OK, "ok");
    /* padding, standard alphabet, blanks, line breaks */
    ck_verify(verify(s, splice(buf, tok, d1, "==")), SC_JWT_EMALFORMED,
              "bad base64url in header");
    ck_verify(verify(s, splice(buf, tok, 3, "+")), SC_JWT_EMALFORMED,
              "bad base64url in header");
    ck_verify(verify(s, splice(buf, tok, 0, " ")), SC_JWT_EMALFORMED,
              "bad base64url in header");
    ck_verify(verify(s, splice(buf, tok, end, "=")), SC_JWT_EMALFORMED,
              "bad base64url in signature");
    ck_verify(verify(s, splice(buf, tok, end, "\n")), SC_JWT_EMALFORMED,
              "bad base64url in signature");
    ck_verify(verify(s, splice(buf, tok, d2 + 4, "/")), SC_JWT_EMALFORMED,
              "bad base64url in signature");
    ck_verify(verify(s, splice(buf, tok, end, "AA")), SC_JWT_EMALFORMED,
              "bad base64url in signature");
    /* one more character is 33 bytes, canonical: only the length is wrong */
    ck_verify(verify(s, splice(buf, tok, end, "A")), SC_JWT_ESIG,
              "bad signature length");
    /* the payload is only decoded once the signature holds */
    ck_verify(verify(s, splice(buf, tok, d2, "*")), SC_JWT_ESIG,
              "signature mismatch");
    /* non-canonical: a 32-byte MAC ends in a character with 2 spare bits */
    strcpy(buf, tok);
    ck_assert(strchr("AEIMQUYcgkosw048", buf[end - 1]) != NULL);
    buf[end - 1] = (char)(buf[end - 1] == 'A' ? 'B' : buf[end - 1] + 1);
    ck_verify(verify(s, buf), SC_JWT_EMALFORMED, "bad base64url in signature");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(size_limit)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    static char cl[BIG], big[BIG + 2];
    char tok[BIG];
    long n = 0;
    size_t pad = 6000, len = 0;

    /* grow a claim until the token is as long as allowed, and no longer */
    for (;; pad++) {
        snprintf(cl, sizeof(cl), "{\"sub\":\"u\",\"pad\":\"%0*d\"}", (int)pad,
                 0);
        n = sc_jwt_sign_hs256((const uint8_t *)jwtv_secret, strlen(jwtv_secret),
                              cl, tok, sizeof(tok));
        if (n < 0) {
            break;
        }
        ck_verify(verify(s, tok), SC_JWT_OK, "ok");
        len = (size_t)n;
    }
    ck_assert_uint_ge(len, SC_JWT_MAX_TOKEN - 3);
    ck_assert_uint_le(len, SC_JWT_MAX_TOKEN);
    /* a token one byte too long is refused before anything else */
    memset(big, 'A', SC_JWT_MAX_TOKEN + 1);
    big[10] = big[20] = '.';
    big[SC_JWT_MAX_TOKEN + 1] = '\0';
    ck_verify(verify(s, big), SC_JWT_EMALFORMED, "token too long");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(es_signature_lengths)
{
    struct sc_jwt_keys *e = keys(false, jwtv_ec256_pub);
    struct sc_jwt_keys *e3 = keys(false, jwtv_ec384_pub);
    static const size_t lens[] = {1, 32, 63, 65, 70, 71, 72, 96};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        ck_verify(verify(e, tamper_sig(vec("node_es256"), 0, lens[i])),
                  SC_JWT_ESIG, "bad signature length");
    }
    ck_verify(verify(e3, tamper_sig(vec("node_es384"), 0, 64)), SC_JWT_ESIG,
              "bad signature length");
    ck_verify(verify(e3, tamper_sig(vec("node_es384"), 0, 104)), SC_JWT_ESIG,
              "bad signature length");
    sc_jwt_keys_free(e3);
    sc_jwt_keys_free(e);
}
END_TEST

/* r||s of zeros and of all ones: well formed, never valid */
START_TEST(es_signature_extremes)
{
    struct sc_jwt_keys *e = keys(false, jwtv_ec256_pub);
    const char *tok = vec("ossl_es256");
    const char *dot = strrchr(tok, '.');
    uint8_t sig[64];
    char buf[BIG];
    size_t pos;

    for (int fill = 0; fill < 2; fill++) {
        memset(sig, fill ? 0xff : 0x00, sizeof(sig));
        pos = (size_t)(dot + 1 - tok);
        memcpy(buf, tok, pos);
        b64_append(sig, sizeof(sig), buf, &pos);
        buf[pos] = '\0';
        ck_verify(verify(e, buf), SC_JWT_ESIG, "signature mismatch");
    }
    sc_jwt_keys_free(e);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* time claims */

START_TEST(expiry)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *soon = vec("node_exp_leeway"); /* exp = now - 3 */

    ck_verify(verify_opts(s, vec("node_expired"), JWTV_NOW, 5, NULL, NULL),
              SC_JWT_EEXPIRED, "expired");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 0, NULL, NULL), SC_JWT_EEXPIRED,
              "expired");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 3, NULL, NULL), SC_JWT_EEXPIRED,
              "expired");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 4, NULL, NULL), SC_JWT_OK, "ok");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 5, NULL, NULL), SC_JWT_OK, "ok");
    ck_assert_int_eq(claims.exp, JWTV_NOW - 3);
    /* a negative leeway counts as none */
    ck_verify(verify_opts(s, soon, JWTV_NOW - 4, -10, NULL, NULL), SC_JWT_OK,
              "ok");
    ck_verify(verify_opts(s, soon, JWTV_NOW - 3, -10, NULL, NULL),
              SC_JWT_EEXPIRED, "expired");
    /* RFC 7519 4.1.4: valid only before exp */
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"exp\":1700000000}")),
              SC_JWT_EEXPIRED, "expired");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"exp\":1700000001}")),
              SC_JWT_OK, "ok");
    /* a fraction is rounded toward expiry */
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"exp\":1700000000.9}")),
              SC_JWT_EEXPIRED, "expired");
    ck_verify(
        verify(s, signed_claims("{\"sub\":\"u\",\"exp\":1.7000000019e9}")),
        SC_JWT_OK, "ok");
    ck_assert_int_eq(claims.exp, 1700000001);
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(not_before)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *soon = vec("node_nbf_leeway"); /* nbf = now + 3 */

    ck_verify(verify_opts(s, vec("node_nbf_future"), JWTV_NOW, 5, NULL, NULL),
              SC_JWT_ENOTYET, "token not yet valid");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 0, NULL, NULL), SC_JWT_ENOTYET,
              "token not yet valid");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 2, NULL, NULL), SC_JWT_ENOTYET,
              "token not yet valid");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 3, NULL, NULL), SC_JWT_OK, "ok");
    ck_verify(verify_opts(s, soon, JWTV_NOW, 5, NULL, NULL), SC_JWT_OK, "ok");
    ck_assert_int_eq(claims.nbf, JWTV_NOW + 3);
    ck_verify(verify_opts(s, soon, JWTV_NOW + 3, 0, NULL, NULL), SC_JWT_OK,
              "ok");
    /* a fraction is rounded toward later validity */
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"nbf\":1700000000.1}")),
              SC_JWT_ENOTYET, "token not yet valid");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"nbf\":1700000000}")),
              SC_JWT_OK, "ok");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(time_claim_types)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    static const char *const bad_exp[] = {
        "{\"sub\":\"u\",\"exp\":\"4102444800\"}",
        "{\"sub\":\"u\",\"exp\":null}",
        "{\"sub\":\"u\",\"exp\":true}",
        "{\"sub\":\"u\",\"exp\":[4102444800]}",
        "{\"sub\":\"u\",\"exp\":1e300}",
        "{\"sub\":\"u\",\"exp\":9007199254740993}",
    };

    for (size_t i = 0; i < sizeof(bad_exp) / sizeof(bad_exp[0]); i++) {
        ck_verify(verify(s, signed_claims(bad_exp[i])), SC_JWT_ECLAIM,
                  "bad exp claim");
    }
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"nbf\":\"1\"}")),
              SC_JWT_ECLAIM, "bad nbf claim");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"nbf\":-1e300}")),
              SC_JWT_ECLAIM, "bad nbf claim");
    /* iat is not checked */
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"iat\":\"x\"}")),
              SC_JWT_OK, "ok");
    sc_jwt_keys_free(s);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* issuer and audience */

START_TEST(issuer_audience)
{
    struct sc_jwt_keys *r = keys(false, jwtv_rsa_pub);
    struct sc_jwt_keys *e = keys(false, jwtv_ec256_pub);
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *ia = vec("node_iss_aud"), *arr = vec("node_aud_array");
    const char *other = vec("node_aud_other");

    ck_verify(verify_opts(r, ia, JWTV_NOW, 0, "booking-api", "seatcast"),
              SC_JWT_OK, "ok");
    ck_verify(verify_opts(r, ia, JWTV_NOW, 0, "", ""), SC_JWT_OK, "ok");
    ck_verify(verify_opts(r, ia, JWTV_NOW, 0, "booking", NULL), SC_JWT_EISSUER,
              "issuer mismatch");
    ck_verify(verify_opts(r, ia, JWTV_NOW, 0, "Booking-api", NULL),
              SC_JWT_EISSUER, "issuer mismatch");
    ck_verify(verify_opts(r, ia, JWTV_NOW, 0, NULL, "seatcas"),
              SC_JWT_EAUDIENCE, "audience mismatch");
    ck_verify(verify_opts(e, arr, JWTV_NOW, 0, "booking-api", "seatcast"),
              SC_JWT_OK, "ok");
    ck_verify(verify_opts(e, arr, JWTV_NOW, 0, NULL, "web"), SC_JWT_OK, "ok");
    ck_verify(verify_opts(e, arr, JWTV_NOW, 0, NULL, "mobile"),
              SC_JWT_EAUDIENCE, "audience mismatch");
    ck_verify(verify_opts(s, other, JWTV_NOW, 0, "booking-api", NULL),
              SC_JWT_EISSUER, "issuer mismatch");
    ck_verify(verify_opts(s, other, JWTV_NOW, 0, NULL, "seatcast"),
              SC_JWT_EAUDIENCE, "audience mismatch");
    /* configured but absent */
    ck_verify(
        verify_opts(s, vec("node_hs256"), JWTV_NOW, 0, "booking-api", NULL),
        SC_JWT_EISSUER, "issuer mismatch");
    ck_verify(verify_opts(s, vec("node_hs256"), JWTV_NOW, 0, NULL, "seatcast"),
              SC_JWT_EAUDIENCE, "audience mismatch");
    sc_jwt_keys_free(s);
    sc_jwt_keys_free(e);
    sc_jwt_keys_free(r);
}
END_TEST

START_TEST(issuer_audience_types)
{
    struct sc_jwt_keys *s = keys(true, NULL);

    ck_verify(verify_opts(s, signed_claims("{\"sub\":\"u\",\"iss\":5}"),
                          JWTV_NOW, 0, "5", NULL),
              SC_JWT_EISSUER, "issuer mismatch");
    ck_verify(verify_opts(s, signed_claims("{\"sub\":\"u\",\"aud\":5}"),
                          JWTV_NOW, 0, NULL, "5"),
              SC_JWT_ECLAIM, "bad aud claim");
    ck_verify(verify_opts(s,
                          signed_claims("{\"sub\":\"u\",\"aud\":[\"seatcast\","
                                        "1]}"),
                          JWTV_NOW, 0, NULL, "seatcast"),
              SC_JWT_ECLAIM, "bad aud claim");
    ck_verify(verify_opts(s, signed_claims("{\"sub\":\"u\",\"aud\":[]}"),
                          JWTV_NOW, 0, NULL, "seatcast"),
              SC_JWT_EAUDIENCE, "audience mismatch");
    ck_verify(verify_opts(s, signed_claims("{\"sub\":\"u\",\"aud\":null}"),
                          JWTV_NOW, 0, NULL, "seatcast"),
              SC_JWT_ECLAIM, "bad aud claim");
    /* not configured: not looked at */
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"aud\":5,\"iss\":[]}")),
              SC_JWT_OK, "ok");
    sc_jwt_keys_free(s);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* user, jti */

START_TEST(user_claims_outside)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    struct sc_jwt_keys *r = keys(false, jwtv_rsa_pub);

    ck_verify(verify(s, vec("node_userid")), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, "u-42");
    ck_verify(verify(s, vec("node_id_numeric")), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, "42");
    ck_verify(verify(r, vec("node_sub_numeric")), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, "9007199254740991");
    ck_verify(verify(s, vec("node_no_user")), SC_JWT_ENOUSER, "no user claim");
    sc_jwt_keys_free(r);
    sc_jwt_keys_free(s);
}
END_TEST

struct user_case {
    const char *claims;
    int rc;
    const char *user;
};

static const struct user_case user_cases[] = {
    {"{\"sub\":\"a\",\"userId\":\"b\",\"id\":\"c\"}", SC_JWT_OK, "a"},
    {"{\"userId\":\"b\",\"id\":\"c\"}", SC_JWT_OK, "b"},
    {"{\"id\":\"c\"}", SC_JWT_OK, "c"},
    {"{\"sub\":null,\"userId\":\"b\"}", SC_JWT_OK, "b"},
    {"{\"sub\":-7}", SC_JWT_OK, "-7"},
    {"{\"sub\":0}", SC_JWT_OK, "0"},
    {"{\"sub\":1e3}", SC_JWT_OK, "1000"},
    {"{\"sub\":\"jos\xc3\xa9\"}", SC_JWT_OK, "jos\xc3\xa9"},
    {"{\"sub\":\"a\\\\u0000\"}", SC_JWT_OK, "a\\u0000"},
    {"{\"sub\":\"a\\u00e9\"}", SC_JWT_OK, "a\xc3\xa9"},
    {"{\"sub\":\"\"}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":\"\",\"userId\":\"b\"}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":1.5}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":9007199254740992}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":true}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":{}}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":[\"a\"]}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":\"a\\nb\"}", SC_JWT_ECLAIM, NULL},
    {"{\"sub\":\"a\\u007f\"}", SC_JWT_ECLAIM, NULL},
    {"{\"Sub\":\"a\",\"ID\":\"b\",\"user_id\":\"c\"}", SC_JWT_ENOUSER, NULL},
    {"{\"sub\":null}", SC_JWT_ENOUSER, NULL},
    {"{}", SC_JWT_ENOUSER, NULL},
};

START_TEST(user_claim_forms)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const struct user_case *u = &user_cases[_i];

    ck_assert_int_eq(verify(s, signed_claims(u->claims)), u->rc);
    if (u->rc == SC_JWT_OK) {
        ck_assert_str_eq(claims.user, u->user);
    } else {
        ck_assert_str_eq(reason, u->rc == SC_JWT_ECLAIM ? "bad user claim"
                                                        : "no user claim");
        ck_assert_str_eq(claims.user, "");
    }
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(claim_lengths)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    char cl[512];
    char max[SC_JWT_MAX_CLAIM + 2];

    memset(max, 'x', sizeof(max) - 1);
    max[SC_JWT_MAX_CLAIM] = '\0';
    snprintf(cl, sizeof(cl), "{\"sub\":\"%s\",\"jti\":\"%s\"}", max, max);
    ck_verify(verify(s, signed_claims(cl)), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, max);
    ck_assert_str_eq(claims.jti, max);
    max[SC_JWT_MAX_CLAIM] = 'x';
    max[SC_JWT_MAX_CLAIM + 1] = '\0';
    snprintf(cl, sizeof(cl), "{\"sub\":\"%s\"}", max);
    ck_verify(verify(s, signed_claims(cl)), SC_JWT_ECLAIM, "bad user claim");
    snprintf(cl, sizeof(cl), "{\"sub\":\"u\",\"jti\":\"%s\"}", max);
    ck_verify(verify(s, signed_claims(cl)), SC_JWT_ECLAIM, "bad jti claim");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(jti_claim)
{
    struct sc_jwt_keys *e = keys(false, jwtv_ec384_pub);
    struct sc_jwt_keys *s = keys(true, NULL);

    ck_verify(verify(e, vec("node_jti")), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.jti, "tok-123");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"jti\":\"\"}")),
              SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.jti, "");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"jti\":null}")),
              SC_JWT_OK, "ok");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"jti\":5}")),
              SC_JWT_ECLAIM, "bad jti claim");
    ck_verify(verify(s, signed_claims("{\"sub\":\"u\",\"jti\":\"a\\tb\"}")),
              SC_JWT_ECLAIM, "bad jti claim");
    sc_jwt_keys_free(s);
    sc_jwt_keys_free(e);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* claims JSON */

START_TEST(claims_json_strict)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *hdr = "{\"alg\":\"HS256\"}";
    static const char *const bad[] = {
        "",
        "[]",
        "\"u\"",
        "{\"sub\":\"u\"} x",
        "{\"sub\":\"u\"}{}",
        "{\"sub\":\"u\"",
        "{\"sub\":\"a\x01\"}",
        "{\"sub\":\"a\\u0000b\"}",
        "{\"sub\":\"u\",}",
        "\x0c{\"sub\":\"u\"}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_verify(verify(s, hs256(hdr, bad[i])), SC_JWT_ECLAIM,
                  "claims are not a JSON object");
    }
    ck_verify(verify(s, hs256n(hdr, strlen(hdr), "{\"sub\":\"u\"}\0x", 13)),
              SC_JWT_ECLAIM, "claims are not a JSON object");
    ck_verify(verify(s, hs256(hdr, "{\"sub\":\"a\",\"sub\":\"b\"}")),
              SC_JWT_ECLAIM, "duplicate claim");
    ck_verify(verify(s, hs256(hdr, "{\"sub\":\"a\",\"x\":1,\"events\":[],"
                                   "\"events\":[1]}")),
              SC_JWT_ECLAIM, "duplicate claim");
    /* same name at different depths is no duplicate */
    ck_verify(verify(s, hs256(hdr, "{\"sub\":\"a\",\"x\":{\"sub\":\"b\"}}")),
              SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, "a");
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(many_claims)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    static char cl[BIG];
    size_t pos;
    int i;

    pos = (size_t)snprintf(cl, sizeof(cl), "{\"sub\":\"u\"");
    for (i = 0; i < 300; i++) {
        pos +=
            (size_t)snprintf(cl + pos, sizeof(cl) - pos, ",\"c%d\":%d", i, i);
    }
    snprintf(cl + pos, sizeof(cl) - pos, "}");
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\"}", cl)), SC_JWT_OK, "ok");
    /* the same with the last name repeated */
    snprintf(cl + pos, sizeof(cl) - pos, ",\"c299\":0}");
    ck_verify(verify(s, hs256("{\"alg\":\"HS256\"}", cl)), SC_JWT_ECLAIM,
              "duplicate claim");
    sc_jwt_keys_free(s);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* events */

START_TEST(events_outside)
{
    struct sc_jwt_keys *s = keys(true, NULL);

    ck_verify(verify(s, vec("node_events")), SC_JWT_OK, "ok");
    ck_assert(claims.has_events);
    ck_assert_uint_eq(claims.nevents, 3);
    ck_assert_uint_eq(claims.events[0], 1);
    ck_assert_uint_eq(claims.events[1], 3);
    ck_assert_uint_eq(claims.events[2], 9007199254740991ULL);
    ck_assert(sc_jwt_claims_allows_event(&claims, 1));
    ck_assert(!sc_jwt_claims_allows_event(&claims, 2));
    ck_assert(sc_jwt_claims_allows_event(&claims, 3));
    ck_assert(sc_jwt_claims_allows_event(&claims, 9007199254740991ULL));
    ck_assert(!sc_jwt_claims_allows_event(&claims, 4));
    ck_verify(verify(s, vec("node_events_bad")), SC_JWT_ECLAIM,
              "bad events claim");
    ck_assert_ptr_null(claims.events);
    ck_verify(verify(s, vec("node_hs256")), SC_JWT_OK, "ok");
    ck_assert(!claims.has_events);
    ck_assert(sc_jwt_claims_allows_event(&claims, 12345));
    sc_jwt_keys_free(s);
}
END_TEST

struct events_case {
    const char *events;
    size_t n; /* (size_t)-1: refused */
};

#define REFUSED ((size_t)-1)

static const struct events_case events_cases[] = {
    {"[]", 0},
    {"[1]", 1},
    {"[1,1,1]", 1},
    {"[\"9007199254740991\",9007199254740991]", 1},
    {"[\"01\",1,\"0001\"]", 1},
    {"[1e3,\"1000\",999]", 2},
    {"[5,4,3,2,1]", 5},
    {"null", REFUSED},
    {"\"1,2\"", REFUSED},
    {"1", REFUSED},
    {"{}", REFUSED},
    {"[0]", REFUSED},
    {"[-1]", REFUSED},
    {"[1.5]", REFUSED},
    {"[9007199254740992]", REFUSED},
    {"[\"9007199254740992\"]", REFUSED},
    {"[\"0\"]", REFUSED},
    {"[\"\"]", REFUSED},
    {"[\"1a\"]", REFUSED},
    {"[\" 1\"]", REFUSED},
    {"[\"-1\"]", REFUSED},
    {"[\"+1\"]", REFUSED},
    {"[\"12345678901234567\"]", REFUSED},
    {"[[1]]", REFUSED},
    {"[true]", REFUSED},
    {"[null]", REFUSED},
    {"[1,2,\"x\"]", REFUSED},
};

START_TEST(events_forms)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const struct events_case *ev = &events_cases[_i];
    char cl[256];

    snprintf(cl, sizeof(cl), "{\"sub\":\"u\",\"events\":%s}", ev->events);
    if (ev->n == REFUSED) {
        ck_verify(verify(s, signed_claims(cl)), SC_JWT_ECLAIM,
                  "bad events claim");
        ck_assert(!claims.has_events);
        ck_assert_ptr_null(claims.events);
    } else {
        ck_verify(verify(s, signed_claims(cl)), SC_JWT_OK, "ok");
        ck_assert(claims.has_events);
        ck_assert_uint_eq(claims.nevents, ev->n);
        for (size_t i = 1; i < claims.nevents; i++) {
            ck_assert_uint_lt(claims.events[i - 1], claims.events[i]);
        }
        /* an empty list allows nothing at all */
        ck_assert(!sc_jwt_claims_allows_event(&claims, 7));
    }
    sc_jwt_keys_free(s);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* signing */

START_TEST(sign_agrees_with_jsonwebtoken)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    char tok[1024];
    long n =
        sc_jwt_sign_hs256((const uint8_t *)jwtv_secret, strlen(jwtv_secret),
                          "{\"sub\":\"agree\",\"exp\":4102444800,"
                          "\"jti\":\"j1\"}",
                          tok, sizeof(tok));

    ck_assert_int_eq(n, (long)strlen(tok));
    /* same header and claim bytes, deterministic MAC: the same token */
    ck_assert_str_eq(tok, vec("node_agree"));
    ck_verify(verify(s, tok), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, "agree");
    ck_assert_str_eq(claims.jti, "j1");
    ck_assert_int_eq(claims.exp, FAR);
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(sign_round_trip)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    const char *cl = "{\"sub\":42,\"exp\":1700000100,\"events\":[7,\"8\"]}";
    char tok[1024];
    long n = sc_jwt_sign_hs256((const uint8_t *)jwtv_secret,
                               strlen(jwtv_secret), cl, tok, sizeof(tok));

    ck_assert_int_gt(n, 0);
    ck_verify(verify(s, tok), SC_JWT_OK, "ok");
    ck_assert_str_eq(claims.user, "42");
    ck_assert_uint_eq(claims.nevents, 2);
    ck_assert(sc_jwt_claims_allows_event(&claims, 8));
    /* exactly n + 1 bytes are enough, n are not */
    ck_assert_int_eq(sc_jwt_sign_hs256((const uint8_t *)jwtv_secret,
                                       strlen(jwtv_secret), cl, tok,
                                       (size_t)n + 1),
                     n);
    for (size_t len = 0; len <= (size_t)n; len++) {
        ck_assert_int_eq(sc_jwt_sign_hs256((const uint8_t *)jwtv_secret,
                                           strlen(jwtv_secret), cl, tok, len),
                         -1);
    }
    sc_jwt_keys_free(s);
}
END_TEST

START_TEST(sign_refuses)
{
    char tok[256];
    const uint8_t *sec = (const uint8_t *)jwtv_secret;
    size_t len = strlen(jwtv_secret);

    ck_assert_int_eq(sc_jwt_sign_hs256(sec, 0, "{}", tok, sizeof(tok)), -1);
    ck_assert_int_eq(sc_jwt_sign_hs256(NULL, 5, "{}", tok, sizeof(tok)), -1);
    ck_assert_int_eq(sc_jwt_sign_hs256(sec, len, NULL, tok, sizeof(tok)), -1);
    ck_assert_int_eq(sc_jwt_sign_hs256(sec, len, "{}", NULL, 5), -1);
    ck_assert_int_eq(sc_jwt_sign_hs256(sec, len, "[1]", tok, sizeof(tok)), -1);
    ck_assert_str_eq(tok, "");
    ck_assert_int_eq(sc_jwt_sign_hs256(sec, len, "{} x", tok, sizeof(tok)), -1);
    ck_assert_int_eq(
        sc_jwt_sign_hs256(sec, len, "{\"a\":1,\"a\":2}", tok, sizeof(tok)), -1);
    ck_assert_int_eq(sc_jwt_sign_hs256(sec, len, "", tok, sizeof(tok)), -1);
    ck_assert_int_gt(sc_jwt_sign_hs256(sec, len, "{}", tok, sizeof(tok)), 0);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* keys */

static void
keys_refused(const uint8_t *secret, size_t slen, const char *pem,
             const char *want)
{
    char err[256] = "";
    struct sc_jwt_keys *k = sc_jwt_keys_new(
        secret, slen, pem, pem ? strlen(pem) : 0, err, sizeof(err));

    ck_assert_ptr_null(k);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\", want \"%s\"", err,
                  want);
    ck_assert_uint_eq(ERR_peek_error(), 0);
}

START_TEST(keys_errors)
{
    const uint8_t *sec = (const uint8_t *)jwtv_secret;
    char cut[64];

    keys_refused(NULL, 0, NULL, "no jwt secret and no public key");
    keys_refused(sec, 0, NULL, "jwt secret is empty");
    keys_refused(NULL, 0, "", "public key: empty");
    keys_refused(NULL, 0, "hello", "no PEM public key or certificate found");
    memcpy(cut, jwtv_ec256_pub, sizeof(cut) - 1);
    cut[sizeof(cut) - 1] = '\0';
    keys_refused(NULL, 0, cut, "no PEM public key or certificate found");
    keys_refused(sec, 5,
                 "-----BEGIN PRIVATE KEY-----\nMIIB\n"
                 "-----END PRIVATE KEY-----\n",
                 "got a private key");
    keys_refused(NULL, 0, jwtv_rsa1024_pub, "RSA key of 1024 bits");
    keys_refused(NULL, 0, jwtv_ec521_pub, "unsupported EC curve secp521r1");
    keys_refused(NULL, 0, jwtv_ed25519_pub, "unsupported key type");
    /* a bad public key is an error even with a good secret */
    keys_refused(sec, 5, jwtv_ed25519_pub, "unsupported key type");
    /* no error buffer: still refused, nothing written */
    ck_assert_ptr_null(sc_jwt_keys_new(NULL, 0, NULL, 0, NULL, 0));
    ck_assert_ptr_null(sc_jwt_keys_new(NULL, 0, "x", 1, cut, 0));
    sc_jwt_keys_free(NULL);
}
END_TEST

/* The PEM need not be NUL-terminated: only pem_len bytes are read. */
START_TEST(keys_pem_length)
{
    size_t len = strlen(jwtv_ec256_pub);
    char *pem = malloc(len);
    struct sc_jwt_keys *k;

    memcpy(pem, jwtv_ec256_pub, len);
    k = sc_jwt_keys_new(NULL, 0, pem, len, NULL, 0);
    ck_assert_ptr_nonnull(k);
    ck_verify(verify(k, vec("ossl_es256")), SC_JWT_OK, "ok");
    sc_jwt_keys_free(k);
    free(pem);
}
END_TEST

/*--------------------------------------------------------------------------*/
/* misuse, ownership */

START_TEST(misuse)
{
    struct sc_jwt_keys *s = keys(true, NULL);
    struct sc_jwt_opts o = {JWTV_NOW, 0, NULL, NULL};
    const char *tok = vec("node_hs256");
    const char *why = NULL;

    ck_assert_int_eq(sc_jwt_verify(NULL, tok, strlen(tok), &o, &claims, &why),
                     SC_JWT_EINVAL);
    ck_assert_str_eq(why, "bad arguments");
    ck_assert_int_eq(sc_jwt_verify(s, NULL, 5, &o, &claims, NULL),
                     SC_JWT_EINVAL);
    ck_assert_int_eq(sc_jwt_verify(s, tok, strlen(tok), NULL, &claims, NULL),
                     SC_JWT_EINVAL);
    ck_assert_int_eq(sc_jwt_verify(s, tok, strlen(tok), &o, NULL, NULL),
                     SC_JWT_EINVAL);
    /* no reason pointer is fine; the length, not a NUL, ends the token */
    ck_assert_int_eq(sc_jwt_verify(s, tok, strlen(tok), &o, &claims, NULL),
                     SC_JWT_OK);
    {
        char longer[BIG];

        snprintf(longer, sizeof(longer), "%s.xyz", tok);
        ck_assert_int_eq(
            sc_jwt_verify(s, longer, strlen(tok), &o, &claims, NULL),
            SC_JWT_OK);
    }
    sc_jwt_claims_fini(&claims);
    sc_jwt_claims_fini(&claims);
    sc_jwt_claims_fini(NULL);
    ck_assert(sc_jwt_claims_allows_event(NULL, 1));
    sc_jwt_keys_free(s);
}
END_TEST

/* Failures leave OpenSSL's error queue as they found it. */
START_TEST(error_queue_clean)
{
    struct sc_jwt_keys *r = keys(false, jwtv_rsa_pub);
    struct sc_jwt_keys *e = keys(false, jwtv_ec256_pub);

    ck_verify(verify(r, tamper_sig(vec("ossl_rs256"), 3, 0)), SC_JWT_ESIG,
              "signature mismatch");
    ck_verify(verify(e, tamper_sig(vec("ossl_es256"), 3, 0)), SC_JWT_ESIG,
              "signature mismatch");
    ck_assert_uint_eq(ERR_peek_error(), 0);
    sc_jwt_keys_free(e);
    sc_jwt_keys_free(r);
}
END_TEST

/*--------------------------------------------------------------------------*/

static Suite *
jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *rfc = tcase_create("rfc7515");
    TCase *algs = tcase_create("algorithms");
    TCase *tamper = tcase_create("tampering");
    TCase *cl = tcase_create("claims");
    TCase *api = tcase_create("api");

    tcase_add_checked_fixture(rfc, NULL, teardown);
    tcase_add_test(rfc, rfc7515_a1_hs256);
    tcase_add_test(rfc, rfc7515_a2_rs256);
    tcase_add_test(rfc, rfc7515_a3_es256);
    suite_add_tcase(s, rfc);

    tcase_add_checked_fixture(algs, NULL, teardown);
    tcase_add_loop_test(algs, outside_tokens_verify, 0, N_EXT);
    tcase_add_loop_test(algs, alg_must_fit_key, 0, N_EXT);
    tcase_add_test(algs, cert_pem_verifies_rs256);
    tcase_add_test(algs, wrong_key_of_right_kind);
    tcase_add_test(algs, hmac_secret_shorter_than_the_hash);
    suite_add_tcase(s, algs);

    tcase_add_checked_fixture(tamper, NULL, teardown);
    tcase_add_loop_test(tamper, signature_byte_flipped, 0, N_EXT);
    tcase_add_loop_test(tamper, claims_swapped, 0, N_EXT);
    tcase_add_test(tamper, alg_relabelled);
    tcase_add_test(tamper, key_confusion_refused);
    tcase_add_loop_test(tamper, alg_none_refused, 0,
                        sizeof(none_headers) / sizeof(none_headers[0]));
    tcase_add_test(tamper, unknown_algs);
    tcase_add_test(tamper, header_checks);
    tcase_add_test(tamper, header_not_object);
    tcase_add_test(tamper, structure);
    tcase_add_test(tamper, bad_base64url);
    tcase_add_test(tamper, size_limit);
    tcase_add_test(tamper, es_signature_lengths);
    tcase_add_test(tamper, es_signature_extremes);
    suite_add_tcase(s, tamper);

    tcase_add_checked_fixture(cl, NULL, teardown);
    tcase_add_test(cl, expiry);
    tcase_add_test(cl, not_before);
    tcase_add_test(cl, time_claim_types);
    tcase_add_test(cl, issuer_audience);
    tcase_add_test(cl, issuer_audience_types);
    tcase_add_test(cl, user_claims_outside);
    tcase_add_loop_test(cl, user_claim_forms, 0,
                        sizeof(user_cases) / sizeof(user_cases[0]));
    tcase_add_test(cl, claim_lengths);
    tcase_add_test(cl, jti_claim);
    tcase_add_test(cl, claims_json_strict);
    tcase_add_test(cl, many_claims);
    tcase_add_test(cl, events_outside);
    tcase_add_loop_test(cl, events_forms, 0,
                        sizeof(events_cases) / sizeof(events_cases[0]));
    suite_add_tcase(s, cl);

    tcase_add_checked_fixture(api, NULL, teardown);
    tcase_add_test(api, sign_agrees_with_jsonwebtoken);
    tcase_add_test(api, sign_round_trip);
    tcase_add_test(api, sign_refuses);
    tcase_add_test(api, keys_errors);
    tcase_add_test(api, keys_pem_length);
    tcase_add_test(api, misuse);
    tcase_add_test(api, error_queue_clean);
    suite_add_tcase(s, api);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(jwt_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
