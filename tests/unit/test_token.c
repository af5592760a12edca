#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "token.h"

static struct pl_token_key key;
static char why[128];

static void set_key(struct pl_token_key *k, const char *secret)
{
	memset(k, 0, sizeof(*k));
	k->len = strlen(secret);
	memcpy(k->secret, secret, k->len);
}

static int setup(void **state)
{
	(void)state;
	set_key(&key, "0123456789abcdef0123456789abcdef-test-secret");
	return 0;
}

static char *sign(long long user, long long exp)
{
	struct pl_token_claims c = { user, 7, 9, (time_t)exp };
	char *t = NULL;

	assert_int_equal(pl_token_sign(&key, &c, &t), PL_OK);
	return t;
}

/* base64url without padding, as JWT segments are. */
static void b64url(const char *in, char *out, size_t outlen)
{
	sodium_bin2base64(out, outlen, (const unsigned char *)in, strlen(in),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void test_token_round_trip(void **state)
{
	struct pl_token_claims c;
	time_t now = time(NULL);
	char *t = sign(42, now + 60);

	(void)state;
	assert_int_equal(pl_token_verify(&key, t, now, &c, why, sizeof(why)), PL_OK);
	assert_int_equal(c.user_id, 42);
	assert_int_equal(c.session_id, 7);
	assert_int_equal(c.device_id, 9);
	assert_int_equal(c.expires_at, now + 60);
	free(t);
}

static void test_token_expired_is_refused(void **state)
{
	struct pl_token_claims c;
	time_t now = time(NULL);
	char *t = sign(42, now - 1);

	(void)state;
	assert_int_equal(pl_token_verify(&key, t, now, &c, why, sizeof(why)),
			 PL_UNAUTHORIZED);
	assert_non_null(strstr(why, "expired"));
	free(t);
}

static void test_token_other_secret_is_refused(void **state)
{
	struct pl_token_key other;
	struct pl_token_claims c;
	time_t now = time(NULL);
	char *t = sign(42, now + 60);

	(void)state;
	set_key(&other, "another-secret-another-secret-another-secret");
	assert_int_equal(pl_token_verify(&other, t, now, &c, why, sizeof(why)),
			 PL_UNAUTHORIZED);
	/* A flipped signature byte fails too. */
	t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(pl_token_verify(&key, t, now, &c, why, sizeof(why)),
			 PL_UNAUTHORIZED);
	free(t);
}

static void test_token_alg_none_is_refused(void **state)
{
	struct pl_token_claims c;
	char head[128], claims[256], body[256], token[512];

	(void)state;
	b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", head, sizeof(head));
	snprintf(body, sizeof(body), "{\"sub\":1,\"sid\":1,\"did\":1,\"exp\":%lld}",
		 (long long)time(NULL) + 600);
	b64url(body, claims, sizeof(claims));
	snprintf(token, sizeof(token), "%s.%s.", head, claims);
	assert_int_equal(pl_token_verify(&key, token, time(NULL), &c, why,
					 sizeof(why)), PL_UNAUTHORIZED);
}

static void test_token_garbage_is_refused(void **state)
{
	struct pl_token_claims c;
	char big[PL_TOKEN_MAX_BYTES + 2];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(pl_token_verify(&key, "", 0, &c, why, sizeof(why)),
			 PL_UNAUTHORIZED);
	assert_int_equal(pl_token_verify(&key, "a.b.c", 0, &c, why, sizeof(why)),
			 PL_UNAUTHORIZED);
	assert_int_equal(pl_token_verify(&key, big, 0, &c, why, sizeof(why)),
			 PL_UNAUTHORIZED);
}

static void test_token_key_file_needs_enough_bytes(void **state)
{
	char path[] = "/tmp/parley-test-secret-XXXXXX";
	int fd = mkstemp(path);
	struct pl_token_key k;
	char err[256];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "short\n", 6), 6);
	assert_int_equal(pl_token_key_load(&k, path, err, sizeof(err)), -1);
	assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef\n", 33), 33);
	assert_int_equal(pl_token_key_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(k.len, 6 + 32);	/* the trailing newline is stripped */
	close(fd);
	unlink(path);
	assert_int_equal(pl_token_key_load(&k, path, err, sizeof(err)), -1);
}

/*
 * A secret file its group or others may read is refused, naming the file
 * and the fix; the owner's modes (0600, 0400) are fine.
 */
static void test_token_key_file_open_to_others_is_refused(void **state)
{
	char path[] = "/tmp/parley-test-secret-XXXXXX";
	int fd = mkstemp(path);
	static const mode_t open_modes[] = { 0644, 0640, 0604, 0620, 0602,
					     0610, 0601, 0666 };
	struct pl_token_key k;
	char err[512], *text;
	size_t len;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef\n", 33), 33);
	close(fd);
	for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
		assert_int_equal(chmod(path, open_modes[i]), 0);
		err[0] = '\0';
		assert_int_equal(pl_token_key_load(&k, path, err, sizeof(err)), -1);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, "chmod 600"));
		assert_int_equal(pl_token_secret_read(path, 4096, &text, &len, err,
						      sizeof(err)), -1);
		assert_null(text);
	}
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(pl_token_key_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(pl_token_key_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(pl_token_secret_read(path, 4096, &text, &len, err,
					      sizeof(err)), 0);
	assert_int_equal(len, 33);
	assert_string_equal(text, "0123456789abcdef0123456789abcdef\n");
	free(text);
	/* Over the size limit. */
	assert_int_equal(pl_token_secret_read(path, 32, &text, &len, err,
					      sizeof(err)), -1);
	assert_null(text);
	unlink(path);
	/* Not a regular file. */
	assert_int_equal(pl_token_secret_read("/tmp", 4096, &text, &len, err,
					      sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_round_trip),
		cmocka_unit_test(test_token_expired_is_refused),
		cmocka_unit_test(test_token_other_secret_is_refused),
		cmocka_unit_test(test_token_alg_none_is_refused),
		cmocka_unit_test(test_token_garbage_is_refused),
		cmocka_unit_test(test_token_key_file_needs_enough_bytes),
		cmocka_unit_test(test_token_key_file_open_to_others_is_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, NULL);
}
