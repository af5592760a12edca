/*
 * replica: reads served by a PostgreSQL standby without missing an
 * acknowledged write ([database] read_conninfo; doc/scale-out.md "Reads
 * from standbys").
 *
 * The rule is a fence: before a read, the primary's WAL flush position is
 * taken (parley-api reads it in the same statement that checks the caller's
 * session, so it costs no extra round trip on the primary). Every commit
 * acknowledged before that moment lies at or below it. The read goes to the
 * standby only once the standby has replayed up to the fence, streams from
 * the primary's current timeline (a standby left over from before a
 * failover may hold WAL the new primary never had) and can be seen to do
 * so; it waits up to PL_REPLICA_WAIT_MS for that, and otherwise the read
 * goes to the primary. A standby seen past a fence needs no new look for a
 * fence below that (replay only moves forward): a read-mostly load costs
 * the standby one statement per read. So a reader sees at least what the primary had
 * acknowledged when the request arrived, its own sends included.
 *
 * A struct pl_replica belongs to one thread, like the struct pl_db inside.
 */
#ifndef PL_REPLICA_H
#define PL_REPLICA_H

#include "config.h"
#include "db.h"

/* How long a read waits for the standby to replay up to its fence. */
#define PL_REPLICA_WAIT_MS 50

/* The primary's side of a fence: position and timeline, as SQL gives them. */
struct pl_fence {
	char lsn[24];		/* "16/B374D848"; "" when there is none */
	long long timeline;
};

struct pl_replica {
	int enabled;		/* [database] read_conninfo is set */
	struct pl_db db;
	int no_privilege;	/* logged once: the WAL receiver is hidden */
	/*
	 * What the last look at the server found: it had replayed up to
	 * seen_lsn of timeline seen_tli (a primary of that timeline: up to
	 * everything), on connection number seen_connect of db. Replay only
	 * moves forward, so a fence at or below it needs no new look while
	 * the connection and the primary's timeline stay the same.
	 */
	unsigned long long seen_lsn;
	long long seen_tli;
	unsigned long long seen_connect;
	/* Counters, read by the owner thread for its logs and metrics. */
	unsigned long long served, behind, failed;
};

/*
 * The SQL expressions, for a statement on the primary, whose two text
 * results pl_fence_read() takes: the flush position and the WAL file name
 * (its first 8 hex digits are the timeline).
 */
#define PL_FENCE_SQL "pg_current_wal_flush_lsn()::text, " \
	"pg_walfile_name(pg_current_wal_flush_lsn())"

/* Fills fence from row 0, columns col and col + 1 of a PL_FENCE_SQL result. */
void pl_fence_read(struct pl_fence *fence, PGresult *res, int col);

/* Reads [database] read_conninfo from cfg; connects on first use. */
void pl_replica_init(struct pl_replica *r, const struct pl_config *cfg);

void pl_replica_release(struct pl_replica *r);

/*
 * The connection a read fenced by fence may use: the standby's once it has
 * caught up (see above), else NULL: the read goes to the primary. NULL, too,
 * when no read_conninfo is set, the fence is empty or the standby is down.
 */
struct pl_db *pl_replica_for(struct pl_replica *r,
			     const struct pl_fence *fence);

#endif
