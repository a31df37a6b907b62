/*
 * config.c - seatcast configuration: command line and config file
 *
 * Every option of seatcast(8) (docs/PROTOCOL.md section 8) is one row of
 * the table `opts` below: its long name (also the config file key), its
 * short letter, the field of
 * struct sc_config it fills and the setter that reads and checks the text.
 * The command line (getopt_long, long options built from the table) and the
 * config file ("name = value" lines) both end in the same setters, so a
 * value is accepted or refused with the same words wherever it comes from.
 *
 * NOTES
 *   This module never logs, never exits and never forks: every problem is
 *   one line written into the caller's buffer, "NAME: problem: \"value\"",
 *   prefixed with "--" on the command line and "FILE:LINE: " in a file.
 *   The only global state touched is getopt's (optind, opterr), reset on
 *   each call so that parsing may run again on SIGHUP and in unit tests.
 *
 * Called by main() in the master before any fork, and again on reload.
 */
#include "config.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIB 1024u
#define MIB (1024u * 1024u)
#define FILE_SIZE_MAX MIB /* a config file is text, not data */
#define LINE_MAX_LEN 4096 /* longest config file line */
#define MSG_MAX 512       /* one problem, before its location */
#define SHOW_MAX 80       /* a value quoted in a message */
#define SHOW_CUT 60       /* bytes of it kept before "..." */
#define OPT_LONG_ONLY 256 /* getopt values of options without a letter */
#define DEFAULT_LISTEN "127.0.0.1:3000"

enum unit { UNIT_NONE, UNIT_SECONDS, UNIT_BYTES, UNIT_MS };

struct opt;

/* Reads `v` into the option's field; -1 with the problem (no name) in err */
typedef int opt_set_fn(struct sc_config *cfg, const struct opt *o,
                       const char *v, char *err, size_t errlen);

/* Checks the syntax of a string value; NULL or the problem */
typedef const char *opt_check_fn(const char *v);

struct opt {
    const char *name;    /* long name and config file key */
    char letter;         /* short option, 0 if none */
    bool cli_only;       /* refused in a config file */
    opt_set_fn *set;     /* reads the text */
    size_t off;          /* the field in struct sc_config */
    size_t size;         /* its size, for strings */
    size_t count_off;    /* lists: the element count */
    size_t nmax;         /* lists: capacity */
    uint64_t min, max;   /* numbers: inclusive range */
    enum unit unit;      /* numbers: accepted suffixes */
    opt_check_fn *check; /* strings: syntax, or NULL */
};

static opt_set_fn set_flag, set_int, set_u32, set_u64, set_string;
static opt_set_fn set_listen, set_list, set_log_level, set_log_format;
static opt_set_fn set_source, set_io_uring;
static opt_check_fn check_path, check_channel, check_shm_name, check_origin;
static opt_check_fn check_slot;
static opt_check_fn check_proxy;

/* Designated initialisers only: a missing member is zero, not a warning. */
#define FIELD(f)                                                               \
    .off = offsetof(struct sc_config, f),                                      \
    .size = sizeof(((struct sc_config *)0)->f)
#define LIST(n, max) .count_off = offsetof(struct sc_config, n), .nmax = (max)

