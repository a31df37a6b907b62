/*
 * listener.h - the seatcast listener process: the one PostgreSQL
 * connection, LISTEN/NOTIFY, seat counts into the registry, broadcasts
 */
#ifndef SC_LISTENER_H
#define SC_LISTENER_H

struct sc_child_ctx;

/* Runs the listener until it stops; never returns. */
void sc_listener_main(const struct sc_child_ctx *ctx)
    __attribute__((noreturn));

#endif /* SC_LISTENER_H */
