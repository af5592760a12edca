#include "metrics.h"

#include "db.h"
#include "prom.h"
#include "redis.h"
#include "banned.h"

/* Upper bounds in seconds: 1 ms to 10 s. */
static const double bounds[METRICS_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10
};

void metrics_observe(struct metrics_histogram *h, long long us)
{
	double s = (double)us / 1e6;

	if (us < 0)
		us = 0;
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		if (s <= bounds[i]) {
			atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
			break;
		}
	}
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (unsigned long)us, memory_order_relaxed);
}

static unsigned long get(atomic_ulong *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void counter(struct pl_prom *p, const char *name, const char *help,
		    atomic_ulong *v)
{
	pl_prom_counter(p, name, help, get(v));
}

static void histogram(struct pl_prom *p, const char *name, const char *help,
		      struct metrics_histogram *h)
{
	unsigned long counts[METRICS_BUCKETS];

	for (int i = 0; i < METRICS_BUCKETS; i++)
		counts[i] = get(&h->buckets[i]);
	pl_prom_histogram(p, name, help, bounds, counts, METRICS_BUCKETS,
			  get(&h->count), get(&h->sum_us), 6);
}

char *metrics_render(struct relay_metrics *m, long long sockets)
{
	struct pl_prom o;

	pl_prom_init(&o, PL_PROM_MAX_BYTES);
	pl_prom_gauge(&o, "parley_relay_sockets",
		      "Open WebSocket, long-poll and SSE connections.", sockets);
	counter(&o, "parley_relay_frames_in_total", "Frames received from clients.",
		&m->frames_in);
	counter(&o, "parley_relay_frames_out_total", "Frames sent to clients.",
		&m->frames_out);
	counter(&o, "parley_relay_sends_total", "Messages stored from sends.",
		&m->sends);
	counter(&o, "parley_relay_send_errors_total", "Sends answered with an error.",
		&m->send_errors);
	counter(&o, "parley_relay_replays_total", "Inbox pages read for sockets.",
		&m->replays);
	counter(&o, "parley_relay_gaps_total", "Live events that arrived ahead of a gap.",
		&m->gaps);
	counter(&o, "parley_relay_slow_consumer_closes_total",
		"Sockets closed for not reading (4008).", &m->slow_closes);
	counter(&o, "parley_relay_revoked_closes_total",
		"Sockets closed for a revoked session (4003).", &m->revoked_closes);
	counter(&o, "parley_relay_abuse_closes_total",
		"Sockets closed for sending over their frame budget (4008).",
		&m->abuse_closes);
	counter(&o, "parley_relay_jobs_refused_total",
		"Frames refused because the job queues were full.",
		&m->jobs_refused);
	histogram(&o, "parley_relay_store_seconds",
		  "Time to store one batch of sends (post_messages).", &m->store);
	histogram(&o, "parley_relay_deliver_seconds",
		  "From a message's commit to its live delivery on a socket.",
		  &m->deliver);
	pl_prom_counter(&o, "parley_relay_db_errors_total", "PostgreSQL errors: "
			"failed connects, lost connections, failed statements.",
			pl_db_errors());
	pl_prom_counter(&o, "parley_relay_redis_errors_total", "Redis errors: "
			"failed connects, lost connections, error replies.",
			pl_redis_errors());
	return pl_prom_finish(&o);
}
