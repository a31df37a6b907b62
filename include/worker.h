/*
 * worker.h - a seatcast worker process: one libevent loop serving the
 * connections the master hands over, and delivering the listener's
 * changes to its own subscribers
 *
 * Loop glue, the event loop only: the connections are conn.c's (through
 * struct sc_conn_env), the subscriptions and deliveries fanout.c's, the
 * timers wheel.c's.
 */
#ifndef SC_WORKER_H
#define SC_WORKER_H

struct sc_child_ctx;

/* Runs worker ctx->index until it stops; never returns. */
void sc_worker_main(const struct sc_child_ctx *ctx)
    __attribute__((noreturn));

#endif /* SC_WORKER_H */
