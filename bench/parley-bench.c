/*
 * parley-bench: a load generator speaking Parley's public protocol.
 *
 * It makes its users with parley-admin (--admin: "users add" and "session",
 * thousands of accounts in seconds) or else signs them up and logs them in
 * over REST (libcurl), then holds their WebSockets on one libwebsockets
 * client context and runs a scenario:
 *
 *   pairs  N clients in A<->B pairs, each pair sharing a direct
 *          conversation. Open loop at --rate total msgs/s, or closed loop
 *          flat out with --window sends in flight per client (--rate 0).
 *          Every body carries its send time; the peer measures
 *          send->deliver latency and checks each message arrives exactly
 *          once. Reports sent, acked (sent frames), delivered, lost,
 *          duplicated, delivered msgs/s and p50/p90/p99/max latency.
 *          Every client acks the newest seq it has every 200 ms, as an
 *          app does; with --chatter 1 it also sends typing every 3 s and
 *          a read receipt at most once a second. --cpu NAME=PID adds the CPU a process
 *          (with its children) spent over the traffic, and per 1,000
 *          messages stored.
 *   groups like pairs, but in groups of --group-size members: every message
 *          fans out to the other members, each checked exactly once.
 *   idle   N authenticated sockets that only heartbeat; reports the relay's
 *          resident memory per socket (from /proc/PID/status, --relay-pid)
 *          and Redis's used_memory growth (INFO memory, --redis-port).
 *   storm  N clients in A<->B pairs, each with --backlog K missed messages
 *          (sent beforehand by a second device of A over its own
 *          WebSocket; set-up time is not measured), then all N connect and
 *          say hello at once with their stored cursor. Reports
 *          authenticated connects/s (connect -> welcome), the hello->welcome
 *          latency, the time until every backlog arrived and the backlog's
 *          lost and duplicated messages.
 *
 * Every run is bounded (--duration) and talks to loopback addresses only.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "banned.h"

struct bench B;
volatile sig_atomic_t interrupted;

long long bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static long rss_kib(int pid)
{
	char path[64], line[256];
	FILE *f;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Redis's used_memory in bytes (INFO memory on 127.0.0.1:port), or -1. */
static long long redis_used_memory(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char reply[65536];
	size_t n = 0;
	long long used = -1, want = -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	const char *p;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, "INFO memory\r\n", 13) == 13) {
		/* A bulk string: $LEN\r\n then LEN bytes. */
		while (n < sizeof(reply) - 1) {
			ssize_t got = read(fd, reply + n, sizeof(reply) - 1 - n);

			if (got <= 0)
				break;
			n += (size_t)got;
			reply[n] = '\0';
			if (want < 0 && (p = strstr(reply, "\r\n")) && reply[0] == '$')
				want = strtoll(reply + 1, NULL, 10) + (p - reply) + 2;
			if (want >= 0 && (long long)n >= want)
				break;
		}
		reply[n] = '\0';
		p = strstr(reply, "\nused_memory:");
		if (p)
			used = strtoll(p + 13, NULL, 10);
	}
	close(fd);
	return used;
}

/* Fields 14-17 of /proc/PID/stat (utime, stime, cutime, cstime), or the
 * first two alone: CPU in clock ticks, 0 when the process is gone. */
static long long stat_jiffies(int pid, int with_reaped)
{
	char path[64], line[1024], *p;
	unsigned long long ut, st;
	long long cut, cst;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	n = p ? sscanf(p, ") %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
		       &ut, &st, &cut, &cst) : 0;
	if (n != 4)
		return 0;
	return (long long)(ut + st) + (with_reaped ? cut + cst : 0);
}

/* A process's CPU in clock ticks: its own, its reaped children's and its
 * live children's (a postmaster's backends, nginx's workers). */
static long long proc_jiffies(int pid)
{
	char path[64];
	long long sum = stat_jiffies(pid, 1);
	int kid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	f = fopen(path, "r");
	if (!f)
		return sum;
	while (fscanf(f, "%d", &kid) == 1)
		sum += stat_jiffies(kid, 0);
	fclose(f);
	return sum;
}

