/*
 * parley-admin stats [--window SECONDS]: the service at a glance.
 *
 *   users       accounts, how many are disabled, how many signed up in the
 *               last 24 hours
 *   sessions    live sessions (neither revoked nor expired) and the devices
 *               they are on
 *   messages    stored in the last WINDOW seconds (default 10) and that as
 *               a rate per minute: PostgreSQL's insert counters of the
 *               messages partitions read twice, WINDOW seconds apart, so
 *               the history itself is never read. A server process reports
 *               its counts up to 10 s after its transactions (PostgreSQL
 *               15), so the figure lags that much: a longer window is
 *               truer. Also about how many are stored (the planner's
 *               estimate)
 *   relays      every live relay of the registry ([discovery] backend)
 *               with its open sockets and capacity
 *   push queue  jobs no notifier has read yet, and jobs read and not yet
 *               done, over the push streams' consumer group
 *
 * Lines are "name: figures", for people and for grep. A store that cannot
 * be reached is said on its line, and the exit status is then 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "keys.h"
#include "redis.h"
#include "registry.h"
#include "banned.h"

/* The messages partitions' insert count, as PostgreSQL reports it. */
#define INSERTS_SQL \
	"SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE " \
	"relid = 'messages'::regclass OR relid IN (SELECT inhrelid FROM " \
	"pg_inherits WHERE inhparent = 'messages'::regclass)"

static const char ACCOUNTS_SQL[] =
	"SELECT (SELECT count(*) FROM users), "
	"(SELECT count(*) FROM users WHERE disabled_at IS NOT NULL), "
	"(SELECT count(*) FROM users WHERE created_at > now() - interval '1 day'), "
	"count(*), count(DISTINCT device_id), (" INSERTS_SQL "), "
	"(SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class "
	"  WHERE oid = 'messages'::regclass OR oid IN (SELECT inhrelid FROM "
	"  pg_inherits WHERE inhparent = 'messages'::regclass)) "
	"FROM sessions WHERE revoked_at IS NULL AND expires_at > now()";

static long long column(PGresult *res, int col)
{
	return strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* users, sessions and messages; 0, or 1 (said) when PostgreSQL failed. */
static int print_database(struct pl_db *db, long window)
{
	PGresult *res;
	long long inserts;
	struct timespec pause = { window, 0 };

	if (pl_db_exec(db, ACCOUNTS_SQL, 0, NULL, 0, &res, NULL)) {
		printf("users: PostgreSQL is unreachable\n");
		return 1;
	}
	printf("users: %lld (%lld disabled, %lld signed up in the last 24 h)\n",
	       column(res, 0), column(res, 1), column(res, 2));
	printf("sessions: %lld live on %lld devices\n", column(res, 3),
	       column(res, 4));
	inserts = column(res, 5);
	printf("history: about %lld messages stored\n", column(res, 6));
	PQclear(res);
	fflush(stdout);
	nanosleep(&pause, NULL);
	if (pl_db_exec(db, INSERTS_SQL, 0, NULL, 0, &res, NULL)) {
		printf("messages: PostgreSQL is unreachable\n");
		return 1;
	}
	inserts = column(res, 0) - inserts;
	PQclear(res);
	printf("messages: %lld in the last %ld s (%lld a minute)\n", inserts,
	       window, inserts * 60 / window);
	return 0;
}

/* The live relays; 0, or 1 (said) when the registry failed. */
static int print_relays(const struct pl_config *cfg, struct pl_redis *redis)
{
	struct pl_registry *reg = pl_registry_open(cfg, redis);
	struct pl_registry_entry *e = NULL;
	long long sockets = 0, capacity = 0;
	size_t n = 0;

	if (!reg || pl_registry_list(reg, 4096, &e, &n) != PL_OK) {
		printf("relays: the registry ([discovery] backend %s) is "
		       "unreachable\n", cfg->discovery_backend);
		pl_registry_free(reg);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		sockets += e[i].connections;
		capacity += e[i].capacity;
	}
	printf("relays: %zu, %lld of %lld sockets\n", n, sockets, capacity);
	for (size_t i = 0; i < n; i++)
		printf("  %s %s: %lld of %lld sockets\n", e[i].id, e[i].url,
		       e[i].connections, e[i].capacity);
	free(e);
	pl_registry_free(reg);
	return 0;
}

/* The integer after field name in a flat XINFO GROUPS entry, or 0. */
static long long group_field(const redisReply *g, const char *name)
{
	for (size_t i = 0; i + 1 < g->elements; i += 2)
		if (g->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(g->element[i]->str, name) == 0 &&
		    g->element[i + 1]->type == REDIS_REPLY_INTEGER)
			return g->element[i + 1]->integer;
	return 0;
}

/* The push queue over every bucket's stream; 0, or 1 (said) on failure. */
static int print_push_queue(struct pl_redis *redis)
{
	long long waiting = 0, claimed = 0;

	for (int b = 0; b < PL_KEY_BUCKETS; b++) {
		char key[64];
		const char *argv[3] = { "XINFO", "GROUPS", key };
		redisReply *rep;

		snprintf(key, sizeof(key), PL_KEY_PUSH_STREAM_FMT, b);
		if (pl_redis_call(redis, 3, argv, &rep) != PL_OK) {
			printf("push queue: Redis is unreachable\n");
			return 1;
		}
		/* A stream nothing was ever queued on is an error: none. */
		for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY &&
		     i < rep->elements; i++) {
			const redisReply *g = rep->element[i];

			if (g->type != REDIS_REPLY_ARRAY || g->elements < 2 ||
			    g->element[1]->type != REDIS_REPLY_STRING ||
			    strcmp(g->element[1]->str, PL_KEY_PUSH_GROUP) != 0)
				continue;
			waiting += group_field(g, "lag");
			claimed += group_field(g, "pending");
		}
		freeReplyObject(rep);
	}
	printf("push queue: %lld waiting, %lld being sent\n", waiting, claimed);
	return 0;
}

int admin_cmd_stats(struct admin *a, int argc, char **argv)
{
	struct pl_redis redis;
	long window = 10;
	char *end;
	int status;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
			window = strtol(argv[++i], &end, 10);
			if (*end || window < 1 || window > 3600)
				window = 0;
		} else {
			window = 0;
		}
	}
	if (!window) {
		fprintf(stderr, "usage: parley-admin stats [--window SECONDS]"
			" (1..3600)\n");
		return 2;
	}
	status = print_database(&a->db, window);
	pl_redis_init(&redis, &a->cfg);
	status |= print_relays(&a->cfg, &redis);
	status |= print_push_queue(&redis);
	pl_redis_release(&redis);
	return status;
}
