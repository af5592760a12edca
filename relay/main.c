/*
 * parley-relay: the WebSocket relay daemon (ARCHITECTURE.md "The pieces").
 *
 * One libwebsockets service thread per process. At this stage the relay
 * starts its service, reaches PostgreSQL and Redis, and answers plain HTTP
 * requests on its port with the contract's JSON errors; the WebSocket
 * protocol (parley.v1), long-poll and SSE handlers build on this skeleton.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "program.h"
#include "redis.h"

/* Answers every plain HTTP request with a JSON error (no route is served yet). */
static int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
			 void *user, void *in, size_t len)
{
	uint8_t buf[LWS_PRE + 512];
	uint8_t *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof(buf) - 1];
	static const char body[] =
		"{\"error\":{\"code\":\"not_found\",\"message\":\"no such route on the relay\"}}\n";

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (lws_add_http_common_headers(wsi, HTTP_STATUS_NOT_FOUND,
						"application/json",
						sizeof(body) - 1, &p, end) ||
		    lws_finalize_write_http_header(wsi, start, &p, end))
			return 1;
		lws_callback_on_writable(wsi);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		memcpy(start, body, sizeof(body) - 1);
		if (lws_write(wsi, start, sizeof(body) - 1,
			      LWS_WRITE_HTTP_FINAL) != (int)(sizeof(body) - 1))
			return 1;
		if (lws_http_transaction_completed(wsi))
			return -1;
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{ "http", http_callback, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* lws pings idle sockets at 30 s and hangs up silent ones at 45 s. */
static const lws_retry_bo_t idle_policy = {
	.secs_since_valid_ping = 30,
	.secs_since_valid_hangup = 45,
};

static void lws_log_to_pl(int level, const char *line)
{
	size_t len = strcspn(line, "\n");

	pl_log(level == LLL_ERR ? PL_LOG_ERR : PL_LOG_WARN, "lws: %.*s",
	       (int)len, line);
}

int main(int argc, char **argv)
{
	struct pl_config cfg;
	struct pl_db db;
	struct pl_redis redis;
	struct lws_context_creation_info info;
	struct lws_context *ctx = NULL;
	int next, status;
	long delay_ms = 250;

	status = pl_program_start(argc, argv, "parley-relay", NULL, &cfg, &next);
	if (status >= 0) {
		pl_config_release(&cfg);
		return status;
	}
	pl_db_init(&db, &cfg);
	pl_redis_init(&redis, &cfg);
	status = 1;
	if (pl_db_wait(&db))
		goto out;
	while (pl_redis_ensure(&redis) && !pl_program_sleep_ms(delay_ms))
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	if (pl_stop_requested) {
		status = 0;
		goto out;
	}

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_pl);
	memset(&info, 0, sizeof(info));
	info.port = (int)cfg.relay_port;
	info.protocols = protocols;
	info.retry_and_idle_policy = &idle_policy;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	info.fd_limit_per_thread = 1 + (unsigned int)cfg.relay_capacity + 64;
	ctx = lws_create_context(&info);
	if (!ctx) {
		pl_log(PL_LOG_ERR, "relay: cannot listen on port %lld",
		       cfg.relay_port);
		goto out;
	}
	pl_log(PL_LOG_INFO, "relay: listening on port %lld, public url '%s'",
	       cfg.relay_port, cfg.relay_public_url);
	while (!pl_stop_requested && lws_service(ctx, 0) >= 0)
		;
	pl_log(PL_LOG_INFO, "relay: stopping");
	status = 0;
out:
	if (ctx)
		lws_context_destroy(ctx);
	pl_redis_release(&redis);
	pl_db_release(&db);
	pl_config_release(&cfg);
	return status;
}
