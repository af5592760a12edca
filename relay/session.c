/*
 * session: each socket's state machine, and the service thread's handling of
 * what the bus and the store threads report (see relay.h and session.h).
 *
 * Delivery rules (doc/architecture.md step 5): a socket is sent only seq =
 * last + 1. A live event below that was sent already and is dropped; one
 * above it means a gap, so it is held. Usually the missing event is only
 * late (store threads publish their batches concurrently, so a user's
 * events can reach the bus out of order) and fills the gap a moment later;
 * a gap that lasts GAP_WAIT_MS has the inbox read from `last`. Replays page through the inbox; held events are released once the gap is
 * filled. The held buffer and the outbound queue are bounded: on overflow
 * the held events are dropped (the inbox has them) and a client that does
 * not read is closed with 4008 and resumes from its cursor.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "event.h"
#include "frame.h"
#include "limits.h"
#include "log.h"
#include "session.h"
#include "validate.h"
#include "banned.h"

#define TABLE_SIZE 4096
#define HELD_MAX 256
#define OUT_MAX_FRAMES 1024
#define OUT_MAX_BYTES (4 * 1024 * 1024)
#define REPLAY_PAGE 200
#define GAP_WAIT_MS 50
#define SOCKETS_PER_USER_MAX 32
#define HELLO_TIMEOUT_US (10 * 1000000LL)
#define TYPING_INTERVAL_MS 1000
#define SSE_KEEPALIVE_MAX_MS 25000
/* Frames a client may send between hello and welcome (an outbox flush). */
#define PENDING_MAX_FRAMES 64
#define PENDING_MAX_BYTES (256 * 1024)

struct user {
	long long id;
	struct conn *conns;
	int nconns;
	int subscribed;		/* the bus confirmed the channel */
	struct user *next_in_table;
};

struct relay_tables {
	struct conn *conns[TABLE_SIZE];
	struct user *users[TABLE_SIZE];
	uint64_t next_id;
};

void relay_tables_init(struct relay *r)
{
	r->tables = calloc(1, sizeof(*r->tables));
	if (!r->tables)
		abort();
}

void relay_tables_release(struct relay *r)
{
	free(r->tables);
	r->tables = NULL;
}

struct conn *relay_conn_find(struct relay *r, uint64_t id)
{
	struct conn *c = r->tables->conns[id % TABLE_SIZE];

	while (c && c->id != id)
		c = c->next_in_table;
	return c;
}

static struct user *user_find(struct relay *r, long long id, int create)
{
	struct user **pp = &r->tables->users[(uint64_t)id % TABLE_SIZE];

	for (; *pp; pp = &(*pp)->next_in_table)
		if ((*pp)->id == id)
			return *pp;
	if (!create)
		return NULL;
	*pp = calloc(1, sizeof(**pp));
	if (*pp)
		(*pp)->id = id;
	return *pp;
}

static void user_drop(struct relay *r, struct user *u)
{
	struct user **pp = &r->tables->users[(uint64_t)u->id % TABLE_SIZE];

	for (; *pp; pp = &(*pp)->next_in_table) {
		if (*pp == u) {
			*pp = u->next_in_table;
			free(u);
			return;
		}
	}
}

struct conn *relay_conn_new(struct relay *r, struct lws *wsi,
			    enum conn_kind kind)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->jobs = relay_jobcount_new();
	if (!c->jobs) {
		free(c);
		return NULL;
	}
	c->frame_tokens = (double)r->cfg->limits_frames_burst;
	c->frame_refill_ms = pl_clock_mono_ms();
	c->id = ++r->tables->next_id;
	c->wsi = wsi;
	c->r = r;
	c->kind = kind;
	c->state = CONN_HELLO;
	c->out_tail = &c->out;
	c->pending_tail = &c->pending;
	c->next_in_table = r->tables->conns[c->id % TABLE_SIZE];
	r->tables->conns[c->id % TABLE_SIZE] = c;
	r->connections++;
	/* The hello deadline runs on a timer so the 4001 close goes out. */
	if (kind == KIND_WS)
		lws_set_timer_usecs(wsi, HELLO_TIMEOUT_US);
	return c;
}

static void free_frames(struct frame *f)
{
	while (f) {
		struct frame *next = f->next;

		free(f);
		f = next;
	}
}

