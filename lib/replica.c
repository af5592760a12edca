/* replica: reads from a standby that has replayed the read's fence. */
#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "banned.h"

/* Between two looks at a standby that is behind its fence. */
#define RECHECK_MS 2

/*
 * One look at the standby: "yes" (caught up; with its replay position),
 * "primary" (the primary of the fence's own timeline: it has everything),
 * "behind", "other" (a primary or a standby of another timeline, or one not
 * streaming) or "hidden" (the role may not see the WAL receiver:
 * pg_read_all_stats is missing).
 */
static const char CAUGHT_UP_SQL[] =
	"SELECT CASE WHEN NOT pg_is_in_recovery() THEN CASE WHEN ('x' || "
	"substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int "
	"= $2::int THEN 'primary' ELSE 'other' END "
	"WHEN w.pid IS NULL THEN 'other' "
	"WHEN w.status IS NULL THEN 'hidden' "
	"WHEN w.status <> 'streaming' OR w.received_tli <> $2::int THEN 'other' "
	"WHEN pg_last_wal_replay_lsn() >= $1::pg_lsn THEN 'yes' "
	"ELSE 'behind' END, pg_last_wal_replay_lsn()::text "
	"FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true";

/* "16/B374D848" as a number (0 for anything else). */
static unsigned long long lsn_value(const char *text)
{
	unsigned int hi, lo;

	if (sscanf(text, "%X/%X", &hi, &lo) != 2)
		return 0;
	return (unsigned long long)hi << 32 | lo;
}

void pl_fence_read(struct pl_fence *fence, PGresult *res, int col)
{
	char tli[9];

	memset(fence, 0, sizeof(*fence));
	if (PQntuples(res) < 1 || PQnfields(res) < col + 2 ||
	    PQgetisnull(res, 0, col) || PQgetisnull(res, 0, col + 1))
		return;
	snprintf(fence->lsn, sizeof(fence->lsn), "%s", PQgetvalue(res, 0, col));
	snprintf(tli, sizeof(tli), "%s", PQgetvalue(res, 0, col + 1));
	fence->timeline = strtoll(tli, NULL, 16);
}

void pl_replica_init(struct pl_replica *r, const struct pl_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->enabled = cfg->db_read_conninfo && cfg->db_read_conninfo[0];
	if (r->enabled) {
		pl_db_init_conninfo(&r->db, cfg, cfg->db_read_conninfo);
		pl_db_set_statement_timeout(&r->db, cfg->db_statement_timeout_ms);
	}
}

void pl_replica_release(struct pl_replica *r)
{
	if (r->enabled)
		pl_db_release(&r->db);
	memset(r, 0, sizeof(*r));
}

/*
 * One look: 'y' (caught up), 'p' (the primary itself), 'b' (behind), 'o'
 * (other), 'h' (hidden), or 0 when the server is down. Remembers a server
 * that qualified (seen_*).
 */
static char look(struct pl_replica *r, const struct pl_fence *fence)
{
	char tli[24];
	const char *params[2] = { fence->lsn, tli };
	PGresult *res;
	char what = 0;

	snprintf(tli, sizeof(tli), "%lld", fence->timeline);
	if (pl_db_exec(&r->db, CAUGHT_UP_SQL, 2, params, 1, &res, NULL))
		return 0;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		what = PQgetvalue(res, 0, 0)[0];
	if (what == 'y' || what == 'p') {
		r->seen_lsn = what == 'p' ? ~0ULL : lsn_value(PQgetvalue(res, 0, 1));
		r->seen_tli = fence->timeline;
		r->seen_connect = r->db.connects;
	}
	PQclear(res);
	return what;
}

/* The last look already covers fence, on the same connection. */
static int seen_past(const struct pl_replica *r, const struct pl_fence *fence)
{
	return r->seen_lsn && r->seen_tli == fence->timeline &&
	       r->seen_connect == r->db.connects && r->db.conn &&
	       PQstatus(r->db.conn) == CONNECTION_OK &&
	       lsn_value(fence->lsn) <= r->seen_lsn;
}

struct pl_db *pl_replica_for(struct pl_replica *r,
			     const struct pl_fence *fence)
{
	long long deadline;
	char what;

	if (!r->enabled || !fence->lsn[0])
		return NULL;
	if (seen_past(r, fence)) {
		r->served++;
		return &r->db;
	}
	deadline = pl_clock_mono_ms() + PL_REPLICA_WAIT_MS;
	while ((what = look(r, fence)) == 'b' &&
	       pl_clock_mono_ms() < deadline) {
		struct timespec pause = { 0, RECHECK_MS * 1000000L };

		nanosleep(&pause, NULL);
	}
	if (what == 'y' || what == 'p') {
		r->served++;
		return &r->db;
	}
	if (what == 'h' && !r->no_privilege) {
		pl_log(PL_LOG_WARN, "db: the read_conninfo role cannot see the "
		       "standby's WAL receiver (grant it pg_read_all_stats); "
		       "reads go to the primary");
		r->no_privilege = 1;
	}
	if (what == 'b')
		r->behind++;
	else
		r->failed++;
	return NULL;
}
