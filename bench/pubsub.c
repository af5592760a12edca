/*
 * pubsub: plays Parley's pub/sub pattern against a running Redis Cluster,
 * in one of its two forms, and measures what it costs the cluster's nodes
 * (doc/scale-out.md, "Pub/sub on a Redis Cluster: classic or sharded").
 *
 *   classic  each of --relays relays holds ONE connection, to one master
 *            (relay i to the i-th master by port), and SUBSCRIBEs its
 *            users' channels there; publishers PUBLISH to a master picked
 *            at random. The cluster sends every publish to every node over
 *            its bus.
 *   sharded  each relay holds one connection per master and SSUBSCRIBEs
 *            each of its users' channels on the master serving the
 *            channel's slot (CLUSTER SLOTS, CLUSTER KEYSLOT); publishers
 *            SPUBLISH there. A publish goes to its shard's nodes only.
 *
 * --users U users (ids 1..U, channels parley:u:<id>) are dealt to the
 * relays in turn. A message is one publish with --load 1:1 (to the users in
 * turn), or --group-size publishes with --load group (to every member of
 * one of U / group-size fixed groups, in turn). Each publish carries a
 * "message" event laid out by lib/event.h: "M <seq> <created_us>\n", seq
 * unique per publish and created_us the wall-clock send time, then a
 * message frame's JSON, --payload bytes in all.
 *
 * --publishers P publishers each hold one connection per master (what a
 * parley-api process would hold) and pipeline. Flow control: at most
 * --window publishes are out, sent and not yet received by a subscriber, so
 * neither the nodes' subscriber output buffers nor the cluster bus queue
 * without bound. --rate R offers R messages/s (open loop, under the same
 * window; what falls more than 100 ms behind the schedule is dropped, not
 * sent in a burst); 0 sends flat out.
 *
 * --cluster names any node (default 127.0.0.1:47001, bench/pubsub-cluster.sh's
 * first). Defaults: classic, 1:1, groups of 100, 3000 users, 3 relays,
 * 2 publishers, a window of 2000, 300 bytes, 10 s after 2 s of warm-up.
 *
 * After --warmup seconds it measures for --duration seconds messages/s
 * sent, deliveries/s received, send->receive latency, each node's CPU
 * (INFO cpu: used_cpu_sys + used_cpu_user, before and after) and this
 * program's CPU; then lets what is in flight arrive
 * (3 s at most) and counts lost and duplicated deliveries, publishes
 * answered 0 (no subscriber on the node that took it), error replies,
 * subscriber connections lost (a node closes a subscriber over its
 * client-output-buffer-limit pubsub) and unsolicited unsubscribes (a slot
 * moved). Prints one line of key=value.
 *
 * hiredis 0.14.1's async API does not route "smessage" replies, so every
 * connection is a plain redisContext, blocking during setup, then
 * non-blocking and read with redisBufferRead and redisGetReplyFromReader
 * in one poll() loop. The program is one thread.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "pubsub.h"
#include "banned.h"

#define MAX_USERS 1000000
#define MAX_PUBLISHES (1LL << 28)	/* the duplicate bitmap's bound: 32 MiB */
#define LAT_BUCKET_US 10
#define LAT_BUCKETS 200000		/* 10 us each up to 2 s; the last holds the rest */
#define SEND_BATCH 64			/* messages sent per turn of the loop at most */
#define DRAIN_NS 3000000000LL
#define MAX_LAG_NS 100000000LL		/* --rate: how far behind the schedule may be made up */
#define NS 1000000000LL

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * NS + ts.tv_nsec;
}

static long long wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pubsub [--cluster HOST:PORT] [--mode classic|sharded]\n"
		"              [--load 1:1|group] [--group-size N] [--users N]\n"
		"              [--relays N] [--publishers N] [--window N]\n"
		"              [--rate MSGS_PER_S] [--payload BYTES]\n"
		"              [--duration S] [--warmup S]\n");
}

