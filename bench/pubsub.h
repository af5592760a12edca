/*
 * pubsub: what the parts of bench/pubsub share (bench/pubsub.c has the
 * options, the load, the measurement and main; bench/pubsub-links.c reads
 * the cluster's map and sets up the relays' and publishers' links).
 *
 * The program is one thread: struct run, the run's settings, links and
 * counts, is its state, passed to every function.
 */
#ifndef BENCH_PUBSUB_H
#define BENCH_PUBSUB_H

#include <hiredis/hiredis.h>
#include <poll.h>
#include <stddef.h>

#define SLOTS 16384		/* Redis Cluster's hash slots */
#define MAX_NODES 32		/* fits the unsigned char slot and user maps */

/* classic: PUBLISH/SUBSCRIBE; sharded: SPUBLISH/SSUBSCRIBE. */
enum mode { MODE_CLASSIC, MODE_SHARDED };

/* The command line's settings (bench/pubsub.c, usage()). */
struct opts {
	char seed_host[64];
	int seed_port;
	enum mode mode;
	int group;			/* 0: --load 1:1, 1: --load group */
	int fanout;			/* publishes per message */
	int users, relays, publishers, window, payload_bytes;
	double rate;			/* messages/s; 0: flat out */
	int duration_s, warmup_s;
};

/* A node of the cluster, master or replica. */
struct node {
	char host[64];
	int port;
	int is_master;
	redisContext *ctl;		/* INFO and CLUSTER KEYSLOT, blocking */
	double cpu_s;			/* used_cpu_sys + used_cpu_user at the window's start */
	double cpu_used_s;		/* its growth over the window */
	long long max_obuf;		/* client_recent_max_output_buffer at the end */
};

/* A link: a relay's subscriber connection or a publisher's. */
struct conn {
	redisContext *c;
	int relay;			/* a subscriber's relay; -1 for a publisher */
	int want_write;			/* commands appended and not yet written */
	int dead;
};

/* The run: its settings, the cluster, the links and the counts. */
struct run {
	struct opts o;
	struct node node[MAX_NODES];
	int nnodes;
	int master[MAX_NODES];		/* node index of each master, by port */
	int nmasters;
	unsigned char slot_master[SLOTS];	/* index into master[] */
	unsigned char *user_master;	/* per user (0-based): index into master[] */
	struct conn *sub;		/* relay r's link m: sub[r * subs_per_relay + m] */
	int subs_per_relay, nsub;
	struct conn *pub;		/* publisher p's link to master m: pub[p * nmasters + m] */
	int npub;
	struct pollfd *pfd;
	char *frame;			/* the message frame's JSON, padded */
	long long messages, publishes;
	unsigned long long random;	/* classic: picks each publish's node */
	double next_send_ns;		/* --rate: when the next message is due */
	long long publish_errors, errors;	/* refused publishes; every error reply */
	long long answered_zero;	/* publishes whose node had no subscriber */
	long long delivered, duplicated, unsolicited, disconnects;
	unsigned char *seen;		/* deliveries received, a bit per seq */
	size_t seen_bytes;
	int measuring;
	long long w_messages, w_deliveries, max_lat_us;
	unsigned int *lat;		/* latency histogram of the window's deliveries */
	char first_error[160];
};

/* Records the first error of the run for the report (what failed, why). */
void pubsub_note_error(struct run *r, const char *what, const char *detail);

/*
 * Reads the cluster's map from the seed node (CLUSTER SLOTS): every node,
 * which are masters (r->master, in port order), and which master serves
 * each slot. Returns 0, or -1 after saying why on stderr.
 */
int pubsub_cluster_map(struct run *r);

/* Connects a blocking control link to every node. Returns 0 or -1. */
int pubsub_connect_controls(struct run *r);

/*
 * Finds the master of each user's channel (CLUSTER KEYSLOT, pipelined on
 * a control link) into r->user_master. Returns 0 or -1.
 */
int pubsub_user_masters(struct run *r);

/*
 * Connects every relay's links (classic: one, to master i; sharded: one per
 * master) and subscribes each relay's users, waiting for every
 * confirmation; the links are then non-blocking. Returns 0 or -1.
 */
int pubsub_subscribe_relays(struct run *r);

/*
 * Connects every publisher's link to every master, non-blocking. Returns 0
 * or -1.
 */
int pubsub_connect_publishers(struct run *r);

/*
 * INFO section on node nd (blocking): the numeric field a, plus b when b is
 * not NULL. Returns -1 when the node does not answer.
 */
double pubsub_node_info(struct node *nd, const char *section, const char *a,
			const char *b);

/* Orders node indexes (ints) by their node's port; arg is the struct run. */
int pubsub_by_port(const void *a, const void *b, void *arg);

#endif
