/*
 * db: one PostgreSQL connection and its recovery.
 *
 * A struct pl_db belongs to one thread. It connects lazily, notices a lost
 * connection and reconnects on the next use, so a restarted PostgreSQL is
 * picked up without restarting Parley. Errors from libpq become enum pl_err
 * here and are logged here once: a lost or refused connection is
 * PL_UNAVAILABLE, anything else PL_INTERNAL.
 */
#ifndef PL_DB_H
#define PL_DB_H

#include <libpq-fe.h>

#include "config.h"
#include "err.h"

/*
 * Statements run through pl_db_exec are prepared on first use and run as
 * prepared statements from then on (no parse and plan per call). Up to
 * PL_DB_STATEMENTS distinct texts per connection; more run unprepared. Every
 * connection's session keeps one generic plan per statement
 * (plan_cache_mode), and runs without JIT compilation or parallel workers.
 */
#define PL_DB_STATEMENTS 128

struct pl_db {
	PGconn *conn;		/* NULL until the first connect */
	char *prepared[PL_DB_STATEMENTS]; /* texts prepared on conn, by slot */
	size_t nprepared;
	char *conninfo;		/* owned copy */
	long long connect_timeout_s;
	long long statement_timeout_ms;	/* 0: none */
	int was_down;		/* logs "reconnected" after an outage */
	unsigned long long connects;	/* connections made so far */
};

/* Copies the connection settings from cfg; does not connect. */
void pl_db_init(struct pl_db *db, const struct pl_config *cfg);

/* The same with another connection string (e.g. [database] read_conninfo). */
void pl_db_init_conninfo(struct pl_db *db, const struct pl_config *cfg,
			 const char *conninfo);

/*
 * Gives every statement on db's connections a limit of timeout_ms (0: none,
 * the default): PostgreSQL cancels a statement that runs longer (SQLSTATE
 * 57014), and pl_db_exec() answers PL_UNAVAILABLE. Applies from the next
 * connect; call it right after pl_db_init().
 */
void pl_db_set_statement_timeout(struct pl_db *db, long long timeout_ms);

/* Closes the connection and frees what db owns. */
void pl_db_release(struct pl_db *db);

/*
 * Makes sure db has a working connection, connecting or reconnecting once.
 * Returns PL_OK or PL_UNAVAILABLE (logged).
 */
enum pl_err pl_db_ensure(struct pl_db *db);

/*
 * Connects at startup, retrying with backoff (up to 5 s apart) until it works
 * or a stop is requested. Returns PL_OK, or PL_UNAVAILABLE after a stop.
 */
enum pl_err pl_db_wait(struct pl_db *db);

/*
 * Runs one parameterized statement (prepared once per connection, text
 * parameters and results). On success *out is the result, which the caller PQclear()s.
 * When the connection turns out to be lost before the statement could run,
 * reconnects and retries it once: pass retry_ok = 0 for statements whose
 * effect must not be repeated. Returns PL_OK, PL_UNAVAILABLE (also for a
 * statement cancelled by the statement timeout) or PL_INTERNAL;
 * on error *out is NULL and *sqlstate (if not NULL) holds the 5-character
 * SQLSTATE or "".
 */
enum pl_err pl_db_exec(struct pl_db *db, const char *sql, int nparams,
		       const char *const *params, int retry_ok, PGresult **out,
		       char sqlstate[6]);

/*
 * Writes values[0..n) as a PostgreSQL array literal ("{1,2,3}") for a
 * bigint[] parameter: one statement for a whole batch. Returns a newly
 * allocated string, which the caller frees, or NULL when out of memory.
 */
char *pl_db_int_array(const long long *values, size_t n);

/* Runs "SELECT 1". Returns PL_OK or PL_UNAVAILABLE. */
enum pl_err pl_db_ping(struct pl_db *db);

/*
 * The process's database errors so far, for metrics: failed connects, lost
 * connections and failed statements (deadlocks and timeouts included).
 */
unsigned long pl_db_errors(void);

#endif