/* Reads a whole decimal option value into *out. Returns 0, or -1 when v is not one. */
static int int_arg(const char *v, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0 || n > 100000000)
		return -1;
	*out = (int)n;
	return 0;
}

/* Sets the form and load from their names and checks every bound. Returns 0 or -1. */
static int check_opts(struct opts *o, const char *mode, const char *load)
{
	if (!strcmp(mode, "classic"))
		o->mode = MODE_CLASSIC;
	else if (!strcmp(mode, "sharded"))
		o->mode = MODE_SHARDED;
	else
		return -1;
	if (strcmp(load, "1:1") && strcmp(load, "group"))
		return -1;
	o->group = !strcmp(load, "group");
	o->fanout = o->group ? o->fanout : 1;
	if (o->users < 1 || o->users > MAX_USERS || o->relays < 1 ||
	    o->relays > 64 || o->publishers < 1 || o->publishers > 64 ||
	    o->fanout < 1 || o->fanout > o->users || o->window < o->fanout ||
	    o->payload_bytes < 256 || o->payload_bytes > 65536 ||
	    o->duration_s < 1 || o->duration_s > 600 || o->warmup_s > 60 ||
	    o->rate < 0 || o->seed_port < 1 || o->seed_port > 65535)
		return -1;
	return 0;
}

/* Reads the options into o after the defaults. Returns 0, or 2 after the usage. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *mode = "classic", *load = "1:1";
	int rc = 0;

	*o = (struct opts){ .seed_host = "127.0.0.1", .seed_port = 47001, .fanout = 100,
			    .users = 3000, .relays = 3, .publishers = 2,
			    .window = 2000, .payload_bytes = 300, .duration_s = 10,
			    .warmup_s = 2 };
	for (int i = 1; i < argc && !rc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (!v)
			rc = -1;
		else if (!strcmp(k, "--cluster"))
			rc = sscanf(v, "%63[^:]:%d", o->seed_host, &o->seed_port) == 2 ? 0 : -1;
		else if (!strcmp(k, "--mode"))
			mode = v;
		else if (!strcmp(k, "--load"))
			load = v;
		else if (!strcmp(k, "--rate")) {
			o->rate = strtod(v, &end);
			rc = end == v || *end ? -1 : 0;
		} else if (!strcmp(k, "--group-size")) rc = int_arg(v, &o->fanout);
		else if (!strcmp(k, "--users")) rc = int_arg(v, &o->users);
		else if (!strcmp(k, "--relays")) rc = int_arg(v, &o->relays);
		else if (!strcmp(k, "--publishers")) rc = int_arg(v, &o->publishers);
		else if (!strcmp(k, "--window")) rc = int_arg(v, &o->window);
		else if (!strcmp(k, "--payload")) rc = int_arg(v, &o->payload_bytes);
		else if (!strcmp(k, "--duration")) rc = int_arg(v, &o->duration_s);
		else if (!strcmp(k, "--warmup")) rc = int_arg(v, &o->warmup_s);
		else
			rc = -1;
	}
	if (rc || check_opts(o, mode, load)) {
		usage();
		return 2;
	}
	return 0;
}

/*
 * The frame a message event carries, shaped as doc/protocol.md's "message"
 * frame, its body padded so that the event is --payload bytes long.
 */
static int make_frame(struct run *r)
{
	const char *head = "{\"type\":\"message\",\"seq\":1000000,\"conversation_id\":4242,"
		"\"message_id\":123456,\"sender_id\":1001,\"client_msg_id\":\"c-123456\","
		"\"created_at\":\"2026-12-06T12:00:00.123456Z\",\"body\":\"";
	/* The header line, "M <seq> <created_us>\n", is about 28 bytes. */
	int pad = r->o.payload_bytes - 28 - (int)strlen(head) - 2;
	size_t n;

	if (pad < 1)
		pad = 1;
	n = strlen(head) + (size_t)pad + 3;
	r->frame = malloc(n);
	if (!r->frame)
		return -1;
	memcpy(r->frame, head, strlen(head));
	memset(r->frame + strlen(head), 'x', (size_t)pad);
	memcpy(r->frame + strlen(head) + pad, "\"}", 3);
	return 0;
}

