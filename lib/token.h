/*
 * token: session tokens, signed JWTs (HS256) naming user, session and device.
 *
 * Signing and verifying use libjwt with the secret read once from the file
 * the configuration names. Verification insists on HS256 whatever the
 * token's header claims (libjwt 1.10 would otherwise trust it, and a NULL key
 * accepts "alg":"none") and checks "exp" itself. A verified token still has
 * to name a session that is not revoked: that check is the caller's, against
 * the sessions table (doc/architecture.md "Security"). The module also reads
 * the files that hold signing keys, this secret and the notifier's provider
 * keys alike, and refuses any that others than its owner may read.
 */
#ifndef PL_TOKEN_H
#define PL_TOKEN_H

#include <stddef.h>
#include <time.h>

#include "err.h"

#define PL_TOKEN_SECRET_MIN 32
#define PL_TOKEN_SECRET_FILE_MAX 4096	/* bytes of a secret file read */
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
 * Reads a file holding a signing key: the token secret here, the APNs .p8
 * key and the FCM service account in parley-notify. Every key any Parley
 * program reads comes through this one function, so all share its rule: a
 * file its group or others may use (mode & 077) is refused, since whoever
 * reads it can mint tokens or send pushes as us, and a program must not
 * start on it. The whole file, at most max_bytes, goes into *out, a new
 * NUL-terminated buffer the caller frees (after wiping it: it is a key),
 * its length in *len. Returns 0, or -1 with *out NULL and the reason in
 * err, naming path and, for a file too open, the fix (chmod 600).
 */
int pl_token_secret_read(const char *path, size_t max_bytes, char **out,
			 size_t *len, char *err, size_t errlen);

/*
 * Reads the signing secret from path (surrounding whitespace stripped)
 * with pl_token_secret_read(). Returns 0, or -1 with the reason in err when
 * the file cannot be read, is open to group or others, or holds fewer than
 * PL_TOKEN_SECRET_MIN bytes.
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
