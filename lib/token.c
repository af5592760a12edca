#include "token.h"

#include <ctype.h>
#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

int pl_token_key_load(struct pl_token_key *key, const char *path, char *err,
		      size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	size_t n;

	memset(key, 0, sizeof(*key));
	if (!f) {
		snprintf(err, errlen, "cannot read '%s': %s", path,
			 strerror(errno));
		return -1;
	}
	/* Anyone who reads the secret can mint tokens: say so when others may. */
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		pl_log(PL_LOG_WARN, "token secret '%s' is readable by others "
		       "(mode %04o): chmod 0600 it", path,
		       (unsigned int)(st.st_mode & 07777));
	n = fread(key->secret, 1, sizeof(key->secret), f);
	fclose(f);
	while (n && isspace(key->secret[n - 1]))
		n--;
	if (n < PL_TOKEN_SECRET_MIN) {
		snprintf(err, errlen, "'%s' holds %zu bytes; the secret needs "
			 "at least %d", path, n, PL_TOKEN_SECRET_MIN);
		return -1;
	}
	key->len = n;
	return 0;
}

enum pl_err pl_token_sign(const struct pl_token_key *key,
			  const struct pl_token_claims *claims, char **out)
{
	jwt_t *jwt = NULL;
	enum pl_err rc = PL_INTERNAL;

	*out = NULL;
	if (jwt_new(&jwt) ||
	    jwt_add_grant_int(jwt, "sub", (long)claims->user_id) ||
	    jwt_add_grant_int(jwt, "sid", (long)claims->session_id) ||
	    jwt_add_grant_int(jwt, "did", (long)claims->device_id) ||
	    jwt_add_grant_int(jwt, "exp", (long)claims->expires_at) ||
	    jwt_set_alg(jwt, JWT_ALG_HS256, key->secret, (int)key->len))
		goto out;
	*out = jwt_encode_str(jwt);
	if (*out)
		rc = PL_OK;
out:
	jwt_free(jwt);
	return rc;
}

static enum pl_err refuse(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return PL_UNAUTHORIZED;
}

enum pl_err pl_token_verify(const struct pl_token_key *key, const char *token,
			    time_t now, struct pl_token_claims *claims,
			    char *why, size_t whylen)
{
	jwt_t *jwt = NULL;
	enum pl_err rc;

	memset(claims, 0, sizeof(*claims));
	if (!token || !*token || strlen(token) > PL_TOKEN_MAX_BYTES)
		return refuse(why, whylen, "missing or oversized token");
	/* The key is never NULL here, so "alg":"none" cannot pass. */
	if (jwt_decode(&jwt, token, key->secret, (int)key->len) || !jwt)
		return refuse(why, whylen, "token signature is invalid");
	if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
		rc = refuse(why, whylen, "token algorithm is not HS256");
		goto out;
	}
	errno = 0;
	claims->user_id = jwt_get_grant_int(jwt, "sub");
	claims->session_id = jwt_get_grant_int(jwt, "sid");
	claims->device_id = jwt_get_grant_int(jwt, "did");
	claims->expires_at = (time_t)jwt_get_grant_int(jwt, "exp");
	if (errno || claims->user_id <= 0 || claims->session_id <= 0 ||
	    claims->device_id <= 0 || claims->expires_at <= 0) {
		rc = refuse(why, whylen, "token lacks its claims");
		goto out;
	}
	if (claims->expires_at <= now) {
		rc = refuse(why, whylen, "token has expired");
		goto out;
	}
	rc = PL_OK;
out:
	jwt_free(jwt);
	return rc;
}
