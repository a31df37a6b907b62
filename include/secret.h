/*
 * secret.h - loading the JWT verification keys named by the configuration
 *
 * The HMAC secret comes from --jwt-secret-file (one trailing newline
 * dropped) or the SEATCAST_JWT_SECRET environment variable; the public key
 * from the PEM file --jwt-public-key.  Glue: reads files, never logs.
 * Called by main() (to fail early), by the master on SIGHUP (reload.c) and
 * by `seatcast token`; the workers never read these files.
 */
#ifndef SC_SECRET_H
#define SC_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sc_config;
struct sc_jwt_keys;

/*
 * Returns the keys, or NULL with a one-line message in err.  A secret
 * shorter than SC_JWT_SECRET_MIN bytes is refused.  With --jwt-public-key,
 * only --jwt-secret-file turns HS* on: SEATCAST_JWT_SECRET is then ignored
 * (sc_secret_env_ignored() says so, for a warning).
 */
struct sc_jwt_keys *sc_secret_load_keys(const struct sc_config *cfg,
                                        char *err, size_t errlen);

/*
 * Reads the key material the configuration names: the secret (*secret,
 * malloc'd, or NULL when none is configured) and the PEM text (*pem, or
 * NULL).  At least one is set on success.  Returns 0, or -1 with a message
 * and nothing held.  The caller wipes the secret and frees both.
 */
int sc_secret_read_material(const struct sc_config *cfg, uint8_t **secret,
                            size_t *secret_len, char **pem, size_t *pem_len,
                            char *err, size_t errlen);

/*
 * Reads the HMAC secret alone into a malloc'd buffer (*len bytes), or
 * NULL with a message (also when it is shorter than SC_JWT_SECRET_MIN).  The caller wipes and frees it.
 */
uint8_t *sc_secret_read(const struct sc_config *cfg, size_t *len, char *err,
                        size_t errlen);

/* True when --jwt-secret-file names a file other users may read or write. */
bool sc_secret_file_exposed(const struct sc_config *cfg);

/* True when SEATCAST_JWT_SECRET is set but ignored (a public key is
 * configured and no secret file). */
bool sc_secret_env_ignored(const struct sc_config *cfg);

#endif /* SC_SECRET_H */
