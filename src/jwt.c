/*
 * jwt.c - JSON Web Token verification with libcrypto and cJSON (see jwt.h)
 *
 * Pure code: no I/O, no clock, no globals, no logging.  Called by workers
 * for every upgrade and by `seatcast token`; never by a signal handler.
 *
 * NOTES
 * Order of checks: size, three parts, header, alg against the configured
 * keys, signature, and only then the claims.  The payload is not decoded
 * before the signature holds, so bytes nobody signed never reach the claim
 * code, and every -2xx result is about claims a trusted issuer signed.
 *
 * Strictness, beyond RFC 7515/7519:
 * - base64url must be canonical and unpadded (base64.c);
 * - header and claims must each be one JSON object and nothing else, as
 *   RFC 8259 text: a raw control byte other than tab, LF, CR is refused
 *   (cJSON would take it for a blank, or keep it inside a string);
 * - the escape \u0000 is refused: cJSON would cut the C string there, so
 *   "sub":"alice\u0000x" would read as "alice";
 * - a member name given twice is refused (RFC 7519 section 4 lets parsers
 *   reject it; cJSON would take the first, other parsers the last);
 * - "crit" is refused: no extension is implemented (RFC 7515 4.1.11);
 * - "typ" must be a string if present but its value is not checked (RFC
 *   7519 5.1 leaves it to applications; issuers say "JWT" or "at+jwt");
 *   "kid", "jku", "jwk", "x5u", "x5c" are ignored: the configured key is
 *   the only key ever used.
 *
 * Claims:
 * - exp, nbf: JSON numbers (integer or not) of magnitude <= 2^53 - 1; iat
 *   is not looked at;
 * - iss must equal the configured issuer; aud, a string or an array of
 *   strings, must contain the configured audience.  Neither is looked at
 *   when not configured (like most JWT libraries, unlike the letter of
 *   RFC 7519 4.1.3, so that tokens of the booking API keep working);
 * - the user is the first of sub, userId, id that is present and not
 *   null; a wrong type there refuses the token, it does not fall through;
 *   strings of 1..128 bytes without control bytes (they reach the log),
 *   or integers (2^53 - 1 at most in magnitude) rendered in decimal;
 * - jti: absent, null or a string of 0..128 bytes as above;
 * - events: an array of ids (integers, or strings of 1..16 digits, leading
 *   zeros allowed), each 1 .. 2^53 - 1; returned sorted without repeats
 *   in one heap array sized to fit, which the caller owns.
 */
#include "jwt.h"
#include "base64.h"
#include "text.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* 2^53 - 1: the largest integer a JSON number (a double) holds exactly */
#define JWT_MAX_INT 9007199254740991.0
/* A public key or certificate PEM is a few KiB at most. */
#define JWT_MAX_PEM (1024 * 1024)
/* Room for the decoded bytes of any one part of a token, plus a NUL. */
#define JWT_PART_MAX (SC_JWT_MAX_TOKEN / 4 * 3 + 3)
/* DER ECDSA-Sig-Value of P-384: 2 + 2 * (2 + 49) bytes at most */
#define JWT_DER_MAX 128

enum jwt_kind { JWT_HMAC, JWT_RSA, JWT_EC };

struct jwt_alg {
    const char *name; /* JWS "alg", case-sensitive (RFC 7515 4.1.1) */
    enum jwt_kind kind;
    const EVP_MD *(*md)(void);
    size_t ec_half; /* ES: bytes of r and of s (RFC 7518 3.4) */
    int curve;      /* ES: NID of the curve the key must be on */
};

static const struct jwt_alg jwt_algs[] = {
    {"HS256", JWT_HMAC, EVP_sha256, 0, NID_undef},
    {"HS384", JWT_HMAC, EVP_sha384, 0, NID_undef},
    {"HS512", JWT_HMAC, EVP_sha512, 0, NID_undef},
    {"RS256", JWT_RSA, EVP_sha256, 0, NID_undef},
    {"RS384", JWT_RSA, EVP_sha384, 0, NID_undef},
    {"RS512", JWT_RSA, EVP_sha512, 0, NID_undef},
    {"ES256", JWT_EC, EVP_sha256, 32, NID_X9_62_prime256v1},
    {"ES384", JWT_EC, EVP_sha384, 48, NID_secp384r1},
};