/*
 * The next number of a fixed xorshift64* sequence: runs are repeatable,
 * and the classic form's choice of node owes nothing to the order in which
 * users and relays are dealt.
 */
static unsigned long long next_random(struct run *r)
{
	r->random ^= r->random >> 12;
	r->random ^= r->random << 25;
	r->random ^= r->random >> 27;
	return r->random * 2685821657736338717ULL;
}

/*
 * Appends publisher pubr's publish of the next seq to user u: sharded on
 * its link to the channel's master; classic on one of its links picked at
 * random, as a parley-api's link is to whichever node, not to the one
 * where the user's relay subscribed (that is the case 1 in masters times).
 * Returns 0, or -1 when out of memory.
 */
static int publish(struct run *r, int pubr, int u)
{
	char ch[PL_EVENT_CHANNEL_BYTES];
	char *ev = pl_event_encode_message(r->publishes + 1, wall_us(), r->frame);
	int m = r->o.mode == MODE_SHARDED ? r->user_master[u] :
		(int)(next_random(r) % (unsigned)r->nmasters);
	struct conn *pc = &r->pub[pubr * r->nmasters + m];

	if (!ev || redisAppendCommand(pc->c, r->o.mode == MODE_SHARDED ?
				      "SPUBLISH %s %s" : "PUBLISH %s %s",
				      pl_event_channel(ch, u + 1), ev) != REDIS_OK) {
		free(ev);
		r->errors++;
		pubsub_note_error(r, "publish", "out of memory");
		return -1;
	}
	free(ev);
	r->publishes++;
	pc->want_write = 1;
	return 0;
}

/* Sends the next message: one publish, or one to each member of its group. */
static void send_message(struct run *r)
{
	long long k = r->messages++;
	int pubr = (int)(k % r->o.publishers);

	if (!r->o.group) {
		publish(r, pubr, (int)(k % r->o.users));
	} else {
		int groups = r->o.users / r->o.fanout;
		int first = (int)(k % groups) * r->o.fanout;

		for (int u = first; u < first + r->o.fanout; u++)
			publish(r, pubr, u);
	}
	if (r->measuring)
		r->w_messages++;
}

/* Publishes sent and not yet received (nor refused). */
static long long in_flight(const struct run *r)
{
	return r->publishes - r->publish_errors - r->delivered;
}

/* Whether the window and the duplicate bitmap leave room for a message. */
static int may_send(const struct run *r)
{
	return in_flight(r) + r->o.fanout <= r->o.window &&
		r->publishes + r->o.fanout < MAX_PUBLISHES;
}

/* Whether the schedule has a message due at now (always when flat out). */
static int due(const struct run *r, long long now)
{
	return r->o.rate <= 0 || r->next_send_ns <= (double)now;
}

/*
 * Sends what is due at now, at most SEND_BATCH messages, then writes what
 * each publisher link can take. Sends more than MAX_LAG_NS behind the
 * schedule (the window was full, or this program late) are dropped, not
 * sent in a burst: msgs_per_s then shows the rate achieved. Returns 1 when
 * more could be sent at once, else 0.
 */
static int send_due(struct run *r, long long now)
{
	int sent = 0;

	if (r->o.rate > 0 && r->next_send_ns < (double)(now - MAX_LAG_NS))
		r->next_send_ns = (double)(now - MAX_LAG_NS);
	while (sent < SEND_BATCH && due(r, now) && may_send(r)) {
		send_message(r);
		if (r->o.rate > 0)
			r->next_send_ns += NS / r->o.rate;
		sent++;
	}
	for (int i = 0; i < r->npub; i++) {
		int done = 0;

		if (!r->pub[i].want_write || r->pub[i].dead)
			continue;
		if (redisBufferWrite(r->pub[i].c, &done) != REDIS_OK) {
			pubsub_note_error(r, "publisher write", r->pub[i].c->errstr);
			r->pub[i].dead = 1;
		}
		r->pub[i].want_write = !done;
	}
	return due(r, now) && may_send(r);
}

