/*
 * server: the lws side of the relay: the protocols and their callbacks,
 * which hand WebSockets to session.c, long-poll and SSE to stream.c, and
 * the inbox's wake-ups to service.c.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "pl_limits.h"
#include "relay.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "stream.h"
#include "banned.h"


static struct relay *relay_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* Reassembles a message from lws's fragments, bounded by the frame limit. */
static int receive(struct conn *c, const void *in, size_t len, int final)
{
	unsigned char *bigger;

	/*
	 * A socket being closed drops what it still reads: its close waits
	 * until the input has drained (relay_conn_writeable), since closing
	 * with input unread resets the connection and the client could lose
	 * the close frame that says why.
	 */
	if (c->state == CONN_CLOSING) {
		free(c->rx);
		c->rx = NULL;
		c->rx_len = 0;
		return 0;
	}
	if (c->rx_len + len > PL_WS_FRAME_MAX_BYTES) {
		relay_conn_close(c, 4008, "frame too large");
		return 0;
	}
	if (!c->rx && final) {
		relay_session_frame(c, in, len);
		return 0;
	}
	bigger = realloc(c->rx, c->rx_len + len + 1);
	if (!bigger)
		return -1;
	c->rx = bigger;
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (final) {
		relay_session_frame(c, (char *)c->rx, c->rx_len);
		free(c->rx);
		c->rx = NULL;
		c->rx_len = 0;
	}
	return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct pss *pss = user;
	struct relay *r;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		r = relay_of(wsi);
		if (r->draining) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
					 (unsigned char *)"server going away", 17);
			return -1;
		}
		/* Fenced (registry.c): cut off from its stores. */
		if (r->fenced) {
			static const char why[] = "relay cut off from its "
						  "stores: try again later";

			lws_close_reason(wsi, 1013, (unsigned char *)why,
					 sizeof(why) - 1);
			return -1;
		}
		/*
		 * A full relay refuses with "try again later" (the client asks
		 * discover for another relay) rather than taking sockets until
		 * its descriptors run out and connects hang unanswered.
		 */
		if (r->connections >= r->cfg->relay_capacity) {
			lws_close_reason(wsi, 1013, (unsigned char *)"relay full: "
					 "try again later", 27);
			return -1;
		}
		pss->conn = relay_conn_new(r, wsi, KIND_WS);
		return pss->conn ? 0 : -1;
	case LWS_CALLBACK_RECEIVE:
		if (!pss->conn)
			return -1;
		if (lws_frame_is_binary(wsi)) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
					 (unsigned char *)"text frames only", 16);
			return -1;
		}
		return receive(pss->conn, in, len, lws_is_final_fragment(wsi) &&
			       !lws_remaining_packet_payload(wsi));
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss->conn ? relay_conn_writeable(pss->conn) : -1;
	case LWS_CALLBACK_TIMER:
		if (pss->conn)
			relay_session_timer(pss->conn);
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (pss->conn)
			relay_session_closed(pss->conn);
		pss->conn = NULL;
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Fired on every protocol: this one handles the inbox. */
		r = lws_context_user(lws_get_context(wsi));
		if (r)
			relay_service_events(r);
		return 0;
	default:
		return 0;
	}
}

/* Reads a non-negative integer query argument: def when absent, -2 when bad. */
static long long urlarg_int(struct lws *wsi, const char *name, long long def,
			    long long max)
{
	char buf[32], *e;
	long long v;

	if (lws_get_urlarg_by_name(wsi, name, buf, sizeof(buf)) == NULL)
		return def;
	/* lws hands back "name=value" in 4.1: skip to the value. */
	e = strchr(buf, '=');
	e = e ? e + 1 : buf;
	if (!*e)
		return -2;
	v = strtoll(e, &e, 10);
	if (*e || v < 0 || v > max)
		return -2;
	return v;
}

/* The bearer token: the Authorization header, or ?token= on /events. */
static int bearer(struct lws *wsi, int sse, char *out, size_t outlen)
{
	char h[PL_TOKEN_MAX_BYTES + 16];
	int n = lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION);

	const char *v = NULL;

	if (n > 7 && strncasecmp(h, "Bearer ", 7) == 0) {
		v = h + 7;
	} else if (sse && lws_get_urlarg_by_name(wsi, "token=", h, sizeof(h))) {
		v = strchr(h, '=');
		v = v ? v + 1 : h;
	}
	if (!v || strlen(v) >= outlen)
		return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static void set_reply(struct pss *pss, struct lws *wsi, int status,
		      enum pl_err code, const char *message)
{
	pss->reply_status = status;
	snprintf(pss->reply, sizeof(pss->reply), "%s", message);
	pss->reply_len = (size_t)code;
	lws_callback_on_writable(wsi);
}

/*
 * GET /metrics: Prometheus text, written at once (a few KiB; lws buffers
 * what the socket does not take).
 */
static int write_metrics(struct lws *wsi, struct relay *r)
{
	char *text = metrics_render(&r->metrics, r->connections);
	size_t len = text ? strlen(text) : 0;
	unsigned char *buf = malloc(LWS_PRE + 512 + len);
	unsigned char *start, *p, *end;
	int rc = -1;

	if (!text || !buf)
		goto out;
	start = p = buf + LWS_PRE;
	end = start + 512;
	if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK,
					"text/plain; version=0.0.4", len, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		goto out;
	memcpy(start, text, len);
	if (lws_write(wsi, start, len, LWS_WRITE_HTTP_FINAL) < (int)len)
		goto out;
	rc = lws_http_transaction_completed(wsi) ? -1 : 0;
out:
	free(text);
	free(buf);
	return rc;
}

