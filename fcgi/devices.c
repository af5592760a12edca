/* Devices and push tokens (doc/protocol.md "REST": /devices). */
#include <string.h>

#include "api.h"
#include "publish.h"
#include "validate.h"
#include "banned.h"

/*
 * POST /devices {platform, push_token, name?}: sets the push token of this
 * session's device; the token moves here from any other device, of this
 * user or another.
 */
enum pl_err api_devices_register(struct api_request *req)
{
	const char *platform, *token, *name = NULL;
	char uid[24], did[24], why[128];
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_body_string(req, "platform", 1, &platform, NULL)) ||
	    (rc = api_body_string(req, "push_token", 1, &token, NULL)) ||
	    (rc = api_body_string(req, "name", 0, &name, NULL)))
		return rc;
	if (strcmp(platform, "apns") && strcmp(platform, "fcm") &&
	    strcmp(platform, "web"))
		return api_fail(req, PL_BAD_REQUEST, "'platform' must be \"apns\", "
				"\"fcm\" or \"web\"");
	if ((rc = pl_validate_push_token(platform, token, why, sizeof(why))))
		return api_fail(req, rc, "%s", why);
	if (name && pl_validate_utf8_chars(name, strlen(name)) > 64)
		return api_fail(req, PL_TOO_LARGE, "'name' must be at most 64 "
				"characters");
	api_ll(uid, req->user_id);
	api_ll(did, req->device_id);
	/* Take the token from whichever device holds it, if this one exists. */
	if ((rc = api_sql(req,
		"UPDATE devices SET push_token = NULL, push_token_set_at = now() "
		"WHERE platform = $3 AND push_token = $4 AND id <> $2 AND EXISTS "
		"(SELECT 1 FROM devices WHERE id = $2 AND user_id = $1)",
		4, (const char *const[]){ uid, did, platform, token }, 0, &res)))
		return rc;
	PQclear(res);
	if ((rc = api_sql(req,
		"UPDATE devices SET platform = $3, push_token = $4, "
		"  push_token_set_at = now(), name = coalesce($5, name), "
		"  last_seen = now() WHERE id = $2 AND user_id = $1 RETURNING id",
		5, (const char *const[]){ uid, did, platform, token, name }, 0, &res)))
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "this session's device is gone");
	}
	PQclear(res);
	api_reply(req, 201, json_pack("{s:I}", "device_id",
				      (json_int_t)req->device_id));
	return PL_OK;
}

/* GET /devices: the caller's own. */
enum pl_err api_devices_list(struct api_request *req)
{
	char uid[24];

	return api_sql_reply_json(req, 200,
		"SELECT jsonb_build_object('devices', coalesce(jsonb_agg("
		"jsonb_build_object('id', id, 'platform', platform, 'name', name, "
		"'created_at', rfc3339(created_at), 'last_seen', rfc3339(last_seen), "
		"'has_push_token', push_token IS NOT NULL, 'cursor', cursor) "
		"ORDER BY id), '[]')) FROM devices WHERE user_id = $1",
		1, (const char *const[]){ api_ll(uid, req->user_id) }, "");
}

/*
 * DELETE /devices/{id}: the device, its push token and its sessions go; its
 * live sockets are closed through the revocation channel.
 */
enum pl_err api_devices_remove(struct api_request *req)
{
	char uid[24], did[24];
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_sql(req,
		"WITH s AS (UPDATE sessions SET revoked_at = now() WHERE "
		"  device_id = $2 AND user_id = $1 AND revoked_at IS NULL "
		"  RETURNING id) "
		"SELECT s.id FROM s",
		2, (const char *const[]){ api_ll(uid, req->user_id),
					  api_ll(did, req->params[0]) }, 0, &res)))
		return rc;
	for (int i = 0; i < PQntuples(res); i++)
		pl_publish_revoke(&req->w->redis,
				  strtoll(PQgetvalue(res, i, 0), NULL, 10),
				  req->params[0]);
	PQclear(res);
	if ((rc = api_sql(req, "DELETE FROM devices WHERE id = $2 AND user_id = $1",
			  2, (const char *const[]){ uid, did }, 0, &res)))
		return rc;
	if (api_rows_affected(res) != 1) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "device %lld does not exist or "
				"is not yours", req->params[0]);
	}
	PQclear(res);
	api_reply(req, 204, NULL);
	return PL_OK;
}
