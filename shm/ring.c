/*
 * ring.c - the broadcast ring: one writer (the listener), any number of
 * readers, each slot a seqlock (see sc_shm.h)
 *
 * The frame bytes of a slot are copied with memcpy between the two
 * sequence loads, as seqlocks do, and discarded if the sequence moved;
 * the other fields are _Atomic with relaxed accesses.
 */
#include "shm_int.h"

#include <string.h>
#include <time.h>

/* The publish time readers measure their wait from (every process reads
 * the same CLOCK_MONOTONIC). */
static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Ring                                                                 */

uint64_t
sc_registry_ring_publish(struct sc_registry *reg, const struct sc_ring_msg *m)
{
    uint64_t n = atomic_load_explicit(&reg->hdr->ring_head, RELAXED);
    struct sc_ring_slot *s = sc_shm_ring_slot(reg, n);
    uint16_t len = m->frame_len > SC_SHM_FRAME_MAX ? SC_SHM_FRAME_MAX
                                                   : m->frame_len;

    atomic_store_explicit(&s->seq, 2 * n + 1, RELAXED);
    atomic_thread_fence(RELEASE);
    atomic_store_explicit(&s->event_id, m->event_id, RELAXED);
    atomic_store_explicit(&s->version, m->version, RELAXED);
    atomic_store_explicit(&s->commit_ms, m->commit_ms, RELAXED);
    atomic_store_explicit(&s->published_ms, mono_ms(), RELAXED);
    atomic_store_explicit(&s->kind, m->kind, RELAXED);
    atomic_store_explicit(&s->available, m->available, RELAXED);
    atomic_store_explicit(&s->capacity, m->capacity, RELAXED);
    atomic_store_explicit(&s->frame_len, len, RELAXED);
    atomic_store_explicit(&s->update_off, m->update_off, RELAXED);
    memcpy(s->frame, m->frame, len);
    atomic_store_explicit(&s->seq, 2 * n + 2, RELEASE);
    atomic_store_explicit(&reg->hdr->ring_head, n + 1, RELEASE);
    return n;
}

int
sc_registry_ring_read(const struct sc_registry *reg, uint64_t seq,
                      struct sc_ring_msg *out)
{
    struct sc_ring_slot *s = sc_shm_ring_slot(reg, seq);
    uint64_t head = atomic_load_explicit(&reg->hdr->ring_head, ACQUIRE);
    uint64_t s1, s2;

    if (seq >= head) {
        return 1;
    }
    if (head - seq > reg->hdr->ring_slots) {
        return -1;
    }
    s1 = atomic_load_explicit(&s->seq, ACQUIRE);
    if (s1 != 2 * seq + 2) {
        return -1;
    }
    out->seq = seq;
    out->event_id = atomic_load_explicit(&s->event_id, RELAXED);
    out->version = atomic_load_explicit(&s->version, RELAXED);
    out->commit_ms = atomic_load_explicit(&s->commit_ms, RELAXED);
    out->published_ms = atomic_load_explicit(&s->published_ms, RELAXED);
    out->kind = atomic_load_explicit(&s->kind, RELAXED);
    out->available = atomic_load_explicit(&s->available, RELAXED);
    out->capacity = atomic_load_explicit(&s->capacity, RELAXED);
    out->frame_len = atomic_load_explicit(&s->frame_len, RELAXED);
    out->update_off = atomic_load_explicit(&s->update_off, RELAXED);
    if (out->frame_len > SC_SHM_FRAME_MAX) {
        return -1;
    }
    memcpy(out->frame, s->frame, out->frame_len);
    atomic_thread_fence(ACQUIRE);
    s2 = atomic_load_explicit(&s->seq, RELAXED);
    return s1 == s2 ? 0 : -1;
}