static void drop_held(struct conn *c)
{
	while (c->held) {
		struct held *h = c->held;

		c->held = h->next;
		free(h->frame);
		free(h);
	}
	c->held_last = NULL;
	c->nheld = 0;
}

/* Queues the cursor for the next tick's write if it moved since the last. */
static void store_cursor(struct conn *c)
{
	struct relay *r = c->r;

	if (c->acked <= c->stored || !c->device_id)
		return;
	if (r->ncursors == r->cursors_cap) {
		size_t cap = r->cursors_cap ? r->cursors_cap * 2 : 256;
		struct pl_cursor *bigger = realloc(r->cursors, cap * sizeof(*bigger));

		if (!bigger)
			return;
		r->cursors = bigger;
		r->cursors_cap = cap;
	}
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
	j->cursors = r->cursors;
	j->ncursors = r->ncursors;
	r->cursors = NULL;
	r->ncursors = r->cursors_cap = 0;
	relay_job_submit(r, j);
}

void relay_conn_closed(struct conn *c)
{
	struct relay *r = c->r;
	struct conn **pp = &r->tables->conns[c->id % TABLE_SIZE];

	for (; *pp; pp = &(*pp)->next_in_table) {
		if (*pp == c) {
			*pp = c->next_in_table;
			break;
		}
	}
	/* The cursor is flushed when the socket closes (doc/architecture.md step 6). */
	store_cursor(c);
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
		if (c->state == CONN_LIVE) {
			struct relay_job *j = relay_job_new(JOB_PRESENCE, c->id,
							    c->user_id);

			if (j) {
				j->device_id = c->device_id;
				j->a = 0;
				relay_job_submit(r, j);
			}
		}
		if (u->nconns == 0) {
			relay_bus_request(r, u->id, 0);
			user_drop(r, u);
		}
	}
	drop_held(c);
	free_frames(c->out);
	free_frames(c->pending);
	free(c->rx);
	json_decref(c->poll_events);
	relay_jobcount_release(c->jobs);
	r->connections--;
	free(c);
}

void relay_conn_queue(struct conn *c, const char *text, size_t len)
{
	struct frame *f;

	if (c->state == CONN_CLOSING)
		return;
	if (c->nout >= OUT_MAX_FRAMES || c->out_bytes + len > OUT_MAX_BYTES) {
		pl_log(PL_LOG_INFO, "session: closing slow consumer conn=%llu "
		       "user=%lld", (unsigned long long)c->id, c->user_id);
		atomic_fetch_add(&c->r->metrics.slow_closes, 1);
		relay_conn_close(c, 4008, "slow consumer: reconnect and resume");
		return;
	}
	f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return;
	f->next = NULL;
	f->len = len;
	memcpy(f->data + LWS_PRE, text, len);
	*c->out_tail = f;
	c->out_tail = &f->next;
	c->nout++;
	c->out_bytes += len;
	lws_callback_on_writable(c->wsi);
}

void relay_conn_close(struct conn *c, int code, const char *reason)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	c->poll_done = 1;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	lws_callback_on_writable(c->wsi);
}

int relay_conn_writeable(struct conn *c)
{
	struct frame *f = c->out;

	if (f) {
		c->out = f->next;
		if (!c->out)
			c->out_tail = &c->out;
		c->nout--;
		c->out_bytes -= f->len;
		if (lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT) <
		    (int)f->len) {
			free(f);
			return -1;
		}
		atomic_fetch_add_explicit(&c->r->metrics.frames_out, 1,
					  memory_order_relaxed);
		free(f);
		if (c->out || c->state == CONN_CLOSING)
			lws_callback_on_writable(c->wsi);
		return 0;
	}
	if (c->state == CONN_CLOSING) {
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason,
				 strlen(c->close_reason));
		return -1;
	}
	return 0;
}

void relay_conn_timer(struct conn *c)
{
	if (c->state == CONN_HELLO || c->state == CONN_AUTH)
		relay_conn_close(c, 4001, "no hello within 10 s");
}

/* Sends {"type":"error",...}; ref is the client_msg_id it answers or NULL. */
static void send_error(struct conn *c, enum pl_err code, const char *ref,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void send_error(struct conn *c, enum pl_err code, const char *ref,
		       const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	json_t *o;
	char *text;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A quote cut inside a character would make json_pack() refuse msg. */
	pl_validate_utf8_scrub(msg);
	o = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "code",
		      pl_err_code(code), "message", msg);
	if (o && ref)
		json_object_set_new(o, "ref", json_string(ref));
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (text)
		relay_conn_queue(c, text, strlen(text));
	free(text);
	json_decref(o);
}

