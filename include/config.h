/*
 * config.h - seatcast configuration: command line and config file
 *
 * One struct sc_config holds every option of seatcast(8) (docs/PROTOCOL.md
 * section 8).  It is filled from defaults, then the config file (-c FILE),
 * then the command line, which wins.  Parsing never logs and never exits:
 * errors are written as one line
 * ("--workers: not a number: \"x\"" or "FILE:LINE: unknown option \"foo\"")
 * into a caller buffer, for main() to print and exit 2.
 *
 * Called by main() in the master, before any fork, and again by the
 * master on SIGHUP (reload.c).  The struct is plain data owned by its caller: no pointer in it
 * points into argv or into the file text.
 */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SC_CONFIG_MAX_LISTEN 16
#define SC_CONFIG_MAX_ORIGINS 32
#define SC_CONFIG_MAX_PROXIES 32
#define SC_CONFIG_PATH_MAX 1024
#define SC_CONFIG_STR_MAX 512
#define SC_MAX_WORKERS 64

enum sc_listen_kind { SC_LISTEN_TCP4, SC_LISTEN_TCP6, SC_LISTEN_UNIX };

struct sc_listen_addr {
    enum sc_listen_kind kind;
    char host[64];                   /* numeric or name; "" = any */
    uint16_t port;                   /* TCP only */
    char path[108];                  /* unix: only */
};

enum sc_log_format { SC_LOG_FORMAT_TEXT, SC_LOG_FORMAT_JSON };
enum sc_io_uring { SC_IO_URING_OFF, SC_IO_URING_ON };

/* Where the listener learns of changes (SPEC section 7). */
enum sc_source { SC_SOURCE_NOTIFY, SC_SOURCE_LOGICAL };

/* A replication slot name: [a-z0-9_], at most 63 bytes (NAMEDATALEN). */
#define SC_CONFIG_SLOT_MAX 63

struct sc_config {
    char config_file[SC_CONFIG_PATH_MAX]; /* "" = none */
    struct sc_listen_addr listen[SC_CONFIG_MAX_LISTEN];
    size_t nlisten;                  /* default: 127.0.0.1:3000 */
    int workers;                     /* default: number of CPUs, 1..64 */
    char database[SC_CONFIG_STR_MAX]; /* libpq conninfo; "" = PG* env */
    char channel[64];                /* default "seatcast", SQL identifier */
    enum sc_source source;           /* default notify */
    char publication[64];            /* default "seatcast", SQL identifier */
    char slot[SC_CONFIG_SLOT_MAX + 1]; /* default seatcast_HOST_PORT */
    char jwt_secret_file[SC_CONFIG_PATH_MAX];
    char jwt_public_key[SC_CONFIG_PATH_MAX];
    char jwt_issuer[256];
    char jwt_audience[256];
    int jwt_leeway;                  /* seconds, default 5 */
    char allowed_origin[SC_CONFIG_MAX_ORIGINS][256];
    size_t nallowed_origin;
    char trusted_proxy[SC_CONFIG_MAX_PROXIES][64]; /* IP or CIDR */
    size_t ntrusted_proxy;
    uint32_t max_connections;        /* default 100000 */
    uint32_t max_connections_per_user; /* default 0 = no limit */
    uint32_t max_subscriptions;      /* default 100 */
    uint32_t max_message_rate;       /* default 50 per second */
    uint32_t max_message_size;       /* default 16384 bytes */
    uint32_t max_events;             /* default 65536 */
    uint32_t ping_interval;          /* seconds, default 30 */
    uint32_t handshake_timeout;      /* seconds, default 10 */
    uint64_t send_buffer_limit;      /* bytes, default 1 MiB */
    uint32_t max_lag;                /* ms an event's changes may wait in a
                                        worker before they merge, default
                                        100; 0 = never merge */
    enum sc_io_uring io_uring;       /* batched writes, default on */
    uint32_t shutdown_timeout;       /* seconds, default 10 */
    char shm_name[256];              /* default "/seatcast-PORT" */
    int log_level;                   /* SC_LOG_* of log.h, default info */
    enum sc_log_format log_format;   /* default text */
    char pid_file[SC_CONFIG_PATH_MAX];
    bool test_only;                  /* -t */
    bool show_version;               /* --version */
    bool show_help;                  /* --help */
};

/*
 * Fills cfg with the defaults of seatcast(8).  ncpu is the number of
 * CPUs (the default of --workers), passed in so that the module stays pure.
 */
void sc_config_defaults(struct sc_config *cfg, int ncpu);

/*
 * Sets option `name` (long name without dashes, e.g. "max-events") to the
 * text `value`.  Returns 0, or -1 with a message (without the location)
 * in err.  "listen", "allowed-origin" and "trusted-proxy" append.
 */
int sc_config_set(struct sc_config *cfg, const char *name, const char *value,
                  char *err, size_t errlen);

/*
 * Parses config file text (name = value lines, '#' comments, blank lines).
 * `file` names the file in messages: "FILE:LINE: ...".  Returns 0 or -1.
 */
int sc_config_parse_text(struct sc_config *cfg, const char *file,
                         const char *text, size_t len, char *err,
                         size_t errlen);

/* Reads and parses a config file; -1 with "FILE: could not read: ..." */
int sc_config_load_file(struct sc_config *cfg, const char *path, char *err,
                        size_t errlen);

/*
 * Parses argv (after a subcommand, if any, has been removed) with
 * getopt_long: first finds -c/--config and loads it, then applies every
 * other option so that the command line wins.  Returns 0 or -1 with
 * "--flag: problem" in err.  Positional arguments are an error.
 */
int sc_config_parse_argv(struct sc_config *cfg, int argc, char **argv,
                         char *err, size_t errlen);

/*
 * Checks cross-option consistency after everything is parsed and fills
 * derived defaults (shm_name from the first listener's port, listen
 * default).  Returns 0 or -1 with a message.
 */
int sc_config_finish(struct sc_config *cfg, char *err, size_t errlen);

/*
 * Fills cfg->slot, if no --slot was given, with "seatcast_HOST_PORT": the
 * host name and the first listener's port (unix: a hash of its path),
 * lowercased, every other character made '_', cut to a valid slot name.
 * Pure: the caller passes gethostname()'s answer.  Call after
 * sc_config_finish().
 */
void sc_config_default_slot(struct sc_config *cfg, const char *hostname);

/* "notify" or "logical". */
const char *sc_config_source_name(enum sc_source s);

/* Parses "HOST:PORT", "[V6]:PORT", "PORT" or "unix:PATH". 0 or -1. */
int sc_config_parse_listen(const char *text, struct sc_listen_addr *out,
                           char *err, size_t errlen);

/* Writes "127.0.0.1:3000", "[::1]:3000" or "unix:/path" into out. */
void sc_config_format_listen(const struct sc_listen_addr *a, char *out,
                             size_t outlen);

/*
 * True if the address `ip` (IPv4 or IPv6 text) lies in one of the
 * --trusted-proxy blocks.  An address of one family never matches a block
 * of the other.
 */
bool sc_config_proxy_trusted(const struct sc_config *cfg, const char *ip);

/* The text of --help. */
const char *sc_config_usage(void);

#endif /* SC_CONFIG_H */
