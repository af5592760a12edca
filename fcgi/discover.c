/*
 * Relay discovery (doc/protocol.md "REST": /discover; doc/architecture.md
 * "Service discovery and scale-out"). The registry is the sorted set
 * PL_KEY_RELAYS of relay ids scored by expiry, plus each relay's hash
 * PL_KEY_RELAY_FMT (lib/keys.h): a call reads the live members and their
 * hashes, two round trips and O(relays) work whatever else Redis holds. A
 * relay counts only while its score lies ahead and its hash still exists,
 * so an expired relay is never handed out.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "keys.h"
#include "banned.h"

#define DISCOVER_MAX_RELAYS 1000

/*
 * KEYS[1] PL_KEY_RELAYS; ARGV[1] the most ids to return. The ids whose
 * registration expires from now on, now by Redis's clock as the relays
 * score them.
 */
static const char live_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'LIMIT', 0, "
	"ARGV[1])\n";

struct candidate {
	char id[128];
	char url[512];
	char region[64];
	double load;
	int same_region;
};

/* Better: same region first, then the lower load ratio. */
static int better(const struct candidate *a, const struct candidate *b)
{
	if (a->same_region != b->same_region)
		return a->same_region > b->same_region;
	return a->load < b->load;
}

/*
 * Fills c from relay id's HMGET reply {url, region, connections, capacity}.
 * Returns 0, or -1 when the hash is gone (expired or deleted) or has no url.
 */
static int candidate_of(const char *id, redisReply *h, const char *region,
			struct candidate *c)
{
	const char *url, *reg, *conns, *cap;
	double capacity;

	if (h->type != REDIS_REPLY_ARRAY || h->elements != 4)
		return -1;
	url = h->element[0]->str;
	reg = h->element[1]->str;
	conns = h->element[2]->str;
	cap = h->element[3]->str;
	if (!url || !*url)
		return -1;
	capacity = cap ? strtod(cap, NULL) : 0;
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->url, sizeof(c->url), "%s", url);
	snprintf(c->region, sizeof(c->region), "%s", reg ? reg : "");
	c->same_region = region[0] && reg && strcmp(region, reg) == 0;
	c->load = (conns ? strtod(conns, NULL) : 0) /
		  (capacity > 0 ? capacity : 1);
	return 0;
}

/*
 * Reads the hashes of the relays in ids (an array reply) in one pipeline
 * and sets *best to the best live one. Returns 1 if one was found, 0 if
 * none, -1 when Redis failed on the way.
 */
static int pick(struct pl_redis *redis, redisReply *ids, const char *region,
		struct candidate *best)
{
	struct candidate c;
	int have = 0;

	for (size_t i = 0; i < ids->elements; i++) {
		char key[192];
		const char *argv[6] = { "HMGET", key, "url", "region",
					"connections", "capacity" };

		snprintf(key, sizeof(key), PL_KEY_RELAY_FMT, ids->element[i]->str);
		if (pl_redis_append(redis, 6, argv, NULL))
			return -1;
	}
	for (size_t i = 0; i < ids->elements; i++) {
		redisReply *h;

		if (pl_redis_read(redis, &h))
			return -1;
		if (candidate_of(ids->element[i]->str, h, region, &c) == 0 &&
		    (!have || better(&c, best))) {
			*best = c;
			have = 1;
		}
		freeReplyObject(h);
	}
	return have;
}

/* GET /discover?region=R */
enum pl_err api_discover_get(struct api_request *req)
{
	char region[64] = "", max[24];
	const char *argv[5] = { "EVAL", live_lua, "1", PL_KEY_RELAYS,
				api_ll(max, DISCOVER_MAX_RELAYS) };
	struct candidate best = { .load = 0 };
	redisReply *ids;
	int found;

	if (api_query_string(req, "region", region, sizeof(region)) < 0)
		return req->err;
	if (pl_redis_command(&req->w->redis, 5, argv, NULL, 1, &ids))
		return api_fail(req, PL_UNAVAILABLE, "the relay registry is "
				"unavailable");
	if (ids->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(ids);
		return api_fail(req, PL_INTERNAL, "bad registry reply");
	}
	for (size_t i = 0; i < ids->elements; i++)
		if (ids->element[i]->type != REDIS_REPLY_STRING) {
			freeReplyObject(ids);
			return api_fail(req, PL_INTERNAL, "bad registry reply");
		}
	found = pick(&req->w->redis, ids, region, &best);
	freeReplyObject(ids);
	if (found < 0)
		return api_fail(req, PL_UNAVAILABLE, "the relay registry is "
				"unavailable");
	if (!found)
		return api_fail(req, PL_UNAVAILABLE, "no relay is alive");
	api_reply(req, 200, json_pack("{s:{s:s,s:s,s:s}}", "relay", "id", best.id,
				      "url", best.url, "region", best.region));
	return PL_OK;
}
