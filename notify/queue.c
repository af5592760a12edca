/*
 * queue: the push stream parley:push as the consumer group "notify"
 * (doc/architecture.md "Redis keys").
 *
 * Delivery is at least once: a job stays in the group's pending list until
 * notify_queue_ack(). A notifier that dies leaves its jobs pending; after
 * claim_idle_ms another one takes them with XAUTOCLAIM. A live notifier
 * keeps the jobs it still works on fresh with notify_queue_touch(), so a
 * slow retry is never taken over and sent twice. XREADGROUP ... BLOCK runs
 * on its own connection (doc/architecture.md "hiredis": BLOCK stalls it).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "banned.h"

void notify_queue_init(struct notify_queue *q, const struct pl_config *cfg)
{
	char host[64] = "localhost";

	memset(q, 0, sizeof(*q));
	pl_redis_init(&q->block, cfg);
	pl_redis_init(&q->cmd, cfg);
	gethostname(host, sizeof(host) - 1);
	/* Host and pid: a restarted notifier never inherits a dead one's name. */
	snprintf(q->consumer, sizeof(q->consumer), "%s-%ld", host,
		 (long)getpid());
	snprintf(q->claim_cursor, sizeof(q->claim_cursor), "0-0");
	q->claim_idle_ms = cfg->notify_claim_idle_ms;
}

void notify_queue_release(struct notify_queue *q)
{
	pl_redis_release(&q->block);
	pl_redis_release(&q->cmd);
}

/* Creates the group (and the stream) once; BUSYGROUP means it exists. */
static enum pl_err ensure_group(struct notify_queue *q)
{
	redisReply *rep;
	int ok;

	if (q->group_ready)
		return PL_OK;
	if (pl_redis_ensure(&q->cmd))
		return PL_UNAVAILABLE;
	/* From 0: jobs queued before the first notifier ever ran are sent too. */
	rep = redisCommand(q->cmd.ctx, "XGROUP CREATE %s %s 0 MKSTREAM",
			   NOTIFY_STREAM, NOTIFY_GROUP);
	if (!rep) {
		/* A stale connection (Redis restarted): connect again next time. */
		pl_redis_disconnect(&q->cmd);
		return PL_UNAVAILABLE;
	}
	ok = rep->type != REDIS_REPLY_ERROR ||
	     strncmp(rep->str, "BUSYGROUP", 9) == 0;
	if (!ok)
		pl_log(PL_LOG_ERR, "queue: cannot create group '%s' on '%s': %s",
		       NOTIFY_GROUP, NOTIFY_STREAM, rep->str);
	freeReplyObject(rep);
	if (!ok)
		return PL_INTERNAL;
	q->group_ready = 1;
	pl_log(PL_LOG_INFO, "queue: reading '%s' as consumer %s of group %s",
	       NOTIFY_STREAM, q->consumer, NOTIFY_GROUP);
	return PL_OK;
}

static int to_ll(const redisReply *r, long long *out)
{
	char buf[32], *end;

	if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 ||
	    r->len >= sizeof(buf))
		return -1;
	memcpy(buf, r->str, r->len);
	buf[r->len] = '\0';
	*out = strtoll(buf, &end, 10);
	return *end ? -1 : 0;
}

/* Parses one [id, [field, value, ...]] entry and hands it to fn. */
static void one_entry(const redisReply *e, notify_job_fn fn, void *arg)
{
	struct notify_job_fields job;
	const redisReply *f;

	memset(&job, 0, sizeof(job));
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= NOTIFY_ID_MAX)
		return;
	memcpy(job.id, e->element[0]->str, e->element[0]->len);
	job.time_ms = strtoll(job.id, NULL, 10);
	f = e->element[1];
	job.valid = f->type == REDIS_REPLY_ARRAY;
	for (size_t i = 0; job.valid && i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i];
		long long *dst = NULL;

		if (k->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "user_id") == 0)
			dst = &job.user_id;
		else if (strcmp(k->str, "conversation_id") == 0)
			dst = &job.conversation_id;
		else if (strcmp(k->str, "message_id") == 0)
			dst = &job.message_id;
		else if (strcmp(k->str, "seq") == 0)
			dst = &job.seq;
		if (dst && to_ll(f->element[i + 1], dst))
			job.valid = 0;
	}
	if (job.user_id <= 0 || job.conversation_id <= 0 ||
	    job.message_id <= 0 || job.seq <= 0)
		job.valid = 0;
	fn(&job, arg);
}

static void entries(const redisReply *list, notify_job_fn fn, void *arg)
{
	if (!list || list->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < list->elements; i++)
		one_entry(list->element[i], fn, arg);
}

