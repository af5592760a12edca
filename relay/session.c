/*
 * session: a connection's life on the service thread, from hello (or an
 * HTTP stream's token) through authentication and subscription to the
 * welcome, the frames a live WebSocket sends, and the close (see
 * session.h). Delivery to the socket is delivery.c's.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "array.h"
#include "bus.h"
#include "clock.h"
#include "conn.h"
#include "delivery.h"
#include "frame.h"
#include "heartbeat.h"
#include "jobs.h"
#include "log.h"
#include "relay.h"
#include "session.h"
#include "banned.h"

#define SOCKETS_PER_USER_MAX 32
#define TYPING_INTERVAL_MS 1000
/* Frames a client may send between hello and welcome (an outbox flush). */
#define PENDING_MAX_FRAMES 64
#define PENDING_MAX_BYTES (256 * 1024)

void relay_session_store_cursor(struct conn *c)
{
	struct relay *r = c->r;
	struct pl_cursor *cursors;

	if (c->acked <= c->stored || !c->device_id)
		return;
	cursors = pl_array_grow(r->cursors, &r->cursors_cap, r->ncursors,
				sizeof(*cursors), 256);
	if (!cursors)
		return;
	r->cursors = cursors;
	r->cursors[r->ncursors++] = (struct pl_cursor){ c->user_id, c->device_id,
							c->acked };
	c->stored = c->acked;
}

void relay_cursor_flush(struct relay *r)
{
	struct relay_job *j;

	if (r->ncursors == 0)
		return;
	j = relay_job_new(JOB_CURSOR, 0, 0);
	if (!j)
		return;
	/* The job takes the array; the next tick starts a new one. */
	j->as.cursors = (struct relay_job_cursors){ r->cursors, r->ncursors };
	r->cursors = NULL;
	r->ncursors = r->cursors_cap = 0;
	relay_job_submit(&r->jobs, j);
}

void relay_session_closed(struct conn *c)
{
	struct relay *r = c->r;

	/* The cursor is flushed when the socket closes (doc/architecture.md step 6). */
	relay_session_store_cursor(c);
	if (c->user) {
		struct user *u = c->user;
		struct conn **q = &u->conns;

		for (; *q; q = &(*q)->next_in_user) {
			if (*q == c) {
				*q = c->next_in_user;
				break;
			}
		}
		u->nconns--;
		if (c->state == CONN_LIVE)
			relay_heartbeat_gone(c);
		if (u->nconns == 0) {
			relay_bus_request(r, u->id, 0);
			relay_user_drop(r, u);
		}
	}
	relay_conn_free(c);
}

void relay_session_timer(struct conn *c)
{
	if (c->state == CONN_HELLO || c->state == CONN_AUTH)
		relay_conn_close(c, 4001, "no hello within 10 s");
	else if (c->state == CONN_CLOSING)
		lws_callback_on_writable(c->wsi);	/* see if it drained */
}

int relay_session_begin(struct conn *c, const struct pl_token_claims *claims,
			long long cursor)
{
	struct relay_job *j;

	c->user_id = claims->user_id;
	c->session_id = claims->session_id;
	c->device_id = claims->device_id;
	c->expires_s = claims->expires_at;
	c->last = cursor;
	c->state = CONN_AUTH;
	j = relay_job_new(JOB_AUTH, c->id, c->user_id);
	if (!j)
		return -1;
	j->as.auth = (struct relay_job_auth){ c->session_id, c->device_id };
	relay_job_submit(&c->r->jobs, j);
	return 0;
}

static void take_pending(struct conn *c);

static void welcome(struct conn *c)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I}", "type", "welcome",
			      "user_id", (json_int_t)c->user_id,
			      "device_id", (json_int_t)c->device_id,
			      "heartbeat_interval",
			      (json_int_t)c->r->cfg->presence_heartbeat_interval_s,
			      "cursor", (json_int_t)c->last);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	c->state = CONN_LIVE;
	c->keepalive_ms = pl_clock_now_ms();
	c->session_check_ms = pl_clock_mono_ms() +
			      c->r->cfg->relay_session_check_interval_s * 1000;
	if (text && c->kind == KIND_WS)
		relay_conn_queue(c, text, strlen(text));
	free(text);
	json_decref(o);
	if (c->kind == KIND_SSE)
		lws_callback_on_writable(c->wsi);
	relay_delivery_replay(c);
	relay_heartbeat_welcome(c);
	take_pending(c);
}

/* The first frame; f's cursor failed validation when rc is set. */
static void on_hello(struct conn *c, const struct relay_frame *f,
		     enum pl_err rc, const char *why_cursor)
{
	struct pl_token_claims claims;
	char why[128];

