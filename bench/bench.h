/*
 * bench: what the parts of parley-bench share (bench/parley-bench.c has the
 * scenarios and main, bench/setup.c the accounts and conversations made
 * before a run, bench/client.c the WebSocket clients on one lws context).
 *
 * The load generator is one thread: B, the run's settings, clients and
 * counts, is its state, and interrupted is set by SIGINT.
 */
#ifndef BENCH_H
#define BENCH_H

#include <libwebsockets.h>
#include <signal.h>
#include <stddef.h>

#define MAX_CLIENTS 20000
#define BODY_PAD 64

struct client {
	int index;
	struct lws *wsi;
	long long user_id;
	long long peer_id;
	long long conversation_id;
	char token[1024];
	int welcomed;
	int closed;
	long long next_seq_to_send;	/* k of "k:ns" bodies */
	long long inflight;		/* sends waiting for "sent" */
	long long sent, acked;
	long long next_send_ns;
	long long due_ns;		/* when the send being written was due */
	long long sent_in_window;	/* sends due within the measured window */
	long long last_heartbeat_ns;
	int group;			/* index of the first member */
	unsigned char *seen;		/* others' messages received, by message_id */
	long long seen_cap;
	unsigned char *acked_mid;	/* own sends acknowledged, by message_id */
	long long acked_cap;
	int want_write;
	long long hello_ns, welcome_ns;	/* storm: hello sent, welcome read */
	long long backlog;		/* storm: distinct messages received */
	long long backlog_done_ns;	/* storm: when the K-th arrived */
	long long ack_due, ack_sent;	/* highest seq received, and acked */
	long long last_ack_ns;
	int ack_now;			/* an ack to write (drive() sets it) */
	long long read_due, read_sent;	/* --chatter: message to mark read */
	long long last_read_ns;
	long long last_typing_ns;
	int typing_due;			/* --chatter: a typing frame to write */
};

#define BENCH_CPU_PARTS 8

#define BENCH_RELAYS 8

struct bench {
	const char *api;
	const char *ws_url;
	const char *scenario;
	const char *prefix;
	int clients;
	int group_size;
	double rate;
	int window;
	int duration_s;
	int warmup_s;
	int relay_pid;
	int heartbeat_s;
	const char *admin;		/* parley-admin, or NULL: REST signup */
	const char *admin_config;	/* its -c FILE, or NULL */
	int redis_port;
	int backlog;			/* storm: K missed messages per client */
	int max_sends;			/* per client, 0: no limit */
	int storm_phase;		/* 1 while the storm clients connect */
	struct client *senders;		/* storm: A's second devices */
	struct client *c;
	struct lws_context *ctx;
	int connected, welcomed;
	int connect_errors, closed;	/* sockets that failed or went away */
	char first_error[128];
	long long delivered, duplicated;
	long long *lat_us;
	size_t nlat, lat_cap;
	long long start_ns, measure_ns, stop_ns;
	/* --ws: one relay, or up to BENCH_RELAYS (client i on relay i mod n). */
	struct {
		char host[128];
		int port;
		char path[128];
	} relay[BENCH_RELAYS];
	int nrelays;
	int chatter;			/* typing every 3 s, read receipts */
	/* --cpu NAME=PID: CPU of each (and its children) over the traffic. */
	struct {
		char name[16];
		int pid;
		long long jiffies0;
	} cpu[BENCH_CPU_PARTS];
	int ncpu;
};

extern struct bench B;
extern volatile sig_atomic_t interrupted;

/* CLOCK_MONOTONIC in nanoseconds. */
long long bench_now_ns(void);

/* ---- setup.c ------------------------------------------------------------ */

/*
 * Makes B.clients users (and, for storm, B.senders: a second device of each
 * pair's A) with parley-admin or REST signup, logs them in and, except for
 * idle, makes their conversations. Returns 0, or -1 (printed).
 */
int bench_setup_accounts(void);

/* ---- client.c ----------------------------------------------------------- */

/* A new lws context in B.ctx with the send pacer running. 0, or -1. */
int bench_start_context(void);

/* Stops the pacer and destroys B.ctx. */
void bench_stop_context(void);

/* Connects B.c[0 .. B.clients) as fast as lws takes them. */
void bench_connect_all(void);

/* Connects every client and serves until all are welcomed (60 s at most);
 * returns when it started. */
long long bench_connect_welcomed(void);

/* Serves what is ready, waiting for it if nothing is. */
void bench_service_once(void);

/* Serves until deadline_ns (monotonic), SIGINT, or with all_welcomed set,
 * until every client is welcomed. */
void bench_service_until(long long deadline_ns, int all_welcomed);

/* 1 when every client has its whole backlog, 0 if one is still waiting,
 * -1 when the rest went away without it. */
int bench_all_backlogs(void);

#endif
