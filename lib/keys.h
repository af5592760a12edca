/*
 * keys: the names of Parley's Redis keys that more than one program writes
 * or reads, in one place (doc/architecture.md "Redis keys"). A writer and
 * its readers include this header instead of spelling a name twice.
 *
 * The relay registry (doc/architecture.md "Service discovery and
 * scale-out") is two structures, written by each relay and read by
 * GET /api/v1/discover in O(relays), never by walking the keyspace:
 *   - PL_KEY_RELAY_FMT, the relay's hash {url, region, connections,
 *     capacity}, with a time to live of PL_RELAY_TTL_MS;
 *   - PL_KEY_RELAYS, a sorted set of relay ids, each scored by the time its
 *     registration expires, in milliseconds since the epoch by Redis's own
 *     clock (TIME), so hosts whose clocks differ agree.
 * A relay refreshes both every few seconds (score = Redis's now +
 * PL_RELAY_TTL_MS, the same TTL on the hash), drops the members whose score
 * has passed, and on shutdown deletes its hash and its member. A reader
 * takes the members scored from Redis's now on, and counts one live only
 * while its hash exists too.
 */
#ifndef PL_KEYS_H
#define PL_KEYS_H

/*
 * On a Redis Cluster (doc/scale-out.md) every key one script or command
 * touches together shares a hash tag ({...}), and the keys every user
 * shares are split into PL_KEY_BUCKETS buckets so no one slot is hot:
 * user U's bucket is U mod PL_KEY_BUCKETS. Fixed: every program must agree.
 */
#define PL_KEY_BUCKETS 16

static inline int pl_key_bucket(long long user_id)
{
	long long b = user_id % PL_KEY_BUCKETS;

	return (int)(b < 0 ? b + PL_KEY_BUCKETS : b);
}

/* Hash of one relay's registration; %s is the relay id. The tag {relays}
 * keeps it in one slot with PL_KEY_RELAYS (one script writes both). */
#define PL_KEY_RELAY_FMT "parley:{relays}:%s"

/* Sorted set: relay id -> expiry of its registration (epoch ms, Redis's clock). */
#define PL_KEY_RELAYS "parley:{relays}"

/* How long a registration lives without a refresh, in milliseconds. */
#define PL_RELAY_TTL_MS 15000

/* A user's pub/sub channel, where every event for the user is published
 * (lib/publish.c) and a relay holding one of the user's sockets subscribes
 * (relay/bus.c); %lld is the user id. */
#define PL_KEY_USER_CHANNEL_PREFIX "parley:u:"
#define PL_KEY_USER_CHANNEL_FMT PL_KEY_USER_CHANNEL_PREFIX "%lld"

/* A relay's own probe channel: its bus publishes here every second and
 * must see the probe come back on its subscription (relay/bus.c); %s is
 * the relay id. */
#define PL_KEY_PROBE_CHANNEL_FMT "parley:probe:%s"

/* Pub/sub channel announcing revoked sessions to the relays. */
#define PL_KEY_REVOKE_CHANNEL "parley:revoke"

/* Streams of push jobs, one per bucket (%d), each read by the notifiers'
 * consumer group PL_KEY_PUSH_GROUP. */
#define PL_KEY_PUSH_STREAM_FMT "parley:push:{%d}"
#define PL_KEY_PUSH_GROUP "notify"

/*
 * Presence (doc/architecture.md "Presence"), per bucket (%d, the tag {pB}
 * keeping a bucket's keys in one slot for the scripts): a user's hash
 * (written by the relays' scripts, read by GET /presence and GET /friends;
 * %lld is the user id); the bucket's device deadlines ordered in one sorted
 * set; the bucket's users due to be announced offline after the grace
 * period in another.
 */
#define PL_KEY_PRESENCE_PREFIX_FMT "parley:presence:{p%d}:"
#define PL_KEY_PRESENCE_FMT PL_KEY_PRESENCE_PREFIX_FMT "%lld"
#define PL_KEY_PRESENCE_DEADLINES_FMT PL_KEY_PRESENCE_PREFIX_FMT "deadlines"
#define PL_KEY_PRESENCE_PENDING_FMT PL_KEY_PRESENCE_PREFIX_FMT "pending"

/* Token bucket of a rate limit; %s are the scope and the key. */
#define PL_KEY_RATELIMIT_FMT "parley:rl:{%s:%s}"

#endif