/* one option per row reads better than one field per line */
/* clang-format off */
static const struct opt opts[] = {
    {.name = "config", .letter = 'c', .cli_only = true, .set = set_string,
     FIELD(config_file), .check = check_path},
    {.name = "listen", .letter = 'l', .set = set_listen, FIELD(listen),
     LIST(nlisten, SC_CONFIG_MAX_LISTEN)},
    {.name = "workers", .letter = 'w', .set = set_int, FIELD(workers),
     .min = 1, .max = SC_MAX_WORKERS},
    {.name = "database", .letter = 'd', .set = set_string, FIELD(database)},
    {.name = "source", .set = set_source, FIELD(source)},
    {.name = "channel", .set = set_string, FIELD(channel),
     .check = check_channel},
    {.name = "publication", .set = set_string, FIELD(publication),
     .check = check_channel},
    {.name = "slot", .set = set_string, FIELD(slot), .check = check_slot},
    {.name = "jwt-secret-file", .set = set_string, FIELD(jwt_secret_file)},
    {.name = "jwt-public-key", .set = set_string, FIELD(jwt_public_key)},
    {.name = "jwt-issuer", .set = set_string, FIELD(jwt_issuer)},
    {.name = "jwt-audience", .set = set_string, FIELD(jwt_audience)},
    {.name = "jwt-leeway", .set = set_int, FIELD(jwt_leeway),
     .min = 0, .max = 3600, .unit = UNIT_SECONDS},
    {.name = "allowed-origin", .set = set_list, FIELD(allowed_origin),
     LIST(nallowed_origin, SC_CONFIG_MAX_ORIGINS), .check = check_origin},
    {.name = "trusted-proxy", .set = set_list, FIELD(trusted_proxy),
     LIST(ntrusted_proxy, SC_CONFIG_MAX_PROXIES), .check = check_proxy},
    /* upper bounds keep 2 * rate and 1000 * seconds far from overflow */
    {.name = "max-connections", .set = set_u32, FIELD(max_connections),
     .min = 1, .max = 10000000},
    {.name = "max-connections-per-user", .set = set_u32,
     FIELD(max_connections_per_user), .min = 0, .max = 10000000},
    {.name = "max-subscriptions", .set = set_u32, FIELD(max_subscriptions),
     .min = 1, .max = 1000000},
    {.name = "max-message-rate", .set = set_u32, FIELD(max_message_rate),
     .min = 1, .max = 1000000},
    /* 125: the largest control frame payload must fit (RFC 6455 5.5) */
    {.name = "max-message-size", .set = set_u32, FIELD(max_message_size),
     .min = 125, .max = 16 * MIB, .unit = UNIT_BYTES},
    {.name = "max-events", .set = set_u32, FIELD(max_events),
     .min = 16, .max = 16 * MIB},
    {.name = "ping-interval", .set = set_u32, FIELD(ping_interval),
     .min = 1, .max = 86400, .unit = UNIT_SECONDS},
    {.name = "handshake-timeout", .set = set_u32, FIELD(handshake_timeout),
     .min = 1, .max = 86400, .unit = UNIT_SECONDS},
    {.name = "send-buffer-limit", .set = set_u64, FIELD(send_buffer_limit),
     .min = 4096, .max = 1024 * MIB, .unit = UNIT_BYTES},
    {.name = "max-lag", .set = set_u32, FIELD(max_lag),
     .min = 0, .max = 60000, .unit = UNIT_MS},
    {.name = "io-uring", .set = set_io_uring, FIELD(io_uring)},
    {.name = "shutdown-timeout", .set = set_u32, FIELD(shutdown_timeout),
     .min = 1, .max = 86400, .unit = UNIT_SECONDS},
    {.name = "shm-name", .set = set_string, FIELD(shm_name),
     .check = check_shm_name},
    {.name = "log-level", .set = set_log_level, FIELD(log_level)},
    {.name = "log-format", .set = set_log_format, FIELD(log_format)},
    {.name = "pid-file", .set = set_string, FIELD(pid_file)},
    {.name = "version", .letter = 'V', .cli_only = true, .set = set_flag,
     FIELD(show_version)},
    {.name = "help", .letter = 'h', .cli_only = true, .set = set_flag,
     FIELD(show_help)},
};
/* clang-format on */

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char usage_text[] =
    "usage: seatcast [-c FILE] [-l ADDR]... [-w N] [-d CONNINFO] [options]\n"
    "       seatcast -t [-c FILE] [options]\n"
    "       seatcast stats [--json] [--shm-name NAME | -c FILE]\n"
    "       seatcast token --sub ID [--ttl SECONDS] [--events 1,2] "
    "[--jti ID]\n"
    "                      [-c FILE] [--jwt-secret-file FILE]\n"
    "\n"
    "Options [default]; the command line wins over the config file:\n"
    "  -c, --config=FILE                 read options from FILE first [none]\n"
    "  -l, --listen=ADDR                 address, repeatable [127.0.0.1:3000]\n"
    "  -w, --workers=N                   processes, 1-64 [number of CPUs]\n"
    "  -d, --database=CONNINFO           libpq conninfo [PG* variables]\n"
    "      --source=SOURCE               notify or logical [notify]\n"
    "      --channel=NAME                NOTIFY channel (notify) [seatcast]\n"
    "      --publication=NAME            publication (logical) [seatcast]\n"
    "      --slot=NAME                   replication slot (logical)\n"
    "                                    [seatcast_HOST_PORT]\n"
    "      --jwt-secret-file=FILE        HS* secret [$SEATCAST_JWT_SECRET]\n"
    "      --jwt-public-key=FILE         PEM public key for RS*/ES* [none]\n"
    "      --jwt-issuer=ISS              required iss claim [not checked]\n"
    "      --jwt-audience=AUD            required aud claim [not checked]\n"
    "      --jwt-leeway=SECONDS          exp/nbf clock skew, 0-3600 [5]\n"
    "      --allowed-origin=ORIGIN       allowed Origin, repeatable [any]\n"
    "      --trusted-proxy=IP[/BITS]     trusted proxy, repeatable [none]\n"
    "      --max-connections=N           connections in all [100000]\n"
    "      --max-connections-per-user=N  0 = no limit [0]\n"
    "      --max-subscriptions=N         events per connection [100]\n"
    "      --max-message-rate=N          messages per second [50]\n"
    "      --max-message-size=SIZE       client message, 125-16M [16k]\n"
    "      --max-events=N                event table size [65536]\n"
    "      --ping-interval=SECONDS       server ping interval [30]\n"
    "      --handshake-timeout=SECONDS   upgrade request deadline [10]\n"
    "      --send-buffer-limit=SIZE      unsent bytes per client [1M]\n"
    "      --max-lag=MS                  merge an event's changes waiting\n"
    "                                    longer, 0-60000, 0 = never [100]\n"
    "      --io-uring=on|off             batched writes through io_uring\n"
    "                                    when the kernel allows [on]\n"
    "      --shutdown-timeout=SECONDS    graceful stop deadline [10]\n"
    "      --shm-name=NAME               registry name [/seatcast-PORT]\n"
    "      --log-level=LEVEL             error, warn, info or debug [info]\n"
    "      --log-format=FORMAT           text or json [text]\n"
    "      --pid-file=FILE               pid file of the master [none]\n"
    "  -t                                check the configuration and exit\n"
    "  -V, --version                     print the version and exit\n"
    "  -h, --help                        print this help and exit\n"
    "\n"
    "ADDR: HOST:PORT, [IPV6]:PORT, PORT (all IPv4) or unix:PATH.\n"
    "SIZE: N bytes, Nk (KiB) or NM (MiB).  SECONDS: N or Ns.  MS: N or Nms.\n"
    "See seatcast(8) and seatcast.conf(5).\n";

/* --- helpers ------------------------------------------------------------ */

/* Writes a message into err; always returns -1 for `return fail(...)`. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * Copies v for quoting in a message: control bytes become '?' so that the
 * message stays one line, and a long value is cut with "...".
 */
