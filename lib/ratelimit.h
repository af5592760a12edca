/*
 * ratelimit: token buckets kept in Redis, shared by every API worker and
 * relay (key parley:rl:{scope}:{key}, doc/architecture.md "Redis keys").
 *
 * A bucket holds up to `burst` tokens and refills at `per_second`; each
 * request takes one. The whole check is one Lua script, so it is atomic
 * across processes. Limits fail open: while Redis is down every request is
 * allowed (doc/architecture.md "When a store is down").
 */
#ifndef PL_RATELIMIT_H
#define PL_RATELIMIT_H

#include "err.h"
#include "redis.h"

/*
 * Takes one token from bucket scope:key (borrowed strings). per_second may be
 * fractional (1/60 for "one a minute"); per_second <= 0 means no limit.
 * Returns PL_OK when allowed, PL_RATE_LIMITED with *retry_after_s (whole
 * seconds, at least 1) when not.
 */
enum pl_err pl_ratelimit_take(struct pl_redis *r, const char *scope,
			      const char *key, double per_second, long long burst,
			      long long *retry_after_s);

#endif
