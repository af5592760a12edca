/*
 * Conversations and their members (doc/protocol.md "REST": /conversations).
 *
 * Membership changes lock the conversation row, the same lock
 * post_messages() takes first, so a batch of sends never sees members
 * change under it. Every change is announced to the members as a
 * "conversation" event.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "pl_limits.h"
#include "publish.h"
#include "receipt.h"
#include "validate.h"
#include "banned.h"

#define TITLE_MAX_CHARS 128

void api_conversation_event(struct api_request *req, long long id,
			    const char *change, long long extra_user)
{
	char cid[24], xid[24];
	PGresult *res;

	if (pl_db_exec(&req->w->db,
		       "SELECT u.user_id, coalesce(conversation_json($1, u.user_id), "
		       "jsonb_build_object('id', $1::bigint)) FROM (SELECT user_id "
		       "FROM members WHERE conversation_id = $1 UNION SELECT $2 "
		       "WHERE $2::bigint > 0) u",
		       2, (const char *const[]){ api_ll(cid, id),
						 api_ll(xid, extra_user) },
		       1, &res, NULL))
		return;	/* clients refetch their list on reconnect anyway */
	for (int i = 0; i < PQntuples(res); i++) {
		long long user = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		json_t *frame = json_pack("{s:s,s:s,s:o}", "type", "conversation",
					  "change", change, "conversation",
					  api_json_column(res, i, 1));
		char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;

		if (text)
			pl_publish_frame(&req->w->redis, &user, 1, text);
		free(text);
		json_decref(frame);
	}
	PQclear(res);
}

/* Replies with the conversation as the caller sees it. */
static enum pl_err reply_conversation(struct api_request *req, int status,
				      long long id)
{
	char cid[24], uid[24];

	return api_sql_reply_json(req, status,
				  "SELECT conversation_json($1, $2)", 2,
				  (const char *const[]){ api_ll(cid, id),
							 api_ll(uid, req->user_id) },
				  "conversation does not exist or is not yours");
}

/*
 * Looks up the caller's membership of conversation id: *is_group and
 * *is_admin. Fails with 404 when there is no such conversation or the caller
 * is not in it, so outsiders cannot tell the two apart.
 */
static enum pl_err membership(struct api_request *req, long long id,
			      int *is_group, int *is_admin)
{
	char cid[24], uid[24];
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_sql(req, "SELECT c.kind = 'group', m.role = 'admin' FROM "
			  "conversations c JOIN members m ON m.conversation_id = "
			  "c.id AND m.user_id = $2 WHERE c.id = $1", 2,
			  (const char *const[]){ api_ll(cid, id),
						 api_ll(uid, req->user_id) },
			  1, &res)))
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "conversation %lld does not "
				"exist or is not yours", id);
	}
	*is_group = PQgetvalue(res, 0, 0)[0] == 't';
	*is_admin = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	return PL_OK;
}

static enum pl_err create_direct(struct api_request *req)
{
	long long other, lo, hi, id = 0;
	char uid[24], oid[24], key[64];
	PGresult *res;
	enum pl_err rc;
	int created = 0, exists = 0, blocked;

	if ((rc = api_body_int(req, "user_id", 1, &other, NULL)))
		return rc;
	if (other == req->user_id)
		return api_fail(req, PL_BAD_REQUEST, "a direct conversation needs "
				"another user");
	if ((rc = api_blocked_by(req, &other, 1, req->user_id, &blocked)))
		return rc;
	if (blocked)
		return api_fail(req, PL_FORBIDDEN, "you cannot start a "
				"conversation with user %lld", other);
	lo = other < req->user_id ? other : req->user_id;
	hi = other < req->user_id ? req->user_id : other;
	snprintf(key, sizeof(key), "%lld:%lld", lo, hi);
	/* A concurrent create of the same pair wins; the retry then finds it. */
	for (int attempt = 0; attempt < 2 && !id; attempt++) {
		if ((rc = api_sql(req,
			"WITH target AS (SELECT id FROM users WHERE id = $2), "
			"ins AS (INSERT INTO conversations (kind, direct_key, created_by) "
			"  SELECT 'direct', $3, $1 FROM target "
			"  ON CONFLICT (direct_key) DO NOTHING RETURNING id), "
			"mem AS (INSERT INTO members (conversation_id, user_id) "
			"  SELECT ins.id, u FROM ins, unnest(ARRAY[$1::bigint, $2::bigint]) u "
			"  RETURNING 1) "
			"SELECT (SELECT id FROM ins), (SELECT id FROM conversations "
			"  WHERE direct_key = $3), EXISTS (SELECT 1 FROM target), "
			"  (SELECT count(*) FROM mem)",
			3, (const char *const[]){ api_ll(uid, req->user_id),
						  api_ll(oid, other), key }, 0, &res)))
			return rc;
		exists = PQgetvalue(res, 0, 2)[0] == 't';
		created = !PQgetisnull(res, 0, 0);
		if (created)
			id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		else if (!PQgetisnull(res, 0, 1))
			id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		PQclear(res);
		if (!exists)
			return api_fail(req, PL_NOT_FOUND, "user %lld does not exist",
					other);
	}
	if (!id)
		return api_fail(req, PL_UNAVAILABLE, "conversation is being "
				"created; retry");
	if (created)
		api_conversation_event(req, id, "created", 0);
	return reply_conversation(req, created ? 201 : 200, id);
}

