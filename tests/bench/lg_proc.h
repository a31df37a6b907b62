/*
 * lg_proc.h - memory and CPU of one seatcast server, read from /proc
 *
 * A server is its master (the pid the driver started) and the children
 * whose /proc/PID/comm starts with "sc-" (sc-worker-N, sc-listener; SPEC
 * 1).  Other seatcast servers on the machine (test suites) are left out
 * because their master is another pid.  Called by loadgen.c between
 * phases, never while a phase is being timed.
 */
#ifndef LG_PROC_H
#define LG_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* One reading of every process of the server. */
struct lg_proc_sample {
    uint64_t pss_kib;   /* sum of Pss from /proc/PID/smaps_rollup */
    uint64_t cpu_ticks; /* sum of utime + stime, in clock ticks */
    uint64_t run_ns;    /* sum of /proc/PID/schedstat time on CPU, ns */
    unsigned nprocs;    /* processes found */
};

/*
 * Fills *s for the server whose master is `master`.  Returns 0, or -1 if
 * /proc cannot be read or the master is not found (message on stderr).
 */
int lg_proc_sample(pid_t master, struct lg_proc_sample *s);

/* Nanoseconds per clock tick (sysconf(_SC_CLK_TCK)). */
uint64_t lg_proc_tick_ns(void);

#endif /* LG_PROC_H */
