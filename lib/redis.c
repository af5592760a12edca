#include "redis.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "array.h"
#include "clock.h"
#include "log.h"
#include "slot.h"
#include "banned.h"

/* After a failed connect a node is left alone this long. */
#define NODE_RETRY_MS 1000
/* Redirections one command may follow before it is given up. */
#define MAX_HOPS 16

static void node_set(struct pl_redis_node *n, const char *host, int port)
{
	memset(n, 0, sizeof(*n));
	n->host = strdup(host);
	if (!n->host)
		abort();
	n->port = port;
}

void pl_redis_init(struct pl_redis *r, const struct pl_config *cfg)
{
	size_t n = pl_config_redis_nodes(cfg);

	memset(r, 0, sizeof(*r));
	r->timeout_ms = cfg->redis_timeout_ms;
	if (n == 0) {
		node_set(&r->nodes[0], cfg->redis_host, (int)cfg->redis_port);
		r->nnodes = 1;
		return;
	}
	for (size_t i = 0; i < n && r->nnodes < PL_REDIS_NODES_MAX; i++) {
		char host[PL_CONFIG_HOST_MAX];
		int port;

		if (pl_config_redis_node(cfg, i, host, sizeof(host), &port) == 0)
			node_set(&r->nodes[r->nnodes++], host, port);
	}
	r->slots = malloc(PL_SLOTS * sizeof(*r->slots));
	if (!r->slots || r->nnodes == 0)
		abort();
	for (size_t s = 0; s < PL_SLOTS; s++)
		r->slots[s] = PL_REDIS_NODES_MAX;	/* not known yet */
	/* Processes start on different nodes for their keyless commands. */
	r->any = (size_t)getpid() % r->nnodes;
}

int pl_redis_is_cluster(const struct pl_redis *r)
{
	return r->slots != NULL;
}

static void node_drop(struct pl_redis_node *n)
{
	if (n->ctx)
		redisFree(n->ctx);
	n->ctx = NULL;
}

/* Forgets the pipeline: its nodes are dropped, so no reply is left behind. */
static void queue_abort(struct pl_redis *r)
{
	for (size_t i = 0; i < r->nqueued; i++) {
		struct pl_redis_queued *q = &r->queue[i];

		/* Replies not read yet would answer the next commands. */
		if (!r->collected && !q->failed)
			node_drop(&r->nodes[q->node]);
		if (q->reply)
			freeReplyObject(q->reply);
		free(q->cmd);
	}
	r->nqueued = r->next = 0;
	r->collected = 0;
}

void pl_redis_disconnect(struct pl_redis *r)
{
	queue_abort(r);
	for (size_t i = 0; i < r->nnodes; i++)
		node_drop(&r->nodes[i]);
}

void pl_redis_release(struct pl_redis *r)
{
	pl_redis_disconnect(r);
	for (size_t i = 0; i < r->nnodes; i++)
		free(r->nodes[i].host);
	free(r->slots);
	free(r->queue);
	memset(r, 0, sizeof(*r));
}

/* Failed connects, lost connections and error replies, process-wide. */
static atomic_ulong errors;

unsigned long pl_redis_errors(void)
{
	return atomic_load(&errors);
}

/* Connects node i if needed. Returns 0, or -1 (logged once per outage). */
static int node_connect(struct pl_redis *r, size_t i)
{
	struct pl_redis_node *n = &r->nodes[i];
	struct timeval tv = { r->timeout_ms / 1000,
			      (r->timeout_ms % 1000) * 1000 };

	if (n->ctx)
		return 0;
	if (r->slots && n->retry_ms && pl_clock_mono_ms() < n->retry_ms)
		return -1;
	n->ctx = n->host[0] == '/' ? redisConnectUnixWithTimeout(n->host, tv) :
		 redisConnectWithTimeout(n->host, n->port, tv);
	if (!n->ctx || n->ctx->err || redisSetTimeout(n->ctx, tv) != REDIS_OK) {
		atomic_fetch_add(&errors, 1);
		if (!n->was_down)
			pl_log(PL_LOG_ERR, "redis: cannot connect to redis at "
			       "'%s:%d': %s", n->host, n->port,
			       n->ctx ? n->ctx->errstr : "out of memory");
		n->was_down = 1;
		node_drop(n);
		n->retry_ms = pl_clock_mono_ms() + NODE_RETRY_MS;
		return -1;
	}
	if (n->was_down)
		pl_log(PL_LOG_INFO, "redis: reconnected to redis at '%s:%d'",
		       n->host, n->port);
	n->was_down = 0;
	n->retry_ms = 0;
	return 0;
}

