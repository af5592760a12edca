/*
 * prom: the Prometheus text exposition format (version 0.0.4), written
 * into one bounded buffer, for every daemon that serves GET /metrics
 * (parley-relay, parley-notify).
 *
 * The module owns only the text: each call appends one metric family with
 * its "# HELP" and "# TYPE" lines. Where the numbers come from (atomics,
 * snapshots) is the caller's business. Writing never fails half-way in a
 * way the caller must check after each call: an allocation failure or a
 * text over the bound marks the writer failed, later calls do nothing, and
 * pl_prom_finish() reports it once.
 *
 * Sums of histograms and summaries are fixed-point: sum counts units of
 * 10^-sum_digits seconds (3 for milliseconds, 6 for microseconds) and is
 * printed exactly with sum_digits decimals.
 */
#ifndef PL_PROM_H
#define PL_PROM_H

#include <stddef.h>

/* The largest /metrics text a daemon renders. */
#define PL_PROM_MAX_BYTES (256 * 1024)

struct pl_prom {
	char *buf;
	size_t len;
	size_t cap;
	size_t max_bytes;
	int failed;
};

/*
 * Starts an empty text of at most max_bytes bytes (0: PL_PROM_MAX_BYTES).
 * Allocates lazily; pl_prom_finish() or pl_prom_release() ends it.
 */
void pl_prom_init(struct pl_prom *p, size_t max_bytes);

/* A counter: name (borrowed, a valid metric name), help text, value. */
void pl_prom_counter(struct pl_prom *p, const char *name, const char *help,
		     unsigned long value);

/* A gauge, as pl_prom_counter(). */
void pl_prom_gauge(struct pl_prom *p, const char *name, const char *help,
		   long long value);

/*
 * A histogram of nbuckets buckets: bounds[i] is bucket i's upper bound in
 * seconds and counts[i] the observations that fell in it and in no lower
 * one (not cumulative: the writer adds them up). count is every
 * observation, the ones above the last bound included (the "+Inf" bucket);
 * sum is fixed-point (see above). Arrays are borrowed.
 */
void pl_prom_histogram(struct pl_prom *p, const char *name, const char *help,
		       const double *bounds, const unsigned long *counts,
		       size_t nbuckets, unsigned long count,
		       unsigned long long sum, int sum_digits);

/*
 * Labelled series: pl_prom_family() writes a family's "# HELP" and "# TYPE"
 * (type "counter", "gauge" or "histogram") once, then each series follows
 * with its labels, a text such as route="GET /x",status="200" (borrowed;
 * the caller writes label values that need no escaping).
 */
void pl_prom_family(struct pl_prom *p, const char *name, const char *help,
		    const char *type);
void pl_prom_series(struct pl_prom *p, const char *name, const char *labels,
		    unsigned long value);
void pl_prom_histogram_series(struct pl_prom *p, const char *name,
			      const char *labels, const double *bounds,
			      const unsigned long *counts, size_t nbuckets,
			      unsigned long count, unsigned long long sum,
			      int sum_digits);

/* A summary without quantiles: only _sum (fixed-point) and _count. */
void pl_prom_summary(struct pl_prom *p, const char *name, const char *help,
		     unsigned long count, unsigned long long sum,
		     int sum_digits);

/*
 * Ends the text. Returns it as a newly allocated NUL-terminated string
 * (the caller frees it), or NULL when the writer failed (out of memory or
 * over max_bytes); either way p holds nothing afterwards.
 */
char *pl_prom_finish(struct pl_prom *p);

/* Drops the text unfinished; a no-op on a finished or released writer. */
void pl_prom_release(struct pl_prom *p);

#endif
