/*
 * Friends (doc/protocol.md "REST": /friends). A friendship is two rows, one per
 * side, whose states read "outgoing"/"incoming" while a request is pending
 * and "accepted" on both sides after.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "publish.h"
#include "banned.h"

/*
 * Tells user `to` live that their friend list changed (doc/protocol.md
 * "WebSocket", the "friend" event): user (borrowed) is the other side.
 * Live only, after COMMIT: a client that missed it refetches /friends.
 */
static void friend_event(struct api_request *req, long long to,
			 const char *change, json_t *user)
{
	json_t *frame;
	char *text;

	if (!user)
		return;
	frame = json_pack("{s:s,s:s,s:O}", "type", "friend", "change", change,
			  "user", user);
	text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
	if (text)
		pl_publish_frame(&req->w->redis, &to, 1, text);
	free(text);
	json_decref(frame);
}

/* Sends the event of a change to both sides, each naming the other. */
static void friend_events(struct api_request *req, long long other,
			  const char *change, int both, PGresult *res,
			  int me_col, int other_col)
{
	json_t *me = api_json_column(res, 0, me_col);
	json_t *them = api_json_column(res, 0, other_col);

	friend_event(req, other, change, me);
	if (both)
		friend_event(req, req->user_id, change, them);
	json_decref(me);
	json_decref(them);
}

/* GET /friends: each with the presence the relay keeps in Redis. */
enum pl_err api_friends_list(struct api_request *req)
{
	char uid[24];
	PGresult *res;
	json_t *list, *presence;
	long long *ids;
	int n;
	enum pl_err rc;

	if ((rc = api_sql(req,
			  "SELECT u.id, jsonb_build_object('id', u.id, 'username', "
			  "u.username, 'display_name', u.display_name, 'state', "
			  "f.state), EXISTS (SELECT 1 FROM blocks b WHERE "
			  "(b.user_id = $1 AND b.blocked_id = u.id) OR (b.user_id "
			  "= u.id AND b.blocked_id = $1)) FROM friendships f JOIN "
			  "users u ON u.id = f.friend_id WHERE f.user_id = $1 "
			  "ORDER BY u.username",
			  1, (const char *const[]){ api_ll(uid, req->user_id) },
			  1, &res)))
		return rc;
	n = PQntuples(res);
	ids = calloc((size_t)n + 1, sizeof(*ids));
	list = json_array();
	for (int i = 0; ids && i < n; i++)
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	presence = ids ? api_presence_of(req, ids, (size_t)n) : NULL;
	for (int i = 0; presence && i < n; i++) {
		json_t *friend = api_json_column(res, i, 1);
		json_t *p = json_array_get(presence, (size_t)i);
		const char *state = json_string_value(json_object_get(friend, "state"));

		/* Presence is for friends: a pending request shows nothing,
		 * and neither does a block, either way. */
		if (!state || strcmp(state, "accepted") != 0 ||
		    PQgetvalue(res, i, 2)[0] == 't')
			p = json_pack("{s:s,s:n}", "status", "offline", "last_seen");
		else
			json_incref(p);

		json_object_set_new(friend, "presence",
				    json_pack("{s:O,s:O}", "status",
					      json_object_get(p, "status"),
					      "last_seen",
					      json_object_get(p, "last_seen")));
		json_decref(p);
		json_array_append_new(list, friend);
	}
	PQclear(res);
	free(ids);
	if (!presence) {
		json_decref(list);
		return api_fail(req, PL_INTERNAL, "out of memory");
	}
	json_decref(presence);
	api_reply(req, 200, json_pack("{s:o}", "friends", list));
	return PL_OK;
}

/*
 * The friendship change of POST /friends between uid and oid, in one
 * transaction. Returns PL_OK with *out (the caller clears it): one row of
 * state, the other user, whether anything changed and this user, or none
 * when oid does not exist. Or the failure (recorded; rolled back).
 */
