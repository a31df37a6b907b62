/*
 * logical.h - the listener's --source logical: follow the booking database
 * through a logical replication slot (pgoutput), inside the listener
 * process (listener.c owns the connection, the back-off and publishing)
 */
#ifndef SC_LOGICAL_H
#define SC_LOGICAL_H

#include <stddef.h>

struct listener;

/* The connection (replication=database) is up: checks, slot, snapshot,
   START_REPLICATION. */
void sc_logical_start(struct listener *l);

/* Input arrived (PQconsumeInput done): results of the setup steps, then
   CopyData of the stream. */
void sc_logical_consume(struct listener *l);

/* Every tick: periodic standby status update, flush of pending output. */
void sc_logical_tick(struct listener *l);

/* The connection is gone: forget the transaction in progress and the
   relation cache (the server sends them again). */
void sc_logical_reset(struct listener *l);

/* Frees the state (at exit). */
void sc_logical_free(struct listener *l);

/*
 * A connection error in words that name what is missing (the role's
 * REPLICATION attribute, a pg_hba.conf line); out, or msg itself.
 */
const char *sc_logical_explain(const char *msg, char *out, size_t outlen);

#endif /* SC_LOGICAL_H */