/* --cpu NAME=PID: one more process whose CPU over the traffic is shown. */
static int parse_cpu(const char *v)
{
	const char *eq = strchr(v, '=');
	char *end;
	long pid = eq ? strtol(eq + 1, &end, 10) : 0;

	if (!eq || eq == v || eq - v >= (long)sizeof(B.cpu[0].name) ||
	    B.ncpu == BENCH_CPU_PARTS || pid <= 0 || pid > INT32_MAX || *end)
		return -1;
	memcpy(B.cpu[B.ncpu].name, v, (size_t)(eq - v));
	B.cpu[B.ncpu].name[eq - v] = '\0';
	B.cpu[B.ncpu++].pid = (int)pid;
	return 0;
}

static void cpu_mark(void)
{
	for (int i = 0; i < B.ncpu; i++)
		B.cpu[i].jiffies0 = proc_jiffies(B.cpu[i].pid);
}

/* Prints cpu_ms_NAME=MS for each --cpu process since cpu_mark(), and
 * cpu_ms_NAME_per_1000=MS per 1,000 of the messages stored. */
static void cpu_report(long long stored)
{
	long hz = sysconf(_SC_CLK_TCK);

	for (int i = 0; i < B.ncpu; i++) {
		double ms = (double)(proc_jiffies(B.cpu[i].pid) - B.cpu[i].jiffies0) *
			    1000.0 / (double)(hz > 0 ? hz : 100);

		printf("cpu_ms_%s=%.0f cpu_ms_%s_per_1000=%.1f%s", B.cpu[i].name, ms,
		       B.cpu[i].name, stored ? ms * 1000.0 / (double)stored : 0,
		       i + 1 < B.ncpu ? " " : "\n");
	}
}

/* --ws URL[,URL...]: the relays the clients spread over. Returns 0 or -1. */
static int parse_relays(const char *list)
{
	for (B.nrelays = 0; *list && B.nrelays < BENCH_RELAYS; B.nrelays++) {
		char url[300];
		size_t n = strcspn(list, ",");
		const char *p;

		if (n >= sizeof(url))
			return -1;
		memcpy(url, list, n);
		url[n] = '\0';
		list += n + (list[n] == ',');
		if (sscanf(url, "ws://%127[^:/]:%d", B.relay[B.nrelays].host,
			   &B.relay[B.nrelays].port) < 2)
			return -1;
		p = strchr(url + 5, '/');
		snprintf(B.relay[B.nrelays].path, sizeof(B.relay[0].path), "%s",
			 p ? p : "/ws");
	}
	return B.nrelays > 0 && !*list ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: parley-bench [--api URL] [--ws URL[,URL...]]\n"
		"  [--scenario pairs|groups|idle|storm] [--clients N] [--group-size M]\n"
		"  [--rate MSGS_PER_S|0] [--window W] [--duration S] [--warmup S]\n"
		"  [--relay-pid PID] [--redis-port PORT] [--heartbeat S] [--prefix NAME]\n"
		"  [--backlog K] [--admin PATH [--admin-config FILE]] [--chatter 0|1]\n"
		"  [--cpu NAME=PID]...\n");
}

/*
 * The storm's set-up, not measured: the senders (a second device of each
 * pair's A, B.senders) put B.backlog messages in every pair's conversation
 * and go away. Returns 0 when every one was acknowledged, else 1.
 */
static int storm_backlogs(int nsenders)
{
	long long t0, deadline, got = 0;

	B.c = B.senders;
	B.clients = nsenders;
	B.max_sends = B.backlog;
	B.rate = 0;
	B.start_ns = bench_now_ns();
	B.stop_ns = INT64_MAX;
	if (bench_start_context())
		return 1;
	t0 = bench_connect_welcomed();
	deadline = bench_now_ns() + 120 * 1000000000LL;
	while (!interrupted && bench_now_ns() < deadline) {
		long long acked = 0;

		for (int i = 0; i < nsenders; i++)
			acked += B.c[i].acked;
		if (acked >= (long long)nsenders * B.backlog)
			break;
		bench_service_once();
	}
	for (int i = 0; i < nsenders; i++)
		got += B.c[i].acked;
	bench_stop_context();
	fprintf(stderr, "storm set-up: %lld of %lld backlog messages acknowledged "
		"in %.2f s\n", got, (long long)nsenders * B.backlog,
		(double)(bench_now_ns() - t0) / 1e9);
	return got < (long long)nsenders * B.backlog ? 1 : 0;
}

/*
 * Prints the storm's results: the storm started at t0; settled is
 * bench_all_backlogs()'s last answer. Returns 1 when every backlog
 * arrived, else 0.
 */
