/*
 * parley-api: serves the REST API over FastCGI with a fixed pool of worker
 * threads. Each thread owns its database and Redis connections and handles
 * one request at a time (FCGX_Accept_r). On SIGTERM or SIGINT the listening
 * socket is shut down, requests in flight finish, and the process exits.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "image.h"
#include "log.h"
#include "metrics_http.h"
#include "program.h"
#include "banned.h"

struct worker_thread {
	pthread_t thread;
	struct api_worker w;
	int listen_fd;
	FCGX_Request fcgx;	/* main reads fcgx.ipcFd to end a kept connection */
	int done;
};

static void *worker_main(void *arg)
{
	struct worker_thread *t = arg;
	FCGX_Request *fcgx = &t->fcgx;

	/* Connect early so the log says at once when a store is down. */
	pl_db_ensure(&t->w.db);
	pl_redis_ensure(&t->w.redis);
	while (!pl_stop_requested) {
		if (FCGX_Accept_r(fcgx) < 0)
			break;
		api_request_handle(&t->w, fcgx);
		FCGX_Finish_r(fcgx);
	}
	FCGX_Free(fcgx, 1);
	pl_image_thread_done();
	return NULL;
}

/* Opens the FastCGI socket: a unix socket path or HOST:PORT. Returns -1 on error. */
static int open_listener(const char *listen_on)
{
	int fd;

	/* FCGX_OpenSocket exits the process if bind fails: check first. */
	if (listen_on[0] == '/') {
		char *dir = strdup(listen_on);
		char *slash = dir ? strrchr(dir, '/') : NULL;

		if (slash && slash != dir) {
			*slash = '\0';
			if (access(dir, W_OK) != 0) {
				pl_log_errno(PL_LOG_ERR, "api: cannot create socket "
					     "in '%s'", dir);
				free(dir);
				return -1;
			}
		}
		free(dir);
	}
	fd = FCGX_OpenSocket(listen_on, 128);
	if (fd < 0) {
		pl_log(PL_LOG_ERR, "api: cannot listen on '%s'", listen_on);
		return -1;
	}
	if (listen_on[0] == '/' && chmod(listen_on, 0660) != 0)
		pl_log_errno(PL_LOG_WARN, "api: cannot chmod '%s'", listen_on);
	return fd;
}

/*
 * Fills shared from cfg (borrowed; must outlive shared): the token key, the
 * password pool and the dummy hash that keeps a login for an unknown user
 * as slow as one for a known user. Returns 0, or -1 (logged).
 */
static int shared_init(struct api_shared *shared, struct pl_config *cfg)
{
	unsigned char random_pw[24];
	char pw[sizeof(random_pw) * 2 + 1], err[512];

	memset(shared, 0, sizeof(*shared));
	shared->cfg = cfg;
	if (api_metrics_init(&shared->metrics, api_routes_count))
		return -1;
	if (pl_token_key_load(&shared->key, cfg->auth_secret_file, err,
			      sizeof(err))) {
		pl_log(PL_LOG_ERR, "api: token secret: %s", err);
		return -1;
	}
	if (pl_password_pool_init(&shared->passwords, (int)cfg->auth_hash_concurrency,
				  cfg->auth_hash_ops, cfg->auth_hash_memory_kib)) {
		pl_log(PL_LOG_ERR, "api: cannot set up password hashing");
		return -1;
	}
	randombytes_buf(random_pw, sizeof(random_pw));
	sodium_bin2hex(pw, sizeof(pw), random_pw, sizeof(random_pw));
	if (pl_password_hash(&shared->passwords, pw, shared->dummy_hash))
		return -1;
	/* From here on a login finding every slot busy waits only so long. */
	pl_password_pool_set_wait(&shared->passwords, cfg->auth_hash_wait_ms,
				  cfg->auth_hash_queue);
	if (pl_registry_is_shared(cfg)) {
		shared->registry = pl_registry_open(cfg, NULL);
		if (!shared->registry)
			return -1;
	}
	if (sem_init(&shared->image_slots, 0,
		     (unsigned)cfg->attachments_image_concurrency) != 0) {
		pl_log_errno(PL_LOG_ERR, "api: cannot set up image decoding");
		return -1;
	}
	return 0;
}

/*
 * Gives worker w its relay registry: the shared one, or its own over its
 * Redis connection. Returns 0, or -1 (logged).
 */
static int worker_registry_open(struct api_worker *w)
{
	w->registry = w->shared->registry;
	if (!w->registry)
		w->registry = pl_registry_open(w->cfg, &w->redis);
	return w->registry ? 0 : -1;
}

/* Releases what start_workers() gave worker w. */
static void worker_release(struct api_worker *w)
{
	if (w->registry != w->shared->registry)
		pl_registry_free(w->registry);
	w->registry = NULL;
	pl_db_release(&w->db);
	pl_replica_release(&w->replica);
	pl_redis_release(&w->redis);
}

