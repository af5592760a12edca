/*
 * password: argon2id password hashes (libsodium crypto_pwhash_str).
 *
 * Each hash holds memory_kib of memory and takes a noticeable fraction of a
 * core, so hashing and verifying pass through a pool that lets at most
 * `concurrency` of them run at once: a burst of logins queues here instead of
 * starving every other request of memory and CPU.
 */
#ifndef PL_PASSWORD_H
#define PL_PASSWORD_H

#include <semaphore.h>
#include <stddef.h>
#include <sodium.h>

#include "err.h"

#define PL_PASSWORD_HASH_BYTES crypto_pwhash_STRBYTES

struct pl_password_pool {
	sem_t slots;
	unsigned long long ops;
	size_t memory_bytes;
};

/* Sets up the pool. Returns 0, or -1 if libsodium cannot start. */
int pl_password_pool_init(struct pl_password_pool *pool, int concurrency,
			  long long ops, long long memory_kib);

/* Releases the pool; no hash may be running. */
void pl_password_pool_release(struct pl_password_pool *pool);

/*
 * Hashes password into out (PL_PASSWORD_HASH_BYTES, NUL-terminated).
 * Returns PL_OK or PL_INTERNAL (out of memory).
 */
enum pl_err pl_password_hash(struct pl_password_pool *pool,
			     const char *password, char *out);

/*
 * Checks password against a stored hash. Returns PL_OK on a match,
 * PL_UNAUTHORIZED otherwise (including for a malformed stored hash).
 */
enum pl_err pl_password_verify(struct pl_password_pool *pool,
			       const char *stored, const char *password);

#endif