static int storm_report(long long t0, int settled)
{
	long long last_welcome = 0, last_backlog = 0, got = 0;
	long long *hw = calloc((size_t)B.clients, sizeof(*hw));
	int done = settled == 1;

	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];

		if (c->welcomed) {
			if (c->welcome_ns > last_welcome)
				last_welcome = c->welcome_ns;
			if (hw)
				hw[got++] = (c->welcome_ns - c->hello_ns) / 1000;
		}
		if (c->backlog_done_ns > last_backlog)
			last_backlog = c->backlog_done_ns;
	}
	if (hw)
		qsort(hw, (size_t)got, sizeof(*hw), cmp_ll);
	printf("scenario=storm clients=%d backlog=%d welcomed=%d all_welcomed_s=%.2f "
	       "connects_per_s=%.0f\n", B.clients, B.backlog, B.welcomed,
	       (double)(last_welcome - t0) / 1e9,
	       last_welcome > t0 ? B.welcomed / ((double)(last_welcome - t0) / 1e9) : 0);
	if (B.connect_errors || B.closed)
		fprintf(stderr, "storm: %d connections failed, %d closed (first: %s)\n",
			B.connect_errors, B.closed, B.first_error);
	printf("connect_errors=%d closed=%d\n", B.connect_errors, B.closed);
	printf("hello_welcome_ms p50=%.2f p99=%.2f max=%.2f\n",
	       got ? hw[got / 2] / 1000.0 : 0, got ? hw[got * 99 / 100] / 1000.0 : 0,
	       got ? hw[got - 1] / 1000.0 : 0);
	/* Without every backlog: when the last complete one arrived. */
	printf("backlog_expected=%lld delivered=%lld lost=%lld duplicated=%lld "
	       "all_backlogs_s=%.2f complete=%d\n", (long long)B.clients * B.backlog,
	       B.delivered, (long long)B.clients * B.backlog - B.delivered,
	       B.duplicated, settled ? (double)(last_backlog - t0) / 1e9 :
	       (double)B.duration_s, done);
	free(hw);
	return done;
}

/*
 * storm: the senders put K messages in every pair's conversation and go
 * away (storm_backlogs); then every storm client connects at once and
 * resumes from its device's stored cursor, which is before those K
 * messages.
 */
static int run_storm(void)
{
	struct client *storm = B.c;
	int nclients = B.clients;
	long long t0, deadline;
	int done, settled = 0;

	if (storm_backlogs(B.clients / 2))
		return 1;

	B.c = storm;
	B.clients = nclients;
	B.welcomed = B.connected = B.connect_errors = B.closed = 0;
	B.first_error[0] = '\0';
	B.delivered = B.duplicated = 0;
	B.storm_phase = 1;
	if (bench_start_context())
		return 1;
	t0 = bench_now_ns();
	bench_connect_all();
	deadline = t0 + (long long)B.duration_s * 1000000000LL;
	while (!interrupted && bench_now_ns() < deadline && !settled) {
		bench_service_once();
		settled = bench_all_backlogs();
	}
	done = storm_report(t0, settled);
	bench_stop_context();
	return done ? 0 : 1;
}

/*
 * Makes room for n sockets under the descriptor limit (ulimit -n), raising
 * it when the hard limit allows. lws indexes its sockets by descriptor in a
 * table as long as this limit (fd_limit_per_thread is left unset: a shorter
 * table is scanned on every event instead).
 */
