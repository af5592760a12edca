#include "publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "clock.h"
#include "event.h"
#include "keys.h"
#include "log.h"
#include "banned.h"

/*
 * A user's channel: classic on one Redis; sharded on a cluster, where
 * SPUBLISH goes to the channel's slot's master and its replicas only, and
 * a relay subscribes there (relay/bus.c, doc/scale-out.md "Pub/sub").
 */
static const char *publish_verb(const struct pl_redis *r)
{
	return pl_redis_is_cluster(r) ? "SPUBLISH" : "PUBLISH";
}

static void queue_push(struct pl_redis *r, const struct pl_message *m,
		       const struct pl_delivery *d)
{
	char stream[32], user[24], conv[24], mid[24], seq[24], cap[24];
	const char *argv[] = { "XADD", stream, "MAXLEN", "~", cap, "*",
			       "user_id", user, "conversation_id", conv,
			       "message_id", mid, "seq", seq };

	snprintf(stream, sizeof(stream), PL_KEY_PUSH_STREAM_FMT,
		 pl_key_bucket(d->user_id));
	snprintf(cap, sizeof(cap), "%d", PL_PUSH_STREAM_MAX / PL_KEY_BUCKETS);
	snprintf(user, sizeof(user), "%lld", d->user_id);
	snprintf(conv, sizeof(conv), "%lld", m->conversation_id);
	snprintf(mid, sizeof(mid), "%lld", m->message_id);
	snprintf(seq, sizeof(seq), "%lld", d->seq);
	pl_redis_append(r, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
}

/* A queued PUBLISH: which message and which of its deliveries. */
struct ref {
	size_t msg, del;
};

/* Replies collected per round trip, so a big batch's pipeline stays small. */
#define PIPELINE 1024

/*
 * Reads the replies of the npending PUBLISHes queued, adding to *offline
 * those nobody received, other than the sender. Returns PL_OK or
 * PL_UNAVAILABLE.
 */
static enum pl_err collect(struct pl_redis *r, const struct pl_message *m,
			   const struct pl_delivery *const *deliveries,
			   const struct ref *pending, size_t npending,
			   struct ref **offline, size_t *noffline, size_t *cap)
{
	for (size_t i = 0; i < npending; i++) {
		const struct ref *q = &pending[i];
		struct ref *bigger;
		redisReply *rep;
		int nobody;

		if (pl_redis_read(r, &rep))
			return PL_UNAVAILABLE;
		nobody = rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 &&
			 deliveries[q->msg][q->del].user_id != m[q->msg].sender_id;
		freeReplyObject(rep);
		if (!nobody)
			continue;
		bigger = pl_array_grow(*offline, cap, *noffline,
				       sizeof(*bigger), 64);
		if (!bigger)
			continue;
		*offline = bigger;
		(*offline)[(*noffline)++] = *q;
	}
	return PL_OK;
}

/*
 * pl_publish_messages() once. Returns 1 when a reply did not come (the
 * batch may be sent again: relays drop what they already have), else 0.
 */
static int publish_batch(struct pl_redis *r, const struct pl_message *m,
			 const struct pl_delivery *const *deliveries,
			 const size_t *n_deliveries, size_t count)
{
	struct ref *pending = malloc(PIPELINE * sizeof(*pending));
	struct ref *offline = NULL;
	size_t npending = 0, noffline = 0, cap = 0, queued = 0;
	int resend = 0;

	if (!pending)
		return 0;
	for (size_t k = 0; k < count; k++) {
		long long created_us = pl_clock_parse_rfc3339_us(m[k].created_at);
		json_t *obj = pl_json_message_frame(&m[k]);

		for (size_t i = 0; obj && i < n_deliveries[k]; i++) {
			char ch[PL_EVENT_CHANNEL_BYTES];
			char *frame = pl_json_frame_with_seq(obj,
							     deliveries[k][i].seq);
			char *payload = frame ? pl_event_encode_message(
				deliveries[k][i].seq, created_us, frame) : NULL;
			const char *argv[3] = { publish_verb(r), ch, payload };

			free(frame);
			/* Out of memory: that one is left to the inbox. */
			if (!payload)
				continue;
			pl_event_channel(ch, deliveries[k][i].user_id);
			/* Fails only with the connection, replies and all. */
			if (pl_redis_append(r, 3, argv, NULL)) {
				free(payload);
				json_decref(obj);
				goto out;
			}
			free(payload);
			pending[npending++] = (struct ref){ k, i };
			if (npending == PIPELINE) {
				if (collect(r, m, deliveries, pending, npending,
					    &offline, &noffline, &cap)) {
					resend = 1;
					json_decref(obj);
					goto out;
				}
				npending = 0;
			}
		}
		json_decref(obj);
	}
	if (collect(r, m, deliveries, pending, npending, &offline, &noffline,
		    &cap)) {
		resend = 1;
		goto out;
	}
	/* Push jobs for the recipients no relay holds a socket of. */
	for (size_t i = 0; i < noffline; i++) {
		queue_push(r, &m[offline[i].msg],
			   &deliveries[offline[i].msg][offline[i].del]);
		if (++queued == PIPELINE || i + 1 == noffline) {
			for (; queued > 0; queued--) {
				redisReply *rep;

				if (pl_redis_read(r, &rep))
					goto out;
				freeReplyObject(rep);
			}
		}
	}
out:
	free(pending);
	free(offline);
	return resend;
}

void pl_publish_messages(struct pl_redis *r, const struct pl_message *m,
			 const struct pl_delivery *const *deliveries,
			 const size_t *n_deliveries, size_t count)
{
	/*
	 * A connection that died while idle (Redis restarted since it was
	 * last used) takes the whole pipeline and fails on its first read;
	 * a cluster node killed mid-batch takes the rest of it. What did not
	 * get through is found in the inbox only when a later event reveals
	 * the gap, which may never come: publish the batch once more on new
	 * connections. A relay drops an event it already sent (seq <= last),
	 * and push jobs are queued only by the attempt that was answered in
	 * full.
	 */
	if (publish_batch(r, m, deliveries, n_deliveries, count))
		publish_batch(r, m, deliveries, n_deliveries, count);
}

void pl_publish_message(struct pl_redis *r, const struct pl_message *m,
			const struct pl_delivery *deliveries, size_t n)
{
	pl_publish_messages(r, m, &deliveries, &n, 1);
}

/* Reads (and drops) the replies of queued commands: how many came. */
static size_t read_replies(struct pl_redis *r, size_t queued)
{
	size_t got = 0;

	for (; got < queued; got++) {
		redisReply *rep;

		if (pl_redis_read(r, &rep))
			break;
		freeReplyObject(rep);
	}
	return got;
}

void pl_publish_event(struct pl_redis *r, json_t *event,
		      const struct pl_delivery *deliveries, size_t n)
{
	/* As for messages: a connection that died idle gets a second try. */
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t queued = 0, got = 0;
		int broke = 0;

		for (size_t i = 0; i < n; i++) {
			char ch[PL_EVENT_CHANNEL_BYTES], *frame, *payload;
			const char *argv[3] = { publish_verb(r), ch, NULL };
			int failed;

			frame = pl_json_frame_with_seq(event, deliveries[i].seq);
			payload = frame ? pl_event_encode_message(
				deliveries[i].seq, pl_clock_now_ms() * 1000, frame) : NULL;
			free(frame);
			/* Out of memory: that one is left to the inbox. */
			if (!payload)
				continue;
			argv[2] = payload;
			pl_event_channel(ch, deliveries[i].user_id);
			failed = pl_redis_append(r, 3, argv, NULL);
			free(payload);
			if (failed) {
				broke = 1;
				break;
			}
			queued++;
		}
		got = read_replies(r, queued);
		/* A relay drops a seq it has sent already. */
		if (!broke && got == queued)
			return;
	}
}

void pl_publish_frame(struct pl_redis *r, const long long *users, size_t n,
		      const char *frame)
{
	/* As for messages: a connection that died idle gets a second try. */
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t queued = 0, got = 0;

		for (size_t i = 0; i < n; i++) {
			char ch[PL_EVENT_CHANNEL_BYTES];
			const char *argv[3] = { publish_verb(r), ch, frame };

			pl_event_channel(ch, users[i]);
			if (pl_redis_append(r, 3, argv, NULL))
				break;
			queued++;
		}
		got = read_replies(r, queued);
		if (got > 0 || got == queued)
			return;
	}
}

void pl_publish_revoke(struct pl_redis *r, long long session_id,
		       long long device_id)
{
	char *frame = pl_event_encode_revoke(session_id, device_id);
	const char *argv[3] = { "PUBLISH", PL_KEY_REVOKE_CHANNEL, frame };
	redisReply *rep;

	if (frame && pl_redis_command(r, 3, argv, NULL, 1, &rep) == PL_OK)
		freeReplyObject(rep);
	free(frame);
}
