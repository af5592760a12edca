/*
 * The fixture of the tests against a real PostgreSQL (tests/db/): the
 * configuration from PARLEY_TEST_PG, four users and three conversations
 * made fresh for each test (ann and bob's direct one, bob and cat's, and a
 * group of all four), and assertion helpers for statements.
 */
#ifndef PL_TEST_DB_FIXTURE_H
#define PL_TEST_DB_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "db.h"

extern struct pl_config cfg;
extern char run_id[32];

struct fixture {
	struct pl_db db;
	long long u[4];
	long long direct12, direct23, group1234;
};

/* Runs q (asserting it succeeds); the caller PQclear()s the result. */
PGresult *sql(struct pl_db *db, const char *q, int n, const char *const *params);

/* Runs q, which returns one row, and returns its first column as a number. */
long long sql_ll(struct pl_db *db, const char *q, int n,
		 const char *const *params);

long long add_user(struct pl_db *db, const char *name);
long long add_conversation(struct pl_db *db, const char *kind,
			   const long long *users, int n);

/*
 * A reader racing the writers: polls user's inbox until stop, counting
 * polls and gaps (a seq read before the one under it). Run reader_main()
 * on a thread of its own with a struct reader.
 */
struct reader {
	long long user;
	volatile int stop;
	long long last;
	int gaps;
	int polls;
};

void *reader_main(void *arg);

/* cmocka setup and teardown: a struct fixture in *state. */
int setup(void **state);
int teardown(void **state);

/*
 * Loads the configuration from PARLEY_TEST_PG and runs tests[0..n). Returns
 * main()'s exit status (77, automake's "skipped", without PARLEY_TEST_PG).
 */
int fixture_main(const char *name, const struct CMUnitTest *tests, size_t n);

#endif