static int fd_room(int n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	if (rl.rlim_cur < (rlim_t)n && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n ? rl.rlim_max : (rlim_t)n;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)n) {
		fprintf(stderr, "parley-bench: %d sockets need %d descriptors; "
			"ulimit -n is %llu\n", B.clients, n,
			(unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/*
 * Reads the options into B (after the defaults) and checks them. Returns
 * -1 to go on, or 2 after printing the usage.
 */
static int parse_args(int argc, char **argv)
{

	B.api = "http://127.0.0.1:8080";
	B.ws_url = "ws://127.0.0.1:8091/ws";
	B.scenario = "pairs";
	B.prefix = "bench";
	B.clients = 100;
	B.rate = 1000;
	B.window = 8;
	B.duration_s = 10;
	B.warmup_s = 2;
	B.heartbeat_s = 5;
	B.backlog = 10;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			usage();
			return 2;
		}
		if (!strcmp(argv[i], "--api")) B.api = v;
		else if (!strcmp(argv[i], "--ws")) B.ws_url = v;
		else if (!strcmp(argv[i], "--scenario")) B.scenario = v;
		else if (!strcmp(argv[i], "--clients")) B.clients = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--group-size")) B.group_size = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--rate")) B.rate = strtod(v, NULL);
		else if (!strcmp(argv[i], "--window")) B.window = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--duration")) B.duration_s = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--warmup")) B.warmup_s = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--relay-pid")) B.relay_pid = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--heartbeat")) B.heartbeat_s = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--prefix")) B.prefix = v;
		else if (!strcmp(argv[i], "--admin")) B.admin = v;
		else if (!strcmp(argv[i], "--admin-config")) B.admin_config = v;
		else if (!strcmp(argv[i], "--redis-port")) B.redis_port = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--backlog")) B.backlog = (int)strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--chatter")) B.chatter = !!strtol(v, NULL, 10);
		else if (!strcmp(argv[i], "--cpu") && !parse_cpu(v)) ;
		else {
			usage();
			return 2;
		}
		i++;
	}
	if (!B.group_size)
		B.group_size = strcmp(B.scenario, "groups") == 0 ? 10 : 2;
	if (B.clients < 2 || B.clients > MAX_CLIENTS || B.duration_s < 1 ||
	    B.group_size < 2 || B.group_size > 500 ||
	    B.duration_s > 600 || B.window < 1 || B.backlog < 1 ||
	    B.backlog > 10000 || strlen(B.prefix) > 16 ||
	    (strcmp(B.scenario, "pairs") && strcmp(B.scenario, "groups") &&
	     strcmp(B.scenario, "idle") && strcmp(B.scenario, "storm")) ||
	    (!strcmp(B.scenario, "storm") && (B.group_size != 2 || B.clients % 2)) ||
	    parse_relays(B.ws_url)) {
		usage();
		return 2;
	}
	return -1;
}

/*
 * idle: the sockets only heartbeat until B.stop_ns; prints the relay's
 * and Redis's memory growth from the readings taken before they connected.
 */
static void run_idle(long rss_before, long long redis_before)
{
	long rss_after = -1;
	long long redis_after = -1;

	bench_service_until(B.stop_ns, 0);
	if (B.relay_pid)
		rss_after = rss_kib(B.relay_pid);
	if (B.redis_port)
		redis_after = redis_used_memory(B.redis_port);
	printf("connect_errors=%d closed=%d\n", B.connect_errors, B.closed);
	printf("idle sockets=%d relay_rss_before_kib=%ld relay_rss_after_kib=%ld "
	       "per_socket_kib=%.2f\n", B.welcomed, rss_before, rss_after,
	       B.welcomed ? (double)(rss_after - rss_before) / B.welcomed : 0);
	printf("redis_used_before_kib=%lld redis_used_after_kib=%lld "
	       "redis_growth_kib=%lld redis_per_socket_bytes=%.0f\n",
	       redis_before / 1024, redis_after / 1024,
	       (redis_after - redis_before) / 1024,
	       B.welcomed && redis_before >= 0 && redis_after >= 0 ?
	       (double)(redis_after - redis_before) / B.welcomed : 0);
}

/* Acknowledged sends that some other member of the group never received. */
static long long count_lost(void)
{
	long long lost = 0;

	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];

		if (!c->conversation_id)
			continue;
		/* Every acknowledged send must reach every other member. */
		for (int j = c->group; j < c->group + B.group_size; j++) {
			struct client *r = &B.c[j];

			if (r == c)
				continue;
			for (long long m = 1; m < c->acked_cap; m++)
				if (c->acked_mid[m] && (m >= r->seen_cap || !r->seen[m]))
					lost++;
		}
	}
	return lost;
}

/* Whether every send was answered and every acknowledged one arrived. */
static int all_arrived(void)
{
	for (int i = 0; i < B.clients; i++)
		if (B.c[i].acked != B.c[i].sent)
			return 0;
	return count_lost() == 0;
}

/*
 * Lets what is in flight arrive: 3 s, then while something is missing and
 * messages still come, a second more, up to DRAIN_MAX_S in all: a message
 * that arrives late counts in the latency tail, and "lost" is what never
 * came while the stack went on delivering, not a backlog cut short.
 */
