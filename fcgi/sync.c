/* Polling sync (doc/protocol.md "REST": /sync; doc/architecture.md step 6). */
#include "api.h"
#include "cursor.h"
#include "inbox.h"
#include "banned.h"

/*
 * GET /sync?after=SEQ&limit=N: inbox events after SEQ in seq order, and SEQ
 * stored as the device's cursor (forward only, never past the user's head).
 * Without after, the device's stored cursor is used.
 */
enum pl_err api_sync_get(struct api_request *req)
{
	char uid[24], did[24], a[24], lim[24];
	long long after, limit;
	enum pl_err rc;
	PGresult *res;
	struct pl_cursor cursor;

	if ((rc = api_query_int(req, "after", -1, 0, INT64_MAX, &after)) ||
	    (rc = api_query_int(req, "limit", 100, 1, 1000, &limit)))
		return rc;
	api_ll(uid, req->user_id);
	api_ll(did, req->device_id);
	if (after < 0) {
		if ((rc = api_sql(req, "SELECT cursor FROM devices WHERE id = $1",
				  1, (const char *const[]){ did }, 1, &res)))
			return rc;
		after = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
		PQclear(res);
	}
	api_ll(a, after);
	cursor = (struct pl_cursor){ req->user_id, req->device_id, after };
	rc = pl_cursor_store(&req->w->db, &cursor, 1);
	if (rc)
		return api_fail(req, rc, rc == PL_UNAVAILABLE ?
				"the database is unavailable; retry" : "database error");
	return api_sql_reply_json(req, 200, PL_INBOX_SYNC_SQL, 3,
		(const char *const[]){ uid, a, api_ll(lim, limit) }, "");
}
