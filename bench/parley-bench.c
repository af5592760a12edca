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
#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "banned.h"

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
};

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
	char host[128];
	int port;
	char path[128];
};

static struct bench B;
static volatile sig_atomic_t interrupted;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* REST ------------------------------------------------------------------- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(void *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t len = size * nmemb;
	char *bigger = realloc(b->p, b->n + len + 1);

	if (!bigger)
		return 0;
	b->p = bigger;
	memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
	return len;
}

/* POSTs body (JSON) to path; returns the parsed answer or NULL. */
static json_t *post(CURL *curl, const char *path, json_t *body, const char *token,
		    long *status)
{
	char url[512], auth[1100];
	char *text = json_dumps(body, JSON_COMPACT);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	struct buf b = { NULL, 0 };
	json_t *out = NULL;
	json_error_t jerr;

	snprintf(url, sizeof(url), "%s%s", B.api, path);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	*status = 0;
	if (curl_easy_perform(curl) == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
		out = b.p ? json_loads(b.p, 0, &jerr) : NULL;
	}
	curl_slist_free_all(h);
	free(text);
	free(b.p);
	return out;
}

/* Logs name in over REST: a new device and its token into c. */
static int login(CURL *curl, const char *name, struct client *c)
{
	long status;
	json_t *r = post(curl, "/api/v1/sessions", json_pack("{s:s,s:s}",
			 "username", name, "password", "bench-password"), NULL,
			 &status);

	if (status != 201 || !r) {
		fprintf(stderr, "login %s: HTTP %ld\n", name, status);
		json_decref(r);
		return -1;
	}
	snprintf(c->token, sizeof(c->token), "%s",
		 json_string_value(json_object_get(r, "token")));
	c->user_id = json_integer_value(json_object_get(json_object_get(r, "user"),
							"id"));
	json_decref(r);
	return 0;
}

