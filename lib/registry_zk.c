/*
 * The ZooKeeper backend of the relay registry (lib/registry.h;
 * doc/scale-out.md "Discovery"), [discovery] backend = zookeeper.
 *
 * A relay is an ephemeral sequential znode ZK_RELAYS_PATH "/r-" holding
 * {id, url, region, capacity, connections} as JSON: it vanishes by itself
 * when the relay's session expires, so a dead relay leaves the list without
 * anyone deleting it. parley-api keeps the list in memory, watched (children
 * and each child's data), and answers every request from that copy: no
 * request waits on ZooKeeper.
 *
 * Threads: the ZooKeeper client library runs its own I/O and completion
 * threads and calls the watcher on the latter, where a synchronous call
 * would deadlock. So the watcher only records what happened and wakes this
 * backend's own thread, which does every synchronous call: (re)connecting
 * after an expired session, creating and updating the relay's znode, and
 * reading the list. Callers only touch the state under the lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
/* The synchronous API exists in the multi-threaded client only. */
#define THREADED
#include <zookeeper/zookeeper.h>

#include "registry.h"
#include "log.h"


#define ZK_PARENT "/parley"
#define ZK_RELAYS_PATH ZK_PARENT "/relays"
/* A relay's data is rewritten at most this often (its connection count). */
#define ZK_UPDATE_MS 10000
/* The first list request of a process waits this long for the first read. */
#define ZK_FIRST_LIST_WAIT_S 2
#define ZK_DATA_MAX 2048
#define ZK_MAX_RELAYS 4096
/* Re-read the whole list this often even without a watch firing. */
#define ZK_RESYNC_MS 30000
#define ZK_LOG_EVERY_MS 10000

struct zk {
	char hosts[512];
	int session_timeout_ms;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t listed;		/* the first list arrived */
	pthread_t thread;
	int started;

	/* Guarded by lock. */
	zhandle_t *zh;			/* the thread's; NULL while reconnecting */
	int stop;
	int dirty;			/* the list changed, or a resync is due */
	int expired;			/* the session expired: new handle */
	int connected;
	long long down_since_ms;	/* when connected became 0; 0 if up */
	int publishing;			/* relay side: self is to be registered */
	int withdraw;			/* relay side: remove the znode and stop */
	struct pl_registry_entry self;	/* what to publish */
	int self_changed;
	struct pl_registry_entry *list;	/* api side: the cached list */
	size_t nlist;
	int listing;			/* keep a watched list: from the first list call */
	int have_list;
	int waited;			/* a caller waited for the first list */

	/* Thread-only. */
	char node[256];			/* our znode, "" when none */
	long long node_session;		/* the session that created it */
	long long last_set_ms;
	long long last_sync_ms;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The watcher, on the client library's completion thread: records session
 * state and list changes and wakes the backend's thread. No ZooKeeper call
 * here.
 */
static void watcher(zhandle_t *zh, int type, int state, const char *path,
		    void *ctx)
{
	struct zk *z = ctx;

	(void)zh;
	(void)path;
	pthread_mutex_lock(&z->lock);
	if (type == ZOO_SESSION_EVENT) {
		if (state == ZOO_CONNECTED_STATE) {
			if (!z->connected)
				pl_log(PL_LOG_INFO, "registry: connected to "
				       "zookeeper");
			z->connected = 1;
			z->down_since_ms = 0;
		} else {
			if (z->connected)
				pl_log(PL_LOG_WARN, "registry: lost zookeeper "
				       "(%s)", state == ZOO_EXPIRED_SESSION_STATE ?
				       "session expired" : "disconnected");
			if (z->connected || !z->down_since_ms)
				z->down_since_ms = now_ms();
			z->connected = 0;
			if (state == ZOO_EXPIRED_SESSION_STATE)
				z->expired = 1;
		}
	}
	z->dirty = 1;
	pthread_cond_signal(&z->wake);
	pthread_mutex_unlock(&z->lock);
}

/*
 * The client library's own lines (errors only), at most one every
 * ZK_LOG_EVERY_MS: while every server is down it retries, and complains,
 * many times a second.
 */
static void log_library(const char *message)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static long long last_ms;
	long long now = now_ms();
	int quiet;

	pthread_mutex_lock(&lock);
	quiet = last_ms && now - last_ms < ZK_LOG_EVERY_MS;
	if (!quiet)
		last_ms = now;
	pthread_mutex_unlock(&lock);
	if (!quiet)
		pl_log(PL_LOG_WARN, "registry: zookeeper: %s", message);
}

