/*
 * check_config.c - command line, config file, validation and defaults
 *
 * Every option is set three ways (--opt=v, --opt v, "opt = v" in a file)
 * from one table of good values, and refused the same way from one table
 * of bad values, so that both sources speak with one voice.
 */
#include "config.h"

#include "log.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRLEN 512

/* --- helpers ------------------------------------------------------------ */

/* Runs sc_config_parse_argv on a NULL-terminated list, argv[0] added. */
static int
parsev(struct sc_config *cfg, char *err, const char *const *args)
{
    char *argv[64];
    int argc = 0, rc;

    argv[argc++] = strdup("seatcast");
    for (; *args != NULL; args++) {
        ck_assert_int_lt(argc, 63);
        argv[argc++] = strdup(*args);
    }
    argv[argc] = NULL;
    err[0] = '\0';
    rc = sc_config_parse_argv(cfg, argc, argv, err, ERRLEN);
    for (int i = 0; i < argc; i++) {
        free(argv[i]);
    }
    return rc;
}

#define PARSE(cfg, err, ...)                                                   \
    parsev((cfg), (err), (const char *const[]){__VA_ARGS__, NULL})

static int
parse_text(struct sc_config *cfg, char *err, const char *text)
{
    err[0] = '\0';
    return sc_config_parse_text(cfg, "t.conf", text, strlen(text), err, ERRLEN);
}

/* Writes text to a new temporary file; path receives its name. */
static void
write_conf(char *path, size_t len, const char *text)
{
    int fd;

    snprintf(path, len, "/tmp/check_config_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void
fresh(struct sc_config *cfg)
{
    sc_config_defaults(cfg, 4);
}

/* --- reading a field back by option name -------------------------------- */

enum ftype { F_INT, F_U32, F_U64, F_STR, F_LISTEN, F_ORIGIN, F_PROXY, F_ENUM };

struct field {
    const char *name;
    enum ftype type;
    size_t off;
};

#define OFF(f) offsetof(struct sc_config, f)

static const struct field fields[] = {
    {"listen", F_LISTEN, 0},
    {"workers", F_INT, OFF(workers)},
    {"database", F_STR, OFF(database)},
    {"channel", F_STR, OFF(channel)},
    {"source", F_ENUM, OFF(source)},
    {"publication", F_STR, OFF(publication)},
    {"slot", F_STR, OFF(slot)},
    {"jwt-secret-file", F_STR, OFF(jwt_secret_file)},
    {"jwt-public-key", F_STR, OFF(jwt_public_key)},
    {"jwt-issuer", F_STR, OFF(jwt_issuer)},
    {"jwt-audience", F_STR, OFF(jwt_audience)},
    {"jwt-leeway", F_INT, OFF(jwt_leeway)},
    {"allowed-origin", F_ORIGIN, 0},
    {"trusted-proxy", F_PROXY, 0},
    {"max-connections", F_U32, OFF(max_connections)},
    {"max-connections-per-user", F_U32, OFF(max_connections_per_user)},
    {"max-subscriptions", F_U32, OFF(max_subscriptions)},
    {"max-message-rate", F_U32, OFF(max_message_rate)},
    {"max-message-size", F_U32, OFF(max_message_size)},
    {"max-events", F_U32, OFF(max_events)},
    {"ping-interval", F_U32, OFF(ping_interval)},
    {"handshake-timeout", F_U32, OFF(handshake_timeout)},
    {"send-buffer-limit", F_U64, OFF(send_buffer_limit)},
    {"max-lag", F_U32, OFF(max_lag)},
    {"io-uring", F_ENUM, OFF(io_uring)},
    {"shutdown-timeout", F_U32, OFF(shutdown_timeout)},
    {"shm-name", F_STR, OFF(shm_name)},
    {"log-level", F_INT, OFF(log_level)},
    {"log-format", F_ENUM, OFF(log_format)},
    {"pid-file", F_STR, OFF(pid_file)},
};

/* The value of option `name` as text; lists give "count:last". */
static void
get(const struct sc_config *c, const char *name, char *out, size_t len)
{
    const char *base = (const char *)c;
    char a[200];

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const struct field *f = &fields[i];
        const void *p = base + f->off;

        if (strcmp(f->name, name) != 0) {
            continue;
        }
        switch (f->type) {
        case F_INT:
            snprintf(out, len, "%d", *(const int *)p);
            return;
        case F_U32:
            snprintf(out, len, "%u", (unsigned)*(const uint32_t *)p);
            return;
        case F_U64:
            snprintf(out, len, "%llu",
                     (unsigned long long)*(const uint64_t *)p);
            return;
        case F_STR:
            snprintf(out, len, "%s", (const char *)p);
            return;
        case F_ENUM:
            snprintf(out, len, "%d", (int)*(const enum sc_log_format *)p);
            return;
        case F_LISTEN:
            ck_assert_uint_ge(c->nlisten, 1);
            sc_config_format_listen(&c->listen[c->nlisten - 1], a, sizeof(a));
            snprintf(out, len, "%zu:%s", c->nlisten, a);
            return;
        case F_ORIGIN:
            ck_assert_uint_ge(c->nallowed_origin, 1);
            snprintf(out, len, "%zu:%s", c->nallowed_origin,
                     c->allowed_origin[c->nallowed_origin - 1]);
            return;
        case F_PROXY:
            ck_assert_uint_ge(c->ntrusted_proxy, 1);
            snprintf(out, len, "%zu:%s", c->ntrusted_proxy,
                     c->trusted_proxy[c->ntrusted_proxy - 1]);
            return;
        }
    }
    ck_abort_msg("no field %s", name);
}

/* --- defaults ----------------------------------------------------------- */

START_TEST(defaults)
{
    struct sc_config c;
    char err[ERRLEN];

    sc_config_defaults(&c, 4);
    ck_assert_str_eq(c.config_file, "");
    ck_assert_uint_eq(c.nlisten, 0);
    ck_assert_int_eq(c.workers, 4);
    ck_assert_str_eq(c.database, "");
    ck_assert_str_eq(c.channel, "seatcast");
    ck_assert_int_eq(c.source, SC_SOURCE_NOTIFY);
    ck_assert_str_eq(c.publication, "seatcast");
    ck_assert_str_eq(c.slot, "");
    ck_assert_str_eq(c.jwt_secret_file, "");
    ck_assert_str_eq(c.jwt_public_key, "");
    ck_assert_str_eq(c.jwt_issuer, "");
    ck_assert_str_eq(c.jwt_audience, "");
    ck_assert_int_eq(c.jwt_leeway, 5);
    ck_assert_uint_eq(c.nallowed_origin, 0);
    ck_assert_uint_eq(c.ntrusted_proxy, 0);
    ck_assert_uint_eq(c.max_connections, 100000);
    ck_assert_uint_eq(c.max_connections_per_user, 0);
    ck_assert_uint_eq(c.max_subscriptions, 100);
    ck_assert_uint_eq(c.max_message_rate, 50);
    ck_assert_uint_eq(c.max_message_size, 16384);
    ck_assert_uint_eq(c.max_events, 65536);
    ck_assert_uint_eq(c.ping_interval, 30);
    ck_assert_uint_eq(c.max_lag, 100);
    ck_assert_int_eq(c.io_uring, SC_IO_URING_ON);
    ck_assert_uint_eq(c.handshake_timeout, 10);
    ck_assert_uint_eq(c.send_buffer_limit, 1048576);
    ck_assert_uint_eq(c.shutdown_timeout, 10);
    ck_assert_str_eq(c.shm_name, "");
    ck_assert_int_eq(c.log_level, SC_LOG_INFO);
    ck_assert_int_eq(c.log_format, SC_LOG_FORMAT_TEXT);
    ck_assert_str_eq(c.pid_file, "");
    ck_assert(!c.test_only && !c.show_version && !c.show_help);

    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_int_eq(c.listen[0].kind, SC_LISTEN_TCP4);
    ck_assert_str_eq(c.listen[0].host, "127.0.0.1");
    ck_assert_uint_eq(c.listen[0].port, 3000);
    ck_assert_str_eq(c.shm_name, "/seatcast-3000");
}
END_TEST

START_TEST(defaults_workers_clamped)
{
    struct sc_config c;

    sc_config_defaults(&c, 0);
    ck_assert_int_eq(c.workers, 1);
    sc_config_defaults(&c, -3);
    ck_assert_int_eq(c.workers, 1);
    sc_config_defaults(&c, 64);
    ck_assert_int_eq(c.workers, 64);
    sc_config_defaults(&c, 256);
    ck_assert_int_eq(c.workers, 64);
}
END_TEST

START_TEST(empty_argv)
{
    struct sc_config c;
    char err[ERRLEN];
    char *argv[] = {NULL};

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, NULL), 0);
    ck_assert_int_eq(c.workers, 4);
    /* argc 0 (no argv[0]) is harmless too */
    ck_assert_int_eq(sc_config_parse_argv(&c, 0, argv, err, sizeof(err)), 0);
}
END_TEST