	if (!f->token || pl_token_verify(&c->r->key, f->token, time(NULL),
					 &claims, why, sizeof(why))) {
		relay_conn_close(c, 4001, "not authenticated");
		return;
	}
	if (rc) {
		relay_conn_send_error(c, rc, NULL, "%s", why_cursor);
		relay_conn_close(c, 4001, "bad hello");
		return;
	}
	/* -1: no cursor given, use the device's stored one. */
	if (relay_session_begin(c, &claims, f->cursor))
		relay_conn_close(c, 1013, "out of memory; try again later");
}

static void on_send(struct conn *c, const struct relay_frame *f)
{
	struct relay_job *j;

	/* The send rate is the user's across REST and every relay: the store
	 * thread takes it from the Redis bucket (store.c do_sends). */
	j = relay_job_new(JOB_SEND, c->id, c->user_id);
	if (j) {
		struct relay_job_send *s = &j->as.send;

		s->conversation_id = f->conversation_id;
		s->reply_to = f->extras.reply_to;
		s->n_attachments = f->extras.n_attachments;
		memcpy(s->attachment_ids, f->extras.attachment_ids,
		       sizeof(s->attachment_ids));
		s->client_msg_id = strdup(f->client_msg_id);
		s->body_len = f->body_len;
		s->body = malloc(s->body_len + 1);
		if (s->client_msg_id && s->body) {
			memcpy(s->body, f->body, s->body_len + 1);
		} else {
			relay_job_free(j);
			j = NULL;
		}
	}
	/* Out of memory or busy, nothing is stored: the client retries with
	 * the same id. */
	relay_conn_submit(c, j, f->client_msg_id);
}

static void on_ack(struct conn *c, long long seq)
{
	if (seq > c->last) {
		relay_conn_send_error(c, PL_BAD_REQUEST, NULL, "ack %lld is above %lld, the "
			   "last seq sent on this socket", seq, c->last);
		return;
	}
	/* Stored by the next tick, within 250 ms: one write per burst of acks. */
	if (seq > c->acked)
		c->acked = seq;
}

static void on_typing(struct conn *c, long long conv)
{
	long long now = pl_clock_mono_ms();
	struct relay_job *j;

	/*
	 * One typing event a second per socket, whichever conversation: each
	 * costs a query and a publish to every member. Typing is never stored,
	 * and one a second is what an indicator needs.
	 */
	if (c->typing_ms && now - c->typing_ms < TYPING_INTERVAL_MS)
		return;
	c->typing_ms = now;
	j = relay_job_new(JOB_TYPING, c->id, c->user_id);
	if (j)
		j->as.typing.conversation_id = conv;
	relay_conn_submit(c, j, NULL);
}

static void on_read(struct conn *c, long long conv, long long mid)
{
	struct relay_job *j;

	j = relay_job_new(JOB_READ, c->id, c->user_id);
	if (j)
		j->as.read = (struct relay_job_read){ c->device_id, conv, mid };
	relay_conn_submit(c, j, NULL);
}

/* Acts on a frame that parsed and validated (frame.c). */
static void dispatch(struct conn *c, const struct relay_frame *f)
{
	switch (f->type) {
	case RELAY_FRAME_SEND:
		on_send(c, f);
		break;
	case RELAY_FRAME_ACK:
		on_ack(c, f->seq);
		break;
	case RELAY_FRAME_HEARTBEAT:
		relay_heartbeat(c);
		break;
	case RELAY_FRAME_TYPING:
		on_typing(c, f->conversation_id);
		break;
	case RELAY_FRAME_READ:
		on_read(c, f->conversation_id, f->message_id);
		break;
	default:
		break;
	}
}

/*
 * Keeps a frame that came after hello, before the welcome: an app flushing
 * its outbox on reconnect sends right after hello. A client past the bound
 * is closed (4008) and resends after its next welcome.
 */
static void hold_pending(struct conn *c, const char *text, size_t len)
{
	struct frame *f;

	if (c->npending >= PENDING_MAX_FRAMES ||
	    c->pending_bytes + len > PENDING_MAX_BYTES) {
		relay_conn_close(c, 4008, "too many frames before welcome");
		return;
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		relay_conn_close(c, 1013, "out of memory; try again later");
		return;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->data, text, len);
	*c->pending_tail = f;
	c->pending_tail = &f->next;
	c->npending++;
	c->pending_bytes += len;
}

static void handle_frame(struct conn *c, const char *text, size_t len);

/* After the welcome: the held frames in the order they came. */
static void take_pending(struct conn *c)
{
	struct frame *f = c->pending;

	c->pending = NULL;
	c->pending_tail = &c->pending;
	c->npending = c->pending_bytes = 0;
	while (f) {
		struct frame *next = f->next;

		handle_frame(c, (const char *)f->data, f->len);
		free(f);
		f = next;
	}
}

