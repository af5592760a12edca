#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pl_config cfg;
char run_id[32];


PGresult *sql(struct pl_db *db, const char *q, int n,
		     const char *const *params)
{
	PGresult *res;

	assert_int_equal(pl_db_exec(db, q, n, params, 0, &res, NULL), PL_OK);
	return res;
}

long long sql_ll(struct pl_db *db, const char *q, int n,
			const char *const *params)
{
	PGresult *res = sql(db, q, n, params);
	long long v;

	assert_int_equal(PQntuples(res), 1);
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

long long add_user(struct pl_db *db, const char *name)
{
	char username[64];
	const char *p[1] = { username };
	static int counter;

	snprintf(username, sizeof(username), "%s_%s_%d", name, run_id, counter++);
	return sql_ll(db, "INSERT INTO users (username, password_hash, display_name) "
		      "VALUES ($1, 'x', $1) RETURNING id", 1, p);
}

long long add_conversation(struct pl_db *db, const char *kind,
				  const long long *users, int n)
{
	char key[64] = "", a[24];
	const char *p[2] = { kind, NULL };
	long long id;

	if (strcmp(kind, "direct") == 0) {
		snprintf(key, sizeof(key), "%lld:%lld", users[0], users[1]);
		p[1] = key;
	}
	id = sql_ll(db, "INSERT INTO conversations (kind, direct_key) "
		    "VALUES ($1, $2) RETURNING id", 2, p);
	for (int i = 0; i < n; i++) {
		char b[24];
		const char *q[2] = { a, b };

		snprintf(a, sizeof(a), "%lld", id);
		snprintf(b, sizeof(b), "%lld", users[i]);
		PQclear(sql(db, "INSERT INTO members (conversation_id, user_id) "
			    "VALUES ($1, $2)", 2, q));
	}
	return id;
}

int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	long long pair[2];

	pl_db_init(&f->db, &cfg);
	if (pl_db_ensure(&f->db)) {
		fprintf(stderr, "cannot reach PostgreSQL at PARLEY_TEST_PG\n");
		return -1;
	}
	f->u[0] = add_user(&f->db, "ann");
	f->u[1] = add_user(&f->db, "bob");
	f->u[2] = add_user(&f->db, "cat");
	f->u[3] = add_user(&f->db, "dan");
	pair[0] = f->u[0];
	pair[1] = f->u[1];
	f->direct12 = add_conversation(&f->db, "direct", pair, 2);
	pair[0] = f->u[1];
	pair[1] = f->u[2];
	f->direct23 = add_conversation(&f->db, "direct", pair, 2);
	f->group1234 = add_conversation(&f->db, "group", f->u, 4);
	*state = f;
	return 0;
}

int teardown(void **state)
{
	struct fixture *f = *state;

	pl_db_release(&f->db);
	free(f);
	return 0;
}

void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct pl_db db;
	char user[24], after[24];
	const char *p[2] = { user, after };

	pl_db_init(&db, &cfg);
	snprintf(user, sizeof(user), "%lld", rd->user);
	while (!rd->stop) {
		PGresult *res;

		snprintf(after, sizeof(after), "%lld", rd->last);
		if (pl_db_exec(&db, "SELECT seq FROM inbox WHERE user_id = $1 "
			       "AND seq > $2 ORDER BY seq", 2, p, 0, &res, NULL))
			break;
		for (int i = 0; i < PQntuples(res); i++) {
			long long seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);

			if (seq != rd->last + 1)
				rd->gaps++;
			rd->last = seq;
		}
		rd->polls++;
		PQclear(res);
	}
	pl_db_release(&db);
	return NULL;
}

int fixture_main(const char *name, const struct CMUnitTest *tests, size_t n)
{
	const char *conninfo = getenv("PARLEY_TEST_PG");
	char err[256];
	int rc;

	if (!conninfo || !*conninfo) {
		fprintf(stderr, "%s: set PARLEY_TEST_PG to a migrated database\n",
			name);
		return 77;	/* automake's "skipped" */
	}
	pl_config_init(&cfg);
	setenv("PARLEY_DATABASE_CONNINFO", conninfo, 1);
	if (pl_config_load(&cfg, NULL, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", name, err);
		return 1;
	}
	snprintf(run_id, sizeof(run_id), "%lx%x", (long)time(NULL),
		 (unsigned)getpid());
	rc = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	pl_config_release(&cfg);
	return rc;
}
