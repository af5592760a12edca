/*
 * Accounts and sessions: signup, login, token refresh and logout
 * (doc/protocol.md "REST"; doc/architecture.md "Security").
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "api.h"
#include "log.h"
#include "publish.h"
#include "ratelimit.h"
#include "validate.h"
#include "banned.h"

/*
 * Counts a signup or login against the per-address limits (an IPv6 client
 * counts by its /64, see pl_ratelimit_client_key) and per-username limits.
 */
static enum pl_err auth_rate_limit(struct api_request *req, const char *username)
{
	const struct pl_config *cfg = req->w->cfg;
	char ip[PL_RATELIMIT_CLIENT_KEY_BYTES];
	double ip_rate = cfg->limits_auth_per_ip_per_minute / 60.0;
	double user_rate = cfg->limits_auth_per_user_per_minute / 60.0;

	pl_ratelimit_client_key(FCGX_GetParam("REMOTE_ADDR", req->fcgx->envp), ip);
	if (pl_ratelimit_take(&req->w->redis, "auth-ip", ip, ip_rate,
			      cfg->limits_auth_per_ip_per_minute,
			      &req->retry_after_s) ||
	    pl_ratelimit_take(&req->w->redis, "auth-user", username, user_rate,
			      cfg->limits_auth_per_user_per_minute,
			      &req->retry_after_s))
		return api_fail(req, PL_RATE_LIMITED,
				"too many attempts; retry in %lld s",
				req->retry_after_s);
	return PL_OK;
}

/*
 * Fails req for a password hash or check that found no free hashing slot
 * within [auth] hash_wait_ms: 503 with Retry-After, the API thread freed.
 */
static enum pl_err hash_pool_busy(struct api_request *req)
{
	req->retry_after_s = 1;
	return api_fail(req, PL_UNAVAILABLE, "too many logins at once; retry in "
			"%lld s", req->retry_after_s);
}

/*
 * Signs a token for the session, sets {token, expires_at} on reply and
 * replies with status and reply (stolen either way). Returns PL_OK, or
 * fails req with PL_INTERNAL when signing failed.
 */
static enum pl_err reply_with_token(struct api_request *req, int status,
				    json_t *reply, long long user_id,
				    long long session_id, long long device_id,
				    time_t expires_at)
{
	struct pl_token_claims claims = { user_id, session_id, device_id,
					  expires_at };
	char *token;
	char stamp[PL_CLOCK_RFC3339_BYTES];

	if (pl_token_sign(&req->w->shared->key, &claims, &token)) {
		json_decref(reply);
		return api_fail(req, PL_INTERNAL, "cannot sign a token");
	}
	pl_clock_rfc3339_ms((long long)expires_at * 1000, stamp);
	json_object_set_new(reply, "token", json_string(token));
	json_object_set_new(reply, "expires_at", json_string(stamp));
	free(token);
	api_reply(req, status, reply);
	return PL_OK;
}

/* POST /users {username, password, display_name?} */
enum pl_err api_auth_signup(struct api_request *req)
{
	const char *username, *password, *display_name = NULL;
	char why[128], hash[PL_PASSWORD_HASH_BYTES];
	PGresult *res;
	enum pl_err rc;
	int conflict;

	if ((rc = api_body_string(req, "username", 1, &username, NULL)) ||
	    (rc = api_body_string(req, "password", 1, &password, NULL)) ||
	    (rc = api_body_string(req, "display_name", 0, &display_name, NULL)))
		return rc;
	if ((rc = pl_validate_username(username, why, sizeof(why))) ||
	    (rc = pl_validate_password(password, why, sizeof(why))) ||
	    (display_name &&
	     (rc = pl_validate_display_name(display_name, why, sizeof(why)))))
		return api_fail(req, rc, "%s", why);
	if ((rc = auth_rate_limit(req, username)))
		return rc;
	/* Refuse a taken name before paying for a hash. */
	if ((rc = api_sql(req, "SELECT 1 FROM users WHERE username = $1", 1,
			  (const char *const[]){ username }, 1, &res)))
		return rc;
	conflict = PQntuples(res) > 0;
	PQclear(res);
	if (conflict)
		return api_fail(req, PL_CONFLICT, "username '%s' is taken", username);
	rc = pl_password_hash(&req->w->shared->passwords, password, hash);
	if (rc == PL_UNAVAILABLE)
		return hash_pool_busy(req);
	if (rc)
		return api_fail(req, PL_INTERNAL, "cannot hash the password");
	if ((rc = api_sql(req,
			  "INSERT INTO users (username, password_hash, display_name) "
			  "VALUES ($1, $2, coalesce($3, $1)) "
			  "ON CONFLICT (username) DO NOTHING "
			  "RETURNING jsonb_build_object('id', id, 'username', "
			  "username, 'display_name', display_name)",
			  3, (const char *const[]){ username, hash, display_name },
			  0, &res)))
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return api_fail(req, PL_CONFLICT, "username '%s' is taken", username);
	}
	api_reply(req, 201, api_json_column(res, 0, 0));
	PQclear(res);
	pl_log(PL_LOG_INFO, "auth: user '%s' signed up", username);
	return PL_OK;
}

