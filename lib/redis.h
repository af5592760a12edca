/*
 * redis: one synchronous Redis connection and its recovery.
 *
 * A struct pl_redis belongs to one thread. Like pl_db it connects lazily and
 * reconnects on the next use after a failure, with a bounded timeout on every
 * connect and reply, so a Redis outage costs a request at most one timeout and
 * never a hang. Redis is never the only copy of anything (doc/architecture.md),
 * so callers treat PL_UNAVAILABLE from here as "degrade", not "fail".
 */
#ifndef PL_REDIS_H
#define PL_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

/* Scripts run with EVALSHA once SCRIPT LOAD has named them (see below). */
#define PL_REDIS_SCRIPTS 8

struct pl_redis {
	redisContext *ctx;	/* NULL while disconnected */
	struct {
		const char *text;	/* a static script, by address */
		char sha[48];
	} scripts[PL_REDIS_SCRIPTS];
	char *host;		/* owned; a path starting with '/' is a socket */
	int port;
	long long timeout_ms;
	int was_down;
};

/* Copies the connection settings from cfg; does not connect. */
void pl_redis_init(struct pl_redis *r, const struct pl_config *cfg);

/* Disconnects and frees what r owns; r needs pl_redis_init() again. */
void pl_redis_release(struct pl_redis *r);

/*
 * Closes the connection (after a broken reply) and keeps the settings: the
 * next command connects again.
 */
void pl_redis_disconnect(struct pl_redis *r);

/* Connects if needed. Returns PL_OK or PL_UNAVAILABLE (logged once). */
enum pl_err pl_redis_ensure(struct pl_redis *r);

/* An EVAL with more arguments than this is sent as the script's text. */
#define PL_REDIS_EVAL_ARGS_MAX 320

/*
 * Runs one command given as argc strings (argv, with lengths argvlen or NULL
 * for C strings). On PL_OK *reply holds the reply, which the caller frees
 * with freeReplyObject(); a Redis error reply is PL_INTERNAL (logged) and
 * *reply is NULL. A broken connection is closed, retried once by reconnecting
 * if retry_ok, else PL_UNAVAILABLE.
 */
enum pl_err pl_redis_command(struct pl_redis *r, int argc, const char **argv,
			     const size_t *argvlen, int retry_ok,
			     redisReply **reply);

/*
 * Pipelining: queue commands with pl_redis_append(), then collect exactly
 * one reply per queued command with pl_redis_read(), in order. Nothing is
 * sent before the first read. Both return PL_OK or PL_UNAVAILABLE; after
 * PL_UNAVAILABLE the connection is closed and later reads fail too, so a
 * caller may stop reading at the first failure. A reply from pl_redis_read()
 * (also an error reply) is the caller's to freeReplyObject().
 */
enum pl_err pl_redis_append(struct pl_redis *r, int argc, const char **argv,
			    const size_t *argvlen);
enum pl_err pl_redis_read(struct pl_redis *r, redisReply **reply);

/* Sends PING. Returns PL_OK or PL_UNAVAILABLE. */
enum pl_err pl_redis_ping(struct pl_redis *r);

#endif
