/*
 * parley-notify: the push notifier daemon (ARCHITECTURE.md "Push
 * notifications").
 *
 * At this stage it reaches PostgreSQL and Redis, keeps both connections
 * alive (reconnecting after an outage) and stops cleanly; the push stream
 * consumer and the APNs and FCM senders build on this skeleton.
 */
#include <stdio.h>

#include "db.h"
#include "log.h"
#include "program.h"
#include "redis.h"

int main(int argc, char **argv)
{
	struct pl_config cfg;
	struct pl_db db;
	struct pl_redis redis;
	int next, status;

	status = pl_program_start(argc, argv, "parley-notify", NULL, &cfg, &next);
	if (status >= 0) {
		pl_config_release(&cfg);
		return status;
	}
	pl_db_init(&db, &cfg);
	pl_redis_init(&redis, &cfg);
	pl_log(PL_LOG_INFO, "notify: starting");
	pl_db_wait(&db);
	while (!pl_stop_requested) {
		/* Each check logs an outage once and the recovery once. */
		pl_db_ping(&db);
		pl_redis_ping(&redis);
		pl_program_sleep_ms(5000);
	}
	pl_log(PL_LOG_INFO, "notify: stopping");
	pl_redis_release(&redis);
	pl_db_release(&db);
	pl_config_release(&cfg);
	return 0;
}
