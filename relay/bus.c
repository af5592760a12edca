/*
 * bus: the relay's Redis pub/sub connections, on their own thread.
 *
 * The service thread asks for a user's channel (parley:u:{id}) when the
 * user's first socket authenticates and gives it up with the last one; the
 * bus subscribes and reports the confirmation (EV_SUBSCRIBED), so a socket
 * is welcomed only once no event for it can be missed. Everything that
 * arrives is posted to the service thread.
 *
 * The bus holds one subscription connection, a link, per Redis master: on
 * one Redis a single link with classic SUBSCRIBE; on a Redis Cluster one
 * link per master with sharded SSUBSCRIBE, each channel on the master of
 * its slot, where lib/publish.c's SPUBLISH sends it (doc/scale-out.md
 * "Pub/sub": a classic publish would cross to every node of the cluster).
 * The revocation channel stays classic, on the first link.
 *
 * A link that breaks, or whose channels a slot move or a failover took
 * away (an unsolicited sunsubscribe), reads the slot map again, connects
 * with backoff to the slots' master, subscribes again to every channel it
 * now holds, and once Redis confirms posts EV_RESUBSCRIBED so the sockets
 * of its users re-read their inboxes (every socket, for the first link,
 * which carries the revocations): events published meanwhile are found
 * there (doc/architecture.md step 5). The other links are not touched.
 *
 * A connection can look alive and be dead: a host cut off by a partition
 * sends no reset. So every second each link publishes a probe to a channel
 * of its own master, on a second connection, and must see it come back: a
 * probe not back within PROBE_TIMEOUT_MS drops the link and subscribes
 * anew. When a probe last came back on any link is r->redis_seen_ms, on
 * which the relay fences itself (registration.c).
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
#include "slot.h"
#include "banned.h"

#define PROBE_EVERY_MS 1000
#define PROBE_TIMEOUT_MS 3000
/* The most masters a cluster may have for this relay. */
#define MAX_LINKS 32
#define NO_LINK 255

/* The channels the bus holds: user ids, and the link each is on. */
struct subs {
	long long *ids;
	unsigned char *link;
	size_t n, cap, link_cap;
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
	unsigned char *link;

	if (subs_find(s, id) >= 0)
		return;
	ids = pl_array_grow(s->ids, &s->cap, s->n, sizeof(*ids), 256);
	if (!ids)
		return;
	s->ids = ids;
	link = pl_array_grow(s->link, &s->link_cap, s->n, sizeof(*link), 256);
	if (!link)
		return;
	s->link = link;
	s->ids[s->n] = id;
	s->link[s->n++] = NO_LINK;
}

static void subs_remove(struct subs *s, int i)
{
	s->ids[i] = s->ids[--s->n];
	s->link[i] = s->link[s->n];
}

/* One master's subscriptions. */
struct link {
	char host[PL_CONFIG_HOST_MAX];
	int port;
	redisContext *c;	/* subscriptions, non-blocking; NULL while down */
	redisContext *pub;	/* the probe's, blocking; NULL while down */
	char probe_ch[192];	/* a channel in this master's slots */
	long long probe_sent_ms;	/* when the last probe went out */
	long long probe_pending_ms;	/* oldest probe not back yet, or 0 */
	long long retry_ms;	/* after a failed connect: not before then */
	long long up_ms;	/* when it last connected */
	long delay_ms;		/* backoff before the next connect */
	int was_down;		/* since its last EV_RESUBSCRIBED */
	int dead;		/* no longer a master: closed, to be dropped */
	/* Channels this link was asked to give up and has not confirmed: a
	 * sunsubscribe for any other is the master's own doing. */
	long long *unsub;
	size_t nunsub, unsub_cap;
};

/* The bus thread's links and what they hold. */
struct bus {
	struct relay *r;
	int cluster;		/* sharded commands, one link per master */
	struct subs subs;
	struct link links[MAX_LINKS];
	size_t nlinks;
	unsigned char owner[PL_SLOTS];	/* cluster: link per slot */
	int map_stale;		/* read the slot map before the next connect */
	int mapped;		/* a map was read: later links take over channels */
	size_t seed;		/* the cluster node to ask for the map first */
};

