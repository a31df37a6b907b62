/*
 * proc.h - process helpers: titles in ps and /proc/PID/comm, signal
 * dispositions around fork, the pid file
 *
 * Process code only (master and its children).
 */
#ifndef SC_PROC_H
#define SC_PROC_H

#include <sys/types.h>

/*
 * Records where argv (and the environment after it) live, so that
 * sc_proc_set_title() can overwrite that area as nginx does.  Moves the
 * environment to the heap.  Call once, after argv has been parsed and
 * copied: argv's strings are clobbered by the first title.
 */
void sc_proc_title_init(int argc, char **argv);

/* Sets the ps title ("seatcast: worker 0") and comm ("sc-worker-0"). */
void sc_proc_set_title(const char *title, const char *comm);

/*
 * In a freshly forked child: default dispositions for the signals the
 * master handles, an empty signal mask, and SIGTERM when the master dies.
 * Returns -1 if the master is already gone (the child should exit).
 */
int sc_proc_child_init(pid_t master);

/* Writes "PID\n" to path atomically (temp file + rename). 0 or -1. */
int sc_proc_write_pid_file(const char *path, pid_t pid);

/*
 * Raises the soft limit on open files to the hard limit (as nginx's
 * worker_rlimit_nofile would): every connection is a descriptor, and the
 * usual soft limit of 1024 is far below what a worker holds.  Logs the
 * limit in force.
 */
void sc_proc_raise_nofile(void);

/* Number of online CPUs, at least 1. */
int sc_proc_ncpu(void);

#endif /* SC_PROC_H */
