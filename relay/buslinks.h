/*
 * buslinks: the relay bus's links, one subscription connection per Redis
 * master (one on one Redis), the slot map that says which link holds which
 * user's channel, and the set of channels held (bus.c runs them on the bus
 * thread; only that thread touches any of this).
 */
#ifndef RELAY_BUSLINKS_H
#define RELAY_BUSLINKS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "slot.h"

struct relay;

/* The most masters a cluster may have for this relay. */
#define MAX_LINKS 32
#define NO_LINK 255

/* The channels the bus holds: user ids, and the link each is on. */
struct subs {
	long long *ids;
	unsigned char *link;
	size_t n, cap, link_cap;
};

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
	long long seen_ms;	/* when its probe last came back */
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

int bus_subs_find(const struct subs *s, long long id);
void bus_subs_add(struct subs *s, long long id);
void bus_subs_remove(struct subs *s, int i);

/* The verbs of the bus's pub/sub flavour: sharded on a cluster. */
const char *bus_verb_sub(const struct bus *b);
const char *bus_verb_unsub(const struct bus *b);

/* Whether the cluster node c serves: CLUSTER INFO says cluster_state:ok. */
int bus_cluster_ok(redisContext *c);

/*
 * A connection to one Redis that answers PING (and, with cluster, whose
 * cluster serves), blocking (replies within [redis] timeout_ms) or not.
 * NULL when there is none.
 */
redisContext *bus_connect_one(const struct pl_config *cfg, const char *host,
			      int port, int cluster, int blocking);

/* Queues "VERB parley:u:<id>" on c. */
void bus_append_sub(redisContext *c, const char *verb, long long id);

/* Closes link l's connections; it forgets its pending unsubscribes. */
void bus_link_close(struct link *l);

/* Gives up user id's channel on link l (connected), remembering it asked. */
void bus_link_unsubscribe(struct bus *b, struct link *l, long long id);

/* Whether link l asked to give up id's channel (forgotten once confirmed). */
int bus_link_asked_unsubscribe(struct link *l, long long id);

/* The link of master host:port, added if new; -1 when the table is full. */
int bus_link_of(struct bus *b, const char *host, int port);

/*
 * Reads the slot map from the first node of [redis] cluster that answers
 * and moves the channels whose slot moved (bus_follow_moves()). Returns 0,
 * or -1 when no node answers.
 */
int bus_map(struct bus *b);

/*
 * After a new map: a channel whose slot moved to a master whose link is up
 * is subscribed there, and that link's users re-read once it holds.
 */
void bus_follow_moves(struct bus *b);

/* The link a user's channel belongs on (NO_LINK: no master known). */
unsigned char bus_owner_of(const struct bus *b, long long id);

/* Names link l's probe channel: the relay's, in l's master's slots. */
void bus_probe_channel(struct bus *b, size_t l);

/*
 * A subscription answered "MOVED <slot> <host>:<port>": its channels go to
 * the master named. Returns 0, or -1 when err is no MOVED.
 */
int bus_moved(struct bus *b, const char *err);

#endif
