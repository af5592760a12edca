/*
 * registration: the relay's entry in the relay registry (lib/registry.h) and
 * its self-fencing (doc/scale-out.md "Self-fencing").
 *
 * The entry is registered on the first tick and refreshed every five
 * seconds with the current socket count, as store jobs. A relay cut off
 * from Redis (the bus's probe has not come back) or from the registry for
 * more than [relay] fence_after_ms fences itself: it closes every socket
 * with 1001 so clients reconnect elsewhere through discovery, deregisters,
 * and refuses new sockets until both are back, then registers again.
 * Service thread only.
 */
#ifndef RELAY_REGISTRATION_H
#define RELAY_REGISTRATION_H

#include "jobs.h"

struct relay;

/* Queues the registry job op with the current connection count. */
void relay_registration_submit(struct relay *r, enum relay_registry_op op);

/*
 * The registry's part of tick number count (one every 250 ms, from 1):
 * fences or unfences the relay, and registers or refreshes its entry when
 * due and not fenced.
 */
void relay_registration_tick(struct relay *r, unsigned long count);

#endif
