/*
 * parley-admin: the operator's command line.
 *
 *   parley-admin [-c FILE] migrate [--sql-dir DIR]
 *       applies the numbered migrations of DIR (NNN_name.sql) that the
 *       database has not recorded yet, each in its own transaction, in order,
 *       exactly once (recorded in schema_migrations). Concurrent runs are
 *       serialized by an advisory lock.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "program.h"

#ifndef PL_SQLDIR
#define PL_SQLDIR "/usr/share/parley/sql"
#endif

/* pg_advisory_lock key for migrations: "parley" in ASCII. */
#define MIGRATE_LOCK_KEY "112971082108101121"

struct migration {
	long version;
	char name[256];
};

static int by_version(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* Lists DIR's NNN_*.sql files sorted by version. Returns the count or -1. */
static int list_migrations(const char *dir, struct migration **out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct migration *list = NULL;
	int n = 0, cap = 0;

	if (!d) {
		pl_log_errno(PL_LOG_ERR, "admin: cannot open '%s'", dir);
		return -1;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char *end;
		long v;

		if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0)
			continue;
		v = strtol(e->d_name, &end, 10);
		if (end == e->d_name || *end != '_' || v <= 0 ||
		    len >= sizeof(list->name))
			continue;
		if (n == cap) {
			struct migration *bigger;

			cap = cap ? cap * 2 : 16;
			bigger = realloc(list, (size_t)cap * sizeof(*list));
			if (!bigger) {
				free(list);
				closedir(d);
				return -1;
			}
			list = bigger;
		}
		list[n].version = v;
		snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(list, (size_t)n, sizeof(*list), by_version);
	for (int i = 1; i < n; i++) {
		if (list[i].version == list[i - 1].version) {
			pl_log(PL_LOG_ERR, "admin: '%s' and '%s' share version %ld",
			       list[i - 1].name, list[i].name, list[i].version);
			free(list);
			return -1;
		}
	}
	*out = list;
	return n;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)size + 1);
		if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[size] = '\0';
		}
	}
	fclose(f);
	return buf;
}

/* Runs a script of several statements; PQexec is the one libpq call for that. */
static int exec_script(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	int ok = res && (PQresultStatus(res) == PGRES_COMMAND_OK ||
			 PQresultStatus(res) == PGRES_TUPLES_OK);

	if (!ok)
		pl_log(PL_LOG_ERR, "admin: %s failed: %s", what,
		       res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

static int applied(struct pl_db *db, long version, int *is_applied)
{
	char v[24];
	const char *params[1] = { v };
	PGresult *res;

	snprintf(v, sizeof(v), "%ld", version);
	if (pl_db_exec(db, "SELECT 1 FROM schema_migrations WHERE version = $1",
		       1, params, 0, &res, NULL))
		return -1;
	*is_applied = PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

static int apply_one(struct pl_db *db, const char *dir,
		     const struct migration *m)
{
	char path[4096], v[24];
	const char *params[2] = { v, m->name };
	char *sql;
	PGresult *res;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, m->name);
	sql = read_file(path);
	if (!sql) {
		pl_log_errno(PL_LOG_ERR, "admin: cannot read '%s'", path);
		return -1;
	}
	snprintf(v, sizeof(v), "%ld", m->version);
	if (exec_script(db->conn, "BEGIN", "BEGIN"))
		goto out;
	if (exec_script(db->conn, sql, m->name))
		goto rollback;
	if (pl_db_exec(db, "INSERT INTO schema_migrations (version, name) "
		       "VALUES ($1, $2)", 2, params, 0, &res, NULL))
		goto rollback;
	PQclear(res);
	if (exec_script(db->conn, "COMMIT", "COMMIT"))
		goto out;
	pl_log(PL_LOG_INFO, "admin: applied %s", m->name);
	rc = 0;
	goto out;
rollback:
	exec_script(db->conn, "ROLLBACK", "ROLLBACK");
out:
	free(sql);
	return rc;
}

static int cmd_migrate(struct pl_db *db, const char *dir)
{
	struct migration *list = NULL;
	int n, done = 0, rc = 1;

	n = list_migrations(dir, &list);
	if (n < 0)
		return 1;
	if (pl_db_ensure(db))
		goto out;
	if (exec_script(db->conn,
			"SET client_min_messages = warning;"
			"CREATE TABLE IF NOT EXISTS schema_migrations ("
			" version integer PRIMARY KEY,"
			" name text NOT NULL,"
			" applied_at timestamptz NOT NULL DEFAULT now());"
			"SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")",
			"preparing schema_migrations"))
		goto out;
	for (int i = 0; i < n; i++) {
		int is_applied;

		if (applied(db, list[i].version, &is_applied))
			goto out;
		if (is_applied)
			continue;
		if (apply_one(db, dir, &list[i]))
			goto out;
		done++;
	}
	pl_log(PL_LOG_INFO, "admin: %d migration(s) applied, %d already present",
	       done, n - done);
	rc = 0;
out:
	if (db->conn)
		exec_script(db->conn, "SELECT pg_advisory_unlock_all()", "unlock");
	free(list);
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: parley-admin [-c FILE] migrate [--sql-dir DIR]\n");
}

int main(int argc, char **argv)
{
	struct pl_config cfg;
	struct pl_db db;
	int next, status;
	const char *sql_dir = getenv("PARLEY_SQL_DIR");

	status = pl_program_start(argc, argv, "parley-admin",
				  "COMMAND [ARGS]", &cfg, &next);
	if (status >= 0) {
		pl_config_release(&cfg);
		return status;
	}
	if (!sql_dir || !*sql_dir)
		sql_dir = PL_SQLDIR;
	if (next >= argc) {
		usage(stderr);
		pl_config_release(&cfg);
		return 2;
	}
	pl_db_init(&db, &cfg);
	if (strcmp(argv[next], "migrate") == 0) {
		for (int i = next + 1; i < argc; i++) {
			if (strcmp(argv[i], "--sql-dir") == 0 && i + 1 < argc) {
				sql_dir = argv[++i];
			} else {
				usage(stderr);
				status = 2;
				goto out;
			}
		}
		status = cmd_migrate(&db, sql_dir);
	} else {
		fprintf(stderr, "parley-admin: unknown command '%s'\n", argv[next]);
		usage(stderr);
		status = 2;
	}
out:
	pl_db_release(&db);
	pl_config_release(&cfg);
	return status;
}
