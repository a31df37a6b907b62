/*
 * shm_int.h - what the registry's own files share (the .c files of shm/ only)
 *
 * Section addresses computed from the header's offsets, the hash used
 * for open addressing, the memory orders by name.  Not part of the
 * interface: callers outside shm/ use registry.h.
 */
#ifndef SC_SHM_INT_H
#define SC_SHM_INT_H

#include "registry.h"

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

static inline uint8_t *
sc_shm_base(const struct sc_registry *reg)
{
    return (uint8_t *)reg->hdr;
}

static inline struct sc_ring_slot *
sc_shm_ring_slot(const struct sc_registry *reg, uint64_t seq)
{
    uint64_t i = seq & (reg->hdr->ring_slots - 1);

    return (struct sc_ring_slot *)(sc_shm_base(reg) + reg->hdr->off_ring +
                                   i * reg->hdr->ring_slot_size);
}

static inline struct sc_user_entry *
sc_shm_user_at(const struct sc_registry *reg, uint32_t index)
{
    return (struct sc_user_entry *)(sc_shm_base(reg) + reg->hdr->off_users +
                                    (size_t)index * reg->hdr->user_entry_size);
}

static inline _Atomic uint64_t *
sc_shm_revoked_at(const struct sc_registry *reg, uint32_t index)
{
    return (_Atomic uint64_t *)(sc_shm_base(reg) + reg->hdr->off_revoked) +
           index;
}

/* 64-bit mix (splitmix64 finaliser) for open addressing */
static inline uint64_t
sc_shm_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

#endif /* SC_SHM_INT_H */
