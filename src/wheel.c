/*
 * wheel.c - the timer wheel (see wheel.h)
 */
#include "wheel.h"

#include <stddef.h>

static void
link_into(struct sc_wheel *wh, struct sc_wheel_node *n, uint64_t s)
{
    struct sc_wheel_node **slot = &wh->slot[s % SC_WHEEL_SLOTS];

    n->due_s = s;
    n->prev = NULL;
    n->next = *slot;
    if (*slot != NULL) {
        (*slot)->prev = n;
    }
    *slot = n;
}

void
sc_wheel_remove(struct sc_wheel *wh, struct sc_wheel_node *n)
{
    if (n->due_s == 0) {
        return;
    }
    if (n->prev != NULL) {
        n->prev->next = n->next;
    } else {
        wh->slot[n->due_s % SC_WHEEL_SLOTS] = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    }
    n->prev = n->next = NULL;
    n->due_s = 0;
}

void
sc_wheel_file(struct sc_wheel *wh, struct sc_wheel_node *n, uint64_t due_ms)
{
    uint64_t s = due_ms / 1000;

    /* never a second the wheel has already handled */
    if (s <= wh->done_s) {
        s = wh->done_s + 1;
    }
    sc_wheel_remove(wh, n);
    link_into(wh, n, s);
}

void
sc_wheel_run(struct sc_wheel *wh, uint64_t now_ms,
             void (*fn)(struct sc_wheel_node *n, uint64_t now_ms, void *arg),
             void *arg)
{
    uint64_t now_s = now_ms / 1000;

    if (wh->done_s == 0 || now_s - wh->done_s > SC_WHEEL_SLOTS) {
        wh->done_s = now_s > SC_WHEEL_SLOTS ? now_s - SC_WHEEL_SLOTS : 0;
    }
    while (wh->done_s < now_s) {
        uint64_t s = ++wh->done_s;
        struct sc_wheel_node *n = wh->slot[s % SC_WHEEL_SLOTS], *next;
        /* take the slot's list: nodes handled are filed again, never
         * into this slot (done_s is already s) */
        wh->slot[s % SC_WHEEL_SLOTS] = NULL;
        for (; n != NULL; n = next) {
            next = n->next;
            n->prev = n->next = NULL;
            if (n->due_s > s) {
                link_into(wh, n, n->due_s); /* a lap later */
                continue;
            }
            n->due_s = 0;
            fn(n, now_ms, arg);
        }
    }
}
