/*
 * lg_onsale.c - what one subscriber's messages show of an onsale
 *
 * See lg_onsale.h.  A message costs one store however many bookings it
 * covers (a store per booking made 100 000 subscribers of 1 000 bookings
 * write 400 MB while the onsale ran); lg_onsale_fill() spreads the times
 * afterwards.
 */
#include "lg_onsale.h"

void
lg_onsale_reset(struct lg_onsale_conn *o)
{
    *o = (struct lg_onsale_conn){
        .hi = -1, .upd = -1, .created = -1, .bookings = 0};
}

void
lg_onsale_apply(struct lg_onsale_conn *o, uint32_t *cover, int64_t j,
                int64_t last, const struct lg_msg *m, uint32_t t,
                struct lg_onsale_tally *c)
{
    c->frames++;
    if (j < o->hi) {
        c->older++;
    } else {
        if (j > o->hi) {
            cover[j] = t + 1;
        }
        o->hi = (int32_t)j;
    }
    switch (m->type) {
    case LG_MSG_SEAT_UPDATE:
        c->updates++;
        if (j == last && o->upd != (int32_t)j) {
            c->final++;
        }
        o->upd = (int32_t)j;
        break;
    case LG_MSG_BOOKING_CREATED:
        c->created++;
        if (m->has_bookings && m->bookings < 2) {
            c->bookings_bad++;
        }
        if (j - o->created != m->bookings) {
            c->step_bad++;
        }
        o->created = (int32_t)j;
        if (m->bookings > 0) {
            o->bookings += (uint32_t)m->bookings;
            c->bookings += (uint64_t)m->bookings;
        }
        break;
    default:
        c->cancelled++;
        break;
    }
}

void
lg_onsale_fill(uint32_t *cover, int64_t hi)
{
    uint32_t t = 0;

    for (int64_t b = hi; b >= 0; b--) {
        if (cover[b] != 0) {
            t = cover[b] - 1;
        }
        cover[b] = t;
    }
}