/* The "sub" claim of a token (base64url JSON between the dots), or 0. */
static long long token_user(const char *token)
{
	static const char *abc =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(token, '.');
	char out[1024];
	size_t n = 0;
	unsigned int acc = 0;
	int bits = 0;
	json_t *o;
	long long sub = 0;

	if (!p)
		return 0;
	for (p++; *p && *p != '.' && n < sizeof(out) - 1; p++) {
		const char *at = strchr(abc, *p);

		if (!at)
			return 0;
		acc = (acc << 6) | (unsigned int)(at - abc);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	o = json_loadb(out, n, 0, NULL);
	sub = json_integer_value(json_object_get(o, "sub"));
	json_decref(o);
	return sub;
}

/*
 * Runs B.admin with -c B.admin_config and args (NULL-terminated); returns
 * its standard output (malloc'd) if it exits 0, else NULL.
 */
static char *run_admin(const char **args, int nargs)
{
	const char **argv = calloc((size_t)nargs + 4, sizeof(*argv));
	struct buf b = { NULL, 0 };
	char chunk[65536];
	int fds[2], status, n = 0;
	ssize_t got;
	pid_t pid;

	if (!argv || pipe(fds)) {
		free(argv);
		return NULL;
	}
	argv[n++] = B.admin;
	if (B.admin_config) {
		argv[n++] = "-c";
		argv[n++] = B.admin_config;
	}
	for (int i = 0; i < nargs; i++)
		argv[n++] = args[i];
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(B.admin, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", B.admin, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	free(argv);
	while ((got = read(fds[0], chunk, sizeof(chunk))) > 0 ||
	       (got < 0 && errno == EINTR))
		if (got > 0)
			on_body(chunk, 1, (size_t)got, &b);
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s %s failed\n", B.admin, args[0]);
		free(b.p);
		return NULL;
	}
	if (!b.p)
		b.p = strdup("");
	return b.p;
}

/*
 * parley-admin: users add, then one session per client (and per storm
 * sender, a second device of each pair's A), tokens one per line.
 */
static int admin_accounts(const char *prefix, int nsenders)
{
	int n = B.clients + nsenders, nargs = 0;
	const char **args = calloc((size_t)n + 16, sizeof(*args));
	char **names = calloc((size_t)B.clients, sizeof(*names));
	char count[24], *out = NULL, *line, *save = NULL;
	int rc = -1, i = 0;

	if (!args || !names)
		goto out;
	snprintf(count, sizeof(count), "%d", B.clients);
	out = run_admin((const char *[]){ "users", "add", "--count", count,
		"--prefix", prefix, "--password", "bench-password" }, 8);
	if (!out)
		goto out;
	fprintf(stderr, "%s", out);
	free(out);
	args[nargs++] = "session";
	for (i = 0; i < B.clients; i++) {
		if (asprintf(&names[i], "%s%d", prefix, i + 1) < 0)
			goto out;
		args[nargs++] = names[i];
	}
	for (i = 0; i < nsenders; i++)
		args[nargs++] = names[2 * i];
	out = run_admin(args, nargs);
	if (!out)
		goto out;
	i = 0;
	for (line = strtok_r(out, "\n", &save); line && i < n;
	     line = strtok_r(NULL, "\n", &save), i++) {
		struct client *c = i < B.clients ? &B.c[i] : &B.senders[i - B.clients];

		snprintf(c->token, sizeof(c->token), "%s", line);
		c->user_id = token_user(line);
	}
	rc = i == n ? 0 : -1;
	if (rc)
		fprintf(stderr, "parley-admin session printed %d of %d tokens\n", i, n);
out:
	for (int j = 0; names && j < B.clients; j++)
		free(names[j]);
	free(names);
	free(args);
	free(out);
	return rc;
}

static int setup_accounts(void)
{
	CURL *curl = curl_easy_init();
	char name[64], prefix[40];
	long status;
	unsigned int salt = (unsigned int)(now_ns() / 1000) & 0xffffff;
	int storm = strcmp(B.scenario, "storm") == 0;
	int nsenders = storm ? B.clients / 2 : 0;
	long long t0 = now_ns();

	if (!curl)
		return -1;
	snprintf(prefix, sizeof(prefix), "%s%06x", B.prefix, salt);
	if (nsenders && !(B.senders = calloc((size_t)nsenders, sizeof(*B.senders))))
		return -1;
	if (B.admin && admin_accounts(prefix, nsenders))
		return -1;
	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];
		json_t *r;

		c->index = i;
		if (B.admin)
			continue;
		snprintf(name, sizeof(name), "%s%d", prefix, i + 1);
		r = post(curl, "/api/v1/users", json_pack("{s:s,s:s}", "username",
			 name, "password", "bench-password"), NULL, &status);
		json_decref(r);
		if (status != 201) {
			fprintf(stderr, "signup %s: HTTP %ld\n", name, status);
			return -1;
		}
		if (login(curl, name, c))
			return -1;
		if (i % 2 == 0 && i / 2 < nsenders &&
		    login(curl, name, &B.senders[i / 2]))
			return -1;
	}
	for (int i = 0; i < nsenders; i++)
		B.senders[i].index = B.clients + i;
	if (strcmp(B.scenario, "idle") != 0) {
		int m = B.group_size;

		for (int g = 0; g + m <= B.clients; g += m) {
			json_t *body, *r;

			if (m == 2) {
				body = json_pack("{s:s,s:I}", "kind", "direct", "user_id",
						 (json_int_t)B.c[g + 1].user_id);
			} else {
				json_t *ids = json_array();

				for (int i = g + 1; i < g + m; i++)
					json_array_append_new(ids, json_integer(B.c[i].user_id));
				body = json_pack("{s:s,s:s,s:o}", "kind", "group", "title",
						 "bench", "member_ids", ids);
			}
			r = post(curl, "/api/v1/conversations", body, B.c[g].token, &status);
			if ((status != 201 && status != 200) || !r) {
				fprintf(stderr, "conversation: HTTP %ld\n", status);
				json_decref(r);
				return -1;
			}
			for (int i = g; i < g + m; i++) {
				B.c[i].conversation_id =
					json_integer_value(json_object_get(r, "id"));
				B.c[i].group = g;
			}
			if (g / 2 < nsenders) {
				B.senders[g / 2].conversation_id = B.c[g].conversation_id;
				B.senders[g / 2].group = g;
			}
			json_decref(r);
		}
	}
	curl_easy_cleanup(curl);
	fprintf(stderr, "accounts: %d users%s%s in %.2f s (%s)\n", B.clients,
		nsenders ? " (and a second device of each A)" : "",
		strcmp(B.scenario, "idle") ? " and their conversations" : "",
		(double)(now_ns() - t0) / 1e9, B.admin ? "parley-admin" : "REST signup");
	return 0;
}

