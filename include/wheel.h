/*
 * wheel.h - a timer wheel of one-second slots
 *
 * A worker holds thousands of connections, each with a deadline
 * (handshake, ping, silence, token expiry, close): instead of one timer
 * each, every connection is filed in the slot of the second it is due,
 * and a once-a-second tick takes the slots up to the current second.  A
 * slot also holds items due a lap later (SC_WHEEL_SLOTS seconds on); they
 * go back into it.  Filing and removing are O(1).
 *
 * Pure: no clock (the caller passes monotonic milliseconds), no
 * allocation; the node is embedded in the caller's struct.  One thread.
 */
#ifndef SC_WHEEL_H
#define SC_WHEEL_H

#include <stdint.h>

#define SC_WHEEL_SLOTS 64 /* one slot per second */

struct sc_wheel_node {
    struct sc_wheel_node *prev, *next;
    uint64_t due_s; /* second it waits for; 0: not filed */
};

struct sc_wheel {
    struct sc_wheel_node *slot[SC_WHEEL_SLOTS];
    uint64_t done_s; /* last second handled; 0 before the first run */
};

/*
 * Files n (taken out first if filed) at the second of due_ms, never at a
 * second the wheel has already handled (then the next one).
 */
void sc_wheel_file(struct sc_wheel *wh, struct sc_wheel_node *n,
                   uint64_t due_ms);

/* Takes n out of the wheel; harmless if it is not filed. */
void sc_wheel_remove(struct sc_wheel *wh, struct sc_wheel_node *n);

/*
 * Handles every second up to now_ms: each node due then is taken out and
 * passed to fn (which may free it, or file it again: never into a second
 * already handled).  After a pause longer than a lap, only the last lap is
 * walked (every node is in it).
 */
void sc_wheel_run(struct sc_wheel *wh, uint64_t now_ms,
                  void (*fn)(struct sc_wheel_node *n, uint64_t now_ms,
                             void *arg),
                  void *arg);

#endif /* SC_WHEEL_H */