static const char *
show(const char *v, char *out, size_t outlen)
{
    size_t i;

    for (i = 0; v[i] != '\0' && i < SHOW_CUT && i + 4 < outlen; i++) {
        unsigned char c = (unsigned char)v[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (v[i] != '\0' && i + 4 <= outlen) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool
is_alpha(char c)
{
    return is_lower(c) || (c >= 'A' && c <= 'Z');
}

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const struct opt *
find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (strcmp(opts[i].name, name) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

/* The option getopt_long reported as `val` (its letter, or 256 + index). */
static const struct opt *
find_opt_val(int val)
{
    if (val >= OPT_LONG_ONLY && (size_t)(val - OPT_LONG_ONLY) < NOPTS) {
        return &opts[val - OPT_LONG_ONLY];
    }
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].letter != 0 && opts[i].letter == val) {
            return &opts[i];
        }
    }
    return NULL;
}

static void *
field(struct sc_config *cfg, const struct opt *o)
{
    return (char *)cfg + o->off;
}

static size_t *
count_field(struct sc_config *cfg, const struct opt *o)
{
    return (size_t *)(void *)((char *)cfg + o->count_off);
}

/* --- numbers ------------------------------------------------------------ */

/*
 * Reads a decimal number: digits only (no sign, no space), then the unit's
 * suffix if any: "s" for seconds, k/K or m/M (KiB, MiB) for sizes.
 * Returns 0, -1 if it is not a number, -2 if it overflows 64 bits.
 */
static int
parse_number(const char *s, enum unit unit, uint64_t *out)
{
    uint64_t n = 0, mult = 1;
    const char *p = s;

    if (!is_digit(*p)) {
        return -1;
    }
    for (; is_digit(*p); p++) {
        if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            return -2;
        }
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (unit == UNIT_SECONDS && *p == 's') {
        p++;
    } else if (unit == UNIT_MS && p[0] == 'm' && p[1] == 's') {
        p += 2;
    } else if (unit == UNIT_BYTES && (*p == 'k' || *p == 'K')) {
        mult = KIB;
        p++;
    } else if (unit == UNIT_BYTES && (*p == 'm' || *p == 'M')) {
        mult = MIB;
        p++;
    }
    if (*p != '\0') {
        return -1;
    }
    if (n > UINT64_MAX / mult) {
        return -2;
    }
    *out = n * mult;
    return 0;
}

/* Reads v within the option's range; -1 with the problem in err. */
static int
parse_ranged(const struct opt *o, const char *v, uint64_t *out, char *err,
             size_t errlen)
{
    char s[SHOW_MAX];
    int rc = parse_number(v, o->unit, out);

    if (rc == -1) {
        return fail(err, errlen, "not a number: \"%s\"", show(v, s, sizeof(s)));
    }
    if (rc == -2 || *out < o->min || *out > o->max) {
        return fail(err, errlen, "must be between %llu and %llu, got \"%s\"",
                    (unsigned long long)o->min, (unsigned long long)o->max,
                    show(v, s, sizeof(s)));
    }
    return 0;
}

static int
set_int(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
        size_t errlen)
{
    uint64_t n;

    if (parse_ranged(o, v, &n, err, errlen) < 0) {
        return -1;
    }
    *(int *)field(cfg, o) = (int)n;
    return 0;
}

static int
set_u32(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
        size_t errlen)
{
    uint64_t n;

    if (parse_ranged(o, v, &n, err, errlen) < 0) {
        return -1;
    }
    *(uint32_t *)field(cfg, o) = (uint32_t)n;
    return 0;
}

static int
set_u64(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
        size_t errlen)
{
    uint64_t n;

    if (parse_ranged(o, v, &n, err, errlen) < 0) {
        return -1;
    }
    *(uint64_t *)field(cfg, o) = n;
    return 0;
}

/* --- strings ------------------------------------------------------------ */

static const char *
check_path(const char *v)
{
    return v[0] == '\0' ? "must not be empty" : NULL;
}

/* An unquoted SQL identifier, as LISTEN takes it: [a-z_][a-z0-9_]* */
static const char *
check_channel(const char *v)
{
    static const char bad[] = "not a plain SQL identifier ([a-z_][a-z0-9_]*)";

    if (!is_lower(v[0]) && v[0] != '_') {
        return bad;
    }
    for (const char *p = v; *p != '\0'; p++) {
        if (!is_lower(*p) && !is_digit(*p) && *p != '_') {
            return bad;
        }
    }
    return NULL;
}

/* A replication slot name: PostgreSQL allows [a-z0-9_], up to 63 bytes. */
static const char *
check_slot(const char *v)
{
    if (v[0] == '\0') {
        return "must not be empty";
    }
    if (strlen(v) > SC_CONFIG_SLOT_MAX) {
        return "too long (max 63 bytes)";
    }
    for (const char *p = v; *p != '\0'; p++) {
        if (!is_lower(*p) && !is_digit(*p) && *p != '_') {
            return "not a replication slot name ([a-z0-9_])";
        }
    }
    return NULL;
}

/* POSIX shm_open(3): "/name", no other slash; Linux allows up to 255. */
static const char *
check_shm_name(const char *v)
{
    if (v[0] != '/' || v[1] == '\0' || strchr(v + 1, '/') != NULL) {
        return "must be \"/\" and a name without \"/\"";
    }
    if (strlen(v) > 220) {
        return "too long (max 220 bytes)";
    }
    return NULL;
}

static int
set_string(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
           size_t errlen)
{
    char s[SHOW_MAX];
    const char *problem;

    if (strlen(v) >= o->size) {
        return fail(err, errlen, "too long (max %zu bytes): \"%s\"",
                    o->size - 1, show(v, s, sizeof(s)));
    }
    problem = o->check != NULL ? o->check(v) : NULL;
    if (problem != NULL) {
        return fail(err, errlen, "%s: \"%s\"", problem, show(v, s, sizeof(s)));
    }
    memcpy(field(cfg, o), v, strlen(v) + 1);
    return 0;
}

static int
set_flag(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
         size_t errlen)
{
    (void)v;
    (void)err;
    (void)errlen;
    *(bool *)field(cfg, o) = true;
    return 0;
}

static int
set_log_level(struct sc_config *cfg, const struct opt *o, const char *v,
              char *err, size_t errlen)
{
    char s[SHOW_MAX];
    int level = sc_log_level_parse(v);

    if (level < 0) {
        return fail(err, errlen,
                    "must be error, warn, info or debug, got \"%s\"",
                    show(v, s, sizeof(s)));
    }
    *(int *)field(cfg, o) = level;
    return 0;
}

static int
set_source(struct sc_config *cfg, const struct opt *o, const char *v,
           char *err, size_t errlen)
{
    char s[SHOW_MAX];
    enum sc_source *f = field(cfg, o);

    if (strcmp(v, "notify") == 0) {
        *f = SC_SOURCE_NOTIFY;
    } else if (strcmp(v, "logical") == 0) {
        *f = SC_SOURCE_LOGICAL;
    } else {
        return fail(err, errlen, "must be notify or logical, got \"%s\"",
                    show(v, s, sizeof(s)));
    }
    return 0;
}

const char *
sc_config_source_name(enum sc_source s)
{
    return s == SC_SOURCE_LOGICAL ? "logical" : "notify";
}

static int
set_log_format(struct sc_config *cfg, const struct opt *o, const char *v,
               char *err, size_t errlen)
{
    char s[SHOW_MAX];
    enum sc_log_format *f = field(cfg, o);

    if (strcasecmp(v, "text") == 0) {
        *f = SC_LOG_FORMAT_TEXT;
    } else if (strcasecmp(v, "json") == 0) {
        *f = SC_LOG_FORMAT_JSON;
    } else {
        return fail(err, errlen, "must be text or json, got \"%s\"",
                    show(v, s, sizeof(s)));
    }
    return 0;
}

static int
set_io_uring(struct sc_config *cfg, const struct opt *o, const char *v,
             char *err, size_t errlen)
{
    char s[SHOW_MAX];
    enum sc_io_uring *f = field(cfg, o);

    if (strcasecmp(v, "on") == 0) {
        *f = SC_IO_URING_ON;
    } else if (strcasecmp(v, "off") == 0) {
        *f = SC_IO_URING_OFF;
    } else {
        return fail(err, errlen, "must be on or off, got \"%s\"",
                    show(v, s, sizeof(s)));
    }
    return 0;
}

/* --- lists -------------------------------------------------------------- */

/* Reads ":PORT" (1-65535) at *pp if present; false if malformed. */
static bool
skip_port(const char **pp)
{
    const char *p = *pp;
    unsigned port = 0;
    int ndigits = 0;

    if (*p != ':') {
        return true;
    }
    for (p++; is_digit(*p) && ndigits < 6; p++, ndigits++) {
        port = port * 10 + (unsigned)(*p - '0');
    }
    *pp = p;
    return ndigits > 0 && ndigits < 6 && port >= 1 && port <= 65535;
}

/* Reads "[V6]" at *pp; false if malformed. */
static bool
skip_bracketed_v6(const char **pp)
{
    char host[64];
    struct in6_addr a6;
    const char *end = strchr(*pp, ']');
    size_t n;

    if (end == NULL) {
        return false;
    }
    n = (size_t)(end - *pp - 1);
    if (n >= sizeof(host)) {
        return false;
    }
    memcpy(host, *pp + 1, n);
    host[n] = '\0';
    *pp = end + 1;
    return inet_pton(AF_INET6, host, &a6) == 1;
}

/* A serialized origin (RFC 6454): scheme "://" host [":" port], no path. */
static const char *
check_origin(const char *v)
{
    static const char bad[] = "not an origin (scheme://host[:port])";
    const char *p = v, *host;

    if (!is_alpha(*p)) {
        return bad;
    }
    while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-' ||
           *p == '.') {
        p++;
    }
    if (strncmp(p, "://", 3) != 0) {
        return bad;
    }
    p += 3;
    if (*p == '[') {
        if (!skip_bracketed_v6(&p)) {
            return bad;
        }
    } else {
        host = p;
        while (is_alpha(*p) || is_digit(*p) || *p == '-' || *p == '.') {
            p++;
        }
        if (p == host) {
            return bad;
        }
    }
    if (!skip_port(&p) || *p != '\0') {
        return bad;
    }
    return NULL;
}

