/*
 * parley-relay: the WebSocket relay daemon (doc/architecture.md "The pieces").
 *
 * Starts the store threads and the bus thread, then runs lws on a libev
 * loop (epoll: a wakeup costs the same with 10 or 10,000 idle sockets; lws'
 * own loop is poll(), which scans every socket each time) on this thread,
 * with a 250 ms tick (service.c: cursor writes, gap retries, keepalives,
 * session checks; every second the presence sweep; on the first tick the
 * registry entry, refreshed every five seconds). SIGTERM drains: new
 * sockets are refused, open ones are closed with 1001, the registry entry
 * is removed, and the threads stop.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>

#include "db.h"
#include "log.h"
#include "program.h"
#include "redis.h"
#include "bus.h"
#include "conn.h"
#include "events.h"
#include "jobs.h"
#include "registration.h"
#include "relay.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "store.h"
#include "banned.h"

#define TICK_US (250 * 1000)
#define STORE_THREADS 4
#define DRAIN_MS 2000
#define DRAIN_SLICES 20

struct ticker {
	lws_sorted_usec_list_t sul;
	struct relay *r;
	unsigned long count;
};

static struct ticker ticker;

static void on_tick(lws_sorted_usec_list_t *sul)
{
	struct ticker *t = lws_container_of(sul, struct ticker, sul);
	struct relay *r = t->r;

	t->count++;
	relay_service_tick(r);
	/* One sweep at a time: a slow one (Redis failing over) must not
	 * pile up behind itself and hold every store thread. */
	if (t->count % 4 == 0 && !atomic_exchange(&r->sweeping, 1)) {
		struct relay_job *sweep = relay_job_new(JOB_SWEEP, 0, 0);

		if (sweep)
			relay_job_submit(&r->jobs, sweep);
		else
			atomic_store(&r->sweeping, 0);
	}
	relay_registration_tick(r, t->count);
	lws_sul_schedule(r->ctx, 0, &t->sul, on_tick, TICK_US);
}

/* lws pings idle sockets at 30 s and hangs up silent ones at 45 s. */
static const lws_retry_bo_t idle_policy = {
	.secs_since_valid_ping = 30,
	.secs_since_valid_hangup = 45,
};

static const struct lws_protocol_vhost_options default_protocol = {
	NULL, NULL, "default", "1"
};

static const struct lws_protocol_vhost_options pvo = {
	NULL, &default_protocol, "parley.v1", ""
};

static void lws_log_to_pl(int level, const char *line)
{
	size_t len = strcspn(line, "\n");

	pl_log(level == LLL_ERR ? PL_LOG_ERR : PL_LOG_WARN, "lws: %.*s",
	       (int)len, line);
}

/*
 * Closes the sockets with 1001 in twenty slices over about two seconds, so
 * clients do not all reconnect (and ask discovery) at the same instant.
 */
static void drain(struct relay *r)
{
	struct timespec start, now;
	long long batch = r->connections / DRAIN_SLICES + 1;
	long elapsed_ms = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (r->connections > 0 && elapsed_ms < DRAIN_MS + 1000) {
		relay_service_drain(r, (int)batch);
		ev_run(r->loop, EVRUN_NOWAIT);
		usleep(DRAIN_MS * 1000 / DRAIN_SLICES);
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
	}
}

/*
 * Raises the descriptor limit (ulimit -n) to what capacity needs, if it is
 * lower: a socket per client and room for the stores, logs and lws's own.
 * lws looks a socket up by its descriptor in a table as long as this limit;
 * told a shorter table (fd_limit_per_thread) it scans that table on every
 * event instead, so the relay leaves lws's table at the limit.
 */
#define FD_TABLE_MAX ((rlim_t)1 << 20)

static void size_descriptors(long long capacity)
{
	rlim_t want = (rlim_t)capacity + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur > FD_TABLE_MAX && want <= FD_TABLE_MAX) {
		/* lws allocates its table for the whole limit: keep it sane. */
		rl.rlim_cur = FD_TABLE_MAX;
		setrlimit(RLIMIT_NOFILE, &rl);
		return;
	}
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		pl_log(PL_LOG_WARN, "relay: cannot set the descriptor limit to %llu",
		       (unsigned long long)want);
	else if (rl.rlim_cur < want)
		pl_log(PL_LOG_WARN, "relay: descriptors are limited to %llu, fewer "
		       "than capacity %lld needs", (unsigned long long)rl.rlim_cur,
		       capacity);
}

