/*
 * clock.h - the process clocks, in milliseconds
 *
 * Monotonic time for deadlines and intervals, wall time for what clients
 * and logs see (timestamps, token expiry).  Not part of the registry:
 * the shared memory holds values read from these, never the clocks.
 */
#ifndef SC_CLOCK_H
#define SC_CLOCK_H

#include <stdint.h>

uint64_t sc_mono_ms(void); /* CLOCK_MONOTONIC */
uint64_t sc_wall_ms(void); /* CLOCK_REALTIME: Unix ms */

#endif /* SC_CLOCK_H */
