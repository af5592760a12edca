#include "api.h"
#include "banned.h"

/*
 * GET /health: whether this worker reaches PostgreSQL and Redis. The body is
 * the health object, not the error shape, with 503 when a store is down
 * (doc/protocol.md).
 */
enum pl_err api_health_get(struct api_request *req)
{
	int pg_ok = pl_db_ping(&req->w->db) == PL_OK;
	int redis_ok = pl_redis_ping(&req->w->redis) == PL_OK;
	int ok = pg_ok && redis_ok;

	api_reply(req, ok ? 200 : 503,
		  json_pack("{s:s,s:s,s:s}", "status", ok ? "ok" : "degraded",
			    "postgres", pg_ok ? "ok" : "down",
			    "redis", redis_ok ? "ok" : "down"));
	return PL_OK;
}