/* --- good values -------------------------------------------------------- */

struct good {
    const char *name, *value, *want;
};

static const struct good goods[] = {
    {"listen", "127.0.0.1:80", "1:127.0.0.1:80"},
    {"listen", "8080", "1:0.0.0.0:8080"},
    {"listen", "0.0.0.0:65535", "1:0.0.0.0:65535"},
    {"listen", "localhost:3000", "1:127.0.0.1:3000"},
    {"listen", "[::1]:443", "1:[::1]:443"},
    {"listen", "[::]:1", "1:[::]:1"},
    {"listen", "[2001:db8::1]:9000", "1:[2001:db8::1]:9000"},
    {"listen", "unix:/run/seatcast.sock", "1:unix:/run/seatcast.sock"},
    {"listen", "unix:rel.sock", "1:unix:rel.sock"},
    {"workers", "1", "1"},
    {"workers", "64", "64"},
    {"workers", "08", "8"},
    {"database", "host=db dbname=booking", "host=db dbname=booking"},
    {"database", "postgresql://u@db/booking", "postgresql://u@db/booking"},
    {"database", "", ""},
    {"channel", "seat_updates", "seat_updates"},
    {"channel", "_x9", "_x9"},
    {"source", "logical", "1"},
    {"source", "notify", "0"},
    {"publication", "seatcast_pub", "seatcast_pub"},
    {"slot", "seatcast_a_1", "seatcast_a_1"},
    {"slot", "0", "0"},
    {"slot", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123",
     "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"},
    {"jwt-secret-file", "/etc/seatcast/secret", "/etc/seatcast/secret"},
    {"jwt-secret-file", "", ""},
    {"jwt-public-key", "/etc/seatcast/key.pem", "/etc/seatcast/key.pem"},
    {"jwt-issuer", "https://auth.example.com", "https://auth.example.com"},
    {"jwt-audience", "booking", "booking"},
    {"jwt-leeway", "0", "0"},
    {"jwt-leeway", "3600", "3600"},
    {"jwt-leeway", "30s", "30"},
    {"allowed-origin", "https://Example.COM", "1:https://example.com"},
    {"allowed-origin", "http://localhost:8080", "1:http://localhost:8080"},
    {"allowed-origin", "http://[::1]:3000", "1:http://[::1]:3000"},
    {"allowed-origin", "app+x.y-z://a-b.c", "1:app+x.y-z://a-b.c"},
    {"trusted-proxy", "10.0.0.0/8", "1:10.0.0.0/8"},
    {"trusted-proxy", "192.168.1.1", "1:192.168.1.1"},
    {"trusted-proxy", "::1", "1:::1"},
    {"trusted-proxy", "fd00::/8", "1:fd00::/8"},
    {"trusted-proxy", "0.0.0.0/0", "1:0.0.0.0/0"},
    {"trusted-proxy", "::/128", "1:::/128"},
    {"max-connections", "1", "1"},
    {"max-connections", "10000000", "10000000"},
    {"max-connections-per-user", "0", "0"},
    {"max-connections-per-user", "5", "5"},
    {"max-subscriptions", "1", "1"},
    {"max-subscriptions", "1000000", "1000000"},
    {"max-message-rate", "1", "1"},
    {"max-message-rate", "1000000", "1000000"},
    {"max-message-size", "125", "125"},
    {"max-message-size", "16k", "16384"},
    {"max-message-size", "16K", "16384"},
    {"max-message-size", "1m", "1048576"},
    {"max-message-size", "16M", "16777216"},
    {"max-message-size", "16777216", "16777216"},
    {"max-events", "16", "16"},
    {"max-events", "16777216", "16777216"},
    {"ping-interval", "1", "1"},
    {"ping-interval", "30s", "30"},
    {"ping-interval", "86400", "86400"},
    {"handshake-timeout", "5", "5"},
    {"handshake-timeout", "1s", "1"},
    {"send-buffer-limit", "4096", "4096"},
    {"send-buffer-limit", "4k", "4096"},
    {"send-buffer-limit", "1M", "1048576"},
    {"send-buffer-limit", "1024M", "1073741824"},
    {"max-lag", "0", "0"},
    {"max-lag", "250ms", "250"},
    {"max-lag", "60000", "60000"},
    {"shutdown-timeout", "1", "1"},
    {"shutdown-timeout", "86400s", "86400"},
    {"shm-name", "/x", "/x"},
    {"shm-name", "/seatcast-prod.1", "/seatcast-prod.1"},
    {"log-level", "error", "0"},
    {"log-level", "warn", "1"},
    {"log-level", "info", "2"},
    {"log-level", "debug", "3"},
    {"log-level", "DEBUG", "3"},
    {"log-level", "warning", "1"},
    {"log-format", "json", "1"},
    {"log-format", "text", "0"},
    {"log-format", "JSON", "1"},
    {"io-uring", "off", "0"},
    {"io-uring", "on", "1"},
    {"io-uring", "OFF", "0"},
    {"pid-file", "/run/seatcast.pid", "/run/seatcast.pid"},
};

#define NGOODS ((int)(sizeof(goods) / sizeof(goods[0])))

static void
check_good(const struct sc_config *c, const struct good *g, const char *how)
{
    char got[300];

    get(c, g->name, got, sizeof(got));
    ck_assert_msg(strcmp(got, g->want) == 0, "%s %s=\"%s\": got \"%s\"", how,
                  g->name, g->value, got);
}

START_TEST(good_value_argv_equals)
{
    const struct good *g = &goods[_i];
    struct sc_config c;
    char err[ERRLEN], arg[600];

    fresh(&c);
    snprintf(arg, sizeof(arg), "--%s=%s", g->name, g->value);
    ck_assert_msg(PARSE(&c, err, arg) == 0, "%s: %s", arg, err);
    check_good(&c, g, "--opt=v");
}
END_TEST

START_TEST(good_value_argv_separate)
{
    const struct good *g = &goods[_i];
    struct sc_config c;
    char err[ERRLEN], opt[100];

    fresh(&c);
    snprintf(opt, sizeof(opt), "--%s", g->name);
    ck_assert_msg(PARSE(&c, err, opt, g->value) == 0, "%s: %s", opt, err);
    check_good(&c, g, "--opt v");
}
END_TEST

START_TEST(good_value_file)
{
    const struct good *g = &goods[_i];
    struct sc_config c;
    char err[ERRLEN], text[600];

    fresh(&c);
    snprintf(text, sizeof(text), "%s = %s\n", g->name, g->value);
    ck_assert_msg(parse_text(&c, err, text) == 0, "%s: %s", text, err);
    check_good(&c, g, "file");
    /* quoted, no spaces around '=' */
    fresh(&c);
    snprintf(text, sizeof(text), "%s=\"%s\"", g->name, g->value);
    ck_assert_msg(parse_text(&c, err, text) == 0, "%s: %s", text, err);
    check_good(&c, g, "quoted");
}
END_TEST

START_TEST(short_options)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(
        PARSE(&c, err, "-l", "9000", "-w", "2", "-d", "dbname=x", "-t"), 0);
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_uint_eq(c.listen[0].port, 9000);
    ck_assert_int_eq(c.workers, 2);
    ck_assert_str_eq(c.database, "dbname=x");
    ck_assert(c.test_only);

    /* attached values and a cluster ending in an option with a value */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l127.0.0.1:81", "-tw3"), 0);
    ck_assert_str_eq(c.listen[0].host, "127.0.0.1");
    ck_assert_uint_eq(c.listen[0].port, 81);
    ck_assert_int_eq(c.workers, 3);
    ck_assert(c.test_only);
}
END_TEST

START_TEST(flags)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-h"), 0);
    ck_assert(c.show_help && !c.show_version && !c.test_only);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--help"), 0);
    ck_assert(c.show_help);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-V"), 0);
    ck_assert(c.show_version && !c.show_help);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--version"), 0);
    ck_assert(c.show_version);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-t"), 0);
    ck_assert(c.test_only && !c.show_version && !c.show_help);
}
END_TEST

