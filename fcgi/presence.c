/*
 * Presence queries (doc/protocol.md "REST": /presence; doc/architecture.md
 * "Presence"). The relay writes parley:presence:{user_id}: a field
 * "d:{device_id}" per device holding its deadline in epoch milliseconds,
 * and "last_seen" in epoch milliseconds. A user is online while any
 * device's deadline lies ahead.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "api.h"
#include "clock.h"
#include "keys.h"
#include "banned.h"

#define PRESENCE_MAX_USERS 100

static json_t *stamp_ms(long long ms)
{
	char out[PL_CLOCK_RFC3339_BYTES];

	return ms > 0 ? json_string(pl_clock_rfc3339_ms(ms, out)) : json_null();
}

/* Reads one HGETALL reply into status and last_seen. */
static json_t *presence_entry(long long user, redisReply *rep, long long now)
{
	int online = 0;
	long long last_seen = 0;

	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY &&
	     i + 1 < rep->elements; i += 2) {
		const char *field = rep->element[i]->str;
		long long v = strtoll(rep->element[i + 1]->str, NULL, 10);

		if (!field)
			continue;
		if (strncmp(field, "d:", 2) == 0 && v > now)
			online = 1;
		else if (strcmp(field, "last_seen") == 0)
			last_seen = v;
	}
	return json_pack("{s:I,s:s,s:o}", "user_id", (json_int_t)user, "status",
			 online ? "online" : "offline", "last_seen",
			 online ? stamp_ms(now) : stamp_ms(last_seen));
}

json_t *api_presence_of(struct api_request *req, const long long *users,
			size_t n)
{
	json_t *out = json_array();
	long long now = pl_clock_now_ms();
	size_t queued = 0;

	for (size_t i = 0; i < n; i++) {
		char key[48];
		const char *argv[2] = { "HGETALL", key };

		snprintf(key, sizeof(key), PL_KEY_PRESENCE_FMT, users[i]);
		if (pl_redis_append(&req->w->redis, 2, argv, NULL))
			break;
		queued++;
	}
	for (size_t i = 0; i < n; i++) {
		redisReply *rep = NULL;

		/* Redis down: everyone reads as offline, last seen unknown. */
		if (i < queued && pl_redis_read(&req->w->redis, &rep))
			queued = i;
		json_array_append_new(out, presence_entry(users[i], rep, now));
		if (rep)
			freeReplyObject(rep);
	}
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
	ids_text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	if (!ids_text)
		return api_fail(req, PL_INTERNAL, "out of memory");
	rc = api_sql(req,
		"SELECT x.id FROM (SELECT value::bigint AS id, min(o) AS o FROM "
		"jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS e(value, o) "
		"GROUP BY 1) x WHERE x.id = $1 "
		"OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = $1 "
		"  AND f.friend_id = x.id AND f.state = 'accepted') ORDER BY x.o",
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
