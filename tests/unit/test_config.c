#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "registry.h"

extern char **environ;

/* The tests read defaults: no PARLEY_* variable of the caller may leak in. */
static int clear_parley_env(void **state)
{
	char name[128];

	(void)state;
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++) {
			if (strncmp(*e, "PARLEY_", 7) == 0) {
				size_t n = strcspn(*e, "=");

				snprintf(name, sizeof(name), "%.*s", (int)n, *e);
				unsetenv(name);
				again = 1;
				break;
			}
		}
	}
	return 0;
}

static char path[] = "/tmp/parley-test-config-XXXXXX";

static void write_conf(const char *text)
{
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	/* mkstemp() filled the template in: reset it. */
	snprintf(path, sizeof(path), "%s", "/tmp/parley-test-config-XXXXXX");
	unsetenv("PARLEY_API_THREADS");
	unsetenv("PARLEY_LOG_LEVEL");
	return 0;
}

static void test_config_defaults_without_file(void **state)
{
	struct pl_config cfg;
	char err[256];

	(void)state;
	pl_config_init(&cfg);
	assert_int_equal(pl_config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_int_equal(cfg.api_threads, 16);
	assert_int_equal(cfg.redis_port, 6379);
	assert_int_equal(cfg.presence_timeout_s, 30);
	assert_string_equal(cfg.relay_region, "default");
	assert_int_equal(cfg.log_level_value, PL_LOG_INFO);
	pl_config_release(&cfg);
}

static void test_config_reads_file_and_env_wins(void **state)
{
	struct pl_config cfg;
	char err[256];

	(void)state;
	write_conf("[api]\nthreads = 3\nlisten = /tmp/x.sock ; comment\n"
		   "[log]\nlevel = debug\n");
	setenv("PARLEY_API_THREADS", "5", 1);
	pl_config_init(&cfg);
	assert_int_equal(pl_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.api_threads, 5);
	assert_string_equal(cfg.api_listen, "/tmp/x.sock");
	assert_int_equal(cfg.log_level_value, PL_LOG_DEBUG);
	pl_config_release(&cfg);
}

static void test_config_unknown_key_names_file_and_line(void **state)
{
	struct pl_config cfg;
	char err[512];
	char want[128];

	(void)state;
	write_conf("[api]\nthreads = 2\n\nthredas = 4\n");
	pl_config_init(&cfg);
	assert_int_equal(pl_config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:4:", path);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, "thredas"));
	pl_config_release(&cfg);
}

/* Loads text as a file and expects an error that says want and want2. */
static void expect_load_error(const char *text, const char *want,
			      const char *want2)
{
	struct pl_config cfg;
	char err[512];

	write_conf(text);
	pl_config_init(&cfg);
	assert_int_equal(pl_config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, want2));
	pl_config_release(&cfg);
}

/*
 * A conninfo listing every node with its options easily passes 200
 * characters, which inih would cut, reading the rest as a line of its own:
 * refused, naming the line, instead. The longest line inih reads whole
 * still works.
 */
static void test_config_line_too_long_is_refused_with_its_number(void **state)
{
	struct pl_config cfg;
	char text[512], err[512];
	const char *head = "[database]\nconninfo = host=";
	size_t n = strlen(head);

	(void)state;
	memcpy(text, head, n);
	memset(text + n, 'a', 300);
	snprintf(text + n + 300, sizeof(text) - n - 300, "\n");
	expect_load_error(text, ":2:", "longer than 198 characters");
	teardown(state);	/* a new file for the next write_conf() */
	/* "conninfo = host=" and 182 more: 198 characters. */
	snprintf(text + n + 182, sizeof(text) - n - 182, "\n");
	write_conf(text);
	pl_config_init(&cfg);
	assert_int_equal(pl_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(strlen(cfg.db_conninfo), strlen("host=") + 182);
	pl_config_release(&cfg);
}

static void test_config_discovery_backend_is_redis_or_zookeeper(void **state)
{
	struct pl_config cfg;

	(void)state;
	pl_config_init(&cfg);
	assert_string_equal(cfg.discovery_backend, "redis");
	pl_config_release(&cfg);
	expect_load_error("[discovery]\nbackend = etcd\n",
			  "[discovery] backend", "etcd");
}

static void test_config_discovery_backends_are_the_registrys(void **state)
{
	static const char *const names[] = { "redis", "zookeeper", "etcd", "" };

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(pl_config_discovery_backend_known(names[i]),
				 pl_registry_backend_known(names[i]));
}

static void test_config_zookeeper_backend_needs_its_servers(void **state)
{
	(void)state;
	expect_load_error("[discovery]\nbackend = zookeeper\n",
			  "[discovery] zookeeper", "host:port");
}

static void test_config_out_of_range_is_an_error(void **state)
{
	(void)state;
	expect_load_error("[api]\nthreads = 0\n", ":2:", "out of range");
}

static void test_config_bad_env_value_is_an_error(void **state)
{
	struct pl_config cfg;
	char err[512];

	(void)state;
	setenv("PARLEY_LOG_LEVEL", "loud", 1);
	pl_config_init(&cfg);
	assert_int_equal(pl_config_load(&cfg, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "level"));
	pl_config_release(&cfg);
}

struct seen {
	char keys[256][160];
	int n;
};

static int example_handler_found(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], name) == 0)
			return 1;
	return 0;
}