/* User claims, in order of preference (PROTOCOL.md section 3). */
static const char *const jwt_user_names[] = {"sub", "userId", "id"};

struct sc_jwt_keys {
    uint8_t *secret; /* owned, wiped on free; NULL = no HS* */
    size_t secret_len;
    EVP_PKEY *pkey;          /* owned; NULL = no RS* and no ES* */
    enum jwt_kind pkey_kind; /* JWT_RSA or JWT_EC when pkey is set */
    int curve;               /* JWT_EC: NID of the key's curve */
};

/* One token being verified.  part[] point into the caller's token. */
struct jwt_ctx {
    const struct sc_jwt_keys *keys;
    const char *token;
    size_t signed_len; /* "header.payload": the JWS signing input */
    const char *part[3];
    size_t part_len[3];
    const struct jwt_alg *alg;
    const char *why;
    uint8_t buf[JWT_PART_MAX]; /* one decoded part at a time */
};

/*--------------------------------------------------------------------------*/
/* keys */

__attribute__((format(printf, 3, 4))) static void
jwt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int
jwt_keys_set_secret(struct sc_jwt_keys *k, const uint8_t *secret, size_t len,
                    char *err, size_t errlen)
{
    if (len == 0) {
        jwt_err(err, errlen, "jwt secret is empty");
        return -1;
    }
    /* HMAC() takes an int key length */
    if (len > INT_MAX) {
        jwt_err(err, errlen, "jwt secret is too long");
        return -1;
    }
    k->secret = malloc(len);
    if (k->secret == NULL) {
        jwt_err(err, errlen, "out of memory");
        return -1;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    return 0;
}

/* The key of a PEM "PUBLIC KEY", else of a PEM "CERTIFICATE", or NULL. */
static EVP_PKEY *
jwt_pem_pubkey(const char *pem, size_t len)
{
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;
    BIO *bio;

    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL) {
        pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (pkey != NULL) {
        return pkey;
    }
    /* a fresh BIO: the first read consumed the blocks it skipped */
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL) {
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (cert != NULL) {
        pkey = X509_get_pubkey(cert); /* a new reference */
        X509_free(cert);
    }
    return pkey;
}

/* Records which algs k->pkey can verify, or refuses it. */
static int
jwt_keys_classify(struct sc_jwt_keys *k, char *err, size_t errlen)
{
    char group[80];
    size_t glen = 0;

    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(k->pkey);

        /* RFC 7518 3.3: a key of 2048 bits or larger MUST be used */
        if (bits < 2048) {
            jwt_err(err, errlen,
                    "public key: RSA key of %d bits, 2048 or more needed",
                    bits);
            return -1;
        }
        k->pkey_kind = JWT_RSA;
        return 0;
    }
    if (!EVP_PKEY_is_a(k->pkey, "EC")) {
        jwt_err(err, errlen,
                "public key: unsupported key type (RSA, P-256 or P-384)");
        return -1;
    }
    if (EVP_PKEY_get_group_name(k->pkey, group, sizeof(group), &glen) != 1) {
        jwt_err(err, errlen, "public key: EC key without a named curve");
        return -1;
    }
    k->curve = OBJ_sn2nid(group);
    if (k->curve != NID_X9_62_prime256v1 && k->curve != NID_secp384r1) {
        jwt_err(err, errlen,
                "public key: unsupported EC curve %s (P-256 or P-384)", group);
        return -1;
    }
    k->pkey_kind = JWT_EC;
    return 0;
}

static int
jwt_keys_set_public(struct sc_jwt_keys *k, const char *pem, size_t len,
                    char *err, size_t errlen)
{
    if (len == 0 || len > JWT_MAX_PEM) {
        jwt_err(err, errlen, "public key: empty or larger than 1 MiB");
        return -1;
    }
    /* keep OpenSSL's error queue as the caller left it */
    ERR_set_mark();
    k->pkey = jwt_pem_pubkey(pem, len);
    ERR_pop_to_mark();
    if (k->pkey == NULL) {
        if (memmem(pem, len, "PRIVATE KEY-----", 16) != NULL) {
            jwt_err(err, errlen,
                    "public key: got a private key, give its public half "
                    "(openssl pkey -pubout)");
        } else {
            jwt_err(err, errlen,
                    "public key: no PEM public key or certificate found");
        }
        return -1;
    }
    return jwt_keys_classify(k, err, errlen);
}