/* Thread: a new handle after an expired session (or at start). */
static zhandle_t *connect_handle(struct zk *z)
{
	zhandle_t *zh;

	zh = zookeeper_init2(z->hosts, watcher, z->session_timeout_ms, NULL, z,
			     0, log_library);
	if (!zh)
		pl_log_errno(PL_LOG_ERR, "registry: cannot start a zookeeper "
			     "client for '%s'", z->hosts);
	return zh;
}

static int ensure_parents(zhandle_t *zh)
{
	static const char *const paths[] = { ZK_PARENT, ZK_RELAYS_PATH };
	int rc;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		rc = zoo_create(zh, paths[i], NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0,
				NULL, 0);
		if (rc != ZOK && rc != ZNODEEXISTS)
			return rc;
	}
	return ZOK;
}

/* Returns a newly allocated JSON text of info; the caller frees it. */
static char *info_json(const struct pl_registry_entry *info)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "id", info->id,
			      "url", info->url, "region", info->region,
			      "capacity", (json_int_t)info->capacity,
			      "connections", (json_int_t)info->connections);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

/*
 * Thread: deletes znodes under the relays path that this session owns but
 * that are not z->node, left by a create whose reply was lost to a
 * connection loss (the create happened; its answer did not arrive).
 */
static void drop_orphans(struct zk *z, zhandle_t *zh)
{
	struct String_vector kids = { 0, NULL };
	const clientid_t *cid = zoo_client_id(zh);
	char path[256];
	struct Stat st;

	if (zoo_get_children(zh, ZK_RELAYS_PATH, 0, &kids) != ZOK)
		return;
	for (int i = 0; i < kids.count; i++) {
		snprintf(path, sizeof(path), "%s/%s", ZK_RELAYS_PATH,
			 kids.data[i]);
		if (strcmp(path, z->node) == 0)
			continue;
		if (zoo_exists(zh, path, 0, &st) == ZOK &&
		    st.ephemeralOwner == cid->client_id)
			zoo_delete(zh, path, -1);
	}
	deallocate_String_vector(&kids);
}

/*
 * Thread: creates or updates the relay's znode from self. An update is
 * written at most every ZK_UPDATE_MS; a new session creates a new node.
 */
static void publish(struct zk *z, zhandle_t *zh,
		    const struct pl_registry_entry *self, int changed)
{
	const clientid_t *cid = zoo_client_id(zh);
	long long now = now_ms();
	char *text;
	int rc;

	if (z->node[0] && z->node_session == cid->client_id) {
		if (!changed || now - z->last_set_ms < ZK_UPDATE_MS)
			return;
		text = info_json(self);
		if (!text)
			return;
		rc = zoo_set(zh, z->node, text, (int)strlen(text), -1);
		free(text);
		if (rc == ZOK)
			z->last_set_ms = now;
		if (rc != ZNONODE)
			return;
		z->node[0] = '\0';	/* gone: create it again */
	}
	if (ensure_parents(zh) != ZOK)
		return;
	text = info_json(self);
	if (!text)
		return;
	rc = zoo_create(zh, ZK_RELAYS_PATH "/r-", text, (int)strlen(text),
			&ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, z->node,
			(int)sizeof(z->node));
	free(text);
	if (rc != ZOK) {
		z->node[0] = '\0';
		pl_log(PL_LOG_WARN, "registry: cannot register in zookeeper: %s",
		       zerror(rc));
		return;
	}
	z->node_session = cid->client_id;
	z->last_set_ms = now;
	drop_orphans(z, zh);
	pl_log(PL_LOG_INFO, "registry: registered in zookeeper as '%s'",
	       z->node);
}

/* Parses one znode's JSON into *out. Returns 0, or -1 if malformed. */
static int parse_info(const char *buf, int len, struct pl_registry_entry *out)
{
	json_t *o = json_loadb(buf, (size_t)len, 0, NULL);
	const char *id = NULL, *url = NULL, *region = "";
	json_int_t cap = 0, conns = 0;
	int rc = -1;

	if (o && json_unpack(o, "{s:s,s:s,s?s,s?I,s?I}", "id", &id, "url",
			     &url, "region", &region, "capacity", &cap,
			     "connections", &conns) == 0 &&
	    strlen(id) < sizeof(out->id) && strlen(url) < sizeof(out->url) &&
	    strlen(region) < sizeof(out->region)) {
		memset(out, 0, sizeof(*out));
		memcpy(out->id, id, strlen(id));
		memcpy(out->url, url, strlen(url));
		memcpy(out->region, region, strlen(region));
		out->capacity = cap;
		out->connections = conns;
		rc = 0;
	}
	json_decref(o);
	return rc;
}