/*
 * A broken connection: closed, logged once per outage. A cluster's node is
 * then left alone for a while (its slots wait for a failover).
 */
static void node_lost(struct pl_redis_node *n)
{
	atomic_fetch_add(&errors, 1);
	if (!n->was_down)
		pl_log(PL_LOG_WARN, "redis: connection to '%s:%d' lost: %s",
		       n->host, n->port, n->ctx ? n->ctx->errstr : "-");
	n->was_down = 1;
	n->retry_ms = pl_clock_mono_ms() + NODE_RETRY_MS;
	node_drop(n);
}

/* The index of node host:port, added if new; -1 when the table is full. */
static int node_index(struct pl_redis *r, const char *host, size_t hostlen,
		      int port)
{
	for (size_t i = 0; i < r->nnodes; i++)
		if (r->nodes[i].port == port &&
		    strlen(r->nodes[i].host) == hostlen &&
		    memcmp(r->nodes[i].host, host, hostlen) == 0)
			return (int)i;
	if (r->nnodes == PL_REDIS_NODES_MAX || hostlen >= PL_CONFIG_HOST_MAX)
		return -1;
	r->nodes[r->nnodes].host = strndup(host, hostlen);
	if (!r->nodes[r->nnodes].host)
		abort();
	r->nodes[r->nnodes].port = port;
	return (int)r->nnodes++;
}

/* Reads the slot map of one CLUSTER SLOTS reply that node i gave. */
static void read_slots(struct pl_redis *r, size_t i, const redisReply *rep)
{
	for (size_t s = 0; s < PL_SLOTS; s++)
		r->slots[s] = PL_REDIS_NODES_MAX;
	for (size_t k = 0; k < rep->elements; k++) {
		const redisReply *e = rep->element[k], *m;
		const char *host;
		size_t hostlen;
		int node;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		m = e->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
		    m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		host = m->element[0]->str;
		hostlen = m->element[0]->len;
		/* An empty address: the node that answered. */
		if (hostlen == 0 || strcmp(host, "?") == 0) {
			host = r->nodes[i].host;
			hostlen = strlen(host);
		}
		node = node_index(r, host, hostlen, (int)m->element[1]->integer);
		for (long long s = e->element[0]->integer;
		     node >= 0 && s <= e->element[1]->integer && s < PL_SLOTS; s++)
			if (s >= 0)
				r->slots[s] = (unsigned short)node;
	}
}

/*
 * Reads the slot map again from the first node that answers, starting
 * with the one keyless commands use, on a connection of its own: a node's
 * connection may hold a pipeline whose replies are not read yet. Returns
 * 0 or -1.
 */
static int refresh_slots(struct pl_redis *r)
{
	struct timeval tv = { r->timeout_ms / 1000,
			      (r->timeout_ms % 1000) * 1000 };
	long long now = pl_clock_mono_ms();

	for (size_t k = 0; k < r->nnodes; k++) {
		size_t i = (r->any + k) % r->nnodes;
		struct pl_redis_node *n = &r->nodes[i];
		redisContext *c;
		redisReply *rep;

		if (n->retry_ms && now < n->retry_ms)
			continue;
		c = redisConnectWithTimeout(n->host, n->port, tv);
		if (!c || c->err) {
			if (c)
				redisFree(c);
			n->retry_ms = now + NODE_RETRY_MS;
			continue;
		}
		redisSetTimeout(c, tv);
		rep = redisCommand(c, "CLUSTER SLOTS");
		redisFree(c);
		if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
			read_slots(r, i, rep);
			freeReplyObject(rep);
			return 0;
		}
		if (rep && rep->type == REDIS_REPLY_ERROR)
			pl_log(PL_LOG_ERR, "redis: CLUSTER SLOTS on '%s:%d': %s",
			       n->host, n->port, rep->str);
		if (rep)
			freeReplyObject(rep);
	}
	return -1;
}

/* The first node from r->any on that connects, which becomes r->any. */
static int any_node(struct pl_redis *r)
{
	for (size_t k = 0; k < r->nnodes; k++) {
		size_t i = (r->any + k) % r->nnodes;

		if (node_connect(r, i) == 0) {
			r->any = i;
			return (int)i;
		}
	}
	return -1;
}

