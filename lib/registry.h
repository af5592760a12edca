/*
 * registry: where relays announce themselves and parley-api finds them
 * (doc/architecture.md "Service discovery and scale-out").
 *
 * A relay's store thread registers the relay once when it starts, refreshes
 * its entry every few seconds with the current connection count, and
 * deregisters it on shutdown; an entry not refreshed within PL_RELAY_TTL_MS
 * (lib/keys.h) is no longer listed. GET /api/v1/discover lists the live
 * entries on every request and picks one (fcgi/discover.c), so a backend
 * answers pl_registry_list() cheaply: the Redis one in two round trips and
 * O(relays) work, a watching backend from its in-memory cache.
 *
 * The backend is [discovery] backend; each is a struct pl_registry_ops in
 * the table in lib/registry.c. A struct pl_registry belongs to one thread.
 * Every function returns PL_OK, PL_UNAVAILABLE when the backend cannot be
 * reached (logged by the backend), or PL_INTERNAL when it answers what it
 * should not.
 */
#ifndef PL_REGISTRY_H
#define PL_REGISTRY_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "redis.h"

/* One relay as the registry holds it. */
struct pl_registry_entry {
	char id[128];		/* [relay] id, or host name and port */
	char url[512];		/* [relay] public_url, never empty when listed */
	char region[64];	/* [relay] region; "" when unknown */
	long long connections;	/* open sockets at the last refresh */
	long long capacity;	/* [relay] capacity */
};

struct pl_registry;

/* A backend. State is the backend's own, made by open and freed by close. */
struct pl_registry_ops {
	const char *name;	/* the [discovery] backend value */
	/* 1 when one registry serves every thread of a process (its
	 * functions are thread-safe and it keeps state worth sharing). */
	int thread_safe;
	/* 1 when discovery takes the less loaded of two random relays (power
	 * of two choices) instead of the least loaded: the load figures of
	 * a backend copied into many processes lag (up to 10 s), and "least
	 * loaded" would send every client of a dead relay to the same one. */
	int two_choices;
	/* Returns new state or NULL when out of memory. redis: borrowed. */
	void *(*open)(const struct pl_config *cfg, struct pl_redis *redis);
	void (*close)(void *state);
	/* Adds e, or replaces the entry with e's id; refresh is the same for
	 * a backend whose registration is one idempotent write. */
	enum pl_err (*add)(void *state, const struct pl_registry_entry *e);
	enum pl_err (*refresh)(void *state, const struct pl_registry_entry *e);
	enum pl_err (*remove)(void *state, const char *id);
	/* At most max live entries, in a new array (*out, freed by the caller). */
	enum pl_err (*list)(void *state, size_t max,
			    struct pl_registry_entry **out, size_t *n);
	/* Milliseconds the backend has been unreachable, 0 while reachable;
	 * NULL for a backend whose reachability is its caller's to see. */
	long long (*unreachable_ms)(void *state);
};

/* The Redis backend (lib/registry_redis.c). */
extern const struct pl_registry_ops pl_registry_redis_ops;

/*
 * The ZooKeeper backend (lib/registry_zk.c): an ephemeral sequential znode
 * per relay under /parley/relays, which goes with the relay's session, and
 * in parley-api a watched copy of the list, so no request waits on
 * ZooKeeper. Thread-safe: one per process.
 */
extern const struct pl_registry_ops pl_registry_zk_ops;

/*
 * Opens the registry cfg's [discovery] backend names. redis is borrowed for
 * the registry's life: the Redis backend works over it (the caller's own,
 * one thread's), other backends ignore it. Returns NULL for an unknown
 * backend (logged) or when out of memory.
 */
struct pl_registry *pl_registry_open(const struct pl_config *cfg,
				     struct pl_redis *redis);

/* Closes reg and frees it; NULL is a no-op. */
void pl_registry_free(struct pl_registry *reg);

/* Whether name is a backend [discovery] backend may name: 1 or 0. */
int pl_registry_backend_known(const char *name);

/*
 * Whether cfg's backend is thread-safe, so a process opens one registry for
 * all its threads (parley-api's workers share it) instead of one a thread.
 */
int pl_registry_is_shared(const struct pl_config *cfg);

/* Whether discovery picks by two random choices with cfg's backend (see
 * struct pl_registry_ops): 1 or 0. */
int pl_registry_two_choices(const struct pl_config *cfg);

/*
 * How long, in milliseconds, reg's backend has been unreachable; 0 while it
 * is reachable, or when the backend cannot tell (Redis: its caller sees
 * that on its own connection). A relay fences itself on this.
 */
long long pl_registry_unreachable_ms(struct pl_registry *reg);

/* Relay side: registers e once at start (e borrowed). */
enum pl_err pl_registry_register(struct pl_registry *reg,
				 const struct pl_registry_entry *e);

/* Relay side: keeps e registered, with its current connection count; due
 * every few seconds, well within PL_RELAY_TTL_MS. */
enum pl_err pl_registry_refresh(struct pl_registry *reg,
				const struct pl_registry_entry *e);

/* Relay side: removes relay id's entry at shutdown (id borrowed). */
enum pl_err pl_registry_deregister(struct pl_registry *reg, const char *id);

/*
 * parley-api side: the live entries, at most max, each with a url, in a
 * newly allocated array *out of *n entries that the caller frees (NULL
 * when *n is 0). On an error *out is NULL and *n 0.
 */
enum pl_err pl_registry_list(struct pl_registry *reg, size_t max,
			     struct pl_registry_entry **out, size_t *n);

#endif