/* Records the delivery of payload[0..len): duplicate check, latency. */
static void deliver(struct run *r, const char *payload, size_t len)
{
	struct pl_event ev;
	long long lat_us, bucket;
	size_t byte;

	if (pl_event_decode(payload, len, &ev) || ev.seq <= 0 || ev.seq > r->publishes) {
		r->errors++;
		pubsub_note_error(r, "delivery", "not a message event this run sent");
		return;
	}
	byte = (size_t)(ev.seq >> 3);
	if (byte >= r->seen_bytes) {
		size_t n = r->seen_bytes ? r->seen_bytes : 1 << 16;
		unsigned char *p;

		while (n <= byte)
			n *= 2;
		p = realloc(r->seen, n);
		if (!p) {
			r->errors++;
			pubsub_note_error(r, "delivery", "out of memory");
			return;
		}
		memset(p + r->seen_bytes, 0, n - r->seen_bytes);
		r->seen = p;
		r->seen_bytes = n;
	}
	if (r->seen[byte] & (1u << (ev.seq & 7))) {
		r->duplicated++;
		return;
	}
	r->seen[byte] |= (unsigned char)(1u << (ev.seq & 7));
	r->delivered++;
	if (!r->measuring)
		return;
	r->w_deliveries++;
	lat_us = wall_us() - ev.created_us;
	bucket = lat_us < 0 ? 0 : lat_us / LAT_BUCKET_US;
	r->lat[bucket < LAT_BUCKETS ? bucket : LAT_BUCKETS - 1]++;
	if (lat_us > r->max_lat_us)
		r->max_lat_us = lat_us;
}

/* One reply read on a subscriber link. */
static void on_sub_reply(struct run *r, const redisReply *rep)
{
	const char *kind;

	if (rep->type == REDIS_REPLY_ERROR) {
		r->errors++;
		pubsub_note_error(r, "subscriber", rep->str);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	kind = rep->element[0]->str;
	if ((!strcmp(kind, "message") || !strcmp(kind, "smessage")) &&
	    rep->element[2]->type == REDIS_REPLY_STRING)
		deliver(r, rep->element[2]->str, rep->element[2]->len);
	else if (!strcmp(kind, "sunsubscribe") || !strcmp(kind, "unsubscribe"))
		r->unsolicited++;
}

/* Reads what link l has and handles every whole reply. */
static void read_link(struct run *r, struct conn *l)
{
	redisReply *rep;

	if (redisBufferRead(l->c) != REDIS_OK) {
		pubsub_note_error(r, l->relay >= 0 ? "subscriber link lost" :
				  "publisher link lost", l->c->errstr);
		if (l->relay >= 0)
			r->disconnects++;
		l->dead = 1;
		return;
	}
	while (redisGetReplyFromReader(l->c, (void **)&rep) == REDIS_OK && rep) {
		if (l->relay >= 0)
			on_sub_reply(r, rep);
		else if (rep->type == REDIS_REPLY_ERROR) {
			r->publish_errors++;
			r->errors++;
			pubsub_note_error(r, "publish", rep->str);
		} else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
			r->answered_zero++;
		}
		freeReplyObject(rep);
	}
}

