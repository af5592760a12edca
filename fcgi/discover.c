/*
 * Relay discovery (doc/protocol.md "REST": /discover; doc/architecture.md
 * "Service discovery and scale-out"). The live relays come from the relay
 * registry (lib/registry.h, [discovery] backend), which never hands out an
 * expired relay; this file only picks one.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "registry.h"
#include "banned.h"

#define DISCOVER_MAX_RELAYS 1000

struct candidate {
	char id[128];
	char url[512];
	char region[64];
	double load;
	int same_region;
};

/* Better: same region first, then the lower load ratio. */
static int better(const struct candidate *a, const struct candidate *b)
{
	if (a->same_region != b->same_region)
		return a->same_region > b->same_region;
	return a->load < b->load;
}

/* The candidate an entry makes for a caller in region ("" for none). */
static void candidate_of(const struct pl_registry_entry *e, const char *region,
			 struct candidate *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", e->id);
	snprintf(c->url, sizeof(c->url), "%s", e->url);
	snprintf(c->region, sizeof(c->region), "%s", e->region);
	c->same_region = region[0] && strcmp(region, e->region) == 0;
	c->load = (double)e->connections /
		  (e->capacity > 0 ? (double)e->capacity : 1);
}

/* GET /discover?region=R */
enum pl_err api_discover_get(struct api_request *req)
{
	char region[64] = "";
	struct candidate best = { .load = 0 }, c;
	struct pl_registry *reg;
	struct pl_registry_entry *entries;
	size_t n;
	enum pl_err rc;

	if (api_query_string(req, "region", region, sizeof(region)) < 0)
		return req->err;
	reg = pl_registry_open(req->w->cfg, &req->w->redis);
	if (!reg)
		return api_fail(req, PL_INTERNAL, "cannot open the relay registry");
	rc = pl_registry_list(reg, DISCOVER_MAX_RELAYS, &entries, &n);
	pl_registry_free(reg);
	if (rc == PL_INTERNAL)
		return api_fail(req, PL_INTERNAL, "bad registry reply");
	if (rc)
		return api_fail(req, PL_UNAVAILABLE, "the relay registry is "
				"unavailable");
	for (size_t i = 0; i < n; i++) {
		candidate_of(&entries[i], region, &c);
		if (i == 0 || better(&c, &best))
			best = c;
	}
	free(entries);
	if (!n)
		return api_fail(req, PL_UNAVAILABLE, "no relay is alive");
	api_reply(req, 200, json_pack("{s:{s:s,s:s,s:s}}", "relay", "id", best.id,
				      "url", best.url, "region", best.region));
	return PL_OK;
}