/* WebSocket -------------------------------------------------------------- */

static int write_frame(struct client *c, const char *text)
{
	unsigned char buf[LWS_PRE + 2048];
	size_t len = strlen(text);

	if (len > 2048)
		return -1;
	memcpy(buf + LWS_PRE, text, len);
	return lws_write(c->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len ? -1 : 0;
}

static void record_latency(long long us)
{
	if (B.nlat == B.lat_cap) {
		size_t cap = B.lat_cap ? B.lat_cap * 2 : 1 << 16;
		long long *bigger = realloc(B.lat_us, cap * sizeof(*bigger));

		if (!bigger)
			return;
		B.lat_us = bigger;
		B.lat_cap = cap;
	}
	B.lat_us[B.nlat++] = us;
}

/* Sets bit k of a growable byte map. */
static void mark(unsigned char **map, long long *cap, long long k)
{
	if (k >= *cap) {
		long long ncap = (k + 1) * 2;
		unsigned char *bigger = realloc(*map, (size_t)ncap);

		if (!bigger)
			return;
		memset(bigger + *cap, 0, (size_t)(ncap - *cap));
		*map = bigger;
		*cap = ncap;
	}
	(*map)[k] = 1;
}

static void on_message(struct client *c, json_t *o)
{
	const char *body = json_string_value(json_object_get(o, "body"));
	long long sender = json_integer_value(json_object_get(o, "sender_id"));
	long long mid = json_integer_value(json_object_get(o, "message_id"));
	long long k, ns;
	long long now = now_ns();

	if (B.storm_phase && mid > 0) {
		/* Every message of the pair's conversation, own ones included. */
		if (mid < c->seen_cap && c->seen[mid]) {
			B.duplicated++;
			return;
		}
		mark(&c->seen, &c->seen_cap, mid);
		B.delivered++;
		if (++c->backlog == B.backlog)
			c->backlog_done_ns = now;
		return;
	}
	if (!body || sender == c->user_id || mid <= 0 ||
	    sscanf(body, "%lld:%lld", &k, &ns) != 2)
		return;
	if (mid < c->seen_cap && c->seen[mid]) {
		B.duplicated++;
		return;
	}
	mark(&c->seen, &c->seen_cap, mid);
	B.delivered++;
	if (ns >= B.measure_ns && now <= B.stop_ns)
		record_latency((now - ns) / 1000);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		    void *in, size_t len)
{
	struct client *c = lws_get_opaque_user_data(wsi);
	json_error_t jerr;
	json_t *o;
	char frame[2048];

	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		B.connected++;
		c->want_write = 1;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		o = json_loadb(in, len, 0, &jerr);
		if (o) {
			const char *type = json_string_value(json_object_get(o, "type"));

			if (type && strcmp(type, "welcome") == 0) {
				c->welcomed = 1;
				c->welcome_ns = now_ns();
				B.welcomed++;
			} else if (type && strcmp(type, "sent") == 0) {
				long long mid = json_integer_value(json_object_get(o,
								   "message_id"));

				c->acked++;
				c->inflight--;
				if (mid > 0)
					mark(&c->acked_mid, &c->acked_cap, mid);
			} else if (type && strcmp(type, "message") == 0) {
				on_message(c, o);
			} else if (type && strcmp(type, "error") == 0) {
				c->inflight--;
			}
			json_decref(o);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!c->welcomed && c->want_write) {
			c->want_write = 0;
			/* Storm clients resume from their device's stored cursor. */
			snprintf(frame, sizeof(frame),
				 "{\"type\":\"hello\",\"token\":\"%s\"%s}", c->token,
				 B.storm_phase ? "" : ",\"cursor\":9007199254740991");
			c->hello_ns = now_ns();
			return write_frame(c, frame);
		}
		if (c->welcomed && c->want_write == 2) {
			c->want_write = 0;
			c->last_heartbeat_ns = now_ns();
			return write_frame(c, "{\"type\":\"heartbeat\"}");
		}
		if (c->welcomed && c->conversation_id && c->want_write == 1) {
			long long k = c->next_seq_to_send++;

			c->want_write = 0;
			snprintf(frame, sizeof(frame),
				 "{\"type\":\"send\",\"conversation_id\":%lld,"
				 "\"client_msg_id\":\"b%d-%lld\",\"body\":\"%lld:%lld "
				 "%.*s\"}", c->conversation_id, c->index, k, k, now_ns(),
				 BODY_PAD, "bench-bench-bench-bench-bench-bench-bench-bench-"
				 "bench-bench-bench-bench-bench");
			c->sent++;
			c->inflight++;
			return write_frame(c, frame);
		}
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* The relay's close frame: a 2-byte code and a reason. */
		if (!B.first_error[0] && len >= 2)
			snprintf(B.first_error, sizeof(B.first_error),
				 "closed by the relay: %d %.*s",
				 ((const unsigned char *)in)[0] << 8 |
				 ((const unsigned char *)in)[1], (int)(len - 2),
				 (const char *)in + 2);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c && !c->closed) {
			if (reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR)
				B.connect_errors++;
			else
				B.closed++;
			if (!B.first_error[0])
				snprintf(B.first_error, sizeof(B.first_error), "%s",
					 reason == LWS_CALLBACK_CLIENT_CLOSED ? "closed" :
					 in ? (const char *)in : "connection error");
			c->closed = 1;
			c->wsi = NULL;
		}
		break;
	default:
		break;
	}
	(void)user;
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "parley.v1", callback, 0, 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void connect_client(struct client *c)
{
	struct lws_client_connect_info info;

	memset(&info, 0, sizeof(info));
	info.context = B.ctx;
	info.address = B.host;
	info.port = B.port;
	info.path = B.path;
	info.host = B.host;
	info.origin = B.host;
	info.protocol = "parley.v1";
	info.opaque_user_data = c;
	info.pwsi = &c->wsi;
	lws_client_connect_via_info(&info);
}

