/*
 * secret.c - JWT keys from files and the environment (see secret.h)
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "jwt.h"

#define KEY_FILE_MAX (1 << 20)

/* Reads a whole small file into a malloc'd, NUL-terminated buffer. */
static char *
read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *buf;
    ssize_t n;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "could not open \"%s\": %s", path,
                 strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > KEY_FILE_MAX) {
        snprintf(err, errlen, "\"%s\" is not a regular file of at most "
                 "1 MiB", path);
        close(fd);
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory reading \"%s\"", path);
        close(fd);
        return NULL;
    }
    while (got < (size_t)st.st_size &&
           (n = read(fd, buf + got, (size_t)st.st_size - got)) != 0) {
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, errlen, "could not read \"%s\": %s", path,
                     strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

/*
 * RFC 7518 section 3.2: an HMAC key at least as long as the hash.  The
 * shortest, HS256's, is the floor for any secret; HS384 and HS512 tokens
 * need 48 and 64 bytes, which jwt.c checks per token.  Wipes, frees and
 * returns NULL when s is shorter.
 */
static uint8_t *
secret_long_enough(char *s, size_t *len, const char *how, const char *where,
                   char *err, size_t errlen)
{
    if (*len >= SC_JWT_SECRET_MIN) {
        return (uint8_t *)s;
    }
    snprintf(err, errlen, "JWT secret %s \"%s\" is %zu bytes: HS256 needs at "
             "least %d (RFC 7518 section 3.2); make one with "
             "\"openssl rand -hex 32\"", how, where, *len, SC_JWT_SECRET_MIN);
    OPENSSL_cleanse(s, *len);
    free(s);
    *len = 0;
    return NULL;
}

bool
sc_secret_file_exposed(const struct sc_config *cfg)
{
    struct stat st;

    return cfg->jwt_secret_file[0] != '\0' &&
           stat(cfg->jwt_secret_file, &st) == 0 &&
           (st.st_mode & (S_IROTH | S_IWOTH)) != 0;
}

bool
sc_secret_env_ignored(const struct sc_config *cfg)
{
    const char *env = getenv("SEATCAST_JWT_SECRET");

    return cfg->jwt_public_key[0] != '\0' && cfg->jwt_secret_file[0] == '\0' &&
           env != NULL && env[0] != '\0';
}

uint8_t *
sc_secret_read(const struct sc_config *cfg, size_t *len, char *err,
               size_t errlen)
{
    const char *env = getenv("SEATCAST_JWT_SECRET");
    char *s;

    *len = 0;
    if (cfg->jwt_secret_file[0] != '\0') {
        s = read_small_file(cfg->jwt_secret_file, len, err, errlen);
        if (s == NULL) {
            return NULL;
        }
        /* "echo secret > file" leaves a newline that is not the secret */
        if (*len > 0 && s[*len - 1] == '\n') {
            (*len)--;
            if (*len > 0 && s[*len - 1] == '\r') {
                (*len)--;
            }
        }
        if (*len == 0) {
            snprintf(err, errlen, "JWT secret file \"%s\" is empty",
                     cfg->jwt_secret_file);
            free(s);
            return NULL;
        }
        return secret_long_enough(s, len, "file", cfg->jwt_secret_file, err,
                                  errlen);
    }
    if (env != NULL && env[0] != '\0') {
        s = strdup(env);
        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        *len = strlen(s);
        return secret_long_enough(s, len, "from", "SEATCAST_JWT_SECRET", err,
                                  errlen);
    }
    snprintf(err, errlen, "no JWT secret: set --jwt-secret-file or "
             "SEATCAST_JWT_SECRET");
    return NULL;
}

int
sc_secret_read_material(const struct sc_config *cfg, uint8_t **secret,
                        size_t *secret_len, char **pem, size_t *pem_len,
                        char *err, size_t errlen)
{
    const char *env = getenv("SEATCAST_JWT_SECRET");
    /* with a public key, HS* stays off unless a secret file is named: an
     * inherited environment must not keep HMAC on behind the operator */
    bool want_secret = cfg->jwt_secret_file[0] != '\0' ||
                       (cfg->jwt_public_key[0] == '\0' && env != NULL &&
                        env[0] != '\0');

    *secret = NULL;
    *pem = NULL;
    *secret_len = *pem_len = 0;
    if (cfg->jwt_public_key[0] != '\0') {
        *pem = read_small_file(cfg->jwt_public_key, pem_len, err, errlen);
        if (*pem == NULL) {
            return -1;
        }
    }
    if (want_secret || *pem == NULL) {
        *secret = sc_secret_read(cfg, secret_len, err, errlen);
        if (*secret == NULL) {
            /* keep the precise reason when a source was named */
            if (*pem == NULL && !want_secret) {
                snprintf(err, errlen, "no JWT key: set --jwt-secret-file, "
                         "SEATCAST_JWT_SECRET or --jwt-public-key");
            }
            free(*pem);
            *pem = NULL;
            *pem_len = 0;
            return -1;
        }
    }
    return 0;
}

struct sc_jwt_keys *
sc_secret_load_keys(const struct sc_config *cfg, char *err, size_t errlen)
{
    uint8_t *secret;
    char *pem;
    size_t slen, plen;
    struct sc_jwt_keys *keys;

    if (sc_secret_read_material(cfg, &secret, &slen, &pem, &plen, err,
                                errlen) != 0) {
        return NULL;
    }
    keys = sc_jwt_keys_new(secret, slen, pem, plen, err, errlen);
    if (secret != NULL) {
        OPENSSL_cleanse(secret, slen);
        free(secret);
    }
    free(pem);
    return keys;
}
