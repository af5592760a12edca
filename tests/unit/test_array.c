/* lib/array.c: the doubling rule and what a failed growth leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "array.h"

static void test_array_grow_starts_at_first_cap(void **state)
{
	size_t cap = 0;
	long long *a;

	(void)state;
	a = pl_array_grow(NULL, &cap, 0, sizeof(*a), 256);
	assert_non_null(a);
	assert_int_equal(cap, 256);
	free(a);
}

static void test_array_grow_keeps_array_with_room(void **state)
{
	size_t cap = 4;
	long long *a = malloc(cap * sizeof(*a));

	(void)state;
	assert_ptr_equal(pl_array_grow(a, &cap, 3, sizeof(*a), 256), a);
	assert_int_equal(cap, 4);
	free(a);
}

static void test_array_grow_doubles_and_keeps_elements(void **state)
{
	size_t cap = 2;
	long long *a = malloc(cap * sizeof(*a));

	(void)state;
	a[0] = 7;
	a[1] = 9;
	a = pl_array_grow(a, &cap, 2, sizeof(*a), 256);
	assert_non_null(a);
	assert_int_equal(cap, 4);
	assert_int_equal(a[0], 7);
	assert_int_equal(a[1], 9);
	free(a);
}

static void test_array_grow_refuses_overflow(void **state)
{
	size_t cap = SIZE_MAX / 16 + 1;
	char one;

	(void)state;
	assert_null(pl_array_grow(&one, &cap, cap, 8, 256));
	assert_int_equal(cap, SIZE_MAX / 16 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_array_grow_starts_at_first_cap),
		cmocka_unit_test(test_array_grow_keeps_array_with_room),
		cmocka_unit_test(test_array_grow_doubles_and_keeps_elements),
		cmocka_unit_test(test_array_grow_refuses_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