/* Collects the distinct member ids other than the caller as a JSON array. */
static enum pl_err group_members(struct api_request *req, json_t **out)
{
	json_t *ids = json_object_get(req->body, "member_ids");
	json_t *uniq;
	json_t *v;
	size_t i;

	if (!ids || !json_is_array(ids))
		return api_fail(req, PL_BAD_REQUEST, "'member_ids' must be an array "
				"of user ids");
	if (json_array_size(ids) > 4 * PL_GROUP_MAX_MEMBERS)
		return api_fail(req, PL_TOO_LARGE, "a group has at most %d members",
				PL_GROUP_MAX_MEMBERS);
	uniq = json_array();
	json_array_foreach(ids, i, v) {
		size_t k;
		json_t *w;
		int seen = 0;

		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			json_decref(uniq);
			return api_fail(req, PL_BAD_REQUEST, "'member_ids' must hold "
					"user ids");
		}
		if (json_integer_value(v) == req->user_id)
			continue;
		json_array_foreach(uniq, k, w)
			if (json_integer_value(w) == json_integer_value(v))
				seen = 1;
		if (!seen)
			json_array_append(uniq, v);
	}
	/* The creator is always a member and counts toward the limits. */
	if (json_array_size(uniq) + 1 < PL_GROUP_MIN_MEMBERS ||
	    json_array_size(uniq) + 1 > PL_GROUP_MAX_MEMBERS) {
		size_t n = json_array_size(uniq) + 1;

		json_decref(uniq);
		return api_fail(req, n > PL_GROUP_MAX_MEMBERS ? PL_TOO_LARGE :
				PL_BAD_REQUEST, "a group has %d to %d members, "
				"you included", PL_GROUP_MIN_MEMBERS,
				PL_GROUP_MAX_MEMBERS);
	}
	*out = uniq;
	return PL_OK;
}

static enum pl_err valid_title(struct api_request *req, const char *title)
{
	size_t len = strlen(title);
	size_t chars = pl_validate_utf8_chars(title, len);

	if (chars < 1)
		return api_fail(req, PL_BAD_REQUEST, "'title' must not be empty");
	if (chars > TITLE_MAX_CHARS)
		return api_fail(req, PL_TOO_LARGE, "'title' must be at most %d "
				"characters", TITLE_MAX_CHARS);
	return PL_OK;
}

static enum pl_err create_group(struct api_request *req)
{
	const char *title;
	json_t *members = NULL;
	char *ids = NULL, uid[24];
	PGresult *res;
	long long id;
	enum pl_err rc;

	if ((rc = api_body_string(req, "title", 1, &title, NULL)) ||
	    (rc = valid_title(req, title)) ||
	    (rc = group_members(req, &members)))
		return rc;
	if ((rc = api_json_param(req, members, &ids)))
		return rc;
	rc = api_sql(req,
		"WITH ids AS (SELECT value::bigint AS id FROM "
		"  jsonb_array_elements_text($3::jsonb)), "
		"missing AS (SELECT ids.id FROM ids LEFT JOIN users u ON u.id = ids.id "
		"  WHERE u.id IS NULL), "
		"blocked AS (SELECT 1 FROM blocks b JOIN ids ON b.user_id = ids.id "
		"  WHERE b.blocked_id = $1), "
		"conv AS (INSERT INTO conversations (kind, title, created_by) "
		"  SELECT 'group', $2, $1 WHERE NOT EXISTS (SELECT 1 FROM missing) "
		"  AND NOT EXISTS (SELECT 1 FROM blocked) RETURNING id), "
		"mem AS (INSERT INTO members (conversation_id, user_id, role) "
		"  SELECT conv.id, $1, 'admin' FROM conv UNION ALL "
		"  SELECT conv.id, ids.id, 'member' FROM conv, ids RETURNING 1) "
		"SELECT (SELECT id FROM conv), (SELECT min(id) FROM missing), "
		"  (SELECT count(*) FROM mem), EXISTS (SELECT 1 FROM blocked)",
		3, (const char *const[]){ api_ll(uid, req->user_id), title, ids },
		0, &res);
	free(ids);
	if (rc)
		return rc;
	if (PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1)) {
		long long missing = strtoll(PQgetvalue(res, 0, 1), NULL, 10);

		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "user %lld does not exist",
				missing);
	}
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return api_fail(req, PL_FORBIDDEN, "you cannot add one of these "
				"users to a group");
	}
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	api_conversation_event(req, id, "created", 0);
	return reply_conversation(req, 201, id);
}

