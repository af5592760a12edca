#include "presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "banned.h"

/*
 * The device scripts: KEYS[1] the user's hash, KEYS[2] the bucket's
 * deadlines, KEYS[3] its pending offline users (one slot: the bucket's tag).
 */
static const char heartbeat_lua[] =
	"local key, user, dev = KEYS[1], ARGV[1], ARGV[2]\n"
	"local deadline, now = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"redis.call('HSET', key, 'd:' .. dev, deadline, 'last_seen', now)\n"
	"redis.call('ZADD', KEYS[2], deadline, user .. ':' .. dev)\n"
	"redis.call('ZREM', KEYS[3], user)\n"
	"if redis.call('HGET', key, 'state') ~= 'online' then\n"
	"  redis.call('HSET', key, 'state', 'online') return 1 end\n"
	"return 0\n";

static const char gone_lua[] =
	"local key, user, dev = KEYS[1], ARGV[1], ARGV[2]\n"
	"local now, grace = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"redis.call('HDEL', key, 'd:' .. dev)\n"
	"redis.call('ZREM', KEYS[2], user .. ':' .. dev)\n"
	"local f = redis.call('HGETALL', key)\n"
	"for i = 1, #f, 2 do\n"
	"  if string.sub(f[i], 1, 2) == 'd:' and tonumber(f[i + 1]) > now then return 0 end\n"
	"end\n"
	"redis.call('HSET', key, 'last_seen', now)\n"
	"redis.call('ZADD', KEYS[3], now + grace, user)\n"
	"return 1\n";

/*
 * The sweep of some buckets: for bucket i (from 1), KEYS[2i - 1] its
 * deadlines and KEYS[2i] its pending users, ARGV[i + 1] the prefix of its
 * users' hashes (all in the bucket's slot); ARGV[1] now. On one Redis one
 * call sweeps every bucket, on a cluster one call each. Returns the users
 * now offline: {user, last_seen, ...}.
 */
static const char sweep_lua[] =
	"local now, out = tonumber(ARGV[1]), {}\n"
	"for b = 1, #KEYS / 2 do\n"
	"  local deadlines, pending, prefix = KEYS[2 * b - 1], KEYS[2 * b], ARGV[b + 1]\n"
	"  local expired = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, 1000)\n"
	"  for _, m in ipairs(expired) do\n"
	"    redis.call('ZREM', deadlines, m)\n"
	"    local user, dev = string.match(m, '^(%d+):(%d+)$')\n"
	"    if user then\n"
	"      local key = prefix .. user\n"
	"      local d = tonumber(redis.call('HGET', key, 'd:' .. dev))\n"
	"      if d and d <= now then redis.call('HDEL', key, 'd:' .. dev) end\n"
	"      redis.call('ZADD', pending, now, user)\n"
	"    end\n"
	"  end\n"
	"  local due = redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, 1000)\n"
	"  for _, user in ipairs(due) do\n"
	"    redis.call('ZREM', pending, user)\n"
	"    local key = prefix .. user\n"
	"    local live = false\n"
	"    local f = redis.call('HGETALL', key)\n"
	"    for i = 1, #f, 2 do\n"
	"      if string.sub(f[i], 1, 2) == 'd:' and tonumber(f[i + 1]) > now then live = true end\n"
	"    end\n"
	"    if not live and redis.call('HGET', key, 'state') == 'online' then\n"
	"      redis.call('HSET', key, 'state', 'offline')\n"
	"      local seen = redis.call('HGET', key, 'last_seen') or tostring(now)\n"
	"      table.insert(out, user) table.insert(out, seen)\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n";

/* Runs a device script on the user's keys; ARGV user, device, a3, a4. */
static enum pl_err device_script(struct pl_redis *r, const char *script,
				 long long user_id, long long device_id,
				 long long a3, long long a4, redisReply **rep)
{
	char key[64], deadlines[64], pending[64], user[24], dev[24], s3[24],
		s4[24];
	const char *argv[10] = { "EVAL", script, "3", key, deadlines, pending,
				 user, dev, s3, s4 };
	int b = pl_key_bucket(user_id);

	snprintf(key, sizeof(key), PL_KEY_PRESENCE_FMT, b, user_id);
	snprintf(deadlines, sizeof(deadlines), PL_KEY_PRESENCE_DEADLINES_FMT, b);
	snprintf(pending, sizeof(pending), PL_KEY_PRESENCE_PENDING_FMT, b);
	snprintf(user, sizeof(user), "%lld", user_id);
	snprintf(dev, sizeof(dev), "%lld", device_id);
	snprintf(s3, sizeof(s3), "%lld", a3);
	snprintf(s4, sizeof(s4), "%lld", a4);
	return pl_redis_command(r, 10, argv, NULL, 1, rep);
}

enum pl_err pl_presence_heartbeat(struct pl_redis *r, long long user_id,
				  long long device_id, long long now_ms,
				  long long timeout_ms, int *came_online)
{
	redisReply *rep;
	enum pl_err rc = device_script(r, heartbeat_lua, user_id, device_id,
				       now_ms + timeout_ms, now_ms, &rep);

	*came_online = 0;
	if (rc)
		return rc;
	*came_online = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	return PL_OK;
}

enum pl_err pl_presence_gone(struct pl_redis *r, long long user_id,
			     long long device_id, long long now_ms,
			     long long grace_ms)
{
	redisReply *rep;
	enum pl_err rc = device_script(r, gone_lua, user_id, device_id, now_ms,
				       grace_ms, &rep);

	if (rc == PL_OK)
		freeReplyObject(rep);
	return rc;
}