/* A stream's query: ?after, ?timeout, ?limit, and Last-Event-ID on SSE. */
struct stream_args {
	long long after, timeout_s, limit;
};

/*
 * Reads a stream's arguments into a. Returns 0, or -1 with the 400 answer
 * set in pss.
 */
static int stream_args(struct lws *wsi, struct pss *pss, int sse,
		       struct stream_args *a)
{
	char last_id[32];

	a->after = urlarg_int(wsi, "after=", -1, INT64_MAX);
	a->timeout_s = urlarg_int(wsi, "timeout=", 25, 60);
	a->limit = urlarg_int(wsi, "limit=", 100, 1000);
	if (sse && lws_hdr_custom_copy(wsi, last_id, sizeof(last_id),
				       "last-event-id:", 14) > 0) {
		char *e;
		long long v = strtoll(last_id, &e, 10);

		if (*e || v < 0) {
			set_reply(pss, wsi, 400, PL_BAD_REQUEST,
				  "Last-Event-ID must be a seq");
			return -1;
		}
		a->after = v;
	}
	if (a->after == -2 || a->timeout_s < 0 || a->limit < 1) {
		set_reply(pss, wsi, 400, PL_BAD_REQUEST, "after, timeout and limit "
			  "must be integers (timeout at most 60, limit 1 to 1000)");
		return -1;
	}
	return 0;
}

/* GET /poll and GET /events (doc/protocol.md "Long-poll", "Server-Sent Events"). */
static int start_http(struct lws *wsi, struct pss *pss, const char *path)
{
	struct relay *r = relay_of(wsi);
	int sse = strcmp(path, "/events") == 0;
	char token[PL_TOKEN_MAX_BYTES + 1];
	struct stream_args a;
	struct timeval tv;
	struct conn *c;

	if (strcmp(path, "/metrics") == 0)
		return write_metrics(wsi, r);
	if (strcmp(path, "/ws") == 0) {
		/* A WebSocket handshake never gets here: lws upgrades it. */
		set_reply(pss, wsi, RELAY_HTTP_UPGRADE_REQUIRED, PL_BAD_REQUEST,
			  "/ws is a WebSocket endpoint: connect with a WebSocket "
			  "client and subprotocol parley.v1");
		return 0;
	}
	if (!sse && strcmp(path, "/poll") != 0) {
		set_reply(pss, wsi, 404, PL_NOT_FOUND, "no such route on the relay");
		return 0;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) == 0) {
		set_reply(pss, wsi, 405, PL_METHOD_NOT_ALLOWED, "use GET");
		return 0;
	}
	if (stream_args(wsi, pss, sse, &a))
		return 0;
	if (bearer(wsi, sse, token, sizeof(token))) {
		set_reply(pss, wsi, 401, PL_UNAUTHORIZED,
			  "an Authorization: Bearer token is required");
		return 0;
	}
	if (r->connections >= r->cfg->relay_capacity) {
		set_reply(pss, wsi, 503, PL_UNAVAILABLE, "relay full: try again later");
		return 0;
	}
	if (r->fenced) {
		set_reply(pss, wsi, 503, PL_UNAVAILABLE, "relay cut off from its "
			  "stores: try again later");
		return 0;
	}
	c = relay_conn_new(r, wsi, sse ? KIND_SSE : KIND_POLL);
	if (!c)
		return -1;
	c->poll_limit = a.limit;
	gettimeofday(&tv, NULL);
	c->poll_limit_ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000 +
			   a.timeout_s * 1000;
	pss->conn = c;
	/*
	 * lws ends an HTTP request that sends nothing for 5 s; a poll held
	 * up to its timeout (60 s at most) or a quiet SSE stream is answered
	 * by the relay itself (poll_limit_ms, SSE keep-alive comments).
	 */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	if (relay_stream_start(c, token, a.after)) {
		relay_session_closed(c);
		pss->conn = NULL;
		set_reply(pss, wsi, 401, PL_UNAUTHORIZED, "the token is invalid or "
			  "expired");
	}
	return 0;
}

/* Plain HTTP on the relay's port: long-poll, SSE, and JSON 404s. */
static int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
			 void *user, void *in, size_t len)
{
	struct pss *pss = user;
	int rc;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		memset(pss, 0, sizeof(*pss));
		return start_http(wsi, pss, in);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->conn) {
			rc = relay_stream_writeable(pss->conn);
			if (rc == 0)
				return 0;
			/* The answer is out (or failed): this request is done. */
			relay_session_closed(pss->conn);
			pss->conn = NULL;
		} else if (pss->reply_status) {
			int status = pss->reply_status;

			pss->reply_status = 0;
			rc = relay_http_error(wsi, status, (enum pl_err)pss->reply_len,
					      pss->reply);
		} else {
			return 0;
		}
		/*
		 * Keep-alive: the connection may carry another request. lws may
		 * free pss in here, so nothing touches it afterwards.
		 */
		if (rc < 0 || lws_http_transaction_completed(wsi))
			return -1;
		return 0;
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss && pss->conn) {
			relay_session_closed(pss->conn);
			pss->conn = NULL;
		}
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * lws gives every socket an rx buffer of the protocol's size. Most frames
 * (acks, heartbeats, typing, sends) are well under 512 bytes, and a longer
 * one arrives in pieces that receive() joins: 512 rather than 4096 keeps an
 * idle socket at about 3 KiB of relay memory (bench: idle).
 */
#define WS_RX_BUFFER_BYTES 512

const struct lws_protocols relay_protocols[] = {
	{ "http", http_callback, sizeof(struct pss), 0, 0, NULL, 0 },
	{ "parley.v1", ws_callback, sizeof(struct pss), WS_RX_BUFFER_BYTES, 0,
	  NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};