/* POST /conversations {kind: "direct", user_id} | {kind: "group", title, member_ids} */
enum pl_err api_conversations_create(struct api_request *req)
{
	const char *kind;
	enum pl_err rc;

	if ((rc = api_body_string(req, "kind", 1, &kind, NULL)))
		return rc;
	if (strcmp(kind, "direct") == 0)
		return create_direct(req);
	if (strcmp(kind, "group") == 0)
		return create_group(req);
	return api_fail(req, PL_BAD_REQUEST, "'kind' must be \"direct\" or "
			"\"group\"");
}

/* GET /conversations?limit=N: most recent activity first. */
enum pl_err api_conversations_list(struct api_request *req)
{
	char uid[24], lim[24];
	long long limit;
	enum pl_err rc;

	if ((rc = api_query_int(req, "limit", 1000, 1, 1000, &limit)))
		return rc;
	return api_sql_reply_json(req, 200,
		"SELECT jsonb_build_object('conversations', coalesce(jsonb_agg("
		"conversation_json(x.id, $1) ORDER BY x.last_activity_at DESC, "
		"x.id DESC), '[]')) FROM (SELECT c.id, c.last_activity_at "
		"FROM members m JOIN conversations c ON c.id = m.conversation_id "
		"WHERE m.user_id = $1 ORDER BY c.last_activity_at DESC, c.id DESC "
		"LIMIT $2) x",
		2, (const char *const[]){ api_ll(uid, req->user_id),
					  api_ll(lim, limit) }, "no conversations");
}

/* GET /conversations/{id} */
enum pl_err api_conversations_get(struct api_request *req)
{
	return reply_conversation(req, 200, req->params[0]);
}

/* PATCH /conversations/{id} {title?, muted?} */
enum pl_err api_conversations_update(struct api_request *req)
{
	long long id = req->params[0];
	const char *title = NULL;
	int muted = 0, has_muted = 0, is_group, is_admin;
	char cid[24], uid[24];
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_body_string(req, "title", 0, &title, NULL)) ||
	    (rc = api_body_bool(req, "muted", 0, &muted, &has_muted)) ||
	    (title && (rc = valid_title(req, title))) ||
	    (rc = membership(req, id, &is_group, &is_admin)))
		return rc;
	if (title && !is_group)
		return api_fail(req, PL_BAD_REQUEST, "a direct conversation has no "
				"title");
	if (title && !is_admin)
		return api_fail(req, PL_FORBIDDEN, "only group admins change the "
				"title");
	api_ll(cid, id);
	api_ll(uid, req->user_id);
	if (title) {
		if ((rc = api_sql(req, "UPDATE conversations SET title = $2 WHERE id = $1",
				  2, (const char *const[]){ cid, title }, 0, &res)))
			return rc;
		PQclear(res);
	}
	if (has_muted) {
		if ((rc = api_sql(req, "UPDATE members SET muted = $3 WHERE "
				  "conversation_id = $1 AND user_id = $2", 3,
				  (const char *const[]){ cid, uid,
							 muted ? "true" : "false" },
				  0, &res)))
			return rc;
		PQclear(res);
	}
	if (title)
		api_conversation_event(req, id, "updated", 0);
	return reply_conversation(req, 200, id);
}

/* POST /conversations/{id}/members {user_id}: group admins only. */
enum pl_err api_conversations_add_member(struct api_request *req)
{
	long long id = req->params[0], user;
	int is_group, is_admin, blocked;
	char cid[24], nid[24], max[24];
	PGresult *res;
	enum pl_err rc;
	const char *outcome;

