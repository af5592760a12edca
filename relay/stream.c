/*
 * stream: long-poll and Server-Sent Events on the relay's HTTP side (see
 * stream.h).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "heartbeat.h"
#include "relay.h"
#include "session.h"
#include "stream.h"
#include "token.h"
#include "banned.h"

#define SSE_KEEPALIVE_MAX_MS 25000

int relay_stream_start(struct conn *c, const char *token, long long after)
{
	struct pl_token_claims claims;
	char why[128];

	if (!token || pl_token_verify(&c->r->key, token, time(NULL), &claims, why,
				      sizeof(why)))
		return -1;
	if (c->kind == KIND_POLL) {
		c->poll_events = json_array();
		if (!c->poll_events)
			return -1;
	}
	return relay_session_begin(c, &claims, after) ? -1 : 0;
}

/* Writes the long-poll answer in one piece. */
static int write_poll_answer(struct conn *c)
{
	json_t *events = c->poll_events ? c->poll_events : json_array();
	size_t n = json_array_size(events);
	json_t *last = n ? json_array_get(events, n - 1) : NULL;
	long long cursor = last ? json_integer_value(json_object_get(last, "seq")) :
			   (c->poll_after > 0 ? c->poll_after : 0);
	json_t *body = json_pack("{s:O,s:I}", "events", events, "cursor",
				 (json_int_t)cursor);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	size_t len = text ? strlen(text) : 0;
	unsigned char *buf = malloc(LWS_PRE + 512 + len);
	unsigned char *start, *p, *end;
	int rc = -1;

	if (!c->poll_events)
		json_decref(events);
	json_decref(body);
	if (!text || !buf)
		goto out;
	start = p = buf + LWS_PRE;
	end = start + 512;
	if (lws_add_http_common_headers(c->wsi, HTTP_STATUS_OK, "application/json",
					len, &p, end) ||
	    lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
					 (unsigned char *)"no-store", 8, &p, end) ||
	    lws_finalize_write_http_header(c->wsi, start, &p, end))
		goto out;
	memcpy(start, text, len);
	if (lws_write(c->wsi, start, len, LWS_WRITE_HTTP_FINAL) < (int)len)
		goto out;
	rc = 1;
out:
	free(text);
	free(buf);
	return rc;
}

/* The error answer of a stream whose session failed: 503 or 401. */
static int write_close_answer(struct conn *c)
{
	int unavailable = c->close_code == 1013;

	return relay_http_error(c->wsi, unavailable ? 503 : 401,
				unavailable ? PL_UNAVAILABLE : PL_UNAUTHORIZED,
				c->close_reason);
}

/* SSE: the headers, once the stream is live. */
static int write_sse_headers(struct conn *c)
{
	unsigned char buf[LWS_PRE + 512];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = start + 500;

	if (c->state != CONN_LIVE)
		return 0;
	if (lws_add_http_common_headers(c->wsi, HTTP_STATUS_OK,
					"text/event-stream",
					LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
	    lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
					 (unsigned char *)"no-cache", 8, &p, end) ||
	    lws_finalize_write_http_header(c->wsi, start, &p, end))
		return -1;
	c->http_headers_sent = 1;
	if (c->out)
		lws_callback_on_writable(c->wsi);
	return 0;
}

int relay_stream_writeable(struct conn *c)
{
	if (c->kind == KIND_POLL) {
		if (!c->poll_done)
			return 0;
		if (c->close_code)
			return write_close_answer(c);
		return write_poll_answer(c);
	}
	if (c->close_code && !c->http_headers_sent)
		return write_close_answer(c);
	if (c->state == CONN_CLOSING && !c->out)
		return -1;
	if (!c->http_headers_sent)
		return write_sse_headers(c);
	return relay_conn_write_next(c, LWS_WRITE_HTTP);
}

/*
 * Long-poll and SSE have no heartbeat frame: while open they count as one
 * (doc/architecture.md "Presence"); SSE also writes a comment line so proxies
 * keep the stream (doc/protocol.md: at least every 25 s).
 */
void relay_stream_tick(struct conn *c, long long now)
{
	long long every = c->r->cfg->presence_heartbeat_interval_s * 1000;

	/* The contract's SSE keepalive: a comment at least every 25 s. */
	if (every > SSE_KEEPALIVE_MAX_MS)
		every = SSE_KEEPALIVE_MAX_MS;
	if (c->state != CONN_LIVE)
		return;
	if (now - c->keepalive_ms >= every) {
		c->keepalive_ms = now;
		relay_heartbeat(c);
		if (c->kind == KIND_SSE)
			relay_conn_queue(c, ": keepalive\n\n", 13);
	}
	if (c->kind == KIND_POLL && now >= c->poll_limit_ms)
		relay_conn_poll_ready(c);
}

int relay_http_error(struct lws *wsi, int status, enum pl_err code,
		     const char *message)
{
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", pl_err_code(code),
			      "message", message);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	size_t len = text ? strlen(text) : 0;
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = start + 512;
	int rc = -1;

	json_decref(o);
	if (!text || len > 400)
		goto out;
	if (lws_add_http_common_headers(wsi, (unsigned int)status,
					"application/json", len, &p, end))
		goto out;
	/* 426 names the protocol to upgrade to (RFC 9110, 15.5.22). */
	if (status == RELAY_HTTP_UPGRADE_REQUIRED &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_UPGRADE,
					 (const unsigned char *)"websocket", 9,
					 &p, end))
		goto out;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		goto out;
	memcpy(start, text, len);
	if (lws_write(wsi, start, len, LWS_WRITE_HTTP_FINAL) < (int)len)
		goto out;
	rc = 1;
out:
	free(text);
	return rc;
}
