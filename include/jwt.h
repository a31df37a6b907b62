/*
 * jwt.h - JSON Web Token verification (RFC 7519 over RFC 7515 JWS compact)
 *
 * Pure: no syscalls, no globals, no clock, no logging.  The caller reads the
 * secret file and the public key file, passes the current time, and logs the
 * static reason string this module returns.  Used by workers to check the
 * token of each WebSocket upgrade (docs/PROTOCOL.md section 3) and by
 * `seatcast token` to mint HS256 tokens.  Needs libcrypto (OpenSSL 3)
 * and cJSON.
 *
 * Accepted: HS256/HS384/HS512 with the secret; RS256/RS384/RS512 with an RSA
 * public key (>= 2048 bits); ES256 with a P-256 key and ES384 with a P-384
 * key (signature r||s of 64 or 96 bytes, RFC 7518 3.4).  Anything else, and
 * any alg that does not fit the configured keys, is refused, whatever the
 * token's header says ("none", key confusion of RS256 into HS256).
 */
#ifndef SC_JWT_H
#define SC_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/*
 * Shortest HMAC secret, in bytes: RFC 7518 section 3.2 wants a key at least
 * as long as the hash, so HS256 needs 32; an HS384 or HS512 token verified
 * with a secret shorter than 48 or 64 bytes is SC_JWT_EALG.
 */
#define SC_JWT_SECRET_MIN 32

/* Longest token accepted, in bytes (longer: SC_JWT_EMALFORMED). */
#define SC_JWT_MAX_TOKEN 8192
/* Longest user and jti claim kept, in bytes (longer: SC_JWT_ECLAIM). */
#define SC_JWT_MAX_CLAIM 128
/* Event ids of the "events" claim are positive and below this. */

/*
 * Results of sc_jwt_verify().  The -1xx codes refuse the token before or at
 * its signature; the -2xx codes are returned only once the signature has
 * verified, so they describe claims a trusted issuer really signed.
 */
enum {
    SC_JWT_OK = 0,
    /* token refused before or at the signature */
    SC_JWT_EMALFORMED = -101, /* not three base64url parts of JSON objects */
    SC_JWT_EALG = -102,       /* none, unknown, or not fit for the keys */
    SC_JWT_ESIG = -103,       /* signature mismatch or bad length */
    /* signature verified, claims refused */
    SC_JWT_EEXPIRED = -201,  /* now >= exp + leeway */
    SC_JWT_ENOTYET = -202,   /* now + leeway < nbf */
    SC_JWT_EISSUER = -203,   /* iss configured and not equal */
    SC_JWT_EAUDIENCE = -204, /* aud configured and not contained */
    SC_JWT_ENOUSER = -205,   /* none of sub, userId, id */
    SC_JWT_ECLAIM = -206,    /* a claim of the wrong type or size */
    /* misuse */
    SC_JWT_EINVAL = -301, /* NULL argument */
    /* resource */
    SC_JWT_ENOMEM = -401 /* allocation failed (OpenSSL, cJSON, events) */
};

/*
 * The verification keys: an HMAC secret, a public key, or both.  Opaque,
 * immutable once made; workers inherit it across fork() and share it.
 */
struct sc_jwt_keys;

struct sc_jwt_opts {
    int64_t now;          /* current time, seconds since the epoch */
    int leeway;           /* seconds allowed on exp and nbf; < 0 means 0 */
    const char *issuer;   /* required "iss"; NULL or "" = not checked */
    const char *audience; /* required in "aud"; NULL or "" = not checked */
};

/*
 * What a verified token says.  Filled by sc_jwt_verify(); release with
 * sc_jwt_claims_fini().  The struct is plain data plus one heap array.
 */
struct sc_jwt_claims {
    char user[SC_JWT_MAX_CLAIM + 1]; /* sub, else userId, else id */
    char jti[SC_JWT_MAX_CLAIM + 1];  /* "" = no jti */
    int64_t exp;                     /* 0 = no exp; fractions rounded down */
    int64_t nbf;                     /* 0 = no nbf; fractions rounded up */
    bool has_events;                 /* false: every event may be followed */
    size_t nevents;                  /* may be 0 with has_events: none */
    uint64_t *events;                /* owned: sorted, unique; or NULL */
};

/*
 * Makes the key set.  secret (secret_len > 0 bytes, copied) enables HS*;
 * public_pem (pem_len bytes, need not be NUL-terminated) holds a PEM
 * "PUBLIC KEY" or "CERTIFICATE" whose RSA (>= 2048 bits), P-256 or P-384
 * key enables RS* or ES256 or ES384.  Either may be NULL, not both.
 * Returns the keys, or NULL with a one-line lowercase message in err
 * ("public key: unsupported EC curve secp521r1").  Any process; the master
 * makes it before forking, again on SIGHUP.
 */
struct sc_jwt_keys *sc_jwt_keys_new(const uint8_t *secret, size_t secret_len,
                                    const char *public_pem, size_t pem_len,
                                    char *err, size_t errlen);

/* Frees the keys (the secret is wiped first).  NULL-safe. */
void sc_jwt_keys_free(struct sc_jwt_keys *keys);

/*
 * Verifies the compact JWS token (len bytes, not NUL-terminated) with keys
 * and opts, and on success fills out.  Returns SC_JWT_OK or a negative
 * SC_JWT_E* code; *reason (if reason is not NULL) is then set to a static
 * string for the log ("signature mismatch", "alg none refused", "expired",
 * ...) that never quotes the token.  On failure out holds no heap memory
 * (sc_jwt_claims_fini() is harmless); on success the caller owns
 * out->events.  Any process; cost is one HMAC or public-key verify.
 */
int sc_jwt_verify(const struct sc_jwt_keys *keys, const char *token, size_t len,
                  const struct sc_jwt_opts *opts, struct sc_jwt_claims *out,
                  const char **reason);

/* Frees out->events and clears the claims.  NULL-safe, idempotent. */
void sc_jwt_claims_fini(struct sc_jwt_claims *claims);

/*
 * True when the claims let the user follow event_id: no "events" claim, or
 * event_id in it.  O(log n).
 */
bool sc_jwt_claims_allows_event(const struct sc_jwt_claims *claims,
                                uint64_t event_id);

/*
 * Signs claims_json (a NUL-terminated JSON object, used byte for byte) as
 * an HS256 token with header {"alg":"HS256","typ":"JWT"}, NUL-terminated
 * in out.  Returns the token length, or -1 when the secret is empty, the
 * claims are not one JSON object, the token would exceed SC_JWT_MAX_TOKEN
 * or outlen is too small.  For `seatcast token` and tests.
 */
long sc_jwt_sign_hs256(const uint8_t *secret, size_t secret_len,
                       const char *claims_json, char *out, size_t outlen);

#endif /* SC_JWT_H */