static enum pl_err befriend(struct api_request *req, const char *uid,
			    const char *oid, PGresult **out)
{
	PGresult *res;
	enum pl_err rc;

	/*
	 * Requests between the same two users are serialized by a lock on the
	 * pair, so two crossing requests end "accepted" instead of leaving
	 * each side an outgoing request (and cannot deadlock).
	 */
	if ((rc = api_sql(req, "BEGIN", 0, NULL, 0, &res)))
		return rc;
	PQclear(res);
	if ((rc = api_sql(req, "SELECT pg_advisory_xact_lock(hashtextextended("
			  "least($1::bigint, $2::bigint) || ':' || "
			  "greatest($1::bigint, $2::bigint), 7))", 2,
			  (const char *const[]){ uid, oid }, 0, &res)))
		goto rollback;
	PQclear(res);
	/*
	 * Then: an incoming request turns both rows "accepted"; otherwise the
	 * pair of pending rows is added unless present.
	 */
	if ((rc = api_sql(req,
		"WITH target AS (SELECT id, username, display_name FROM users "
		"  WHERE id = $2), "
		"acc AS (UPDATE friendships SET state = 'accepted' "
		"  WHERE ((user_id = $1 AND friend_id = $2) OR "
		"         (user_id = $2 AND friend_id = $1)) "
		"    AND EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 "
		"        AND friend_id = $2 AND state IN ('incoming', 'accepted')) "
		"  RETURNING user_id), "
		"mine AS (INSERT INTO friendships (user_id, friend_id, state) "
		"  SELECT $1, id, 'outgoing' FROM target "
		"  WHERE NOT EXISTS (SELECT 1 FROM acc) "
		"  ON CONFLICT DO NOTHING RETURNING 1), "
		"theirs AS (INSERT INTO friendships (user_id, friend_id, state) "
		"  SELECT id, $1, 'incoming' FROM target "
		"  WHERE NOT EXISTS (SELECT 1 FROM acc) "
		"  ON CONFLICT DO NOTHING RETURNING 1) "
		"SELECT CASE WHEN EXISTS (SELECT 1 FROM acc) THEN 'accepted' "
		"  ELSE 'outgoing' END, jsonb_build_object('id', t.id, "
		"  'username', t.username, 'display_name', t.display_name), "
		/* What changed, for the live events: the snapshot here is the
		 * one before this statement's own writes. */
		"  CASE WHEN EXISTS (SELECT 1 FROM acc) THEN EXISTS (SELECT 1 "
		"    FROM friendships WHERE user_id = $1 AND friend_id = $2 "
		"    AND state = 'incoming') ELSE EXISTS (SELECT 1 FROM mine) END, "
		"  (SELECT jsonb_build_object('id', id, 'username', username, "
		"    'display_name', display_name) FROM users WHERE id = $1) "
		"FROM target t",
		2, (const char *const[]){ uid, oid }, 0, out)))
		goto rollback;
	if ((rc = api_sql(req, "COMMIT", 0, NULL, 0, &res))) {
		PQclear(*out);
		*out = NULL;
		return rc;
	}
	PQclear(res);
	return PL_OK;
rollback:
	/* The request already failed; a lost connection rolls back by itself. */
	if (pl_db_exec(&req->w->db, "ROLLBACK", 0, NULL, 0, &res, NULL) == PL_OK)
		PQclear(res);
	return rc;
}

/*
 * POST /friends {user_id}: sends a request (201), or accepts the other
 * side's pending request (200, both sides "accepted"). Asking again is
 * harmless and answers the same way.
 */
enum pl_err api_friends_add(struct api_request *req)
{
	long long other;
	char uid[24], oid[24];
	PGresult *res;
	json_t *friend;
	const char *state;
	enum pl_err rc;
	int blocked;

	if ((rc = api_body_int(req, "user_id", 1, &other, NULL)))
		return rc;
	if (other == req->user_id)
		return api_fail(req, PL_BAD_REQUEST, "you cannot befriend yourself");
	if ((rc = api_blocked_by(req, &other, 1, req->user_id, &blocked)))
		return rc;
	if (blocked)
		return api_fail(req, PL_FORBIDDEN, "you cannot send user %lld a "
				"friend request", other);
	api_ll(uid, req->user_id);
	api_ll(oid, other);
	if ((rc = befriend(req, uid, oid, &res)))
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "user %lld does not exist", other);
	}
	state = PQgetvalue(res, 0, 0);
	if (PQgetvalue(res, 0, 2)[0] == 't')
		friend_events(req, other, state[0] == 'a' ? "accepted" : "request",
			      state[0] == 'a', res, 3, 1);
	friend = api_json_column(res, 0, 1);
	json_object_set_new(friend, "state", json_string(state));
	api_reply(req, state[0] == 'a' ? 200 : 201, friend);
	PQclear(res);
	return PL_OK;
}

/* DELETE /friends/{id}: ends a friendship or withdraws/declines a request. */
enum pl_err api_friends_remove(struct api_request *req)
{
	char uid[24], oid[24];
	PGresult *res;
	enum pl_err rc;
	int gone;

	if ((rc = api_sql(req, "WITH gone AS (DELETE FROM friendships WHERE "
			  "(user_id = $1 AND friend_id = $2) OR (user_id = $2 AND "
			  "friend_id = $1) RETURNING 1) "
			  "SELECT EXISTS (SELECT 1 FROM gone), "
			  "(SELECT jsonb_build_object('id', id, 'username', "
			  "username, 'display_name', display_name) FROM users "
			  "WHERE id = $1), "
			  "(SELECT jsonb_build_object('id', id, 'username', "
			  "username, 'display_name', display_name) FROM users "
			  "WHERE id = $2)",
			  2, (const char *const[]){ api_ll(uid, req->user_id),
						    api_ll(oid, req->params[0]) },
			  0, &res)))
		return rc;
	gone = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	if (gone)
		friend_events(req, req->params[0], "removed", 1, res, 1, 2);
	PQclear(res);
	if (!gone)
		return api_fail(req, PL_NOT_FOUND, "user %lld is not your friend",
				req->params[0]);
	api_reply(req, 204, NULL);
	return PL_OK;
}
