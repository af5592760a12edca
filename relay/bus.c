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
 * anew. When a majority of the links last had their probe back is
 * r->redis_seen_ms, on which the relay fences itself (registration.c).
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
#include "buslinks.h"
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
	k->c = bus_connect_one(b->r->cfg, k->host, k->port, b->cluster, 0);
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
	bus_probe_channel(b, l);
	if (l == 0)
		redisAppendCommand(k->c, "SUBSCRIBE " PL_KEY_REVOKE_CHANNEL);
	redisAppendCommand(k->c, "%s %s", bus_verb_sub(b), k->probe_ch);
	/* Others keep their link: bus_follow_moves() moves them. */
	for (size_t i = 0; i < b->subs.n; i++)
		if (bus_owner_of(b, b->subs.ids[i]) == l) {
			b->subs.link[i] = (unsigned char)l;
			bus_append_sub(k->c, bus_verb_sub(b), b->subs.ids[i]);
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

	bus_link_close(k);
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
		int at = bus_subs_find(&b->subs, id);
		unsigned char l;

		if (cmds[i] > 0 && at < 0) {
			bus_subs_add(&b->subs, id);
			at = bus_subs_find(&b->subs, id);
			l = bus_owner_of(b, id);
			if (at < 0 || l == NO_LINK)
				continue;	/* subscribed once the link is up */
			b->subs.link[at] = l;
			if (b->links[l].c)
				bus_append_sub(b->links[l].c, bus_verb_sub(b), id);
		} else if (cmds[i] < 0 && at >= 0) {
			l = b->subs.link[at];
			if (l != NO_LINK && l < b->nlinks && b->links[l].c)
				bus_link_unsubscribe(b, &b->links[l], id);
			bus_subs_remove(&b->subs, at);
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
 * it (bus_follow_moves()), and that link's users re-read.
 */
static void lost_channel(struct bus *b, struct link *k, long long user_id)
{
	int at;

	if (bus_link_asked_unsubscribe(k, user_id))
		return;
	at = bus_subs_find(&b->subs, user_id);
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
 * When Redis was last there for the relay: the newest time by which a
 * majority of the links had their probe back (the one link's, on one
 * Redis). The relay fences itself when that is too long ago: cut off from
 * most masters (a partition), not when one master is failing over or one
 * shard is down for every relay alike, where moving clients would not help.
 */
static void note_seen(struct bus *b)
{
	long long seen[MAX_LINKS], t;
	size_t n = 0;

	for (size_t i = 0; i < b->nlinks; i++)
		if (!b->links[i].dead)
			seen[n++] = b->links[i].seen_ms;
	if (n == 0)
		return;
	/* Newest first; the majority's is at n / 2. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && seen[j] > seen[j - 1]; j--) {
			t = seen[j];
			seen[j] = seen[j - 1];
			seen[j - 1] = t;
		}
	atomic_store(&b->r->redis_seen_ms, seen[n / 2]);
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
	if (k->pub && b->cluster && !bus_cluster_ok(k->pub)) {
		redisFree(k->pub);
		k->pub = NULL;
	}
	if (!k->pub)
		k->pub = bus_connect_one(b->r->cfg, k->host, k->port, b->cluster, 1);
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
		    bus_moved(b, ((redisReply *)rep)->str) == 0) {
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
			k->seen_ms = pl_clock_mono_ms();
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
	note_seen(b);
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
		bus_link_of(b, cfg->redis_host, (int)cfg->redis_port);
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
		bus_link_close(&b.links[i]);
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
