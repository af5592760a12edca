/*
 * delivery: in-order delivery to each connection (see delivery.h).
 *
 * Delivery rules (doc/architecture.md step 5): a socket is sent only seq =
 * last + 1. A live event below that was sent already and is dropped; one
 * above it means a gap, so it is held. Usually the missing event is only
 * late (store threads publish their batches concurrently, so a user's
 * events can reach the bus out of order) and fills the gap a moment later;
 * a gap that lasts GAP_WAIT_MS has the inbox read from `last`. Replays
 * page through the inbox; held events are released once the gap is filled.
 * The held buffer is bounded: on overflow the held events are dropped (the
 * inbox has them) and the inbox is read instead. The outbound queue is
 * bounded too (conn.c).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "conn.h"
#include "delivery.h"
#include "events.h"
#include "frame.h"
#include "jobs.h"
#include "relay.h"
#include "banned.h"

#define HELD_MAX 256
#define REPLAY_PAGE 200
#define GAP_WAIT_MS 50

void relay_delivery_replay(struct conn *c)
{
	struct relay_job *j;

	if (c->replaying) {
		c->replay_again = 1;
		return;
	}
	j = relay_job_new(JOB_REPLAY, c->id, c->user_id);
	if (!j)
		return;
	j->as.replay.after_seq = c->last;
	j->as.replay.limit = REPLAY_PAGE;
	c->replaying = 1;
	c->replay_again = 0;
	relay_job_submit(&c->r->jobs, j);
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
			relay_conn_emit(c, "message", h->seq, (char *)h->frame->data + LWS_PRE,
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
		relay_conn_drop_held(c);
		relay_delivery_replay(c);
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
		relay_conn_emit(c, "message", seq, text, len);
		c->last = seq;
		release_held(c);
		relay_conn_poll_ready(c);
		return;
	}
	if (!c->replaying)
		atomic_fetch_add(&c->r->metrics.gaps, 1);
	/* The tick reads the inbox if the gap is still open by then. */
	hold(c, seq, text, len);
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

void relay_delivery_user_frame(struct relay *r, const struct relay_event *ev)
{
	struct user *u = relay_user_find(r, ev->user_id, 0);
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
				relay_conn_emit(c, type, 0, ev->text, ev->len);
	json_decref(o);
}

void relay_delivery_replayed(struct conn *c, const struct relay_event *ev)
{
	char *line = ev->text, *end;

	c->replaying = 0;
	if (c->state != CONN_LIVE && c->state != CONN_CLOSING)
		return;
	while (line && (end = strchr(line, '\n'))) {
		json_error_t jerr;
		json_t *o = json_loadb(line, (size_t)(end - line), 0, &jerr);
		long long seq;

		if (o && relay_frame_get_int(o, "seq", &seq) == 0 && seq == c->last + 1) {
			relay_conn_emit(c, "message", seq, line, (size_t)(end - line));
			c->last = seq;
		}
		json_decref(o);
		line = end + 1;
	}
	/* Long-poll answers with what it has; the next poll reads on. */
	if (c->kind == KIND_POLL && json_array_size(c->poll_events) > 0) {
		relay_conn_poll_ready(c);
		return;
	}
	if (ev->a >= REPLAY_PAGE || c->replay_again) {
		relay_delivery_replay(c);
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

void relay_delivery_replay_failed(struct conn *c)
{
	/* Retried by the next tick while the gap lasts. */
	c->replaying = 0;
	c->replay_again = 1;
}

void relay_delivery_tick(struct conn *c, long long mono_ms)
{
	if (c->state == CONN_LIVE && !c->replaying &&
	    (c->replay_again || (c->held && mono_ms - c->held_since_ms >=
				 GAP_WAIT_MS)))
		relay_delivery_replay(c);
}