/*
 * The key a command routes by, or -1 for none: an EVAL's first key, the
 * first stream of XREADGROUP, XGROUP's and XINFO's key, else the first
 * argument. PUBLISH has none: a classic publish reaches every node from
 * any.
 */
static int route_key(int argc, const char **argv)
{
	static const char *const keyless[] = {
		"PING", "PUBLISH", "SCRIPT", "CLUSTER", "INFO", "TIME",
	};
	const char *cmd = argv[0];

	for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
		if (strcasecmp(cmd, keyless[i]) == 0)
			return -1;
	if (strcasecmp(cmd, "EVAL") == 0 || strcasecmp(cmd, "EVALSHA") == 0)
		return argc > 3 && strtol(argv[2], NULL, 10) > 0 ? 3 : -1;
	if (strcasecmp(cmd, "XREADGROUP") == 0) {
		for (int i = 1; i + 1 < argc; i++)
			if (strcasecmp(argv[i], "STREAMS") == 0)
				return i + 1;
		return -1;
	}
	if (strcasecmp(cmd, "XGROUP") == 0 || strcasecmp(cmd, "XINFO") == 0)
		return argc > 2 ? 2 : -1;
	return argc > 1 ? 1 : -1;
}

/* The slot of a command's key, or -1 (one Redis, or no key). */
static int route_slot(const struct pl_redis *r, int argc, const char **argv,
		      const size_t *argvlen)
{
	int k;

	if (!r->slots || (k = route_key(argc, argv)) < 0)
		return -1;
	return (int)pl_slot(argv[k], argvlen ? argvlen[k] : strlen(argv[k]));
}

/* The node for a slot (-1: any), connected. Returns its index or -1. */
static int pick(struct pl_redis *r, int slot)
{
	size_t i;

	if (!r->slots)
		return node_connect(r, 0) ? -1 : 0;
	if (slot < 0)
		return any_node(r);
	if (r->slots[slot] == PL_REDIS_NODES_MAX && refresh_slots(r))
		return -1;
	i = r->slots[slot];
	if (i != PL_REDIS_NODES_MAX && node_connect(r, i) == 0)
		return (int)i;
	/* Its master is gone: a replica may have taken over by now. */
	if (refresh_slots(r) || r->slots[slot] == i ||
	    r->slots[slot] == PL_REDIS_NODES_MAX)
		return -1;
	i = r->slots[slot];
	return node_connect(r, i) ? -1 : (int)i;
}

enum pl_err pl_redis_ensure(struct pl_redis *r)
{
	return pick(r, -1) < 0 ? PL_UNAVAILABLE : PL_OK;
}

/* What an error reply asks of a cluster client. */
enum redirect { R_NONE, R_MOVED, R_ASK, R_WAIT };

/*
 * Classifies an error reply; for MOVED and ASK, *node is where the slot
 * lives now (added to the table if new) and *slot the slot.
 */
static enum redirect redirect_of(struct pl_redis *r, const redisReply *rep,
				 int *node, int *slot)
{
	static const char *const wait[] = {
		"TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "READONLY",
	};
	const char *s = rep->str, *colon;
	enum redirect kind;
	char *end;
	long port;

	if (!r->slots)
		return R_NONE;
	for (size_t i = 0; i < sizeof(wait) / sizeof(wait[0]); i++)
		if (strncmp(s, wait[i], strlen(wait[i])) == 0)
			return R_WAIT;
	if (strncmp(s, "MOVED ", 6) == 0)
		kind = R_MOVED;
	else if (strncmp(s, "ASK ", 4) == 0)
		kind = R_ASK;
	else
		return R_NONE;
	/* "MOVED 3999 127.0.0.1:6381" */
	s = strchr(s, ' ') + 1;
	*slot = (int)strtol(s, &end, 10);
	if (*end != ' ' || *slot < 0 || *slot >= PL_SLOTS)
		return R_NONE;
	s = end + 1;
	colon = strrchr(s, ':');
	if (!colon)
		return R_NONE;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return R_NONE;
	*node = node_index(r, s, (size_t)(colon - s), (int)port);
	return *node < 0 ? R_NONE : kind;
}

/* Waits a back-off step unless it would pass the deadline: 0, else -1. */
static int back_off(long long *delay_ms, long long deadline_ms)
{
	if (pl_clock_mono_ms() + *delay_ms > deadline_ms)
		return -1;
	poll(NULL, 0, (int)*delay_ms);
	*delay_ms = *delay_ms * 2 > 400 ? 400 : *delay_ms * 2;
	return 0;
}

