/*
 * token: session tokens, signed JWTs (HS256) naming user, session and device.
 *
 * Signing and verifying use libjwt with the secret read once from the file
 * the configuration names. Verification insists on HS256 whatever the
 * token's header claims (libjwt 1.10 would otherwise trust it, and a NULL key
 * accepts "alg":"none") and checks "exp" itself. A verified token still has
 * to name a session that is not revoked: that check is the caller's, against
 * the sessions table (doc/architecture.md "Security").
 */
#ifndef PL_TOKEN_H
#define PL_TOKEN_H

#include <stddef.h>
#include <time.h>

#include "err.h"

#define PL_TOKEN_SECRET_MIN 32
#define PL_TOKEN_MAX_BYTES 2048

struct pl_token_key {
	unsigned char secret[256];
	size_t len;
};

struct pl_token_claims {
	long long user_id;
	long long session_id;
	long long device_id;
	time_t expires_at;
};

/*
 * Reads the signing secret from path (surrounding whitespace stripped).
 * Returns 0, or -1 with the reason in err when the file cannot be read or
 * holds fewer than PL_TOKEN_SECRET_MIN bytes.
 */
int pl_token_key_load(struct pl_token_key *key, const char *path, char *err,
		      size_t errlen);

/*
 * Signs claims into a new token string (*out, freed by the caller with
 * free()). Returns PL_OK or PL_INTERNAL.
 */
enum pl_err pl_token_sign(const struct pl_token_key *key,
			  const struct pl_token_claims *claims, char **out);

/*
 * Verifies token's signature (HS256 only) and expiry against now, and fills
 * claims. Returns PL_OK or PL_UNAUTHORIZED (why says which check failed).
 */
enum pl_err pl_token_verify(const struct pl_token_key *key, const char *token,
			    time_t now, struct pl_token_claims *claims,
			    char *why, size_t whylen);

#endif