/*
 * Parses "ADDR[/BITS]" (IPv4 or IPv6; BITS 0-32 or 0-128, default the
 * whole address) into family, address bytes and prefix length.  Returns
 * NULL, or why it is not one.  Shared by validation and matching, so that
 * what --trusted-proxy accepts is what a peer is compared with.
 */
static const char *
parse_cidr(const char *v, int *family, unsigned char addr[16],
           unsigned *bits)
{
    static const char bad[] = "not an IP address or CIDR block";
    char host[64];
    const char *slash = strchr(v, '/');
    size_t n = slash != NULL ? (size_t)(slash - v) : strlen(v);
    unsigned maxbits;
    int ndigits = 0;

    if (n >= sizeof(host)) {
        return bad;
    }
    memcpy(host, v, n);
    host[n] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, host, addr) == 1) {
        *family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, host, addr) == 1) {
        *family = AF_INET6;
        maxbits = 128;
    } else {
        return bad;
    }
    *bits = maxbits;
    if (slash == NULL) {
        return NULL;
    }
    *bits = 0;
    for (const char *p = slash + 1; *p != '\0'; p++, ndigits++) {
        if (!is_digit(*p) || ndigits == 3) {
            return bad;
        }
        *bits = *bits * 10 + (unsigned)(*p - '0');
    }
    if (ndigits == 0) {
        return bad;
    }
    if (*bits > maxbits) {
        return "prefix length out of range";
    }
    return NULL;
}