START_TEST(abbreviated_long_option)
{
    struct sc_config c;
    char err[ERRLEN];

    /* getopt_long takes an unambiguous prefix, as GNU tools do */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--work=7"), 0);
    ck_assert_int_eq(c.workers, 7);
    ck_assert_int_eq(PARSE(&c, err, "--max-connections=9"), 0);
    ck_assert_uint_eq(c.max_connections, 9);
    ck_assert_uint_eq(c.max_connections_per_user, 0);
}
END_TEST

/* --- bad values --------------------------------------------------------- */

struct bad {
    const char *name, *value, *msg; /* msg without "--" or "FILE:LINE: " */
};

static const struct bad bads[] = {
    {"workers", "0", "workers: must be between 1 and 64, got \"0\""},
    {"workers", "65", "workers: must be between 1 and 64, got \"65\""},
    {"workers", "x", "workers: not a number: \"x\""},
    {"workers", "", "workers: not a number: \"\""},
    {"workers", "-1", "workers: not a number: \"-1\""},
    {"workers", "+2", "workers: not a number: \"+2\""},
    {"workers", "2x", "workers: not a number: \"2x\""},
    {"workers", "1.5", "workers: not a number: \"1.5\""},
    {"workers", "0x10", "workers: not a number: \"0x10\""},
    {"workers", "4s", "workers: not a number: \"4s\""},
    {"workers", "99999999999999999999999",
     "workers: must be between 1 and 64, got \"99999999999999999999999\""},
    {"jwt-leeway", "3601",
     "jwt-leeway: must be between 0 and 3600, got \"3601\""},
    {"jwt-leeway", "-1", "jwt-leeway: not a number: \"-1\""},
    {"jwt-leeway", "5m", "jwt-leeway: not a number: \"5m\""},
    {"jwt-leeway", "5ss", "jwt-leeway: not a number: \"5ss\""},
    {"max-connections", "0",
     "max-connections: must be between 1 and 10000000, got \"0\""},
    {"max-connections", "10000001",
     "max-connections: must be between 1 and 10000000, got \"10000001\""},
    {"max-connections", "1k", "max-connections: not a number: \"1k\""},
    {"max-connections-per-user", "10000001",
     "max-connections-per-user: must be between 0 and 10000000, got "
     "\"10000001\""},
    {"max-connections-per-user", "-0",
     "max-connections-per-user: not a number: \"-0\""},
    {"max-subscriptions", "0",
     "max-subscriptions: must be between 1 and 1000000, got \"0\""},
    {"max-subscriptions", "1000001",
     "max-subscriptions: must be between 1 and 1000000, got \"1000001\""},
    {"max-message-rate", "0",
     "max-message-rate: must be between 1 and 1000000, got \"0\""},
    {"max-message-rate", "fast", "max-message-rate: not a number: \"fast\""},
    {"max-message-size", "124",
     "max-message-size: must be between 125 and 16777216, got \"124\""},
    {"max-message-size", "17M",
     "max-message-size: must be between 125 and 16777216, got \"17M\""},
    {"max-message-size", "16777217",
     "max-message-size: must be between 125 and 16777216, got "
     "\"16777217\""},
    {"max-message-size", "0k",
     "max-message-size: must be between 125 and 16777216, got \"0k\""},
    {"max-message-size", "18446744073709551615M",
     "max-message-size: must be between 125 and 16777216, got "
     "\"18446744073709551615M\""},
    {"max-message-size", "16G", "max-message-size: not a number: \"16G\""},
    {"max-message-size", "16kb", "max-message-size: not a number: \"16kb\""},
    {"max-message-size", "16KiB", "max-message-size: not a number: \"16KiB\""},
    {"max-message-size", "k", "max-message-size: not a number: \"k\""},
    {"max-message-size", "16s", "max-message-size: not a number: \"16s\""},
    {"max-events", "x", "max-events: not a number: \"x\""},
    {"max-events", "15",
     "max-events: must be between 16 and 16777216, got "
     "\"15\""},
    {"max-events", "16777217",
     "max-events: must be between 16 and 16777216, got \"16777217\""},
    {"max-events", "1k", "max-events: not a number: \"1k\""},
    {"ping-interval", "0",
     "ping-interval: must be between 1 and 86400, got \"0\""},
    {"ping-interval", "86401",
     "ping-interval: must be between 1 and 86400, got \"86401\""},
    {"ping-interval", "30ms", "ping-interval: not a number: \"30ms\""},
    {"ping-interval", "s", "ping-interval: not a number: \"s\""},
    {"ping-interval", "1m", "ping-interval: not a number: \"1m\""},
    {"handshake-timeout", "0",
     "handshake-timeout: must be between 1 and 86400, got \"0\""},
    {"handshake-timeout", "ten", "handshake-timeout: not a number: \"ten\""},
    {"shutdown-timeout", "0",
     "shutdown-timeout: must be between 1 and 86400, got \"0\""},
    {"shutdown-timeout", "0s",
     "shutdown-timeout: must be between 1 and 86400, got \"0s\""},
    {"send-buffer-limit", "4095",
     "send-buffer-limit: must be between 4096 and 1073741824, got "
     "\"4095\""},
    {"send-buffer-limit", "3k",
     "send-buffer-limit: must be between 4096 and 1073741824, got \"3k\""},
    {"send-buffer-limit", "1025M",
     "send-buffer-limit: must be between 4096 and 1073741824, got "
     "\"1025M\""},
    {"send-buffer-limit", "1g", "send-buffer-limit: not a number: \"1g\""},
    {"max-lag", "60001",
     "max-lag: must be between 0 and 60000, got \"60001\""},
    {"max-lag", "1s", "max-lag: not a number: \"1s\""},
    {"max-lag", "-1", "max-lag: not a number: \"-1\""},
    {"max-lag", "100m", "max-lag: not a number: \"100m\""},
    {"source", "Logical", "source: must be notify or logical, got "
                          "\"Logical\""},
    {"source", "", "source: must be notify or logical, got \"\""},
    {"publication", "Pub", "publication: not a plain SQL identifier "
                           "([a-z_][a-z0-9_]*): \"Pub\""},
    {"slot", "", "slot: must not be empty: \"\""},
    {"slot", "a-b", "slot: not a replication slot name ([a-z0-9_]): "
                    "\"a-b\""},
    {"slot", "Ab", "slot: not a replication slot name ([a-z0-9_]): \"Ab\""},
    {"slot", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234",
     "slot: too long (max 63 bytes): "
     "\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij...\""},
    {"channel", "Seat",
     "channel: not a plain SQL identifier ([a-z_][a-z0-9_]*): \"Seat\""},
    {"channel", "1abc",
     "channel: not a plain SQL identifier ([a-z_][a-z0-9_]*): \"1abc\""},
    {"channel", "",
     "channel: not a plain SQL identifier ([a-z_][a-z0-9_]*): "
     "\"\""},
    {"channel", "a-b",
     "channel: not a plain SQL identifier ([a-z_][a-z0-9_]*): \"a-b\""},
    {"channel", "seat;drop",
     "channel: not a plain SQL identifier ([a-z_][a-z0-9_]*): "
     "\"seat;drop\""},
    {"shm-name", "seatcast",
     "shm-name: must be \"/\" and a name without \"/\": \"seatcast\""},
    {"shm-name", "/",
     "shm-name: must be \"/\" and a name without \"/\": "
     "\"/\""},
    {"shm-name", "/a/b",
     "shm-name: must be \"/\" and a name without \"/\": \"/a/b\""},
    {"shm-name", "",
     "shm-name: must be \"/\" and a name without \"/\": "
     "\"\""},
    {"log-level", "verbose",
     "log-level: must be error, warn, info or debug, got \"verbose\""},
    {"log-level", "",
     "log-level: must be error, warn, info or debug, got "
     "\"\""},
    {"log-level", "2",
     "log-level: must be error, warn, info or debug, got \"2\""},
    {"log-format", "xml", "log-format: must be text or json, got \"xml\""},
    {"log-format", "", "log-format: must be text or json, got \"\""},
    {"io-uring", "yes", "io-uring: must be on or off, got \"yes\""},
    {"listen", ":0", "listen: missing host: \":0\""},
    {"listen", ":80", "listen: missing host: \":80\""},
    {"listen", "127.0.0.1:", "listen: missing port: \"127.0.0.1:\""},
    {"listen",
     "host:", "listen: not an IPv4 address or \"localhost\": \"host:\""},
    {"listen", "example.com:80",
     "listen: not an IPv4 address or \"localhost\": \"example.com:80\""},
    {"listen", "1.2.3:80",
     "listen: not an IPv4 address or \"localhost\": \"1.2.3:80\""},
    {"listen", "256.1.1.1:80",
     "listen: not an IPv4 address or \"localhost\": \"256.1.1.1:80\""},
    {"listen", "[::1]", "listen: missing port: \"[::1]\""},
    {"listen", "[::1]:", "listen: missing port: \"[::1]:\""},
    {"listen", "[::1]80",
     "listen: expected \":PORT\" after \"]\": "
     "\"[::1]80\""},
    {"listen", "[::1",
     "listen: missing \"]\" after the IPv6 address: "
     "\"[::1\""},
    {"listen", "[nope]:80", "listen: not an IPv6 address: \"[nope]:80\""},
    {"listen", "[127.0.0.1]:80",
     "listen: not an IPv6 address: \"[127.0.0.1]:80\""},
    {"listen", "[]:80", "listen: not an IPv6 address: \"[]:80\""},
    {"listen", "::1:80",
     "listen: an IPv6 address must be in brackets: \"::1:80\""},
    {"listen", "unix:", "listen: unix socket path is empty: \"unix:\""},
    {"listen", "65536", "listen: port must be between 1 and 65535: \"65536\""},
    {"listen", "0", "listen: port must be between 1 and 65535: \"0\""},
    {"listen", "127.0.0.1:0",
     "listen: port must be between 1 and 65535: \"127.0.0.1:0\""},
    {"listen", "[::1]:65536",
     "listen: port must be between 1 and 65535: \"[::1]:65536\""},
    {"listen", "127.0.0.1:99999999999999999999999",
     "listen: port must be between 1 and 65535: "
     "\"127.0.0.1:99999999999999999999999\""},
    {"listen", "127.0.0.1:http",
     "listen: port is not a number: \"127.0.0.1:http\""},
    {"listen", "127.0.0.1:-80",
     "listen: port is not a number: \"127.0.0.1:-80\""},
    {"listen", "localhost",
     "listen: expected HOST:PORT, [IPV6]:PORT, PORT or unix:PATH: "
     "\"localhost\""},
    {"listen", "",
     "listen: expected HOST:PORT, [IPV6]:PORT, PORT or unix:PATH: \"\""},
    {"allowed-origin", "example.com",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"example.com\""},
    {"allowed-origin", "https://example.com/",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://example.com/\""},
    {"allowed-origin", "https://",
     "allowed-origin: not an origin (scheme://host[:port]): \"https://\""},
    {"allowed-origin", "https://a:0",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://a:0\""},
    {"allowed-origin", "https://a:65536",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://a:65536\""},
    {"allowed-origin", "https://a:",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://a:\""},
    {"allowed-origin", "*",
     "allowed-origin: not an origin (scheme://host[:port]): \"*\""},
    {"allowed-origin", "null",
     "allowed-origin: not an origin (scheme://host[:port]): \"null\""},
    {"allowed-origin", "https://[::1",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://[::1\""},
    {"allowed-origin", "https://[x]",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://[x]\""},
    {"allowed-origin", "1http://a",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"1http://a\""},
    {"allowed-origin", "https://a_b",
     "allowed-origin: not an origin (scheme://host[:port]): "
     "\"https://a_b\""},
    {"allowed-origin", "",
     "allowed-origin: not an origin (scheme://host[:port]): \"\""},
    {"trusted-proxy", "10.0.0.0/33",
     "trusted-proxy: prefix length out of range: \"10.0.0.0/33\""},
    {"trusted-proxy", "::/129",
     "trusted-proxy: prefix length out of range: \"::/129\""},
    {"trusted-proxy", "10.0.0/8",
     "trusted-proxy: not an IP address or CIDR block: \"10.0.0/8\""},
    {"trusted-proxy", "proxy.local",
     "trusted-proxy: not an IP address or CIDR block: \"proxy.local\""},
    {"trusted-proxy", "10.0.0.0/",
     "trusted-proxy: not an IP address or CIDR block: \"10.0.0.0/\""},
    {"trusted-proxy", "10.0.0.0/a",
     "trusted-proxy: not an IP address or CIDR block: \"10.0.0.0/a\""},
    {"trusted-proxy", "10.0.0.0/0008",
     "trusted-proxy: not an IP address or CIDR block: "
     "\"10.0.0.0/0008\""},
    {"trusted-proxy", "10.0.0.0/-8",
     "trusted-proxy: not an IP address or CIDR block: \"10.0.0.0/-8\""},
    {"trusted-proxy", "[::1]",
     "trusted-proxy: not an IP address or CIDR block: \"[::1]\""},
    {"trusted-proxy", "",
     "trusted-proxy: not an IP address or CIDR block: \"\""},
};

#define NBADS ((int)(sizeof(bads) / sizeof(bads[0])))

START_TEST(bad_value_argv_equals)
{
    const struct bad *b = &bads[_i];
    struct sc_config c;
    char err[ERRLEN], arg[600], want[600];

    fresh(&c);
    snprintf(arg, sizeof(arg), "--%s=%s", b->name, b->value);
    snprintf(want, sizeof(want), "--%s", b->msg);
    ck_assert_int_eq(PARSE(&c, err, arg), -1);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(bad_value_argv_separate)
{
    const struct bad *b = &bads[_i];
    struct sc_config c;
    char err[ERRLEN], opt[100], want[600];

    fresh(&c);
    snprintf(opt, sizeof(opt), "--%s", b->name);
    snprintf(want, sizeof(want), "--%s", b->msg);
    ck_assert_int_eq(PARSE(&c, err, opt, b->value), -1);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(bad_value_file)
{
    const struct bad *b = &bads[_i];
    struct sc_config c;
    char err[ERRLEN], text[600], want[600];

    fresh(&c);
    snprintf(text, sizeof(text), "# comment\n\n%s = \"%s\"\n", b->name,
             b->value);
    snprintf(want, sizeof(want), "t.conf:3: %s", b->msg);
    ck_assert_int_eq(parse_text(&c, err, text), -1);
    ck_assert_str_eq(err, want);
    /* sc_config_set gives the same words, without a location */
    fresh(&c);
    ck_assert_int_eq(sc_config_set(&c, b->name, b->value, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, b->msg);
}
END_TEST

START_TEST(bad_value_keeps_old)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--workers=0"), -1);
    ck_assert_int_eq(c.workers, 4);
    ck_assert_int_eq(PARSE(&c, err, "--listen=:0"), -1);
    ck_assert_uint_eq(c.nlisten, 0);
    ck_assert_int_eq(PARSE(&c, err, "--channel=Bad"), -1);
    ck_assert_str_eq(c.channel, "seatcast");
}
END_TEST

START_TEST(whitespace_on_command_line)
{
    struct sc_config c;
    char err[ERRLEN];

    /* the shell already split words: spaces are part of the value */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--workers= 5"), -1);
    ck_assert_str_eq(err, "--workers: not a number: \" 5\"");
    ck_assert_int_eq(PARSE(&c, err, "--workers", "5 "), -1);
    ck_assert_str_eq(err, "--workers: not a number: \"5 \"");
    ck_assert_int_eq(PARSE(&c, err, "-w", "5\n"), -1);
    ck_assert_str_eq(err, "--workers: not a number: \"5?\"");
}
END_TEST

START_TEST(too_long_values)
{
    struct sc_config c;
    char err[ERRLEN], v[2048], arg[2100];

    fresh(&c);
    memset(v, 'a', 64);
    v[64] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "channel", v, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "channel: too long (max 63 bytes): "
                          "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                          "aaaaaaaaaa...\"");
    v[63] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "channel", v, err, sizeof(err)), 0);
    ck_assert_str_eq(c.channel, v);

    v[0] = '/';
    memset(v + 1, 's', 220);
    v[221] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "shm-name", v, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "shm-name: too long (max 220 bytes)"));
    v[220] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "shm-name", v, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, v);

    memset(v, 'i', 256);
    v[256] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "jwt-issuer", v, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "jwt-issuer: too long (max 255 bytes)"));
    ck_assert_int_eq(sc_config_set(&c, "jwt-audience", v, err, sizeof(err)),
                     -1);
    memset(v, 'd', 512);
    v[512] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "database", v, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "database: too long (max 511 bytes)"));
    memset(v, 'p', 1024);
    v[1024] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "pid-file", v, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "pid-file: too long (max 1023 bytes)"));
    ck_assert_int_eq(sc_config_set(&c, "jwt-secret-file", v, err, sizeof(err)),
                     -1);
    ck_assert_int_eq(sc_config_set(&c, "jwt-public-key", v, err, sizeof(err)),
                     -1);
    v[1023] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "pid-file", v, err, sizeof(err)), 0);

    /* an origin of valid syntax but too long for its slot */
    snprintf(v, sizeof(v), "https://");
    memset(v + 8, 'h', 248);
    v[256] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "allowed-origin", v, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(
        strstr(err, "allowed-origin: too long (max 255 bytes)"));
    v[255] = '\0';
    ck_assert_int_eq(sc_config_set(&c, "allowed-origin", v, err, sizeof(err)),
                     0);

    /* --config on the command line */
    memset(v, 'c', 1024);
    v[1024] = '\0';
    snprintf(arg, sizeof(arg), "--config=%s", v);
    ck_assert_int_eq(PARSE(&c, err, arg), -1);
    ck_assert_ptr_nonnull(strstr(err, "--config: too long (max 1023 bytes)"));
    ck_assert_int_eq(PARSE(&c, err, "--config="), -1);
    ck_assert_str_eq(err, "--config: must not be empty: \"\"");
}
END_TEST