/* Loads script on node i (after NOSCRIPT there). Returns 0 or -1. */
static int load_script(struct pl_redis *r, size_t i, const char *script)
{
	const char *argv[3] = { "SCRIPT", "LOAD", script };
	redisReply *rep = redisCommandArgv(r->nodes[i].ctx, 3, argv, NULL);
	int ok = rep && rep->type == REDIS_REPLY_STRING;

	if (!rep)
		node_lost(&r->nodes[i]);
	if (rep)
		freeReplyObject(rep);
	return ok ? 0 : -1;
}

/* Sends ASKING (the next command may touch a slot being imported). */
static int asking(redisContext *c)
{
	redisReply *rep = redisCommand(c, "ASKING");

	if (!rep)
		return -1;
	freeReplyObject(rep);
	return 0;
}

/*
 * Sends one command to node i (with ASKING first if ask) and reads its
 * reply: NULL when the connection broke.
 */
static redisReply *send_to(struct pl_redis *r, size_t i, int ask, int argc,
			   const char **argv, const size_t *argvlen)
{
	redisContext *c = r->nodes[i].ctx;

	if (ask && asking(c))
		return NULL;
	return redisCommandArgv(c, argc, argv, argvlen);
}

/*
 * pl_redis_command without the EVALSHA rewrite: runs the command where its
 * slot lives, following redirections. With script (an EVALSHA of that
 * script), NOSCRIPT loads it on the node and sends the command again; a
 * script that cannot be loaded sets *noscript. With keep_errors, an error
 * reply is handed back as a reply.
 */
static enum pl_err command(struct pl_redis *r, int argc, const char **argv,
			   const size_t *argvlen, int retry_ok,
			   redisReply **reply, const char *script,
			   int *noscript, int keep_errors)
{
	int slot = route_slot(r, argc, argv, argvlen), ask = -1, broke = 0;
	long long deadline = pl_clock_mono_ms() + r->timeout_ms, delay = 25;

	*reply = NULL;
	for (int hop = 0; hop < MAX_HOPS; hop++) {
		int i = ask >= 0 && node_connect(r, (size_t)ask) == 0 ? ask :
			pick(r, slot), moved_slot = -1, to = -1;
		redisReply *rep;

		if (i < 0) {
			/* One Redis: down means unavailable, now. */
			if (!r->slots)
				return PL_UNAVAILABLE;
			/* A cluster: the slot's master may be failing over. */
			refresh_slots(r);
			if (back_off(&delay, deadline))
				return PL_UNAVAILABLE;
			continue;
		}
		rep = send_to(r, (size_t)i, ask >= 0, argc, argv, argvlen);
		ask = -1;
		if (!rep) {
			node_lost(&r->nodes[i]);
			/* Once for one Redis, a few times for a cluster. */
			if (!retry_ok || broke++ > (r->slots ? 4 : 0))
				return PL_UNAVAILABLE;
			continue;
		}
		if (rep->type != REDIS_REPLY_ERROR) {
			*reply = rep;
			return PL_OK;
		}
		if (script && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(rep);
			if (load_script(r, (size_t)i, script)) {
				*noscript = 1;
				return PL_INTERNAL;
			}
			continue;
		}
		switch (redirect_of(r, rep, &to, &moved_slot)) {
		case R_MOVED:
			/* Rarely one slot alone: read the whole map. */
			refresh_slots(r);
			r->slots[moved_slot] = (unsigned short)to;
			freeReplyObject(rep);
			continue;
		case R_ASK:
			ask = to;
			freeReplyObject(rep);
			continue;
		case R_WAIT:
			freeReplyObject(rep);
			refresh_slots(r);
			if (back_off(&delay, deadline))
				return PL_UNAVAILABLE;
			continue;
		case R_NONE:
			break;
		}
		if (keep_errors) {
			*reply = rep;
			return PL_OK;
		}
		pl_log(PL_LOG_ERR, "redis: '%s' failed: %s", argv[0], rep->str);
		atomic_fetch_add(&errors, 1);
		freeReplyObject(rep);
		return PL_INTERNAL;
	}
	return PL_UNAVAILABLE;
}

