/*
 * queue: the push streams parley:push:{B}, one per bucket B (lib/keys.h),
 * each read as the consumer group "notify" (doc/architecture.md "Redis
 * keys"). A job's id names its bucket ("B/ms-n"), so it is acknowledged on
 * its own stream. On one Redis one XREADGROUP reads every bucket; on a
 * cluster, where the buckets lie in different slots, each is read on its
 * own, and a round that finds nothing blocks on one bucket, in turn, for a
 * short while.
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
	for (int b = 0; b < PL_KEY_BUCKETS; b++)
		snprintf(q->claim_cursor[b], sizeof(q->claim_cursor[b]), "0-0");
	q->claim_idle_ms = cfg->notify_claim_idle_ms;
}

void notify_queue_release(struct notify_queue *q)
{
	pl_redis_release(&q->block);
	pl_redis_release(&q->cmd);
}

static void stream_name(char *out, size_t outlen, int bucket)
{
	snprintf(out, outlen, PL_KEY_PUSH_STREAM_FMT, bucket);
}

/* Creates the groups (and the streams) once; BUSYGROUP means one exists. */
static enum pl_err ensure_group(struct notify_queue *q)
{
	if (q->group_ready)
		return PL_OK;
	for (int b = 0; b < PL_KEY_BUCKETS; b++) {
		char stream[32];
		/* From 0: jobs queued before any notifier ran are sent too. */
		const char *argv[] = { "XGROUP", "CREATE", stream, NOTIFY_GROUP,
				       "0", "MKSTREAM" };
		redisReply *rep;
		int ok;

		stream_name(stream, sizeof(stream), b);
		if (pl_redis_call(&q->cmd, 6, argv, &rep))
			return PL_UNAVAILABLE;
		ok = rep->type != REDIS_REPLY_ERROR ||
		     strncmp(rep->str, "BUSYGROUP", 9) == 0;
		if (!ok)
			pl_log(PL_LOG_ERR, "queue: cannot create group '%s' on "
			       "'%s': %s", NOTIFY_GROUP, stream, rep->str);
		freeReplyObject(rep);
		if (!ok)
			return PL_INTERNAL;
	}
	q->group_ready = 1;
	pl_log(PL_LOG_INFO, "queue: reading %d push streams as consumer %s of "
	       "group %s", PL_KEY_BUCKETS, q->consumer, NOTIFY_GROUP);
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

/*
 * Parses one [id, [field, value, ...]] entry of bucket b's stream and hands
 * it to fn.
 */
static void one_entry(const redisReply *e, int b, notify_job_fn fn,
		      void *arg)
{
	struct notify_job_fields job;
	const redisReply *f;
	int n;

	memset(&job, 0, sizeof(job));
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return;
	n = snprintf(job.id, sizeof(job.id), "%d/%s", b, e->element[0]->str);
	if (n < 0 || (size_t)n >= sizeof(job.id))
		return;
	job.time_ms = strtoll(e->element[0]->str, NULL, 10);
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

static void entries(const redisReply *list, int b, notify_job_fn fn,
		    void *arg)
{
	if (!list || list->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < list->elements; i++)
		one_entry(list->element[i], b, fn, arg);
}

/* The bucket of a stream name parley:push:{B}, or -1. */
static int bucket_of(const redisReply *name)
{
	const char *open = name->type == REDIS_REPLY_STRING ?
			   strchr(name->str, '{') : NULL;
	char *end;
	long b;

	if (!open)
		return -1;
	b = strtol(open + 1, &end, 10);
	return *end == '}' && b >= 0 && b < PL_KEY_BUCKETS ? (int)b : -1;
}

/*
 * XREADGROUP of count jobs from streams first..first+n-1 (every bucket on
 * one Redis, one on a cluster), blocking up to block_ms (0: not at all).
 * Adds the jobs handed to fn to *got.
 */
static enum pl_err read_streams(struct notify_queue *q, int first, int n,
				int count, int block_ms, notify_job_fn fn,
				void *arg, int *got)
{
	char streams[PL_KEY_BUCKETS][32], cnt[16], ms[16];
	const char *argv[9 + 2 * PL_KEY_BUCKETS] = {
		"XREADGROUP", "GROUP", NOTIFY_GROUP, q->consumer, "COUNT", cnt };
	int argc = 6;
	redisReply *rep = NULL;
	enum pl_err rc;

	snprintf(cnt, sizeof(cnt), "%d", count);
	if (block_ms > 0) {
		snprintf(ms, sizeof(ms), "%d", block_ms);
		argv[argc++] = "BLOCK";
		argv[argc++] = ms;
	}
	argv[argc++] = "STREAMS";
	for (int i = 0; i < n; i++) {
		stream_name(streams[i], sizeof(streams[i]),
			    (first + i) % PL_KEY_BUCKETS);
		argv[argc++] = streams[i];
	}
	for (int i = 0; i < n; i++)
		argv[argc++] = ">";
	rc = pl_redis_command(&q->block, argc, argv, NULL, 0, &rep);
	if (rc == PL_INTERNAL)
		q->group_ready = 0;	/* NOGROUP after a Redis wipe */
	if (rc)
		return rc;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
	     i++) {
		const redisReply *s = rep->element[i];
		int b;

		if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
		    (b = bucket_of(s->element[0])) < 0)
			continue;
		if (s->element[1]->type == REDIS_REPLY_ARRAY)
			*got += (int)s->element[1]->elements;
		entries(s->element[1], b, fn, arg);
	}
	freeReplyObject(rep);
	return PL_OK;
}