/* Schedules sends and heartbeats: called between service rounds. */
static void drive(long long now)
{
	double per_client = B.rate > 0 ? B.rate / B.clients : 0;
	long long heartbeat_ns = (long long)B.heartbeat_s * 1000000000LL;

	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];

		if (!c->wsi || !c->welcomed || c->want_write)
			continue;
		if (now - c->last_heartbeat_ns > heartbeat_ns) {
			c->want_write = 2;
			lws_callback_on_writable(c->wsi);
			continue;
		}
		if (!c->conversation_id || now >= B.stop_ns || B.storm_phase ||
		    (B.max_sends && c->sent >= B.max_sends))
			continue;
		if (per_client > 0) {
			/* Open loop: client i starts i/rate seconds in, so the
			 * sends of all clients arrive evenly spaced at the total
			 * rate, not in a burst of one per client every period. */
			if (!c->next_send_ns)
				c->next_send_ns = now + (long long)(i * 1e9 / B.rate);
			if (now < c->next_send_ns)
				continue;
			c->next_send_ns += (long long)(1e9 / per_client);
		} else if (c->inflight >= B.window) {
			continue;
		}
		c->want_write = 1;
		lws_callback_on_writable(c->wsi);
	}
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

static struct ev_loop *loop;
static void *foreign_loops[1];

/* Serves what is ready, waiting for it if nothing is. */
static void service_once(void)
{
	ev_run(loop, EVRUN_ONCE);
}

/* Wakes the service loop every millisecond to pace sends. */
static lws_sorted_usec_list_t pace;

static void on_pace(lws_sorted_usec_list_t *sul)
{
	drive(now_ns());
	lws_sul_schedule(B.ctx, 0, sul, on_pace, 1000);
}

