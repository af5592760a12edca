/*
 * parley-relay internals: the pieces of the WebSocket relay and how they
 * talk (doc/architecture.md "How a message flows", steps 4-6).
 *
 * Three kinds of thread:
 *   - the lws service thread owns every socket, the connection and user
 *     tables and all per-socket delivery state (server.c, session.c);
 *   - the bus thread holds the Redis pub/sub connection: it subscribes to
 *     users' channels on request and hands what arrives to the service
 *     thread (bus.c);
 *   - store threads each own a PostgreSQL and a Redis connection and run
 *     jobs: authentication, inbox replay, batched sends with publishing,
 *     cursor writes, receipts, presence (store.c).
 * Other threads never touch a wsi or a struct conn: they post events keyed
 * by connection id or user id to the service thread's inbox and wake it with
 * lws_cancel_service().
 */
#ifndef RELAY_H
#define RELAY_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <ev.h>

#include "config.h"
#include "cursor.h"
#include "err.h"
#include "metrics.h"
#include "token.h"

struct relay;

/* What other threads tell the service thread. */
enum relay_event_kind {
	EV_AUTH_OK,		/* conn: session live; a = stored cursor, b = head */
	EV_AUTH_FAIL,		/* conn: a = 0 session revoked or expired (4003),
				 * a = 1 the database failed (1013) */
	EV_SUBSCRIBED,		/* user: the bus confirmed the subscription */
	EV_RESUBSCRIBED,	/* the bus reconnected: every socket re-reads */
	EV_USER_FRAME,		/* user: a frame from the user's channel (text) */
	EV_REVOKE,		/* a = session id: close its sockets (4003) */
	EV_REPLAY,		/* conn: inbox page; text = frames, one per line;
				 * a = rows, b = last seq in the page */
	EV_REPLAY_FAIL,		/* conn: the inbox could not be read now */
	EV_FRAME,		/* conn: send text as is (sent, error) */
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

/* Jobs for the store threads. */
enum relay_job_kind {
	JOB_AUTH,		/* user, session, device */
	JOB_REPLAY,		/* user, a = after seq, b = limit */
	JOB_SEND,		/* user, a = conversation; text = client_msg_id,
				 * text2 = body */
	JOB_CURSOR,		/* cursors[0..ncursors): every socket's moved cursor */
	JOB_TYPING,		/* user, a = conversation */
	JOB_READ,		/* user, device, a = conversation, b = message id */
	JOB_PRESENCE,		/* user, device, a = 1 heartbeat, 0 gone */
	JOB_SWEEP,		/* presence deadlines, once a second */
	JOB_REGISTER,		/* a = connections; b = 1 register, 0 remove */
	JOB_SESSIONS,		/* sessions[0..nsessions): live sockets' sessions */
};

/* A live socket's session, checked again while the socket is open. */
struct relay_session_ref {
	uint64_t conn_id;
	long long session_id;
};

/*
 * A connection's count of jobs waiting in the queues, shared with those
 * jobs: the service thread adds, the store thread that takes a job
 * subtracts, and whichever of the connection and its jobs lets go last
 * frees it (the connection may close while its jobs wait).
 */
struct relay_jobcount {
	atomic_int queued;
	atomic_int refs;
};

struct relay_job {
	enum relay_job_kind kind;
	uint64_t conn_id;
	long long user_id, session_id, device_id;
	long long a, b;
	char *text, *text2;	/* owned */
	size_t text2_len;
	struct pl_cursor *cursors;	/* owned */
	size_t ncursors;
	struct relay_session_ref *sessions;	/* owned */
	size_t nsessions;
	unsigned long long seq;	/* submission order (store.c) */
	struct relay_jobcount *count;	/* a client's frame asked for it */
	struct relay_job *next;
};

/* Send partitions: a conversation's sends are stored by one thread at a time. */
#define RELAY_SEND_PARTS 4

struct relay_jobq {
	struct relay_job *head, **tail;
};

struct relay {
	const struct pl_config *cfg;		/* borrowed */
	struct pl_token_key key;
	struct lws_context *ctx;
	struct ev_loop *loop;			/* the service thread's */
	char id[128];				/* registry id */

	/* Service thread inbox. */
	pthread_mutex_t inbox_lock;
	struct relay_event *inbox, **inbox_tail;

