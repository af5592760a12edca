/*
 * The Redis registry backend: the two structures lib/keys.h describes, the
 * relay's hash PL_KEY_RELAY_FMT and the sorted set PL_KEY_RELAYS of relay
 * ids scored by the expiry of their registration, by Redis's own clock.
 */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "banned.h"

/*
 * KEYS[1] the relay's hash, KEYS[2] PL_KEY_RELAYS; ARGV: id, TTL in ms,
 * url, region, connections, capacity. Registers or refreshes the relay in
 * both structures, scored by Redis's clock, and drops the members whose
 * registration has expired.
 */
static const char register_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"local ttl = tonumber(ARGV[2])\n"
	"redis.call('HSET', KEYS[1], 'url', ARGV[3], 'region', ARGV[4], "
	"'connections', ARGV[5], 'capacity', ARGV[6])\n"
	"redis.call('PEXPIRE', KEYS[1], ttl)\n"
	"redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 1)\n"
	"return 1\n";

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

static void *redis_open(const struct pl_config *cfg, struct pl_redis *redis)
{
	(void)cfg;
	return redis;
}

static void redis_close(void *state)
{
	(void)state;	/* the connection is the caller's */
}

static enum pl_err redis_add(void *state, const struct pl_registry_entry *e)
{
	struct pl_redis *redis = state;
	char key[160], conns[24], cap[24], ttl[24];
	const char *argv[11] = { "EVAL", register_lua, "2", key, PL_KEY_RELAYS,
				 e->id, ttl, e->url, e->region, conns, cap };
	redisReply *rep;
	enum pl_err rc;

	snprintf(key, sizeof(key), PL_KEY_RELAY_FMT, e->id);
	snprintf(conns, sizeof(conns), "%lld", e->connections);
	snprintf(cap, sizeof(cap), "%lld", e->capacity);
	snprintf(ttl, sizeof(ttl), "%d", PL_RELAY_TTL_MS);
	rc = pl_redis_command(redis, 11, argv, NULL, 1, &rep);
	if (rc == PL_OK)
		freeReplyObject(rep);
	return rc;
}

static enum pl_err redis_remove(void *state, const char *id)
{
	struct pl_redis *redis = state;
	char key[160];
	const char *del[2] = { "DEL", key };
	const char *zrem[3] = { "ZREM", PL_KEY_RELAYS, id };
	redisReply *rep;
	enum pl_err rc = PL_OK;

	snprintf(key, sizeof(key), PL_KEY_RELAY_FMT, id);
	if (pl_redis_append(redis, 2, del, NULL) ||
	    pl_redis_append(redis, 3, zrem, NULL))
		return PL_UNAVAILABLE;
	for (int i = 0; i < 2; i++) {
		if (pl_redis_read(redis, &rep) == PL_OK)
			freeReplyObject(rep);
		else
			rc = PL_UNAVAILABLE;
	}
	return rc;
}

/*
 * Fills e from relay id's HMGET reply {url, region, connections, capacity}.
 * Returns 0, or -1 when the hash is gone (expired or deleted) or has no url.
 */
static int entry_of(const char *id, const redisReply *h,
		    struct pl_registry_entry *e)
{
	const char *url, *reg, *conns, *cap;

	if (h->type != REDIS_REPLY_ARRAY || h->elements != 4)
		return -1;
	url = h->element[0]->str;
	reg = h->element[1]->str;
	conns = h->element[2]->str;
	cap = h->element[3]->str;
	if (!url || !*url)
		return -1;
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	snprintf(e->url, sizeof(e->url), "%s", url);
	snprintf(e->region, sizeof(e->region), "%s", reg ? reg : "");
	e->connections = conns ? strtoll(conns, NULL, 10) : 0;
	e->capacity = cap ? strtoll(cap, NULL, 10) : 0;
	return 0;
}

/*
 * Reads the hashes of the relays in ids (an array reply of strings) in one
 * pipeline into out[], which has room for all of them; a relay counts only
 * while its hash exists too, so an expired relay is never listed.
 */
static enum pl_err read_entries(struct pl_redis *redis, const redisReply *ids,
				struct pl_registry_entry *out, size_t *n)
{
	for (size_t i = 0; i < ids->elements; i++) {
		char key[192];
		const char *argv[6] = { "HMGET", key, "url", "region",
					"connections", "capacity" };

		snprintf(key, sizeof(key), PL_KEY_RELAY_FMT, ids->element[i]->str);
		if (pl_redis_append(redis, 6, argv, NULL))
			return PL_UNAVAILABLE;
	}
	for (size_t i = 0; i < ids->elements; i++) {
		redisReply *h;

		if (pl_redis_read(redis, &h))
			return PL_UNAVAILABLE;
		if (entry_of(ids->element[i]->str, h, &out[*n]) == 0)
			(*n)++;
		freeReplyObject(h);
	}
	return PL_OK;
}

static enum pl_err redis_list(void *state, size_t max,
			      struct pl_registry_entry **out, size_t *n)
{
	struct pl_redis *redis = state;
	char limit[24];
	const char *argv[5] = { "EVAL", live_lua, "1", PL_KEY_RELAYS, limit };
	redisReply *ids;
	enum pl_err rc;

	snprintf(limit, sizeof(limit), "%zu", max);
	if (pl_redis_command(redis, 5, argv, NULL, 1, &ids))
		return PL_UNAVAILABLE;
	rc = ids->type == REDIS_REPLY_ARRAY ? PL_OK : PL_INTERNAL;
	for (size_t i = 0; rc == PL_OK && i < ids->elements; i++)
		if (ids->element[i]->type != REDIS_REPLY_STRING)
			rc = PL_INTERNAL;
	if (rc == PL_OK && ids->elements > 0) {
		*out = calloc(ids->elements, sizeof(**out));
		rc = *out ? read_entries(redis, ids, *out, n) : PL_INTERNAL;
	}
	freeReplyObject(ids);
	return rc;
}

const struct pl_registry_ops pl_registry_redis_ops = {
	.name = "redis",
	.open = redis_open,
	.close = redis_close,
	.add = redis_add,
	.refresh = redis_add,
	.remove = redis_remove,
	.list = redis_list,
};
