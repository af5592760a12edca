/*
 * events: what the bus and store threads tell the service thread, and the
 * inbox it goes through. Other threads never touch a wsi or a struct conn:
 * they post events keyed by connection id or user id and wake the service
 * thread with lws_cancel_service(), the one lws call they may make; the
 * service thread takes the whole inbox at once (service.c handles it).
 */
#ifndef RELAY_EVENTS_H
#define RELAY_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct relay;

enum relay_event_kind {
	EV_AUTH_OK,		/* conn: session live; a = stored cursor, b = head */
	EV_AUTH_FAIL,		/* conn: a = 0 the session is revoked or
				 * expired (close 4003; HTTP 401); a = 1 the
				 * database failed (an error "unavailable" and
				 * close 1013 "try again later"; HTTP 503) */
	EV_SUBSCRIBED,		/* user: the bus confirmed the subscription */
	EV_RESUBSCRIBED,	/* the bus subscribed again: every socket
				 * re-reads, or (user) that user's sockets */
	EV_USER_FRAME,		/* user: a frame from the user's channel (text);
				 * a message's seq in a and created_at (epoch
				 * microseconds) in b, else a = 0 */
	EV_REVOKE,		/* text: a revocation (lib/event.h); close the
				 * session's sockets (4003) */
	EV_REPLAY,		/* conn: inbox page; text = frames, one per line;
				 * a = rows, b = last seq in the page */
	EV_REPLAY_FAIL,		/* conn: the inbox could not be read now */
	EV_FRAME,		/* conn: send text as is (sent, read, error) */
	EV_SESSION_GONE,	/* conn: its session was revoked or expired (4003) */
};

struct relay_event {
	enum relay_event_kind kind;
	uint64_t conn_id;
	long long user_id;
	long long a, b;
	char *text;		/* owned, NUL-terminated, or NULL */
	size_t len;
	struct relay_event *next;
};

/* Sets up the inbox (before any thread posts). */
void relay_events_init(struct relay *r);
/* Frees the events nobody will handle any more, then the inbox (at exit). */
void relay_events_release(struct relay *r);
/* Service thread: takes everything posted so far, oldest first; the caller
 * frees each event with relay_event_free(). */
struct relay_event *relay_events_take(struct relay *r);
/* Frees ev and its text. */
void relay_event_free(struct relay_event *ev);
/* Any thread: posts an event (ownership moves) and wakes the service thread. */
void relay_post(struct relay *r, struct relay_event *ev);
/* Builds and posts an event; text (len bytes, or NULL) is copied. Out of
 * memory, nothing is posted. */
void relay_post_event(struct relay *r, enum relay_event_kind kind,
		      uint64_t conn_id, long long user_id, long long a,
		      long long b, const char *text, size_t len);

#endif
