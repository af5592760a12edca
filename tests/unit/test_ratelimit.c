#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ratelimit.h"

static void expect_key(const char *addr, const char *want)
{
	char out[PL_RATELIMIT_CLIENT_KEY_BYTES];

	memset(out, 'x', sizeof(out));
	pl_ratelimit_client_key(addr, out);
	assert_string_equal(out, want);
}

static void test_ratelimit_ipv4_is_its_own_key(void **state)
{
	(void)state;
	expect_key("192.0.2.7", "192.0.2.7");
	expect_key("127.0.0.1", "127.0.0.1");
}

static void test_ratelimit_ipv6_is_keyed_by_its_64(void **state)
{
	(void)state;
	expect_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64");
	expect_key("2001:db8:1:2::1", "2001:db8:1:2::/64");
	/* Another spelling of the same network is the same key. */
	expect_key("2001:0DB8:0001:0002:0:0:0:ffff", "2001:db8:1:2::/64");
	/* The next /64 is another key. */
	expect_key("2001:db8:1:3::1", "2001:db8:1:3::/64");
	expect_key("::1", "::/64");
	expect_key("fe80::1234:5678", "fe80::/64");
	/* A zone names an interface, not a client. */
	expect_key("fe80::1%eth0", "fe80::/64");
	/* Zeros that compress differently once the host part is gone. */
	expect_key("2001:db8:0:0:1:2:3:4", "2001:db8::/64");
	expect_key("2001:0:0:1:ffff:ffff:ffff:ffff", "2001:0:0:1::/64");
}

static void test_ratelimit_ipv4_mapped_is_the_ipv4_address(void **state)
{
	(void)state;
	expect_key("::ffff:192.0.2.7", "192.0.2.7");
	expect_key("::FFFF:c000:0207", "192.0.2.7");
}

static void test_ratelimit_no_address_keeps_a_key(void **state)
{
	(void)state;
	expect_key(NULL, "-");
	expect_key("", "-");
	expect_key("unix:", "unix:");
	/* Text that is no address is kept, cut to fit. */
	expect_key("2001:db8::g", "2001:db8::g");
	expect_key("0123456789012345678901234567890123456789012345678901234567890123456789",
		   "012345678901234567890123456789012345678901234567890123456789012");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_ipv4_is_its_own_key),
		cmocka_unit_test(test_ratelimit_ipv6_is_keyed_by_its_64),
		cmocka_unit_test(test_ratelimit_ipv4_mapped_is_the_ipv4_address),
		cmocka_unit_test(test_ratelimit_no_address_keeps_a_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
