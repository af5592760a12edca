#include "metrics_http.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "banned.h"

struct listener {
	struct MHD_Daemon *daemon;
	pl_metrics_render_fn render;
	void *arg;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	struct listener *l = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;
	int ok = strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0;

	(void)version, (void)upload, (void)upload_len, (void)state;
	text = ok ? l->render(l->arg) : NULL;
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

void *pl_metrics_http_start(long long port, pl_metrics_render_fn render,
			    void *arg)
{
	struct listener *l = calloc(1, sizeof(*l));
	struct sockaddr_in addr;

	if (!l)
		return NULL;
	l->render = render;
	l->arg = arg;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				     MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
				     NULL, on_request, l,
				     MHD_OPTION_SOCK_ADDR, &addr,
				     MHD_OPTION_CONNECTION_LIMIT, 16U,
				     MHD_OPTION_CONNECTION_TIMEOUT, 10U,
				     MHD_OPTION_END);
	if (!l->daemon) {
		pl_log(PL_LOG_ERR, "metrics: cannot listen on 127.0.0.1:%lld",
		       port);
		free(l);
		return NULL;
	}
	pl_log(PL_LOG_INFO, "metrics: GET /metrics on 127.0.0.1:%lld", port);
	return l;
}

void pl_metrics_http_stop(void *handle)
{
	struct listener *l = handle;

	if (!l)
		return;
	MHD_stop_daemon(l->daemon);
	free(l);
}
