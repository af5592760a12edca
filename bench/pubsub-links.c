/*
 * pubsub-links: the cluster's map and the links bench/pubsub plays Parley's
 * relays and publishers over (bench/pubsub.h).
 *
 * Every link is a plain hiredis redisContext: hiredis 0.14.1's async API
 * does not route "smessage" replies, and a subscribed redisContext reads
 * "message" and "smessage" alike. Links are blocking while they are set up,
 * every call bounded by SETUP_TIMEOUT_S, then non-blocking for the poll()
 * loop in bench/pubsub.c.
 */
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "event.h"
#include "pubsub.h"
#include "banned.h"

#define SUBSCRIBE_BATCH 256		/* classic: channels per SUBSCRIBE */
#define SETUP_TIMEOUT_S 10

void pubsub_note_error(struct run *r, const char *what, const char *detail)
{
	if (!r->first_error[0])
		snprintf(r->first_error, sizeof(r->first_error), "%s: %s", what,
			 detail ? detail : "");
}

/*
 * Connects to host:port, blocking, every call bounded by SETUP_TIMEOUT_S.
 * Returns the context, or NULL after saying why on stderr.
 */
static redisContext *connect_node(const char *host, int port)
{
	struct timeval tv = { .tv_sec = SETUP_TIMEOUT_S };
	redisContext *c = redisConnectWithTimeout(host, port, tv);

	if (!c || c->err) {
		fprintf(stderr, "pubsub: cannot connect to redis at '%s:%d': %s\n",
			host, port, c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

/* Turns c non-blocking for the poll() loop. Returns 0 or -1. */
static int make_nonblocking(redisContext *c)
{
	int fl = fcntl(c->fd, F_GETFL);

	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	c->flags &= ~REDIS_BLOCK;
	return 0;
}

/* The node at host:port, added to r->node when new. Returns its index or -1. */
static int node_index(struct run *r, const char *host, size_t host_len,
		      int port, int is_master)
{
	for (int i = 0; i < r->nnodes; i++)
		if (r->node[i].port == port &&
		    strlen(r->node[i].host) == host_len &&
		    !memcmp(r->node[i].host, host, host_len))
			return i;
	if (r->nnodes == MAX_NODES || host_len >= sizeof(r->node[0].host))
		return -1;
	memcpy(r->node[r->nnodes].host, host, host_len);
	r->node[r->nnodes].host[host_len] = '\0';
	r->node[r->nnodes].port = port;
	r->node[r->nnodes].is_master = is_master;
	return r->nnodes++;
}

int pubsub_by_port(const void *a, const void *b, void *arg)
{
	const struct run *r = arg;
	int x = r->node[*(const int *)a].port, y = r->node[*(const int *)b].port;

	return (x > y) - (x < y);
}

/* One CLUSTER SLOTS range: [start, end, [host, port, id], replicas...]. */
static int slot_range(struct run *r, const redisReply *e)
{
	int m = -1, idx;

	if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
		return -1;
	for (size_t k = 2; k < e->elements; k++) {
		const redisReply *n = e->element[k];

		if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
		    n->element[0]->type != REDIS_REPLY_STRING ||
		    n->element[1]->type != REDIS_REPLY_INTEGER)
			return -1;
		idx = node_index(r, n->element[0]->str, n->element[0]->len,
				 (int)n->element[1]->integer, k == 2);
		if (idx < 0)
			return -1;
		if (k == 2)
			m = idx;
	}
	for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
		if (s >= 0 && s < SLOTS)
			r->slot_master[s] = (unsigned char)m;	/* a node index for now */
	return 0;
}

/* CLUSTER SLOTS names each range's master first: its node index goes in
 * r->slot_master until the masters are numbered in port order. */
int pubsub_cluster_map(struct run *r)
{
	redisContext *c = connect_node(r->o.seed_host, r->o.seed_port);
	redisReply *rep = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
	unsigned char of_node[MAX_NODES] = { 0 };
	int rc = -1;

	if (!c)
		return -1;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
		fprintf(stderr, "pubsub: CLUSTER SLOTS gave no map%s%s\n",
			rep && rep->type == REDIS_REPLY_ERROR ? ": " : "",
			rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "");
		goto out;
	}
	for (size_t i = 0; i < rep->elements; i++)
		if (slot_range(r, rep->element[i]))
			goto out;
	for (int i = 0; i < r->nnodes; i++)
		if (r->node[i].is_master)
			r->master[r->nmasters++] = i;
	qsort_r(r->master, (size_t)r->nmasters, sizeof(int), pubsub_by_port, r);
	for (int m = 0; m < r->nmasters; m++)
		of_node[r->master[m]] = (unsigned char)m;
	for (int s = 0; s < SLOTS; s++)
		r->slot_master[s] = of_node[r->slot_master[s]];
	rc = 0;
out:
	freeReplyObject(rep);
	redisFree(c);
	return rc;
}

/* Connects the blocking control link to every node. Returns 0 or -1. */
int pubsub_connect_controls(struct run *r)
{
	for (int i = 0; i < r->nnodes; i++) {
		r->node[i].ctl = connect_node(r->node[i].host, r->node[i].port);
		if (!r->node[i].ctl)
			return -1;
	}
	return 0;
}

/*
 * Finds each user's master: CLUSTER KEYSLOT for every channel, pipelined
 * on the first node's control link. Returns 0 or -1.
 */
int pubsub_user_masters(struct run *r)
{
	redisContext *c = r->node[r->master[0]].ctl;
	char ch[PL_EVENT_CHANNEL_BYTES];
	redisReply *rep;

	r->user_master = malloc((size_t)r->o.users);
	if (!r->user_master)
		return -1;
	for (int u = 0; u < r->o.users; u++)
		redisAppendCommand(c, "CLUSTER KEYSLOT %s", pl_event_channel(ch, u + 1));
	for (int u = 0; u < r->o.users; u++) {
		if (redisGetReply(c, (void **)&rep) != REDIS_OK)
			return -1;
		if (rep->type != REDIS_REPLY_INTEGER || rep->integer < 0 ||
		    rep->integer >= SLOTS) {
			freeReplyObject(rep);
			return -1;
		}
		r->user_master[u] = r->slot_master[rep->integer];
		freeReplyObject(rep);
	}
	return 0;
}

/* Reads n subscribe confirmations on c, blocking. Returns 0 or -1. */
static int confirmations(struct run *r, redisContext *c, long long n)
{
	redisReply *rep;

	for (long long i = 0; i < n; i++) {
		if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
			pubsub_note_error(r, "subscribe", c->errstr);
			return -1;
		}
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
			pubsub_note_error(r, "subscribe", rep->type == REDIS_REPLY_ERROR ?
					  rep->str : "unexpected reply");
			freeReplyObject(rep);
			return -1;
		}
		freeReplyObject(rep);
	}
	return 0;
}