struct sc_jwt_keys *
sc_jwt_keys_new(const uint8_t *secret, size_t secret_len,
                const char *public_pem, size_t pem_len, char *err,
                size_t errlen)
{
    struct sc_jwt_keys *k = calloc(1, sizeof(*k));

    if (k == NULL) {
        jwt_err(err, errlen, "out of memory");
        return NULL;
    }
    if (secret != NULL &&
        jwt_keys_set_secret(k, secret, secret_len, err, errlen) < 0) {
        goto fail;
    }
    if (public_pem != NULL &&
        jwt_keys_set_public(k, public_pem, pem_len, err, errlen) < 0) {
        goto fail;
    }
    if (k->secret == NULL && k->pkey == NULL) {
        jwt_err(err, errlen, "no jwt secret and no public key");
        goto fail;
    }
    return k;

fail:
    sc_jwt_keys_free(k);
    return NULL;
}

void
sc_jwt_keys_free(struct sc_jwt_keys *keys)
{
    if (keys == NULL) {
        return;
    }
    if (keys->secret != NULL) {
        OPENSSL_cleanse(keys->secret, keys->secret_len);
        free(keys->secret);
    }
    EVP_PKEY_free(keys->pkey);
    free(keys);
}

/*--------------------------------------------------------------------------*/
/* JSON */

static int
jwt_cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 when a member name appears twice in obj, 0 if not, -1 out of memory */
static int
jwt_has_duplicate(const cJSON *obj)
{
    int n = cJSON_GetArraySize(obj), i = 0, dup = 0;
    const char **names;
    const cJSON *it;

    if (n < 2) {
        return 0;
    }
    names = malloc((size_t)n * sizeof(*names));
    if (names == NULL) {
        return -1;
    }
    cJSON_ArrayForEach(it, obj)
    {
        names[i++] = it->string != NULL ? it->string : "";
    }
    /* sorted, so that a crafted 6 KiB header costs n log n, not n^2 */
    qsort(names, (size_t)n, sizeof(*names), jwt_cmp_name);
    for (i = 1; i < n && !dup; i++) {
        dup = strcmp(names[i - 1], names[i]) == 0;
    }
    free(names);
    return dup;
}

/*
 * Parses text[0..n) (text[n] must be NUL) as one JSON object with unique
 * member names.  Returns 0, or rc with *why set to what_bad or what_dup
 * (SC_JWT_ENOMEM if the duplicate check runs out of memory).  *obj, when
 * not NULL, is the caller's to free whatever the result.
 */
static int
jwt_parse_object(const uint8_t *text, size_t n, int rc, const char *what_bad,
                 const char *what_dup, cJSON **obj, const char **why)
{
    const char *end = NULL;
    int dup;

    *obj = NULL;
    if (!sc_json_text_ok(text, n)) {
        *why = what_bad;
        return rc;
    }
    /* length n + 1 takes in the NUL, which cJSON requires to end there */
    *obj = cJSON_ParseWithLengthOpts((const char *)text, n + 1, &end, 1);
    if (*obj == NULL || !cJSON_IsObject(*obj)) {
        *why = what_bad;
        return rc;
    }
    dup = jwt_has_duplicate(*obj);
    if (dup < 0) {
        *why = "out of memory";
        return SC_JWT_ENOMEM;
    }
    if (dup > 0) {
        *why = what_dup;
        return rc;
    }
    return 0;
}

/*--------------------------------------------------------------------------*/
/* token structure and header */

static int
jwt_fail(struct jwt_ctx *c, int rc, const char *why)
{
    c->why = why;
    return rc;
}

