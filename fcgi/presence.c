/*
 * Presence queries (doc/protocol.md "REST": /presence; doc/architecture.md
 * "Presence"). What the relays write and how it reads is lib/presence.h's.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "api.h"
#include "clock.h"
#include "presence.h"
#include "banned.h"

#define PRESENCE_MAX_USERS 100

static json_t *stamp_ms(long long ms)
{
	char out[PL_CLOCK_RFC3339_BYTES];

	return ms > 0 ? json_string(pl_clock_rfc3339_ms(ms, out)) : json_null();
}

json_t *api_presence_of(struct api_request *req, const long long *users,
			size_t n)
{
	json_t *out = json_array();
	long long now = pl_clock_now_ms();
	struct pl_presence *p = calloc(n ? n : 1, sizeof(*p));

	if (!p) {
		json_decref(out);
		return NULL;
	}
	pl_presence_read(&req->w->redis, users, n, now, p);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, json_pack("{s:I,s:s,s:o}", "user_id",
			(json_int_t)p[i].user_id, "status",
			p[i].online ? "online" : "offline", "last_seen",
			stamp_ms(p[i].online ? now : p[i].last_seen_ms)));
	free(p);
	return out;
}

/* GET /presence?user_ids=1,2,3: only the caller and accepted friends. */
enum pl_err api_presence_get(struct api_request *req)
{
	char list[2048], uid[24];
	json_t *ids = json_array();
	char *ids_text, *p, *end;
	long long users[PRESENCE_MAX_USERS];
	size_t n = 0;
	PGresult *res;
	enum pl_err rc;
	int found = api_query_string(req, "user_ids", list, sizeof(list));

	if (found <= 0) {
		json_decref(ids);
		return found < 0 ? req->err : api_fail(req, PL_BAD_REQUEST,
						      "'user_ids' is required");
	}
	for (p = list; *p; p = *end ? end + 1 : end) {
		long long v = strtoll(p, &end, 10);

		if (end == p || v <= 0 || (*end && *end != ',')) {
			json_decref(ids);
			return api_fail(req, PL_BAD_REQUEST, "'user_ids' must be "
					"comma-separated user ids");
		}
		if (json_array_size(ids) == PRESENCE_MAX_USERS) {
			json_decref(ids);
			return api_fail(req, PL_TOO_LARGE, "at most %d user ids",
					PRESENCE_MAX_USERS);
		}
		json_array_append_new(ids, json_integer(v));
	}
	if ((rc = api_json_param(req, ids, &ids_text)))
		return rc;
	rc = api_sql(req,
		"SELECT x.id FROM (SELECT value::bigint AS id, min(o) AS o FROM "
		"jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS e(value, o) "
		"GROUP BY 1) x WHERE x.id = $1 "
		"OR (EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = $1 "
		"  AND f.friend_id = x.id AND f.state = 'accepted') "
		"  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.user_id = $1 "
		"  AND b.blocked_id = x.id) OR (b.user_id = x.id AND "
		"  b.blocked_id = $1))) ORDER BY x.o",
		2, (const char *const[]){ api_ll(uid, req->user_id), ids_text }, 1,
		&res);
	free(ids_text);
	if (rc)
		return rc;
	for (int i = 0; i < PQntuples(res) && n < PRESENCE_MAX_USERS; i++)
		users[n++] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	api_reply(req, 200, json_pack("{s:o}", "presence",
				      api_presence_of(req, users, n)));
	return PL_OK;
}
