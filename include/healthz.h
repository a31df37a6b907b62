/*
 * healthz.h - the bodies of GET /healthz and GET /metrics, built from the
 * registry (glue: reads shared memory and the clock, no socket)
 */
#ifndef SC_HEALTHZ_H
#define SC_HEALTHZ_H

#include <stddef.h>

struct sc_registry;

/*
 * {"status":"ok",...} with *status 200 when every worker runs and the
 * listener is connected to PostgreSQL; "degraded" with the reasons and
 * 503 otherwise.  Returns a malloc'd body (*len bytes) or NULL.
 */
char *sc_healthz_body(const struct sc_registry *reg, int *status,
                      size_t *len);

/* Prometheus text exposition 0.0.4; malloc'd (*len bytes) or NULL. */
char *sc_metrics_body(const struct sc_registry *reg, size_t *len);

#endif /* SC_HEALTHZ_H */