/* An IPv4 or IPv6 address, optionally "/BITS" (0-32 or 0-128). */
static const char *
check_proxy(const char *v)
{
    unsigned char addr[16];
    unsigned bits;
    int family;

    return parse_cidr(v, &family, addr, &bits);
}

bool
sc_config_proxy_trusted(const struct sc_config *cfg, const char *ip)
{
    unsigned char peer[16], net[16];
    unsigned pbits, bits;
    int pfam, fam;

    if (strchr(ip, '/') != NULL ||
        parse_cidr(ip, &pfam, peer, &pbits) != NULL) {
        return false;
    }
    for (size_t i = 0; i < cfg->ntrusted_proxy; i++) {
        if (parse_cidr(cfg->trusted_proxy[i], &fam, net, &bits) != NULL ||
            fam != pfam) {
            continue;
        }
        unsigned b = bits;
        size_t k = 0;
        for (; b >= 8; b -= 8, k++) {
            if (net[k] != peer[k]) {
                break;
            }
        }
        if (b >= 8) {
            continue; /* a whole byte differed */
        }
        unsigned char mask = (unsigned char)(0xff << (8 - b));
        if (b == 0 || (net[k] & mask) == (peer[k] & mask)) {
            return true;
        }
    }
    return false;
}

static void
lowercase(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            *s = (char)(*s - 'A' + 'a');
        }
    }
}

/* Appends to a list of strings (allowed-origin, trusted-proxy). */
static int
set_list(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
         size_t errlen)
{
    char s[SHOW_MAX];
    size_t *count = count_field(cfg, o);
    size_t each = o->size / o->nmax;
    char *slot;
    const char *problem = o->check(v);

    if (problem != NULL) {
        return fail(err, errlen, "%s: \"%s\"", problem, show(v, s, sizeof(s)));
    }
    if (strlen(v) >= each) {
        return fail(err, errlen, "too long (max %zu bytes): \"%s\"", each - 1,
                    show(v, s, sizeof(s)));
    }
    if (*count >= o->nmax) {
        return fail(err, errlen, "too many values (max %zu)", o->nmax);
    }
    slot = (char *)field(cfg, o) + *count * each;
    memcpy(slot, v, strlen(v) + 1);
    if (o->check == check_origin) {
        /* browsers serialise Origin in lowercase: compare like with like */
        lowercase(slot);
    }
    (*count)++;
    return 0;
}

static int
set_listen(struct sc_config *cfg, const struct opt *o, const char *v, char *err,
           size_t errlen)
{
    struct sc_listen_addr a;

    (void)o;
    if (sc_config_parse_listen(v, &a, err, errlen) < 0) {
        return -1;
    }
    if (cfg->nlisten >= SC_CONFIG_MAX_LISTEN) {
        return fail(err, errlen, "too many values (max %d)",
                    SC_CONFIG_MAX_LISTEN);
    }
    cfg->listen[cfg->nlisten++] = a;
    return 0;
}

/* --- listen addresses --------------------------------------------------- */

/* Reads a port, 1-65535, digits only; NULL or the problem. */
static const char *
parse_port(const char *s, uint16_t *port)
{
    uint64_t n = 0;
    int rc;

    if (*s == '\0') {
        return "missing port";
    }
    rc = parse_number(s, UNIT_NONE, &n);
    if (rc == -1) {
        return "port is not a number";
    }
    if (rc == -2 || n < 1 || n > 65535) {
        return "port must be between 1 and 65535";
    }
    *port = (uint16_t)n;
    return NULL;
}

static const char *
parse_unix(const char *path, struct sc_listen_addr *a)
{
    if (path[0] == '\0') {
        return "unix socket path is empty";
    }
    if (strlen(path) >= sizeof(a->path)) {
        return "unix socket path too long (max 107 bytes)";
    }
    a->kind = SC_LISTEN_UNIX;
    memcpy(a->path, path, strlen(path) + 1);
    return NULL;
}

/* "[V6]:PORT" */
static const char *
parse_v6(const char *text, struct sc_listen_addr *a)
{
    struct in6_addr a6;
    const char *end = strchr(text, ']');
    size_t n;

    if (end == NULL) {
        return "missing \"]\" after the IPv6 address";
    }
    n = (size_t)(end - text - 1);
    if (n >= sizeof(a->host)) {
        return "not an IPv6 address";
    }
    memcpy(a->host, text + 1, n);
    a->host[n] = '\0';
    if (inet_pton(AF_INET6, a->host, &a6) != 1) {
        return "not an IPv6 address";
    }
    if (end[1] != ':' && end[1] != '\0') {
        return "expected \":PORT\" after \"]\"";
    }
    a->kind = SC_LISTEN_TCP6;
    return parse_port(end[1] == ':' ? end + 2 : end + 1, &a->port);
}

/* "HOST:PORT" with HOST a dotted quad or "localhost" */
static const char *
parse_v4(const char *text, struct sc_listen_addr *a)
{
    struct in_addr a4;
    const char *colon = strchr(text, ':');
    size_t n;

    if (colon == NULL) {
        return "expected HOST:PORT, [IPV6]:PORT, PORT or unix:PATH";
    }
    if (strchr(colon + 1, ':') != NULL) {
        return "an IPv6 address must be in brackets";
    }
    n = (size_t)(colon - text);
    if (n == 0) {
        return "missing host";
    }
    if (n == 9 && strncmp(text, "localhost", 9) == 0) {
        /* no resolver: localhost is the IPv4 loopback, as in /etc/hosts */
        snprintf(a->host, sizeof(a->host), "127.0.0.1");
    } else if (n < sizeof(a->host)) {
        memcpy(a->host, text, n);
        a->host[n] = '\0';
    }
    if (n >= sizeof(a->host) || inet_pton(AF_INET, a->host, &a4) != 1) {
        return "not an IPv4 address or \"localhost\"";
    }
    a->kind = SC_LISTEN_TCP4;
    return parse_port(colon + 1, &a->port);
}

