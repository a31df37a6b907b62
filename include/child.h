/*
 * child.h - what a child process (worker or listener) gets from the master
 *
 * Plain data, inherited across fork(): the child reads it, never the
 * master's own state.  Kept apart from master.h so that the children do
 * not depend on the master's interface.
 */
#ifndef SC_CHILD_H
#define SC_CHILD_H

#include <sys/types.h>

struct sc_config;
struct sc_jwt_keys;
struct sc_registry;

struct sc_child_ctx {
    const struct sc_config *cfg; /* the master's snapshot (in force) */
    const struct sc_jwt_keys *keys; /* the master's keys (a child copies
                                       them at fork: no file is re-read) */
    struct sc_registry *reg;     /* mapped read-write */
    unsigned index;              /* worker number */
    int channel;                 /* worker: its end of the channel */
    int wake_fd;                 /* worker: its eventfd */
    const int *wake_fds;         /* listener: every worker's eventfd */
    unsigned nworkers;
    pid_t master;
};

#endif /* SC_CHILD_H */
