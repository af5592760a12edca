/*
 * parley-bench: a load generator speaking Parley's public protocol.
 *
 * It signs users up and logs them in over REST (libcurl), then holds their
 * WebSockets on one libwebsockets client context and runs a scenario:
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
 *          resident memory per socket (from /proc/PID/status, --relay-pid).
 *
 * Every run is bounded (--duration) and talks to loopback addresses only.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	struct client *c;
	struct lws_context *ctx;
	int connected, welcomed;
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

static int setup_accounts(void)
{
	CURL *curl = curl_easy_init();
	char name[64];
	long status;
	unsigned int salt = (unsigned int)(now_ns() / 1000) & 0xffffff;

	if (!curl)
		return -1;
	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];
		json_t *r;

		snprintf(name, sizeof(name), "%s%06x%d", B.prefix, salt, i);
		r = post(curl, "/api/v1/users", json_pack("{s:s,s:s}", "username",
			 name, "password", "bench-password"), NULL, &status);
		json_decref(r);
		if (status != 201) {
			fprintf(stderr, "signup %s: HTTP %ld\n", name, status);
			return -1;
		}
		r = post(curl, "/api/v1/sessions", json_pack("{s:s,s:s}", "username",
			 name, "password", "bench-password"), NULL, &status);
		if (status != 201 || !r) {
			fprintf(stderr, "login %s: HTTP %ld\n", name, status);
			json_decref(r);
			return -1;
		}
		snprintf(c->token, sizeof(c->token), "%s",
			 json_string_value(json_object_get(r, "token")));
		c->user_id = json_integer_value(json_object_get(
			json_object_get(r, "user"), "id"));
		c->index = i;
		json_decref(r);
	}
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
			json_decref(r);
		}
	}
	curl_easy_cleanup(curl);
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
			snprintf(frame, sizeof(frame),
				 "{\"type\":\"hello\",\"token\":\"%s\",\"cursor\":9007199254740991}",
				 c->token);
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
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c && !c->closed) {
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
		if (!c->conversation_id || now >= B.stop_ns)
			continue;
		if (per_client > 0) {
			if (now < c->next_send_ns)
				continue;
			c->next_send_ns = (c->next_send_ns ? c->next_send_ns : now) +
					  (long long)(1e9 / per_client);
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
		lws_service(B.ctx, 0);
		if (all_welcomed && B.welcomed >= B.clients)
			break;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: parley-bench [--api URL] [--ws URL] [--scenario pairs|groups|idle]\n"
		"  [--clients N] [--group-size M] [--rate MSGS_PER_S|0] [--window W]\n"
		"  [--duration S]\n"
		"  [--warmup S] [--relay-pid PID] [--heartbeat S] [--prefix NAME]\n");
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	long rss_before = -1, rss_after = -1;
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
	    B.duration_s > 600 || B.window < 1 ||
	    sscanf(B.ws_url, "ws://%127[^:/]:%d%127s", B.host, &B.port, B.path) < 2) {
		usage();
		return 2;
	}
	p = strchr(B.ws_url + 5, '/');
	snprintf(B.path, sizeof(B.path), "%s", p ? p : "/ws");
	signal(SIGINT, on_signal);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	B.c = calloc((size_t)B.clients, sizeof(*B.c));
	if (!B.c || setup_accounts())
		return 1;
	if (B.relay_pid)
		rss_before = rss_kib(B.relay_pid);

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = (unsigned int)B.clients + 64;
	B.ctx = lws_create_context(&info);
	if (!B.ctx)
		return 1;
	t0 = now_ns();
	B.stop_ns = INT64_MAX;
	lws_sul_schedule(B.ctx, 0, &pace, on_pace, 1000);
	for (int i = 0; i < B.clients; i++) {
		connect_client(&B.c[i]);
		if (i % 200 == 199)
			lws_service(B.ctx, 0);
	}
	service_until(t0 + 60 * 1000000000LL, 1);
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
		printf("idle sockets=%d relay_rss_before_kib=%ld relay_rss_after_kib=%ld "
		       "per_socket_kib=%.2f\n", B.welcomed, rss_before, rss_after,
		       B.welcomed ? (double)(rss_after - rss_before) / B.welcomed : 0);
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