#define DRAIN_MAX_S 30

static void drain(void)
{
	long long t0 = bench_now_ns(), before;

	bench_service_until(t0 + 3000000000LL, 0);
	do {
		before = B.delivered;
		if (all_arrived())
			break;
		bench_service_until(bench_now_ns() + 1000000000LL, 0);
	} while (B.delivered > before && !interrupted &&
		 bench_now_ns() - t0 < DRAIN_MAX_S * 1000000000LL);
	printf("drain_s=%.1f\n", (double)(bench_now_ns() - t0) / 1e9);
}

/* pairs and groups: sends until B.stop_ns, then the counts and latencies. */
static void run_traffic(void)
{
	long long sent = 0, acked = 0, lost, delivered_window = 0, due = 0;

	bench_service_until(B.stop_ns, 0);
	drain();
	for (int i = 0; i < B.clients; i++) {
		sent += B.c[i].sent;
		acked += B.c[i].acked;
		due += B.c[i].sent_in_window;
	}
	lost = count_lost();
	qsort(B.lat_us, B.nlat, sizeof(*B.lat_us), cmp_ll);
	delivered_window = (long long)B.nlat;
	printf("sent=%lld acked=%lld delivered=%lld lost=%lld duplicated=%lld\n",
	       sent, acked, B.delivered, lost, B.duplicated);
	cpu_report(acked);
	printf("connect_errors=%d closed=%d\n", B.connect_errors, B.closed);
	if (B.closed)
		fprintf(stderr, "%d sockets closed early (first: %s)\n", B.closed,
			B.first_error);
	/* What was offered, and what the clients managed to send of it: a
	 * rate the generator could not keep is no measurement of it. */
	printf("offered_per_s=%.0f sent_per_s=%.0f offered_deliveries_per_s=%.0f\n",
	       B.rate, (double)due / B.duration_s, B.rate * (B.group_size - 1));
	printf("group_size=%d ", B.group_size);
	printf("delivered_per_s=%.0f latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f\n",
	       (double)delivered_window / B.duration_s,
	       B.nlat ? B.lat_us[B.nlat / 2] / 1000.0 : 0,
	       B.nlat ? B.lat_us[B.nlat * 9 / 10] / 1000.0 : 0,
	       B.nlat ? B.lat_us[B.nlat * 99 / 100] / 1000.0 : 0,
	       B.nlat ? B.lat_us[B.nlat - 1] / 1000.0 : 0);
}

int main(int argc, char **argv)
{
	long rss_before = -1;
	long long redis_before = -1;
	long long t0;
	int status = parse_args(argc, argv);

	if (status >= 0)
		return status;
	if (fd_room(B.clients + 256))
		return 2;
	signal(SIGINT, on_signal);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	B.c = calloc((size_t)B.clients, sizeof(*B.c));
	if (!B.c || bench_setup_accounts())
		return 1;
	lws_set_log_level(LLL_ERR, NULL);
	if (strcmp(B.scenario, "storm") == 0) {
		int rc = run_storm();

		curl_global_cleanup();
		return rc;
	}
	if (B.relay_pid)
		rss_before = rss_kib(B.relay_pid);
	if (B.redis_port)
		redis_before = redis_used_memory(B.redis_port);

	B.stop_ns = INT64_MAX;
	if (bench_start_context())
		return 1;
	t0 = bench_connect_welcomed();
	printf("scenario=%s clients=%d welcomed=%d connect_s=%.2f\n", B.scenario,
	       B.clients, B.welcomed, (double)(bench_now_ns() - t0) / 1e9);
	/* Seen at once by a script waiting for the sockets (bench/run's
	 * mixed scenario). */
	fflush(stdout);
	if (B.welcomed < B.clients)
		fprintf(stderr, "only %d of %d sockets were welcomed\n", B.welcomed,
			B.clients);

	B.start_ns = bench_now_ns();
	B.measure_ns = B.start_ns + (long long)B.warmup_s * 1000000000LL;
	B.stop_ns = B.measure_ns + (long long)B.duration_s * 1000000000LL;
	cpu_mark();
	if (strcmp(B.scenario, "idle") == 0)
		run_idle(rss_before, redis_before);
	else
		run_traffic();
	bench_stop_context();
	curl_global_cleanup();
	return 0;
}