/*
 * Starts n workers (threads, zeroed, n long) accepting on fd. Returns how
 * many started; fewer than n means one failed (logged) and a stop has been
 * requested.
 */
static long long start_workers(struct worker_thread *threads, long long n,
			       int fd, struct pl_config *cfg,
			       struct api_shared *shared)
{
	sigset_t block, old;
	long long started;

	/* Workers leave the stop signals to the main thread. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (started = 0; started < n; started++) {
		struct worker_thread *t = &threads[started];

		t->w.id = (int)started;
		if (FCGX_InitRequest(&t->fcgx, fd, 0) != 0) {
			pl_log(PL_LOG_ERR, "api: cannot initialize a request");
			pl_stop_requested = 1;
			break;
		}
		t->w.cfg = cfg;
		t->w.shared = shared;
		t->listen_fd = fd;
		pl_db_init(&t->w.db, cfg);
		pl_db_set_statement_timeout(&t->w.db, cfg->db_statement_timeout_ms);
		pl_replica_init(&t->w.replica, cfg);
		pl_redis_init(&t->w.redis, cfg);
		if (worker_registry_open(&t->w) != 0 ||
		    pthread_create(&t->thread, NULL, worker_main, t) != 0) {
			pl_log(PL_LOG_ERR, "api: cannot start worker thread");
			worker_release(&t->w);
			pl_stop_requested = 1;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

/*
 * Stops accepting on fd and joins the started workers, releasing the
 * connections of those that ended. Returns 1 when all were joined, 0 when
 * some are still stuck in a request (their memory must stay).
 */
static int stop_workers(struct worker_thread *threads, long long started,
			int fd)
{
	FCGX_ShutdownPending();
	/* Wakes the threads blocked in accept(). */
	shutdown(fd, SHUT_RDWR);
	/*
	 * Requests in flight get a second to finish; then threads still parked
	 * on an idle kept connection (fastcgi_keep_conn) are woken by shutting
	 * down its read side, which ends their FCGX_Accept_r().
	 */
	for (int round = 0; round < 2; round++) {
		struct timespec deadline;

		/* One deadline a round for all threads. */
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1 + round;
		for (long long i = 0; i < started; i++) {
			if (threads[i].done)
				continue;
			if (pthread_timedjoin_np(threads[i].thread, NULL, &deadline) == 0) {
				threads[i].done = 1;
				worker_release(&threads[i].w);
			} else if (round == 0 && threads[i].fcgx.ipcFd >= 0) {
				shutdown(threads[i].fcgx.ipcFd, SHUT_RD);
			}
		}
	}
	for (long long i = 0; i < started; i++)
		if (!threads[i].done)
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	struct pl_config cfg;
	struct api_shared shared = { 0 };
	struct worker_thread *threads = NULL;
	void *metrics = NULL;
	int next, fd, status = 1;
	long long started;
	int all_joined;

	status = pl_program_start(argc, argv, "parley-api", NULL, &cfg, &next);
	if (status >= 0)
		goto out;
	status = 1;
	if (sodium_init() < 0 || FCGX_Init() != 0) {
		pl_log(PL_LOG_ERR, "api: cannot initialize libsodium or libfcgi");
		goto out;
	}
	/* libvips starts once, before the threads that share it. */
	if (pl_image_init(argv[0]))
		goto out;
	if (shared_init(&shared, &cfg))
		goto out;
	fd = open_listener(cfg.api_listen);
	if (fd < 0)
		goto out;
	if (cfg.api_metrics_port > 0 &&
	    !(metrics = api_metrics_start(&shared, cfg.api_metrics_port)))
		goto out;
	threads = calloc((size_t)cfg.api_threads, sizeof(*threads));
	if (!threads)
		goto out;
	started = start_workers(threads, cfg.api_threads, fd, &cfg, &shared);
	pl_log(PL_LOG_INFO, "api: listening on '%s' with %lld threads",
	       cfg.api_listen, started);

	while (!pl_stop_requested)
		pl_program_sleep_ms(1000);

	pl_log(PL_LOG_INFO, "api: stopping");
	pl_metrics_http_stop(metrics);
	metrics = NULL;
	all_joined = stop_workers(threads, started, fd);
	close(fd);
	if (cfg.api_listen[0] == '/')
		unlink(cfg.api_listen);
	pl_log(PL_LOG_INFO, "api: stopped");
	status = 0;
	if (!all_joined)
		return status;	/* exit() ends the stragglers; their memory stays */
	pl_registry_free(shared.registry);
	sem_destroy(&shared.image_slots);
	pl_image_shutdown();
out:
	pl_metrics_http_stop(metrics);
	api_metrics_release(&shared.metrics);
	free(threads);
	pl_config_release(&cfg);
	return status;
}
