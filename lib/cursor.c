#include "cursor.h"

#include <jansson.h>
#include <stdlib.h>
#include "banned.h"

enum pl_err pl_cursor_store(struct pl_db *db, const struct pl_cursor *cursors,
			    size_t n)
{
	json_t *list = json_array();
	const char *params[1] = { NULL };
	char *text = NULL;
	PGresult *res;
	enum pl_err rc = PL_INTERNAL;

	if (n == 0) {
		json_decref(list);
		return PL_OK;
	}
	for (size_t i = 0; list && i < n; i++)
		if (json_array_append_new(list, json_pack("{s:I,s:I,s:I}",
				"user_id", (json_int_t)cursors[i].user_id,
				"device_id", (json_int_t)cursors[i].device_id,
				"seq", (json_int_t)cursors[i].seq)))
			goto out;
	text = list ? json_dumps(list, JSON_COMPACT) : NULL;
	if (!text)
		goto out;
	params[0] = text;
	rc = pl_db_exec(db,
		"UPDATE devices d SET cursor = GREATEST(d.cursor, LEAST(x.seq, "
		"h.last_seq)), last_seen = now() FROM (SELECT device_id, user_id, "
		"max(seq) AS seq FROM jsonb_to_recordset($1::jsonb) AS r(device_id "
		"bigint, user_id bigint, seq bigint) GROUP BY 1, 2) x JOIN user_heads h "
		"ON h.user_id = x.user_id WHERE d.id = x.device_id AND "
		"d.user_id = x.user_id",
		1, params, 1, &res, NULL);
	if (rc == PL_OK)
		PQclear(res);
out:
	free(text);
	json_decref(list);
	return rc;
}
