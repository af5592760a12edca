#include "registration.h"

#include <limits.h>

#include "clock.h"
#include "log.h"
#include "relay.h"
#include "service.h"
#include "banned.h"

/* Ticks between refreshes: five seconds at one tick every 250 ms. */
#define REFRESH_TICKS 20
/* Redis counts as back once a probe came back this recently. */
#define BACK_WITHIN_MS 3000

void relay_registration_submit(struct relay *r, enum relay_registry_op op)
{
	struct relay_job *j = relay_job_new(JOB_REGISTER, 0, 0);

	if (!j)
		return;
	j->as.reg = (struct relay_job_register){ op, r->connections };
	relay_job_submit(&r->jobs, j);
}

/*
 * How long the relay has been cut off, in ms: from Redis (since its probe
 * last came back) or from the registry, whichever is longer. The registry
 * call only reads the backend's own thread-safe state.
 */
static long long cut_off_ms(struct relay *r, long long *redis_ms)
{
	long long registry_ms = pl_registry_unreachable_ms(r->registry);

	*redis_ms = pl_clock_mono_ms() - atomic_load(&r->redis_seen_ms);
	return *redis_ms > registry_ms ? *redis_ms : registry_ms;
}

/* Fences or unfences r. Returns whether r is fenced now. */
static int fence_check(struct relay *r)
{
	long long limit = r->cfg->relay_fence_after_ms, redis_ms, off_ms;

	if (!limit)
		return 0;
	off_ms = cut_off_ms(r, &redis_ms);
	if (!r->fenced && off_ms > limit) {
		pl_log(PL_LOG_WARN, "relay: cut off from %s for %lld ms: fencing, "
		       "closing %lld sockets with 1001", redis_ms >= off_ms ?
		       "redis" : "the registry", off_ms, r->connections);
		r->fenced = 1;
		relay_service_drain(r, INT_MAX);
		relay_registration_submit(r, RELAY_REGISTRY_DEREGISTER);
	} else if (r->fenced && redis_ms < BACK_WITHIN_MS &&
		   !pl_registry_unreachable_ms(r->registry)) {
		pl_log(PL_LOG_INFO, "relay: redis and the registry are back: "
		       "serving again");
		r->fenced = 0;
		relay_registration_submit(r, RELAY_REGISTRY_REGISTER);
	}
	return r->fenced;
}

void relay_registration_tick(struct relay *r, unsigned long count)
{
	if (r->draining || fence_check(r))
		return;
	if (count % REFRESH_TICKS == 1)
		relay_registration_submit(r, count == 1 ? RELAY_REGISTRY_REGISTER :
				      RELAY_REGISTRY_REFRESH);
}
