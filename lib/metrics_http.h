/*
 * metrics_http: the GET /metrics listener of parley-api and parley-notify,
 * on 127.0.0.1:PORT. libmicrohttpd runs it on its own thread and parses
 * HTTP; each scrape calls the daemon's render function there, which returns
 * the Prometheus text (lib/prom.h) or NULL (answered 404... never a partial
 * text). Anything but GET /metrics is 404.
 */
#ifndef PL_METRICS_HTTP_H
#define PL_METRICS_HTTP_H

/* Renders the text: newly allocated, freed by the listener; NULL on OOM. */
typedef char *(*pl_metrics_render_fn)(void *arg);

/*
 * Starts the listener. Returns a handle for pl_metrics_http_stop(), or NULL
 * (logged) when it cannot listen.
 */
void *pl_metrics_http_start(long long port, pl_metrics_render_fn render,
			    void *arg);

/* Stops it; NULL is a no-op. */
void pl_metrics_http_stop(void *handle);

#endif