static bool
all_digits(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!is_digit(*s)) {
            return false;
        }
    }
    return true;
}

/*
 * Parses one --listen value.  Returns 0 with *out filled, or -1 with
 * "problem: \"text\"" in err (the caller adds the option name) and *out
 * untouched.  err may be NULL.  Pure: any process, no resolver.
 */
int
sc_config_parse_listen(const char *text, struct sc_listen_addr *out, char *err,
                       size_t errlen)
{
    char s[SHOW_MAX];
    struct sc_listen_addr a;
    const char *problem;

    memset(&a, 0, sizeof(a));
    if (strncmp(text, "unix:", 5) == 0) {
        problem = parse_unix(text + 5, &a);
    } else if (text[0] == '[') {
        problem = parse_v6(text, &a);
    } else if (all_digits(text)) {
        /* a bare port is every IPv4 interface, as nginx's "listen 80" */
        a.kind = SC_LISTEN_TCP4;
        problem = parse_port(text, &a.port);
    } else {
        problem = parse_v4(text, &a);
    }
    if (problem != NULL) {
        return fail(err, errlen, "%s: \"%s\"", problem,
                    show(text, s, sizeof(s)));
    }
    *out = a;
    return 0;
}

/*
 * Writes a listener as the user would type it; "0.0.0.0:PORT" for a bare
 * port.  Truncates to outlen (at least 1): 160 bytes always suffice.
 * Pure: any process.
 */
void
sc_config_format_listen(const struct sc_listen_addr *a, char *out,
                        size_t outlen)
{
    switch (a->kind) {
    case SC_LISTEN_TCP4:
        snprintf(out, outlen, "%s:%u", a->host[0] ? a->host : "0.0.0.0",
                 (unsigned)a->port);
        break;
    case SC_LISTEN_TCP6:
        snprintf(out, outlen, "[%s]:%u", a->host, (unsigned)a->port);
        break;
    case SC_LISTEN_UNIX:
        snprintf(out, outlen, "unix:%s", a->path);
        break;
    }
}

/* --- defaults and setters ----------------------------------------------- */

/*
 * Fills cfg with the defaults of seatcast(8); ncpu outside 1..64 is
 * clamped.  No listener and no shm name yet: sc_config_finish() adds them
 * once the file and the command line had their say.  Any process may call.
 */
void
sc_config_defaults(struct sc_config *cfg, int ncpu)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = ncpu < 1 ? 1 : ncpu > SC_MAX_WORKERS ? SC_MAX_WORKERS : ncpu;
    snprintf(cfg->channel, sizeof(cfg->channel), "seatcast");
    cfg->source = SC_SOURCE_NOTIFY;
    snprintf(cfg->publication, sizeof(cfg->publication), "seatcast");
    cfg->jwt_leeway = 5;
    cfg->max_connections = 100000;
    cfg->max_connections_per_user = 0;
    cfg->max_subscriptions = 100;
    cfg->max_message_rate = 50;
    cfg->max_message_size = 16 * KIB;
    cfg->max_events = 65536;
    cfg->ping_interval = 30;
    cfg->handshake_timeout = 10;
    cfg->send_buffer_limit = MIB;
    cfg->max_lag = 100;
    cfg->io_uring = SC_IO_URING_ON;
    cfg->shutdown_timeout = 10;
    cfg->log_level = SC_LOG_INFO;
    cfg->log_format = SC_LOG_FORMAT_TEXT;
}

/* Runs the option's setter; err gets "name: problem". */
static int
apply(struct sc_config *cfg, const struct opt *o, const char *value, char *err,
      size_t errlen)
{
    char msg[MSG_MAX];

    if (o->set(cfg, o, value, msg, sizeof(msg)) < 0) {
        return fail(err, errlen, "%s: %s", o->name, msg);
    }
    return 0;
}

/*
 * Sets one option by its long name, as a config file line does.  Returns 0,
 * or -1 with "name: problem" in err and the field unchanged.  List options
 * append.  "config", "version" and "help" belong to the command line and
 * are refused.  value is copied.  Pure: any process.
 */
int
sc_config_set(struct sc_config *cfg, const char *name, const char *value,
              char *err, size_t errlen)
{
    char s[SHOW_MAX];
    const struct opt *o = find_opt(name);

    if (o == NULL) {
        return fail(err, errlen, "unknown option \"%s\"",
                    show(name, s, sizeof(s)));
    }
    if (o->cli_only) {
        return fail(err, errlen, "%s: only allowed on the command line",
                    o->name);
    }
    return apply(cfg, o, value, err, errlen);
}

/* --- config file -------------------------------------------------------- */

