/*
 * reload.h - SIGHUP: one way to re-read the configuration and the keys
 *
 * The master alone reads the files.  sc_reload_read() parses the command
 * line and the config file again, keeps the settings fixed at start, and
 * reads the key material the new configuration names; the master makes its
 * keys from that material and, when both are good, packs the snapshot with
 * sc_reload_pack() into an anonymous memory file that it passes to every
 * worker over its channel.  A worker takes the snapshot with
 * sc_reload_unpack(): the same configuration and the same key bytes the
 * master checked, never a file read again (which could have changed in
 * between).  A worker started later inherits the master's snapshot across
 * fork().
 *
 * Glue: files, memfd, no logging (messages go to the caller's buffer).
 */
#ifndef SC_RELOAD_H
#define SC_RELOAD_H

#include <stddef.h>
#include <stdint.h>

struct sc_config;
struct sc_jwt_keys;

/* What a reload read: the configuration and the key material. */
struct sc_reload {
    struct sc_config *cfg; /* owned */
    uint8_t *secret;       /* owned, wiped on free; NULL: none */
    size_t secret_len;
    char *pem;             /* owned; NULL: none */
    size_t pem_len;
};

/*
 * Parses argv (and the config file it names) into a fresh configuration,
 * with the settings that cannot change while running (listeners, workers,
 * --max-events, --shm-name, --pid-file) taken from `running`, then reads
 * the key files it names.  Returns 0, or -1 with a message in err and
 * nothing held.
 */
int sc_reload_read(struct sc_reload *r, const struct sc_config *running,
                   int argc, char **argv, char *err, size_t errlen);

/* The keys of the material; NULL with a message in err. */
struct sc_jwt_keys *sc_reload_keys(const struct sc_reload *r, char *err,
                                   size_t errlen);

/* Frees what r holds (the secret wiped first).  Idempotent. */
void sc_reload_fini(struct sc_reload *r);

/* Writes r into a new sealed memory file; its descriptor, or -1 (errno). */
int sc_reload_pack(const struct sc_reload *r);

/*
 * Reads a snapshot written by sc_reload_pack() from fd (not closed) into
 * r.  Returns 0, or -1 with a message in err and nothing held.
 */
int sc_reload_unpack(int fd, struct sc_reload *r, char *err, size_t errlen);

#endif /* SC_RELOAD_H */
