/*
 * test_notify: how the notifier reads APNs and FCM answers (which decide
 * between ack, retry, token removal and a credential refresh), and that it
 * refuses to sign a provider token with an unusable key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "notify.h"

static struct notify_req answer(CURLcode result, long status, const char *body)
{
	struct notify_req req;

	memset(&req, 0, sizeof(req));
	req.result = result;
	req.status = status;
	req.retry_after_s = -1;
	snprintf(req.resp, sizeof(req.resp), "%s", body);
	req.resp_len = strlen(req.resp);
	return req;
}

static enum notify_outcome apns(CURLcode result, long status, const char *body)
{
	struct notify_req req = answer(result, status, body);

	return notify_apns_outcome(&req);
}

static enum notify_outcome fcm(long status, const char *error_code)
{
	char body[512];
	struct notify_req req;

	snprintf(body, sizeof(body), "{\"error\":{\"code\":%ld,\"status\":\"X\","
		 "\"details\":[{\"@type\":\"type.googleapis.com/google.firebase."
		 "fcm.v1.FcmError\",\"errorCode\":\"%s\"}]}}", status, error_code);
	req = answer(CURLE_OK, status, status == 200 ? "{}" : body);
	return notify_fcm_outcome(&req);
}

static void test_notify_apns_outcome_classifies_answers(void **state)
{
	(void)state;
	assert_int_equal(apns(CURLE_OK, 200, ""), NOTIFY_SENT);
	assert_int_equal(apns(CURLE_OK, 410, "{\"reason\":\"Unregistered\"}"),
			 NOTIFY_TOKEN_GONE);
	assert_int_equal(apns(CURLE_OK, 400, "{\"reason\":\"BadDeviceToken\"}"),
			 NOTIFY_TOKEN_GONE);
	assert_int_equal(apns(CURLE_OK, 400, "{\"reason\":\"TopicDisallowed\"}"),
			 NOTIFY_REJECTED);
	assert_int_equal(apns(CURLE_OK, 403,
			      "{\"reason\":\"ExpiredProviderToken\"}"), NOTIFY_AUTH);
	assert_int_equal(apns(CURLE_OK, 413, "{\"reason\":\"PayloadTooLarge\"}"),
			 NOTIFY_REJECTED);
	assert_int_equal(apns(CURLE_OK, 429, "{\"reason\":\"TooManyRequests\"}"),
			 NOTIFY_RETRY);
	assert_int_equal(apns(CURLE_OK, 503, ""), NOTIFY_RETRY);
	assert_int_equal(apns(CURLE_COULDNT_CONNECT, 0, ""), NOTIFY_RETRY);
	assert_int_equal(apns(CURLE_OPERATION_TIMEDOUT, 0, ""), NOTIFY_RETRY);
}

static void test_notify_fcm_outcome_classifies_answers(void **state)
{
	(void)state;
	assert_int_equal(fcm(200, ""), NOTIFY_SENT);
	assert_int_equal(fcm(404, "UNREGISTERED"), NOTIFY_TOKEN_GONE);
	assert_int_equal(fcm(400, "INVALID_ARGUMENT"), NOTIFY_REJECTED);
	assert_int_equal(fcm(403, "SENDER_ID_MISMATCH"), NOTIFY_TOKEN_GONE);
	assert_int_equal(fcm(401, "UNAUTHENTICATED"), NOTIFY_AUTH);
	assert_int_equal(fcm(429, "QUOTA_EXCEEDED"), NOTIFY_RETRY);
	assert_int_equal(fcm(503, "UNAVAILABLE"), NOTIFY_RETRY);
	assert_int_equal(fcm(500, "INTERNAL"), NOTIFY_RETRY);
	assert_int_equal(fcm(403, "THIRD_PARTY_AUTH_ERROR"), NOTIFY_REJECTED);
}

/*
 * FCM's two INVALID_ARGUMENT answers (its "error codes" page): a field
 * violation on the message keeps the token, one on message.token removes it.
 */
static void test_notify_fcm_invalid_argument_blames_the_token_only_by_field(
	void **state)
{
	struct notify_req payload = answer(CURLE_OK, 400,
		"{\"error\":{\"code\":400,\"message\":\"Invalid value at "
		"'message.data[0].value' (TYPE_STRING), 12\",\"status\":"
		"\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis"
		".com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
		"\"message.data[0].value\",\"description\":\"Invalid value\"}]}]}}");
	struct notify_req token = answer(CURLE_OK, 400,
		"{\"error\":{\"code\":400,\"message\":\"The registration token "
		"is not a valid FCM registration token\",\"status\":"
		"\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis"
		".com/google.firebase.fcm.v1.FcmError\",\"errorCode\":"
		"\"INVALID_ARGUMENT\"},{\"@type\":\"type.googleapis.com/google."
		"rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
		"\"message.token\",\"description\":\"Invalid registration "
		"token\"}]}]}}");
	struct notify_req bare = answer(CURLE_OK, 400,
		"{\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\"}}");
	struct notify_req junk = answer(CURLE_OK, 400, "not json");

	(void)state;
	assert_int_equal(notify_fcm_outcome(&payload), NOTIFY_REJECTED);
	assert_int_equal(notify_fcm_outcome(&token), NOTIFY_TOKEN_GONE);
	assert_int_equal(notify_fcm_outcome(&bare), NOTIFY_REJECTED);
	assert_int_equal(notify_fcm_outcome(&junk), NOTIFY_REJECTED);
}

static void test_notify_jwt_sign_refuses_a_bad_key(void **state)
{
	char *out = (char *)1;

	(void)state;
	assert_null(notify_jwt_sign(JWT_ALG_ES256, "not a key", "KID",
				    "{\"iss\":\"T\"}"));
	assert_int_equal(notify_key_read(NULL, "-----BEGIN PRIVATE KEY-----\n"
					 "AAAA\n-----END PRIVATE KEY-----\n", 1,
					 &out), -1);
	assert_null(out);
}

/* A token answer claiming a huge lifetime is capped, not overflowed. */
static void test_notify_fcm_token_answer_caps_the_lifetime(void **state)
{
	struct notify_req req = answer(CURLE_OK, 200, "{\"access_token\":\"t\","
				       "\"expires_in\":9223372036854775807}");
	char *token;
	long long expires_in, refresh_ms;

	(void)state;
	assert_int_equal(notify_fcm_token_answer(&req, &token, &expires_in,
						 &refresh_ms), PL_OK);
	assert_string_equal(token, "t");
	assert_int_equal(expires_in, 24 * 3600);
	assert_int_equal(refresh_ms, (24 * 3600 - 60) * 1000LL);
	free(token);
	req = answer(CURLE_OK, 200, "{\"access_token\":\"t\",\"expires_in\":3599}");
	assert_int_equal(notify_fcm_token_answer(&req, &token, &expires_in,
						 &refresh_ms), PL_OK);
	assert_int_equal(refresh_ms, 3539 * 1000LL);
	free(token);
	req = answer(CURLE_OK, 200, "{\"access_token\":\"t\",\"expires_in\":0}");
	assert_int_equal(notify_fcm_token_answer(&req, &token, &expires_in,
						 &refresh_ms), PL_UNAVAILABLE);
	assert_null(token);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_apns_outcome_classifies_answers),
		cmocka_unit_test(test_notify_fcm_outcome_classifies_answers),
		cmocka_unit_test(test_notify_fcm_invalid_argument_blames_the_token_only_by_field),
		cmocka_unit_test(test_notify_fcm_token_answer_caps_the_lifetime),
		cmocka_unit_test(test_notify_jwt_sign_refuses_a_bad_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
