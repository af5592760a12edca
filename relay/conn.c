/*
 * conn: the connection and user tables and each connection's outbound
 * queue (see conn.h).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "relay.h"
#include "validate.h"
#include "banned.h"

#define TABLE_SIZE 4096
#define OUT_MAX_FRAMES 1024
#define OUT_MAX_BYTES (4 * 1024 * 1024)
#define HELLO_TIMEOUT_US (10 * 1000000LL)
/* A socket being closed reads what is still arriving, for this long at most,
 * looking every CLOSE_DRAIN_STEP_US (relay_conn_writeable). */
#define CLOSE_DRAIN_MS 1000
#define CLOSE_DRAIN_STEP_US 5000

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

struct user *relay_user_find(struct relay *r, long long id, int create)
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

void relay_user_drop(struct relay *r, struct user *u)
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

void relay_conn_drop_held(struct conn *c)
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

void relay_conn_free(struct conn *c)
{
	struct relay *r = c->r;
	struct conn **pp = &r->tables->conns[c->id % TABLE_SIZE];

	for (; *pp; pp = &(*pp)->next_in_table) {
		if (*pp == c) {
			*pp = c->next_in_table;
			break;
		}
	}
	relay_conn_drop_held(c);
	free_frames(c->out);
	free_frames(c->pending);
	free(c->rx);
	json_decref(c->poll_events);
	relay_jobcount_release(c->jobs);
	r->connections--;
	free(c);
}

void relay_conn_foreach(struct relay *r, int (*fn)(struct conn *c, void *arg),
			void *arg)
{
	for (size_t b = 0; b < TABLE_SIZE; b++) {
		struct conn *c = r->tables->conns[b];

		while (c) {
			struct conn *next = c->next_in_table;

			if (fn(c, arg))
				return;
			c = next;
		}
	}
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
	c->closing_ms = pl_clock_mono_ms();
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	lws_callback_on_writable(c->wsi);
}

int relay_conn_write_next(struct conn *c, enum lws_write_protocol protocol)
{
	struct frame *f = c->out;
	int rc = 0;

	if (!f)
		return 0;
	c->out = f->next;
	if (!c->out)
		c->out_tail = &c->out;
	c->nout--;
	c->out_bytes -= f->len;
	if (lws_write(c->wsi, f->data + LWS_PRE, f->len, protocol) < (int)f->len)
		rc = -1;
	else
		atomic_fetch_add_explicit(&c->r->metrics.frames_out, 1,
					  memory_order_relaxed);
	free(f);
	if (rc == 0 && (c->out || c->state == CONN_CLOSING))
		lws_callback_on_writable(c->wsi);
	return rc;
}

/* Bytes the peer sent that the socket has not read yet. */
static int input_waiting(struct conn *c)
{
	int n = 0;

	if (ioctl(lws_get_socket_fd(c->wsi), FIONREAD, &n) < 0)
		return 0;
	return n > 0;
}

int relay_conn_writeable(struct conn *c)
{
	if (c->out)
		return relay_conn_write_next(c, LWS_WRITE_TEXT);
	if (c->state == CONN_CLOSING) {
		/*
		 * Closing with input unread makes the kernel reset the
		 * connection, and a client still writing (a flood, a frame
		 * over the limit) loses the close frame that says why: read
		 * on (receive() drops it) for up to CLOSE_DRAIN_MS first.
		 */
		if (input_waiting(c) &&
		    pl_clock_mono_ms() - c->closing_ms < CLOSE_DRAIN_MS) {
			lws_set_timer_usecs(c->wsi, CLOSE_DRAIN_STEP_US);
			return 0;
		}
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason,
				 strlen(c->close_reason));
		return -1;
	}
	return 0;
}

void relay_conn_send_error(struct conn *c, enum pl_err code, const char *ref,
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

void relay_conn_emit(struct conn *c, const char *type, long long seq,
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

void relay_conn_poll_ready(struct conn *c)
{
	if (c->kind != KIND_POLL || c->poll_done)
		return;
	c->poll_done = 1;
	lws_callback_on_writable(c->wsi);
}

int relay_conn_submit(struct conn *c, struct relay_job *job, const char *ref)
{
	if (!job) {
		relay_conn_send_error(c, PL_UNAVAILABLE, ref, "the relay is out of "
				      "memory; %s", ref ? "retry with the same "
				      "client_msg_id" : "try again later");
		return -1;
	}
	if (relay_job_submit_counted(&c->r->jobs, c->jobs, job) == 0)
		return 0;
	relay_conn_send_error(c, PL_UNAVAILABLE, ref, "the relay is busy; %s",
			      ref ? "retry with the same client_msg_id" :
			      "try again later");
	return -1;
}