/*
 * Thread: reads the list with watches on the children and on each child's
 * data, so any change wakes the thread again. Returns 0 and a newly
 * allocated list in *out (the caller frees it), or -1 with nothing.
 */
static int read_list(zhandle_t *zh, struct zk *z,
		     struct pl_registry_entry **out, size_t *n)
{
	struct String_vector kids = { 0, NULL };
	struct pl_registry_entry *list;
	char path[256], buf[ZK_DATA_MAX];
	int rc, len;

	rc = zoo_wget_children(zh, ZK_RELAYS_PATH, watcher, z, &kids);
	if (rc == ZNONODE) {
		/* No relay ever registered: watch for the parent to appear. */
		zoo_wexists(zh, ZK_RELAYS_PATH, watcher, z, NULL);
		*out = NULL;
		*n = 0;
		return 0;
	}
	if (rc != ZOK)
		return -1;
	list = calloc(kids.count ? (size_t)kids.count : 1, sizeof(*list));
	if (!list) {
		deallocate_String_vector(&kids);
		return -1;
	}
	*n = 0;
	for (int i = 0; i < kids.count && *n < ZK_MAX_RELAYS; i++) {
		snprintf(path, sizeof(path), "%s/%s", ZK_RELAYS_PATH,
			 kids.data[i]);
		len = (int)sizeof(buf);
		rc = zoo_wget(zh, path, watcher, z, buf, &len, NULL);
		if (rc == ZNONODE)
			continue;	/* gone since the listing */
		if (rc != ZOK) {
			free(list);
			deallocate_String_vector(&kids);
			return -1;
		}
		if (len > 0 && parse_info(buf, len, &list[*n]) == 0)
			(*n)++;
	}
	deallocate_String_vector(&kids);
	*out = list;
	return 0;
}

/*
 * Thread: one round of work, called and returning with the lock held (it
 * drops it around every ZooKeeper call). Returns 1 when a round failed and
 * the thread should pause before the next.
 */
static int work(struct zk *z)
{
	struct pl_registry_entry self, *list = NULL;
	int publishing, listing, changed, withdraw, ok;
	zhandle_t *zh = z->zh, *fresh;
	size_t n = 0;

	if (z->expired || !zh) {
		z->expired = 0;
		z->zh = NULL;
		pthread_mutex_unlock(&z->lock);
		if (zh)
			zookeeper_close(zh);
		z->node[0] = '\0';	/* went with the old session */
		fresh = connect_handle(z);
		pthread_mutex_lock(&z->lock);
		z->zh = fresh;
		z->self_changed = 1;
		z->dirty = 1;
		return fresh == NULL;
	}
	if (!z->connected)
		return 1;
	publishing = z->publishing;
	withdraw = z->withdraw;
	listing = z->listing;
	changed = z->self_changed;
	self = z->self;
	if (!z->dirty && !(publishing && changed) && !withdraw &&
	    now_ms() - z->last_sync_ms < ZK_RESYNC_MS)
		return 1;
	z->dirty = 0;
	z->self_changed = 0;
	z->withdraw = 0;
	pthread_mutex_unlock(&z->lock);

	if (withdraw) {
		if (z->node[0])
			zoo_delete(zh, z->node, -1);
		z->node[0] = '\0';
	} else if (publishing) {
		publish(z, zh, &self, changed || !z->node[0]);
	}
	ok = !listing || read_list(zh, z, &list, &n) == 0;
	z->last_sync_ms = now_ms();

	pthread_mutex_lock(&z->lock);
	if (listing && ok) {
		free(z->list);
		z->list = list;
		z->nlist = n;
		z->have_list = 1;
		pthread_cond_broadcast(&z->listed);
	}
	if (!ok)
		z->dirty = 1;	/* try again after a pause */
	return !ok;
}

static void *thread_main(void *arg)
{
	struct zk *z = arg;
	struct timespec until;
	int pause;

	pthread_mutex_lock(&z->lock);
	while (!z->stop) {
		pause = work(z);
		if (z->stop)
			break;
		if (!pause && (z->dirty || z->withdraw))
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&z->wake, &z->lock, &until);
	}
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

static void zk_free(struct zk *z);

/*
 * A registry on the ensemble hosts ("host:port,..."); connects in the
 * background. Returns NULL when hosts is too long or out of memory.
 */
static struct zk *zk_new(const char *hosts, int session_timeout_ms)
{
	struct zk *z;

	if (strlen(hosts) >= sizeof(z->hosts))
		return NULL;
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	memcpy(z->hosts, hosts, strlen(hosts));
	z->session_timeout_ms = session_timeout_ms;
	z->down_since_ms = now_ms();
	z->dirty = 1;
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->wake, NULL);
	pthread_cond_init(&z->listed, NULL);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	if (pthread_create(&z->thread, NULL, thread_main, z) != 0) {
		zk_free(z);
		return NULL;
	}
	z->started = 1;
	return z;
}