enum pl_err notify_queue_read(struct notify_queue *q, int count, int block_ms,
			      notify_job_fn fn, void *arg)
{
	char n[16], ms[16];
	const char *argv[] = { "XREADGROUP", "GROUP", NOTIFY_GROUP, q->consumer,
			       "COUNT", n, "BLOCK", ms, "STREAMS",
			       NOTIFY_STREAM, ">" };
	int argc = (int)(sizeof(argv) / sizeof(argv[0]));
	redisReply *rep = NULL;
	enum pl_err rc;

	if ((rc = ensure_group(q)))
		return rc;
	/* Stay well inside the connection's reply timeout. */
	if (block_ms > q->block.timeout_ms / 2)
		block_ms = (int)(q->block.timeout_ms / 2);
	snprintf(n, sizeof(n), "%d", count);
	snprintf(ms, sizeof(ms), "%d", block_ms);
	if (block_ms <= 0) {
		/* No BLOCK at all: drop the two arguments. */
		memmove(&argv[6], &argv[8], 3 * sizeof(argv[0]));
		argc -= 2;
	}
	rc = pl_redis_command(&q->block, argc, argv, NULL, 0, &rep);
	if (rc == PL_INTERNAL)
		q->group_ready = 0;	/* NOGROUP after a Redis wipe */
	if (rc)
		return rc;
	if (rep->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < rep->elements; i++) {
			const redisReply *s = rep->element[i];

			if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
				entries(s->element[1], fn, arg);
		}
	}
	freeReplyObject(rep);
	return PL_OK;
}

enum pl_err notify_queue_claim(struct notify_queue *q, int count,
			       notify_job_fn fn, void *arg)
{
	char idle[24], n[16];
	const char *argv[] = { "XAUTOCLAIM", NOTIFY_STREAM, NOTIFY_GROUP,
			       q->consumer, idle, q->claim_cursor, "COUNT", n };
	redisReply *rep = NULL;
	enum pl_err rc;

	if ((rc = ensure_group(q)))
		return rc;
	snprintf(idle, sizeof(idle), "%lld", q->claim_idle_ms);
	snprintf(n, sizeof(n), "%d", count);
	rc = pl_redis_command(&q->cmd, 8, argv, NULL, 0, &rep);
	if (rc == PL_INTERNAL)
		q->group_ready = 0;
	if (rc)
		return rc;
	/* [next cursor, entries, deleted ids (7.0)]: walk on from the cursor. */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
		const redisReply *c = rep->element[0];

		if (c->type == REDIS_REPLY_STRING && c->len < NOTIFY_ID_MAX) {
			memcpy(q->claim_cursor, c->str, c->len);
			q->claim_cursor[c->len] = '\0';
		}
		entries(rep->element[1], fn, arg);
	}
	freeReplyObject(rep);
	return PL_OK;
}

/* Runs "VERB stream group [extra...] id..." for n ids. */
static enum pl_err by_ids(struct notify_queue *q, const char *const *head,
			  int nhead, const char *const *tail, int ntail,
			  const char *const *ids, int n)
{
	const char **argv = calloc((size_t)(nhead + n + ntail), sizeof(*argv));
	redisReply *rep = NULL;
	enum pl_err rc;

	if (!argv)
		return PL_INTERNAL;
	/* memcpy() must not see a NULL source, even for zero bytes. */
	memcpy(argv, head, (size_t)nhead * sizeof(*argv));
	if (n > 0)
		memcpy(argv + nhead, ids, (size_t)n * sizeof(*argv));
	if (ntail > 0)
		memcpy(argv + nhead + n, tail, (size_t)ntail * sizeof(*argv));
	rc = pl_redis_command(&q->cmd, nhead + n + ntail, argv, NULL, 1, &rep);
	if (rep)
		freeReplyObject(rep);
	free(argv);
	return rc;
}

enum pl_err notify_queue_ack(struct notify_queue *q, const char *const *ids,
			     int n)
{
	const char *head[] = { "XACK", NOTIFY_STREAM, NOTIFY_GROUP };

	if (n <= 0)
		return PL_OK;
	return by_ids(q, head, 3, NULL, 0, ids, n);
}

enum pl_err notify_queue_touch(struct notify_queue *q, const char *const *ids,
			       int n)
{
	const char *head[] = { "XCLAIM", NOTIFY_STREAM, NOTIFY_GROUP,
			       q->consumer, "0" };
	const char *tail[] = { "JUSTID" };

	if (n <= 0)
		return PL_OK;
	return by_ids(q, head, 5, tail, 1, ids, n);
}
