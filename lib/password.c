#include "password.h"

#include <errno.h>
#include <string.h>

#include "log.h"

int pl_password_pool_init(struct pl_password_pool *pool, int concurrency,
			  long long ops, long long memory_kib)
{
	if (sodium_init() < 0)
		return -1;
	pool->ops = (unsigned long long)ops;
	pool->memory_bytes = (size_t)memory_kib * 1024;
	return sem_init(&pool->slots, 0, (unsigned int)concurrency);
}

void pl_password_pool_release(struct pl_password_pool *pool)
{
	sem_destroy(&pool->slots);
}

static void take(struct pl_password_pool *pool)
{
	while (sem_wait(&pool->slots) != 0 && errno == EINTR)
		;
}

enum pl_err pl_password_hash(struct pl_password_pool *pool,
			     const char *password, char *out)
{
	int rc;

	take(pool);
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

	take(pool);
	rc = crypto_pwhash_str_verify(stored, password, strlen(password));
	sem_post(&pool->slots);
	return rc == 0 ? PL_OK : PL_UNAUTHORIZED;
}
