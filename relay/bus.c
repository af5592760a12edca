/*
 * bus: the relay's Redis pub/sub connection, on its own thread.
 *
 * The service thread asks for a user's channel (parley:u:{id}) when the
 * user's first socket authenticates and gives it up with the last one; the
 * bus subscribes and reports the confirmation (EV_SUBSCRIBED), so a socket
 * is welcomed only once no event for it can be missed. Everything that
 * arrives is posted to the service thread. After a lost connection the bus
 * reconnects with backoff, subscribes again to every channel it held, and
 * posts EV_RESUBSCRIBED so every socket re-reads its inbox: events published
 * meanwhile are found there (doc/architecture.md step 5).
 *
 * A connection can look alive and be dead: a host cut off by a partition
 * sends no reset. So every second the bus publishes a probe to its own
 * channel (PL_KEY_PROBE_CHANNEL_FMT), on a second connection, and must see
 * it come back on its subscription: a probe not back within
 * PROBE_TIMEOUT_MS drops the subscription connection and subscribes anew.
 * When a probe last came back is r->redis_seen_ms, on which the relay
 * fences itself (registration.c).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "array.h"
#include "bus.h"
#include "clock.h"
#include "event.h"
#include "events.h"
#include "keys.h"
#include "log.h"
#include "relay.h"
#include "banned.h"

#define PROBE_EVERY_MS 1000
#define PROBE_TIMEOUT_MS 3000

/* The channels the bus holds: a small open set of user ids. */
struct subs {
	long long *ids;
	size_t n, cap;
};

static int subs_find(const struct subs *s, long long id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return (int)i;
	return -1;
}

static void subs_add(struct subs *s, long long id)
{
	long long *ids;

	if (subs_find(s, id) >= 0)
		return;
	ids = pl_array_grow(s->ids, &s->cap, s->n, sizeof(*ids), 256);
	if (!ids)
		return;
	s->ids = ids;
	s->ids[s->n++] = id;
}

static void subs_remove(struct subs *s, long long id)
{
	int i = subs_find(s, id);

	if (i >= 0)
		s->ids[i] = s->ids[--s->n];
}

/* Whether the cluster node c serves: CLUSTER INFO says cluster_state:ok. */
static int cluster_ok(redisContext *c)
{
	redisReply *info = redisCommand(c, "CLUSTER INFO");
	int ok = info && info->type == REDIS_REPLY_STRING &&
		 strstr(info->str, "cluster_state:ok") != NULL;

	if (info)
		freeReplyObject(info);
	return ok;
}

/*
 * Connects to one Redis once it answers PING (and, a cluster's node, once
 * its cluster serves: a node cut off from the majority would take a
 * subscription and never see the others' publishes). The connection keeps
 * the [redis] timeout_ms on every reply if blocking, else it has none
 * (reads then happen only when poll() says so).
 */