START_TEST(message_quotes_safely)
{
    struct sc_config c;
    char err[ERRLEN], small[16];

    fresh(&c);
    ck_assert_int_eq(
        sc_config_set(&c, "workers", "1\t2\0333", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "workers: not a number: \"1?2?3\"");
    /* a short buffer gets a truncated, terminated message */
    ck_assert_int_eq(sc_config_set(&c, "workers", "x", small, sizeof(small)),
                     -1);
    ck_assert_str_eq(small, "workers: not a ");
    ck_assert_int_eq(sc_config_set(&c, "workers", "x", NULL, 0), -1);
}
END_TEST

/* --- sc_config_set ------------------------------------------------------ */

START_TEST(set_api)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(sc_config_set(&c, "max-events", "1000", err, sizeof(err)),
                     0);
    ck_assert_uint_eq(c.max_events, 1000);
    ck_assert_int_eq(sc_config_set(&c, "nope", "1", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "unknown option \"nope\"");
    ck_assert_int_eq(sc_config_set(&c, "--workers", "1", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "unknown option \"--workers\"");
    ck_assert_int_eq(sc_config_set(&c, "Workers", "1", err, sizeof(err)), -1);
    ck_assert_int_eq(sc_config_set(&c, "config", "/x", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "config: only allowed on the command line");
    ck_assert_int_eq(sc_config_set(&c, "help", "", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "help: only allowed on the command line");
    ck_assert_int_eq(sc_config_set(&c, "version", "", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "version: only allowed on the command line");
    ck_assert(!c.show_help && !c.show_version);
    ck_assert_str_eq(c.config_file, "");
    /* lists append */
    ck_assert_int_eq(sc_config_set(&c, "listen", "1", err, sizeof(err)), 0);
    ck_assert_int_eq(sc_config_set(&c, "listen", "2", err, sizeof(err)), 0);
    ck_assert_uint_eq(c.nlisten, 2);
}
END_TEST

/* --- config file -------------------------------------------------------- */

START_TEST(file_errors)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(parse_text(&c, err, "workers = 2\n\nfoo = 1\n"), -1);
    ck_assert_str_eq(err, "t.conf:3: unknown option \"foo\"");
    ck_assert_int_eq(parse_text(&c, err, "# x\nworkers 4\n"), -1);
    ck_assert_str_eq(err, "t.conf:2: missing \"=\" in \"workers 4\"");
    ck_assert_int_eq(parse_text(&c, err, "= 4\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: missing name before \"=\"");
    ck_assert_int_eq(parse_text(&c, err, "--workers = 4\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: unknown option \"--workers\"");
    ck_assert_int_eq(parse_text(&c, err, "config = /etc/x.conf\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: config: only allowed on the command line");
    ck_assert_int_eq(parse_text(&c, err, "\nversion = 1\n"), -1);
    ck_assert_str_eq(err,
                     "t.conf:2: version: only allowed on the command line");
    ck_assert_int_eq(parse_text(&c, err, "help=\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: help: only allowed on the command line");
    ck_assert_int_eq(parse_text(&c, err, "channel = \"abc\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: channel: unterminated quote");
    ck_assert_int_eq(parse_text(&c, err, "channel = \"abc\" x\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: channel: unexpected text after the quote");
    ck_assert_int_eq(parse_text(&c, err, "max events = 3\n"), -1);
    ck_assert_str_eq(err, "t.conf:1: unknown option \"max events\"");
}
END_TEST

START_TEST(file_bad_value_line_7)
{
    struct sc_config c;
    char err[ERRLEN];
    const char *text = "# seatcast.conf\n"
                       "workers = 2\n"
                       "\n"
                       "   # indented comment\n"
                       "listen = 8080\n"
                       "channel = seats\n"
                       "max-events = x\n"
                       "max-subscriptions = 5\n";

    fresh(&c);
    ck_assert_int_eq(parse_text(&c, err, text), -1);
    ck_assert_str_eq(err, "t.conf:7: max-events: not a number: \"x\"");
    /* lines before the bad one were applied, none after */
    ck_assert_int_eq(c.workers, 2);
    ck_assert_str_eq(c.channel, "seats");
    ck_assert_uint_eq(c.max_subscriptions, 100);
}
END_TEST

START_TEST(file_nul_and_long_line)
{
    struct sc_config c;
    char err[ERRLEN];
    static char big[6000];
    const char nul[] = "workers = 2\nchannel = a\0b\n";

    fresh(&c);
    ck_assert_int_eq(sc_config_parse_text(&c, "t.conf", nul, sizeof(nul) - 1,
                                          err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "t.conf:2: NUL byte in line");
    snprintf(big, sizeof(big), "database = ");
    memset(big + 11, 'x', 5000);
    big[5011] = '\0';
    ck_assert_int_eq(parse_text(&c, err, big), -1);
    ck_assert_str_eq(err, "t.conf:1: line too long (max 4095 bytes)");
}
END_TEST

START_TEST(file_comments_and_quotes)
{
    struct sc_config c;
    char err[ERRLEN];
    const char *text =
        "# whole-line comment\n"
        "\t# tab-indented comment\n"
        "   \n"
        "\tworkers\t=\t3\t# trailing comment\n"
        "  channel=seat_x   \n"
        "database = host=db password=a#b   # '#' inside a word is kept\n"
        "jwt-issuer = \"  spaced # not a comment \"   # comment\n"
        "jwt-audience = \"\"\n"
        "pid-file = \"/run/x.pid\"# comment right after the quote\n"
        "shm-name = /s\r\n"
        "log-level = debug #\n"
        "jwt-secret-file = #only a comment\n"
        "max-events = 1000"; /* no final newline */

    fresh(&c);
    snprintf(c.jwt_audience, sizeof(c.jwt_audience), "old");
    snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "old");
    ck_assert_msg(parse_text(&c, err, text) == 0, "%s", err);
    ck_assert_int_eq(c.workers, 3);
    ck_assert_str_eq(c.channel, "seat_x");
    ck_assert_str_eq(c.database, "host=db password=a#b");
    ck_assert_str_eq(c.jwt_issuer, "  spaced # not a comment ");
    ck_assert_str_eq(c.jwt_audience, "");
    ck_assert_str_eq(c.pid_file, "/run/x.pid");
    ck_assert_str_eq(c.shm_name, "/s");
    ck_assert_int_eq(c.log_level, SC_LOG_DEBUG);
    ck_assert_str_eq(c.jwt_secret_file, "");
    ck_assert_uint_eq(c.max_events, 1000);
}
END_TEST

START_TEST(file_empty_and_later_wins)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(parse_text(&c, err, ""), 0);
    ck_assert_int_eq(parse_text(&c, err, "\n\n# only comments\n"), 0);
    ck_assert_int_eq(parse_text(&c, err, "workers = 2\nworkers = 5\n"), 0);
    ck_assert_int_eq(c.workers, 5);
    ck_assert_int_eq(parse_text(&c, err,
                                "listen = 1\nlisten = 2\nallowed-origin = "
                                "http://a\nallowed-origin = http://b\n"),
                     0);
    ck_assert_uint_eq(c.nlisten, 2);
    ck_assert_uint_eq(c.nallowed_origin, 2);
    ck_assert_str_eq(c.allowed_origin[1], "http://b");
}
END_TEST

START_TEST(load_file)
{
    struct sc_config c;
    char err[ERRLEN], path[64], want[ERRLEN];

    write_conf(path, sizeof(path), "workers = 6\nmax-events = 1000\n");
    fresh(&c);
    ck_assert_int_eq(sc_config_load_file(&c, path, err, sizeof(err)), 0);
    ck_assert_int_eq(c.workers, 6);
    ck_assert_uint_eq(c.max_events, 1000);
    unlink(path);

    ck_assert_int_eq(sc_config_load_file(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s: could not read: No such file or "
             "directory",
             path);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(sc_config_load_file(&c, "/tmp", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/tmp: could not read: Is a directory");

    write_conf(path, sizeof(path), "workers = 2\nbogus\n");
    ck_assert_int_eq(sc_config_load_file(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: missing \"=\" in \"bogus\"", path);
    ck_assert_str_eq(err, want);
    unlink(path);
}
END_TEST

START_TEST(load_file_too_large)
{
    struct sc_config c;
    char err[ERRLEN], path[64], want[ERRLEN];
    size_t n = 1024 * 1024 + 1;
    char *text = malloc(n + 1);

    memset(text, '#', n);
    text[n] = '\0';
    write_conf(path, sizeof(path), text);
    free(text);
    fresh(&c);
    ck_assert_int_eq(sc_config_load_file(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: too large (max 1048576 bytes)", path);
    ck_assert_str_eq(err, want);
    unlink(path);
}
END_TEST

/* --- command line and file together ------------------------------------ */

START_TEST(command_line_wins)
{
    struct sc_config c;
    char err[ERRLEN], path[64];

    write_conf(path, sizeof(path),
               "workers = 2\nmax-events = 1000\nlog-format = json\n");
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-c", path, "-w", "3"), 0);
    ck_assert_str_eq(c.config_file, path);
    ck_assert_int_eq(c.workers, 3);
    ck_assert_uint_eq(c.max_events, 1000);
    ck_assert_int_eq(c.log_format, SC_LOG_FORMAT_JSON);
    /* wherever -c stands */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--workers=3", "--config", path), 0);
    ck_assert_int_eq(c.workers, 3);
    ck_assert_uint_eq(c.max_events, 1000);
    /* the last -c wins */
    fresh(&c);
    ck_assert_int_eq(
        PARSE(&c, err, "-c", "/nonexistent", "--config=", "-c", path), -1);
    ck_assert_str_eq(err, "--config: must not be empty: \"\"");
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-c", "/nonexistent", "-c", path), 0);
    ck_assert_uint_eq(c.max_events, 1000);
    unlink(path);
}
END_TEST

START_TEST(config_file_errors_from_argv)
{
    struct sc_config c;
    char err[ERRLEN], path[64], want[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-c", "/nonexistent/seatcast.conf"), -1);
    ck_assert_str_eq(err, "--config: /nonexistent/seatcast.conf: could not "
                          "read: No such file or directory");
    write_conf(path, sizeof(path), "workers = 2\nmax-events = x\n");
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--workers=3", "-c", path), -1);
    snprintf(want, sizeof(want), "%s:2: max-events: not a number: \"x\"", path);
    ck_assert_str_eq(err, want);
    unlink(path);
}
END_TEST

START_TEST(list_replacement)
{
    struct sc_config c;
    char err[ERRLEN], path[64], a[100];

    write_conf(path, sizeof(path),
               "listen = 127.0.0.1:1000\n"
               "listen = [::1]:1001\n"
               "allowed-origin = https://a.example\n"
               "allowed-origin = https://b.example\n"
               "trusted-proxy = 10.0.0.1\n");
    /* no list on the command line: the file's lists stay */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-c", path), 0);
    ck_assert_uint_eq(c.nlisten, 2);
    ck_assert_uint_eq(c.nallowed_origin, 2);
    ck_assert_uint_eq(c.ntrusted_proxy, 1);
    /* a list on the command line replaces the file's, and appends */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "80", "-c", path, "--listen=81",
                           "--allowed-origin", "https://c.example",
                           "--trusted-proxy=10.0.0.2",
                           "--trusted-proxy=10.0.0.3"),
                     0);
    ck_assert_uint_eq(c.nlisten, 2);
    sc_config_format_listen(&c.listen[0], a, sizeof(a));
    ck_assert_str_eq(a, "0.0.0.0:80");
    sc_config_format_listen(&c.listen[1], a, sizeof(a));
    ck_assert_str_eq(a, "0.0.0.0:81");
    ck_assert_uint_eq(c.nallowed_origin, 1);
    ck_assert_str_eq(c.allowed_origin[0], "https://c.example");
    ck_assert_uint_eq(c.ntrusted_proxy, 2);
    ck_assert_str_eq(c.trusted_proxy[0], "10.0.0.2");
    ck_assert_str_eq(c.trusted_proxy[1], "10.0.0.3");
    /* only the list given is replaced */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-c", path, "--trusted-proxy=::1"), 0);
    ck_assert_uint_eq(c.nlisten, 2);
    ck_assert_uint_eq(c.nallowed_origin, 2);
    ck_assert_uint_eq(c.ntrusted_proxy, 1);
    ck_assert_str_eq(c.trusted_proxy[0], "::1");
    unlink(path);
}
END_TEST

START_TEST(list_overflow)
{
    struct sc_config c;
    char err[ERRLEN], v[64];

    fresh(&c);
    for (int i = 0; i < SC_CONFIG_MAX_LISTEN; i++) {
        snprintf(v, sizeof(v), "%d", 1000 + i);
        ck_assert_int_eq(sc_config_set(&c, "listen", v, err, sizeof(err)), 0);
    }
    ck_assert_int_eq(sc_config_set(&c, "listen", "2000", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "listen: too many values (max 16)");
    for (int i = 0; i < SC_CONFIG_MAX_ORIGINS; i++) {
        snprintf(v, sizeof(v), "https://h%d.example", i);
        ck_assert_int_eq(
            sc_config_set(&c, "allowed-origin", v, err, sizeof(err)), 0);
    }
    ck_assert_int_eq(
        sc_config_set(&c, "allowed-origin", "http://x", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "allowed-origin: too many values (max 32)");
    for (int i = 0; i < SC_CONFIG_MAX_PROXIES; i++) {
        snprintf(v, sizeof(v), "10.0.0.%d", i);
        ck_assert_int_eq(
            sc_config_set(&c, "trusted-proxy", v, err, sizeof(err)), 0);
    }
    ck_assert_int_eq(
        sc_config_set(&c, "trusted-proxy", "::1", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "trusted-proxy: too many values (max 32)");
}
END_TEST

/* --- listen forms ------------------------------------------------------- */

START_TEST(listen_forms)
{
    struct sc_listen_addr a;
    char err[ERRLEN], path[200], text[220], out[200];

    ck_assert_int_eq(sc_config_parse_listen("127.0.0.1:3000", &a, err, 512), 0);
    ck_assert_int_eq(a.kind, SC_LISTEN_TCP4);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 3000);

    ck_assert_int_eq(sc_config_parse_listen("80", &a, err, 512), 0);
    ck_assert_int_eq(a.kind, SC_LISTEN_TCP4);
    ck_assert_str_eq(a.host, "");
    ck_assert_uint_eq(a.port, 80);

    ck_assert_int_eq(sc_config_parse_listen("localhost:1", &a, err, 512), 0);
    ck_assert_str_eq(a.host, "127.0.0.1");

    ck_assert_int_eq(sc_config_parse_listen("[fe80::1:2]:65535", &a, err, 512),
                     0);
    ck_assert_int_eq(a.kind, SC_LISTEN_TCP6);
    ck_assert_str_eq(a.host, "fe80::1:2");
    ck_assert_uint_eq(a.port, 65535);

    ck_assert_int_eq(
        sc_config_parse_listen("[::ffff:127.0.0.1]:8", &a, err, 512), 0);
    ck_assert_str_eq(a.host, "::ffff:127.0.0.1");

    ck_assert_int_eq(sc_config_parse_listen("unix:/tmp/s", &a, err, 512), 0);
    ck_assert_int_eq(a.kind, SC_LISTEN_UNIX);
    ck_assert_str_eq(a.path, "/tmp/s");
    ck_assert_uint_eq(a.port, 0);

    /* sun_path holds 108 bytes with the NUL: 107 fit, 108 do not */
    memset(path, 'p', 107);
    path[0] = '/';
    path[107] = '\0';
    snprintf(text, sizeof(text), "unix:%s", path);
    ck_assert_int_eq(sc_config_parse_listen(text, &a, err, 512), 0);
    ck_assert_str_eq(a.path, path);
    sc_config_format_listen(&a, out, sizeof(out));
    ck_assert_str_eq(out, text);
    snprintf(text, sizeof(text), "unix:%sq", path);
    ck_assert_int_eq(sc_config_parse_listen(text, &a, err, 512), -1);
    ck_assert_ptr_nonnull(
        strstr(err, "unix socket path too long (max 107 bytes): \"unix:/"));
    ck_assert_ptr_nonnull(strstr(err, "...\""));

    /* an error leaves *out untouched */
    memset(&a, 0x5a, sizeof(a));
    ck_assert_int_eq(sc_config_parse_listen(":0", &a, err, 512), -1);
    ck_assert_str_eq(err, "missing host: \":0\"");
    ck_assert_int_eq(a.port, 0x5a5a);
    ck_assert_int_eq(sc_config_parse_listen("1:2", &a, NULL, 0), -1);
}
END_TEST

START_TEST(format_listen)
{
    struct sc_listen_addr a;
    char out[200], small[6];
    const char *const forms[] = {"127.0.0.1:3000", "[::1]:3000",
                                 "unix:/run/seatcast.sock", "0.0.0.0:80",
                                 "[::]:443"};

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ck_assert_int_eq(sc_config_parse_listen(forms[i], &a, NULL, 0), 0);
        sc_config_format_listen(&a, out, sizeof(out));
        ck_assert_str_eq(out, forms[i]);
    }
    ck_assert_int_eq(sc_config_parse_listen("8080", &a, NULL, 0), 0);
    sc_config_format_listen(&a, out, sizeof(out));
    ck_assert_str_eq(out, "0.0.0.0:8080");
    sc_config_format_listen(&a, small, sizeof(small));
    ck_assert_str_eq(small, "0.0.0");
}
END_TEST

/* --- finish: derived defaults ------------------------------------------ */

START_TEST(shm_name_default)
{
    struct sc_config c;
    char err[ERRLEN], first[256];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "8080"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "/seatcast-8080");

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "[::1]:9000", "-l", "80"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "/seatcast-9000");

    /* the first listener decides, even when a TCP one follows */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:/run/a.sock", "-l", "80"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_int_eq(strncmp(c.shm_name, "/seatcast-unix-", 15), 0);
    ck_assert_uint_eq(strlen(c.shm_name), 23);
    ck_assert_uint_eq(strspn(c.shm_name + 15, "0123456789abcdef"), 8);
    snprintf(first, sizeof(first), "%s", c.shm_name);
    /* stable for a path, different for another */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:/run/a.sock"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, first);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:/run/b.sock"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_ne(c.shm_name, first);
    /* FNV-1a 32 of "" is 811c9dc5: check the hash is the documented one */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:a"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "/seatcast-unix-e40c292c");

    /* an explicit name is kept */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "81", "--shm-name", "/mine"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.shm_name, "/mine");
}
END_TEST

START_TEST(slot_default)
{
    struct sc_config c;
    char err[ERRLEN], first[64];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "8080"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "Web-01.Example.com");
    ck_assert_str_eq(c.slot, "seatcast_web_01_example_com_8080");
    /* another port, another slot */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "8081"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "Web-01.Example.com");
    ck_assert_str_eq(c.slot, "seatcast_web_01_example_com_8081");
    /* a long host name is cut, the port kept, 63 bytes at most */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "65535"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "a-very-long-host-name-that-goes-on.and-on."
                               "and-on.example.org");
    ck_assert_uint_eq(strlen(c.slot), 63);
    ck_assert_str_eq(c.slot + 57, "_65535");
    ck_assert_int_eq(sc_config_set(&c, "slot", c.slot, err, sizeof(err)), 0);
    /* no host name at all */
    fresh(&c);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "");
    ck_assert_str_eq(c.slot, "seatcast__3000");
    /* unix listeners: a hash of the path */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:/run/a.sock"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "h");
    snprintf(first, sizeof(first), "%s", c.slot);
    ck_assert_int_eq(strncmp(first, "seatcast_h_u", 12), 0);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:/run/b.sock"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "h");
    ck_assert_str_ne(c.slot, first);
    /* an explicit slot is kept */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--slot", "mine"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    sc_config_default_slot(&c, "h");
    ck_assert_str_eq(c.slot, "mine");
    ck_assert_str_eq(sc_config_source_name(SC_SOURCE_LOGICAL), "logical");
    ck_assert_str_eq(sc_config_source_name(SC_SOURCE_NOTIFY), "notify");
}
END_TEST

START_TEST(finish_duplicates)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "80", "-l", "0.0.0.0:80"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "listen: duplicate address \"0.0.0.0:80\"");
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "localhost:80", "-l", "[::1]:80",
                           "-l", "127.0.0.1:80"),
                     0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "listen: duplicate address \"127.0.0.1:80\"");
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "unix:/s", "-l", "unix:/s"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "listen: duplicate address \"unix:/s\"");
    /* same port on two families is fine */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-l", "127.0.0.1:80", "-l", "[::1]:80"), 0);
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
}
END_TEST

/* --- getopt plumbing ---------------------------------------------------- */

START_TEST(unknown_option)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--foo"), -1);
    ck_assert_str_eq(err, "unknown option \"--foo\"");
    ck_assert_int_eq(PARSE(&c, err, "--foo=bar"), -1);
    ck_assert_str_eq(err, "unknown option \"--foo\"");
    ck_assert_int_eq(PARSE(&c, err, "-w", "2", "-x"), -1);
    ck_assert_str_eq(err, "unknown option \"-x\"");
    ck_assert_int_eq(PARSE(&c, err, "-tx"), -1);
    ck_assert_str_eq(err, "unknown option \"-x\"");
    /* ambiguous prefix */
    ck_assert_int_eq(PARSE(&c, err, "--max=3"), -1);
    ck_assert_str_eq(err, "unknown option \"--max\"");
    /* -t has no long form */
    ck_assert_int_eq(PARSE(&c, err, "--test"), -1);
    ck_assert_str_eq(err, "unknown option \"--test\"");
    /* flags take no value */
    ck_assert_int_eq(PARSE(&c, err, "--help=yes"), -1);
    ck_assert_str_eq(err, "--help: takes no value");
    ck_assert_int_eq(PARSE(&c, err, "--version=1"), -1);
    ck_assert_str_eq(err, "--version: takes no value");
    /* the unknown option is reported before the file is read */
    ck_assert_int_eq(PARSE(&c, err, "-c", "/nonexistent", "--foo"), -1);
    ck_assert_str_eq(err, "unknown option \"--foo\"");
}
END_TEST

START_TEST(positional_arguments)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "stats"), -1);
    ck_assert_str_eq(err, "unexpected argument \"stats\"");
    ck_assert_int_eq(PARSE(&c, err, "-w", "2", "extra", "-t"), -1);
    ck_assert_str_eq(err, "unexpected argument \"extra\"");
    ck_assert_int_eq(PARSE(&c, err, "--", "x"), -1);
    ck_assert_str_eq(err, "unexpected argument \"x\"");
    ck_assert_int_eq(PARSE(&c, err, "-"), -1);
    ck_assert_str_eq(err, "unexpected argument \"-\"");
    ck_assert_int_eq(PARSE(&c, err, "-w", "2", "--"), 0);
}
END_TEST