/* Splits the token into exactly three dot-separated parts. */
static int
jwt_split(struct jwt_ctx *c, const char *token, size_t len)
{
    const char *end = token + len, *d1, *d2 = NULL;

    if (len == 0) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "empty token");
    }
    if (len > SC_JWT_MAX_TOKEN) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "token too long");
    }
    d1 = memchr(token, '.', len);
    if (d1 != NULL) {
        d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    }
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "not three parts");
    }
    c->token = token;
    c->signed_len = (size_t)(d2 - token);
    c->part[0] = token;
    c->part_len[0] = (size_t)(d1 - token);
    c->part[1] = d1 + 1;
    c->part_len[1] = (size_t)(d2 - d1 - 1);
    c->part[2] = d2 + 1;
    c->part_len[2] = (size_t)(end - d2 - 1);
    return 0;
}

/* Decodes part i into c->buf, NUL-terminated.  Returns its length or -1. */
static long
jwt_decode_part(struct jwt_ctx *c, int i)
{
    long n = sc_base64_decode(c->part[i], c->part_len[i], c->buf,
                              sizeof(c->buf) - 1, true);

    if (n >= 0) {
        c->buf[n] = '\0';
    }
    return n;
}

static const struct jwt_alg *
jwt_find_alg(const char *name)
{
    for (size_t i = 0; i < sizeof(jwt_algs) / sizeof(jwt_algs[0]); i++) {
        if (strcmp(jwt_algs[i].name, name) == 0) {
            return &jwt_algs[i];
        }
    }
    return NULL;
}

/* Whether the configured keys can verify alg a (no key confusion). */
static bool
jwt_alg_fits(const struct sc_jwt_keys *k, const struct jwt_alg *a)
{
    if (a->kind == JWT_HMAC) {
        return k->secret != NULL;
    }
    if (k->pkey == NULL || k->pkey_kind != a->kind) {
        return false;
    }
    return a->kind != JWT_EC || k->curve == a->curve;
}

static int
jwt_check_header(struct jwt_ctx *c, const cJSON *hdr)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");

    if (!cJSON_IsString(alg)) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "no alg in header");
    }
    if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "crit header refused");
    }
    if (typ != NULL && !cJSON_IsString(typ)) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "typ header not a string");
    }
    if (strcasecmp(alg->valuestring, "none") == 0) {
        return jwt_fail(c, SC_JWT_EALG, "alg none refused");
    }
    c->alg = jwt_find_alg(alg->valuestring);
    if (c->alg == NULL) {
        return jwt_fail(c, SC_JWT_EALG, "unknown alg");
    }
    if (!jwt_alg_fits(c->keys, c->alg)) {
        return jwt_fail(c, SC_JWT_EALG, "alg does not fit the configured key");
    }
    return 0;
}

static int
jwt_read_header(struct jwt_ctx *c)
{
    cJSON *hdr;
    long n = jwt_decode_part(c, 0);
    int rc;

    if (n < 0) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "bad base64url in header");
    }
    rc = jwt_parse_object(c->buf, (size_t)n, SC_JWT_EMALFORMED,
                          "header is not a JSON object",
                          "duplicate header parameter", &hdr, &c->why);
    if (rc == 0) {
        rc = jwt_check_header(c, hdr);
    }
    cJSON_Delete(hdr);
    return rc;
}

/*--------------------------------------------------------------------------*/
/* signature */

static int
jwt_verify_hmac(struct jwt_ctx *c, const uint8_t *sig, size_t len)
{
    const struct sc_jwt_keys *k = c->keys;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    bool same;

    /* RFC 7518 section 3.2: a key at least as long as the hash */
    if (k->secret_len < (size_t)EVP_MD_get_size(c->alg->md())) {
        return jwt_fail(c, SC_JWT_EALG, "secret shorter than the hash of "
                        "this algorithm");
    }
    if (HMAC(c->alg->md(), k->secret, (int)k->secret_len,
             (const unsigned char *)c->token, c->signed_len, mac,
             &maclen) == NULL) {
        return jwt_fail(c, SC_JWT_ENOMEM, "hmac failed");
    }
    /* the length is public; the bytes are compared in constant time */
    same = len == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    if (len != maclen) {
        return jwt_fail(c, SC_JWT_ESIG, "bad signature length");
    }
    return same ? 0 : jwt_fail(c, SC_JWT_ESIG, "signature mismatch");
}

