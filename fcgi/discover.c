/*
 * Relay discovery (doc/protocol.md "REST": /discover; doc/architecture.md
 * "Service discovery and scale-out"). Each live relay keeps a hash
 * parley:relay:{id} {url, region, connections, capacity} with a TTL it
 * refreshes; an expired relay's key is gone, so it is never handed out.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define DISCOVER_MAX_RELAYS 1000

struct candidate {
	char id[128];
	char url[512];
	char region[64];
	double load;
	int same_region;
};

static const char *field(redisReply *rep, const char *name)
{
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
	     i += 2)
		if (rep->element[i]->str && strcmp(rep->element[i]->str, name) == 0)
			return rep->element[i + 1]->str;
	return NULL;
}

/* Better: same region first, then the lower load ratio. */
static int better(const struct candidate *a, const struct candidate *b)
{
	if (a->same_region != b->same_region)
		return a->same_region > b->same_region;
	return a->load < b->load;
}

/* GET /discover?region=R */
enum pl_err api_discover_get(struct api_request *req)
{
	char region[64] = "", cursor[32] = "0";
	struct candidate best = { .load = 0 }, c;
	int have = 0, seen = 0;

	if (api_query_string(req, "region", region, sizeof(region)) < 0)
		return req->err;
	do {
		const char *scan[6] = { "SCAN", cursor, "MATCH", "parley:relay:*",
					"COUNT", "100" };
		redisReply *keys;

		if (pl_redis_command(&req->w->redis, 6, scan, NULL, 1, &keys))
			return api_fail(req, PL_UNAVAILABLE, "the relay registry is "
					"unavailable");
		if (keys->type != REDIS_REPLY_ARRAY || keys->elements != 2) {
			freeReplyObject(keys);
			return api_fail(req, PL_INTERNAL, "bad SCAN reply");
		}
		snprintf(cursor, sizeof(cursor), "%s", keys->element[0]->str);
		for (size_t i = 0; i < keys->element[1]->elements &&
		     seen < DISCOVER_MAX_RELAYS; i++, seen++) {
			const char *key = keys->element[1]->element[i]->str;
			const char *get[2] = { "HGETALL", key };
			const char *url, *reg, *conns, *cap;
			redisReply *h;

			if (pl_redis_command(&req->w->redis, 2, get, NULL, 1, &h))
				break;
			url = field(h, "url");
			reg = field(h, "region");
			conns = field(h, "connections");
			cap = field(h, "capacity");
			if (url && *url) {
				double capacity = cap ? strtod(cap, NULL) : 0;

				memset(&c, 0, sizeof(c));
				snprintf(c.id, sizeof(c.id), "%s",
					 key + strlen("parley:relay:"));
				snprintf(c.url, sizeof(c.url), "%s", url);
				snprintf(c.region, sizeof(c.region), "%s",
					 reg ? reg : "");
				c.same_region = region[0] && reg &&
						strcmp(region, reg) == 0;
				c.load = (conns ? strtod(conns, NULL) : 0) /
					 (capacity > 0 ? capacity : 1);
				if (!have || better(&c, &best)) {
					best = c;
					have = 1;
				}
			}
			freeReplyObject(h);
		}
		freeReplyObject(keys);
	} while (strcmp(cursor, "0") != 0 && seen < DISCOVER_MAX_RELAYS);
	if (!have)
		return api_fail(req, PL_UNAVAILABLE, "no relay is alive");
	api_reply(req, 200, json_pack("{s:{s:s,s:s,s:s}}", "relay", "id", best.id,
				      "url", best.url, "region", best.region));
	return PL_OK;
}