START_TEST(missing_value)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "--workers"), -1);
    ck_assert_str_eq(err, "--workers: missing value");
    ck_assert_int_eq(PARSE(&c, err, "-t", "-w"), -1);
    ck_assert_str_eq(err, "--workers: missing value");
    ck_assert_int_eq(PARSE(&c, err, "--listen"), -1);
    ck_assert_str_eq(err, "--listen: missing value");
    ck_assert_int_eq(PARSE(&c, err, "-c"), -1);
    ck_assert_str_eq(err, "--config: missing value");
    ck_assert_int_eq(PARSE(&c, err, "--max-connections-per-user"), -1);
    ck_assert_str_eq(err, "--max-connections-per-user: missing value");
    ck_assert_int_eq(PARSE(&c, err, "--pid-file"), -1);
    ck_assert_str_eq(err, "--pid-file: missing value");
    /* the next word is the value, even when it looks like an option */
    ck_assert_int_eq(PARSE(&c, err, "--database", "-w"), 0);
    ck_assert_str_eq(c.database, "-w");
}
END_TEST

START_TEST(parse_twice)
{
    struct sc_config c;
    char err[ERRLEN], path[64];

    /* an error midway leaves getopt inside argv: the next call resets */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-tw", "0", "-l", "81"), -1);
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-w", "5", "-l", "82"), 0);
    ck_assert_int_eq(c.workers, 5);
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_uint_eq(c.listen[0].port, 82);
    ck_assert(!c.test_only);

    /* a reload: same argv, file changed in between */
    write_conf(path, sizeof(path), "max-events = 100\n");
    for (int round = 0; round < 3; round++) {
        fresh(&c);
        ck_assert_int_eq(PARSE(&c, err, "-c", path, "-l", "83"), 0);
        ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
        ck_assert_uint_eq(c.max_events, 100);
        ck_assert_uint_eq(c.nlisten, 1);
        ck_assert_str_eq(c.shm_name, "/seatcast-83");
    }
    unlink(path);
}
END_TEST