/* EVP verification of sig (DER for ECDSA, raw for RSA PKCS#1 v1.5). */
static int
jwt_verify_pkey(struct jwt_ctx *c, const uint8_t *sig, size_t len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int init = 0, ok = 0;

    if (md == NULL) {
        return jwt_fail(c, SC_JWT_ENOMEM, "out of memory");
    }
    /* a bad signature leaves errors on OpenSSL's queue: drop ours */
    ERR_set_mark();
    init = EVP_DigestVerifyInit(md, NULL, c->alg->md(), NULL, c->keys->pkey);
    if (init == 1) {
        ok = EVP_DigestVerify(md, sig, len, (const unsigned char *)c->token,
                              c->signed_len);
    }
    ERR_pop_to_mark();
    EVP_MD_CTX_free(md);
    if (init != 1) {
        return jwt_fail(c, SC_JWT_ENOMEM, "verify setup failed");
    }
    return ok == 1 ? 0 : jwt_fail(c, SC_JWT_ESIG, "signature mismatch");
}

/*
 * JOSE r||s (half bytes each) to a DER ECDSA-Sig-Value in der.  Returns
 * the DER length or -1.
 */
static int
jwt_ec_to_der(const uint8_t *rs, size_t half, uint8_t der[JWT_DER_MAX])
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(rs + half, (int)half, NULL);
    unsigned char *p = der;
    int len;

    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        goto fail;
    }
    /* es owns r and s from here */
    r = s = NULL;
    len = i2d_ECDSA_SIG(es, NULL);
    if (len <= 0 || len > JWT_DER_MAX) {
        goto fail;
    }
    len = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    return len;

fail:
    BN_free(s);
    BN_free(r);
    ECDSA_SIG_free(es);
    return -1;
}

static int
jwt_check_signature(struct jwt_ctx *c)
{
    uint8_t der[JWT_DER_MAX];
    long n = jwt_decode_part(c, 2);
    int dlen;

    if (n < 0) {
        return jwt_fail(c, SC_JWT_EMALFORMED, "bad base64url in signature");
    }
    switch (c->alg->kind) {
    case JWT_HMAC:
        return jwt_verify_hmac(c, c->buf, (size_t)n);
    case JWT_RSA:
        /* PKCS#1 v1.5: exactly the modulus size (RFC 8017 8.2.2) */
        if ((size_t)n != (size_t)EVP_PKEY_get_size(c->keys->pkey)) {
            return jwt_fail(c, SC_JWT_ESIG, "bad signature length");
        }
        return jwt_verify_pkey(c, c->buf, (size_t)n);
    case JWT_EC:
        /* RFC 7518 3.4: fixed-width r||s, not DER */
        if ((size_t)n != 2 * c->alg->ec_half) {
            return jwt_fail(c, SC_JWT_ESIG, "bad signature length");
        }
        dlen = jwt_ec_to_der(c->buf, c->alg->ec_half, der);
        if (dlen < 0) {
            return jwt_fail(c, SC_JWT_ENOMEM, "out of memory");
        }
        return jwt_verify_pkey(c, der, (size_t)dlen);
    }
    return jwt_fail(c, SC_JWT_EINVAL, "bad alg table");
}

/*--------------------------------------------------------------------------*/
/* claims (the signature has verified) */

/*
 * NumericDate claim name: 0 and *t = 0 when absent, 1 and *t when present,
 * -1 when not a number of magnitude <= 2^53 - 1.  Fractions are rounded
 * down (exp) or up (nbf, up = true): toward the stricter side.
 */
static int
jwt_numeric_date(const cJSON *cl, const char *name, bool up, int64_t *t)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cl, name);
    double v;

    *t = 0;
    if (it == NULL) {
        return 0;
    }
    if (!cJSON_IsNumber(it)) {
        return -1;
    }
    v = it->valuedouble;
    /* written so that NaN fails too; the cast below is then defined */
    if (!(v >= -JWT_MAX_INT && v <= JWT_MAX_INT)) {
        return -1;
    }
    *t = (int64_t)v;
    if (up && (double)*t < v) {
        (*t)++;
    } else if (!up && (double)*t > v) {
        (*t)--;
    }
    return 1;
}

static int
jwt_check_times(const cJSON *cl, const struct sc_jwt_opts *o,
                struct sc_jwt_claims *out, const char **why)
{
    int64_t leeway = o->leeway > 0 ? o->leeway : 0;
    int has_exp = jwt_numeric_date(cl, "exp", false, &out->exp);
    int has_nbf = jwt_numeric_date(cl, "nbf", true, &out->nbf);

