#include "password.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "banned.h"

int pl_password_pool_init(struct pl_password_pool *pool, int concurrency,
			  long long ops, long long memory_kib)
{
	if (sodium_init() < 0)
		return -1;
	pool->ops = (unsigned long long)ops;
	pool->memory_bytes = (size_t)memory_kib * 1024;
	pool->wait_ms = -1;
	pool->max_waiting = -1;
	atomic_init(&pool->waiting, 0);
	atomic_init(&pool->waits, 0);
	atomic_init(&pool->refusals, 0);
	return sem_init(&pool->slots, 0, (unsigned int)concurrency);
}

void pl_password_pool_set_wait(struct pl_password_pool *pool, long long wait_ms,
			       long long max_waiting)
{
	pool->wait_ms = wait_ms;
	pool->max_waiting = max_waiting;
}

void pl_password_pool_release(struct pl_password_pool *pool)
{
	sem_destroy(&pool->slots);
}

/* Waits for a slot until deadline (CLOCK_MONOTONIC), or for ever if NULL. */
static int wait_slot(struct pl_password_pool *pool,
		     const struct timespec *deadline)
{
	int rc;

	do {
		rc = deadline ? sem_clockwait(&pool->slots, CLOCK_MONOTONIC,
					      deadline) :
				sem_wait(&pool->slots);
	} while (rc != 0 && errno == EINTR);
	return rc;
}

/*
 * Takes a slot: at once if one is free, else by waiting within the pool's
 * bounds. Returns 0 with a slot the caller gives back with sem_post(), or
 * -1 without one.
 */
static int take(struct pl_password_pool *pool)
{
	struct timespec deadline;
	long long before;
	int rc;

	if (sem_trywait(&pool->slots) == 0)
		return 0;
	before = atomic_fetch_add(&pool->waiting, 1);
	if (pool->max_waiting >= 0 && before >= pool->max_waiting) {
		atomic_fetch_sub(&pool->waiting, 1);
		atomic_fetch_add(&pool->refusals, 1);
		return -1;
	}
	atomic_fetch_add(&pool->waits, 1);
	if (pool->wait_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += pool->wait_ms / 1000;
		deadline.tv_nsec += (pool->wait_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	rc = wait_slot(pool, pool->wait_ms >= 0 ? &deadline : NULL);
	atomic_fetch_sub(&pool->waiting, 1);
	if (rc != 0)
		atomic_fetch_add(&pool->refusals, 1);
	return rc == 0 ? 0 : -1;
}

enum pl_err pl_password_hash(struct pl_password_pool *pool,
			     const char *password, char *out)
{
	int rc;

	if (take(pool))
		return PL_UNAVAILABLE;
	rc = crypto_pwhash_str(out, password, strlen(password), pool->ops,
			       pool->memory_bytes);
	sem_post(&pool->slots);
	if (rc != 0) {
		pl_log(PL_LOG_ERR, "password: cannot hash: out of memory");
		return PL_INTERNAL;
	}
	return PL_OK;
}

enum pl_err pl_password_verify(struct pl_password_pool *pool,
			       const char *stored, const char *password)
{
	int rc;

	if (take(pool))
		return PL_UNAVAILABLE;
	rc = crypto_pwhash_str_verify(stored, password, strlen(password));
	sem_post(&pool->slots);
	return rc == 0 ? PL_OK : PL_UNAUTHORIZED;
}