START_TEST(test_flag)
{
    struct sc_config c;
    char err[ERRLEN], path[64];

    write_conf(path, sizeof(path), "workers = 9\n");
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-t", "-c", path), 0);
    ck_assert(c.test_only);
    ck_assert_int_eq(c.workers, 9);
    /* -t still reports a bad configuration */
    fresh(&c);
    ck_assert_int_eq(PARSE(&c, err, "-t", "--max-events=1"), -1);
    ck_assert_str_eq(err, "--max-events: must be between 16 and 16777216, got "
                          "\"1\"");
    unlink(path);
}
END_TEST

/* --- the shipped example file ------------------------------------------ */

/* Every "#name = value" line of etc/seatcast.conf, uncommented. */
static size_t
example_lines(FILE *f, char *text, size_t cap)
{
    char line[512];
    size_t len = 0, n;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] != '#' || line[1] < 'a' || line[1] > 'z') {
            continue;
        }
        n = strlen(line + 1);
        ck_assert_uint_lt(len + n, cap);
        memcpy(text + len, line + 1, n + 1);
        len += n;
    }
    return len;
}

START_TEST(example_file_shows_defaults)
{
    struct sc_config c, d;
    char err[ERRLEN], text[8192];
    FILE *f = fopen("etc/seatcast.conf", "r");
    size_t len;

    if (f == NULL) {
        return; /* run from elsewhere than the source tree: nothing to read */
    }
    len = example_lines(f, text, sizeof(text));
    fclose(f);
    fresh(&c);
    fresh(&d);
    ck_assert_msg(sc_config_parse_text(&c, "etc/seatcast.conf", text, len, err,
                                       sizeof(err)) == 0,
                  "%s", err);
    /* the lines shown as examples rather than defaults */
    c.workers = d.workers;
    memcpy(c.database, d.database, sizeof(c.database));
    memcpy(c.slot, d.slot, sizeof(c.slot));
    c.nallowed_origin = 0;
    memset(c.allowed_origin, 0, sizeof(c.allowed_origin));
    c.ntrusted_proxy = 0;
    memset(c.trusted_proxy, 0, sizeof(c.trusted_proxy));
    ck_assert_int_eq(sc_config_finish(&c, err, sizeof(err)), 0);
    ck_assert_int_eq(sc_config_finish(&d, err, sizeof(err)), 0);
    ck_assert_mem_eq(&c, &d, sizeof(c));
}
END_TEST

