/*
 * master.h - the seatcast master process
 *
 * Binds the listeners, creates the registry, forks the workers and the
 * listener, accepts connections and hands each to the least-loaded worker,
 * respawns children that die (repairing the registry first), and stops
 * everything on SIGTERM/SIGINT.  It never speaks WebSocket or PostgreSQL.
 */
#ifndef SC_MASTER_H
#define SC_MASTER_H

#include <sys/types.h>

struct sc_config;
struct sc_jwt_keys;
struct sc_registry;

/* What a child gets from the master (inherited across fork). */
struct sc_child_ctx {
    const struct sc_config *cfg; /* the master's snapshot */
    const struct sc_jwt_keys *keys; /* the master's keys (a child copies
                                       them at fork: no file is re-read) */
    struct sc_registry *reg;     /* mapped read-write */
    unsigned index;              /* worker number */
    int channel;                 /* worker: its end of the channel */
    int wake_fd;                 /* worker: its eventfd */
    const int *wake_fds;         /* listener: every worker's eventfd */
    unsigned nworkers;
    pid_t master;
    int argc;     /* argv copy, for SIGHUP re-reading */
    char **argv;
};

/*
 * Runs the master until it stops.  argv is a private copy of the command
 * line (after any subcommand), kept for SIGHUP.  *keys are the verified
 * JWT keys; the master owns them from now on (replaced on reload, freed
 * at exit, *keys updated).  Returns the exit status:
 * 0 after a graceful stop, 1 on a runtime failure, 2 when the registry or
 * a listener belongs to another running instance or cannot be set up.
 */
int sc_master_run(struct sc_config *cfg, struct sc_jwt_keys **keys, int argc,
                  char **argv);

#endif /* SC_MASTER_H */