static redisContext *connect_one(const struct pl_config *cfg, const char *host,
				 int port, int cluster, int blocking)
{
	struct timeval tv = { cfg->redis_timeout_ms / 1000,
			      (cfg->redis_timeout_ms % 1000) * 1000 };
	redisContext *c = host[0] == '/' ? redisConnectUnixWithTimeout(host, tv) :
			  redisConnectWithTimeout(host, port, tv);
	redisReply *pong;

	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	/*
	 * A restarting Redis accepts connections while it loads its data and
	 * answers every command with -LOADING until it is ready: subscribe only
	 * once it answers PING.
	 */
	redisSetTimeout(c, tv);
	pong = redisCommand(c, "PING");
	if (!pong || pong->type != REDIS_REPLY_STATUS || strcmp(pong->str, "PONG") ||
	    (cluster && !cluster_ok(c))) {
		if (pong)
			freeReplyObject(pong);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(pong);
	if (!blocking)
		redisSetTimeout(c, (struct timeval){ 0, 0 });
	return c;
}

/*
 * Connects to [redis] host, or to the first node of [redis] cluster from
 * *turn on that serves, and leaves *turn at it. Classic pub/sub on a
 * cluster reaches every node, so any node will do.
 */
static redisContext *bus_connect(struct relay *r, int blocking, size_t *turn)
{
	const struct pl_config *cfg = r->cfg;
	size_t n = pl_config_redis_nodes(cfg);

	if (n == 0)
		return connect_one(cfg, cfg->redis_host, (int)cfg->redis_port, 0,
				   blocking);
	for (size_t k = 0; k < n; k++) {
		char host[PL_CONFIG_HOST_MAX];
		size_t i = (*turn + k) % n;
		redisContext *c;
		int port;

		if (pl_config_redis_node(cfg, i, host, sizeof(host), &port))
			continue;
		c = connect_one(cfg, host, port, 1, blocking);
		if (c) {
			*turn = i;
			return c;
		}
	}
	return NULL;
}

static void append_sub(redisContext *c, const char *verb, long long id)
{
	char ch[PL_EVENT_CHANNEL_BYTES];

	redisAppendCommand(c, "%s %s", verb, pl_event_channel(ch, id));
}

/* Takes the service thread's requests and queues the commands. */
static void take_requests(struct relay *r, redisContext *c, struct subs *subs)
{
	long long *cmds;
	size_t n;
	uint64_t v;

	if (read(r->bus_wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pl_log_errno(PL_LOG_WARN, "bus: cannot read wake-up");
	pthread_mutex_lock(&r->bus_lock);
	cmds = r->bus_cmds;
	n = r->bus_ncmds;
	r->bus_cmds = NULL;
	r->bus_ncmds = r->bus_cap = 0;
	pthread_mutex_unlock(&r->bus_lock);
	for (size_t i = 0; i < n; i++) {
		long long id = cmds[i] > 0 ? cmds[i] : -cmds[i];

		if (cmds[i] > 0) {
			subs_add(subs, id);
			if (c)
				append_sub(c, "SUBSCRIBE", id);
		} else {
			subs_remove(subs, id);
			if (c)
				append_sub(c, "UNSUBSCRIBE", id);
		}
	}
	free(cmds);
}

/*
 * An event on a user's channel (lib/event.h): a "message" comes with its
 * header line, whose seq and creation time ride along as the event's a and
 * b so the service thread need not parse the JSON; other events are the
 * frame alone (a = 0).
 */
static void user_event(struct relay *r, long long user_id, const char *text,
		       size_t len)
{
	struct pl_event ev;

	if (pl_event_decode(text, len, &ev)) {
		pl_log(PL_LOG_WARN, "bus: bad message header on user %lld",
		       user_id);
		return;
	}
	relay_post_event(r, EV_USER_FRAME, 0, user_id, ev.seq, ev.created_us,
			 ev.frame, ev.frame_len);
}

/* Hands one pub/sub reply to the service thread. */
static void dispatch(struct relay *r, redisReply *rep)
{
	const char *kind, *ch;
	long long user_id;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return;
	kind = rep->element[0]->str;
	ch = rep->element[1]->str;
	if (strcmp(kind, "subscribe") == 0 &&
	    pl_event_channel_user(ch, &user_id) == 0) {
		relay_post_event(r, EV_SUBSCRIBED, 0, user_id, 0, 0, NULL, 0);
	} else if (strcmp(kind, "message") == 0 &&
		   rep->element[2]->type == REDIS_REPLY_STRING) {
		if (strcmp(ch, PL_KEY_REVOKE_CHANNEL) == 0)
			relay_post_event(r, EV_REVOKE, 0, 0, 0, 0,
					 rep->element[2]->str, rep->element[2]->len);
		else if (pl_event_channel_user(ch, &user_id) == 0)
			user_event(r, user_id, rep->element[2]->str,
				   rep->element[2]->len);
	}
}

/* Writes what is queued. Returns -1 when the connection broke. */
static int flush_out(redisContext *c)
{
	int done = 0;

	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return -1;
	return 0;
}

/* The bus thread's connection and what it holds. */
struct bus {
	struct relay *r;
	struct subs subs;
	redisContext *c;	/* NULL while disconnected */
	long delay_ms;		/* backoff before the next connect */
	int was_down;		/* since the last EV_RESUBSCRIBED */
	redisContext *pub;	/* the probe's, blocking; NULL while down */
	size_t sub_turn, pub_turn;	/* the cluster nodes of c and pub */
	char probe_ch[192];
	long long probe_sent_ms;	/* when the last probe went out */
	long long probe_pending_ms;	/* oldest probe not back yet, or 0 */
};

static void bus_lost(struct bus *b)
{
	redisFree(b->c);
	b->c = NULL;
	b->was_down = 1;
}

/*
 * Connects and subscribes to the revocation channel and every channel held.
 * Returns 0, or -1 after waiting out the backoff when Redis is down.
 */
static int bus_up(struct bus *b)
{
	struct relay *r = b->r;

	b->c = bus_connect(r, 0, &b->sub_turn);
	if (!b->c) {
		if (!b->was_down)
			pl_log(PL_LOG_ERR, "bus: cannot connect to redis at "
			       "'%s'", r->cfg->redis_cluster[0] ?
			       r->cfg->redis_cluster : r->cfg->redis_host);
		b->was_down = 1;
		/* Requests still update the set while down. */
		take_requests(r, NULL, &b->subs);
		poll(NULL, 0, (int)b->delay_ms);
		b->delay_ms = b->delay_ms * 2 > 2000 ? 2000 : b->delay_ms * 2;
		return -1;
	}
	b->delay_ms = 100;
	b->probe_pending_ms = 0;
	/* The probe goes through another node, across the cluster. */
	b->pub_turn = b->sub_turn + 1;
	redisAppendCommand(b->c, "SUBSCRIBE " PL_KEY_REVOKE_CHANNEL);
	redisAppendCommand(b->c, "SUBSCRIBE %s", b->probe_ch);
	for (size_t i = 0; i < b->subs.n; i++)
		append_sub(b->c, "SUBSCRIBE", b->subs.ids[i]);
	if (b->was_down) {
		pl_log(PL_LOG_INFO, "bus: reconnected to redis, %zu channels",
		       b->subs.n);
		/* Once these subscriptions hold, sockets re-read. */
		redisAppendCommand(b->c, "PING");
	}
	return 0;
}

/* Whether rep is a probe of this relay's coming back. */
static int is_probe(const struct bus *b, const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	       rep->element[0]->str && strcmp(rep->element[0]->str, "message") == 0 &&
	       rep->element[1]->str && strcmp(rep->element[1]->str, b->probe_ch) == 0;
}

/*
 * Publishes a probe when one is due, and gives up on a subscription whose
 * probe has not come back in time. Connected only.
 */
static void probe(struct bus *b)
{
	long long now = pl_clock_mono_ms();
	redisReply *rep;

	if (b->probe_pending_ms && now - b->probe_pending_ms > PROBE_TIMEOUT_MS) {
		pl_log(PL_LOG_WARN, "bus: probe not back within %d ms: "
		       "subscribing again", PROBE_TIMEOUT_MS);
		bus_lost(b);
		return;
	}
	if (now - b->probe_sent_ms < PROBE_EVERY_MS)
		return;
	b->probe_sent_ms = now;
	/* No probe can go out: as good as one not coming back. */
	if (!b->probe_pending_ms)
		b->probe_pending_ms = now;
	if (b->pub && b->r->cfg->redis_cluster[0] && !cluster_ok(b->pub)) {
		redisFree(b->pub);
		b->pub = NULL;
		b->pub_turn++;
	}
	if (!b->pub)
		b->pub = bus_connect(b->r, 1, &b->pub_turn);
	if (!b->pub)
		return;
	rep = redisCommand(b->pub, "PUBLISH %s %lld", b->probe_ch, now);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		redisFree(b->pub);
		b->pub = NULL;
		b->pub_turn++;
	}
	if (rep)
		freeReplyObject(rep);
}

/* Whether rep is the answer to the PING after a reconnect. */
static int is_pong(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
	       rep->element[0]->str && strcmp(rep->element[0]->str, "pong") == 0;
}

/* Hands every complete reply read to the service thread. */
static void bus_replies(struct bus *b)
{
	for (;;) {
		void *rep = NULL;

		if (redisGetReplyFromReader(b->c, &rep) != REDIS_OK || !rep)
			return;
		/* A refused SUBSCRIBE: start over rather than miss events. */
		if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) {
			pl_log(PL_LOG_WARN, "bus: redis refused a command: %s",
			       ((redisReply *)rep)->str);
			freeReplyObject(rep);
			bus_lost(b);
			return;
		}
		if (is_probe(b, rep)) {
			b->probe_pending_ms = 0;
			atomic_store(&b->r->redis_seen_ms, pl_clock_mono_ms());
		} else if (is_pong(rep)) {
			/* The PING after a reconnect: every channel is back. */
			b->was_down = 0;
			relay_post_event(b->r, EV_RESUBSCRIBED, 0, 0, 0, 0, NULL, 0);
		} else {
			dispatch(b->r, rep);
		}
		freeReplyObject(rep);
	}
}

static void *bus_main(void *arg)
{
	struct bus b = { .r = arg, .delay_ms = 100 };
	struct relay *r = b.r;

	/* Relays start on different nodes of a cluster. */
	b.sub_turn = (size_t)getpid();
	snprintf(b.probe_ch, sizeof(b.probe_ch), PL_KEY_PROBE_CHANNEL_FMT, r->id);
	while (!r->bus_stop) {
		struct pollfd fds[2];
		int n;

		if (!b.c && bus_up(&b))
			continue;
		take_requests(r, b.c, &b.subs);
		probe(&b);
		if (!b.c)
			continue;
		if (flush_out(b.c)) {
			bus_lost(&b);
			continue;
		}
		fds[0] = (struct pollfd){ .fd = b.c->fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = r->bus_wake_fd, .events = POLLIN };
		n = poll(fds, 2, 1000);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0 || !(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (redisBufferRead(b.c) != REDIS_OK) {
			pl_log(PL_LOG_WARN, "bus: lost redis: %s", b.c->errstr);
			bus_lost(&b);
			continue;
		}
		bus_replies(&b);
	}
	if (b.c)
		redisFree(b.c);
	if (b.pub)
		redisFree(b.pub);
	free(b.subs.ids);
	return NULL;
}

int relay_bus_start(struct relay *r)
{
	r->bus_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->bus_wake_fd < 0)
		return -1;
	pthread_mutex_init(&r->bus_lock, NULL);
	/* Redis counts as seen at start: the fence waits for a first outage. */
	atomic_store(&r->redis_seen_ms, pl_clock_mono_ms());
	return pthread_create(&r->bus, NULL, bus_main, r) ? -1 : 0;
}

void relay_bus_stop(struct relay *r)
{
	uint64_t one = 1;

	r->bus_stop = 1;
	if (write(r->bus_wake_fd, &one, sizeof(one)) < 0)
		pl_log_errno(PL_LOG_WARN, "bus: cannot wake the bus thread");
	pthread_join(r->bus, NULL);
	close(r->bus_wake_fd);
	free(r->bus_cmds);
	pthread_mutex_destroy(&r->bus_lock);
}

void relay_bus_request(struct relay *r, long long user_id, int subscribe)
{
	uint64_t one = 1;
	long long *cmds;

	pthread_mutex_lock(&r->bus_lock);
	cmds = pl_array_grow(r->bus_cmds, &r->bus_cap, r->bus_ncmds,
			     sizeof(*cmds), 64);
	if (!cmds) {
		pthread_mutex_unlock(&r->bus_lock);
		return;
	}
	r->bus_cmds = cmds;
	r->bus_cmds[r->bus_ncmds++] = subscribe ? user_id : -user_id;
	pthread_mutex_unlock(&r->bus_lock);
	if (write(r->bus_wake_fd, &one, sizeof(one)) < 0)
		pl_log_errno(PL_LOG_WARN, "bus: cannot wake the bus thread");
}
