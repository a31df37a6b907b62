/*
 * reload.c - re-reading the configuration and keys (see reload.h)
 *
 * The snapshot file: a header (magic, the size of struct sc_config, the
 * secret's and the PEM's lengths), then the struct's bytes (plain data:
 * config.h), the secret, the PEM.  Master and workers run the same
 * binary, so the struct's layout is the same on both sides; the size is
 * checked all the same.
 */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "jwt.h"
#include "proc.h"
#include "secret.h"

#define SNAP_MAGIC 0x73637266u /* "scrf" */

struct snap_header {
    uint32_t magic;
    uint32_t cfg_size;
    uint64_t secret_len;
    uint64_t pem_len;
};

void
sc_reload_fini(struct sc_reload *r)
{
    if (r->secret != NULL) {
        OPENSSL_cleanse(r->secret, r->secret_len);
        free(r->secret);
    }
    free(r->pem);
    free(r->cfg);
    memset(r, 0, sizeof(*r));
}

int
sc_reload_read(struct sc_reload *r, const struct sc_config *running,
               int argc, char **argv, char *err, size_t errlen)
{
    struct sc_config *fresh = malloc(sizeof(*fresh));

    memset(r, 0, sizeof(*r));
    if (fresh == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sc_config_defaults(fresh, sc_proc_ncpu());
    if (sc_config_parse_argv(fresh, argc, argv, err, errlen) != 0 ||
        sc_config_finish(fresh, err, errlen) != 0) {
        free(fresh);
        return -1;
    }
    /* fixed at start: the sockets, the processes, the registry */
    memcpy(fresh->listen, running->listen, sizeof(fresh->listen));
    fresh->nlisten = running->nlisten;
    fresh->workers = running->workers;
    fresh->max_events = running->max_events;
    memcpy(fresh->shm_name, running->shm_name, sizeof(fresh->shm_name));
    memcpy(fresh->pid_file, running->pid_file, sizeof(fresh->pid_file));
    r->cfg = fresh;
    if (sc_secret_read_material(fresh, &r->secret, &r->secret_len, &r->pem,
                                &r->pem_len, err, errlen) != 0) {
        sc_reload_fini(r);
        return -1;
    }
    return 0;
}

struct sc_jwt_keys *
sc_reload_keys(const struct sc_reload *r, char *err, size_t errlen)
{
    return sc_jwt_keys_new(r->secret, r->secret_len, r->pem, r->pem_len, err,
                           errlen);
}

static int
write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int
sc_reload_pack(const struct sc_reload *r)
{
    struct snap_header h = {.magic = SNAP_MAGIC,
                            .cfg_size = (uint32_t)sizeof(*r->cfg),
                            .secret_len = r->secret_len,
                            .pem_len = r->pem_len};
    int fd = memfd_create("seatcast-reload", MFD_CLOEXEC |
                                                 MFD_ALLOW_SEALING);

    if (fd < 0) {
        return -1;
    }
    if (write_all(fd, &h, sizeof(h)) != 0 ||
        write_all(fd, r->cfg, sizeof(*r->cfg)) != 0 ||
        write_all(fd, r->secret, r->secret_len) != 0 ||
        write_all(fd, r->pem, r->pem_len) != 0 ||
        /* no one may change it after the master checked it */
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                   F_SEAL_SEAL) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int
read_at(int fd, void *p, size_t n, off_t off)
{
    uint8_t *b = p;

    while (n > 0) {
        ssize_t got = pread(fd, b, n, off);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return -1;
        }
        b += got;
        n -= (size_t)got;
        off += got;
    }
    return 0;
}

int
sc_reload_unpack(int fd, struct sc_reload *r, char *err, size_t errlen)
{
    struct snap_header h;
    off_t off = sizeof(h);

    memset(r, 0, sizeof(*r));
    if (read_at(fd, &h, sizeof(h), 0) != 0 || h.magic != SNAP_MAGIC ||
        h.cfg_size != sizeof(*r->cfg) || h.secret_len > (1u << 20) ||
        h.pem_len > (1u << 20)) {
        snprintf(err, errlen, "unreadable configuration snapshot");
        return -1;
    }
    r->cfg = malloc(sizeof(*r->cfg));
    r->secret = h.secret_len ? malloc(h.secret_len) : NULL;
    r->pem = h.pem_len ? malloc(h.pem_len) : NULL;
    r->secret_len = h.secret_len;
    r->pem_len = h.pem_len;
    if (r->cfg == NULL || (h.secret_len && r->secret == NULL) ||
        (h.pem_len && r->pem == NULL)) {
        snprintf(err, errlen, "out of memory");
        sc_reload_fini(r);
        return -1;
    }
    if (read_at(fd, r->cfg, sizeof(*r->cfg), off) != 0 ||
        read_at(fd, r->secret, r->secret_len,
                off + (off_t)sizeof(*r->cfg)) != 0 ||
        read_at(fd, r->pem, r->pem_len,
                off + (off_t)(sizeof(*r->cfg) + r->secret_len)) != 0) {
        snprintf(err, errlen, "unreadable configuration snapshot");
        sc_reload_fini(r);
        return -1;
    }
    return 0;
}
