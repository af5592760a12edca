#include "db.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "program.h"
#include "banned.h"

void pl_db_init(struct pl_db *db, const struct pl_config *cfg)
{
	pl_db_init_conninfo(db, cfg, cfg->db_conninfo);
}

void pl_db_init_conninfo(struct pl_db *db, const struct pl_config *cfg,
			 const char *conninfo)
{
	memset(db, 0, sizeof(*db));
	db->conninfo = strdup(conninfo);
	if (!db->conninfo)
		abort();
	db->connect_timeout_s = cfg->db_connect_timeout_s;
}

void pl_db_set_statement_timeout(struct pl_db *db, long long timeout_ms)
{
	db->statement_timeout_ms = timeout_ms;
}

/* Failed connects, lost connections and failed statements, process-wide. */
static atomic_ulong errors;

unsigned long pl_db_errors(void)
{
	return atomic_load(&errors);
}

/* A new connection has no prepared statements. */
static void forget_prepared(struct pl_db *db)
{
	for (size_t i = 0; i < PL_DB_STATEMENTS; i++) {
		free(db->prepared[i]);
		db->prepared[i] = NULL;
	}
	db->nprepared = 0;
}

void pl_db_release(struct pl_db *db)
{
	forget_prepared(db);
	if (db->conn)
		PQfinish(db->conn);
	free(db->conninfo);
	memset(db, 0, sizeof(*db));
}

/* The first line of a libpq message, for a one-line log. */
static void first_line(const char *msg, char *out, size_t outlen)
{
	size_t n = strcspn(msg, "\n");

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
}

/*
 * Sets up a new connection's session. Parley's statements are prepared once
 * per connection and meant to be planned once: plan_cache_mode =
 * force_generic_plan keeps them so on the hash-partitioned messages and
 * inbox (sql/012), where PostgreSQL's estimates count every partition while
 * a run reads one, and would otherwise plan each call again. For the same
 * estimates, a read of a few rows could look worth compiling (jit) or
 * handing to parallel workers, each far slower than the read: both are off.
 * Also the statement_timeout, when db has one. Returns 0, or -1 with the
 * reason in why.
 */
static int set_session(struct pl_db *db, char *why, size_t whylen)
{
	char ms[24];
	const char *params[1] = { ms };
	PGresult *res;
	int rc;

	snprintf(ms, sizeof(ms), "%lld",
		 db->statement_timeout_ms > 0 ? db->statement_timeout_ms : 0);
	res = PQexecParams(db->conn, "SELECT set_config('plan_cache_mode', "
			   "'force_generic_plan', false), set_config('jit', "
			   "'off', false), set_config("
			   "'max_parallel_workers_per_gather', '0', false), "
			   "CASE WHEN $1::text <> '0' THEN set_config("
			   "'statement_timeout', $1, false) END",
			   1, NULL, params, NULL, NULL, 0);
	rc = res && PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
	if (rc)
		first_line(res ? PQresultErrorMessage(res) :
			   PQerrorMessage(db->conn), why, whylen);
	PQclear(res);
	return rc;
}

static enum pl_err connect_once(struct pl_db *db, int quiet)
{
	char timeout[24];
	const char *keys[] = { "dbname", "connect_timeout", "application_name",
			       NULL };
	const char *values[] = { db->conninfo, timeout, "parley", NULL };
	char why[256];

	forget_prepared(db);
	if (db->conn)
		PQfinish(db->conn);
	snprintf(timeout, sizeof(timeout), "%lld", db->connect_timeout_s);
	/* expand_dbname = 1: "dbname" carries the whole conninfo string. */
	db->conn = PQconnectdbParams(keys, values, 1);
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
		first_line(db->conn ? PQerrorMessage(db->conn) : "out of memory",
			   why, sizeof(why));
	} else if (set_session(db, why, sizeof(why))) {
		/* Never a connection without its settings: the next use retries. */
		PQfinish(db->conn);
		db->conn = NULL;
	} else {
		if (db->was_down)
			pl_log(PL_LOG_INFO, "db: reconnected to postgresql");
		db->was_down = 0;
		db->connects++;
		return PL_OK;
	}
	atomic_fetch_add(&errors, 1);
	if (!quiet || !db->was_down)
		pl_log(PL_LOG_ERR, "db: cannot connect to postgresql: %s", why);
	db->was_down = 1;
	return PL_UNAVAILABLE;
}

enum pl_err pl_db_ensure(struct pl_db *db)
{
	if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
		return PL_OK;
	if (db->conn && !db->was_down) {
		pl_log(PL_LOG_WARN, "db: connection to postgresql lost");
		atomic_fetch_add(&errors, 1);
		db->was_down = 1;
	}
	return connect_once(db, 1);
}

enum pl_err pl_db_wait(struct pl_db *db)
{
	long delay_ms = 250;

	while (!pl_stop_requested) {
		if (connect_once(db, 1) == PL_OK)
			return PL_OK;
		if (pl_program_sleep_ms(delay_ms))
			break;
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	}
	return PL_UNAVAILABLE;
}

/* FNV-1a of the statement's text: its slot in db->prepared. */
static size_t slot_of(const char *sql)
{
	unsigned long long h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % PL_DB_STATEMENTS);
}

/*
 * Runs sql as a prepared statement, preparing it first when this connection
 * has not seen it; unprepared when the table is full. A failed PREPARE
 * answers like the statement would have (its error, its SQLSTATE).
 */