/* Adds one bucket's sweep reply to *out, of *n. */
static void add_offline(const redisReply *rep, struct pl_presence **out,
			size_t *n)
{
	struct pl_presence *p;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2)
		return;
	p = realloc(*out, (*n + rep->elements / 2) * sizeof(*p));
	if (!p)
		return;
	*out = p;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		if (!rep->element[i]->str || !rep->element[i + 1]->str)
			continue;
		(*out)[(*n)++] = (struct pl_presence){
			.user_id = strtoll(rep->element[i]->str, NULL, 10),
			.online = 0,
			.last_seen_ms = strtoll(rep->element[i + 1]->str, NULL, 10),
		};
	}
}

/* A sweep's command line and the strings it points to. */
struct sweep_args {
	char keys[2 * PL_KEY_BUCKETS][64], prefixes[PL_KEY_BUCKETS][64];
	char nkeys[16], now[24];
	const char *argv[4 + 3 * PL_KEY_BUCKETS];
};

/*
 * Fills a with the sweep of buckets first..first+n-1 (n <= PL_KEY_BUCKETS).
 * Returns argc.
 */
static int sweep_argv(struct sweep_args *a, int first, int n, long long now_ms)
{
	int argc = 0;

	snprintf(a->nkeys, sizeof(a->nkeys), "%d", 2 * n);
	snprintf(a->now, sizeof(a->now), "%lld", now_ms);
	a->argv[argc++] = "EVAL";
	a->argv[argc++] = sweep_lua;
	a->argv[argc++] = a->nkeys;
	for (int i = 0; i < n; i++) {
		snprintf(a->keys[2 * i], sizeof(a->keys[0]),
			 PL_KEY_PRESENCE_DEADLINES_FMT, first + i);
		snprintf(a->keys[2 * i + 1], sizeof(a->keys[0]),
			 PL_KEY_PRESENCE_PENDING_FMT, first + i);
		snprintf(a->prefixes[i], sizeof(a->prefixes[0]),
			 PL_KEY_PRESENCE_PREFIX_FMT, first + i);
		a->argv[argc++] = a->keys[2 * i];
		a->argv[argc++] = a->keys[2 * i + 1];
	}
	a->argv[argc++] = a->now;
	for (int i = 0; i < n; i++)
		a->argv[argc++] = a->prefixes[i];
	return argc;
}

enum pl_err pl_presence_sweep(struct pl_redis *r, long long now_ms,
			      struct pl_presence **out, size_t *n)
{
	struct sweep_args a;
	redisReply *rep;
	int queued = 0, failed = 0;

	*out = NULL;
	*n = 0;
	/* One Redis: one script sweeps every bucket. */
	if (!pl_redis_is_cluster(r)) {
		int argc = sweep_argv(&a, 0, PL_KEY_BUCKETS, now_ms);

		if (pl_redis_command(r, argc, a.argv, NULL, 1, &rep))
			return PL_UNAVAILABLE;
		add_offline(rep, out, n);
		freeReplyObject(rep);
		return PL_OK;
	}
	/*
	 * A cluster: a bucket's keys share a slot, no two buckets do. One
	 * script each, pipelined: a bucket whose master is failing over is
	 * left for the next sweep rather than holding up the others.
	 */
	for (int b = 0; b < PL_KEY_BUCKETS; b++) {
		int argc = sweep_argv(&a, b, 1, now_ms);

		if (pl_redis_append(r, argc, a.argv, NULL))
			break;
		queued++;
	}
	for (int b = 0; b < queued; b++) {
		if (pl_redis_read(r, &rep)) {
			failed++;
			continue;
		}
		if (rep->type == REDIS_REPLY_ERROR)
			failed++;
		else
			add_offline(rep, out, n);
		freeReplyObject(rep);
	}
	failed += PL_KEY_BUCKETS - queued;
	return failed == PL_KEY_BUCKETS ? PL_UNAVAILABLE : PL_OK;
}

/* Reads one HGETALL reply (or NULL) into p. */
static void presence_of(long long user, const redisReply *rep, long long now,
			struct pl_presence *p)
{
	*p = (struct pl_presence){ .user_id = user };
	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY &&
	     i + 1 < rep->elements; i += 2) {
		const char *field = rep->element[i]->str;
		long long v;

		if (!field || !rep->element[i + 1]->str)
			continue;
		v = strtoll(rep->element[i + 1]->str, NULL, 10);
		if (strncmp(field, "d:", 2) == 0 && v > now)
			p->online = 1;
		else if (strcmp(field, "last_seen") == 0)
			p->last_seen_ms = v;
	}
}

void pl_presence_read(struct pl_redis *r, const long long *users, size_t n,
		      long long now_ms, struct pl_presence *out)
{
	size_t queued = 0;

	for (size_t i = 0; i < n; i++) {
		char key[64];
		const char *argv[2] = { "HGETALL", key };

		snprintf(key, sizeof(key), PL_KEY_PRESENCE_FMT,
			 pl_key_bucket(users[i]), users[i]);
		if (pl_redis_append(r, 2, argv, NULL))
			break;
		queued++;
	}
	for (size_t i = 0; i < n; i++) {
		redisReply *rep = NULL;

		/* Redis down: everyone reads as offline, last seen unknown. */
		if (i < queued && pl_redis_read(r, &rep))
			queued = i;
		presence_of(users[i], rep, now_ms, &out[i]);
		if (rep)
			freeReplyObject(rep);
	}
}