/*
 * Sends an event in the connection's own form: the frame on a WebSocket, an
 * "id:/event:/data:" block on SSE, an entry of the answer on long-poll
 * (which carries inbox events only).
 */
static void emit(struct conn *c, const char *type, long long seq,
		 const char *text, size_t len)
{
	if (c->kind == KIND_WS) {
		relay_conn_queue(c, text, len);
	} else if (c->kind == KIND_SSE) {
		char head[96];
		int n = seq > 0 ?
			snprintf(head, sizeof(head), "id: %lld\nevent: %s\ndata: ", seq,
				 type) :
			snprintf(head, sizeof(head), "event: %s\ndata: ", type);
		char *block = malloc((size_t)n + len + 3);

		if (!block)
			return;
		memcpy(block, head, (size_t)n);
		memcpy(block + n, text, len);
		memcpy(block + n + len, "\n\n", 2);
		relay_conn_queue(c, block, (size_t)n + len + 2);
		free(block);
	} else if (seq > 0 && c->poll_events &&
		   (long long)json_array_size(c->poll_events) < c->poll_limit) {
		json_error_t jerr;
		json_t *o = json_loadb(text, len, 0, &jerr);

		if (o)
			json_array_append_new(c->poll_events, o);
	}
}

/* Long-poll: the answer goes out once it holds events (or on timeout). */
static void poll_ready(struct conn *c)
{
	if (c->kind != KIND_POLL || c->poll_done)
		return;
	c->poll_done = 1;
	lws_callback_on_writable(c->wsi);
}

static void start_replay(struct conn *c)
{
	struct relay_job *j;

	if (c->replaying) {
		c->replay_again = 1;
		return;
	}
	j = relay_job_new(JOB_REPLAY, c->id, c->user_id);
	if (!j)
		return;
	j->a = c->last;
	j->b = REPLAY_PAGE;
	c->replaying = 1;
	c->replay_again = 0;
	relay_job_submit(c->r, j);
}

/* Sends held events that now follow `last`, dropping those already sent. */
static void release_held(struct conn *c)
{
	while (c->held && c->held->seq <= c->last + 1) {
		struct held *h = c->held;

		c->held = h->next;
		c->nheld--;
		if (h == c->held_last)
			c->held_last = NULL;
		if (h->seq == c->last + 1) {
			emit(c, "message", h->seq, (char *)h->frame->data + LWS_PRE,
			     h->frame->len);
			c->last = h->seq;
		}
		free(h->frame);
		free(h);
	}
}

static void hold(struct conn *c, long long seq, const char *text, size_t len)
{
	struct held **pp = &c->held, *h;

	if (c->nheld >= HELD_MAX) {
		/* The inbox has them all: page from there instead. */
		drop_held(c);
		start_replay(c);
		return;
	}
	/* Late events mostly come in order: append without a walk. */
	if (c->held_last && c->held_last->seq < seq)
		pp = &c->held_last->next;
	for (; *pp && (*pp)->seq < seq; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->seq == seq)
		return;
	h = malloc(sizeof(*h));
	if (!h)
		return;
	h->frame = malloc(sizeof(*h->frame) + LWS_PRE + len);
	if (!h->frame) {
		free(h);
		return;
	}
	h->frame->len = len;
	memcpy(h->frame->data + LWS_PRE, text, len);
	h->seq = seq;
	h->next = *pp;
	*pp = h;
	if (!h->next)
		c->held_last = h;
	if (!c->nheld++)
		c->held_since_ms = pl_clock_mono_ms();
}

/* A "message" event for this socket's user, live from the bus. */
static void deliver(struct conn *c, long long seq, const char *text, size_t len)
{
	if (c->state != CONN_LIVE || seq <= c->last)
		return;
	if (seq == c->last + 1 && !c->replaying) {
		emit(c, "message", seq, text, len);
		c->last = seq;
		release_held(c);
		poll_ready(c);
		return;
	}
	if (!c->replaying)
		atomic_fetch_add(&c->r->metrics.gaps, 1);
	/* The tick reads the inbox if the gap is still open by then. */
	hold(c, seq, text, len);
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
	struct relay_job *j;

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
	start_replay(c);
	/* The socket counts as a heartbeat from the start. */
	j = relay_job_new(JOB_PRESENCE, c->id, c->user_id);
	if (j) {
		j->device_id = c->device_id;
		j->a = 1;
		relay_job_submit(c->r, j);
		c->presence_ms = pl_clock_mono_ms();
	}
	take_pending(c);
}