/* The verbs and reply kinds of the bus's pub/sub flavour. */
static const char *verb_sub(const struct bus *b)
{
	return b->cluster ? "SSUBSCRIBE" : "SUBSCRIBE";
}

static const char *verb_unsub(const struct bus *b)
{
	return b->cluster ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
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
 * Connects to one Redis once it answers PING (a restarting Redis accepts
 * connections while it loads its data and answers -LOADING until ready)
 * and, a cluster's node, once its cluster serves (a master cut off from
 * the majority reports "fail" after the node timeout, while the majority
 * hands its slots to a replica). Keeps the [redis] timeout_ms on every
 * reply if blocking, else none (reads then happen only when poll() says
 * so).
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

static void append_sub(redisContext *c, const char *verb, long long id)
{
	char ch[PL_EVENT_CHANNEL_BYTES];

	redisAppendCommand(c, "%s %s", verb, pl_event_channel(ch, id));
}

static void link_close(struct link *l)
{
	if (l->c)
		redisFree(l->c);
	if (l->pub)
		redisFree(l->pub);
	l->c = l->pub = NULL;
	l->probe_pending_ms = 0;
	l->nunsub = 0;		/* a new connection holds none of them */
}

/* Gives up user id's channel on link l, remembering it was asked. */
static void link_unsubscribe(struct bus *b, struct link *l, long long id)
{
	long long *unsub = pl_array_grow(l->unsub, &l->unsub_cap, l->nunsub,
					 sizeof(*unsub), 16);

	if (unsub) {
		l->unsub = unsub;
		l->unsub[l->nunsub++] = id;
	}
	append_sub(l->c, verb_unsub(b), id);
}

/* Whether link l asked to give up id's channel (forgotten once confirmed). */
static int link_asked_unsubscribe(struct link *l, long long id)
{
	for (size_t i = 0; i < l->nunsub; i++)
		if (l->unsub[i] == id) {
			l->unsub[i] = l->unsub[--l->nunsub];
			return 1;
		}
	return 0;
}

/* The link of master host:port, added if new; -1 when the table is full. */
static int link_of(struct bus *b, const char *host, int port)
{
	for (size_t i = 0; i < b->nlinks; i++)
		if (b->links[i].port == port && strcmp(b->links[i].host, host) == 0) {
			b->links[i].dead = 0;
			return (int)i;
		}
	for (size_t i = 0; i < b->nlinks; i++)
		if (b->links[i].dead && !b->links[i].c) {
			free(b->links[i].unsub);
			memset(&b->links[i], 0, sizeof(b->links[i]));
			snprintf(b->links[i].host, sizeof(b->links[i].host), "%s", host);
			b->links[i].port = port;
			b->links[i].delay_ms = 100;
			/* Its channels may have missed events meanwhile. */
			b->links[i].was_down = b->mapped;
			return (int)i;
		}
	if (b->nlinks == MAX_LINKS)
		return -1;
	memset(&b->links[b->nlinks], 0, sizeof(b->links[0]));
	snprintf(b->links[b->nlinks].host, sizeof(b->links[0].host), "%s", host);
	b->links[b->nlinks].port = port;
	b->links[b->nlinks].delay_ms = 100;
	b->links[b->nlinks].was_down = b->mapped;
	return (int)b->nlinks++;
}

/* Reads one CLUSTER SLOTS reply into the links and the slot owners. */
static void read_map(struct bus *b, const redisReply *rep, const char *asked)
{
	for (size_t i = 0; i < b->nlinks; i++)
		b->links[i].dead = 1;
	memset(b->owner, NO_LINK, sizeof(b->owner));
	for (size_t k = 0; k < rep->elements; k++) {
		const redisReply *e = rep->element[k], *m;
		char host[PL_CONFIG_HOST_MAX];
		int l;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[2]->type != REDIS_REPLY_ARRAY ||
		    e->element[2]->elements < 2)
			continue;
		m = e->element[2];
		snprintf(host, sizeof(host), "%s", m->element[0]->str &&
			 m->element[0]->len ? m->element[0]->str : asked);
		l = link_of(b, host, (int)m->element[1]->integer);
		for (long long s = e->element[0]->integer;
		     l >= 0 && s <= e->element[1]->integer && s < PL_SLOTS; s++)
			if (s >= 0)
				b->owner[s] = (unsigned char)l;
	}
	/* A master no more: its channels move with the map. */
	for (size_t i = 0; i < b->nlinks; i++)
		if (b->links[i].dead && b->links[i].c) {
			link_close(&b->links[i]);
			b->links[i].was_down = 1;
		}
}

