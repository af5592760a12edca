/* Profiles and user lookup (doc/protocol.md "REST": /me, /users). */
#include <string.h>

#include "api.h"
#include "validate.h"
#include "banned.h"

/* Settings are a small JSON object of the app's own keys. */
#define SETTINGS_MAX_BYTES 8192

static const char me_sql[] =
	"SELECT jsonb_build_object('id', id, 'username', username, "
	"'display_name', display_name, 'settings', settings, "
	"'created_at', rfc3339(created_at)) FROM users WHERE id = $1";

/* GET /me */
enum pl_err api_users_me(struct api_request *req)
{
	char uid[24];

	return api_sql_reply_json(req, 200, me_sql, 1,
				  (const char *const[]){ api_ll(uid, req->user_id) },
				  "your account no longer exists");
}

/*
 * PATCH /me {display_name?, settings?}: settings merge into the stored
 * object key by key; a key set to null is removed.
 */
enum pl_err api_users_update_me(struct api_request *req)
{
	const char *display_name = NULL;
	json_t *settings = json_object_get(req->body, "settings");
	char uid[24], cap[24], why[128];
	char *settings_text = NULL;
	PGresult *res;
	long long updated;
	enum pl_err rc;

	if ((rc = api_body_string(req, "display_name", 0, &display_name, NULL)))
		return rc;
	if (display_name &&
	    (rc = pl_validate_display_name(display_name, why, sizeof(why))))
		return api_fail(req, rc, "%s", why);
	if (settings && !json_is_null(settings)) {
		if (!json_is_object(settings))
			return api_fail(req, PL_BAD_REQUEST,
					"'settings' must be an object");
		settings_text = json_dumps(settings, JSON_COMPACT);
		if (!settings_text)
			return api_fail(req, PL_INTERNAL, "out of memory");
		if (strlen(settings_text) > SETTINGS_MAX_BYTES) {
			free(settings_text);
			return api_fail(req, PL_TOO_LARGE, "'settings' must be at "
					"most %d bytes of JSON", SETTINGS_MAX_BYTES);
		}
	}
	/* The merged object is capped too, or patches could grow it forever. */
	rc = api_sql(req,
		     "UPDATE users SET display_name = coalesce($2, display_name), "
		     "settings = CASE WHEN $3::jsonb IS NULL THEN settings ELSE "
		     "jsonb_strip_nulls(settings || $3::jsonb) END WHERE id = $1 "
		     "AND ($3::jsonb IS NULL OR octet_length(jsonb_strip_nulls("
		     "settings || $3::jsonb)::text) <= $4::int)",
		     4, (const char *const[]){ api_ll(uid, req->user_id),
					       display_name, settings_text,
					       api_ll(cap, SETTINGS_MAX_BYTES) },
		     0, &res);
	free(settings_text);
	if (rc)
		return rc;
	updated = api_rows_affected(res);
	PQclear(res);
	if (updated != 1)
		return api_fail(req, PL_TOO_LARGE, "the stored settings would be "
				"over %d bytes: remove keys (set them to null) "
				"first", SETTINGS_MAX_BYTES);
	return api_users_me(req);
}

/* GET /users?q=PREFIX&limit=N: users whose username starts with PREFIX. */
enum pl_err api_users_search(struct api_request *req)
{
	char q[64], lim[24];
	long long limit;
	int found = api_query_string(req, "q", q, sizeof(q));
	enum pl_err rc;

	if (found < 0)
		return req->err;
	if (!found || !q[0])
		return api_fail(req, PL_BAD_REQUEST, "'q' (a username prefix) is "
				"required");
	if ((rc = api_query_int(req, "limit", 20, 1, 100, &limit)))
		return rc;
	/* The range condition lets the username index find the prefix. */
	return api_sql_reply_json(req, 200,
		"SELECT jsonb_build_object('users', coalesce(jsonb_agg("
		"jsonb_build_object('id', id, 'username', username, "
		"'display_name', display_name) ORDER BY username), '[]')) "
		"FROM (SELECT id, username, display_name FROM users "
		"WHERE username >= $1 AND starts_with(username, $1) "
		"ORDER BY username LIMIT $2) u",
		2, (const char *const[]){ q, api_ll(lim, limit) }, "no users");
}

/* GET /users/{id} */
enum pl_err api_users_get(struct api_request *req)
{
	char id[24];

	return api_sql_reply_json(req, 200,
		"SELECT jsonb_build_object('id', id, 'username', username, "
		"'display_name', display_name) FROM users WHERE id = $1",
		1, (const char *const[]){ api_ll(id, req->params[0]) },
		"no such user");
}
