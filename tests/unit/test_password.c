#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include "password.h"

/* Cheap hashes: these tests are about the pool, not about argon2id. */
#define OPS 1
#define MEMORY_KIB 64

static struct pl_password_pool pool;
static char hash[PL_PASSWORD_HASH_BYTES];

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int setup(void **state)
{
	(void)state;
	if (pl_password_pool_init(&pool, 1, OPS, MEMORY_KIB))
		return -1;
	return pl_password_hash(&pool, "correct horse", hash) == PL_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	pl_password_pool_release(&pool);
	return 0;
}

/* Takes the pool's only slot, as a hash running elsewhere would. */
static void hold_slot(void)
{
	assert_int_equal(sem_trywait(&pool.slots), 0);
}

static void test_password_hash_and_verify(void **state)
{
	char other[PL_PASSWORD_HASH_BYTES];

	(void)state;
	assert_int_equal(pl_password_verify(&pool, hash, "correct horse"), PL_OK);
	assert_int_equal(pl_password_verify(&pool, hash, "wrong horse"),
			 PL_UNAUTHORIZED);
	assert_int_equal(pl_password_verify(&pool, "$garbage", "correct horse"),
			 PL_UNAUTHORIZED);
	assert_int_equal(pl_password_hash(&pool, "correct horse", other), PL_OK);
	assert_string_not_equal(other, hash);
}

static void test_password_busy_pool_times_out(void **state)
{
	long long started;

	(void)state;
	pl_password_pool_set_wait(&pool, 100, 4);
	hold_slot();
	started = now_ms();
	assert_int_equal(pl_password_verify(&pool, hash, "correct horse"),
			 PL_UNAVAILABLE);
	assert_true(now_ms() - started >= 100);
	assert_int_equal(pl_password_hash(&pool, "x", hash), PL_UNAVAILABLE);
	assert_int_equal(atomic_load(&pool.waiting), 0);
	sem_post(&pool.slots);
	/* The hash was left alone, and the pool works again. */
	assert_int_equal(pl_password_verify(&pool, hash, "correct horse"), PL_OK);
}

static void test_password_full_queue_refuses_at_once(void **state)
{
	long long started;

	(void)state;
	/* Nobody may wait: a long wait_ms must not matter. */
	pl_password_pool_set_wait(&pool, 60000, 0);
	hold_slot();
	started = now_ms();
	assert_int_equal(pl_password_verify(&pool, hash, "correct horse"),
			 PL_UNAVAILABLE);
	assert_true(now_ms() - started < 30000);
	sem_post(&pool.slots);
	/* A free slot is taken without waiting, whatever the queue bound. */
	assert_int_equal(pl_password_verify(&pool, hash, "correct horse"), PL_OK);
}

static void *give_back_slot(void *arg)
{
	struct timespec pause = { 0, 50 * 1000000L };

	(void)arg;
	nanosleep(&pause, NULL);
	sem_post(&pool.slots);
	return NULL;
}

static void test_password_waiter_gets_a_freed_slot(void **state)
{
	pthread_t thread;

	(void)state;
	pl_password_pool_set_wait(&pool, 60000, 1);
	hold_slot();
	assert_int_equal(pthread_create(&thread, NULL, give_back_slot, NULL), 0);
	assert_int_equal(pl_password_verify(&pool, hash, "correct horse"), PL_OK);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(atomic_load(&pool.waiting), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_hash_and_verify),
		cmocka_unit_test(test_password_busy_pool_times_out),
		cmocka_unit_test(test_password_full_queue_refuses_at_once),
		cmocka_unit_test(test_password_waiter_gets_a_freed_slot),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
