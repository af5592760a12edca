#include "token.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "banned.h"

int pl_token_secret_read(const char *path, size_t max_bytes, char **out,
			 size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	ssize_t got;

	*out = NULL;
	*len = 0;
	if (fd < 0) {
		snprintf(err, errlen, "cannot read '%s': %s", path,
			 strerror(errno));
		return -1;
	}
	/* The mode of the file opened, not of whatever the path names later. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a regular file", path);
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "'%s' is open to its group or others "
			 "(mode %04o): anyone who reads it can act as this "
			 "server; make it private with: chmod 600 '%s'", path,
			 (unsigned int)(st.st_mode & 07777), path);
		goto fail;
	}
	if ((unsigned long long)st.st_size > max_bytes) {
		snprintf(err, errlen, "'%s' holds %lld bytes, more than %zu",
			 path, (long long)st.st_size, max_bytes);
		goto fail;
	}
	buf = malloc(max_bytes + 1);
	if (!buf) {
		snprintf(err, errlen, "cannot read '%s': out of memory", path);
		goto fail;
	}
	/* Up to one byte past the limit, to notice a file that grew. */
	while (n <= max_bytes &&
	       (got = read(fd, buf + n, max_bytes + 1 - n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(err, errlen, "cannot read '%s': %s", path,
				 strerror(errno));
			goto fail;
		}
		n += (size_t)got;
	}
	if (n > max_bytes) {
		snprintf(err, errlen, "'%s' holds more than %zu bytes", path,
			 max_bytes);
		goto fail;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	if (buf) {
		explicit_bzero(buf, max_bytes + 1);
		free(buf);
	}
	close(fd);
	return -1;
}

int pl_token_key_load(struct pl_token_key *key, const char *path, char *err,
		      size_t errlen)
{
	char *text;
	size_t len, n;

	memset(key, 0, sizeof(*key));
	if (pl_token_secret_read(path, PL_TOKEN_SECRET_FILE_MAX, &text, &len,
				 err, errlen))
		return -1;
	/* Of a longer secret, the first 256 bytes count. */
	n = len < sizeof(key->secret) ? len : sizeof(key->secret);
	while (n && isspace((unsigned char)text[n - 1]))
		n--;
	memcpy(key->secret, text, n);
	explicit_bzero(text, len);
	free(text);
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
