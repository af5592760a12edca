/*
 * events: the service thread's inbox (see events.h).
 */
#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "relay.h"
#include "banned.h"

struct relay_event *relay_events_take(struct relay *r)
{
	struct relay_event *list;

	pthread_mutex_lock(&r->inbox_lock);
	list = r->inbox;
	r->inbox = NULL;
	r->inbox_tail = &r->inbox;
	pthread_mutex_unlock(&r->inbox_lock);
	return list;
}

void relay_event_free(struct relay_event *ev)
{
	if (!ev)
		return;
	free(ev->text);
	free(ev);
}

void relay_events_init(struct relay *r)
{
	pthread_mutex_init(&r->inbox_lock, NULL);
	r->inbox = NULL;
	r->inbox_tail = &r->inbox;
}

void relay_events_release(struct relay *r)
{
	struct relay_event *ev = relay_events_take(r);

	while (ev) {
		struct relay_event *next = ev->next;

		relay_event_free(ev);
		ev = next;
	}
	pthread_mutex_destroy(&r->inbox_lock);
}

void relay_post(struct relay *r, struct relay_event *ev)
{
	int was_empty;

	ev->next = NULL;
	pthread_mutex_lock(&r->inbox_lock);
	was_empty = r->inbox == NULL;
	*r->inbox_tail = ev;
	r->inbox_tail = &ev->next;
	pthread_mutex_unlock(&r->inbox_lock);
	/*
	 * The one lws call other threads may make. The service thread takes
	 * the whole inbox at once, so only the event that finds it empty needs
	 * to wake it: a burst costs one wake-up, not one per event.
	 */
	if (was_empty && r->ctx)
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