/* --- usage -------------------------------------------------------------- */

START_TEST(usage_text)
{
    const char *u = sc_config_usage();
    const char *const longs[] = {"config",
                                 "listen",
                                 "workers",
                                 "database",
                                 "channel",
                                 "source",
                                 "publication",
                                 "slot",
                                 "jwt-secret-file",
                                 "jwt-public-key",
                                 "jwt-issuer",
                                 "jwt-audience",
                                 "jwt-leeway",
                                 "allowed-origin",
                                 "trusted-proxy",
                                 "max-connections",
                                 "max-connections-per-user",
                                 "max-subscriptions",
                                 "max-message-rate",
                                 "max-message-size",
                                 "max-events",
                                 "ping-interval",
                                 "handshake-timeout",
                                 "send-buffer-limit",
                                 "io-uring",
                                 "shutdown-timeout",
                                 "shm-name",
                                 "log-level",
                                 "log-format",
                                 "pid-file",
                                 "version",
                                 "help"};
    char needle[64];
    const char *line = u;

    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        snprintf(needle, sizeof(needle), "  --%s", longs[i]);
        if (strstr(u, needle) == NULL) {
            snprintf(needle, sizeof(needle), ", --%s", longs[i]);
        }
        ck_assert_msg(strstr(u, needle) != NULL, "usage lacks --%s", longs[i]);
    }
    ck_assert_ptr_nonnull(strstr(u, "seatcast -t [-c FILE]"));
    ck_assert_ptr_nonnull(strstr(u, "seatcast stats [--json]"));
    ck_assert_ptr_nonnull(strstr(u, "seatcast token --sub ID"));
    ck_assert_ptr_nonnull(strstr(u, "[127.0.0.1:3000]"));
    /* one option per line, and every line fits a terminal */
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_int_le(nl - line, 79);
        line = nl + 1;
    }
}
END_TEST