static void check_documented(const char *section, const char *key, void *arg)
{
	const struct seen *example = arg;
	char name[160];

	snprintf(name, sizeof(name), "%s.%s", section, key);
	if (!example_handler_found(example, name))
		fail_msg("key [%s] %s is missing from parley.conf.example",
			 section, key);
}

static void test_config_example_documents_every_key(void **state)
{
	FILE *f = fopen(PL_EXAMPLE_CONF, "r");
	struct seen example = { .n = 0 };
	char line[512], section[64] = "";
	struct pl_config cfg;
	char err[512];

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char key[64];

		if (sscanf(line, "[%63[^]]]", section) == 1)
			continue;
		if (line[0] != ';' && sscanf(line, "%63[a-z_] =", key) == 1 &&
		    example.n < 256)
			snprintf(example.keys[example.n++], 160, "%s.%s",
				 section, key);
	}
	fclose(f);
	pl_config_each_key(check_documented, &example);
	/* And the example itself loads: no key it names is unknown. */
	pl_config_init(&cfg);
	if (pl_config_load(&cfg, PL_EXAMPLE_CONF, err, sizeof(err)))
		fail_msg("the example does not load: %s", err);
	pl_config_release(&cfg);
}

static void count_key(const char *section, const char *key, void *arg)
{
	(void)section;
	(void)key;
	(*(size_t *)arg)++;
}

/*
 * pl_config_row() describes the table parley.conf(5) is generated from:
 * every key once, each with help, integers with their default in range.
 */
static void test_config_rows_describe_every_key(void **state)
{
	struct pl_config_row row;
	size_t keys = 0, rows = 0;
	int found = 0;

	(void)state;
	pl_config_each_key(count_key, &keys);
	for (; pl_config_row(rows, &row) == 0; rows++) {
		assert_true(row.help[0] != '\0');
		if (row.is_int) {
			long long def = strtoll(row.def, NULL, 10);

			assert_true(row.min <= def && def <= row.max);
		}
		if (strcmp(row.section, "database") == 0 &&
		    strcmp(row.name, "conninfo") == 0) {
			assert_string_equal(row.env, "PARLEY_DATABASE_CONNINFO");
			assert_false(row.is_int);
			found = 1;
		}
		if (strcmp(row.section, "api") == 0 &&
		    strcmp(row.name, "threads") == 0) {
			assert_string_equal(row.def, "16");
			assert_int_equal(row.min, 1);
			assert_int_equal(row.max, 256);
		}
	}
	assert_int_equal(rows, keys);
	assert_true(found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_config_defaults_without_file, teardown),
		cmocka_unit_test_teardown(test_config_reads_file_and_env_wins, teardown),
		cmocka_unit_test_teardown(test_config_unknown_key_names_file_and_line, teardown),
		cmocka_unit_test_teardown(test_config_out_of_range_is_an_error, teardown),
		cmocka_unit_test_teardown(test_config_line_too_long_is_refused_with_its_number,
					  teardown),
		cmocka_unit_test_teardown(test_config_discovery_backend_is_redis_or_zookeeper,
					  teardown),
		cmocka_unit_test_teardown(test_config_zookeeper_backend_needs_its_servers,
					  teardown),
		cmocka_unit_test(test_config_discovery_backends_are_the_registrys),
		cmocka_unit_test_teardown(test_config_bad_env_value_is_an_error, teardown),
		cmocka_unit_test(test_config_example_documents_every_key),
		cmocka_unit_test(test_config_rows_describe_every_key),
	};

	return cmocka_run_group_tests(tests, clear_parley_env, NULL);
}
