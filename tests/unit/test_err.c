#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "err.h"

static void test_err_maps_every_contract_code(void **state)
{
	static const struct {
		enum pl_err err;
		int status;
		const char *code;
	} want[] = {
		{ PL_BAD_REQUEST, 400, "bad_request" },
		{ PL_UNAUTHORIZED, 401, "unauthorized" },
		{ PL_FORBIDDEN, 403, "forbidden" },
		{ PL_NOT_FOUND, 404, "not_found" },
		{ PL_METHOD_NOT_ALLOWED, 405, "method_not_allowed" },
		{ PL_CONFLICT, 409, "conflict" },
		{ PL_TOO_LARGE, 413, "too_large" },
		{ PL_RATE_LIMITED, 429, "rate_limited" },
		{ PL_INTERNAL, 500, "internal" },
		{ PL_UNAVAILABLE, 503, "unavailable" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		enum pl_err back;

		assert_int_equal(pl_err_http_status(want[i].err), want[i].status);
		assert_string_equal(pl_err_code(want[i].err), want[i].code);
		assert_int_equal(pl_err_from_code(want[i].code, &back), 0);
		assert_int_equal(back, want[i].err);
	}
}

static void test_err_ok_is_zero_and_200(void **state)
{
	(void)state;
	assert_int_equal(PL_OK, 0);
	assert_int_equal(pl_err_http_status(PL_OK), 200);
}

static void test_err_unknown_values_are_internal(void **state)
{
	enum pl_err out;

	(void)state;
	assert_int_equal(pl_err_http_status((enum pl_err)999), 500);
	assert_string_equal(pl_err_code((enum pl_err)-3), "internal");
	assert_int_equal(pl_err_from_code("teapot", &out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_maps_every_contract_code),
		cmocka_unit_test(test_err_ok_is_zero_and_200),
		cmocka_unit_test(test_err_unknown_values_are_internal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
