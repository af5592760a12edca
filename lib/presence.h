/*
 * presence: the layout of a user's presence in Redis, and its writes and
 * reads (doc/architecture.md "Presence"; key names in lib/keys.h).
 *
 * A user's hash PL_KEY_PRESENCE_FMT holds a field "d:{device_id}" per
 * device with its deadline in epoch milliseconds, "last_seen" in epoch
 * milliseconds, and "state", what the user's friends were last told
 * ("online" or "offline"). PL_KEY_PRESENCE_DEADLINES orders every device's
 * deadline and PL_KEY_PRESENCE_PENDING the users whose last device left,
 * due to be announced offline after the grace period unless one comes back.
 * A user is online while any device's deadline lies ahead.
 *
 * The relay's store threads write (heartbeat, gone, sweep) and announce
 * what changed; parley-api reads (GET /presence, GET /friends). Every
 * function works over the caller's connection and returns PL_OK or the
 * pl_redis error (logged there).
 */
#ifndef PL_PRESENCE_H
#define PL_PRESENCE_H

#include <stddef.h>

#include "err.h"
#include "redis.h"

/* One user's presence as read, or as changed by a sweep. */
struct pl_presence {
	long long user_id;
	int online;
	long long last_seen_ms;	/* 0: never seen */
};

/*
 * A device's heartbeat at now_ms: its deadline moves to now_ms +
 * timeout_ms. Sets *came_online to 1 when the user was not online before
 * (the caller announces it), else 0.
 */
enum pl_err pl_presence_heartbeat(struct pl_redis *r, long long user_id,
				  long long device_id, long long now_ms,
				  long long timeout_ms, int *came_online);

/*
 * A device's last socket closed at now_ms. When no other device is live
 * the user is due to be announced offline grace_ms later, by a sweep.
 */
enum pl_err pl_presence_gone(struct pl_redis *r, long long user_id,
			     long long device_id, long long now_ms,
			     long long grace_ms);

/*
 * Expires the deadlines passed by now_ms and takes the users now due to go
 * offline (at most 1,000 of each per call). Sets *out to a newly allocated
 * array of *n users, each offline with its last_seen, which the caller
 * frees (NULL when *n is 0).
 */
enum pl_err pl_presence_sweep(struct pl_redis *r, long long now_ms,
			      struct pl_presence **out, size_t *n);

/*
 * Reads the presence of users[0..n) into out[0..n) in one pipeline, as of
 * now_ms. A user Redis could not be read for reads as offline, never seen.
 */
void pl_presence_read(struct pl_redis *r, const long long *users, size_t n,
		      long long now_ms, struct pl_presence *out);

#endif