static PGresult *run(struct pl_db *db, const char *sql, int nparams,
		     const char *const *params)
{
	size_t slot = slot_of(sql), i;
	char name[16];
	PGresult *res;

	for (i = 0; i < PL_DB_STATEMENTS; i++) {
		size_t s = (slot + i) % PL_DB_STATEMENTS;

		if (!db->prepared[s])
			break;
		if (strcmp(db->prepared[s], sql) == 0) {
			snprintf(name, sizeof(name), "pl_%zu", s);
			return PQexecPrepared(db->conn, name, nparams, params,
					      NULL, NULL, 0);
		}
	}
	/* Keep a free slot so that every probe above ends. */
	if (db->nprepared + 1 >= PL_DB_STATEMENTS)
		return PQexecParams(db->conn, sql, nparams, NULL, params, NULL,
				    NULL, 0);
	slot = (slot + i) % PL_DB_STATEMENTS;
	snprintf(name, sizeof(name), "pl_%zu", slot);
	res = PQprepare(db->conn, name, sql, nparams, NULL);
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		return res;
	PQclear(res);
	db->prepared[slot] = strdup(sql);
	if (!db->prepared[slot])
		abort();
	db->nprepared++;
	return PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
}

/*
 * What a statement's error (SQLSTATE state, message why) on a connection
 * that is still up means for the caller; logged here.
 */
static enum pl_err failed(struct pl_db *db, const char *state, const char *why)
{
	atomic_fetch_add(&errors, 1);
	/*
	 * A write on a server that is read-only now (a primary demoted
	 * under us): drop the connection, so that the next use finds
	 * the primary again through the conninfo's hosts.
	 */
	if (state && strcmp(state, "25006") == 0) {
		pl_log(PL_LOG_WARN, "db: postgresql is read-only now: %s",
		       why);
		forget_prepared(db);
		PQfinish(db->conn);
		db->conn = NULL;
		db->was_down = 1;
		return PL_UNAVAILABLE;
	}
	/* Admin shutdown and similar server states mean "down", too. */
	if (state && (strncmp(state, "57P", 3) == 0 ||
		      strncmp(state, "08", 2) == 0)) {
		pl_log(PL_LOG_WARN, "db: postgresql unavailable: %s", why);
		return PL_UNAVAILABLE;
	}
	/* Cancelled by statement_timeout: the request took too long. */
	if (state && strcmp(state, "57014") == 0) {
		pl_log(PL_LOG_WARN, "db: statement cancelled: %s", why);
		return PL_UNAVAILABLE;
	}
	/* Serialization failures and deadlocks are the caller's to retry. */
	if (state && strncmp(state, "40", 2) == 0) {
		pl_log(PL_LOG_WARN, "db: statement aborted (%s): %s",
		       state, why);
		return PL_UNAVAILABLE;
	}
	pl_log(PL_LOG_ERR, "db: statement failed (%s): %s",
	       state ? state : "?", why);
	return PL_INTERNAL;
}

enum pl_err pl_db_exec(struct pl_db *db, const char *sql, int nparams,
		       const char *const *params, int retry_ok, PGresult **out,
		       char sqlstate[6])
{
	int attempt;

	*out = NULL;
	if (sqlstate)
		sqlstate[0] = '\0';
	for (attempt = 0; attempt < 2; attempt++) {
		PGresult *res;
		ExecStatusType status;
		const char *state = NULL;
		char why[256], code[6] = "";

		if (pl_db_ensure(db))
			return PL_UNAVAILABLE;
		res = run(db, sql, nparams, params);
		status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
			*out = res;
			return PL_OK;
		}
		/* Copied out: the result is cleared before the code is read. */
		if (res && PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
			snprintf(code, sizeof(code), "%s",
				 PQresultErrorField(res, PG_DIAG_SQLSTATE));
			state = code;
		}
		if (sqlstate && state)
			snprintf(sqlstate, 6, "%s", state);
		first_line(res ? PQresultErrorMessage(res) :
			   PQerrorMessage(db->conn), why, sizeof(why));
		PQclear(res);
		if (PQstatus(db->conn) != CONNECTION_OK) {
			pl_log(PL_LOG_WARN, "db: connection to postgresql lost: %s",
			       why);
			db->was_down = 1;
			if (retry_ok && attempt == 0 &&
			    connect_once(db, 1) == PL_OK)
				continue;
			return PL_UNAVAILABLE;
		}
		return failed(db, state, why);
	}
	return PL_UNAVAILABLE;
}

char *pl_db_int_array(const long long *values, size_t n)
{
	/* 20 digits and a sign per value, a comma each, the braces, NUL. */
	size_t cap = n * 22 + 3, used = 1;
	char *text = malloc(cap);

	if (!text)
		return NULL;
	text[0] = '{';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(text + used, cap - used, "%s%lld",
					 i ? "," : "", values[i]);
	snprintf(text + used, cap - used, "}");
	return text;
}

enum pl_err pl_db_ping(struct pl_db *db)
{
	PGresult *res;
	enum pl_err rc = pl_db_exec(db, "SELECT 1", 0, NULL, 1, &res, NULL);

	PQclear(res);
	return rc == PL_OK ? PL_OK : PL_UNAVAILABLE;
}
