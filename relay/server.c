/*
 * server: the lws side of the relay: the protocols, the service thread's
 * inbox, and the callbacks that feed session.c.
 */
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "log.h"
#include "session.h"

struct relay_event *relay_inbox_take(struct relay *r)
{
	struct relay_event *list;

	pthread_mutex_lock(&r->inbox_lock);
	list = r->inbox;
	r->inbox = NULL;
	r->inbox_tail = &r->inbox;
	pthread_mutex_unlock(&r->inbox_lock);
	return list;
}

void relay_handle_events_discard(struct relay *r)
{
	struct relay_event *ev = relay_inbox_take(r);

	while (ev) {
		struct relay_event *next = ev->next;

		free(ev->text);
		free(ev);
		ev = next;
	}
}

void relay_post(struct relay *r, struct relay_event *ev)
{
	ev->next = NULL;
	pthread_mutex_lock(&r->inbox_lock);
	*r->inbox_tail = ev;
	r->inbox_tail = &ev->next;
	pthread_mutex_unlock(&r->inbox_lock);
	/* The one lws call other threads may make. */
	if (r->ctx)
		lws_cancel_service(r->ctx);
}

void relay_post_event(struct relay *r, enum relay_event_kind kind,
		      uint64_t conn_id, long long user_id, long long a,
		      long long b, const char *text, size_t len)
{
	struct relay_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return;
	ev->kind = kind;
	ev->conn_id = conn_id;
	ev->user_id = user_id;
	ev->a = a;
	ev->b = b;
	if (text) {
		ev->text = malloc(len + 1);
		if (!ev->text) {
			free(ev);
			return;
		}
		memcpy(ev->text, text, len);
		ev->text[len] = '\0';
		ev->len = len;
	}
	relay_post(r, ev);
}

static struct relay *relay_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* Reassembles a message from lws's fragments, bounded by the frame limit. */
static int receive(struct conn *c, const void *in, size_t len, int final)
{
	unsigned char *bigger;

	if (c->rx_len + len > PL_WS_FRAME_MAX_BYTES) {
		lws_close_reason(c->wsi, 4008, (unsigned char *)"frame too large", 15);
		return -1;
	}
	if (!c->rx && final) {
		relay_conn_frame(c, in, len);
		return 0;
	}
	bigger = realloc(c->rx, c->rx_len + len + 1);
	if (!bigger)
		return -1;
	c->rx = bigger;
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (final) {
		relay_conn_frame(c, (char *)c->rx, c->rx_len);
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
		pss->conn = relay_conn_new(r, wsi);
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
			relay_conn_timer(pss->conn);
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (pss->conn)
			relay_conn_closed(pss->conn);
		pss->conn = NULL;
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Fired on every protocol: this one handles the inbox. */
		r = lws_context_user(lws_get_context(wsi));
		if (r)
			relay_handle_events(r);
		return 0;
	default:
		return 0;
	}
}

/* Plain HTTP on the relay's port: a JSON 404 for anything not served. */
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

const struct lws_protocols relay_protocols[] = {
	{ "http", http_callback, 0, 0, 0, NULL, 0 },
	{ "parley.v1", ws_callback, sizeof(struct pss), 4096, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};