	/* Store jobs. */
	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_ready;
	struct relay_jobq hellos, others, sends[RELAY_SEND_PARTS];
	unsigned long long jobs_submitted;
	size_t jobs_waiting;	/* asked for by clients' frames, not yet taken */
	int jobs_closed;
	unsigned parts_busy;	/* send partitions being stored (store.c) */
	size_t sends_queued;	/* in sends[] */
	int sends_storing;	/* send batches taken, not yet committed */
	/* Send batches taken, and answered and published: a batch answers
	 * and publishes when the count answered reaches its ticket, so in
	 * the order the batches were taken. */
	unsigned long long send_tickets, send_turn;
	pthread_cond_t turn_done;
	pthread_t *stores;
	int nstores;

	/* Bus commands: subscribe (+id) and unsubscribe (-id). */
	pthread_mutex_t bus_lock;
	long long *bus_cmds;
	size_t bus_ncmds, bus_cap;
	int bus_wake_fd;			/* eventfd */
	int bus_stop;
	pthread_t bus;

	/* Service-thread state (server.c, session.c). */
	struct relay_tables *tables;
	long long connections;
	int draining;
	/* Cursors that moved since the last tick, written in one statement. */
	struct pl_cursor *cursors;
	size_t ncursors, cursors_cap;
	/* Sessions due for a check this tick, checked in one statement. */
	struct relay_session_ref *checks;
	size_t nchecks, checks_cap;

	struct relay_metrics metrics;	/* any thread */
};

/* Frees events nobody will handle any more (at exit). */
void relay_handle_events_discard(struct relay *r);
/* Service thread: take everything posted so far. */
struct relay_event *relay_inbox_take(struct relay *r);
/* Any thread: post an event (ownership moves) and wake the service thread. */
void relay_post(struct relay *r, struct relay_event *ev);
/* Helper to build and post an event; text is copied. */
void relay_post_event(struct relay *r, enum relay_event_kind kind,
		      uint64_t conn_id, long long user_id, long long a,
		      long long b, const char *text, size_t len);

/* Store threads (store.c). */
int relay_store_start(struct relay *r, int nthreads);
void relay_store_stop(struct relay *r);
/* Service thread: queue a job (ownership moves). */
void relay_job_submit(struct relay *r, struct relay_job *job);
/*
 * Service thread: queues a job that a client's frame asked for, counted in
 * count (borrowed; the job keeps a reference), unless the relay already
 * holds [relay] max_jobs such jobs or the connection max_jobs_per_connection:
 * then frees the job and returns -1, and the caller refuses the frame.
 */
int relay_job_submit_counted(struct relay *r, struct relay_jobcount *count,
			     struct relay_job *job);
/* A new count with the caller's reference, or NULL; released with
 * relay_jobcount_release() (any thread). */
struct relay_jobcount *relay_jobcount_new(void);
void relay_jobcount_release(struct relay_jobcount *count);
struct relay_job *relay_job_new(enum relay_job_kind kind, uint64_t conn_id,
				long long user_id);

/* Bus thread (bus.c). */
int relay_bus_start(struct relay *r);
void relay_bus_stop(struct relay *r);
/* Service thread: subscribe (1) or unsubscribe (0) a user's channel. */
void relay_bus_request(struct relay *r, long long user_id, int subscribe);

/*
 * Writes a whole JSON error answer ({"error":{code,message}}) on an HTTP
 * connection. Returns 1 when written (the caller then completes the
 * transaction), -1 when the connection must close.
 */
int relay_http_error(struct lws *wsi, int status, enum pl_err code,
		     const char *message);

/* The lws protocols (server.c). */
extern const struct lws_protocols relay_protocols[];
/* The service-thread handlers and the connection and user tables
 * (session.c). */
void relay_tables_init(struct relay *r);
void relay_tables_release(struct relay *r);
/* Handles every posted event (service thread). */
void relay_handle_events(struct relay *r);
/* Every tick of the service thread (main.c): cursors, gaps, long-poll and
 * SSE keepalives, token expiry and due session checks. */
void relay_tick(struct relay *r);
/* Submits the cursors gathered since the last call as one job (service thread). */
void relay_cursor_flush(struct relay *r);
/* Closes up to max open sockets with 1001; returns how many (service thread). */
int relay_drain(struct relay *r, int max);

#endif
