/*
 * Blocking (doc/protocol.md "Blocking"): POST /blocks, DELETE /blocks/{id},
 * GET /blocks, and the check the other resources make. What a block stops
 * is enforced where it happens: sends in a direct conversation and the
 * fan-out of group messages in post_messages() (sql/014), history and
 * search in messages.c, edits and reactions in post_event(), direct
 * conversations, group adds and friend requests here and in their files,
 * presence in presence.c, friends.c and the relay.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "banned.h"

enum pl_err api_blocked_by(struct api_request *req, const long long *users,
			   size_t n, long long user, int *blocked)
{
	char uid[24], list[API_BLOCK_LIST_BYTES];
	size_t used = 0;
	PGresult *res;
	enum pl_err rc;

	*blocked = 0;
	if (n == 0)
		return PL_OK;
	list[used++] = '{';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%lld",
				 i ? "," : "", users[i]);

		if (w < 0 || (size_t)w >= sizeof(list) - used - 1)
			return api_fail(req, PL_INTERNAL, "too many users");
		used += (size_t)w;
	}
	list[used++] = '}';
	list[used] = '\0';
	if ((rc = api_sql(req, "SELECT EXISTS (SELECT 1 FROM blocks WHERE "
			  "user_id = ANY ($1::bigint[]) AND blocked_id = $2)",
			  2, (const char *const[]){ list, api_ll(uid, user) }, 0,
			  &res)))
		return rc;
	*blocked = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return PL_OK;
}

/* POST /blocks {user_id}: 204; blocking again changes nothing. */
enum pl_err api_blocks_add(struct api_request *req)
{
	char uid[24], bid[24];
	long long other;
	PGresult *res;
	enum pl_err rc;
	int known;

	if ((rc = api_body_int(req, "user_id", 1, &other, NULL)))
		return rc;
	if (other == req->user_id)
		return api_fail(req, PL_BAD_REQUEST, "you cannot block yourself");
	if ((rc = api_sql(req,
		"WITH target AS (SELECT id FROM users WHERE id = $2), "
		"ins AS (INSERT INTO blocks (user_id, blocked_id) SELECT $1, id "
		"  FROM target ON CONFLICT DO NOTHING RETURNING 1) "
		"SELECT EXISTS (SELECT 1 FROM target), (SELECT count(*) FROM ins)",
		2, (const char *const[]){ api_ll(uid, req->user_id),
					  api_ll(bid, other) }, 0, &res)))
		return rc;
	known = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!known)
		return api_fail(req, PL_NOT_FOUND, "user %lld does not exist",
				other);
	api_reply(req, 204, NULL);
	return PL_OK;
}

/* DELETE /blocks/{user_id}: 204, also when there was no block. */
enum pl_err api_blocks_remove(struct api_request *req)
{
	char uid[24], bid[24];
	PGresult *res;
	enum pl_err rc;

	if ((rc = api_sql(req, "DELETE FROM blocks WHERE user_id = $1 AND "
			  "blocked_id = $2", 2,
			  (const char *const[]){ api_ll(uid, req->user_id),
						 api_ll(bid, req->params[0]) },
			  0, &res)))
		return rc;
	PQclear(res);
	api_reply(req, 204, NULL);
	return PL_OK;
}

/* GET /blocks: {users: [{id, username, display_name}]}, newest first. */
enum pl_err api_blocks_list(struct api_request *req)
{
	char uid[24];

	return api_sql_reply_json(req, 200,
		"SELECT json_build_object('users', coalesce(json_agg("
		"json_build_object('id', u.id, 'username', u.username, "
		"'display_name', u.display_name) ORDER BY b.created_at DESC, "
		"u.id), '[]')) FROM blocks b JOIN users u ON u.id = b.blocked_id "
		"WHERE b.user_id = $1",
		1, (const char *const[]){ api_ll(uid, req->user_id) }, "");
}
