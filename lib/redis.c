#include "redis.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "banned.h"

void pl_redis_init(struct pl_redis *r, const struct pl_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->host = strdup(cfg->redis_host);
	if (!r->host)
		abort();
	r->port = (int)cfg->redis_port;
	r->timeout_ms = cfg->redis_timeout_ms;
}

static void drop(struct pl_redis *r)
{
	if (r->ctx)
		redisFree(r->ctx);
	r->ctx = NULL;
}

void pl_redis_disconnect(struct pl_redis *r)
{
	drop(r);
}

void pl_redis_release(struct pl_redis *r)
{
	drop(r);
	free(r->host);
	memset(r, 0, sizeof(*r));
}

enum pl_err pl_redis_ensure(struct pl_redis *r)
{
	struct timeval tv = { r->timeout_ms / 1000,
			      (r->timeout_ms % 1000) * 1000 };

	if (r->ctx)
		return PL_OK;
	if (r->host[0] == '/')
		r->ctx = redisConnectUnixWithTimeout(r->host, tv);
	else
		r->ctx = redisConnectWithTimeout(r->host, r->port, tv);
	if (!r->ctx || r->ctx->err) {
		if (!r->was_down)
			pl_log(PL_LOG_ERR, "redis: cannot connect to redis at "
			       "'%s:%d': %s", r->host, r->port,
			       r->ctx ? r->ctx->errstr : "out of memory");
		r->was_down = 1;
		drop(r);
		return PL_UNAVAILABLE;
	}
	if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
		drop(r);
		return PL_UNAVAILABLE;
	}
	if (r->was_down)
		pl_log(PL_LOG_INFO, "redis: reconnected to redis at '%s:%d'",
		       r->host, r->port);
	r->was_down = 0;
	return PL_OK;
}

/*
 * pl_redis_command without the EVALSHA rewrite. With noscript, a NOSCRIPT
 * error reply sets *noscript instead of being logged.
 */
static enum pl_err command(struct pl_redis *r, int argc, const char **argv,
			   const size_t *argvlen, int retry_ok,
			   redisReply **reply, int *noscript)
{
	*reply = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		redisReply *rep;

		if (pl_redis_ensure(r))
			return PL_UNAVAILABLE;
		rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
		if (!rep) {
			if (!r->was_down)
				pl_log(PL_LOG_WARN, "redis: connection lost: %s",
				       r->ctx->errstr);
			r->was_down = 1;
			drop(r);
			if (retry_ok && attempt == 0)
				continue;
			return PL_UNAVAILABLE;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			if (noscript && strncmp(rep->str, "NOSCRIPT", 8) == 0)
				*noscript = 1;
			else
				pl_log(PL_LOG_ERR, "redis: '%s' failed: %s",
				       argv[0], rep->str);
			freeReplyObject(rep);
			return PL_INTERNAL;
		}
		*reply = rep;
		return PL_OK;
	}
	return PL_UNAVAILABLE;
}

/* The script's SHA1 as SCRIPT LOAD names it (cached), or NULL. */
static const char *script_sha(struct pl_redis *r, const char *script,
			      int reload)
{
	const char *argv[3] = { "SCRIPT", "LOAD", script };
	redisReply *rep;
	int i;

	for (i = 0; i < PL_REDIS_SCRIPTS && r->scripts[i].text; i++)
		if (r->scripts[i].text == script)
			break;
	if (i == PL_REDIS_SCRIPTS)
		return NULL;
	if (r->scripts[i].text && !reload)
		return r->scripts[i].sha;
	if (command(r, 3, argv, NULL, 1, &rep, NULL))
		return NULL;
	if (rep->type != REDIS_REPLY_STRING ||
	    rep->len >= sizeof(r->scripts[i].sha)) {
		freeReplyObject(rep);
		return NULL;
	}
	memcpy(r->scripts[i].sha, rep->str, rep->len + 1);
	r->scripts[i].text = script;
	freeReplyObject(rep);
	return r->scripts[i].sha;
}

enum pl_err pl_redis_command(struct pl_redis *r, int argc, const char **argv,
			     const size_t *argvlen, int retry_ok,
			     redisReply **reply)
{
	const char *args[PL_REDIS_EVAL_ARGS_MAX];
	enum pl_err rc = PL_INTERNAL;
	int noscript = 0;

	if (argc < 2 || argc > PL_REDIS_EVAL_ARGS_MAX || argvlen ||
	    strcmp(argv[0], "EVAL") != 0)
		return command(r, argc, argv, argvlen, retry_ok, reply, NULL);
	memcpy(args, argv, (size_t)argc * sizeof(*args));
	args[0] = "EVALSHA";
	for (int attempt = 0; attempt < 2; attempt++) {
		args[1] = script_sha(r, argv[1], attempt > 0);
		if (!args[1])
			break;
		noscript = 0;
		rc = command(r, argc, args, NULL, retry_ok, reply, &noscript);
		if (!noscript)
			return rc;
	}
	/* No SHA (or the table is full): the plain EVAL does it. */
	return command(r, argc, argv, NULL, retry_ok, reply, NULL);
}

enum pl_err pl_redis_append(struct pl_redis *r, int argc, const char **argv,
			    const size_t *argvlen)
{
	if (pl_redis_ensure(r))
		return PL_UNAVAILABLE;
	if (redisAppendCommandArgv(r->ctx, argc, argv, argvlen) != REDIS_OK) {
		drop(r);
		return PL_UNAVAILABLE;
	}
	return PL_OK;
}

enum pl_err pl_redis_read(struct pl_redis *r, redisReply **reply)
{
	void *rep = NULL;

	*reply = NULL;
	if (!r->ctx)
		return PL_UNAVAILABLE;
	if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
		if (!r->was_down)
			pl_log(PL_LOG_WARN, "redis: connection lost: %s",
			       r->ctx->errstr);
		r->was_down = 1;
		drop(r);
		return PL_UNAVAILABLE;
	}
	*reply = rep;
	return PL_OK;
}

enum pl_err pl_redis_ping(struct pl_redis *r)
{
	const char *argv[] = { "PING" };
	redisReply *rep;
	enum pl_err rc = pl_redis_command(r, 1, argv, NULL, 1, &rep);

	if (rep)
		freeReplyObject(rep);
	return rc == PL_OK ? PL_OK : PL_UNAVAILABLE;
}