static void service_until(long long deadline_ns, int all_welcomed)
{
	while (!interrupted && now_ns() < deadline_ns) {
		service_once();
		if (all_welcomed && B.welcomed >= B.clients)
			break;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: parley-bench [--api URL] [--ws URL]\n"
		"  [--scenario pairs|groups|idle|storm] [--clients N] [--group-size M]\n"
		"  [--rate MSGS_PER_S|0] [--window W] [--duration S] [--warmup S]\n"
		"  [--relay-pid PID] [--redis-port PORT] [--heartbeat S] [--prefix NAME]\n"
		"  [--backlog K] [--admin PATH [--admin-config FILE]]\n");
}

/*
 * lws runs on a libev loop (epoll), as in the relay: its own loop polls
 * every socket on each of the millisecond pacing wakeups, which with
 * thousands of sockets cost the load generator more than the load.
 */
static struct lws_context *new_context(void)
{
	struct lws_context_creation_info info;

	if (!loop)
		loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		return NULL;
	foreign_loops[0] = loop;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_LIBEV;
	info.foreign_loops = foreign_loops;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	return lws_create_context(&info);
}

/* Connects B.c[0 .. B.clients) as fast as lws takes them. */
static void connect_all(void)
{
	for (int i = 0; i < B.clients; i++) {
		connect_client(&B.c[i]);
		if (i % 200 == 199)
			service_once();
	}
}

/* A new lws context with the pacer running. Returns 0, or -1. */
static int start_context(void)
{
	B.ctx = new_context();
	if (!B.ctx)
		return -1;
	lws_sul_schedule(B.ctx, 0, &pace, on_pace, 1000);
	return 0;
}

/* Connects every client and serves until all are welcomed (60 s at most);
 * returns when it started. */
static long long connect_welcomed(void)
{
	long long t0 = now_ns();

	connect_all();
	service_until(t0 + 60 * 1000000000LL, 1);
	return t0;
}

/* 1 when every client has its whole backlog, 0 if one is still waiting,
 * -1 when the rest went away without it. */
static int all_backlogs(void)
{
	int gone = 0;

	for (int i = 0; i < B.clients; i++) {
		if (B.c[i].backlog >= B.backlog)
			continue;
		if (!B.c[i].closed)
			return 0;
		gone = 1;
	}
	return gone ? -1 : 1;
}

/*
 * storm: the senders (a second device of each pair's A) put K messages in
 * every pair's conversation and go away; then every storm client connects
 * at once and resumes from its device's stored cursor, which is before
 * those K messages.
 */
