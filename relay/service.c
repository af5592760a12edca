/*
 * service: the events other threads post and the tick (see service.h).
 */
#include <stdlib.h>

#include "array.h"
#include "clock.h"
#include "conn.h"
#include "delivery.h"
#include "event.h"
#include "events.h"
#include "jobs.h"
#include "relay.h"
#include "service.h"
#include "session.h"
#include "stream.h"
#include "banned.h"

static int close_revoked(struct conn *c, void *arg)
{
	const long long *sid = arg;

	if (c->session_id == *sid) {
		atomic_fetch_add(&c->r->metrics.revoked_closes, 1);
		relay_conn_close(c, 4003, "token revoked");
	}
	return 0;
}

static void on_revoke(struct relay *r, const struct relay_event *ev)
{
	long long sid;

	if (pl_event_decode_revoke(ev->text, ev->len, &sid))
		return;
	relay_conn_foreach(r, close_revoked, &sid);
}

/* Events may have been lost while the bus was down, revocations too: read
 * the inboxes, and check every session next tick. */
static int reread(struct conn *c, void *arg)
{
	(void)arg;
	if (c->state == CONN_LIVE) {
		relay_delivery_replay(c);
		c->session_check_ms = 0;
	}
	return 0;
}

/* One user's channel was subscribed again: only its sockets re-read. */
static void reread_user(struct relay *r, long long user_id)
{
	struct user *u = relay_user_find(r, user_id, 0);

	for (struct conn *c = u ? u->conns : NULL; c; c = c->next_in_user)
		reread(c, NULL);
}

static void on_auth_fail(struct conn *c, int database_failed)
{
	if (database_failed) {
		relay_conn_send_error(c, PL_UNAVAILABLE, NULL, "the database is "
				      "unavailable; reconnect");
		relay_conn_close(c, 1013, "try again later");
	} else {
		relay_conn_close(c, 4003, "session revoked or expired");
	}
}

/* The events about one connection; c is NULL once it closed. */
static void on_conn_event(struct conn *c, const struct relay_event *ev)
{
	if (!c)
		return;
	switch (ev->kind) {
	case EV_AUTH_OK:
		relay_session_auth_ok(c, ev->a, ev->b);
		break;
	case EV_AUTH_FAIL:
		on_auth_fail(c, ev->a != 0);
		break;
	case EV_SESSION_GONE:
		atomic_fetch_add(&c->r->metrics.revoked_closes, 1);
		relay_conn_close(c, 4003, "session revoked or expired");
		break;
	case EV_REPLAY:
		relay_delivery_replayed(c, ev);
		break;
	case EV_REPLAY_FAIL:
		relay_delivery_replay_failed(c);
		break;
	case EV_FRAME:
		relay_conn_queue(c, ev->text, ev->len);
		break;
	default:
		break;
	}
}

static void handle(struct relay *r, const struct relay_event *ev)
{
	switch (ev->kind) {
	case EV_SUBSCRIBED:
		relay_session_subscribed(r, ev->user_id);
		break;
	case EV_RESUBSCRIBED:
		if (ev->user_id)
			reread_user(r, ev->user_id);
		else
			relay_conn_foreach(r, reread, NULL);
		break;
	case EV_USER_FRAME:
		relay_delivery_user_frame(r, ev);
		break;
	case EV_REVOKE:
		on_revoke(r, ev);
		break;
	default:
		on_conn_event(ev->conn_id ? relay_conn_find(r, ev->conn_id) : NULL,
			      ev);
		break;
	}
}

void relay_service_events(struct relay *r)
{
	struct relay_event *ev = relay_events_take(r);

	while (ev) {
		struct relay_event *next = ev->next;

		handle(r, ev);
		relay_event_free(ev);
		ev = next;
	}
}

/*
 * A live socket's session: closed (4003) once its token expires, and
 * queued for the next check against the database every
 * [relay] session_check_interval seconds.
 */
static void session_tick(struct conn *c, long long now_ms, long long mono)
{
	struct relay *r = c->r;
	struct relay_session_ref *checks;

	if (c->state != CONN_LIVE)
		return;
	if (c->expires_s && now_ms / 1000 >= c->expires_s) {
		atomic_fetch_add(&r->metrics.revoked_closes, 1);
		relay_conn_close(c, 4003, "token expired");
		return;
	}
	if (mono < c->session_check_ms)
		return;
	checks = pl_array_grow(r->checks, &r->checks_cap, r->nchecks,
			       sizeof(*checks), 256);
	if (!checks)
		return;	/* due again next tick */
	r->checks = checks;
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
	j->as.sessions = (struct relay_job_sessions){ r->checks, r->nchecks };
	r->checks = NULL;
	r->nchecks = r->checks_cap = 0;
	relay_job_submit(&r->jobs, j);
}

/* What one tick looks at, per connection. */
struct tick {
	long long now_ms, mono_ms;
};

static int tick_conn(struct conn *c, void *arg)
{
	const struct tick *t = arg;

	relay_session_store_cursor(c);
	session_tick(c, t->now_ms, t->mono_ms);
	if (c->kind != KIND_WS)
		relay_stream_tick(c, t->now_ms);
	relay_delivery_tick(c, t->mono_ms);
	return 0;
}

void relay_service_tick(struct relay *r)
{
	struct tick t = { pl_clock_now_ms(), pl_clock_mono_ms() };

	relay_conn_foreach(r, tick_conn, &t);
	relay_cursor_flush(r);
	sessions_flush(r);
}

struct drain {
	int max, closed;
};

static int drain_conn(struct conn *c, void *arg)
{
	struct drain *d = arg;

	if (d->closed >= d->max)
		return 1;
	if (c->state != CONN_CLOSING) {
		relay_conn_close(c, 1001, "server going away");
		d->closed++;
	}
	return d->closed >= d->max;
}

int relay_service_drain(struct relay *r, int max)
{
	struct drain d = { max, 0 };

	if (max > 0)
		relay_conn_foreach(r, drain_conn, &d);
	return d.closed;
}