/* The SHA1 that SCRIPT LOAD gives script (cached), or NULL. */
static const char *script_sha(struct pl_redis *r, const char *script)
{
	const char *argv[3] = { "SCRIPT", "LOAD", script };
	redisReply *rep;
	int i;

	for (i = 0; i < PL_REDIS_SCRIPTS && r->scripts[i].text; i++)
		if (r->scripts[i].text == script)
			return r->scripts[i].sha;
	if (i == PL_REDIS_SCRIPTS)
		return NULL;
	if (command(r, 3, argv, NULL, 1, &rep, NULL, NULL, 0))
		return NULL;
	if (rep->type != REDIS_REPLY_STRING ||
	    rep->len >= sizeof(r->scripts[i].sha)) {
		freeReplyObject(rep);
		return NULL;
	}
	memcpy(r->scripts[i].sha, rep->str, rep->len + 1);
	r->scripts[i].text = script;
	freeReplyObject(rep);
	return r->scripts[i].sha;
}

enum pl_err pl_redis_command(struct pl_redis *r, int argc, const char **argv,
			     const size_t *argvlen, int retry_ok,
			     redisReply **reply)
{
	const char *args[PL_REDIS_EVAL_ARGS_MAX];
	enum pl_err rc;
	int noscript = 0;

	if (argc < 2 || argc > PL_REDIS_EVAL_ARGS_MAX || argvlen ||
	    strcmp(argv[0], "EVAL") != 0)
		return command(r, argc, argv, argvlen, retry_ok, reply, NULL,
			       NULL, 0);
	memcpy(args, argv, (size_t)argc * sizeof(*args));
	args[0] = "EVALSHA";
	args[1] = script_sha(r, argv[1]);
	if (args[1]) {
		/* A node without the script loads it (command()). */
		rc = command(r, argc, args, NULL, retry_ok, reply, argv[1],
			     &noscript, 0);
		if (!noscript)
			return rc;
	}
	/* No SHA (or the table is full): the plain EVAL does it. */
	return command(r, argc, argv, NULL, retry_ok, reply, NULL, NULL, 0);
}

enum pl_err pl_redis_call(struct pl_redis *r, int argc, const char **argv,
			  redisReply **reply)
{
	return command(r, argc, argv, NULL, 1, reply, NULL, NULL, 1);
}

/* ---- pipelining -------------------------------------------------------- */

/*
 * Appends to a cluster's pipeline: the command goes to its slot's node. A
 * node that cannot be reached now fails that command alone (its read
 * answers PL_UNAVAILABLE): a pipeline never waits for a failover.
 */
static enum pl_err cluster_append(struct pl_redis *r, int argc,
				  const char **argv, const size_t *argvlen)
{
	struct pl_redis_queued *q;
	int slot = route_slot(r, argc, argv, argvlen), i, len;
	char *cmd = NULL;

	if (r->collected)
		queue_abort(r);	/* a pipeline read only in part */
	len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
	q = len < 0 ? NULL : pl_array_grow(r->queue, &r->queue_cap, r->nqueued,
					   sizeof(*q), 64);
	if (!q) {
		free(cmd);
		queue_abort(r);
		return PL_UNAVAILABLE;
	}
	r->queue = q;
	i = pick(r, slot);
	if (i >= 0 && redisAppendFormattedCommand(r->nodes[i].ctx, cmd,
						  (size_t)len) != REDIS_OK) {
		node_lost(&r->nodes[i]);
		i = -1;
	}
	r->queue[r->nqueued++] = (struct pl_redis_queued){
		.node = i < 0 ? 0 : (size_t)i, .slot = slot, .cmd = cmd,
		.len = len, .failed = i < 0,
	};
	return PL_OK;
}

/* Sends a formatted command to node i (after ASKING if ask). */
static redisReply *send_formatted(struct pl_redis *r, size_t i, int ask,
				  const struct pl_redis_queued *q)
{
	redisContext *c = r->nodes[i].ctx;
	void *rep = NULL;

	if (ask && asking(c))
		return NULL;
	if (redisAppendFormattedCommand(c, q->cmd, (size_t)q->len) != REDIS_OK ||
	    redisGetReply(c, &rep) != REDIS_OK)
		return NULL;
	return rep;
}

/*
 * Sends one queued command again where a redirection points, on its own:
 * every node's pipeline has been read by then. Returns the last reply.
 */
