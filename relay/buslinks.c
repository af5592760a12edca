#include "buslinks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "clock.h"
#include "event.h"
#include "keys.h"
#include "relay.h"
#include "banned.h"

int bus_subs_find(const struct subs *s, long long id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return (int)i;
	return -1;
}

void bus_subs_add(struct subs *s, long long id)
{
	long long *ids;
	unsigned char *link;

	if (bus_subs_find(s, id) >= 0)
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

void bus_subs_remove(struct subs *s, int i)
{
	s->ids[i] = s->ids[--s->n];
	s->link[i] = s->link[s->n];
}

/* The verbs and reply kinds of the bus's pub/sub flavour. */
const char *bus_verb_sub(const struct bus *b)
{
	return b->cluster ? "SSUBSCRIBE" : "SUBSCRIBE";
}

const char *bus_verb_unsub(const struct bus *b)
{
	return b->cluster ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
}

/* Whether the cluster node c serves: CLUSTER INFO says cluster_state:ok. */
int bus_cluster_ok(redisContext *c)
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
redisContext *bus_connect_one(const struct pl_config *cfg, const char *host,
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
	    (cluster && !bus_cluster_ok(c))) {
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

void bus_append_sub(redisContext *c, const char *verb, long long id)
{
	char ch[PL_EVENT_CHANNEL_BYTES];

	redisAppendCommand(c, "%s %s", verb, pl_event_channel(ch, id));
}

void bus_link_close(struct link *l)
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
void bus_link_unsubscribe(struct bus *b, struct link *l, long long id)
{
	long long *unsub = pl_array_grow(l->unsub, &l->unsub_cap, l->nunsub,
					 sizeof(*unsub), 16);

	if (unsub) {
		l->unsub = unsub;
		l->unsub[l->nunsub++] = id;
	}
	bus_append_sub(l->c, bus_verb_unsub(b), id);
}

/* Whether link l asked to give up id's channel (forgotten once confirmed). */
int bus_link_asked_unsubscribe(struct link *l, long long id)
{
	for (size_t i = 0; i < l->nunsub; i++)
		if (l->unsub[i] == id) {
			l->unsub[i] = l->unsub[--l->nunsub];
			return 1;
		}
	return 0;
}

/* The link of master host:port, added if new; -1 when the table is full. */
int bus_link_of(struct bus *b, const char *host, int port)
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
			b->links[i].seen_ms = pl_clock_mono_ms();
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
	b->links[b->nlinks].seen_ms = pl_clock_mono_ms();
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
		l = bus_link_of(b, host, (int)m->element[1]->integer);
		for (long long s = e->element[0]->integer;
		     l >= 0 && s <= e->element[1]->integer && s < PL_SLOTS; s++)
			if (s >= 0)
				b->owner[s] = (unsigned char)l;
	}
	/* A master no more: its channels move with the map. */
	for (size_t i = 0; i < b->nlinks; i++)
		if (b->links[i].dead && b->links[i].c) {
			bus_link_close(&b->links[i]);
			b->links[i].was_down = 1;
		}
}

/*
 * After a new map: a channel whose slot moved to a master whose link is
 * up is subscribed there, and that link's sockets re-read once it holds.
 * (A link that is down subscribes to all its channels when it comes up.)
 */
void bus_follow_moves(struct bus *b)
{
	int moved[MAX_LINKS] = { 0 };

	for (size_t i = 0; i < b->subs.n; i++) {
		unsigned char l = bus_owner_of(b, b->subs.ids[i]);

		if (l == b->subs.link[i])
			continue;
		b->subs.link[i] = l;
		if (l != NO_LINK && b->links[l].c) {
			bus_append_sub(b->links[l].c, "SSUBSCRIBE", b->subs.ids[i]);
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
int bus_map(struct bus *b)
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
		c = bus_connect_one(cfg, host, port, 1, 1);
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
			bus_follow_moves(b);
			return 0;
		}
	}
	return -1;
}

/* The link a user's channel belongs on (NO_LINK: no master known). */
unsigned char bus_owner_of(const struct bus *b, long long id)
{
	char ch[PL_EVENT_CHANNEL_BYTES];

	if (!b->cluster)
		return 0;
	pl_event_channel(ch, id);
	return b->owner[pl_slot(ch, strlen(ch))];
}

/* Names a probe channel of the relay's that lies in link l's slots. */
void bus_probe_channel(struct bus *b, size_t l)
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
 * A subscription answered "MOVED <slot> <host>:<port>": the map was stale
 * for that slot. Its channels go to the master named (a new link if
 * need be). Returns 0, or -1 when the reply is no MOVED.
 */
int bus_moved(struct bus *b, const char *err)
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
	l = bus_link_of(b, host, (int)port);
	if (l < 0)
		return -1;
	b->owner[slot] = (unsigned char)l;
	bus_follow_moves(b);
	return 0;
}

