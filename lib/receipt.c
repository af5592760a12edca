#include "receipt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "publish.h"
#include "banned.h"

enum pl_err pl_receipt_mark_read(struct pl_db *db, struct pl_redis *redis,
				 long long conversation_id, long long user_id,
				 long long message_id, long long *upto, int *moved)
{
	char conv[24], uid[24], mid[24];
	const char *params[3] = { conv, uid, mid };
	PGresult *res;
	long long *users = NULL;
	json_t *frame = NULL;
	char *text = NULL;
	enum pl_err rc;
	int n;

	snprintf(conv, sizeof(conv), "%lld", conversation_id);
	snprintf(uid, sizeof(uid), "%lld", user_id);
	snprintf(mid, sizeof(mid), "%lld", message_id);
	/*
	 * One row per member when the marker moved; one row without a member
	 * when it did not (nothing written, nothing published); none when the
	 * reader is not a member. The UPDATE compares with the row itself too:
	 * of two reads of the same marker racing on two connections, the one
	 * that waited for the other's row lock sees the row it left (READ
	 * COMMITTED re-checks the WHERE on it) and moves nothing, so one move
	 * makes one "read" event, never two.
	 */
	rc = pl_db_exec(db,
		"WITH me AS (SELECT m.last_read_message_id AS cur, "
		"  LEAST($3, c.last_message_id) AS want FROM members m JOIN "
		"  conversations c ON c.id = m.conversation_id "
		"  WHERE m.conversation_id = $1 AND m.user_id = $2), "
		"up AS (UPDATE members m SET last_read_message_id = me.want "
		"  FROM me WHERE m.conversation_id = $1 AND m.user_id = $2 "
		"  AND me.want > me.cur AND me.want > m.last_read_message_id "
		"  RETURNING m.last_read_message_id) "
		"SELECT x.user_id, coalesce((SELECT last_read_message_id FROM up), "
		"  me.cur) FROM me LEFT JOIN LATERAL (SELECT user_id FROM members "
		"  WHERE conversation_id = $1 AND EXISTS (SELECT 1 FROM up)) x "
		"  ON true",
		3, params, 1, &res, NULL);
	if (rc)
		return rc;
	n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		return PL_NOT_FOUND;
	}
	*upto = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	*moved = !PQgetisnull(res, 0, 0);
	if (!*moved) {
		PQclear(res);
		return PL_OK;	/* the marker was there already */
	}
	users = calloc((size_t)n, sizeof(*users));
	for (int i = 0; users && i < n; i++)
		users[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	frame = json_pack("{s:s,s:I,s:I,s:I}", "type", "read", "conversation_id",
			  (json_int_t)conversation_id, "user_id", (json_int_t)user_id,
			  "message_id", (json_int_t)*upto);
	text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
	if (text && users)
		pl_publish_frame(redis, users, (size_t)n, text);
	free(text);
	json_decref(frame);
	free(users);
	return PL_OK;
}