/* Frames ------------------------------------------------------------------ */

static int get_int(json_t *o, const char *name, long long *out)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* The first frame; f's cursor failed validation when rc is set. */
static void on_hello(struct conn *c, const struct relay_frame *f,
		     enum pl_err rc, const char *why_cursor)
{
	struct pl_token_claims claims;
	char why[128];
	struct relay_job *j;

	if (!f->token || pl_token_verify(&c->r->key, f->token, time(NULL),
					 &claims, why, sizeof(why))) {
		relay_conn_close(c, 4001, "not authenticated");
		return;
	}
	if (rc) {
		send_error(c, rc, NULL, "%s", why_cursor);
		relay_conn_close(c, 4001, "bad hello");
		return;
	}
	c->user_id = claims.user_id;
	c->session_id = claims.session_id;
	c->device_id = claims.device_id;
	c->expires_s = claims.expires_at;
	/* -1: no cursor given, use the device's stored one. */
	c->last = f->cursor;
	c->state = CONN_AUTH;
	j = relay_job_new(JOB_AUTH, c->id, c->user_id);
	if (!j) {
		relay_conn_close(c, 1013, "out of memory; try again later");
		return;
	}
	j->session_id = c->session_id;
	j->device_id = c->device_id;
	relay_job_submit(c->r, j);
}

/*
 * Queues a job a frame asked for, within the relay's and the socket's
 * bounds; past them the frame is refused with an error (a send's with its
 * ref), never queued. Returns 0 when queued.
 */
static int submit_or_refuse(struct conn *c, struct relay_job *j,
			    const char *ref)
{
	if (relay_job_submit_counted(c->r, c->jobs, j) == 0)
		return 0;
	send_error(c, PL_UNAVAILABLE, ref, "the relay is busy; %s",
		   ref ? "retry with the same client_msg_id" : "try again later");
	return -1;
}

static void on_send(struct conn *c, const struct relay_frame *f)
{
	struct relay_job *j;

	/* The send rate is the user's across REST and every relay: the store
	 * thread takes it from the Redis bucket (store.c do_sends). */
	j = relay_job_new(JOB_SEND, c->id, c->user_id);
	if (j) {
		j->a = f->conversation_id;
		j->text = strdup(f->client_msg_id);
		j->text2_len = f->body_len;
		j->text2 = malloc(j->text2_len + 1);
	}
	if (!j || !j->text || !j->text2) {
		/* Nothing was stored: the client retries with the same id. */
		if (j) {
			free(j->text);
			free(j->text2);
			free(j);
		}
		send_error(c, PL_UNAVAILABLE, f->client_msg_id, "the relay is "
			   "out of memory; retry with the same client_msg_id");
		return;
	}
	memcpy(j->text2, f->body, j->text2_len + 1);
	submit_or_refuse(c, j, f->client_msg_id);
}

