/*
 * lib/slot.c against the Redis Cluster specification: its CRC16 check
 * value, slots Redis itself gives (CLUSTER KEYSLOT), and the hash tag
 * rules with the specification's own examples. And the [redis] cluster
 * node list the configuration reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "config.h"
#include "slot.h"

static unsigned slot(const char *key)
{
	return pl_slot(key, strlen(key));
}

static void test_crc16_check_value(void **state)
{
	(void)state;
	/* The specification: CRC16/XMODEM of "123456789" is 0x31C3. */
	assert_int_equal(pl_crc16("123456789", 9), 0x31C3);
	assert_int_equal(pl_crc16("", 0), 0);
}

static void test_slots_as_redis_gives_them(void **state)
{
	(void)state;
	/* redis-cli CLUSTER KEYSLOT on Redis 7.0. */
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("bar"), 5061);
	assert_int_equal(slot("hello"), 866);
	assert_int_equal(slot("parley:presence:{p3}:42"), slot("p3"));
	assert_int_equal(pl_slot("a\0b", 3), pl_crc16("a\0b", 3) % PL_SLOTS);
}

static void test_hash_tags(void **state)
{
	(void)state;
	/* The specification's examples. */
	assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
	assert_int_equal(slot("{user1000}.following"), slot("user1000"));
	assert_int_equal(slot("foo{}{bar}"), pl_crc16("foo{}{bar}", 10) % PL_SLOTS);
	assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
	assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
	/* No closing brace, or a '}' before any '{': the whole key. */
	assert_int_equal(slot("foo{bar"), pl_crc16("foo{bar", 7) % PL_SLOTS);
	assert_int_equal(slot("}foo{"), pl_crc16("}foo{", 5) % PL_SLOTS);
	/* Parley's tags put a script's keys in one slot. */
	assert_int_equal(slot("parley:presence:{p7}:deadlines"),
			 slot("parley:presence:{p7}:1234567"));
	assert_int_equal(slot("parley:{relays}"), slot("parley:{relays}:r1"));
}

static void test_cluster_nodes_in_config(void **state)
{
	struct pl_config cfg;
	char err[256], host[PL_CONFIG_HOST_MAX];
	int port;

	(void)state;
	pl_config_init(&cfg);
	assert_int_equal(pl_config_redis_nodes(&cfg), 0);
	assert_int_equal(pl_config_parse(&cfg, "[redis]\ncluster = 10.0.0.1:6379,"
					 "[::1]:7000,h3:1\n", "t", err,
					 sizeof(err)), 0);
	assert_int_equal(pl_config_redis_nodes(&cfg), 3);
	assert_int_equal(pl_config_redis_node(&cfg, 0, host, sizeof(host), &port), 0);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(port, 6379);
	assert_int_equal(pl_config_redis_node(&cfg, 1, host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 7000);
	assert_int_equal(pl_config_redis_node(&cfg, 2, host, sizeof(host), &port), 0);
	assert_string_equal(host, "h3");
	assert_int_equal(port, 1);
	assert_int_equal(pl_config_redis_node(&cfg, 3, host, sizeof(host), &port), -1);
	pl_config_release(&cfg);

	/* A list that does not parse is refused with the node it stops at. */
	static const char *const bad[] = {
		"10.0.0.1", "10.0.0.1:", ":6379", "a:6379,b", "a:0", "a:65536",
		"a:63x", "a:1,,b:2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];

		snprintf(text, sizeof(text), "[redis]\ncluster = %s\n", bad[i]);
		pl_config_init(&cfg);
		assert_int_not_equal(pl_config_parse(&cfg, text, "t", err,
						     sizeof(err)), 0);
		assert_non_null(strstr(err, "[redis] cluster"));
		pl_config_release(&cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16_check_value),
		cmocka_unit_test(test_slots_as_redis_gives_them),
		cmocka_unit_test(test_hash_tags),
		cmocka_unit_test(test_cluster_nodes_in_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