    if (has_exp < 0) {
        *why = "bad exp claim";
        return SC_JWT_ECLAIM;
    }
    if (has_nbf < 0) {
        *why = "bad nbf claim";
        return SC_JWT_ECLAIM;
    }
    /* RFC 7519 4.1.4: now must be before exp; |exp| < 2^53: no overflow */
    if (has_exp && o->now >= out->exp + leeway) {
        *why = "expired";
        return SC_JWT_EEXPIRED;
    }
    /* RFC 7519 4.1.5: now must be at or after nbf */
    if (has_nbf && o->now < out->nbf - leeway) {
        *why = "token not yet valid";
        return SC_JWT_ENOTYET;
    }
    return 0;
}

static int
jwt_check_issuer(const cJSON *cl, const char *want, const char **why)
{
    const cJSON *iss;

    if (want == NULL || want[0] == '\0') {
        return 0;
    }
    iss = cJSON_GetObjectItemCaseSensitive(cl, "iss");
    if (!cJSON_IsString(iss) || strcmp(iss->valuestring, want) != 0) {
        *why = "issuer mismatch";
        return SC_JWT_EISSUER;
    }
    return 0;
}

/* RFC 7519 4.1.3: one string, or an array of strings containing want. */
static int
jwt_check_audience(const cJSON *cl, const char *want, const char **why)
{
    const cJSON *aud, *it;
    bool found = false;

    if (want == NULL || want[0] == '\0') {
        return 0;
    }
    aud = cJSON_GetObjectItemCaseSensitive(cl, "aud");
    if (cJSON_IsString(aud)) {
        found = strcmp(aud->valuestring, want) == 0;
    } else if (cJSON_IsArray(aud)) {
        cJSON_ArrayForEach(it, aud)
        {
            if (!cJSON_IsString(it)) {
                *why = "bad aud claim";
                return SC_JWT_ECLAIM;
            }
            found = found || strcmp(it->valuestring, want) == 0;
        }
    } else if (aud != NULL) {
        *why = "bad aud claim";
        return SC_JWT_ECLAIM;
    }
    if (!found) {
        *why = "audience mismatch";
        return SC_JWT_EAUDIENCE;
    }
    return 0;
}

/*
 * Copies s (at most SC_JWT_MAX_CLAIM bytes, no control byte, so that it is
 * safe in a log line) to out.  Returns 0 or -1.
 */
static int
jwt_copy_text(const char *s, char *out, bool allow_empty)
{
    size_t len = strlen(s);

    if ((len == 0 && !allow_empty) || len > SC_JWT_MAX_CLAIM) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return -1;
        }
    }
    memcpy(out, s, len + 1);
    return 0;
}

/* A user id: non-empty string, or integer of magnitude <= 2^53 - 1. */
static int
jwt_copy_user(const cJSON *it, char *out)
{
    double v;

    if (cJSON_IsString(it)) {
        return jwt_copy_text(it->valuestring, out, false);
    }
    if (!cJSON_IsNumber(it)) {
        return -1;
    }
    v = it->valuedouble;
    if (!(v >= -JWT_MAX_INT && v <= JWT_MAX_INT) || v != (double)(int64_t)v) {
        return -1;
    }
    snprintf(out, SC_JWT_MAX_CLAIM + 1, "%" PRId64, (int64_t)v);
    return 0;
}

/* The first of sub, userId, id that is present and not null. */
static int
jwt_read_user(const cJSON *cl, char *user, const char **why)
{
    size_t n = sizeof(jwt_user_names) / sizeof(jwt_user_names[0]);

    for (size_t i = 0; i < n; i++) {
        const cJSON *it =
            cJSON_GetObjectItemCaseSensitive(cl, jwt_user_names[i]);

        if (it == NULL || cJSON_IsNull(it)) {
            continue;
        }
        if (jwt_copy_user(it, user) < 0) {
            *why = "bad user claim";
            return SC_JWT_ECLAIM;
        }
        return 0;
    }
    *why = "no user claim";
    return SC_JWT_ENOUSER;
}