static int run_storm(void)
{
	struct client *storm = B.c;
	int nclients = B.clients, nsenders = B.clients / 2;
	long long t0, deadline, last_welcome = 0, last_backlog = 0, got = 0;
	long long *hw;
	int done = 0, settled = 0;

	/* Set-up, not measured: the backlogs. */
	B.c = B.senders;
	B.clients = nsenders;
	B.max_sends = B.backlog;
	B.rate = 0;
	B.stop_ns = INT64_MAX;
	if (start_context())
		return 1;
	t0 = connect_welcomed();
	deadline = now_ns() + 120 * 1000000000LL;
	while (!interrupted && now_ns() < deadline) {
		long long acked = 0;

		for (int i = 0; i < nsenders; i++)
			acked += B.c[i].acked;
		if (acked >= (long long)nsenders * B.backlog)
			break;
		service_once();
	}
	for (int i = 0; i < nsenders; i++)
		got += B.c[i].acked;
	lws_context_destroy(B.ctx);
	fprintf(stderr, "storm set-up: %lld of %lld backlog messages acknowledged "
		"in %.2f s\n", got, (long long)nsenders * B.backlog,
		(double)(now_ns() - t0) / 1e9);
	if (got < (long long)nsenders * B.backlog)
		return 1;

	/* The storm. */
	B.c = storm;
	B.clients = nclients;
	B.welcomed = B.connected = B.connect_errors = B.closed = 0;
	B.first_error[0] = '\0';
	B.delivered = B.duplicated = 0;
	B.storm_phase = 1;
	if (start_context())
		return 1;
	t0 = now_ns();
	connect_all();
	deadline = t0 + (long long)B.duration_s * 1000000000LL;
	while (!interrupted && now_ns() < deadline && !settled) {
		service_once();
		settled = all_backlogs();
	}
	done = settled == 1;
	hw = calloc((size_t)nclients, sizeof(*hw));
	got = 0;
	for (int i = 0; i < nclients; i++) {
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
	       "connects_per_s=%.0f\n", nclients, B.backlog, B.welcomed,
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
	       "all_backlogs_s=%.2f complete=%d\n", (long long)nclients * B.backlog,
	       B.delivered, (long long)nclients * B.backlog - B.delivered,
	       B.duplicated, settled ? (double)(last_backlog - t0) / 1e9 :
	       (double)B.duration_s, done);
	free(hw);
	lws_context_destroy(B.ctx);
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

int main(int argc, char **argv)
{
	long rss_before = -1, rss_after = -1;
	long long redis_before = -1, redis_after = -1;
	long long t0;
	const char *p;

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
	    sscanf(B.ws_url, "ws://%127[^:/]:%d%127s", B.host, &B.port, B.path) < 2) {
		usage();
		return 2;
	}
	p = strchr(B.ws_url + 5, '/');
	snprintf(B.path, sizeof(B.path), "%s", p ? p : "/ws");
	if (fd_room(B.clients + 256))
		return 2;
	signal(SIGINT, on_signal);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	B.c = calloc((size_t)B.clients, sizeof(*B.c));
	if (!B.c || setup_accounts())
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
	if (start_context())
		return 1;
	t0 = connect_welcomed();
	printf("scenario=%s clients=%d welcomed=%d connect_s=%.2f\n", B.scenario,
	       B.clients, B.welcomed, (double)(now_ns() - t0) / 1e9);
	if (B.welcomed < B.clients)
		fprintf(stderr, "only %d of %d sockets were welcomed\n", B.welcomed,
			B.clients);

	B.start_ns = now_ns();
	B.measure_ns = B.start_ns + (long long)B.warmup_s * 1000000000LL;
	B.stop_ns = B.measure_ns + (long long)B.duration_s * 1000000000LL;
	if (strcmp(B.scenario, "idle") == 0) {
		service_until(B.stop_ns, 0);
		if (B.relay_pid)
			rss_after = rss_kib(B.relay_pid);
		if (B.redis_port)
			redis_after = redis_used_memory(B.redis_port);
		printf("idle sockets=%d relay_rss_before_kib=%ld relay_rss_after_kib=%ld "
		       "per_socket_kib=%.2f\n", B.welcomed, rss_before, rss_after,
		       B.welcomed ? (double)(rss_after - rss_before) / B.welcomed : 0);
		printf("redis_used_before_kib=%lld redis_used_after_kib=%lld "
		       "redis_growth_kib=%lld redis_per_socket_bytes=%.0f\n",
		       redis_before / 1024, redis_after / 1024,
		       (redis_after - redis_before) / 1024,
		       B.welcomed && redis_before >= 0 && redis_after >= 0 ?
		       (double)(redis_after - redis_before) / B.welcomed : 0);
	} else {
		long long sent = 0, acked = 0, lost = 0, delivered_window = 0;

		service_until(B.stop_ns, 0);
		/* Let what is in flight arrive. */
		service_until(now_ns() + 3000000000LL, 0);
		for (int i = 0; i < B.clients; i++) {
			struct client *c = &B.c[i];

			sent += c->sent;
			acked += c->acked;
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
		qsort(B.lat_us, B.nlat, sizeof(*B.lat_us), cmp_ll);
		delivered_window = (long long)B.nlat;
		printf("sent=%lld acked=%lld delivered=%lld lost=%lld duplicated=%lld\n",
		       sent, acked, B.delivered, lost, B.duplicated);
		printf("group_size=%d ", B.group_size);
		printf("delivered_per_s=%.0f latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f\n",
		       (double)delivered_window / B.duration_s,
		       B.nlat ? B.lat_us[B.nlat / 2] / 1000.0 : 0,
		       B.nlat ? B.lat_us[B.nlat * 9 / 10] / 1000.0 : 0,
		       B.nlat ? B.lat_us[B.nlat * 99 / 100] / 1000.0 : 0,
		       B.nlat ? B.lat_us[B.nlat - 1] / 1000.0 : 0);
	}
	lws_context_destroy(B.ctx);
	curl_global_cleanup();
	return 0;
}