static void on_ack(struct conn *c, long long seq)
{
	if (seq > c->last) {
		send_error(c, PL_BAD_REQUEST, NULL, "ack %lld is above %lld, the "
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
	if (!j)
		return;
	j->a = conv;
	submit_or_refuse(c, j, NULL);
}

static void on_read(struct conn *c, long long conv, long long mid)
{
	struct relay_job *j;

	j = relay_job_new(JOB_READ, c->id, c->user_id);
	if (!j) {
		send_error(c, PL_UNAVAILABLE, NULL, "out of memory; try again later");
		return;
	}
	j->device_id = c->device_id;
	j->a = conv;
	j->b = mid;
	submit_or_refuse(c, j, NULL);
}

/* At most one presence write per socket per heartbeat interval: the
 * deadline it sets is presence_timeout away, so extra heartbeats add
 * nothing but Redis work. */
static void on_heartbeat(struct conn *c)
{
	long long now = pl_clock_mono_ms();
	long long every = c->r->cfg->presence_heartbeat_interval_s * 1000;
	struct relay_job *j;

	/* A heartbeat sent on the interval may come a little early. */
	if (now - c->presence_ms < every - (every / 4 < 250 ? every / 4 : 250))
		return;
	j = relay_job_new(JOB_PRESENCE, c->id, c->user_id);
	if (!j)
		return;
	j->device_id = c->device_id;
	j->a = 1;
	if (submit_or_refuse(c, j, NULL) == 0)
		c->presence_ms = now;
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
		on_heartbeat(c);
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

void relay_conn_frame(struct conn *c, const char *text, size_t len)
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
		send_error(c, rc, NULL, "%s", why);
	} else if (f.type == RELAY_FRAME_HELLO) {
		send_error(c, PL_BAD_REQUEST, NULL, "already authenticated");
	} else if (rc) {
		send_error(c, rc, f.ref, "%s", why);
	} else {
		dispatch(c, &f);
	}
	relay_frame_release(&f);
}

/* Long-poll and SSE ------------------------------------------------------- */

int relay_conn_start_http(struct conn *c, const char *token, long long after)
{
	struct pl_token_claims claims;
	char why[128];
	struct relay_job *j;

	if (!token || pl_token_verify(&c->r->key, token, time(NULL), &claims, why,
				      sizeof(why)))
		return -1;
	c->user_id = claims.user_id;
	c->session_id = claims.session_id;
	c->device_id = claims.device_id;
	c->expires_s = claims.expires_at;
	c->last = after;
	c->state = CONN_AUTH;
	if (c->kind == KIND_POLL) {
		c->poll_events = json_array();
		if (!c->poll_events)
			return -1;
	}
	j = relay_job_new(JOB_AUTH, c->id, c->user_id);
	if (!j)
		return -1;
	j->session_id = c->session_id;
	j->device_id = c->device_id;
	relay_job_submit(c->r, j);
	return 0;
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

int relay_conn_http_writeable(struct conn *c)
{
	struct frame *f;

	if (c->kind == KIND_POLL) {
		if (!c->poll_done)
			return 0;
		if (c->close_code)
			return relay_http_error(c->wsi, c->close_code == 1013 ? 503 : 401,
						c->close_code == 1013 ? PL_UNAVAILABLE :
						PL_UNAUTHORIZED, c->close_reason);
		return write_poll_answer(c);
	}
	if (c->close_code && !c->http_headers_sent)
		return relay_http_error(c->wsi, c->close_code == 1013 ? 503 : 401,
					c->close_code == 1013 ? PL_UNAVAILABLE :
					PL_UNAUTHORIZED, c->close_reason);
	if (c->state == CONN_CLOSING && !c->out)
		return -1;
	if (!c->http_headers_sent) {
		unsigned char buf[LWS_PRE + 512];
		unsigned char *start = buf + LWS_PRE, *p = start, *end = start + 500;

		if (c->state != CONN_LIVE)
			return 0;
		if (lws_add_http_common_headers(c->wsi, HTTP_STATUS_OK,
						"text/event-stream",
						LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
		    lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
						 (unsigned char *)"no-cache", 8, &p,
						 end) ||
		    lws_finalize_write_http_header(c->wsi, start, &p, end))
			return -1;
		c->http_headers_sent = 1;
		if (c->out)
			lws_callback_on_writable(c->wsi);
		return 0;
	}
	f = c->out;
	if (!f)
		return 0;
	c->out = f->next;
	if (!c->out)
		c->out_tail = &c->out;
	c->nout--;
	c->out_bytes -= f->len;
	if (lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_HTTP) <
	    (int)f->len) {
		free(f);
		return -1;
	}
	atomic_fetch_add_explicit(&c->r->metrics.frames_out, 1, memory_order_relaxed);
	free(f);
	if (c->out || c->state == CONN_CLOSING)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* Events from the other threads ------------------------------------------- */

static void on_auth_ok(struct relay *r, struct conn *c, long long stored,
		       long long head)
{
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
		store_cursor(c);
	}
	lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
	u = user_find(r, c->user_id, 1);
	if (!u) {
		relay_conn_close(c, 1011, "out of memory");
		return;
	}
	if (u->nconns >= SOCKETS_PER_USER_MAX) {
		if (c->kind == KIND_WS)
			send_error(c, PL_RATE_LIMITED, NULL, "too many sockets for "
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

static void on_subscribed(struct relay *r, long long user_id)
{
	struct user *u = user_find(r, user_id, 0);

	if (!u)
		return;
	u->subscribed = 1;
	for (struct conn *c = u->conns; c; c = c->next_in_user)
		if (c->state == CONN_SUBSCRIBING)
			welcome(c);
}

/* Commit-to-delivery latency, from the message's created_at. */
static void observe_delivery(struct relay *r, long long created_us)
{
	struct timeval tv;

	if (created_us <= 0)
		return;
	gettimeofday(&tv, NULL);
	metrics_observe(&r->metrics.deliver,
			(long long)tv.tv_sec * 1000000 + tv.tv_usec - created_us);
}

static void on_user_frame(struct relay *r, struct relay_event *ev)
{
	struct user *u = user_find(r, ev->user_id, 0);
	json_error_t jerr;
	json_t *o;
	const char *type;

	if (!u)
		return;
	/* A message: its seq and time came in the bus header (bus.c). */
	if (ev->a > 0) {
		observe_delivery(r, ev->b);
		for (struct conn *c = u->conns; c; c = c->next_in_user)
			deliver(c, ev->a, ev->text, ev->len);
		return;
	}
	o = json_loadb(ev->text, ev->len, 0, &jerr);
	type = o ? json_string_value(json_object_get(o, "type")) : NULL;
	if (type && strcmp(type, "message") != 0)
		for (struct conn *c = u->conns; c; c = c->next_in_user)
			if (c->state == CONN_LIVE)
				emit(c, type, 0, ev->text, ev->len);
	json_decref(o);
}

static void on_replay(struct conn *c, struct relay_event *ev)
{
	char *line = ev->text, *end;

	c->replaying = 0;
	if (c->state != CONN_LIVE && c->state != CONN_CLOSING)
		return;
	while (line && (end = strchr(line, '\n'))) {
		json_error_t jerr;
		json_t *o = json_loadb(line, (size_t)(end - line), 0, &jerr);
		long long seq;

		if (o && get_int(o, "seq", &seq) == 0 && seq == c->last + 1) {
			emit(c, "message", seq, line, (size_t)(end - line));
			c->last = seq;
		}
		json_decref(o);
		line = end + 1;
	}
	/* Long-poll answers with what it has; the next poll reads on. */
	if (c->kind == KIND_POLL && json_array_size(c->poll_events) > 0) {
		poll_ready(c);
		return;
	}
	if (ev->a >= REPLAY_PAGE || c->replay_again) {
		start_replay(c);
		return;
	}
	release_held(c);
	/*
	 * Still a gap: the missing seq's commit is not visible yet. The tick
	 * reads again once GAP_WAIT_MS have passed, unless the bus fills it.
	 */
	if (c->held)
		c->held_since_ms = pl_clock_mono_ms();
}

static void on_revoke(struct relay *r, struct relay_event *ev)
{
	long long sid;

	if (pl_event_decode_revoke(ev->text, ev->len, &sid))
		return;
	for (size_t b = 0; b < TABLE_SIZE; b++)
		for (struct conn *c = r->tables->conns[b]; c; c = c->next_in_table)
			if (c->session_id == sid) {
				atomic_fetch_add(&r->metrics.revoked_closes, 1);
				relay_conn_close(c, 4003, "token revoked");
			}
}

void relay_handle_events(struct relay *r)
{
	struct relay_event *ev = relay_inbox_take(r);

	while (ev) {
		struct relay_event *next = ev->next;
		struct conn *c = ev->conn_id ? relay_conn_find(r, ev->conn_id) : NULL;

		switch (ev->kind) {
		case EV_AUTH_OK:
			if (c)
				on_auth_ok(r, c, ev->a, ev->b);
			break;
		case EV_AUTH_FAIL:
			if (c && ev->a) {
				send_error(c, PL_UNAVAILABLE, NULL, "the database "
					   "is unavailable; reconnect");
				relay_conn_close(c, 1013, "try again later");
			} else if (c) {
				relay_conn_close(c, 4003, "session revoked or expired");
			}
			break;
		case EV_SUBSCRIBED:
			on_subscribed(r, ev->user_id);
			break;
		case EV_RESUBSCRIBED:
			/* Events may have been lost meanwhile, revocations too:
			 * read the inboxes, and check every session next tick. */
			for (size_t b = 0; b < TABLE_SIZE; b++)
				for (struct conn *x = r->tables->conns[b]; x;
				     x = x->next_in_table) {
					if (x->state != CONN_LIVE)
						continue;
					start_replay(x);
					x->session_check_ms = 0;
				}
			break;
		case EV_SESSION_GONE:
			if (c) {
				atomic_fetch_add(&r->metrics.revoked_closes, 1);
				relay_conn_close(c, 4003, "session revoked or expired");
			}
			break;
		case EV_USER_FRAME:
			on_user_frame(r, ev);
			break;
		case EV_REVOKE:
			on_revoke(r, ev);
			break;
		case EV_REPLAY:
			if (c)
				on_replay(c, ev);
			break;
		case EV_REPLAY_FAIL:
			/* Retried by the next tick while the gap lasts. */
			if (c) {
				c->replaying = 0;
				c->replay_again = 1;
			}
			break;
		case EV_FRAME:
			if (c)
				relay_conn_queue(c, ev->text, ev->len);
			break;
		}
		free(ev->text);
		free(ev);
		ev = next;
	}
}

/*
 * Long-poll and SSE have no heartbeat frame: while open they count as one
 * (doc/architecture.md "Presence"); SSE also writes a comment line so proxies
 * keep the stream (doc/protocol.md: at least every 25 s).
 */
static void http_tick(struct conn *c, long long now)
{
	long long every = c->r->cfg->presence_heartbeat_interval_s * 1000;

	/* The contract's SSE keepalive: a comment at least every 25 s. */
	if (every > SSE_KEEPALIVE_MAX_MS)
		every = SSE_KEEPALIVE_MAX_MS;
	if (c->state != CONN_LIVE)
		return;
	if (now - c->keepalive_ms >= every) {
		c->keepalive_ms = now;
		on_heartbeat(c);
		if (c->kind == KIND_SSE)
			relay_conn_queue(c, ": keepalive\n\n", 13);
	}
	if (c->kind == KIND_POLL && now >= c->poll_limit_ms)
		poll_ready(c);
}

/*
 * A live socket's session: closed (4003) once its token expires, and
 * queued for the next check against the database every
 * [relay] session_check_interval seconds.
 */
static void session_tick(struct conn *c, long long now_ms, long long mono)
{
	struct relay *r = c->r;

	if (c->state != CONN_LIVE)
		return;
	if (c->expires_s && now_ms / 1000 >= c->expires_s) {
		atomic_fetch_add(&r->metrics.revoked_closes, 1);
		relay_conn_close(c, 4003, "token expired");
		return;
	}
	if (mono < c->session_check_ms)
		return;
	if (r->nchecks == r->checks_cap) {
		size_t cap = r->checks_cap ? r->checks_cap * 2 : 256;
		struct relay_session_ref *bigger = realloc(r->checks,
							   cap * sizeof(*bigger));

		if (!bigger)
			return;	/* due again next tick */
		r->checks = bigger;
		r->checks_cap = cap;
	}
	r->checks[r->nchecks++] = (struct relay_session_ref){ c->id,
							      c->session_id };
	c->session_check_ms = mono + r->cfg->relay_session_check_interval_s * 1000;
}

/* Submits the sessions gathered this tick as one job. */
static void sessions_flush(struct relay *r)
{
	struct relay_job *j;

	if (r->nchecks == 0)
		return;
	j = relay_job_new(JOB_SESSIONS, 0, 0);
	if (!j)
		return;
	j->sessions = r->checks;
	j->nsessions = r->nchecks;
	r->checks = NULL;
	r->nchecks = r->checks_cap = 0;
	relay_job_submit(r, j);
}

void relay_tick(struct relay *r)
{
	long long now = pl_clock_now_ms(), mono = pl_clock_mono_ms();

	for (size_t b = 0; b < TABLE_SIZE; b++) {
		for (struct conn *c = r->tables->conns[b]; c; c = c->next_in_table) {
			store_cursor(c);
			session_tick(c, now, mono);
			if (c->kind != KIND_WS)
				http_tick(c, now);
			if (c->state == CONN_LIVE && !c->replaying &&
			    (c->replay_again || (c->held && mono -
						 c->held_since_ms >= GAP_WAIT_MS)))
				start_replay(c);
		}
	}
	relay_cursor_flush(r);
	sessions_flush(r);
}

int relay_drain(struct relay *r, int max)
{
	int closed = 0;

	for (size_t b = 0; b < TABLE_SIZE && closed < max; b++) {
		for (struct conn *c = r->tables->conns[b]; c && closed < max;
		     c = c->next_in_table) {
			if (c->state == CONN_CLOSING)
				continue;
			relay_conn_close(c, 1001, "server going away");
			closed++;
		}
	}
	return closed;
}