static int
jwt_read_jti(const cJSON *cl, char *jti, const char **why)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cl, "jti");

    jti[0] = '\0';
    if (it == NULL || cJSON_IsNull(it)) {
        return 0;
    }
    if (!cJSON_IsString(it) || jwt_copy_text(it->valuestring, jti, true) < 0) {
        *why = "bad jti claim";
        return SC_JWT_ECLAIM;
    }
    return 0;
}

/* An event id: integer or string of digits, 1 .. 2^53 - 1 (text.h).
 * 0 or -1. */
static int
jwt_event_id(const cJSON *it, uint64_t *id)
{
    if (cJSON_IsNumber(it)) {
        return sc_event_id_number(it->valuedouble, id);
    }
    if (!cJSON_IsString(it)) {
        return -1;
    }
    return sc_event_id_digits(it->valuestring, strlen(it->valuestring), true,
                              id);
}

static int
jwt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Sorts ids and drops repeats.  Returns the new count. */
static size_t
jwt_sort_unique(uint64_t *ids, size_t n)
{
    size_t o = 0;

    qsort(ids, n, sizeof(*ids), jwt_cmp_u64);
    for (size_t i = 0; i < n; i++) {
        if (o == 0 || ids[o - 1] != ids[i]) {
            ids[o++] = ids[i];
        }
    }
    return o;
}

/*
 * The optional "events" claim.  It narrows what the user may follow, so
 * anything unclear in it (null, a string, a bad element) refuses the token
 * rather than being read as "no restriction".
 */
static int
jwt_read_events(const cJSON *cl, struct sc_jwt_claims *out, const char **why)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(cl, "events"), *it;
    size_t n = 0, cap;

    if (ev == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(ev)) {
        *why = "bad events claim";
        return SC_JWT_ECLAIM;
    }
    out->has_events = true;
    cap = (size_t)cJSON_GetArraySize(ev); /* < SC_JWT_MAX_TOKEN */
    if (cap == 0) {
        return 0;
    }
    out->events = malloc(cap * sizeof(*out->events));
    if (out->events == NULL) {
        *why = "out of memory";
        return SC_JWT_ENOMEM;
    }
    cJSON_ArrayForEach(it, ev)
    {
        if (jwt_event_id(it, &out->events[n]) < 0) {
            *why = "bad events claim";
            return SC_JWT_ECLAIM;
        }
        n++;
    }
    out->nevents = jwt_sort_unique(out->events, n);
    return 0;
}

static int
jwt_check_claims(const cJSON *cl, const struct sc_jwt_opts *o,
                 struct sc_jwt_claims *out, const char **why)
{
    int rc = jwt_check_times(cl, o, out, why);

    if (rc == 0) {
        rc = jwt_check_issuer(cl, o->issuer, why);
    }
    if (rc == 0) {
        rc = jwt_check_audience(cl, o->audience, why);
    }
    if (rc == 0) {
        rc = jwt_read_user(cl, out->user, why);
    }
    if (rc == 0) {
        rc = jwt_read_jti(cl, out->jti, why);
    }
    if (rc == 0) {
        rc = jwt_read_events(cl, out, why);
    }
    return rc;
}

static int
jwt_read_claims(struct jwt_ctx *c, const struct sc_jwt_opts *o,
                struct sc_jwt_claims *out)
{
    cJSON *cl;
    long n = jwt_decode_part(c, 1);
    int rc;

    /* signed by the issuer yet unreadable: a claims error (-2xx) */
    if (n < 0) {
        return jwt_fail(c, SC_JWT_ECLAIM, "bad base64url in claims");
    }
    rc = jwt_parse_object(c->buf, (size_t)n, SC_JWT_ECLAIM,
                          "claims are not a JSON object", "duplicate claim",
                          &cl, &c->why);
    if (rc == 0) {
        rc = jwt_check_claims(cl, o, out, &c->why);
    }
    cJSON_Delete(cl);
    return rc;
}

/*--------------------------------------------------------------------------*/
/* API */

