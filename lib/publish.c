#include "publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

static void channel(char *out, size_t outlen, long long user_id)
{
	snprintf(out, outlen, "parley:u:%lld", user_id);
}

static void queue_push(struct pl_redis *r, const struct pl_message *m,
		       const struct pl_delivery *d)
{
	char user[24], conv[24], mid[24], seq[24], cap[24];
	const char *argv[] = { "XADD", "parley:push", "MAXLEN", "~", cap, "*",
			       "user_id", user, "conversation_id", conv,
			       "message_id", mid, "seq", seq };

	snprintf(cap, sizeof(cap), "%d", PL_PUSH_STREAM_MAX);
	snprintf(user, sizeof(user), "%lld", d->user_id);
	snprintf(conv, sizeof(conv), "%lld", m->conversation_id);
	snprintf(mid, sizeof(mid), "%lld", m->message_id);
	snprintf(seq, sizeof(seq), "%lld", d->seq);
	pl_redis_append(r, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
}

void pl_publish_message(struct pl_redis *r, const struct pl_message *m,
			const struct pl_delivery *deliveries, size_t n)
{
	size_t queued = 0, pushes = 0;
	unsigned char *offline = calloc(n ? n : 1, 1);
	long long created_us = pl_clock_parse_rfc3339_us(m->created_at);

	if (!offline)
		return;
	for (size_t i = 0; i < n; i++) {
		char ch[40];
		char *frame = pl_json_message_frame(m, deliveries[i].seq);
		char *payload = NULL;
		const char *argv[3] = { "PUBLISH", ch, NULL };

		if (!frame || asprintf(&payload, "M %lld %lld\n%s",
				       deliveries[i].seq, created_us, frame) < 0) {
			free(frame);
			break;
		}
		free(frame);
		argv[2] = payload;
		channel(ch, sizeof(ch), deliveries[i].user_id);
		if (pl_redis_append(r, 3, argv, NULL)) {
			free(payload);
			break;
		}
		free(payload);
		queued++;
	}
	for (size_t i = 0; i < queued; i++) {
		redisReply *rep;

		if (pl_redis_read(r, &rep))
			goto out;
		offline[i] = rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 &&
			     deliveries[i].user_id != m->sender_id;
		freeReplyObject(rep);
	}
	for (size_t i = 0; i < queued; i++) {
		if (offline[i]) {
			queue_push(r, m, &deliveries[i]);
			pushes++;
		}
	}
	for (size_t i = 0; i < pushes; i++) {
		redisReply *rep;

		if (pl_redis_read(r, &rep))
			break;
		freeReplyObject(rep);
	}
out:
	free(offline);
}

void pl_publish_frame(struct pl_redis *r, const long long *users, size_t n,
		      const char *frame)
{
	size_t queued = 0;

	for (size_t i = 0; i < n; i++) {
		char ch[40];
		const char *argv[3] = { "PUBLISH", ch, frame };

		channel(ch, sizeof(ch), users[i]);
		if (pl_redis_append(r, 3, argv, NULL))
			break;
		queued++;
	}
	for (size_t i = 0; i < queued; i++) {
		redisReply *rep;

		if (pl_redis_read(r, &rep))
			break;
		freeReplyObject(rep);
	}
}

void pl_publish_revoke(struct pl_redis *r, long long session_id,
		       long long device_id)
{
	json_t *o = json_pack("{s:I,s:I}", "session_id", (json_int_t)session_id,
			      "device_id", (json_int_t)device_id);
	char *frame = o ? json_dumps(o, JSON_COMPACT) : NULL;
	const char *argv[3] = { "PUBLISH", "parley:revoke", frame };
	redisReply *rep;

	if (frame && pl_redis_command(r, 3, argv, NULL, 1, &rep) == PL_OK)
		freeReplyObject(rep);
	free(frame);
	json_decref(o);
}