static void zk_free(struct zk *z)
{
	if (!z)
		return;
	pthread_mutex_lock(&z->lock);
	z->stop = 1;
	pthread_cond_signal(&z->wake);
	pthread_mutex_unlock(&z->lock);
	if (z->started)
		pthread_join(z->thread, NULL);
	/* Closing the session removes its ephemeral znode at once. */
	if (z->zh)
		zookeeper_close(z->zh);
	free(z->list);
	pthread_cond_destroy(&z->listed);
	pthread_cond_destroy(&z->wake);
	pthread_mutex_destroy(&z->lock);
	free(z);
}

static void zk_publish(struct zk *z, const struct pl_registry_entry *self)
{
	pthread_mutex_lock(&z->lock);
	if (!z->publishing || memcmp(&z->self, self, sizeof(*self)) != 0)
		z->self_changed = 1;
	z->self = *self;
	z->publishing = 1;
	z->withdraw = 0;
	pthread_cond_signal(&z->wake);
	pthread_mutex_unlock(&z->lock);
}

static void zk_withdraw(struct zk *z)
{
	pthread_mutex_lock(&z->lock);
	z->publishing = 0;
	z->withdraw = 1;
	pthread_cond_signal(&z->wake);
	pthread_mutex_unlock(&z->lock);
}

static long long zk_down_ms(struct zk *z)
{
	long long down;

	pthread_mutex_lock(&z->lock);
	down = z->connected ? 0 : now_ms() - z->down_since_ms;
	pthread_mutex_unlock(&z->lock);
	return down;
}

/*
 * Copies at most max entries of the watched list into a new array *out (NULL
 * when none), sized to what is copied: a request costs the live relays, not
 * the bound.
 */
static enum pl_err zk_list(void *state, size_t max,
			   struct pl_registry_entry **out, size_t *n)
{
	struct zk *z = state;
	struct timespec until;
	enum pl_err rc = PL_OK;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&z->lock);
	if (!z->listing) {
		/* Only a process that lists (parley-api) keeps the list. */
		z->listing = 1;
		z->dirty = 1;
		pthread_cond_signal(&z->wake);
	}
	if (!z->have_list && !z->waited) {
		/* The first caller gives the first read a moment, once. */
		z->waited = 1;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += ZK_FIRST_LIST_WAIT_S;
		while (!z->have_list && !z->stop &&
		       pthread_cond_timedwait(&z->listed, &z->lock, &until) == 0)
			;
	}
	/*
	 * A copy older than a session timeout may hold relays whose sessions
	 * have expired since: refuse it rather than hand out a dead relay.
	 */
	if (!z->have_list ||
	    (!z->connected &&
	     now_ms() - z->down_since_ms > z->session_timeout_ms)) {
		rc = PL_UNAVAILABLE;
	} else if (z->nlist) {
		*n = z->nlist < max ? z->nlist : max;
		*out = malloc(*n * sizeof(**out));
		if (*out)
			memcpy(*out, z->list, *n * sizeof(**out));
		else
			rc = PL_INTERNAL;
	}
	pthread_mutex_unlock(&z->lock);
	return rc;
}

/* The ops: state is a struct zk; redis is not used. */

static void *zk_open(const struct pl_config *cfg, struct pl_redis *redis)
{
	(void)redis;
	return zk_new(cfg->discovery_zookeeper,
		      (int)cfg->discovery_zookeeper_session_timeout_ms);
}

static void zk_close(void *state)
{
	zk_free(state);
}

/* Registering and refreshing both hand the entry to the thread. */
static enum pl_err zk_add(void *state, const struct pl_registry_entry *e)
{
	struct zk *z = state;

	zk_publish(z, e);
	return zk_down_ms(z) ? PL_UNAVAILABLE : PL_OK;
}

static enum pl_err zk_remove(void *state, const char *id)
{
	(void)id;	/* a struct zk registers one relay, its own */
	zk_withdraw(state);
	return PL_OK;
}

static long long zk_unreachable_ms(void *state)
{
	return zk_down_ms(state);
}

const struct pl_registry_ops pl_registry_zk_ops = {
	.name = "zookeeper",
	.thread_safe = 1,
	.two_choices = 1,
	.open = zk_open,
	.close = zk_close,
	.add = zk_add,
	.refresh = zk_add,
	.remove = zk_remove,
	.list = zk_list,
	.unreachable_ms = zk_unreachable_ms,
};
