/*
 * parley-admin: the operator's command line.
 *
 *   parley-admin [-c FILE] migrate [--sql-dir DIR]
 *       applies the numbered migrations of DIR (NNN_name.sql) that the
 *       database has not recorded yet, each in its own transaction, in order,
 *       exactly once (recorded in schema_migrations). Concurrent runs are
 *       serialized by an advisory lock.
 *
 *   parley-admin [-c FILE] users add --count N --prefix P
 *                [--password PW | --password-file PATH | --password-stdin]
 *       creates the users P1 .. PN (display name = username) in one INSERT,
 *       skipping names that exist. All of them get the same password and
 *       share one argon2id hash computed once with the configured [auth]
 *       parameters (the same salt for every account: meant for load tests
 *       and demo accounts, not for real people). The password comes from
 *       the command line (which others can see in ps), from the first line
 *       of a file, or from standard input (its first line); without any of
 *       them a random one is made and printed.
 *
 *   parley-admin [-c FILE] stats [--window SECONDS]
 *       the service at a glance (admin/stats.c).
 *
 *   parley-admin [-c FILE] user revoke|disable|enable|reset-password USER ...
 *       what an operator does to one account (admin/user.c).
 *
 *   parley-admin [-c FILE] attachments prune [--older-than SECONDS]
 *       removes uploads never posted, and their files (admin/attachments.c).
 *
 *   parley-admin [-c FILE] session USER... [--platform web|ios|android]
 *       creates a new device and session for each USER exactly as a login
 *       does (the device's cursor at the user's newest seq) and prints one
 *       token per line, in argument order. Tokens work on REST and in the
 *       relay's hello like login's.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "db.h"
#include "log.h"
#include "password.h"
#include "pl_limits.h"
#include "program.h"
#include "token.h"
#include "validate.h"
#include "banned.h"

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
int admin_exec(PGconn *conn, const char *sql, const char *what)
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
	if (admin_exec(db->conn, "BEGIN", "BEGIN"))
		goto out;
	if (admin_exec(db->conn, sql, m->name))
		goto rollback;
	if (pl_db_exec(db, "INSERT INTO schema_migrations (version, name) "
		       "VALUES ($1, $2)", 2, params, 0, &res, NULL))
		goto rollback;
	PQclear(res);
	if (admin_exec(db->conn, "COMMIT", "COMMIT"))
		goto out;
	pl_log(PL_LOG_INFO, "admin: applied %s", m->name);
	rc = 0;
	goto out;
rollback:
	admin_exec(db->conn, "ROLLBACK", "ROLLBACK");
out:
	free(sql);
	return rc;
}

/* migrate: applies DIR's migrations not recorded yet; the exit status. */
static int migrate(struct pl_db *db, const char *dir)
{
	struct migration *list = NULL;
	int n, done = 0, rc = 1;

	n = list_migrations(dir, &list);
	if (n < 0)
		return 1;
	if (pl_db_ensure(db))
		goto out;
	if (admin_exec(db->conn,
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
		admin_exec(db->conn, "SELECT pg_advisory_unlock_all()", "unlock");
	free(list);
	return rc;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Reads a password from f (borrowed; what names it in messages): its first
 * line, without the line end, into buf (buflen bytes, more than
 * PL_PASSWORD_MAX_BYTES + 2). Returns 0, or 2 (printed) when it cannot be
 * read or is longer than any valid password.
 */
static int read_password(FILE *f, const char *what, char *buf, size_t buflen)
{
	size_t n;

	if (!fgets(buf, (int)buflen, f)) {
		if (ferror(f)) {
			fprintf(stderr, "parley-admin: cannot read the password "
				"from %s: %s\n", what, strerror(errno));
			return 2;
		}
		buf[0] = '\0';	/* empty: refused as too short later */
	}
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (n == buflen - 1) {
		fprintf(stderr, "parley-admin: the password from %s is longer "
			"than %d bytes\n", what, PL_PASSWORD_MAX_BYTES);
		return 2;
	}
	if (n && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/*
 * The password of users add and user reset-password, from at most one of
 * --password PW (password), --password-file PATH (file) and
 * --password-stdin (from_stdin), read into buf when it comes from a file;
 * *out is it, or NULL when none was given. Returns 0, or 2 (printed).
 */
int admin_password_option(const char *password, const char *file,
			  int from_stdin, char *buf, size_t buflen,
			  const char **out)
{
	FILE *f;
	int rc;

	*out = password;
	if (!!password + !!file + from_stdin > 1) {
		fprintf(stderr, "parley-admin: give one of --password, "
			"--password-file and --password-stdin\n");
		return 2;
	}
	if (file || from_stdin)
		*out = buf;
	if (from_stdin)
		return read_password(stdin, "standard input", buf, buflen);
	if (!file)
		return 0;
	f = fopen(file, "r");
	if (!f) {
		fprintf(stderr, "parley-admin: --password-file: cannot read "
			"'%s': %s\n", file, strerror(errno));
		return 2;
	}
	rc = read_password(f, file, buf, buflen);
	fclose(f);
	return rc;
}

/*
 * hash: password's argon2id hash with the [auth] settings, once it passes
 * the rules a signup's password must. Returns 0, 2 (refused, printed) or 1.
 */
int admin_hash_password(const struct pl_config *cfg, const char *password,
			char hash[PL_PASSWORD_HASH_BYTES])
{
	struct pl_password_pool pool;
	char why[128];
	int rc = 0;

	if (pl_validate_password(password, why, sizeof(why))) {
		fprintf(stderr, "parley-admin: the password is refused: %s\n",
			why);
		return 2;
	}
	if (pl_password_pool_init(&pool, 1, cfg->auth_hash_ops,
				  cfg->auth_hash_memory_kib)) {
		fprintf(stderr, "parley-admin: cannot start libsodium\n");
		return 1;
	}
	if (pl_password_hash(&pool, password, hash))
		rc = 1;
	pl_password_pool_release(&pool);
	return rc;
}

/* users add: one set-based INSERT of prefix1 .. prefixN sharing one hash. */
static int create_users(struct pl_db *db, const struct pl_config *cfg,
			 const char *prefix, long count, const char *password)
{
	char name[64], why[128], hash[PL_PASSWORD_HASH_BYTES], n[24];
	char made[2 * 12 + 1];
	const char *params[3] = { prefix, hash, n };
	struct timespec t0;
	unsigned char raw[12];
	PGresult *res;
	long created;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (count < 1 || count > 1000000) {
		fprintf(stderr, "parley-admin: --count must be 1 to 1000000\n");
		return 2;
	}
	/* The shortest and the longest name must both be valid usernames. */
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "%s%ld", prefix, i ? count : 1L);
		if (strlen(prefix) > 32 ||
		    pl_validate_username(name, why, sizeof(why))) {
			fprintf(stderr, "parley-admin: prefix '%s' makes the "
				"username '%s': %s\n", prefix, name,
				strlen(prefix) > 32 ? "too long" : why);
			return 2;
		}
	}
	if (!password) {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(made, sizeof(made), raw, sizeof(raw));
		password = made;
	}
	if ((rc = admin_hash_password(cfg, password, hash)))
		return rc;
	snprintf(n, sizeof(n), "%ld", count);
	if (pl_db_exec(db, "INSERT INTO users (username, password_hash, "
		       "display_name) SELECT $1 || g, $2, $1 || g "
		       "FROM generate_series(1, $3::integer) AS g "
		       "ON CONFLICT (username) DO NOTHING", 3, params, 0, &res,
		       NULL))
		return 1;
	created = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	printf("created %ld users %s1..%s%ld (%ld already existed) in %.2f s\n",
	       created, prefix, prefix, count, count - created,
	       seconds_since(&t0));
	if (password == made)
		printf("password: %s\n", made);
	return 0;
}

/*
 * session: a device and a session per user, as POST /sessions makes them
 * (fcgi/auth.c), in one transaction; prints the tokens.
 */
static int make_sessions(struct pl_db *db, const struct pl_config *cfg,
		       char **users, int nusers, const char *platform)
{
	struct pl_token_key key;
	char err[512], ttl[24], **tokens;
	int rc = 1, done = 0;

	if (pl_token_key_load(&key, cfg->auth_secret_file, err, sizeof(err))) {
		fprintf(stderr, "parley-admin: [auth] secret_file: %s\n", err);
		return 1;
	}
	tokens = calloc((size_t)nusers, sizeof(*tokens));
	if (!tokens || pl_db_ensure(db) ||
	    admin_exec(db->conn, "BEGIN", "BEGIN"))
		goto out;
	snprintf(ttl, sizeof(ttl), "%lld", cfg->auth_token_ttl_s);
	for (; done < nusers; done++) {
		const char *params[3] = { users[done], platform, ttl };
		struct pl_token_claims claims;
		PGresult *res;

		claims.expires_at = time(NULL) + cfg->auth_token_ttl_s;
		if (pl_db_exec(db,
			       "WITH u AS (SELECT h.user_id, h.last_seq FROM users "
			       "  JOIN user_heads h ON h.user_id = users.id "
			       "  WHERE users.username = $1), "
			       "dev AS (INSERT INTO devices (user_id, platform, name, "
			       "  cursor) SELECT user_id, $2, 'parley-admin', last_seq "
			       "  FROM u RETURNING id, user_id) "
			       "INSERT INTO sessions (user_id, device_id, expires_at) "
			       "SELECT dev.user_id, dev.id, now() + "
			       "make_interval(secs => $3::bigint) FROM dev "
			       "RETURNING user_id, device_id, id", 3, params, 0,
			       &res, NULL))
			goto rollback;
		if (PQntuples(res) != 1) {
			PQclear(res);
			fprintf(stderr, "parley-admin: no user '%s'\n", users[done]);
			goto rollback;
		}
		claims.user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		claims.device_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		claims.session_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		PQclear(res);
		if (pl_token_sign(&key, &claims, &tokens[done])) {
			fprintf(stderr, "parley-admin: cannot sign a token\n");
			goto rollback;
		}
	}
	if (admin_exec(db->conn, "COMMIT", "COMMIT"))
		goto out;
	for (int i = 0; i < nusers; i++)
		printf("%s\n", tokens[i]);
	rc = 0;
	goto out;
rollback:
	admin_exec(db->conn, "ROLLBACK", "ROLLBACK");
out:
	if (tokens)
		for (int i = 0; i < nusers; i++)
			free(tokens[i]);
	free(tokens);
	sodium_memzero(&key, sizeof(key));
	return rc;
}

static void usage(FILE *out);

/* ios and android name the push services' platforms, apns and fcm. */
static const char *platform_name(const char *p)
{
	if (!strcmp(p, "web"))
		return "web";
	if (!strcmp(p, "ios") || !strcmp(p, "apns"))
		return "apns";
	if (!strcmp(p, "android") || !strcmp(p, "fcm"))
		return "fcm";
	return NULL;
}

/* migrate [--sql-dir DIR] */
static int admin_cmd_migrate(struct admin *a, int argc, char **argv)
{
	const char *sql_dir = getenv("PARLEY_SQL_DIR");

	if (!sql_dir || !*sql_dir)
		sql_dir = PL_SQLDIR;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sql-dir") == 0 && i + 1 < argc) {
			sql_dir = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	return migrate(&a->db, sql_dir);
}

/* users add --count N --prefix P [--password PW | --password-file PATH |
 * --password-stdin] */
static int admin_cmd_users(struct admin *a, int argc, char **argv)
{
	const char *prefix = NULL, *password = NULL, *file = NULL;
	char typed[PL_PASSWORD_MAX_BYTES + 3];
	int from_stdin = 0, status;
	long count = 0;
	char *end = NULL;

	if (argc < 2 || strcmp(argv[1], "add") != 0) {
		fprintf(stderr, "parley-admin: unknown command '%s'\n", argv[0]);
		usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			count = strtol(argv[++i], &end, 10);
			if (*end)
				count = 0;
		} else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
			prefix = argv[++i];
		} else if (strcmp(argv[i], "--password") == 0 && i + 1 < argc) {
			password = argv[++i];
		} else if (strcmp(argv[i], "--password-file") == 0 &&
			   i + 1 < argc) {
			file = argv[++i];
		} else if (strcmp(argv[i], "--password-stdin") == 0) {
			from_stdin = 1;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!prefix || !count) {
		fprintf(stderr, "parley-admin: users add needs --count N "
			"and --prefix P\n");
		return 2;
	}
	status = admin_password_option(password, file, from_stdin, typed,
				       sizeof(typed), &password);
	if (status == 0)
		status = create_users(&a->db, &a->cfg, prefix, count, password);
	sodium_memzero(typed, sizeof(typed));
	return status;
}

/* session USER... [--platform web|ios|android] */
static int admin_cmd_session(struct admin *a, int argc, char **argv)
{
	const char *platform = "web";
	char **users = calloc((size_t)argc, sizeof(*users));
	int nusers = 0, status = 2;

	for (int i = 1; users && i < argc; i++) {
		if (strcmp(argv[i], "--platform") == 0 && i + 1 < argc) {
			platform = platform_name(argv[++i]);
			if (!platform) {
				fprintf(stderr, "parley-admin: --platform must "
					"be web, ios or android\n");
				goto out;
			}
		} else if (argv[i][0] == '-') {
			usage(stderr);
			goto out;
		} else {
			users[nusers++] = argv[i];
		}
	}
	if (!users || !nusers) {
		fprintf(stderr, "parley-admin: session needs a USER\n");
		goto out;
	}
	status = make_sessions(&a->db, &a->cfg, users, nusers, platform);
out:
	free(users);
	return status;
}

/* The commands, in --help's order (git.c's commands[]). */
static const struct admin_cmd {
	const char *name;
	admin_cmd_fn run;
	const char *help;	/* synopsis and description for --help */
} commands[] = {
	{ "migrate", admin_cmd_migrate,
	  "  migrate [--sql-dir DIR]\n"
	  "      apply the schema migrations of DIR not applied yet\n" },
	{ "users", admin_cmd_users,
	  "  users add --count N --prefix P\n"
	  "            [--password PW | --password-file PATH | --password-stdin]\n"
	  "      create users P1..PN in one INSERT (existing names are skipped);\n"
	  "      they share one password hash made once with the [auth] settings\n"
	  "      (for load tests and demos). The password is PW (seen by anyone\n"
	  "      who runs ps), the first line of PATH, or the first line of\n"
	  "      standard input; without any of them a random one is printed\n" },
	{ "stats", admin_cmd_stats,
	  "  stats [--window SECONDS]\n"
	  "      users, live sessions, messages stored in the last SECONDS\n"
	  "      (default 10) and per minute, relays and their sockets, the\n"
	  "      push queue\n" },
	{ "user", admin_cmd_user, ADMIN_USER_HELP },
	{ "attachments", admin_cmd_attachments,
	  "  attachments prune [--older-than SECONDS]\n"
	  "      remove the uploads no message posted within SECONDS (default\n"
	  "      86400) and their files, and temporary files of uploads that\n"
	  "      died; prints each (run it from cron)\n" },
	{ "session", admin_cmd_session,
	  "  session USER... [--platform web|ios|android]\n"
	  "      a new device and session for each USER, as a login makes them;\n"
	  "      prints one token per line (usable on REST and in the relay hello)\n" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

#define USAGE_HEAD "COMMAND [ARGS]\n\ncommands:\n"

/* The usage text after the program name, from commands[], into buf. */
static void usage_text(char *buf, size_t size)
{
	size_t len = (size_t)snprintf(buf, size, "%s", USAGE_HEAD);

	for (size_t i = 0; i < NCOMMANDS && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s",
					commands[i].help);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: parley-admin [-c FILE] [--help] %s", USAGE_HEAD);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fputs(commands[i].help, out);
}

static const struct admin_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct admin a;
	const struct admin_cmd *cmd;
	char help[4096];
	int next, status;

	usage_text(help, sizeof(help));
	status = pl_program_start(argc, argv, "parley-admin", help, &a.cfg,
				  &next);
	if (status >= 0) {
		pl_config_release(&a.cfg);
		return status;
	}
	if (next >= argc) {
		usage(stderr);
		pl_config_release(&a.cfg);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "parley-admin: cannot start libsodium\n");
		pl_config_release(&a.cfg);
		return 1;
	}
	pl_db_init(&a.db, &a.cfg);
	cmd = find_command(argv[next]);
	if (cmd) {
		status = cmd->run(&a, argc - next, argv + next);
	} else {
		fprintf(stderr, "parley-admin: unknown command '%s'\n", argv[next]);
		usage(stderr);
		status = 2;
	}
	pl_db_release(&a.db);
	pl_config_release(&a.cfg);
	return status;
}
