/*
 * frame.h - an encoded WebSocket frame shared by every connection that
 * queues it (reference-counted)
 *
 * A broadcast is encoded once and queued to each subscriber with one more
 * reference; a connection's own replies are frames with one reference.
 * One worker process only: the count is not atomic.
 */
#ifndef SC_FRAME_H
#define SC_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct sc_frame {
    uint32_t refs;
    uint32_t len;
    int64_t merge_id; /* seat_update of this event: a newer one replaces */
    uint8_t data[];
};

/* Returns a frame holding a copy of data with one reference, or NULL. */
struct sc_frame *sc_frame_new(const void *data, size_t len, int64_t merge_id);

/* A text frame carrying the n bytes of JSON, one reference; NULL if n < 0
 * or out of memory. */
struct sc_frame *sc_frame_text(const char *json, long n, int64_t merge_id);

void sc_frame_release(struct sc_frame *f); /* NULL-safe */

#endif /* SC_FRAME_H */
