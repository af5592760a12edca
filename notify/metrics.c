/*
 * metrics: GET /metrics (Prometheus text) for the notifier, on
 * 127.0.0.1:[notify] metrics_port.
 *
 * lib/metrics_http runs the listener on its own thread; this file only
 * renders the counters, which the loop thread bumps atomically (a scrape
 * may mix values a few microseconds apart), through lib/prom.h.
 */
#include <stdlib.h>

#include "metrics_http.h"
#include "notify.h"
#include "prom.h"
#include "banned.h"

static unsigned long get(atomic_ulong *v)
{
	return atomic_load(v);
}

static char *render(struct notify_metrics *m)
{
	struct pl_prom p;

	pl_prom_init(&p, PL_PROM_MAX_BYTES);
#define C(name, field, help) \
	pl_prom_counter(&p, "parley_notify_" name, help, get(&m->field))
	C("jobs_total", jobs_in, "Push jobs read or claimed from the stream.");
	C("jobs_claimed_total", jobs_claimed,
	  "Push jobs taken over from a stopped notifier.");
	C("jobs_dropped_total", jobs_dropped,
	  "Push jobs dropped: read in grace, muted, or no push device.");
	C("jobs_collapsed_total", jobs_collapsed,
	  "Push jobs superseded by a later one of the same conversation.");
	C("pushes_sent_total", sent, "Pushes accepted by APNs or FCM.");
	C("pushes_retried_total", retried, "Push attempts scheduled again.");
	C("pushes_failed_total", failed,
	  "Pushes dead-lettered or rejected for good.");
	C("tokens_removed_total", tokens_removed,
	  "Device tokens deleted because the provider called them dead.");
	C("connections_total", connects, "HTTP connections opened.");
	C("apns_jwts_total", apns_jwts, "APNs provider tokens signed.");
	C("fcm_tokens_total", fcm_tokens, "FCM access tokens fetched.");
#undef C
	pl_prom_summary(&p, "parley_notify_latency_seconds",
			"Queued to accepted, per push.", get(&m->latency_count),
			get(&m->latency_sum_ms), 3);
	return pl_prom_finish(&p);
}

static char *render_text(void *m)
{
	return render(m);
}

void *notify_metrics_start(struct notify_metrics *m, long long port)
{
	return pl_metrics_http_start(port, render_text, m);
}

void notify_metrics_stop(void *listener)
{
	pl_metrics_http_stop(listener);
}
