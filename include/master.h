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

struct sc_config;
struct sc_jwt_keys;

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