static unsigned char owner_of(const struct bus *b, long long id);

/*
 * After a new map: a channel whose slot moved to a master whose link is
 * up is subscribed there, and that link's sockets re-read once it holds.
 * (A link that is down subscribes to all its channels when it comes up.)
 */
static void follow_moves(struct bus *b)
{
	int moved[MAX_LINKS] = { 0 };

	for (size_t i = 0; i < b->subs.n; i++) {
		unsigned char l = owner_of(b, b->subs.ids[i]);

		if (l == b->subs.link[i])
			continue;
		b->subs.link[i] = l;
		if (l != NO_LINK && b->links[l].c) {
			append_sub(b->links[l].c, "SSUBSCRIBE", b->subs.ids[i]);
			moved[l] = 1;
		}
	}
	for (size_t l = 0; l < b->nlinks; l++)
		if (moved[l]) {
			b->links[l].was_down = 1;
			redisAppendCommand(b->links[l].c, "PING");
		}
}

/*
 * Reads the slot map from the first node of [redis] cluster that answers.
 * Returns 0, or -1 when none does.
 */
static int bus_map(struct bus *b)
{
	const struct pl_config *cfg = b->r->cfg;
	size_t n = pl_config_redis_nodes(cfg);

	for (size_t k = 0; k < n; k++) {
		char host[PL_CONFIG_HOST_MAX];
		size_t i = (b->seed + k) % n;
		redisContext *c;
		redisReply *rep;
		int port;

		if (pl_config_redis_node(cfg, i, host, sizeof(host), &port))
			continue;
		c = connect_one(cfg, host, port, 1, 1);
		rep = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
		if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
			read_map(b, rep, host);
			b->seed = i;
			b->map_stale = 0;
			b->mapped = 1;
		}
		if (rep)
			freeReplyObject(rep);
		if (c)
			redisFree(c);
		if (!b->map_stale) {
			follow_moves(b);
			return 0;
		}
	}
	return -1;
}

/* The link a user's channel belongs on (NO_LINK: no master known). */
static unsigned char owner_of(const struct bus *b, long long id)
{
	char ch[PL_EVENT_CHANNEL_BYTES];

	if (!b->cluster)
		return 0;
	pl_event_channel(ch, id);
	return b->owner[pl_slot(ch, strlen(ch))];
}

/* Names a probe channel of the relay's that lies in link l's slots. */
static void probe_channel(struct bus *b, size_t l)
{
	struct link *k = &b->links[l];

	for (int n = 0; n < 4096; n++) {
		snprintf(k->probe_ch, sizeof(k->probe_ch), PL_KEY_PROBE_CHANNEL_FMT
			 ":{%d}", b->r->id, n);
		if (!b->cluster || b->owner[pl_slot(k->probe_ch,
						    strlen(k->probe_ch))] == l)
			return;
	}
}

/*
 * Connects link l and subscribes to everything it holds: its probe, every
 * channel whose slot it owns, the revocation channel on the first link.
 * Returns 0, or -1 (the link waits out its backoff).
 */