/* --trusted-proxy matching: what a peer address is compared with. */
START_TEST(proxy_trusted_matching)
{
    struct sc_config c;
    char err[ERRLEN];

    fresh(&c);
    ck_assert(!sc_config_proxy_trusted(&c, "127.0.0.1"));
    ck_assert_int_eq(sc_config_set(&c, "trusted-proxy", "10.1.0.0/16", err,
                                   sizeof(err)), 0);
    ck_assert_int_eq(sc_config_set(&c, "trusted-proxy", "127.0.0.1", err,
                                   sizeof(err)), 0);
    ck_assert_int_eq(sc_config_set(&c, "trusted-proxy", "2001:db8::/36", err,
                                   sizeof(err)), 0);
    ck_assert_int_eq(sc_config_set(&c, "trusted-proxy", "192.0.2.128/25",
                                   err, sizeof(err)), 0);
    ck_assert(sc_config_proxy_trusted(&c, "127.0.0.1"));
    ck_assert(!sc_config_proxy_trusted(&c, "127.0.0.2"));
    ck_assert(sc_config_proxy_trusted(&c, "10.1.255.3"));
    ck_assert(!sc_config_proxy_trusted(&c, "10.2.0.1"));
    ck_assert(sc_config_proxy_trusted(&c, "192.0.2.200"));
    ck_assert(!sc_config_proxy_trusted(&c, "192.0.2.127"));
    ck_assert(sc_config_proxy_trusted(&c, "2001:db8:fff::1"));
    ck_assert(!sc_config_proxy_trusted(&c, "2001:db9::1"));
    /* no cross-family match, no garbage, no block as an address */
    ck_assert(!sc_config_proxy_trusted(&c, "::ffff:127.0.0.1"));
    ck_assert(!sc_config_proxy_trusted(&c, "not-an-ip"));
    ck_assert(!sc_config_proxy_trusted(&c, "10.1.0.0/16"));
    ck_assert_int_eq(sc_config_set(&c, "trusted-proxy", "0.0.0.0/0", err,
                                   sizeof(err)), 0);
    ck_assert(sc_config_proxy_trusted(&c, "203.0.113.9"));
    ck_assert(!sc_config_proxy_trusted(&c, "2001:db9::1"));
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults);
    tcase_add_test(tc, slot_default);
    tcase_add_test(tc, defaults_workers_clamped);
    tcase_add_test(tc, empty_argv);
    tcase_add_loop_test(tc, good_value_argv_equals, 0, NGOODS);
    tcase_add_loop_test(tc, good_value_argv_separate, 0, NGOODS);
    tcase_add_loop_test(tc, good_value_file, 0, NGOODS);
    tcase_add_test(tc, short_options);
    tcase_add_test(tc, flags);
    tcase_add_test(tc, abbreviated_long_option);
    tcase_add_loop_test(tc, bad_value_argv_equals, 0, NBADS);
    tcase_add_loop_test(tc, bad_value_argv_separate, 0, NBADS);
    tcase_add_loop_test(tc, bad_value_file, 0, NBADS);
    tcase_add_test(tc, bad_value_keeps_old);
    tcase_add_test(tc, whitespace_on_command_line);
    tcase_add_test(tc, too_long_values);
    tcase_add_test(tc, message_quotes_safely);
    tcase_add_test(tc, set_api);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, file_bad_value_line_7);
    tcase_add_test(tc, file_nul_and_long_line);
    tcase_add_test(tc, file_comments_and_quotes);
    tcase_add_test(tc, file_empty_and_later_wins);
    tcase_add_test(tc, load_file);
    tcase_add_test(tc, load_file_too_large);
    tcase_add_test(tc, command_line_wins);
    tcase_add_test(tc, config_file_errors_from_argv);
    tcase_add_test(tc, list_replacement);
    tcase_add_test(tc, list_overflow);
    tcase_add_test(tc, listen_forms);
    tcase_add_test(tc, format_listen);
    tcase_add_test(tc, shm_name_default);
    tcase_add_test(tc, finish_duplicates);
    tcase_add_test(tc, unknown_option);
    tcase_add_test(tc, positional_arguments);
    tcase_add_test(tc, missing_value);
    tcase_add_test(tc, parse_twice);
    tcase_add_test(tc, test_flag);
    tcase_add_test(tc, example_file_shows_defaults);
    tcase_add_test(tc, usage_text);
    tcase_add_test(tc, proxy_trusted_matching);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
