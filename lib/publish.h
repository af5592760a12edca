/*
 * publish: after COMMIT, tell the relays (doc/architecture.md "How a message
 * flows", step 4, and "Redis keys").
 *
 * Every event goes to the user's channel parley:u:{user_id}; a relay holding
 * a socket of that user is subscribed to it. PUBLISH answers how many relays
 * got the event, so a recipient nobody is subscribed for has no live device:
 * they get a push job on the stream parley:push. Redis is the fast path only:
 * an event lost here is found again in the inbox, so failures are logged by
 * pl_redis and otherwise ignored, except that a connection found dead before
 * any reply (Redis restarted while it was idle) is replaced and the events
 * sent once more: nothing else would bring them to a socket that gets no
 * later event.
 *
 * What an event looks like on the bus (the "message" header line, the
 * revocation) is lib/event.h's.
 */
#ifndef PL_PUBLISH_H
#define PL_PUBLISH_H

#include <stddef.h>

#include "json.h"
#include "post.h"
#include "redis.h"

/* Approximate cap on the push streams' length, all buckets together (each
 * XADD MAXLEN ~ a PL_KEY_BUCKETS-th of it). */
#define PL_PUSH_STREAM_MAX 1000000

/*
 * Publishes the "message" frame of m to each delivery's user (with that
 * user's seq) and queues a push job for every recipient other than the sender
 * whom no relay received it for. All in one pipelined round trip each way.
 */
void pl_publish_message(struct pl_redis *r, const struct pl_message *m,
			const struct pl_delivery *deliveries, size_t n);

/*
 * The same for count messages m[k], each with deliveries[k][0..
 * n_deliveries[k]), pipelined together: a relay's batch of sends costs a
 * few round trips to Redis, not one per message.
 */
void pl_publish_messages(struct pl_redis *r, const struct pl_message *m,
			 const struct pl_delivery *const *deliveries,
			 const size_t *n_deliveries, size_t count);

/*
 * Publishes an inbox event that is not a new message (an edit, deletion or
 * reaction: event, borrowed, its object without "seq") to each delivery's
 * user with that user's seq, in one pipelined round trip. No pushes: an
 * edit or reaction wakes nobody's phone (doc/protocol.md "Pushes").
 */
void pl_publish_event(struct pl_redis *r, json_t *event,
		      const struct pl_delivery *deliveries, size_t n);

/* Publishes one frame (borrowed text) to each of users[0..n). */
void pl_publish_frame(struct pl_redis *r, const long long *users, size_t n,
		      const char *frame);

/* Announces a revoked session on parley:revoke, so relays close its sockets. */
void pl_publish_revoke(struct pl_redis *r, long long session_id,
		       long long device_id);

#endif
