/*
 * Relay discovery (doc/protocol.md "REST": /discover; doc/architecture.md
 * "Service discovery and scale-out"). The live relays come from the relay
 * registry (lib/registry.h, [discovery] backend), which never hands out an
 * expired relay; this file only picks one: the least loaded of the
 * caller's region, or with a backend whose load figures lag (ZooKeeper) the
 * less loaded of two random ones (doc/scale-out.md "Discovery").
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "registry.h"
#include "banned.h"

#define DISCOVER_MAX_RELAYS 1000

struct candidate {
	const struct pl_registry_entry *e;
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
static struct candidate candidate_of(const struct pl_registry_entry *e,
				     const char *region)
{
	struct candidate c = { .e = e };

	c.same_region = region[0] && strcmp(region, e->region) == 0;
	c.load = (double)e->connections /
		 (e->capacity > 0 ? (double)e->capacity : 1);
	return c;
}

/* The best of the n (> 0) entries: same region first, then least loaded. */
static struct candidate pick_best(const struct pl_registry_entry *entries,
				  size_t n, const char *region)
{
	struct candidate best = candidate_of(&entries[0], region), c;

	for (size_t i = 1; i < n; i++) {
		c = candidate_of(&entries[i], region);
		if (better(&c, &best))
			best = c;
	}
	return best;
}

/*
 * Power of two choices over the n (> 0) entries: the less loaded of two
 * distinct random relays of the caller's region (of all, when none is in
 * it). Spreads the clients of a relay that died over the rest even while
 * every process reads the same stale load figures.
 */
static struct candidate pick_two_choices(const struct pl_registry_entry *entries,
					 size_t n, const char *region)
{
	size_t in_region = 0, a, b;
	const struct pl_registry_entry *pool[DISCOVER_MAX_RELAYS];
	struct candidate ca, cb;

	for (size_t i = 0; i < n && in_region < DISCOVER_MAX_RELAYS; i++)
		if (region[0] && strcmp(region, entries[i].region) == 0)
			pool[in_region++] = &entries[i];
	if (!in_region)
		for (size_t i = 0; i < n && in_region < DISCOVER_MAX_RELAYS; i++)
			pool[in_region++] = &entries[i];
	if (in_region == 1)
		return candidate_of(pool[0], region);
	a = randombytes_uniform((uint32_t)in_region);
	b = randombytes_uniform((uint32_t)in_region - 1);
	if (b >= a)
		b++;
	ca = candidate_of(pool[a], region);
	cb = candidate_of(pool[b], region);
	return cb.load < ca.load ? cb : ca;
}

/* GET /discover?region=R */
enum pl_err api_discover_get(struct api_request *req)
{
	const struct pl_config *cfg = req->w->cfg;
	char region[64] = "";
	struct pl_registry_entry *entries;
	struct candidate best;
	size_t n;
	enum pl_err rc;

	if (api_query_string(req, "region", region, sizeof(region)) < 0)
		return req->err;
	if (!region[0])
		snprintf(region, sizeof(region), "%s", cfg->discovery_region);
	rc = pl_registry_list(req->w->registry, DISCOVER_MAX_RELAYS, &entries, &n);
	if (rc == PL_INTERNAL)
		return api_fail(req, PL_INTERNAL, "bad registry reply");
	if (rc)
		return api_fail(req, PL_UNAVAILABLE, "the relay registry is "
				"unavailable");
	if (!n)
		return api_fail(req, PL_UNAVAILABLE, "no relay is alive");
	best = pl_registry_two_choices(cfg) ? pick_two_choices(entries, n, region) :
					      pick_best(entries, n, region);
	api_reply(req, 200, json_pack("{s:{s:s,s:s,s:s}}", "relay", "id",
				      best.e->id, "url", best.e->url, "region",
				      best.e->region));
	free(entries);
	return PL_OK;
}