static redisReply *resend(struct pl_redis *r, struct pl_redis_queued *q,
			  redisReply *rep)
{
	long long deadline = pl_clock_mono_ms() + r->timeout_ms, delay = 25;

	for (int hop = 0; hop < MAX_HOPS && rep->type == REDIS_REPLY_ERROR;
	     hop++) {
		int to = -1, slot = -1;
		enum redirect kind = redirect_of(r, rep, &to, &slot);
		redisReply *again;

		if (kind == R_NONE)
			break;
		if (kind == R_MOVED) {
			refresh_slots(r);
			r->slots[slot] = (unsigned short)to;
		} else if (kind == R_WAIT) {
			refresh_slots(r);
			if (q->slot < 0 || back_off(&delay, deadline))
				break;
			to = r->slots[q->slot];
			if (to == PL_REDIS_NODES_MAX)
				continue;
		}
		if (node_connect(r, (size_t)to))
			break;
		again = send_formatted(r, (size_t)to, kind == R_ASK, q);
		if (!again) {
			node_lost(&r->nodes[to]);
			break;
		}
		freeReplyObject(rep);
		rep = again;
	}
	return rep;
}

/*
 * Reads the reply of every queued command, node by node in queue order,
 * then sends the redirected ones again. A node that breaks fails its
 * commands.
 */
static void cluster_collect(struct pl_redis *r)
{
	for (size_t i = 0; i < r->nqueued; i++) {
		struct pl_redis_queued *q = &r->queue[i];
		struct pl_redis_node *n = &r->nodes[q->node];
		void *rep = NULL;

		if (q->failed)
			continue;
		if (!n->ctx || redisGetReply(n->ctx, &rep) != REDIS_OK || !rep) {
			if (n->ctx)
				node_lost(n);
			q->failed = 1;
			continue;
		}
		q->reply = rep;
	}
	for (size_t i = 0; i < r->nqueued; i++)
		if (r->queue[i].reply &&
		    r->queue[i].reply->type == REDIS_REPLY_ERROR)
			r->queue[i].reply = resend(r, &r->queue[i],
						   r->queue[i].reply);
	r->collected = 1;
}

enum pl_err pl_redis_append(struct pl_redis *r, int argc, const char **argv,
			    const size_t *argvlen)
{
	if (r->slots)
		return cluster_append(r, argc, argv, argvlen);
	if (pl_redis_ensure(r))
		return PL_UNAVAILABLE;
	if (redisAppendCommandArgv(r->nodes[0].ctx, argc, argv, argvlen) !=
	    REDIS_OK) {
		node_drop(&r->nodes[0]);
		return PL_UNAVAILABLE;
	}
	return PL_OK;
}

static enum pl_err cluster_read(struct pl_redis *r, redisReply **reply)
{
	struct pl_redis_queued *q;

	if (r->next == r->nqueued)
		return PL_UNAVAILABLE;
	if (!r->collected) {
		/* Every node gets its commands before the first wait. */
		for (size_t i = 0; i < r->nnodes; i++) {
			int done = 0;

			while (r->nodes[i].ctx && !done)
				if (redisBufferWrite(r->nodes[i].ctx, &done) !=
				    REDIS_OK)
					node_lost(&r->nodes[i]);
		}
		cluster_collect(r);
	}
	q = &r->queue[r->next++];
	*reply = q->reply;
	q->reply = NULL;
	free(q->cmd);
	q->cmd = NULL;
	if (r->next == r->nqueued) {
		r->nqueued = r->next = 0;
		r->collected = 0;
	}
	/* A node that failed fails its commands alone. */
	return *reply ? PL_OK : PL_UNAVAILABLE;
}

enum pl_err pl_redis_read(struct pl_redis *r, redisReply **reply)
{
	struct pl_redis_node *n = &r->nodes[0];
	void *rep = NULL;

	*reply = NULL;
	if (r->slots)
		return cluster_read(r, reply);
	if (!n->ctx)
		return PL_UNAVAILABLE;
	if (redisGetReply(n->ctx, &rep) != REDIS_OK || !rep) {
		node_lost(n);
		return PL_UNAVAILABLE;
	}
	*reply = rep;
	return PL_OK;
}

enum pl_err pl_redis_ping(struct pl_redis *r)
{
	const char *argv[] = { "PING" };
	redisReply *rep;
	enum pl_err rc = pl_redis_command(r, 1, argv, NULL, 1, &rep);

	if (rep)
		freeReplyObject(rep);
	return rc == PL_OK ? PL_OK : PL_UNAVAILABLE;
}
