/* lib/prom.c: the Prometheus text of each metric type, and its bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

static void expect_text(struct pl_prom *p, const char *want)
{
	char *text = pl_prom_finish(p);

	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
}

static void test_prom_counter_and_gauge_have_help_and_type(void **state)
{
	struct pl_prom p;

	(void)state;
	pl_prom_init(&p, 0);
	pl_prom_counter(&p, "x_total", "Things done.", 42);
	pl_prom_gauge(&p, "x_open", "Things open.", -3);
	expect_text(&p, "# HELP x_total Things done.\n# TYPE x_total counter\n"
		    "x_total 42\n"
		    "# HELP x_open Things open.\n# TYPE x_open gauge\n"
		    "x_open -3\n");
}

static void test_prom_histogram_buckets_are_cumulative(void **state)
{
	static const double bounds[3] = { 0.001, 0.0025, 10 };
	static const unsigned long counts[3] = { 2, 0, 5 };
	struct pl_prom p;

	(void)state;
	pl_prom_init(&p, 0);
	/* One observation above the last bound: only in +Inf and count. */
	pl_prom_histogram(&p, "h_seconds", "Time.", bounds, counts, 3, 8,
			  12345678, 6);
	expect_text(&p, "# HELP h_seconds Time.\n# TYPE h_seconds histogram\n"
		    "h_seconds_bucket{le=\"0.001\"} 2\n"
		    "h_seconds_bucket{le=\"0.0025\"} 2\n"
		    "h_seconds_bucket{le=\"10\"} 7\n"
		    "h_seconds_bucket{le=\"+Inf\"} 8\n"
		    "h_seconds_sum 12.345678\n"
		    "h_seconds_count 8\n");
}

static void test_prom_summary_sum_is_exact_fixed_point(void **state)
{
	struct pl_prom p;

	(void)state;
	pl_prom_init(&p, 0);
	pl_prom_summary(&p, "s_seconds", "Latency.", 3, 1005, 3);
	pl_prom_summary(&p, "t_seconds", "Zero.", 0, 0, 6);
	pl_prom_summary(&p, "u_seconds", "Whole.", 1, 7, 0);
	expect_text(&p, "# HELP s_seconds Latency.\n# TYPE s_seconds summary\n"
		    "s_seconds_sum 1.005\ns_seconds_count 3\n"
		    "# HELP t_seconds Zero.\n# TYPE t_seconds summary\n"
		    "t_seconds_sum 0.000000\nt_seconds_count 0\n"
		    "# HELP u_seconds Whole.\n# TYPE u_seconds summary\n"
		    "u_seconds_sum 7\nu_seconds_count 1\n");
}

static void test_prom_empty_text_is_empty_string(void **state)
{
	struct pl_prom p;

	(void)state;
	pl_prom_init(&p, 0);
	expect_text(&p, "");
}

static void test_prom_grows_past_its_first_buffer(void **state)
{
	struct pl_prom p;
	char *text;
	size_t len;

	(void)state;
	pl_prom_init(&p, 0);
	for (int i = 0; i < 500; i++)
		pl_prom_counter(&p, "grow_total", "A metric written often.",
				(unsigned long)i);
	text = pl_prom_finish(&p);
	assert_non_null(text);
	len = strlen(text);
	assert_true(len > 4096);
	assert_string_equal(text + len - 15, "grow_total 499\n");
	free(text);
}

static void test_prom_over_the_bound_fails_whole(void **state)
{
	struct pl_prom p;

	(void)state;
	pl_prom_init(&p, 64);
	pl_prom_counter(&p, "a_total", "A.", 1);	/* 51 bytes: fits */
	assert_false(p.failed);
	pl_prom_counter(&p, "b_total", "B.", 2);	/* 102: over 64 */
	assert_true(p.failed);
	pl_prom_counter(&p, "c", "C.", 3);		/* ignored */
	assert_null(pl_prom_finish(&p));
	assert_null(p.buf);
}

static void test_prom_exactly_at_the_bound_fits(void **state)
{
	struct pl_prom p;
	char *text;

	(void)state;
	/* 35 bytes of text and the NUL. */
	pl_prom_init(&p, 36);
	pl_prom_gauge(&p, "g", "G.", 12345);
	text = pl_prom_finish(&p);
	assert_non_null(text);
	assert_int_equal(strlen(text), 35);
	free(text);
	/* One byte less has no room for the NUL. */
	pl_prom_init(&p, 35);
	pl_prom_gauge(&p, "g", "G.", 12345);
	assert_null(pl_prom_finish(&p));
}

static void test_prom_release_drops_an_unfinished_text(void **state)
{
	struct pl_prom p;

	(void)state;
	pl_prom_init(&p, 0);
	pl_prom_gauge(&p, "g", "G.", 1);
	pl_prom_release(&p);
	assert_null(p.buf);
	pl_prom_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prom_counter_and_gauge_have_help_and_type),
		cmocka_unit_test(test_prom_histogram_buckets_are_cumulative),
		cmocka_unit_test(test_prom_summary_sum_is_exact_fixed_point),
		cmocka_unit_test(test_prom_empty_text_is_empty_string),
		cmocka_unit_test(test_prom_grows_past_its_first_buffer),
		cmocka_unit_test(test_prom_over_the_bound_fails_whole),
		cmocka_unit_test(test_prom_exactly_at_the_bound_fits),
		cmocka_unit_test(test_prom_release_drops_an_unfinished_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