static void relay_id(struct relay *r)
{
	char host[64] = "relay";

	if (r->cfg->relay_id[0]) {
		snprintf(r->id, sizeof(r->id), "%s", r->cfg->relay_id);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(r->id, sizeof(r->id), "%s-%lld", host, r->cfg->relay_port);
}

/*
 * Checks what the relay needs before it listens: the token secret, and
 * PostgreSQL, waited for once so the log says clearly when it is down.
 * Returns 0; 1 when the relay cannot run; -1 when it was asked to stop
 * while waiting.
 */
static int check_ready(struct relay *r)
{
	struct pl_db db;
	char err[512];
	int rc;

	if (pl_token_key_load(&r->key, r->cfg->auth_secret_file, err,
			      sizeof(err))) {
		pl_log(PL_LOG_ERR, "relay: token secret: %s", err);
		return 1;
	}
	pl_db_init(&db, r->cfg);
	rc = pl_db_wait(&db) ? -1 : 0;
	pl_db_release(&db);
	return rc;
}

/*
 * Creates the lws context on the relay's own libev loop. Returns 0, or -1
 * (logged) when it cannot listen.
 */
static int start_lws(struct relay *r)
{
	const struct pl_config *cfg = r->cfg;
	struct lws_context_creation_info info;
	void *foreign_loops[1];

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_pl);
	size_descriptors(cfg->relay_capacity);
	memset(&info, 0, sizeof(info));
	info.port = (int)cfg->relay_port;
	info.protocols = relay_protocols;
	info.pvo = &pvo;
	info.user = r;
	info.retry_and_idle_policy = &idle_policy;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	/*
	 * [relay] bind: an address (or an interface name); "": all. Debian's
	 * lws 4.1.6 binds an IPv6 socket to "::" when given an IPv4 address,
	 * so an address without ':' gets an IPv4 socket.
	 */
	info.iface = cfg->relay_bind[0] ? cfg->relay_bind : NULL;
	if (info.iface && !strchr(info.iface, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	/* A client that dribbles its HTTP request (slowloris) loses it after
	 * 10 s (lws's default, pinned here); hello has its own 10 s. */
	info.timeout_secs_ah_idle = 10;
	/*
	 * lws joins this thread's libev loop (Debian: libwebsockets-evlib-ev).
	 * Not libuv: Debian's lws drops the close frame of a socket closed
	 * from a callback there (a debug-build double close, libuv only).
	 */
	r->loop = ev_loop_new(EVFLAG_AUTO);
	if (!r->loop) {
		pl_log(PL_LOG_ERR, "relay: cannot create the event loop");
		return -1;
	}
	foreign_loops[0] = r->loop;
	info.foreign_loops = foreign_loops;
	info.options |= LWS_SERVER_OPTION_LIBEV;
	r->ctx = lws_create_context(&info);
	if (!r->ctx) {
		pl_log(PL_LOG_ERR, "relay: cannot listen on port %lld, or "
		       "lws has no libev support (package "
		       "libwebsockets-evlib-ev)", cfg->relay_port);
		return -1;
	}
	return 0;
}

/* Serves until a signal asks to stop, then drains. */
static void serve(struct relay *r)
{
	ticker.r = r;
	lws_sul_schedule(r->ctx, 0, &ticker.sul, on_tick, TICK_US);
	pl_log(PL_LOG_INFO, "relay: '%s' listening on port %lld, public url '%s'",
	       r->id, r->cfg->relay_port, r->cfg->relay_public_url);
	/* A signal ends the wait at once; the tick bounds it anyway. */
	while (!pl_stop_requested)
		ev_run(r->loop, EVRUN_ONCE);

	pl_log(PL_LOG_INFO, "relay: draining %lld sockets", r->connections);
	r->draining = 1;
	drain(r);
	/* The cursors of the sockets just closed. */
	relay_cursor_flush(r);
	relay_registration_submit(r, RELAY_REGISTRY_DEREGISTER);
}

/* Stops what was started, in the reverse order: lws, the threads, the rest. */
static void stop(struct relay *r)
{
	if (r->ctx) {
		lws_sul_cancel(&ticker.sul);
		lws_context_destroy(r->ctx);
		r->ctx = NULL;
	}
	if (r->loop)
		ev_loop_destroy(r->loop);
	if (r->stores)
		relay_store_stop(r);
	if (r->bus_wake_fd > 0)
		relay_bus_stop(r);
	relay_events_release(r);
	relay_tables_release(r);
	free(r->cursors);
	free(r->checks);
}

int main(int argc, char **argv)
{
	static struct relay relay;
	struct relay *r = &relay;
	struct pl_config cfg;
	int next, status;

	status = pl_program_start(argc, argv, "parley-relay", NULL, &cfg, &next);
	if (status >= 0) {
		pl_config_release(&cfg);
		return status;
	}
	r->cfg = &cfg;
	relay_id(r);
	relay_events_init(r);
	relay_tables_init(r);
	status = check_ready(r);
	if (status == 0) {
		status = 1;
		if (start_lws(r) == 0 &&
		    (relay_store_start(r, STORE_THREADS) == 0 &&
		     relay_bus_start(r) == 0)) {
			serve(r);
			status = 0;
		} else if (r->ctx) {
			pl_log(PL_LOG_ERR, "relay: cannot start threads");
		}
	} else if (status < 0) {
		status = 0;
	}
	stop(r);
	pl_config_release(&cfg);
	return status;
}