/*
 * The socket's frame budget, a token bucket over every frame type
 * ([limits] frames_per_second and frames_burst). Returns 0 when the frame
 * may be taken.
 */
static int take_frame_token(struct conn *c)
{
	const struct pl_config *cfg = c->r->cfg;
	long long now;

	if (cfg->limits_frames_per_second <= 0)
		return 0;
	now = pl_clock_mono_ms();
	c->frame_tokens += (double)(now - c->frame_refill_ms) *
			   (double)cfg->limits_frames_per_second / 1000.0;
	if (c->frame_tokens > (double)cfg->limits_frames_burst)
		c->frame_tokens = (double)cfg->limits_frames_burst;
	c->frame_refill_ms = now;
	if (c->frame_tokens < 1)
		return -1;
	c->frame_tokens -= 1;
	return 0;
}

void relay_session_frame(struct conn *c, const char *text, size_t len)
{
	if (c->state == CONN_CLOSING)
		return;
	atomic_fetch_add_explicit(&c->r->metrics.frames_in, 1, memory_order_relaxed);
	if (take_frame_token(c)) {
		pl_log(PL_LOG_INFO, "session: closing conn=%llu user=%lld: over "
		       "its frame budget", (unsigned long long)c->id, c->user_id);
		atomic_fetch_add(&c->r->metrics.abuse_closes, 1);
		relay_conn_close(c, 4008, "too many frames: slow down");
		return;
	}
	if (c->state == CONN_AUTH || c->state == CONN_SUBSCRIBING) {
		/* Parsed once the socket is live, after the welcome. */
		hold_pending(c, text, len);
		return;
	}
	handle_frame(c, text, len);
}

/* Parses a frame and acts on it, in the socket's state. */
static void handle_frame(struct conn *c, const char *text, size_t len)
{
	struct relay_frame f;
	char why[256];
	enum pl_err rc;

	if (c->state == CONN_CLOSING)
		return;
	rc = relay_frame_parse(text, len, &f, why, sizeof(why));
	if (c->state == CONN_HELLO) {
		/* The first frame must be hello (doc/protocol.md "WebSocket"). */
		if (f.type == RELAY_FRAME_HELLO)
			on_hello(c, &f, rc, why);
		else
			relay_conn_close(c, 4001, "the first frame must be hello");
	} else if (f.type == RELAY_FRAME_NONE) {
		relay_conn_send_error(c, rc, NULL, "%s", why);
	} else if (f.type == RELAY_FRAME_HELLO) {
		relay_conn_send_error(c, PL_BAD_REQUEST, NULL, "already authenticated");
	} else if (rc) {
		relay_conn_send_error(c, rc, f.ref, "%s", why);
	} else {
		dispatch(c, &f);
	}
	relay_frame_release(&f);
}

void relay_session_auth_ok(struct conn *c, long long stored, long long head)
{
	struct relay *r = c->r;
	struct user *u;

	if (c->state != CONN_AUTH)
		return;
	/* Absent: the stored cursor; above the head: clamped (doc/protocol.md). */
	if (c->last < 0)
		c->last = stored;
	if (c->last > head)
		c->last = head;
	/* Acks below the stored cursor need no write: it only moves forward. */
	c->acked = c->last;
	c->stored = stored;
	/* /poll and /events store their "after" as the cursor (doc/protocol.md). */
	if (c->kind != KIND_WS) {
		c->poll_after = c->last;
		c->stored = c->last < stored ? c->last : stored;
		relay_session_store_cursor(c);
	}
	lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
	u = relay_user_find(r, c->user_id, 1);
	if (!u) {
		relay_conn_close(c, 1011, "out of memory");
		return;
	}
	if (u->nconns >= SOCKETS_PER_USER_MAX) {
		if (c->kind == KIND_WS)
			relay_conn_send_error(c, PL_RATE_LIMITED, NULL, "too many sockets for "
				   "one user");
		relay_conn_close(c, 4008, "too many sockets");
		return;
	}
	c->user = u;
	c->next_in_user = u->conns;
	u->conns = c;
	u->nconns++;
	if (u->subscribed) {
		welcome(c);
		return;
	}
	c->state = CONN_SUBSCRIBING;
	if (u->nconns == 1)
		relay_bus_request(r, u->id, 1);
}

void relay_session_subscribed(struct relay *r, long long user_id)
{
	struct user *u = relay_user_find(r, user_id, 0);

	if (!u)
		return;
	u->subscribed = 1;
	for (struct conn *c = u->conns; c; c = c->next_in_user)
		if (c->state == CONN_SUBSCRIBING)
			welcome(c);
}

