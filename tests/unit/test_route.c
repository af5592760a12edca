#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "api.h"

static enum pl_err h1(struct api_request *req) { (void)req; return PL_OK; }
static enum pl_err h2(struct api_request *req) { (void)req; return PL_OK; }

static const struct api_route table[] = {
	{ "GET", "/api/v1/health", h1, 0 },
	{ "GET", "/api/v1/conversations/{id}/messages", h1, API_AUTH },
	{ "POST", "/api/v1/conversations/{id}/messages", h2, API_AUTH | API_JSON_BODY },
	{ "DELETE", "/api/v1/conversations/{id}/members/{id}", h2, API_AUTH },
};
#define N (sizeof(table) / sizeof(table[0]))

static void test_route_matches_method_and_ids(void **state)
{
	const struct api_route *r = NULL;
	long long p[API_MAX_PARAMS];
	int np = -1;
	char allow[64];

	(void)state;
	assert_int_equal(api_route_find(table, N, "POST",
					"/api/v1/conversations/42/messages",
					&r, p, &np, allow, sizeof(allow)), PL_OK);
	assert_ptr_equal(r, &table[2]);
	assert_int_equal(np, 1);
	assert_int_equal(p[0], 42);
	assert_int_equal(api_route_find(table, N, "DELETE",
					"/api/v1/conversations/7/members/9",
					&r, p, &np, allow, sizeof(allow)), PL_OK);
	assert_int_equal(np, 2);
	assert_int_equal(p[0], 7);
	assert_int_equal(p[1], 9);
}

static void test_route_unknown_path_is_not_found(void **state)
{
	const struct api_route *r;
	long long p[API_MAX_PARAMS];
	int np;
	char allow[64];

	(void)state;
	const char *paths[] = {
		"/api/v1/nope", "/api/v1/health/", "/api/v1/conversations/x/messages",
		"/api/v1/conversations/0/messages", "/api/v1/conversations/-1/messages",
		"/api/v1/conversations/99999999999999999999/messages",
		"/api/v1/conversations//messages", "",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		assert_int_equal(api_route_find(table, N, "GET", paths[i], &r, p,
						&np, allow, sizeof(allow)),
				 PL_NOT_FOUND);
}

static void test_route_wrong_method_lists_allowed(void **state)
{
	const struct api_route *r;
	long long p[API_MAX_PARAMS];
	int np;
	char allow[64];

	(void)state;
	assert_int_equal(api_route_find(table, N, "PUT",
					"/api/v1/conversations/3/messages",
					&r, p, &np, allow, sizeof(allow)),
			 PL_METHOD_NOT_ALLOWED);
	assert_string_equal(allow, "GET, POST");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_matches_method_and_ids),
		cmocka_unit_test(test_route_unknown_path_is_not_found),
		cmocka_unit_test(test_route_wrong_method_lists_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