static char *
trim(char *s)
{
    char *end;

    while (is_blank(*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && is_blank(end[-1])) {
        *--end = '\0';
    }
    return s;
}

/*
 * Reads the value part of a line (after '='), in place: "quoted" verbatim,
 * or unquoted up to a '#' that follows a blank.  NULL or the problem.
 */
static const char *
parse_value(char *raw, char **value)
{
    char *v = raw, *close;

    while (is_blank(*v)) {
        v++;
    }
    if (*v == '"') {
        close = strchr(v + 1, '"');
        if (close == NULL) {
            return "unterminated quote";
        }
        *close = '\0';
        *value = v + 1;
        v = trim(close + 1);
        return (*v == '\0' || *v == '#') ? NULL
                                         : "unexpected text after the quote";
    }
    for (char *p = raw; *p != '\0'; p++) {
        if (*p == '#' && (p == raw || is_blank(p[-1]))) {
            *p = '\0';
            break;
        }
    }
    *value = trim(raw);
    return NULL;
}

/* One line, without its '\n'.  Returns 0 or -1 with the problem in err. */
static int
parse_line(struct sc_config *cfg, const char *text, size_t len, char *err,
           size_t errlen)
{
    char buf[LINE_MAX_LEN], s[SHOW_MAX];
    char *line, *eq, *name, *value;
    const char *problem;

    if (len > 0 && text[len - 1] == '\r') {
        len--;
    }
    if (len >= sizeof(buf)) {
        return fail(err, errlen, "line too long (max %zu bytes)",
                    sizeof(buf) - 1);
    }
    if (memchr(text, '\0', len) != NULL) {
        return fail(err, errlen, "NUL byte in line");
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    line = trim(buf);
    if (line[0] == '\0' || line[0] == '#') {
        return 0;
    }
    eq = strchr(line, '=');
    if (eq == NULL) {
        return fail(err, errlen, "missing \"=\" in \"%s\"",
                    show(line, s, sizeof(s)));
    }
    *eq = '\0';
    name = trim(line);
    if (name[0] == '\0') {
        return fail(err, errlen, "missing name before \"=\"");
    }
    problem = parse_value(eq + 1, &value);
    if (problem != NULL) {
        return fail(err, errlen, "%s: %s", name, problem);
    }
    return sc_config_set(cfg, name, value, err, errlen);
}

/*
 * Applies config file text: "name = value" lines, '#' comments, blank
 * lines; a later line wins, list options append.  text need not end in
 * '\n' nor in NUL.  Returns 0, or -1 with "FILE:LINE: problem" in err;
 * lines before the bad one stay applied, so callers parse into a scratch
 * struct.  Pure: any process.
 */
int
sc_config_parse_text(struct sc_config *cfg, const char *file, const char *text,
                     size_t len, char *err, size_t errlen)
{
    char msg[MSG_MAX];
    unsigned lineno = 0;
    size_t pos = 0;

    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;

        pos += n + (nl != NULL);
        lineno++;
        if (parse_line(cfg, line, n, msg, sizeof(msg)) < 0) {
            return fail(err, errlen, "%s:%u: %s", file, lineno, msg);
        }
    }
    return 0;
}

/* Reads a whole file, at most FILE_SIZE_MAX bytes, into a malloc'd buffer. */
static int
read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n = 0;
    int saved;

    if (f == NULL) {
        return fail(err, errlen, "%s: could not read: %s", path,
                    strerror(errno));
    }
    buf = malloc(FILE_SIZE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return fail(err, errlen, "%s: could not read: out of memory", path);
    }
    n = fread(buf, 1, FILE_SIZE_MAX + 1, f);
    saved = errno;
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return fail(err, errlen, "%s: could not read: %s", path,
                    strerror(saved));
    }
    fclose(f);
    if (n > FILE_SIZE_MAX) {
        free(buf);
        return fail(err, errlen, "%s: too large (max %u bytes)", path,
                    FILE_SIZE_MAX);
    }
    *text = buf;
    *len = n;
    return 0;
}

/*
 * Reads and applies a config file (at most 1 MiB; opened O_CLOEXEC and
 * closed before returning).  Returns 0, or -1 with "FILE: could not read:
 * reason" or "FILE:LINE: problem" in err.  Any process that may block on a
 * file read: the master, `seatcast stats`, a worker on SIGHUP.
 */
int
sc_config_load_file(struct sc_config *cfg, const char *path, char *err,
                    size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (read_file(path, &text, &len, err, errlen) < 0) {
        return -1;
    }
    rc = sc_config_parse_text(cfg, path, text, len, err, errlen);
    free(text);
    return rc;
}

/* --- command line ------------------------------------------------------- */

/* "+": stop at the first operand (no argv permutation); ":": quiet. */
static const char short_opts[] = "+:c:l:w:d:thV";

static void
build_long_opts(struct option *lo)
{
    for (size_t i = 0; i < NOPTS; i++) {
        lo[i].name = opts[i].name;
        lo[i].has_arg =
            opts[i].set == set_flag ? no_argument : required_argument;
        lo[i].flag = NULL;
        lo[i].val =
            opts[i].letter != 0 ? opts[i].letter : OPT_LONG_ONLY + (int)i;
    }
    memset(&lo[NOPTS], 0, sizeof(lo[NOPTS]));
}

/* The message for getopt_long's '?' (unknown option or unwanted value). */
static int
bad_option(char **argv, char *err, size_t errlen)
{
    char s[SHOW_MAX];
    const struct opt *o = find_opt_val(optopt);
    const char *arg = argv[optind - 1];
    size_t n;

    if (o != NULL) {
        /* a known option only fails this way with "--help=x" */
        return fail(err, errlen, "--%s: takes no value", o->name);
    }
    if (optopt != 0) {
        return fail(err, errlen, "unknown option \"-%c\"", optopt);
    }
    n = strcspn(arg, "=");
    show(arg, s, sizeof(s));
    if (n < strlen(s)) {
        s[n] = '\0';
    }
    return fail(err, errlen, "unknown option \"%s\"", s);
}

/*
 * One getopt_long pass over argv.  Pass 0 only picks up -c/--config (and
 * reports every malformed option); pass 1 applies all the others.  A list
 * option seen on the command line first drops what the file gave it.
 */