/*
 * Relay rl subscribes in classic form: its users' channels, SUBSCRIBE_BATCH
 * a command, on its one link. Returns the confirmations to wait for.
 */
static long long subscribe_classic(struct run *r, int rl)
{
	const char *argv[SUBSCRIBE_BATCH + 1] = { "SUBSCRIBE" };
	char names[SUBSCRIBE_BATCH][PL_EVENT_CHANNEL_BYTES];
	redisContext *c = r->sub[rl].c;
	long long n = 0;
	int argc = 1;

	for (int u = rl; u < r->o.users; u += r->o.relays) {
		argv[argc] = pl_event_channel(names[argc - 1], u + 1);
		argc++;
		if (argc == SUBSCRIBE_BATCH + 1 || u + r->o.relays >= r->o.users) {
			redisAppendCommandArgv(c, argc, argv, NULL);
			n += argc - 1;
			argc = 1;
		}
	}
	return n;
}

/*
 * Connects every relay's links (one, or one per master) and subscribes
 * each relay's users, waiting for every confirmation; the links are then
 * non-blocking. Returns 0 or -1.
 */
int pubsub_subscribe_relays(struct run *r)
{
	char ch[PL_EVENT_CHANNEL_BYTES];
	long long *want;
	int sharded = r->o.mode == MODE_SHARDED;

	r->subs_per_relay = sharded ? r->nmasters : 1;
	r->nsub = r->o.relays * r->subs_per_relay;
	r->sub = calloc((size_t)r->nsub, sizeof(*r->sub));
	want = calloc((size_t)r->nsub, sizeof(*want));
	if (!r->sub || !want)
		return -1;
	for (int i = 0; i < r->nsub; i++) {
		/* Sharded: link i is relay i / masters's link to master i % masters;
		 * classic: relay i's one link, to master i (in turn). */
		struct node *nd = &r->node[r->master[i % r->nmasters]];

		r->sub[i].relay = sharded ? i / r->nmasters : i;
		r->sub[i].c = connect_node(nd->host, nd->port);
		if (!r->sub[i].c)
			return -1;
	}
	for (int u = 0; u < r->o.users && sharded; u++) {
		int i = (u % r->o.relays) * r->nmasters + r->user_master[u];

		redisAppendCommand(r->sub[i].c, "SSUBSCRIBE %s", pl_event_channel(ch, u + 1));
		want[i]++;
	}
	for (int rl = 0; rl < r->o.relays && !sharded; rl++)
		want[rl] = subscribe_classic(r, rl);
	for (int i = 0; i < r->nsub; i++)
		if (confirmations(r, r->sub[i].c, want[i]) ||
		    make_nonblocking(r->sub[i].c)) {
			free(want);
			return -1;
		}
	free(want);
	return 0;
}

/* Connects every publisher's link to every master, non-blocking. Returns 0 or -1. */
int pubsub_connect_publishers(struct run *r)
{
	r->npub = r->o.publishers * r->nmasters;
	r->pub = calloc((size_t)r->npub, sizeof(*r->pub));
	if (!r->pub)
		return -1;
	for (int i = 0; i < r->npub; i++) {
		struct node *nd = &r->node[r->master[i % r->nmasters]];

		r->pub[i].relay = -1;
		r->pub[i].c = connect_node(nd->host, nd->port);
		if (!r->pub[i].c || make_nonblocking(r->pub[i].c))
			return -1;
	}
	return 0;
}

/* The number after "\r\nname:" (or at the start) in INFO text, or -1. */
static double info_field(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, name, n) && p[n] == ':')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

/* INFO section on node nd: the fields a and b added (b may be NULL). */
double pubsub_node_info(struct node *nd, const char *section, const char *a,
			const char *b)
{
	redisReply *rep = redisCommand(nd->ctl, "INFO %s", section);
	double v = -1;

	if (rep && rep->type == REDIS_REPLY_STRING)
		v = info_field(rep->str, a) + (b ? info_field(rep->str, b) : 0);
	freeReplyObject(rep);
	return v;
}