int
sc_jwt_verify(const struct sc_jwt_keys *keys, const char *token, size_t len,
              const struct sc_jwt_opts *opts, struct sc_jwt_claims *out,
              const char **reason)
{
    struct jwt_ctx c;
    int rc;

    c.keys = keys;
    c.alg = NULL;
    c.why = "ok";
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (keys == NULL || token == NULL || opts == NULL || out == NULL) {
        rc = jwt_fail(&c, SC_JWT_EINVAL, "bad arguments");
    } else {
        rc = jwt_split(&c, token, len);
    }
    if (rc == 0) {
        rc = jwt_read_header(&c);
    }
    if (rc == 0) {
        rc = jwt_check_signature(&c);
    }
    if (rc == 0) {
        rc = jwt_read_claims(&c, opts, out);
    }
    if (rc != 0) {
        sc_jwt_claims_fini(out);
    }
    if (reason != NULL) {
        *reason = c.why;
    }
    return rc;
}

void
sc_jwt_claims_fini(struct sc_jwt_claims *claims)
{
    if (claims == NULL) {
        return;
    }
    free(claims->events);
    memset(claims, 0, sizeof(*claims));
}

bool
sc_jwt_claims_allows_event(const struct sc_jwt_claims *claims,
                           uint64_t event_id)
{
    if (claims == NULL || !claims->has_events) {
        return true;
    }
    if (claims->nevents == 0) {
        return false;
    }
    return bsearch(&event_id, claims->events, claims->nevents, sizeof(event_id),
                   jwt_cmp_u64) != NULL;
}

/*
 * Appends base64url(src) to out at *pos, keeping a NUL (cap bytes in all).
 * Encoded through a small buffer when short: sc_base64_encode() wants room
 * for the padding it does not write in url form.
 */
static int
jwt_append_b64(const uint8_t *src, size_t len, char *out, size_t cap,
               size_t *pos)
{
    long n;

    if (*pos >= cap) {
        return -1;
    }
    if (len <= EVP_MAX_MD_SIZE) {
        char tmp[SC_BASE64_ENCODED_LEN(EVP_MAX_MD_SIZE) + 1];

        n = sc_base64_encode(src, len, tmp, sizeof(tmp), true);
        if (n < 0 || (size_t)n >= cap - *pos) {
            return -1;
        }
        memcpy(out + *pos, tmp, (size_t)n + 1);
    } else {
        n = sc_base64_encode(src, len, out + *pos, cap - *pos, true);
        if (n < 0) {
            return -1;
        }
    }
    *pos += (size_t)n;
    return 0;
}

static int
jwt_append_dot(char *out, size_t cap, size_t *pos)
{
    if (*pos + 1 >= cap) {
        return -1;
    }
    out[(*pos)++] = '.';
    out[*pos] = '\0';
    return 0;
}

long
sc_jwt_sign_hs256(const uint8_t *secret, size_t secret_len,
                  const char *claims_json, char *out, size_t outlen)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t cap = outlen < SC_JWT_MAX_TOKEN + 1 ? outlen : SC_JWT_MAX_TOKEN + 1;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const char *why = NULL;
    cJSON *cl = NULL;
    size_t pos = 0;
    int rc;

    if (secret == NULL || secret_len == 0 || secret_len > INT_MAX ||
        claims_json == NULL || out == NULL || outlen == 0) {
        return -1;
    }
    out[0] = '\0';
    /* refuse to mint what sc_jwt_verify() would refuse to read */
    rc = jwt_parse_object((const uint8_t *)claims_json, strlen(claims_json), -1,
                          "", "", &cl, &why);
    cJSON_Delete(cl);
    if (rc == 0) {
        rc = jwt_append_b64((const uint8_t *)header, strlen(header), out, cap,
                            &pos);
    }
    if (rc == 0) {
        rc = jwt_append_dot(out, cap, &pos);
    }
    if (rc == 0) {
        rc = jwt_append_b64((const uint8_t *)claims_json, strlen(claims_json),
                            out, cap, &pos);
    }
    if (rc == 0 && HMAC(EVP_sha256(), secret, (int)secret_len,
                        (const uint8_t *)out, pos, mac, &maclen) == NULL) {
        rc = -1;
    }
    if (rc == 0) {
        rc = jwt_append_dot(out, cap, &pos);
    }
    if (rc == 0) {
        rc = jwt_append_b64(mac, maclen, out, cap, &pos);
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    if (rc != 0) {
        out[0] = '\0';
        return -1;
    }
    return (long)pos;
}
