#include "validate.h"

#include <stdio.h>
#include <string.h>

#include "pl_limits.h"
#include "banned.h"

int pl_validate_utf8(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		unsigned int cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i - 1 < need)
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += need + 1;
	}
	return 1;
}

size_t pl_validate_utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

size_t pl_validate_utf8_prefix(const char *s, size_t max)
{
	size_t n = strnlen(s, max), i = n, need;
	unsigned char lead;

	/* Find the first byte of the last character within s[0..n). */
	while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return n;
	lead = (unsigned char)s[i - 1];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	/* Drop that character when the cut left it incomplete. */
	return i - 1 + need > n ? i - 1 : n;
}

void pl_validate_utf8_scrub(char *str)
{
	unsigned char *s = (unsigned char *)str;
	size_t len = strlen(str), i = 0;

	while (i < len) {
		size_t need = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 :
			      s[i] >= 0xc0 ? 2 : 1;

		if (need <= len - i && pl_validate_utf8(str + i, need)) {
			i += need;
			continue;
		}
		s[i++] = '?';
	}
}

static enum pl_err fail(enum pl_err rc, char *why, size_t whylen,
			const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return rc;
}

/*
 * The length rule every field shares: shorter than min is a bad request
 * (too_short), longer than max is too large (too_long).
 */
static enum pl_err length_in(size_t len, size_t min, size_t max,
			     const char *too_short, const char *too_long,
			     char *why, size_t whylen)
{
	if (len < min)
		return fail(PL_BAD_REQUEST, why, whylen, too_short);
	if (len > max)
		return fail(PL_TOO_LARGE, why, whylen, too_long);
	return PL_OK;
}

enum pl_err pl_validate_username(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s);
	enum pl_err rc;

	rc = length_in(len, PL_USERNAME_MIN, PL_USERNAME_MAX,
		       "username must be 3 to 32 characters",
		       "username must be 3 to 32 characters", why, whylen);
	if (rc)
		return rc;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return fail(PL_BAD_REQUEST, why, whylen,
				    "username may hold only a-z, 0-9, '_', '.' and '-'");
	}
	return PL_OK;
}

enum pl_err pl_validate_password(const char *s, char *why, size_t whylen)
{
	return length_in(strlen(s), PL_PASSWORD_MIN_BYTES, PL_PASSWORD_MAX_BYTES,
			 "password must be at least 8 bytes",
			 "password must be at most 256 bytes", why, whylen);
}

enum pl_err pl_validate_display_name(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s);
	size_t chars;

	if (!pl_validate_utf8(s, len))
		return fail(PL_BAD_REQUEST, why, whylen,
			    "display_name must be valid UTF-8");
	chars = pl_validate_utf8_chars(s, len);
	if (chars < 1)
		return fail(PL_BAD_REQUEST, why, whylen,
			    "display_name must not be empty");
	if (chars > PL_DISPLAY_NAME_MAX_CHARS)
		return fail(PL_TOO_LARGE, why, whylen,
			    "display_name must be at most 64 characters");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(PL_BAD_REQUEST, why, whylen,
				    "display_name must not hold control characters");
	return PL_OK;
}

enum pl_err pl_validate_body(const char *s, size_t len, char *why,
			     size_t whylen)
{
	enum pl_err rc = length_in(len, PL_BODY_MIN_BYTES, PL_BODY_MAX_BYTES,
				   "body must not be empty",
				   "body must be at most 4096 bytes", why,
				   whylen);

	if (rc)
		return rc;
	if (!pl_validate_utf8(s, len))
		return fail(PL_BAD_REQUEST, why, whylen,
			    "body must be valid UTF-8 without NUL characters");
	return PL_OK;
}

static enum pl_err printable(const char *s, size_t max, const char *name,
			     char *why, size_t whylen)
{
	size_t len = strlen(s);

	if (len == 0) {
		snprintf(why, whylen, "%s must not be empty", name);
		return PL_BAD_REQUEST;
	}
	if (len > max) {
		snprintf(why, whylen, "%s must be at most %zu characters", name,
			 max);
		return PL_TOO_LARGE;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e) {
			snprintf(why, whylen,
				 "%s must be printable ASCII", name);
			return PL_BAD_REQUEST;
		}
	}
	return PL_OK;
}

enum pl_err pl_validate_client_msg_id(const char *s, char *why, size_t whylen)
{
	return printable(s, PL_CLIENT_MSG_ID_MAX, "client_msg_id", why, whylen);
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static int is_fcm_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c == '-';
}

/* APNs puts the token in the request path: hex digits only. */
static enum pl_err apns_token(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s);
	enum pl_err rc;

	rc = length_in(len, 1, PL_APNS_TOKEN_MAX_HEX,
		       "push_token must not be empty", "push_token of an apns "
		       "device must be at most 200 hex digits", why, whylen);
	if (rc)
		return rc;
	for (size_t i = 0; i < len; i++)
		if (!is_hex(s[i]))
			return fail(PL_BAD_REQUEST, why, whylen, "push_token of "
				    "an apns device must be hex digits");
	if (len < PL_APNS_TOKEN_MIN_HEX || len % 2)
		return fail(PL_BAD_REQUEST, why, whylen, "push_token of an apns "
			    "device must be 64 to 200 hex digits, an even count");
	return PL_OK;
}

/* FCM registration tokens: letters, digits, '_', ':' and '-'. */
static enum pl_err fcm_token(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s);
	enum pl_err rc;

	rc = length_in(len, 1, PL_PUSH_TOKEN_MAX, "push_token must not be empty",
		       "push_token must be at most 4096 characters", why,
		       whylen);
	if (rc)
		return rc;
	for (size_t i = 0; i < len; i++)
		if (!is_fcm_char(s[i]))
			return fail(PL_BAD_REQUEST, why, whylen, "push_token of "
				    "an fcm device may hold only A-Z, a-z, 0-9, "
				    "'_', ':' and '-'");
	return PL_OK;
}

enum pl_err pl_validate_push_token(const char *platform, const char *s,
				   char *why, size_t whylen)
{
	if (strcmp(platform, "apns") == 0)
		return apns_token(s, why, whylen);
	if (strcmp(platform, "fcm") == 0)
		return fcm_token(s, why, whylen);
	if (strcmp(platform, "web") == 0)
		return printable(s, PL_PUSH_TOKEN_MAX, "push_token", why,
				 whylen);
	return fail(PL_BAD_REQUEST, why, whylen,
		    "platform must be \"apns\", \"fcm\" or \"web\"");
}
