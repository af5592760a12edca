/*
 * metrics: GET /metrics (Prometheus text) for the notifier, on
 * 127.0.0.1:[notify] metrics_port.
 *
 * libmicrohttpd runs the listener on its own thread and parses HTTP; this
 * file only renders the counters, which the loop thread bumps atomically
 * (a scrape may mix values a few microseconds apart), through lib/prom.h.
 */
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;
	int ok = strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0;

	text = ok ? render(cls) : NULL;
	if (text) {
		r = MHD_create_response_from_buffer(strlen(text), text,
						    MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "Content-Type",
					"text/plain; version=0.0.4");
	} else {
		r = MHD_create_response_from_buffer(0, (void *)"",
						    MHD_RESPMEM_PERSISTENT);
	}
	if (!r) {
		free(text);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, text ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
	MHD_destroy_response(r);
	return ret;
}

void *notify_metrics_start(struct notify_metrics *m, long long port)
{
	struct sockaddr_in addr;
	struct MHD_Daemon *d;

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
			     (uint16_t)port, NULL, NULL, on_request, m,
			     MHD_OPTION_SOCK_ADDR, &addr,
			     MHD_OPTION_CONNECTION_LIMIT, 16U,
			     MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
	if (!d)
		pl_log(PL_LOG_ERR, "metrics: cannot listen on 127.0.0.1:%lld",
		       port);
	else
		pl_log(PL_LOG_INFO, "metrics: GET /metrics on 127.0.0.1:%lld",
		       port);
	return d;
}

void notify_metrics_stop(void *daemon)
{
	if (daemon)
		MHD_stop_daemon(daemon);
}