	if ((rc = api_body_int(req, "user_id", 1, &user, NULL)) ||
	    (rc = membership(req, id, &is_group, &is_admin)))
		return rc;
	if (!is_group)
		return api_fail(req, PL_BAD_REQUEST, "a direct conversation has "
				"exactly two members");
	if (!is_admin)
		return api_fail(req, PL_FORBIDDEN, "only group admins add members");
	if ((rc = api_blocked_by(req, &user, 1, req->user_id, &blocked)))
		return rc;
	if (blocked)
		return api_fail(req, PL_FORBIDDEN, "you cannot add user %lld",
				user);
	/* The row lock orders this against sends (doc/architecture.md step 2). */
	if ((rc = api_sql(req,
		"WITH c AS (SELECT id, last_message_id FROM conversations "
		"  WHERE id = $1 FOR UPDATE), "
		"u AS (SELECT id FROM users WHERE id = $2), "
		"n AS (SELECT count(*) AS n FROM members WHERE conversation_id = $1), "
		"ins AS (INSERT INTO members (conversation_id, user_id, "
		"  last_read_message_id) SELECT c.id, u.id, c.last_message_id "
		"  FROM c, u, n WHERE n.n < $3 ON CONFLICT DO NOTHING RETURNING 1) "
		"SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM u) THEN 'no_user' "
		"  WHEN EXISTS (SELECT 1 FROM ins) THEN 'added' "
		"  WHEN EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 "
		"    AND user_id = $2) THEN 'member' ELSE 'full' END",
		3, (const char *const[]){ api_ll(cid, id), api_ll(nid, user),
					  api_ll(max, PL_GROUP_MAX_MEMBERS) },
		0, &res)))
		return rc;
	outcome = PQgetvalue(res, 0, 0);
	if (strcmp(outcome, "no_user") == 0) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "user %lld does not exist", user);
	}
	if (strcmp(outcome, "full") == 0) {
		PQclear(res);
		return api_fail(req, PL_BAD_REQUEST, "a group has at most %d members",
				PL_GROUP_MAX_MEMBERS);
	}
	if (strcmp(outcome, "added") == 0)
		api_conversation_event(req, id, "member_added", 0);
	PQclear(res);
	api_reply(req, 204, NULL);
	return PL_OK;
}

/* DELETE /conversations/{id}/members/{user_id}: leave, or (admins) remove. */
enum pl_err api_conversations_remove_member(struct api_request *req)
{
	long long id = req->params[0], user = req->params[1];
	int is_group, is_admin;
	char cid[24], rid[24];
	PGresult *res;
	enum pl_err rc;
	int removed;

	if ((rc = membership(req, id, &is_group, &is_admin)))
		return rc;
	if (!is_group)
		return api_fail(req, PL_BAD_REQUEST, "nobody leaves a direct "
				"conversation");
	if (user != req->user_id && !is_admin)
		return api_fail(req, PL_FORBIDDEN, "only group admins remove others");
	/*
	 * Under the conversation's lock: remove, and if the last admin left,
	 * the longest-standing member becomes admin.
	 */
	if ((rc = api_sql(req,
		"WITH c AS (SELECT id FROM conversations WHERE id = $1 FOR UPDATE), "
		"d AS (DELETE FROM members m USING c WHERE m.conversation_id = c.id "
		"  AND m.user_id = $2 RETURNING m.user_id), "
		"heir AS (SELECT user_id FROM members WHERE conversation_id = $1 "
		"  AND user_id <> $2 ORDER BY (role = 'admin') DESC, joined_at, "
		"  user_id LIMIT 1), "
		"promote AS (UPDATE members SET role = 'admin' FROM heir WHERE "
		"  members.conversation_id = $1 AND members.user_id = heir.user_id "
		"  AND EXISTS (SELECT 1 FROM d) RETURNING 1) "
		"SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM promote)",
		2, (const char *const[]){ api_ll(cid, id), api_ll(rid, user) },
		0, &res)))
		return rc;
	removed = strtoll(PQgetvalue(res, 0, 0), NULL, 10) > 0;
	PQclear(res);
	if (!removed)
		return api_fail(req, PL_NOT_FOUND, "user %lld is not a member of "
				"conversation %lld", user, id);
	api_conversation_event(req, id, "member_removed", user);
	api_reply(req, 204, NULL);
	return PL_OK;
}

/* POST /conversations/{id}/read {message_id}: the caller's read marker. */
enum pl_err api_conversations_read(struct api_request *req)
{
	long long id = req->params[0], mid, upto;
	int moved;
	enum pl_err rc;

	if ((rc = api_body_int(req, "message_id", 1, &mid, NULL)))
		return rc;
	if (mid < 0)
		return api_fail(req, PL_BAD_REQUEST, "'message_id' must not be "
				"negative");
	rc = pl_receipt_mark_read(&req->w->db, &req->w->redis, id, req->user_id,
				  mid, &upto, &moved);
	if (rc == PL_NOT_FOUND)
		return api_fail(req, rc, "conversation %lld does not exist or is "
				"not yours", id);
	if (rc)
		return api_fail(req, rc, rc == PL_UNAVAILABLE ?
				"the database is unavailable; retry" : "database error");
	api_reply(req, 204, NULL);
	return PL_OK;
}
