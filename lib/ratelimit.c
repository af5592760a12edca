#include "ratelimit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "banned.h"

/*
 * KEYS: the buckets, one per request (a key may repeat: each takes its own
 * token); ARGV[1] tokens per second; ARGV[2] burst. Returns one number per
 * key: 0 when allowed, else milliseconds until a token is available.
 */
static const char bucket_lua[] =
	"local rate = tonumber(ARGV[1])\n"
	"local burst = tonumber(ARGV[2])\n"
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"local out = {}\n"
	"for i, key in ipairs(KEYS) do\n"
	"  local b = redis.call('HMGET', key, 'tokens', 'ts')\n"
	"  local tokens = tonumber(b[1]) or burst\n"
	"  local ts = tonumber(b[2]) or now\n"
	"  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)\n"
	"  local wait = 0\n"
	"  if tokens >= 1 then tokens = tokens - 1\n"
	"  else wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate)) end\n"
	"  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)\n"
	"  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)\n"
	"  out[i] = wait\n"
	"end\n"
	"return out\n";

enum pl_err pl_ratelimit_take(struct pl_redis *r, const char *scope,
			      const char *key, double per_second, long long burst,
			      long long *retry_after_s)
{
	const char *keys[1] = { key };

	pl_ratelimit_take_many(r, scope, keys, 1, per_second, burst,
			       retry_after_s);
	return *retry_after_s ? PL_RATE_LIMITED : PL_OK;
}

/* The wait in ms one bucket's entry of a bucket_lua reply asks for. */
static long long wait_of(const redisReply *rep, size_t i)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY || i >= rep->elements ||
	    rep->element[i]->type != REDIS_REPLY_INTEGER)
		return 0;
	return rep->element[i]->integer;
}

static long long to_seconds(long long wait_ms)
{
	if (wait_ms <= 0)
		return 0;
	return wait_ms < 1000 ? 1 : (wait_ms + 999) / 1000;
}

/*
 * On a cluster the buckets of one batch lie in different slots: one script
 * per bucket, pipelined. A bucket whose script fails lets its request pass.
 */
static void take_each(struct pl_redis *r, char (*names)[160], size_t n,
		      const char *rate, const char *cap,
		      long long *retry_after_s)
{
	size_t queued = 0;

	for (size_t i = 0; i < n; i++) {
		const char *argv[6] = { "EVAL", bucket_lua, "1", names[i], rate,
					cap };

		if (pl_redis_append(r, 6, argv, NULL))
			break;
		queued++;
	}
	for (size_t i = 0; i < queued; i++) {
		redisReply *rep;

		if (pl_redis_read(r, &rep))
			return;	/* fail open */
		retry_after_s[i] = to_seconds(wait_of(rep, 0));
		freeReplyObject(rep);
	}
}

void pl_ratelimit_take_many(struct pl_redis *r, const char *scope,
			    const char *const *keys, size_t n,
			    double per_second, long long burst,
			    long long *retry_after_s)
{
	char names[PL_RATELIMIT_MANY_MAX][160], rate[32], cap[24], nkeys[24];
	const char *argv[PL_RATELIMIT_MANY_MAX + 5];
	redisReply *rep = NULL;
	int argc = 0;

	memset(retry_after_s, 0, n * sizeof(*retry_after_s));
	if (per_second <= 0 || n == 0 || n > PL_RATELIMIT_MANY_MAX)
		return;
	snprintf(rate, sizeof(rate), "%.6f", per_second);
	snprintf(cap, sizeof(cap), "%lld", burst < 1 ? 1 : burst);
	snprintf(nkeys, sizeof(nkeys), "%zu", n);
	argv[argc++] = "EVAL";
	argv[argc++] = bucket_lua;
	argv[argc++] = nkeys;
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), PL_KEY_RATELIMIT_FMT, scope,
			 keys[i]);
		argv[argc++] = names[i];
	}
	argv[argc++] = rate;
	argv[argc++] = cap;
	if (pl_redis_is_cluster(r) && n > 1) {
		take_each(r, names, n, rate, cap, retry_after_s);
		return;
	}
	if (pl_redis_command(r, argc, argv, NULL, 1, &rep))
		return;	/* fail open */
	for (size_t i = 0; i < n; i++)
		retry_after_s[i] = to_seconds(wait_of(rep, i));
	freeReplyObject(rep);
}

void pl_ratelimit_client_key(const char *addr, char *out)
{
	char text[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n = addr ? strcspn(addr, "%") : 0;

	snprintf(out, PL_RATELIMIT_CLIENT_KEY_BYTES, "%s",
		 addr && *addr ? addr : "-");
	if (n == 0 || n >= sizeof(text))
		return;
	memcpy(text, addr, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, &a4) == 1) {
		inet_ntop(AF_INET, &a4, out, PL_RATELIMIT_CLIENT_KEY_BYTES);
		return;
	}
	if (inet_pton(AF_INET6, text, &a6) != 1)
		return;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
		inet_ntop(AF_INET, &a4, out, PL_RATELIMIT_CLIENT_KEY_BYTES);
		return;
	}
	/* The /64: the interface identifier is zeroed. */
	memset(&a6.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &a6, text, sizeof(text));
	snprintf(out, PL_RATELIMIT_CLIENT_KEY_BYTES, "%s/64", text);
}