static int link_up(struct bus *b, size_t l)
{
	struct link *k = &b->links[l];
	long long now = pl_clock_mono_ms();

	if (now < k->retry_ms)
		return -1;
	k->c = connect_one(b->r->cfg, k->host, k->port, b->cluster, 0);
	if (!k->c) {
		if (!k->was_down)
			pl_log(PL_LOG_ERR, "bus: cannot connect to redis at "
			       "'%s:%d'", k->host, k->port);
		k->was_down = 1;
		k->retry_ms = now + k->delay_ms;
		k->delay_ms = k->delay_ms * 2 > 2000 ? 2000 : k->delay_ms * 2;
		b->map_stale = b->cluster;
		return -1;
	}
	k->up_ms = now;
	k->probe_pending_ms = 0;
	probe_channel(b, l);
	if (l == 0)
		redisAppendCommand(k->c, "SUBSCRIBE " PL_KEY_REVOKE_CHANNEL);
	redisAppendCommand(k->c, "%s %s", verb_sub(b), k->probe_ch);
	/* Others keep their link: follow_moves() moves them. */
	for (size_t i = 0; i < b->subs.n; i++)
		if (owner_of(b, b->subs.ids[i]) == l) {
			b->subs.link[i] = (unsigned char)l;
			append_sub(k->c, verb_sub(b), b->subs.ids[i]);
		}
	if (k->was_down) {
		pl_log(PL_LOG_INFO, "bus: subscribed again at '%s:%d'", k->host,
		       k->port);
		/* Once these subscriptions hold, sockets re-read. */
		redisAppendCommand(k->c, "PING");
	}
	return 0;
}

/*
 * A link that broke: closed, to come up again from a fresh map. One that
 * breaks soon after it came up waits, longer each time, so a node that
 * keeps refusing is not hammered.
 */
static void link_lost(struct bus *b, struct link *k)
{
	long long now = pl_clock_mono_ms();

	link_close(k);
	k->was_down = 1;
	b->map_stale = b->cluster;
	if (now - k->up_ms >= 5000) {
		k->delay_ms = 100;
		return;
	}
	k->retry_ms = now + k->delay_ms;
	k->delay_ms = k->delay_ms * 2 > 2000 ? 2000 : k->delay_ms * 2;
}

