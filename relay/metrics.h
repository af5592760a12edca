/*
 * metrics: the relay's counters, served as Prometheus text at GET /metrics
 * on the relay's port (doc/architecture.md "The pieces"; issue: sockets, frames,
 * sends, store and send-to-deliver latency, replays, gaps, slow consumers).
 *
 * Counters are atomics: the service thread and the store threads bump them
 * without locks; a scrape reads them relaxed, so one scrape may mix values
 * a few microseconds apart.
 */
#ifndef RELAY_METRICS_H
#define RELAY_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#define METRICS_BUCKETS 12

struct metrics_histogram {
	atomic_ulong buckets[METRICS_BUCKETS];	/* counts per upper bound */
	atomic_ulong count;
	atomic_ulong sum_us;
};

struct relay_metrics {
	atomic_ulong frames_in;
	atomic_ulong frames_out;
	atomic_ulong sends;		/* stored now */
	atomic_ulong send_errors;	/* answered with an error */
	atomic_ulong replays;		/* inbox pages read */
	atomic_ulong gaps;		/* live events that arrived ahead of a gap */
	atomic_ulong slow_closes;	/* sockets closed for not reading */
	atomic_ulong revoked_closes;
	atomic_ulong abuse_closes;	/* over the frame budget (4008) */
	atomic_ulong jobs_refused;	/* frames refused: job queues full */
	struct metrics_histogram store;		/* one post_messages() batch */
	struct metrics_histogram deliver;	/* commit to live delivery */
};

/* Adds one observation of us microseconds. */
void metrics_observe(struct metrics_histogram *h, long long us);

/*
 * Renders every metric as Prometheus text; sockets is the current socket
 * count. Returns a new string (the caller frees it), or NULL when out of
 * memory or over PL_PROM_MAX_BYTES (lib/prom.h).
 */
char *metrics_render(struct relay_metrics *m, long long sockets);

#endif
