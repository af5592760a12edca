/*
 * redis: one synchronous Redis connection and its recovery.
 *
 * A struct pl_redis belongs to one thread. Like pl_db it connects lazily and
 * reconnects on the next use after a failure, with a bounded timeout on every
 * connect and reply, so a Redis outage costs a request at most one timeout and
 * never a hang. Redis is never the only copy of anything (doc/architecture.md),
 * so callers treat PL_UNAVAILABLE from here as "degrade", not "fail".
 */
#ifndef PL_REDIS_H
#define PL_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

/* Scripts run with EVALSHA once SCRIPT LOAD has named them (see below). */
#define PL_REDIS_SCRIPTS 8

/* The most nodes of a cluster one pl_redis keeps (masters and replicas). */
#define PL_REDIS_NODES_MAX 64

struct pl_redis_node {
	char *host;		/* owned; a path starting with '/' is a socket */
	int port;
	redisContext *ctx;	/* NULL while disconnected */
	long long retry_ms;	/* after a failed connect: not before then */
	int was_down;		/* logged as unreachable */
};

/* A pipelined command whose reply is still to be read (cluster only). */
struct pl_redis_queued {
	size_t node;
	int slot;		/* its key's, or -1 */
	char *cmd;		/* formatted, owned: sent again on a redirect */
	int len;
	redisReply *reply;	/* read, not yet handed out */
	int failed;		/* its node broke before the reply came */
};

/*
 * One Redis (node 0, [redis] host and port) or a Redis Cluster ([redis]
 * cluster): the nodes named there, and the others CLUSTER SLOTS shows. A
 * command goes to the master of its key's slot (slot.h), found in a slot
 * map read with CLUSTER SLOTS and kept up to date by the redirections:
 * MOVED updates the map, ASK sends the one command on with ASKING, and
 * TRYAGAIN, CLUSTERDOWN, a refused connection or a node that answers as a
 * replica wait and read the map again (a replica is being promoted) for up
 * to [redis] timeout_ms. A command without a key (PING, PUBLISH: the
 * cluster carries a classic publish to every node) goes to any node that
 * answers.
 */
struct pl_redis {
	struct pl_redis_node nodes[PL_REDIS_NODES_MAX];
	size_t nnodes;
	unsigned short *slots;	/* cluster: node per slot; NULL: one Redis */
	size_t any;		/* the node for commands without a key */
	struct {
		const char *text;	/* a static script, by address */
		char sha[48];
	} scripts[PL_REDIS_SCRIPTS];
	struct pl_redis_queued *queue;	/* cluster pipelining, in order */
	size_t nqueued, next, queue_cap;
	int collected;		/* the queue's replies are read */
	long long timeout_ms;
};

/* Copies the connection settings from cfg; does not connect. */
void pl_redis_init(struct pl_redis *r, const struct pl_config *cfg);

/* Disconnects and frees what r owns; r needs pl_redis_init() again. */
void pl_redis_release(struct pl_redis *r);

/*
 * Closes the connection (after a broken reply) and keeps the settings: the
 * next command connects again.
 */
void pl_redis_disconnect(struct pl_redis *r);

/* Whether r speaks to a Redis Cluster. */
int pl_redis_is_cluster(const struct pl_redis *r);

/*
 * Connects if needed (to any node of a cluster). Returns PL_OK or
 * PL_UNAVAILABLE (logged once).
 */
enum pl_err pl_redis_ensure(struct pl_redis *r);

/*
 * Like pl_redis_command() (without the EVAL rewrite), but a Redis error
 * reply other than a cluster's redirections is the caller's: PL_OK with
 * the error reply in *reply, nothing logged.
 */
enum pl_err pl_redis_call(struct pl_redis *r, int argc, const char **argv,
			  redisReply **reply);

/* An EVAL with more arguments than this is sent as the script's text. */
#define PL_REDIS_EVAL_ARGS_MAX 320

/*
 * Runs one command given as argc strings (argv, with lengths argvlen or NULL
 * for C strings). On PL_OK *reply holds the reply, which the caller frees
 * with freeReplyObject(); a Redis error reply is PL_INTERNAL (logged) and
 * *reply is NULL. A broken connection is closed, retried once by reconnecting
 * if retry_ok (on a cluster: until timeout_ms, following a failover), else
 * PL_UNAVAILABLE. On a cluster, every key of the command must share a slot
 * (a hash tag); an EVAL routes by its first key.
 */
enum pl_err pl_redis_command(struct pl_redis *r, int argc, const char **argv,
			     const size_t *argvlen, int retry_ok,
			     redisReply **reply);

/*
 * Pipelining: queue commands with pl_redis_append(), then collect exactly
 * one reply per queued command with pl_redis_read(), in order. Nothing is
 * sent before the first read. Both return PL_OK or PL_UNAVAILABLE; after
 * PL_UNAVAILABLE the connection is closed and later reads fail too, so a
 * caller may stop reading at the first failure. A reply from pl_redis_read()
 * (also an error reply) is the caller's to freeReplyObject(). On a cluster
 * the commands go to their slots' nodes, the first read sends them all and
 * reads every reply, a redirected one is sent again to where it belongs,
 * and a node that cannot be reached (or breaks) fails its own commands
 * only: pl_redis_append() then still answers PL_OK, and that command's
 * pl_redis_read() PL_UNAVAILABLE, while the others read as usual. A
 * pipeline never waits out a failover.
 */
enum pl_err pl_redis_append(struct pl_redis *r, int argc, const char **argv,
			    const size_t *argvlen);
enum pl_err pl_redis_read(struct pl_redis *r, redisReply **reply);

/* Sends PING. Returns PL_OK or PL_UNAVAILABLE. */
enum pl_err pl_redis_ping(struct pl_redis *r);

/*
 * The process's Redis errors so far, for metrics: failed connects, lost
 * connections and error replies.
 */
unsigned long pl_redis_errors(void);

#endif
