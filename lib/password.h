/*
 * password: argon2id password hashes (libsodium crypto_pwhash_str).
 *
 * Each hash holds memory_kib of memory and takes a noticeable fraction of a
 * core, so hashing and verifying pass through a pool that lets at most
 * `concurrency` of them run at once. A caller that finds every slot taken
 * waits its turn, but only within bounds (pl_password_pool_set_wait): at
 * most max_waiting callers wait at once, each at most wait_ms, and the rest
 * are refused with PL_UNAVAILABLE. So a burst of logins costs a bounded
 * number of threads and answers "retry later" instead of queueing without
 * end (doc/architecture.md "Threads").
 */
#ifndef PL_PASSWORD_H
#define PL_PASSWORD_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sodium.h>

#include "err.h"

#define PL_PASSWORD_HASH_BYTES crypto_pwhash_STRBYTES

struct pl_password_pool {
	sem_t slots;		/* free hashing slots */
	unsigned long long ops;
	size_t memory_bytes;
	long long wait_ms;	/* -1: wait as long as it takes */
	long long max_waiting;	/* -1: no bound */
	atomic_llong waiting;	/* callers waiting for a slot now */
	/* For metrics: callers that waited for a slot, and those turned away
	 * (the queue full, or the wait over) without one. */
	atomic_ulong waits;
	atomic_ulong refusals;
};

/*
 * Sets up the pool, with unbounded waits until pl_password_pool_set_wait().
 * Returns 0, or -1 if libsodium cannot start.
 */
int pl_password_pool_init(struct pl_password_pool *pool, int concurrency,
			  long long ops, long long memory_kib);

/*
 * Bounds the wait for a slot: at most max_waiting callers wait at once (0:
 * none, a caller finding every slot taken is refused at once; -1: no bound),
 * each at most wait_ms milliseconds (-1: no bound). Call before the pool is
 * shared between threads.
 */
void pl_password_pool_set_wait(struct pl_password_pool *pool, long long wait_ms,
			       long long max_waiting);

/* Releases the pool; no hash may be running. */
void pl_password_pool_release(struct pl_password_pool *pool);

/*
 * Hashes password into out (PL_PASSWORD_HASH_BYTES, NUL-terminated).
 * Returns PL_OK, PL_UNAVAILABLE when no slot came free within the pool's
 * bounds (out untouched), or PL_INTERNAL (out of memory).
 */
enum pl_err pl_password_hash(struct pl_password_pool *pool,
			     const char *password, char *out);

/*
 * Checks password against a stored hash. Returns PL_OK on a match,
 * PL_UNAVAILABLE when no slot came free within the pool's bounds (nothing
 * was checked), PL_UNAUTHORIZED otherwise (including for a malformed stored
 * hash).
 */
enum pl_err pl_password_verify(struct pl_password_pool *pool,
			       const char *stored, const char *password);

#endif