/* Checks the optional "device" object of a login. */
static enum pl_err login_device(struct api_request *req, const char **platform,
				const char **push_token, const char **name)
{
	json_t *dev = json_object_get(req->body, "device");
	json_t *v;
	char why[128];
	enum pl_err rc;

	*platform = "web";
	*push_token = NULL;
	*name = "";
	if (!dev || json_is_null(dev))
		return PL_OK;
	if (!json_is_object(dev))
		return api_fail(req, PL_BAD_REQUEST, "'device' must be an object");
	v = json_object_get(dev, "platform");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return api_fail(req, PL_BAD_REQUEST,
					"'device.platform' must be a string");
		*platform = json_string_value(v);
	}
	if (strcmp(*platform, "apns") && strcmp(*platform, "fcm") &&
	    strcmp(*platform, "web"))
		return api_fail(req, PL_BAD_REQUEST, "'device.platform' must be "
				"\"apns\", \"fcm\" or \"web\"");
	v = json_object_get(dev, "push_token");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return api_fail(req, PL_BAD_REQUEST,
					"'device.push_token' must be a string");
		*push_token = json_string_value(v);
		if ((rc = pl_validate_push_token(*platform, *push_token, why,
						 sizeof(why))))
			return api_fail(req, rc, "device.%s", why);
	}
	v = json_object_get(dev, "name");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return api_fail(req, PL_BAD_REQUEST,
					"'device.name' must be a string");
		*name = json_string_value(v);
		if (strlen(*name) > 64 * 4 ||
		    pl_validate_utf8_chars(*name, strlen(*name)) > 64)
			return api_fail(req, PL_TOO_LARGE,
					"'device.name' must be at most 64 characters");
	}
	return PL_OK;
}

/*
 * A new device for user_id at each login, its cursor at the user's head
 * (doc/protocol.md "Cursors"), and its session; a push token moves here
 * from any other device. Made only while the account is enabled and its
 * password hash is still hash, the one the login verified: the user's row
 * is read FOR SHARE, so a parley-admin user disable or reset-password that
 * holds it is waited for and seen (its revocation, a later statement, then
 * sees any session made before). Strings are borrowed; push_token and name
 * may be NULL. Returns PL_OK with the new ids, or the failure (recorded).
 */
static enum pl_err login_new_device(struct api_request *req, long long user_id,
				    const char *hash, const char *platform,
				    const char *push_token, const char *name,
				    long long *device_id, long long *session_id)
{
	char uid[24], ttl[24];
	PGresult *res = NULL;
	enum pl_err rc;

	api_ll(uid, user_id);
	if (push_token) {
		if ((rc = api_sql(req, "UPDATE devices SET push_token = NULL WHERE "
				  "platform = $1 AND push_token = $2", 2,
				  (const char *const[]){ platform, push_token }, 0,
				  &res)))
			return rc;
		PQclear(res);
	}
	rc = api_sql(req,
		     "WITH dev AS (INSERT INTO devices (user_id, platform, push_token, "
		     "  push_token_set_at, name, cursor) "
		     "  SELECT $1, $2, $3, CASE WHEN $3::text IS NULL THEN NULL ELSE now() END, "
		     "  $4, last_seq FROM user_heads, (SELECT FROM users WHERE "
		     "  id = $1 AND password_hash = $6 AND disabled_at IS NULL "
		     "  FOR SHARE) u "
		     "  WHERE user_id = $1 RETURNING id) "
		     "INSERT INTO sessions (user_id, device_id, expires_at) "
		     "SELECT $1, dev.id, now() + make_interval(secs => $5::bigint) "
		     "FROM dev RETURNING device_id, id",
		     6, (const char *const[]){ uid, platform, push_token, name,
					       api_ll(ttl, req->w->cfg->auth_token_ttl_s),
					       hash },
		     0, &res);
	if (rc)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return api_fail(req, PL_UNAUTHORIZED, "the account changed "
				"while logging in: log in again");
	}
	*device_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*session_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return PL_OK;
}