static int
scan_argv(struct sc_config *cfg, int pass, int argc, char **argv,
          bool *config_seen, char *err, size_t errlen)
{
    struct option lo[NOPTS + 1];
    bool list_seen[NOPTS] = {false};
    char msg[MSG_MAX], s[SHOW_MAX];
    const struct opt *o;
    int c;

    build_long_opts(lo);
    optind = 0; /* GNU: 0 reinitialises getopt for a new argv */
    opterr = 0;
    while ((c = getopt_long(argc, argv, short_opts, lo, NULL)) != -1) {
        if (c == '?') {
            return bad_option(argv, err, errlen);
        }
        if (c == ':') {
            o = find_opt_val(optopt);
            return fail(err, errlen, "--%s: missing value",
                        o != NULL ? o->name : "?");
        }
        if (c == 't') {
            if (pass == 1) {
                cfg->test_only = true;
            }
            continue;
        }
        o = find_opt_val(c);
        /* pass 0 wants only the config file, pass 1 everything else */
        if (o == NULL || (pass == 0) != (o->letter == 'c')) {
            continue;
        }
        if (pass == 0) {
            *config_seen = true;
        }
        if (o->count_off != 0 && !list_seen[o - opts]) {
            list_seen[o - opts] = true;
            *count_field(cfg, o) = 0;
        }
        if (apply(cfg, o, optarg, msg, sizeof(msg)) < 0) {
            return fail(err, errlen, "--%s", msg);
        }
    }
    if (optind < argc) {
        return fail(err, errlen, "unexpected argument \"%s\"",
                    show(argv[optind], s, sizeof(s)));
    }
    return 0;
}

/*
 * Applies argv (argv[0] is the program name): the file of -c/--config
 * first, then every other option, so the command line wins; a list option
 * given on the command line replaces the file's list.  Returns 0, or -1
 * with one line in err ("--flag: problem", "unknown option \"--x\"",
 * "FILE:LINE: problem").  argv is read, never permuted nor kept.  Uses
 * getopt's globals (resets them first): one thread at a time.
 */
int
sc_config_parse_argv(struct sc_config *cfg, int argc, char **argv, char *err,
                     size_t errlen)
{
    bool config_seen = false;

    if (scan_argv(cfg, 0, argc, argv, &config_seen, err, errlen) < 0) {
        return -1;
    }
    if (config_seen &&
        sc_config_load_file(cfg, cfg->config_file, err, errlen) < 0) {
        /* an unreadable file is the flag's problem: name the flag; an
         * error inside the file already names FILE:LINE */
        if (strstr(err, ": could not read") != NULL) {
            char tmp[1024];
            snprintf(tmp, sizeof(tmp), "%s", err);
            snprintf(err, errlen, "--config: %s", tmp);
        }
        return -1;
    }
    return scan_argv(cfg, 1, argc, argv, &config_seen, err, errlen);
}

/* --- finish ------------------------------------------------------------- */

/* FNV-1a, 32 bits: a short stable tag for a unix socket path. */
static uint32_t
hash_path(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

static void
default_shm_name(struct sc_config *cfg)
{
    const struct sc_listen_addr *a = &cfg->listen[0];

    if (a->kind == SC_LISTEN_UNIX) {
        snprintf(cfg->shm_name, sizeof(cfg->shm_name), "/seatcast-unix-%08x",
                 (unsigned)hash_path(a->path));
    } else {
        snprintf(cfg->shm_name, sizeof(cfg->shm_name), "/seatcast-%u",
                 (unsigned)a->port);
    }
}

/*
 * Adds the derived defaults (listener 127.0.0.1:3000, shm name from the
 * first listener) and refuses a listener given twice.  Returns 0, or -1
 * with "listen: duplicate address \"...\"" in err.  Call once, after the
 * file and the command line.  Pure: any process.
 */
int
sc_config_finish(struct sc_config *cfg, char *err, size_t errlen)
{
    char a[160], b[160];

    if (cfg->nlisten == 0) {
        sc_config_parse_listen(DEFAULT_LISTEN, &cfg->listen[0], NULL, 0);
        cfg->nlisten = 1;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        sc_config_format_listen(&cfg->listen[i], a, sizeof(a));
        for (size_t j = i + 1; j < cfg->nlisten; j++) {
            sc_config_format_listen(&cfg->listen[j], b, sizeof(b));
            if (strcmp(a, b) == 0) {
                return fail(err, errlen, "listen: duplicate address \"%s\"", a);
            }
        }
    }
    if (cfg->shm_name[0] == '\0') {
        default_shm_name(cfg);
    }
    return 0;
}

void
sc_config_default_slot(struct sc_config *cfg, const char *hostname)
{
    const struct sc_listen_addr *a = &cfg->listen[0];
    char tail[16];
    size_t n, room;

    if (cfg->slot[0] != '\0') {
        return;
    }
    if (cfg->nlisten > 0 && a->kind == SC_LISTEN_UNIX) {
        snprintf(tail, sizeof(tail), "_u%08x", (unsigned)hash_path(a->path));
    } else {
        snprintf(tail, sizeof(tail), "_%u",
                 (unsigned)(cfg->nlisten > 0 ? a->port : 3000));
    }
    n = (size_t)snprintf(cfg->slot, sizeof(cfg->slot), "seatcast_");
    room = SC_CONFIG_SLOT_MAX - n - strlen(tail);
    for (const char *h = hostname ? hostname : ""; *h != '\0' && room > 0;
         h++, room--) {
        char ch = *h;
        if (ch >= 'A' && ch <= 'Z') {
            ch = (char)(ch - 'A' + 'a');
        } else if (!is_lower(ch) && !is_digit(ch)) {
            ch = '_';
        }
        cfg->slot[n++] = ch;
    }
    cfg->slot[n] = '\0';
    snprintf(cfg->slot + n, sizeof(cfg->slot) - n, "%s", tail);
}

/* The text of --help, static storage; every option once, with its default. */
const char *
sc_config_usage(void)
{
    return usage_text;
}
