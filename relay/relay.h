/*
 * parley-relay internals: the state the relay's threads share, and how they
 * talk (doc/architecture.md "How a message flows", steps 4-6).
 *
 * Three kinds of thread:
 *   - the lws service thread owns every socket, the connection and user
 *     tables and all per-socket delivery state. server.c holds the lws
 *     protocols; session.c a socket's life from hello to close; delivery.c
 *     the in-order delivery, held events and replays; stream.c long-poll
 *     and SSE; heartbeat.c the socket's presence; conn.c the tables and the
 *     outbound queue; service.c the events other threads post and the tick
 *     that main.c runs every 250 ms;
 *   - the bus thread holds the Redis pub/sub connection: it subscribes to
 *     users' channels on request and hands what arrives to the service
 *     thread (bus.c);
 *   - store threads each own a PostgreSQL and a Redis connection and run
 *     jobs (jobs.h): authentication, inbox replay, batched sends with
 *     publishing, cursor writes, receipts, presence, the registry (store.c).
 * Other threads never touch a wsi or a struct conn: they post events
 * (events.h) keyed by connection id or user id to the service thread's
 * inbox and wake it with lws_cancel_service().
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
#include "jobs.h"
#include "metrics.h"
#include "redis.h"
#include "registry.h"
#include "token.h"

struct relay_event;
struct relay_tables;

struct relay {
	const struct pl_config *cfg;		/* borrowed */
	struct pl_token_key key;
	struct lws_context *ctx;
	struct ev_loop *loop;			/* the service thread's */
	char id[128];				/* registry id */

	/* Service thread inbox (events.c). */
	pthread_mutex_t inbox_lock;
	struct relay_event *inbox, **inbox_tail;

	/* Store jobs (jobs.c) and the threads that run them (store.c). */
	struct relay_jobs jobs;
	pthread_t *stores;
	int nstores;
	/* The relay's one registry (lib/registry.h), on a connection of its
	 * own; the store thread that runs a registry job holds the lock. */
	pthread_mutex_t registry_lock;
	struct pl_redis registry_redis;
	struct pl_registry *registry;
	/* When the bus last saw its probe come back (monotonic ms): Redis
	 * and the relay's subscription work (bus.c; registration.c fences on it). */
	atomic_llong redis_seen_ms;
	atomic_int sweeping;		/* a presence sweep is queued or running */
	int fenced;				/* service thread (registration.c) */

	/* Bus commands: subscribe (+id) and unsubscribe (-id) (bus.c). */
	pthread_mutex_t bus_lock;
	long long *bus_cmds;
	size_t bus_ncmds, bus_cap;
	int bus_wake_fd;			/* eventfd */
	int bus_stop;
	pthread_t bus;

	/* Service-thread state (conn.c, session.c, service.c). */
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

#endif