/* POST /sessions {username, password, device?} */
enum pl_err api_auth_login(struct api_request *req)
{
	const char *username, *password, *platform, *push_token, *name;
	char hash[PL_PASSWORD_HASH_BYTES];
	long long user_id, device_id = 0, session_id = 0;
	time_t expires_at;
	PGresult *res = NULL;
	json_t *user, *reply;
	enum pl_err rc;
	int found;

	if ((rc = api_body_string(req, "username", 1, &username, NULL)) ||
	    (rc = api_body_string(req, "password", 1, &password, NULL)) ||
	    (rc = login_device(req, &platform, &push_token, &name)))
		return rc;
	if (strlen(username) > 64 || strlen(password) > 256)
		return api_fail(req, PL_UNAUTHORIZED, "wrong username or password");
	if ((rc = auth_rate_limit(req, username)))
		return rc;
	if ((rc = api_sql(req, "SELECT id, password_hash, jsonb_build_object("
			  "'id', id, 'username', username, 'display_name', "
			  "display_name), disabled_at IS NOT NULL FROM users "
			  "WHERE username = $1", 1,
			  (const char *const[]){ username }, 1, &res)))
		return rc;
	found = PQntuples(res) == 1;
	/* An unknown user costs a verify too, so timing tells nothing. */
	rc = pl_password_verify(&req->w->shared->passwords,
				found ? PQgetvalue(res, 0, 1) :
				req->w->shared->dummy_hash, password);
	if (rc || !found) {
		PQclear(res);
		if (rc == PL_UNAVAILABLE)
			return hash_pool_busy(req);
		return api_fail(req, PL_UNAUTHORIZED, "wrong username or password");
	}
	/* Disabled by the operator (parley-admin user disable): said only to
	 * whoever knows the password. */
	if (PQgetvalue(res, 0, 3)[0] == 't') {
		PQclear(res);
		return api_fail(req, PL_FORBIDDEN, "this account is disabled");
	}
	user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(hash, sizeof(hash), "%s", PQgetvalue(res, 0, 1));
	user = api_json_column(res, 0, 2);
	PQclear(res);

	expires_at = time(NULL) + req->w->cfg->auth_token_ttl_s;
	if ((rc = login_new_device(req, user_id, hash, platform, push_token,
				   name, &device_id, &session_id))) {
		json_decref(user);
		return rc;
	}
	reply = json_pack("{s:o,s:I}", "user", user, "device_id",
			  (json_int_t)device_id);
	return reply_with_token(req, 201, reply, user_id, session_id, device_id,
				expires_at);
}

/* POST /sessions/refresh: a new token for the same session and device. */
enum pl_err api_auth_refresh(struct api_request *req)
{
	char sid[24], ttl[24];
	time_t expires_at = time(NULL) + req->w->cfg->auth_token_ttl_s;
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_sql(req, "UPDATE sessions SET expires_at = now() + "
			  "make_interval(secs => $2::bigint) WHERE id = $1 "
			  "AND revoked_at IS NULL",
			  2, (const char *const[]){ api_ll(sid, req->session_id),
						    api_ll(ttl, req->w->cfg->auth_token_ttl_s) },
			  1, &res)))
		return rc;
	PQclear(res);
	return reply_with_token(req, 200, json_object(), req->user_id,
				req->session_id, req->device_id, expires_at);
}

/*
 * DELETE /sessions/current: revokes the session in PostgreSQL (the truth)
 * and clears its device's push token in the same statement, so a phone that
 * logged out gets no more pushes (doc/architecture.md "Push notifications"),
 * then tells the relays to close that device's sockets.
 */
enum pl_err api_auth_logout(struct api_request *req)
{
	char sid[24], did[24];
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_sql(req, "WITH s AS (UPDATE sessions SET revoked_at = now() "
			  "  WHERE id = $1 AND revoked_at IS NULL RETURNING id) "
			  "UPDATE devices SET push_token = NULL, "
			  "  push_token_set_at = now() "
			  "WHERE id = $2 AND push_token IS NOT NULL", 2,
			  (const char *const[]){ api_ll(sid, req->session_id),
						 api_ll(did, req->device_id) },
			  1, &res)))
		return rc;
	PQclear(res);
	pl_publish_revoke(&req->w->redis, req->session_id, req->device_id);
	api_reply(req, 204, NULL);
	return PL_OK;
}
