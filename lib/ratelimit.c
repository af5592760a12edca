#include "ratelimit.h"

#include <stdio.h>
#include <string.h>

/*
 * KEYS[1] bucket; ARGV[1] tokens per second; ARGV[2] burst.
 * Returns {allowed, milliseconds until a token is available}.
 */
static const char bucket_lua[] =
	"local rate = tonumber(ARGV[1])\n"
	"local burst = tonumber(ARGV[2])\n"
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
	"local tokens = tonumber(b[1]) or burst\n"
	"local ts = tonumber(b[2]) or now\n"
	"tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)\n"
	"local allowed, wait = 0, 0\n"
	"if tokens >= 1 then tokens = tokens - 1; allowed = 1\n"
	"else wait = math.ceil((1 - tokens) * 1000 / rate) end\n"
	"redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)\n"
	"redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
	"return {allowed, wait}\n";

enum pl_err pl_ratelimit_take(struct pl_redis *r, const char *scope,
			      const char *key, double per_second, long long burst,
			      long long *retry_after_s)
{
	char name[256], rate[32], cap[24];
	const char *argv[6] = { "EVAL", bucket_lua, "1", name, rate, cap };
	redisReply *rep = NULL;
	enum pl_err rc = PL_OK;

	*retry_after_s = 0;
	if (per_second <= 0)
		return PL_OK;
	snprintf(name, sizeof(name), "parley:rl:%s:%s", scope, key);
	snprintf(rate, sizeof(rate), "%.6f", per_second);
	snprintf(cap, sizeof(cap), "%lld", burst < 1 ? 1 : burst);
	if (pl_redis_command(r, 6, argv, NULL, 1, &rep))
		return PL_OK;	/* fail open */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_INTEGER &&
	    rep->element[0]->integer == 0) {
		long long wait_ms = rep->element[1]->integer;

		*retry_after_s = (wait_ms + 999) / 1000;
		if (*retry_after_s < 1)
			*retry_after_s = 1;
		rc = PL_RATE_LIMITED;
	}
	freeReplyObject(rep);
	return rc;
}
