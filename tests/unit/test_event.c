#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

static void test_event_message_round_trip(void **state)
{
	const char *frame = "{\"type\":\"message\",\"seq\":42}";
	char *payload = pl_event_encode_message(42, 1700000000123456LL, frame);
	struct pl_event ev;

	(void)state;
	assert_non_null(payload);
	assert_string_equal(payload, "M 42 1700000000123456\n"
			    "{\"type\":\"message\",\"seq\":42}");
	assert_int_equal(pl_event_decode(payload, strlen(payload), &ev), PL_OK);
	assert_int_equal(ev.seq, 42);
	assert_int_equal(ev.created_us, 1700000000123456LL);
	assert_int_equal(ev.frame_len, strlen(frame));
	assert_memory_equal(ev.frame, frame, ev.frame_len);
	free(payload);
}

static void test_event_message_needs_a_seq(void **state)
{
	(void)state;
	assert_null(pl_event_encode_message(0, 1, "{}"));
	assert_null(pl_event_encode_message(-3, 1, "{}"));
}

static void test_event_other_frame_is_the_whole_payload(void **state)
{
	const char *frame = "{\"type\":\"typing\",\"conversation_id\":7}";
	struct pl_event ev;

	(void)state;
	assert_int_equal(pl_event_decode(frame, strlen(frame), &ev), PL_OK);
	assert_int_equal(ev.seq, 0);
	assert_int_equal(ev.created_us, 0);
	assert_ptr_equal(ev.frame, frame);
	assert_int_equal(ev.frame_len, strlen(frame));
	/* "M " without a header line is a frame too. */
	assert_int_equal(pl_event_decode("M x", 3, &ev), PL_OK);
	assert_int_equal(ev.seq, 0);
	assert_int_equal(ev.frame_len, 3);
	assert_int_equal(pl_event_decode("", 0, &ev), PL_OK);
	assert_int_equal(ev.frame_len, 0);
}

static void test_event_header_without_time(void **state)
{
	const char *payload = "M 5\n{}";
	struct pl_event ev;

	(void)state;
	assert_int_equal(pl_event_decode(payload, strlen(payload), &ev), PL_OK);
	assert_int_equal(ev.seq, 5);
	assert_int_equal(ev.created_us, 0);
	assert_int_equal(ev.frame_len, 2);
}

static void expect_malformed(const char *payload)
{
	struct pl_event ev;

	assert_int_equal(pl_event_decode(payload, strlen(payload), &ev),
			 PL_BAD_REQUEST);
	assert_int_equal(ev.seq, 0);
	assert_null(ev.frame);
}

static void test_event_malformed_header_is_refused(void **state)
{
	(void)state;
	expect_malformed("M 0 12\n{}");
	expect_malformed("M -4 12\n{}");
	expect_malformed("M x 12\n{}");
	expect_malformed("M 4 12 junk\n{}");
	expect_malformed("M 4x\n{}");
	expect_malformed("M \n{}");
	expect_malformed("M 4 \n{}");
}

static void test_event_decode_stays_within_len(void **state)
{
	/* The newline past len is not the header's. */
	const char payload[] = "M 9 1\n{}";
	struct pl_event ev;

	(void)state;
	assert_int_equal(pl_event_decode(payload, 5, &ev), PL_OK);
	assert_int_equal(ev.seq, 0);
	assert_int_equal(ev.frame_len, 5);
}

static void test_event_channel_round_trip(void **state)
{
	char ch[PL_EVENT_CHANNEL_BYTES];
	long long user = 0;

	(void)state;
	assert_string_equal(pl_event_channel(ch, 9223372036854775807LL),
			    "parley:u:9223372036854775807");
	assert_int_equal(pl_event_channel_user(ch, &user), 0);
	assert_int_equal(user, 9223372036854775807LL);
	assert_int_equal(pl_event_channel_user("parley:revoke", &user), -1);
}

static void test_event_revoke_round_trip(void **state)
{
	char *payload = pl_event_encode_revoke(77, 3);
	long long sid = 0;

	(void)state;
	assert_non_null(payload);
	assert_int_equal(pl_event_decode_revoke(payload, strlen(payload), &sid), 0);
	assert_int_equal(sid, 77);
	free(payload);
	assert_int_equal(pl_event_decode_revoke("{}", 2, &sid), -1);
	assert_int_equal(pl_event_decode_revoke("not json", 8, &sid), -1);
	assert_int_equal(pl_event_decode_revoke("{\"session_id\":\"7\"}", 18,
						&sid), -1);
	assert_int_equal(pl_event_decode_revoke("{\"session_id\":0}", 16, &sid),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_message_round_trip),
		cmocka_unit_test(test_event_message_needs_a_seq),
		cmocka_unit_test(test_event_other_frame_is_the_whole_payload),
		cmocka_unit_test(test_event_header_without_time),
		cmocka_unit_test(test_event_malformed_header_is_refused),
		cmocka_unit_test(test_event_decode_stays_within_len),
		cmocka_unit_test(test_event_channel_round_trip),
		cmocka_unit_test(test_event_revoke_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