/* Takes the service thread's requests and queues the commands. */
static void take_requests(struct bus *b)
{
	struct relay *r = b->r;
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
		int at = subs_find(&b->subs, id);
		unsigned char l;

		if (cmds[i] > 0 && at < 0) {
			subs_add(&b->subs, id);
			at = subs_find(&b->subs, id);
			l = owner_of(b, id);
			if (at < 0 || l == NO_LINK)
				continue;	/* subscribed once the link is up */
			b->subs.link[at] = l;
			if (b->links[l].c)
				append_sub(b->links[l].c, verb_sub(b), id);
		} else if (cmds[i] < 0 && at >= 0) {
			l = b->subs.link[at];
			if (l != NO_LINK && l < b->nlinks && b->links[l].c)
				link_unsubscribe(b, &b->links[l], id);
			subs_remove(&b->subs, at);
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

/*
 * A sunsubscribe on link k: the confirmation of our own request, or a
 * channel the master dropped by itself (its slot moved, or it became a
 * replica). Such a channel is subscribed again where the fresh map puts
 * it (follow_moves()), and that link's users re-read.
 */
static void lost_channel(struct bus *b, struct link *k, long long user_id)
{
	int at;

	if (link_asked_unsubscribe(k, user_id))
		return;
	at = subs_find(&b->subs, user_id);
	/* Not ours any more, or already moved elsewhere. */
	if (at < 0 || b->subs.link[at] != (unsigned char)(k - b->links))
		return;
	pl_log(PL_LOG_INFO, "bus: '%s:%d' dropped user %lld's channel: "
	       "subscribing again", k->host, k->port, user_id);
	b->subs.link[at] = NO_LINK;
	b->map_stale = 1;
}

/* Hands one pub/sub reply of link k to the service thread. */
static void dispatch(struct bus *b, struct link *k, redisReply *rep)
{
	struct relay *r = b->r;
	const char *kind, *ch;
	long long user_id;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return;
	kind = rep->element[0]->str;
	ch = rep->element[1]->str;
	if ((!strcmp(kind, "subscribe") || !strcmp(kind, "ssubscribe")) &&
	    pl_event_channel_user(ch, &user_id) == 0) {
		relay_post_event(r, EV_SUBSCRIBED, 0, user_id, 0, 0, NULL, 0);
	} else if (!strcmp(kind, "sunsubscribe") &&
		   pl_event_channel_user(ch, &user_id) == 0) {
		lost_channel(b, k, user_id);
	} else if ((!strcmp(kind, "message") || !strcmp(kind, "smessage")) &&
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

/* Whether rep is a probe of link k's coming back. */
static int is_probe(const struct link *k, const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	       rep->element[0]->str && (!strcmp(rep->element[0]->str, "message") ||
					!strcmp(rep->element[0]->str, "smessage")) &&
	       rep->element[1]->str && strcmp(rep->element[1]->str, k->probe_ch) == 0;
}

/* Whether rep is the answer to the PING after a reconnect. */
static int is_pong(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
	       rep->element[0]->str && strcmp(rep->element[0]->str, "pong") == 0;
}

/*
 * When a probe last came back on any link: the relay fences itself only
 * when it has lost every master (cut off), not one master whose slots a
 * replica is taking over, nor a shard that is down for every relay alike.
 */
static void note_seen(struct bus *b, long long now)
{
	atomic_store(&b->r->redis_seen_ms, now);
}

/*
 * Publishes link k's probe when one is due, and gives up on a link whose
 * probe has not come back in time. Connected links only.
 */
static void probe(struct bus *b, struct link *k)
{
	long long now = pl_clock_mono_ms();
	redisReply *rep;

	if (k->probe_pending_ms && now - k->probe_pending_ms > PROBE_TIMEOUT_MS) {
		pl_log(PL_LOG_WARN, "bus: probe not back from '%s:%d' within "
		       "%d ms: subscribing again", k->host, k->port,
		       PROBE_TIMEOUT_MS);
		link_lost(b, k);
		return;
	}
	if (now - k->probe_sent_ms < PROBE_EVERY_MS)
		return;
	k->probe_sent_ms = now;
	/* No probe can go out: as good as one not coming back. */
	if (!k->probe_pending_ms)
		k->probe_pending_ms = now;
	/* A master cut off from its cluster is no master for long. */
	if (k->pub && b->cluster && !cluster_ok(k->pub)) {
		redisFree(k->pub);
		k->pub = NULL;
	}
	if (!k->pub)
		k->pub = connect_one(b->r->cfg, k->host, k->port, b->cluster, 1);
	if (!k->pub)
		return;
	rep = redisCommand(k->pub, "%s %s %lld", b->cluster ? "SPUBLISH" :
			   "PUBLISH", k->probe_ch, now);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		redisFree(k->pub);
		k->pub = NULL;
	}
	if (rep)
		freeReplyObject(rep);
}

/*
 * A subscription answered "MOVED <slot> <host>:<port>": the map was stale
 * for that slot. Its channels go to the master named (a new link if
 * need be). Returns 0, or -1 when the reply is no MOVED.
 */
static int moved(struct bus *b, const char *err)
{
	char host[PL_CONFIG_HOST_MAX];
	const char *colon;
	char *end;
	long slot, port;
	int l;

	if (!b->cluster || strncmp(err, "MOVED ", 6) != 0)
		return -1;
	slot = strtol(err + 6, &end, 10);
	colon = *end == ' ' ? strrchr(end + 1, ':') : NULL;
	if (!colon || slot < 0 || slot >= PL_SLOTS ||
	    (size_t)(colon - end - 1) >= sizeof(host))
		return -1;
	port = strtol(colon + 1, NULL, 10);
	memcpy(host, end + 1, (size_t)(colon - end - 1));
	host[colon - end - 1] = '\0';
	l = link_of(b, host, (int)port);
	if (l < 0)
		return -1;
	b->owner[slot] = (unsigned char)l;
	follow_moves(b);
	return 0;
}

/*
 * Link k holds its channels again, so the sockets whose events may have
 * been missed meanwhile re-read their inboxes: every socket when k is the
 * first link (it also carries the revocations, which only a session check
 * finds again), else the sockets of the users whose channels k holds.
 */
static void resubscribed(struct bus *b, struct link *k)
{
	unsigned char l = (unsigned char)(k - b->links);

	if (l == 0) {
		relay_post_event(b->r, EV_RESUBSCRIBED, 0, 0, 0, 0, NULL, 0);
		return;
	}
	for (size_t i = 0; i < b->subs.n; i++)
		if (b->subs.link[i] == l)
			relay_post_event(b->r, EV_RESUBSCRIBED, 0, b->subs.ids[i],
					 0, 0, NULL, 0);
}

/* Hands every complete reply read on link k to the service thread. */
static void link_replies(struct bus *b, struct link *k)
{
	while (k->c) {
		void *rep = NULL;

		if (redisGetReplyFromReader(k->c, &rep) != REDIS_OK || !rep)
			return;
		/* MOVED: that one channel belongs elsewhere (a stale map). */
		if (((redisReply *)rep)->type == REDIS_REPLY_ERROR &&
		    moved(b, ((redisReply *)rep)->str) == 0) {
			freeReplyObject(rep);
			continue;
		}
		/* Any other refusal: start over rather than miss events. */
		if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) {
			pl_log(PL_LOG_WARN, "bus: '%s:%d' refused a command: %s",
			       k->host, k->port, ((redisReply *)rep)->str);
			freeReplyObject(rep);
			link_lost(b, k);
			return;
		}
		if (is_probe(k, rep)) {
			k->probe_pending_ms = 0;
			note_seen(b, pl_clock_mono_ms());
		} else if (is_pong(rep)) {
			/* The PING after a reconnect: every channel is back. */
			k->was_down = 0;
			resubscribed(b, k);
		} else {
			dispatch(b, k, rep);
		}
		freeReplyObject(rep);
	}
}

/*
 * Brings up the links that are down (after reading the map when it is
 * stale) and writes what each has queued. Returns how many are up.
 */
static size_t links_up(struct bus *b)
{
	size_t up = 0;

	if (b->cluster && b->map_stale)
		bus_map(b);
	for (size_t i = 0; i < b->nlinks; i++) {
		struct link *k = &b->links[i];

		if (k->dead)
			continue;
		if (!k->c && link_up(b, i))
			continue;
		probe(b, k);
		if (k->c && flush_out(k->c)) {
			pl_log(PL_LOG_WARN, "bus: lost redis at '%s:%d'", k->host,
			       k->port);
			link_lost(b, k);
		}
		up += k->c != NULL;
	}
	return up;
}

/* Waits for replies on the links up and the wake-up, then reads them. */
static void wait_replies(struct bus *b, int timeout_ms)
{
	struct pollfd fds[MAX_LINKS + 1];
	size_t nfds = 0, at[MAX_LINKS];
	int n;

	for (size_t i = 0; i < b->nlinks; i++)
		if (b->links[i].c) {
			at[nfds] = i;
			fds[nfds++] = (struct pollfd){ .fd = b->links[i].c->fd,
						       .events = POLLIN };
		}
	fds[nfds] = (struct pollfd){ .fd = b->r->bus_wake_fd, .events = POLLIN };
	n = poll(fds, nfds + 1, timeout_ms);
	for (size_t i = 0; n > 0 && i < nfds; i++) {
		struct link *k = &b->links[at[i]];

		if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)) || !k->c)
			continue;
		if (redisBufferRead(k->c) != REDIS_OK) {
			pl_log(PL_LOG_WARN, "bus: lost redis at '%s:%d': %s",
			       k->host, k->port, k->c->errstr);
			link_lost(b, k);
			continue;
		}
		link_replies(b, k);
	}
}

/* The links at start: [redis] host, or the masters of the cluster's map. */
static void bus_init(struct bus *b)
{
	const struct pl_config *cfg = b->r->cfg;

	b->cluster = pl_config_redis_nodes(cfg) > 0;
	/* Relays ask different nodes of a cluster for the map first. */
	b->seed = (size_t)getpid();
	if (!b->cluster) {
		link_of(b, cfg->redis_host, (int)cfg->redis_port);
		return;
	}
	b->map_stale = 1;
}

static void *bus_main(void *arg)
{
	struct bus b = { .r = arg };
	struct relay *r = b.r;

	bus_init(&b);
	while (!r->bus_stop) {
		take_requests(&b);
		/* Nothing up (Redis away, or no map yet): retry shortly. */
		wait_replies(&b, links_up(&b) ? 1000 : 100);
	}
	for (size_t i = 0; i < b.nlinks; i++) {
		link_close(&b.links[i]);
		free(b.links[i].unsub);
	}
	free(b.subs.ids);
	free(b.subs.link);
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
