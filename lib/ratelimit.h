/*
 * ratelimit: token buckets kept in Redis, shared by every API worker and
 * relay (key parley:rl:{scope}:{key}, doc/architecture.md "Redis keys"):
 * parley-api takes REST, login and send tokens per request, and the relay's
 * store threads take send tokens for a batch of WebSocket sends at once, in
 * the same "send" buckets, so a user has one send budget everywhere.
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

/* Room for any key pl_ratelimit_client_key() writes. */
#define PL_RATELIMIT_CLIENT_KEY_BYTES 64

/*
 * Writes the per-address bucket key of client address addr (borrowed: the
 * REMOTE_ADDR the web server passes, may be NULL) into out
 * (PL_RATELIMIT_CLIENT_KEY_BYTES): an IPv4 address as it is; an IPv6 address
 * as its /64 network in canonical form ("2001:db8:1:2::/64"), since one host
 * or home usually holds a whole /64 and could otherwise spread its requests
 * over 2^64 buckets; an IPv4-mapped IPv6 address as its IPv4 address; an
 * IPv6 zone ("%eth0") is ignored. NULL or "" gives "-"; other text that is
 * no address is kept as it is, cut to fit.
 */
void pl_ratelimit_client_key(const char *addr, char *out);

/* Requests one pl_ratelimit_take_many() call takes at most. */
#define PL_RATELIMIT_MANY_MAX 256

/*
 * The same for n requests at once (n <= PL_RATELIMIT_MANY_MAX), in one round
 * trip: keys[i] (borrowed) names request i's bucket, and keys may repeat.
 * Sets retry_after_s[i] to 0 when request i is allowed, else to the whole
 * seconds (at least 1) until it would be. All are allowed while Redis is
 * down, or when per_second <= 0 or n is out of range.
 */
void pl_ratelimit_take_many(struct pl_redis *r, const char *scope,
			    const char *const *keys, size_t n,
			    double per_second, long long burst,
			    long long *retry_after_s);

#endif
