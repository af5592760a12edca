#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

struct out {
	char *buf;
	size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!o->buf)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < o->cap - o->len)
			break;
		o->cap *= 2;
		o->buf = realloc(o->buf, o->cap);
		if (!o->buf)
			return;
	}
	o->len += (size_t)n;
}

static unsigned long get(atomic_ulong *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void counter(struct out *o, const char *name, const char *help,
		    atomic_ulong *v)
{
	put(o, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name,
	    get(v));
}

static void histogram(struct out *o, const char *name, const char *help,
		      struct metrics_histogram *h)
{
	unsigned long cumulative = 0;

	put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cumulative += get(&h->buckets[i]);
		put(o, "%s_bucket{le=\"%g\"} %lu\n", name, bounds[i], cumulative);
	}
	put(o, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.6f\n%s_count %lu\n", name,
	    get(&h->count), name, (double)get(&h->sum_us) / 1e6, name,
	    get(&h->count));
}

char *metrics_render(struct relay_metrics *m, long long sockets)
{
	struct out o = { malloc(4096), 0, 4096 };

	put(&o, "# HELP parley_relay_sockets Open WebSocket, long-poll and SSE "
	    "connections.\n# TYPE parley_relay_sockets gauge\n"
	    "parley_relay_sockets %lld\n", sockets);
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
	return o.buf;
}
