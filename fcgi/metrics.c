/*
 * metrics: GET /metrics (Prometheus text) for parley-api, on
 * 127.0.0.1:[api] metrics_port, as the relay and the notifier have theirs
 * (doc/deploying.md "Metrics").
 *
 * Every request is counted by route and status and timed into its route's
 * histogram when its response is written (api_metrics_observe(), called by
 * request.c from the worker threads: atomics only). lib/metrics_http runs
 * the listener on its own thread; a scrape may mix values microseconds
 * apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "metrics_http.h"
#include "prom.h"
#include "redis.h"
#include "banned.h"

/* The statuses counted on their own; any other is counted as "other". */
static const int statuses[API_METRICS_STATUSES] = {
	200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500,
	503, 0,
};

/* Request latency buckets, in seconds. */
static const double bounds[API_METRICS_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
};

int api_metrics_init(struct api_metrics *m, size_t nroutes)
{
	m->nroutes = nroutes;
	/* One more for requests that matched no route. */
	m->routes = calloc(nroutes + 1, sizeof(*m->routes));
	return m->routes ? 0 : -1;
}

void api_metrics_release(struct api_metrics *m)
{
	free(m->routes);
	m->routes = NULL;
}

void api_metrics_observe(struct api_metrics *m, const struct api_route *route,
			 int status, long long us)
{
	struct api_route_metrics *r;
	size_t s = API_METRICS_STATUSES - 1, b = 0;

	if (!m->routes)
		return;
	r = &m->routes[route ? (size_t)(route - api_routes) : m->nroutes];
	for (size_t i = 0; i + 1 < API_METRICS_STATUSES; i++)
		if (statuses[i] == status)
			s = i;
	atomic_fetch_add(&r->by_status[s], 1);
	while (b < API_METRICS_BUCKETS && us > (long long)(bounds[b] * 1e6))
		b++;
	if (b < API_METRICS_BUCKETS)
		atomic_fetch_add(&r->buckets[b], 1);
	atomic_fetch_add(&r->count, 1);
	atomic_fetch_add(&r->sum_us, (unsigned long long)(us > 0 ? us : 0));
}

/* route="METHOD /path" for route i (the table's patterns have no quotes). */
static void route_label(const struct api_metrics *m, size_t i, char *out,
			size_t outlen)
{
	if (i == m->nroutes)
		snprintf(out, outlen, "route=\"none\"");
	else
		snprintf(out, outlen, "route=\"%s %s\"", api_routes[i].method,
			 api_routes[i].pattern);
}

static void render_requests(struct pl_prom *p, const struct api_metrics *m)
{
	char labels[256];

	pl_prom_family(p, "parley_api_requests_total", "Requests answered, by "
		       "route and status.", "counter");
	for (size_t i = 0; i <= m->nroutes; i++)
		for (size_t s = 0; s < API_METRICS_STATUSES; s++) {
			unsigned long n = atomic_load(&m->routes[i].by_status[s]);
			size_t used;

			if (!n)
				continue;
			route_label(m, i, labels, sizeof(labels));
			used = strlen(labels);
			if (statuses[s])
				snprintf(labels + used, sizeof(labels) - used,
					 ",status=\"%d\"", statuses[s]);
			else
				snprintf(labels + used, sizeof(labels) - used,
					 ",status=\"other\"");
			pl_prom_series(p, "parley_api_requests_total", labels, n);
		}
	pl_prom_family(p, "parley_api_request_duration_seconds", "Time from "
		       "a request's start to its response, by route.",
		       "histogram");
	for (size_t i = 0; i <= m->nroutes; i++) {
		const struct api_route_metrics *r = &m->routes[i];
		unsigned long counts[API_METRICS_BUCKETS];
		unsigned long count = atomic_load(&r->count);

		if (!count)
			continue;
		for (size_t b = 0; b < API_METRICS_BUCKETS; b++)
			counts[b] = atomic_load(&r->buckets[b]);
		route_label(m, i, labels, sizeof(labels));
		pl_prom_histogram_series(p, "parley_api_request_duration_seconds",
					 labels, bounds, counts,
					 API_METRICS_BUCKETS, count,
					 atomic_load(&r->sum_us), 6);
	}
}

static char *render(struct api_shared *shared)
{
	struct pl_prom p;

	pl_prom_init(&p, PL_PROM_MAX_BYTES);
	render_requests(&p, &shared->metrics);
	pl_prom_counter(&p, "parley_api_db_errors_total", "PostgreSQL errors: "
			"failed connects, lost connections, failed statements.",
			pl_db_errors());
	pl_prom_counter(&p, "parley_api_redis_errors_total", "Redis errors: "
			"failed connects, lost connections, error replies.",
			pl_redis_errors());
	pl_prom_counter(&p, "parley_api_hash_waits_total", "Logins and signups "
			"that waited for a password-hashing slot.",
			atomic_load(&shared->passwords.waits));
	pl_prom_counter(&p, "parley_api_hash_refusals_total", "Logins and "
			"signups answered 503 for want of a hashing slot.",
			atomic_load(&shared->passwords.refusals));
	pl_prom_gauge(&p, "parley_api_hash_waiting", "Logins and signups "
		      "waiting for a hashing slot now.",
		      atomic_load(&shared->passwords.waiting));
	return pl_prom_finish(&p);
}

static char *render_text(void *shared)
{
	return render(shared);
}

void *api_metrics_start(struct api_shared *shared, long long port)
{
	return pl_metrics_http_start(port, render_text, shared);
}
