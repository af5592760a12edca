/*
 * validate: the contract's rules for user input (doc/protocol.md "Limits").
 *
 * Pure functions over borrowed strings, no allocation. Each returns PL_OK, or
 * PL_BAD_REQUEST for a malformed value and PL_TOO_LARGE for one over its
 * size limit, and fills why (whylen bytes) with a message for the client.
 */
#ifndef PL_VALIDATE_H
#define PL_VALIDATE_H

#include <stddef.h>

#include "err.h"

/* Returns 1 if s[0..len) is valid UTF-8 without NUL bytes, else 0. */
int pl_validate_utf8(const char *s, size_t len);

/* Number of UTF-8 characters in a valid UTF-8 string. */
size_t pl_validate_utf8_chars(const char *s, size_t len);

/*
 * The length of the longest prefix of s, at most max bytes, that does not
 * end inside a character. s is valid UTF-8, or was until it was cut short
 * (as snprintf() cuts); quoting that many bytes keeps a message valid UTF-8.
 */
size_t pl_validate_utf8_prefix(const char *s, size_t max);

/*
 * Replaces every byte of the NUL-terminated s that is not part of a valid
 * UTF-8 character with '?', in place, so s can go into a JSON string. For
 * messages that quote foreign text (a parser's error, a cut quote).
 */
void pl_validate_utf8_scrub(char *s);

/* 3..32 of [a-z0-9_.-]. */
enum pl_err pl_validate_username(const char *s, char *why, size_t whylen);

/* 8..256 bytes. */
enum pl_err pl_validate_password(const char *s, char *why, size_t whylen);

/* 1..64 characters of UTF-8, no control characters. */
enum pl_err pl_validate_display_name(const char *s, char *why, size_t whylen);

/* A message body: 1..4096 bytes of valid UTF-8. */
enum pl_err pl_validate_body(const char *s, size_t len, char *why,
			     size_t whylen);

/* 1..64 printable ASCII characters (0x20..0x7e). */
enum pl_err pl_validate_client_msg_id(const char *s, char *why, size_t whylen);

/*
 * APNs device tokens, as hex digits: 32 bytes today, and Apple warns they
 * may grow, so up to 100 bytes are taken.
 */
#define PL_APNS_TOKEN_MIN_HEX 64
#define PL_APNS_TOKEN_MAX_HEX 200

/*
 * A push token for platform (doc/protocol.md "Limits"): for "apns" an even
 * count of PL_APNS_TOKEN_MIN_HEX..PL_APNS_TOKEN_MAX_HEX hex digits, for
 * "fcm" 1..4096 of [A-Za-z0-9_:-], for "web" 1..4096 printable ASCII. The
 * apns and fcm tokens go into a provider's URL or JSON as they are, so
 * nothing else may pass. Another platform is PL_BAD_REQUEST.
 */
enum pl_err pl_validate_push_token(const char *platform, const char *s,
				   char *why, size_t whylen);

#endif
