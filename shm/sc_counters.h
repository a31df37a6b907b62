/*
 * sc_counters.h - the table of worker counters
 *
 * Every worker counter is one row here, and everything that lists the
 * counters is generated from the table (as Varnish generates its counter
 * structs and their documentation from one list):
 *   - the fields of struct sc_worker_slot (sc_shm.h);
 *   - the header's retired_<field> totals: what dead workers counted,
 *     folded in by the master when it repairs a dead worker's slot;
 *   - the fold itself, sc_registry_repair_worker();
 *   - struct sc_totals and sc_registry_totals() (live slots + retired);
 *   - the /metrics series (healthz.c) and the keys of `seatcast stats
 *     --json` (stats.c).
 * Adding a counter is adding a row (and bumping SC_SHM_VERSION: the
 * layout changes).  A counter is monotonic and written by its own worker
 * only, with relaxed atomic adds; the master writes it only while the
 * worker is dead (the fold sets it back to 0).
 *
 * X(field, metric, help, stats)
 *   field   the slot's field, the retired_ total's suffix, the totals'
 *           field and the `stats` key
 *   metric  the Prometheus series name, or NULL when the counter is only
 *           part of another series (the latency histogram)
 *   help    its HELP text
 *   stats   where `seatcast stats --json` shows it: SC_CTR_WORKER in each
 *           worker object, SC_CTR_TOTAL in "totals" (0: not shown)
 *
 * The histograms' buckets (lat_buckets and wait_buckets[SC_LAT_BUCKETS])
 * are arrays and are folded and summed next to the table, with the same
 * rules.
 */
#ifndef SC_COUNTERS_H
#define SC_COUNTERS_H

#define SC_CTR_WORKER 1u
#define SC_CTR_TOTAL 2u

/* clang-format off */
#define SC_WORKER_COUNTERS(X)                                                \
    X(connections_total, "seatcast_connections_total",                        \
      "Connections accepted by workers.", SC_CTR_WORKER | SC_CTR_TOTAL)       \
    X(handshakes, "seatcast_handshakes_total",                                \
      "Completed WebSocket upgrades.", SC_CTR_WORKER | SC_CTR_TOTAL)          \
    X(handshake_failures, "seatcast_handshake_failures_total",                \
      "Requests refused with an HTTP error.", SC_CTR_WORKER)                  \
    X(auth_failures, "seatcast_auth_failures_total",                          \
      "Upgrades closed with 1008 for a missing or invalid token.",            \
      SC_CTR_WORKER | SC_CTR_TOTAL)                                           \
    X(messages_sent, "seatcast_messages_sent_total",                          \
      "WebSocket frames written to clients.", SC_CTR_WORKER | SC_CTR_TOTAL)   \
    X(bytes_sent, "seatcast_bytes_sent_total",                                \
      "Bytes written to clients.", SC_CTR_WORKER | SC_CTR_TOTAL)              \
    X(messages_received, "seatcast_messages_received_total",                  \
      "Client text messages received.", SC_CTR_WORKER)                        \
    X(slow_consumers, "seatcast_slow_consumers_total",                        \
      "Clients closed for not reading.", 0)                                   \
    X(rate_limited, "seatcast_rate_limited_total",                            \
      "Client messages refused by the rate limit.", 0)                        \
    X(resyncs, "seatcast_ring_resyncs_total",                                 \
      "Times a worker fell behind the broadcast ring.", SC_CTR_WORKER)        \
    X(lat_count, NULL, "Broadcasts whose latency was measured.", 0)           \
    X(lat_sum_us, NULL, "Sum of those latencies, microseconds.", 0)           \
    X(merged, "seatcast_merged_changes_total",                                \
      "Changes delivered inside merged messages (--max-lag).",                \
      SC_CTR_WORKER | SC_CTR_TOTAL)                                           \
    X(sweep_turns, "seatcast_sweep_turns_total",                              \
      "Milliseconds a worker's sweeps waited for another's further behind.",  \
      SC_CTR_WORKER | SC_CTR_TOTAL)                                           \
    X(wait_count, NULL, "Changes whose ring wait was measured.", 0)           \
    X(wait_sum_us, NULL, "Sum of those waits, microseconds.", 0)
/* clang-format on */

#endif /* SC_COUNTERS_H */
