#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pl_limits.h"
#include "validate.h"

static char why[256];

static void test_validate_utf8_accepts_text_in_any_script(void **state)
{
	const char *ok[] = { "hello", "caf\xc3\xa9", "\xe4\xbd\xa0\xe5\xa5\xbd",
			     "\xf0\x9f\x98\x80", "" };

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_true(pl_validate_utf8(ok[i], strlen(ok[i])));
}

static void test_validate_utf8_refuses_malformed_bytes(void **state)
{
	const char *bad[] = {
		"\xc3",			/* truncated */
		"\xc0\xaf",		/* overlong '/' */
		"\xe0\x80\xaf",		/* overlong */
		"\xed\xa0\x80",		/* surrogate */
		"\xf4\x90\x80\x80",	/* past U+10FFFF */
		"\xff",
		"a\x80",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(pl_validate_utf8(bad[i], strlen(bad[i])));
	assert_false(pl_validate_utf8("a\0b", 3));	/* NUL inside */
}

static void test_validate_username_rules(void **state)
{
	(void)state;
	assert_int_equal(pl_validate_username("alice_1.x-y", why, sizeof(why)), PL_OK);
	assert_int_equal(pl_validate_username("ab", why, sizeof(why)), PL_BAD_REQUEST);
	assert_int_equal(pl_validate_username("Alice", why, sizeof(why)), PL_BAD_REQUEST);
	assert_int_equal(pl_validate_username("a b c", why, sizeof(why)), PL_BAD_REQUEST);
	assert_int_equal(pl_validate_username("abcdefghijabcdefghijabcdefghijab",
					      why, sizeof(why)), PL_OK);
	assert_int_equal(pl_validate_username("abcdefghijabcdefghijabcdefghijabc",
					      why, sizeof(why)), PL_TOO_LARGE);
	assert_non_null(strstr(why, "3 to 32"));
}

static void test_validate_body_limits(void **state)
{
	char big[PL_BODY_MAX_BYTES + 2];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(pl_validate_body(big, PL_BODY_MAX_BYTES, why, sizeof(why)), PL_OK);
	assert_int_equal(pl_validate_body(big, PL_BODY_MAX_BYTES + 1, why, sizeof(why)),
			 PL_TOO_LARGE);
	assert_int_equal(pl_validate_body("", 0, why, sizeof(why)), PL_BAD_REQUEST);
	assert_int_equal(pl_validate_body("\xc3", 1, why, sizeof(why)), PL_BAD_REQUEST);
}

static void test_validate_client_msg_id_is_printable_ascii(void **state)
{
	char long_id[PL_CLIENT_MSG_ID_MAX + 2];

	(void)state;
	memset(long_id, 'k', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(pl_validate_client_msg_id("m-1 ~ok", why, sizeof(why)), PL_OK);
	assert_int_equal(pl_validate_client_msg_id("", why, sizeof(why)), PL_BAD_REQUEST);
	assert_int_equal(pl_validate_client_msg_id("tab\there", why, sizeof(why)),
			 PL_BAD_REQUEST);
	assert_int_equal(pl_validate_client_msg_id("\xc3\xa9", why, sizeof(why)),
			 PL_BAD_REQUEST);
	assert_int_equal(pl_validate_client_msg_id(long_id, why, sizeof(why)),
			 PL_TOO_LARGE);
}

/* n copies of c, NUL-terminated, in buf (n + 1 bytes). */
static const char *repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static enum pl_err push(const char *platform, const char *token)
{
	return pl_validate_push_token(platform, token, why, sizeof(why));
}

static void test_validate_push_token_apns_is_hex_only(void **state)
{
	char buf[PL_PUSH_TOKEN_MAX + 2];
	char hex[PL_APNS_TOKEN_MIN_HEX + 3];

	(void)state;
	repeat(hex, 'a', PL_APNS_TOKEN_MIN_HEX);
	assert_int_equal(push("apns", hex), PL_OK);
	hex[0] = 'F';
	hex[1] = '0';
	assert_int_equal(push("apns", hex), PL_OK);
	assert_int_equal(push("apns", repeat(buf, '9', PL_APNS_TOKEN_MAX_HEX)), PL_OK);
	/* Anything that could leave the URL path /3/device/<token>. */
	hex[10] = '/';
	assert_int_equal(push("apns", hex), PL_BAD_REQUEST);
	hex[10] = '?';
	assert_int_equal(push("apns", hex), PL_BAD_REQUEST);
	hex[10] = '%';
	assert_int_equal(push("apns", hex), PL_BAD_REQUEST);
	hex[10] = 'g';
	assert_int_equal(push("apns", hex), PL_BAD_REQUEST);
	hex[10] = ' ';
	assert_int_equal(push("apns", hex), PL_BAD_REQUEST);
	assert_int_equal(push("apns", ""), PL_BAD_REQUEST);
	assert_int_equal(push("apns", repeat(buf, 'a', PL_APNS_TOKEN_MIN_HEX - 2)),
			 PL_BAD_REQUEST);
	assert_int_equal(push("apns", repeat(buf, 'a', PL_APNS_TOKEN_MIN_HEX + 1)),
			 PL_BAD_REQUEST);
	assert_int_equal(push("apns", repeat(buf, 'a', PL_APNS_TOKEN_MAX_HEX + 2)),
			 PL_TOO_LARGE);
	assert_non_null(strstr(why, "apns"));
}

static void test_validate_push_token_fcm_charset(void **state)
{
	char buf[PL_PUSH_TOKEN_MAX + 2];

	(void)state;
	assert_int_equal(push("fcm", "dGVzdA:APA91b_x-Y09"), PL_OK);
	assert_int_equal(push("fcm", "x"), PL_OK);
	assert_int_equal(push("fcm", repeat(buf, 'Z', PL_PUSH_TOKEN_MAX)), PL_OK);
	assert_int_equal(push("fcm", repeat(buf, 'Z', PL_PUSH_TOKEN_MAX + 1)),
			 PL_TOO_LARGE);
	assert_int_equal(push("fcm", ""), PL_BAD_REQUEST);
	assert_int_equal(push("fcm", "a/b"), PL_BAD_REQUEST);
	assert_int_equal(push("fcm", "a b"), PL_BAD_REQUEST);
	assert_int_equal(push("fcm", "a\"b"), PL_BAD_REQUEST);
	assert_int_equal(push("fcm", "a.b"), PL_BAD_REQUEST);
	assert_int_equal(push("fcm", "\xc3\xa9"), PL_BAD_REQUEST);
}

static void test_validate_push_token_web_is_printable_ascii(void **state)
{
	char buf[PL_PUSH_TOKEN_MAX + 2];

	(void)state;
	assert_int_equal(push("web", "https://push.example/a?b=c d"), PL_OK);
	assert_int_equal(push("web", "tab\there"), PL_BAD_REQUEST);
	assert_int_equal(push("web", ""), PL_BAD_REQUEST);
	assert_int_equal(push("web", repeat(buf, '~', PL_PUSH_TOKEN_MAX + 1)),
			 PL_TOO_LARGE);
	assert_int_equal(push("symbian", "abc"), PL_BAD_REQUEST);
}

static void test_validate_display_name_counts_characters(void **state)
{
	char name[64 * 3 + 4] = "";

	(void)state;
	for (int i = 0; i < 64; i++)
		memcpy(name + 3 * i, "\xe4\xbd\xa0", 3);	/* 64 characters */
	assert_int_equal(pl_validate_display_name(name, why, sizeof(why)), PL_OK);
	name[192] = 'x';
	assert_int_equal(pl_validate_display_name(name, why, sizeof(why)), PL_TOO_LARGE);
	assert_int_equal(pl_validate_display_name("", why, sizeof(why)), PL_BAD_REQUEST);
	assert_int_equal(pl_validate_display_name("a\nb", why, sizeof(why)),
			 PL_BAD_REQUEST);
}

static void test_validate_password_length(void **state)
{
	char pw[PL_PASSWORD_MAX_BYTES + 2];

	(void)state;
	memset(pw, 'p', sizeof(pw));
	pw[PL_PASSWORD_MAX_BYTES] = '\0';
	assert_int_equal(pl_validate_password(pw, why, sizeof(why)), PL_OK);
	pw[PL_PASSWORD_MAX_BYTES] = 'p';
	pw[PL_PASSWORD_MAX_BYTES + 1] = '\0';
	assert_int_equal(pl_validate_password(pw, why, sizeof(why)), PL_TOO_LARGE);
	assert_int_equal(pl_validate_password("short", why, sizeof(why)), PL_BAD_REQUEST);
}

/* A quote cut at a byte limit must not end inside a character. */
static void test_validate_utf8_prefix_never_splits_a_character(void **state)
{
	/* "ab" then U+00E9 (2 bytes), U+4F60 (3 bytes), U+1F44B (4 bytes). */
	const char *s = "ab\xc3\xa9\xe4\xbd\xa0\xf0\x9f\x91\x8b";

	(void)state;
	assert_int_equal(pl_validate_utf8_prefix(s, 2), 2);
	assert_int_equal(pl_validate_utf8_prefix(s, 3), 2);
	assert_int_equal(pl_validate_utf8_prefix(s, 4), 4);
	assert_int_equal(pl_validate_utf8_prefix(s, 6), 4);
	assert_int_equal(pl_validate_utf8_prefix(s, 7), 7);
	assert_int_equal(pl_validate_utf8_prefix(s, 10), 7);
	assert_int_equal(pl_validate_utf8_prefix(s, 11), 11);
	assert_int_equal(pl_validate_utf8_prefix(s, 100), 11);
	/* Already cut short, as vsnprintf() leaves it. */
	assert_int_equal(pl_validate_utf8_prefix("ab\xe4\xbd", 100), 2);
	assert_int_equal(pl_validate_utf8_prefix("", 10), 0);
}

/* Quoted foreign bytes become '?' so the message is valid JSON text. */
static void test_validate_utf8_scrub_replaces_invalid_bytes(void **state)
{
	char cut[] = "type 'ab\xe4\xbd";
	char mixed[] = "a\xff" "b\xc3\xa9" "c\xed\xa0\x80" "d";

	(void)state;
	pl_validate_utf8_scrub(cut);
	assert_string_equal(cut, "type 'ab??");
	pl_validate_utf8_scrub(mixed);
	/* U+00E9 stays; a lone 0xff and a surrogate do not. */
	assert_string_equal(mixed, "a?b\xc3\xa9" "c???d");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_utf8_accepts_text_in_any_script),
		cmocka_unit_test(test_validate_utf8_refuses_malformed_bytes),
		cmocka_unit_test(test_validate_username_rules),
		cmocka_unit_test(test_validate_body_limits),
		cmocka_unit_test(test_validate_client_msg_id_is_printable_ascii),
		cmocka_unit_test(test_validate_push_token_apns_is_hex_only),
		cmocka_unit_test(test_validate_push_token_fcm_charset),
		cmocka_unit_test(test_validate_push_token_web_is_printable_ascii),
		cmocka_unit_test(test_validate_display_name_counts_characters),
		cmocka_unit_test(test_validate_password_length),
		cmocka_unit_test(test_validate_utf8_prefix_never_splits_a_character),
		cmocka_unit_test(test_validate_utf8_scrub_replaces_invalid_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
