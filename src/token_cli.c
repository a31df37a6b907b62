/*
 * token_cli.c - `seatcast token --sub ID [--ttl SECONDS] [--events 1,2]
 *               [--jti ID] [-c FILE] [--jwt-secret-file FILE]`
 *
 * Prints one HS256 token signed with the secret seatcast itself would
 * verify with (--jwt-secret-file, the config file's, or
 * SEATCAST_JWT_SECRET), carrying iss/aud when the configuration checks
 * them.  For development and tests; production tokens come from the
 * booking API.
 */
#include "token_cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "jwt.h"
#include "proc.h"
#include "secret.h"
#include "text.h"

static const char token_usage_text[] =
    "usage: seatcast token --sub ID [--ttl SECONDS] [--events 1,2] "
    "[--jti ID] [-c FILE] [--jwt-secret-file FILE]\n";

static int
token_usage(const char *why)
{
    if (why != NULL) {
        fprintf(stderr, "seatcast token: %s\n", why);
    }
    fputs(token_usage_text, stderr);
    return 2;
}

/* "1,2,3" into a JSON array of numbers; NULL if malformed. */
static cJSON *
parse_events(const char *s)
{
    cJSON *arr = cJSON_CreateArray();
    const char *p = s;

    while (arr != NULL && *p) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v == 0 || v > SC_EVENT_ID_MAX ||
            (*end != ',' && *end != '\0')) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v));
        p = *end == ',' ? end + 1 : end;
    }
    return arr;
}

static char *
build_claims(const struct sc_config *cfg, const char *sub, long ttl,
             const char *events, const char *jti)
{
    time_t now = time(NULL);
    cJSON *c = cJSON_CreateObject();
    unsigned char rnd[12];
    char hex[25];
    char *out;

    cJSON_AddStringToObject(c, "sub", sub);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + ttl));
    if (cfg->jwt_issuer[0]) {
        cJSON_AddStringToObject(c, "iss", cfg->jwt_issuer);
    }
    if (cfg->jwt_audience[0]) {
        cJSON_AddStringToObject(c, "aud", cfg->jwt_audience);
    }
    if (jti == NULL) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            cJSON_Delete(c);
            return NULL;
        }
        for (size_t i = 0; i < sizeof(rnd); i++) {
            snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        }
        jti = hex;
    }
    cJSON_AddStringToObject(c, "jti", jti);
    if (events != NULL) {
        cJSON *arr = parse_events(events);
        if (arr == NULL) {
            cJSON_Delete(c);
            return NULL;
        }
        cJSON_AddItemToObject(c, "events", arr);
    }
    out = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return out;
}

int
sc_token_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"sub", required_argument, NULL, 's'},
        {"ttl", required_argument, NULL, 't'},
        {"events", required_argument, NULL, 'e'},
        {"jti", required_argument, NULL, 'j'},
        {"config", required_argument, NULL, 'c'},
        {"jwt-secret-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct sc_config *cfg = calloc(1, sizeof(*cfg));
    const char *sub = NULL, *events = NULL, *jti = NULL, *file = NULL;
    char err[512], token[SC_JWT_MAX_TOKEN + 1], *claims;
    long ttl = 3600;
    uint8_t *secret;
    size_t slen;
    int c;

    if (cfg == NULL) {
        return 1;
    }
    sc_config_defaults(cfg, sc_proc_ncpu());
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sub = optarg;
            break;
        case 't': {
            char *end;
            ttl = strtol(optarg, &end, 10);
            if (*end != '\0' || ttl < 1 || ttl > 10L * 365 * 86400) {
                free(cfg);
                return token_usage("--ttl: not a number of seconds");
            }
            break;
        }
        case 'e':
            events = optarg;
            break;
        case 'j':
            jti = optarg;
            break;
        case 'c':
            if (sc_config_load_file(cfg, optarg, err, sizeof(err)) != 0) {
                fprintf(stderr, "seatcast token: %s\n", err);
                free(cfg);
                return 2;
            }
            break;
        case 'f':
            file = optarg;
            break;
        case 'h':
            free(cfg);
            printf("%s", token_usage_text);
            return 0;
        default:
            free(cfg);
            return token_usage(NULL);
        }
    }
    if (sub == NULL || sub[0] == '\0' || optind != argc ||
        strlen(sub) > SC_JWT_MAX_CLAIM) {
        free(cfg);
        return token_usage(sub == NULL ? "--sub is required" : NULL);
    }
    if (file != NULL) {
        snprintf(cfg->jwt_secret_file, sizeof(cfg->jwt_secret_file), "%s",
                 file);
    }
    secret = sc_secret_read(cfg, &slen, err, sizeof(err));
    if (secret == NULL) {
        fprintf(stderr, "seatcast token: %s\n", err);
        free(cfg);
        return 2;
    }
    claims = build_claims(cfg, sub, ttl, events, jti);
    free(cfg);
    if (claims == NULL) {
        OPENSSL_cleanse(secret, slen);
        free(secret);
        return token_usage("--events: expected positive ids like 1,2");
    }
    long n = sc_jwt_sign_hs256(secret, slen, claims, token, sizeof(token));
    OPENSSL_cleanse(secret, slen);
    free(secret);
    cJSON_free(claims);
    if (n < 0) {
        fprintf(stderr, "seatcast token: could not sign the token\n");
        return 1;
    }
    printf("%s\n", token);
    return 0;
}