/* Waits up to timeout_ms for the links, then reads and writes what they allow. */
static void service(struct run *r, int timeout_ms)
{
	int n = r->nsub + r->npub;

	for (int i = 0; i < n; i++) {
		struct conn *l = i < r->nsub ? &r->sub[i] : &r->pub[i - r->nsub];

		r->pfd[i].fd = l->dead ? -1 : l->c->fd;
		r->pfd[i].events = POLLIN | (l->want_write ? POLLOUT : 0);
		r->pfd[i].revents = 0;
	}
	if (poll(r->pfd, (nfds_t)n, timeout_ms) <= 0)
		return;
	for (int i = 0; i < n; i++) {
		struct conn *l = i < r->nsub ? &r->sub[i] : &r->pub[i - r->nsub];
		int done = 0;

		if (r->pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
			read_link(r, l);
		if ((r->pfd[i].revents & POLLOUT) && !l->dead) {
			if (redisBufferWrite(l->c, &done) != REDIS_OK)
				l->dead = 1;
			l->want_write = !done;
		}
	}
}

/* This program's user + system CPU time, in seconds. */
static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The latency under which a fraction q of the window's deliveries came, in ms. */
static double lat_ms(const struct run *r, double q)
{
	long long want = (long long)(q * (double)r->w_deliveries), seen = 0;

	for (int b = 0; b < LAT_BUCKETS; b++) {
		seen += r->lat[b];
		if (seen > want)
			return (b + 0.5) * LAT_BUCKET_US / 1000.0;
	}
	return r->max_lat_us / 1000.0;
}

/* The node CPU line, node by node in port order: "47001m:52.3,...". */
static void print_node_cpu(const struct run *r, double secs, double *masters,
			   double *replicas)
{
	int order[MAX_NODES];

	for (int i = 0; i < r->nnodes; i++)
		order[i] = i;
	qsort_r(order, (size_t)r->nnodes, sizeof(int), pubsub_by_port, (void *)r);
	*masters = *replicas = 0;
	printf(" node_cpu_pct=");
	for (int k = 0; k < r->nnodes; k++) {
		const struct node *nd = &r->node[order[k]];
		double pct = nd->cpu_used_s * 100 / secs;

		printf("%s%d%c:%.1f", k ? "," : "", nd->port, nd->is_master ? 'm' : 'r', pct);
		*(nd->is_master ? masters : replicas) += pct;
	}
}

/*
 * Prints the run's line: settings, the window's rates and latencies, the
 * nodes' CPU (% of one core each, and per delivery) and this program's,
 * then the whole run's counts. lost is what was still in flight after the
 * drain; answered_zero counts publishes whose node had no subscriber for
 * them (PUBLISH in a cluster counts only its own node's subscribers).
 */
static void report(const struct run *r, double secs, double self_s)
{
	long long lost = in_flight(r), max_obuf = 0;
	double masters, replicas, cpu_s = 0;

	for (int i = 0; i < r->nnodes; i++) {
		cpu_s += r->node[i].cpu_used_s;
		if (r->node[i].max_obuf > max_obuf)
			max_obuf = r->node[i].max_obuf;
	}
	printf("mode=%s load=%s nodes=%d masters=%d fanout=%d rate=%.0f users=%d "
	       "relays=%d publishers=%d window=%d payload=%d seconds=%.1f "
	       "msgs_per_s=%.0f deliveries_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f",
	       r->o.mode == MODE_SHARDED ? "sharded" : "classic",
	       r->o.group ? "group" : "1:1", r->nnodes, r->nmasters, r->o.fanout,
	       r->o.rate, r->o.users, r->o.relays, r->o.publishers, r->o.window,
	       r->o.payload_bytes, secs,
	       r->w_messages / secs, r->w_deliveries / secs, lat_ms(r, 0.5),
	       lat_ms(r, 0.99), r->max_lat_us / 1000.0);
	print_node_cpu(r, secs, &masters, &replicas);
	printf(" masters_cpu_pct=%.1f replicas_cpu_pct=%.1f nodes_cpu_pct=%.1f "
	       "node_cpu_us_per_delivery=%.2f bench_cpu_pct=%.1f published=%lld "
	       "answered_zero=%lld delivered=%lld lost=%lld duplicated=%lld errors=%lld "
	       "disconnects=%lld unsolicited_unsubscribes=%lld max_output_buffer_kib=%lld",
	       masters, replicas, masters + replicas,
	       r->w_deliveries ? cpu_s * 1e6 / r->w_deliveries : 0,
	       self_s * 100 / secs, r->publishes, r->answered_zero, r->delivered,
	       lost, r->duplicated, r->errors, r->disconnects, r->unsolicited,
	       max_obuf / 1024);
	if (r->first_error[0])
		printf(" first_error=\"%s\"", r->first_error);
	printf("\n");
	fflush(stdout);
}

/* Takes the readings the window starts from and starts counting. */
static void window_start(struct run *r, double *self_s)
{
	for (int i = 0; i < r->nnodes; i++)
		r->node[i].cpu_s = pubsub_node_info(&r->node[i], "cpu",
						    "used_cpu_sys", "used_cpu_user");
	*self_s = self_cpu_s();
	r->measuring = 1;
}

/* Stops counting and takes the CPU used since window_start(): each node's,
 * and this program's into *self_s. */
static void window_end(struct run *r, double *self_s)
{
	r->measuring = 0;
	*self_s = self_cpu_s() - *self_s;
	for (int i = 0; i < r->nnodes; i++)
		r->node[i].cpu_used_s = pubsub_node_info(&r->node[i], "cpu",
							 "used_cpu_sys", "used_cpu_user") -
			r->node[i].cpu_s;
}

/*
 * Sends and receives until the window is over, then lets what is in
 * flight arrive. Returns 0, or 1 when interrupted.
 */
static int run_load(struct run *r)
{
	long long start = now_ns(), measure = start + r->o.warmup_s * NS;
	long long stop = measure + r->o.duration_s * NS, t0 = 0, t1 = 0, t;
	double self_s = 0;

	r->next_send_ns = (double)start;
	r->random = 0x9e3779b97f4a7c15ULL;
	while (!interrupted && (t = now_ns()) < stop) {
		int more;

		if (!t0 && t >= measure) {
			window_start(r, &self_s);
			t0 = now_ns();
		}
		more = send_due(r, t);
		service(r, more ? 0 : r->o.rate > 0 ? 1 : 10);
	}
	window_end(r, &self_s);
	t1 = now_ns();
	for (long long end = now_ns() + DRAIN_NS; in_flight(r) > 0 && now_ns() < end;)
		service(r, 10);
	for (int i = 0; i < r->nnodes; i++)
		r->node[i].max_obuf = (long long)pubsub_node_info(&r->node[i],
			"clients", "client_recent_max_output_buffer", NULL);
	if (!t0)
		return 1;
	report(r, (double)(t1 - t0) / NS, self_s);
	return interrupted;
}

/* Closes every link and frees what r holds (not r). */
static void run_release(struct run *r)
{
	for (int i = 0; i < r->nsub; i++)
		redisFree(r->sub[i].c);
	for (int i = 0; i < r->npub; i++)
		redisFree(r->pub[i].c);
	for (int i = 0; i < r->nnodes; i++)
		redisFree(r->node[i].ctl);
	free(r->sub);
	free(r->pub);
	free(r->pfd);
	free(r->user_master);
	free(r->frame);
	free(r->seen);
	free(r->lat);
}

int main(int argc, char **argv)
{
	struct run *r = calloc(1, sizeof(*r));
	int rc = 1;

	if (!r)
		return 1;
	if (parse_args(argc, argv, &r->o)) {
		free(r);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (pubsub_cluster_map(r) || pubsub_connect_controls(r) ||
	    pubsub_user_masters(r) || pubsub_subscribe_relays(r) ||
	    pubsub_connect_publishers(r) || make_frame(r)) {
		fprintf(stderr, "pubsub: setup failed%s%s\n",
			r->first_error[0] ? ": " : "", r->first_error);
		goto out;
	}
	r->pfd = calloc((size_t)(r->nsub + r->npub), sizeof(*r->pfd));
	r->lat = calloc(LAT_BUCKETS, sizeof(*r->lat));
	if (r->pfd && r->lat)
		rc = run_load(r);
out:
	run_release(r);
	free(r);
	return rc;
}
