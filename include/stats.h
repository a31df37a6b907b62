/*
 * stats.h - `seatcast stats`: print a running server's registry from
 * outside, without connecting to it
 */
#ifndef SC_STATS_H
#define SC_STATS_H

/* Runs the subcommand; argv[0] is "stats".  Returns the exit status. */
int sc_stats_main(int argc, char **argv);

#endif /* SC_STATS_H */