enum pl_err notify_queue_read(struct notify_queue *q, int count, int block_ms,
			      notify_job_fn fn, void *arg)
{
	enum pl_err rc;
	int got = 0;

	if ((rc = ensure_group(q)))
		return rc;
	/* Stay well inside the connection's reply timeout. */
	if (block_ms > q->block.timeout_ms / 2)
		block_ms = (int)(q->block.timeout_ms / 2);
	if (!pl_redis_is_cluster(&q->block))
		return read_streams(q, 0, PL_KEY_BUCKETS, count, block_ms, fn,
				    arg, &got);
	/* A cluster: each bucket on its own, from where the last read ended. */
	for (int i = 0; i < PL_KEY_BUCKETS && got < count; i++) {
		int b = q->next_bucket;

		q->next_bucket = (b + 1) % PL_KEY_BUCKETS;
		if ((rc = read_streams(q, b, 1, count - got, 0, fn, arg, &got)))
			return rc;
	}
	if (got > 0 || block_ms <= 0)
		return PL_OK;
	/* Nothing anywhere: wait on one bucket, in turn, a little while. */
	rc = read_streams(q, q->next_bucket, 1, count, block_ms < 100 ?
			  block_ms : 100, fn, arg, &got);
	q->next_bucket = (q->next_bucket + 1) % PL_KEY_BUCKETS;
	return rc;
}

enum pl_err notify_queue_claim(struct notify_queue *q, int count,
			       notify_job_fn fn, void *arg)
{
	char idle[24], n[16];
	enum pl_err rc;

	if ((rc = ensure_group(q)))
		return rc;
	snprintf(idle, sizeof(idle), "%lld", q->claim_idle_ms);
	snprintf(n, sizeof(n), "%d", count);
	for (int b = 0; b < PL_KEY_BUCKETS; b++) {
		char stream[32];
		const char *argv[] = { "XAUTOCLAIM", stream, NOTIFY_GROUP,
				       q->consumer, idle, q->claim_cursor[b],
				       "COUNT", n };
		redisReply *rep = NULL;
		const redisReply *c;

		stream_name(stream, sizeof(stream), b);
		rc = pl_redis_command(&q->cmd, 8, argv, NULL, 0, &rep);
		if (rc == PL_INTERNAL)
			q->group_ready = 0;
		if (rc)
			return rc;
		/* [next cursor, entries, deleted ids (7.0)]: on from the cursor. */
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
			c = rep->element[0];
			if (c->type == REDIS_REPLY_STRING &&
			    c->len < NOTIFY_ID_MAX) {
				memcpy(q->claim_cursor[b], c->str, c->len);
				q->claim_cursor[b][c->len] = '\0';
			}
			entries(rep->element[1], b, fn, arg);
		}
		freeReplyObject(rep);
	}
	return PL_OK;
}

/*
 * Runs "VERB stream group [extra...] id... [tail...]" per bucket for the
 * jobs of n ids ("B/ms-n") in that bucket, head[1] being the stream.
 */
static enum pl_err by_ids(struct notify_queue *q, const char **head,
			  int nhead, const char *const *tail, int ntail,
			  const char *const *ids, int n)
{
	const char **argv = calloc((size_t)(nhead + n + ntail), sizeof(*argv));
	enum pl_err worst = PL_OK;

	if (!argv)
		return PL_INTERNAL;
	for (int b = 0; b < PL_KEY_BUCKETS; b++) {
		char stream[32], prefix[16];
		size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "%d/", b);
		redisReply *rep = NULL;
		enum pl_err rc;
		int k = 0;

		for (int i = 0; i < n; i++)
			if (strncmp(ids[i], prefix, plen) == 0)
				argv[nhead + k++] = ids[i] + plen;
		if (k == 0)
			continue;
		stream_name(stream, sizeof(stream), b);
		head[1] = stream;
		memcpy(argv, head, (size_t)nhead * sizeof(*argv));
		if (ntail > 0)
			memcpy(argv + nhead + k, tail, (size_t)ntail * sizeof(*argv));
		rc = pl_redis_command(&q->cmd, nhead + k + ntail, argv, NULL, 1,
				      &rep);
		if (rep)
			freeReplyObject(rep);
		if (rc)
			worst = rc;
	}
	free(argv);
	return worst;
}

enum pl_err notify_queue_ack(struct notify_queue *q, const char *const *ids,
			     int n)
{
	const char *head[] = { "XACK", NULL, NOTIFY_GROUP };

	if (n <= 0)
		return PL_OK;
	return by_ids(q, head, 3, NULL, 0, ids, n);
}

enum pl_err notify_queue_touch(struct notify_queue *q, const char *const *ids,
			       int n)
{
	const char *head[] = { "XCLAIM", NULL, NOTIFY_GROUP, q->consumer, "0" };
	const char *tail[] = { "JUSTID" };

	if (n <= 0)
		return PL_OK;
	return by_ids(q, head, 5, tail, 1, ids, n);
}
