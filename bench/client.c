/*
 * client: the benchmark's WebSocket clients, all on one libwebsockets client
 * context driven by a libev loop. The protocol callback says hello, counts
 * welcomes, acknowledgements and messages (each checked exactly once) and
 * writes the sends and heartbeats that drive() schedules.
 */
#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "banned.h"

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
	long long now = bench_now_ns();

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
	/* --chatter: a read receipt for the newest message, once a second. */
	if (B.chatter && now - c->last_read_ns >= 1000000000LL) {
		c->read_due = mid;
		c->last_read_ns = now;
		lws_callback_on_writable(c->wsi);
	}
	/* Every send due within the window counts, however late it arrives
	 * (after the window too, while the run drains): the tail is the
	 * tail. */
	if (ns >= B.measure_ns && ns < B.stop_ns)
		record_latency((now - ns) / 1000);
}

/* A frame from the relay (in, len bytes) for client c. */
static void on_receive(struct client *c, const void *in, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(in, len, 0, &jerr);
	const char *type;

	if (!o)
		return;
	type = json_string_value(json_object_get(o, "type"));
	if (type && strcmp(type, "welcome") == 0) {
		c->welcomed = 1;
		c->welcome_ns = bench_now_ns();
		B.welcomed++;
	} else if (type && strcmp(type, "sent") == 0) {
		long long mid = json_integer_value(json_object_get(o, "message_id"));

		c->acked++;
		c->inflight--;
		if (mid > 0)
			mark(&c->acked_mid, &c->acked_cap, mid);
	} else if (type && strcmp(type, "message") == 0) {
		on_message(c, o);
	}
	/* Whatever carries a seq is acknowledged, as an app does: the
	 * newest one, every ACK_EVERY_NS at most (drive()). */
	if (json_integer_value(json_object_get(o, "seq")) > c->ack_due)
		c->ack_due = json_integer_value(json_object_get(o, "seq")); else if (type && strcmp(type, "error") == 0) {
		c->inflight--;
	}
	json_decref(o);
}

/*
 * The frames a welcomed client writes besides its sends: an ack of the
 * newest seq, a read receipt and a typing frame (--chatter). Writes one
 * and returns 1 (asking to write again while more wait), or returns 0.
 */
static int write_side_frame(struct client *c, int *rc)
{
	char frame[160];

	if (c->ack_due > c->ack_sent && c->ack_now) {
		c->ack_now = 0;
		c->ack_sent = c->ack_due;
		snprintf(frame, sizeof(frame), "{\"type\":\"ack\",\"seq\":%lld}", c->ack_sent);
	} else if (c->read_due > c->read_sent) {
		c->read_sent = c->read_due;
		snprintf(frame, sizeof(frame), "{\"type\":\"read\",\"conversation_id\":%lld,"
			 "\"message_id\":%lld}", c->conversation_id, c->read_sent);
	} else if (c->typing_due) {
		c->typing_due = 0;
		snprintf(frame, sizeof(frame), "{\"type\":\"typing\",\"conversation_id\":%lld}",
			 c->conversation_id);
	} else {
		return 0;
	}
	*rc = write_frame(c, frame);
	if (c->want_write || c->ack_now || c->read_due > c->read_sent || c->typing_due)
		lws_callback_on_writable(c->wsi);
	return 1;
}

/*
 * Writes what c wants written (want_write: 1 hello or a send, 2 a
 * heartbeat; or a side frame first), one frame. Returns lws's verdict: 0,
 * or -1 to close.
 */
static int on_writeable(struct client *c)
{
	char frame[2048];
	int rc;

	if (c->welcomed && write_side_frame(c, &rc))
		return rc;
	if (!c->welcomed && c->want_write) {
		c->want_write = 0;
		/* Storm clients resume from their device's stored cursor. */
		snprintf(frame, sizeof(frame),
			 "{\"type\":\"hello\",\"token\":\"%s\"%s}", c->token,
			 B.storm_phase ? "" : ",\"cursor\":9007199254740991");
		c->hello_ns = bench_now_ns();
		return write_frame(c, frame);
	}
	if (c->welcomed && c->want_write == 2) {
		c->want_write = 0;
		c->last_heartbeat_ns = bench_now_ns();
		return write_frame(c, "{\"type\":\"heartbeat\"}");
	}
	if (c->welcomed && c->conversation_id && c->want_write == 1) {
		long long k = c->next_seq_to_send++;

		c->want_write = 0;
		snprintf(frame, sizeof(frame),
			 "{\"type\":\"send\",\"conversation_id\":%lld,"
			 "\"client_msg_id\":\"b%d-%lld\",\"body\":\"%lld:%lld "
			 "%.*s\"}", c->conversation_id, c->index, k, k, c->due_ns,
			 BODY_PAD, "bench-bench-bench-bench-bench-bench-bench-bench-"
			 "bench-bench-bench-bench-bench");
		c->sent++;
		c->inflight++;
		if (c->due_ns >= B.measure_ns && c->due_ns < B.stop_ns)
			c->sent_in_window++;
		return write_frame(c, frame);
	}
	return 0;
}

/* A connection error or close: counted once, the first one's reason kept. */
static void on_gone(struct client *c, enum lws_callback_reasons reason,
		    const void *in)
{
	if (!c || c->closed)
		return;
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

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		    void *in, size_t len)
{
	struct client *c = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		B.connected++;
		c->want_write = 1;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		on_receive(c, in, len);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(c);
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
		on_gone(c, reason, in);
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
	/* Spread over the relays by the client's place in B.c. */
	int r = (int)((c - B.c) % B.nrelays);

	memset(&info, 0, sizeof(info));
	info.context = B.ctx;
	info.address = B.relay[r].host;
	info.port = B.relay[r].port;
	info.path = B.relay[r].path;
	info.host = B.relay[r].host;
	info.origin = B.relay[r].host;
	info.protocol = "parley.v1";
	info.opaque_user_data = c;
	info.pwsi = &c->wsi;
	lws_client_connect_via_info(&info);
}

/* Acks are coalesced as apps coalesce them (parley-client: 200 ms). */
#define ACK_EVERY_NS 200000000LL

/* Schedules sends, heartbeats and acks: called between service rounds. */
static void drive(long long now)
{
	double per_client = B.rate > 0 ? B.rate / B.clients : 0;
	long long heartbeat_ns = (long long)B.heartbeat_s * 1000000000LL;

	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];

		if (!c->wsi || !c->welcomed)
			continue;
		if (c->ack_due > c->ack_sent && now - c->last_ack_ns >= ACK_EVERY_NS) {
			c->ack_now = 1;
			c->last_ack_ns = now;
			lws_callback_on_writable(c->wsi);
		}
		if (B.chatter && c->conversation_id && now < B.stop_ns &&
		    now - c->last_typing_ns >= 3000000000LL) {
			c->typing_due = 1;
			c->last_typing_ns = now;
			lws_callback_on_writable(c->wsi);
		}
		if (c->want_write)
			continue;
		if (now - c->last_heartbeat_ns > heartbeat_ns) {
			c->want_write = 2;
			lws_callback_on_writable(c->wsi);
			continue;
		}
		/* Sends start once every socket is welcomed (B.start_ns). */
		if (!c->conversation_id || !B.start_ns || now >= B.stop_ns || B.storm_phase ||
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
			/* Latency counts from when the send was due, not from
			 * when it got written: a send held up behind a slow
			 * socket or a busy loop is late by that much too (no
			 * coordinated omission). */
			c->due_ns = c->next_send_ns;
			c->next_send_ns += (long long)(1e9 / per_client);
		} else if (c->inflight >= B.window) {
			continue;
		} else {
			c->due_ns = now;
		}
		c->want_write = 1;
		lws_callback_on_writable(c->wsi);
	}
}

static struct ev_loop *loop;
static void *foreign_loops[1];

/* Serves what is ready, waiting for it if nothing is. */
void bench_service_once(void)
{
	ev_run(loop, EVRUN_ONCE);
}

/* Wakes the service loop every millisecond to pace sends. */
static lws_sorted_usec_list_t pace;

static void on_pace(lws_sorted_usec_list_t *sul)
{
	drive(bench_now_ns());
	lws_sul_schedule(B.ctx, 0, sul, on_pace, 1000);
}

void bench_service_until(long long deadline_ns, int all_welcomed)
{
	while (!interrupted && bench_now_ns() < deadline_ns) {
		bench_service_once();
		if (all_welcomed && B.welcomed >= B.clients)
			break;
	}
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
void bench_connect_all(void)
{
	for (int i = 0; i < B.clients; i++) {
		connect_client(&B.c[i]);
		if (i % 200 == 199)
			bench_service_once();
	}
}

/* A new lws context with the pacer running. Returns 0, or -1. */
int bench_start_context(void)
{
	B.ctx = new_context();
	if (!B.ctx)
		return -1;
	lws_sul_schedule(B.ctx, 0, &pace, on_pace, 1000);
	return 0;
}

/* Stops the pacer and destroys B.ctx: the pacer's timer must leave the
 * context's list before the context goes, or the next context's schedule
 * of it writes into the freed one. */
void bench_stop_context(void)
{
	lws_sul_cancel(&pace);
	lws_context_destroy(B.ctx);
	B.ctx = NULL;
}

/* Connects every client and serves until all are welcomed (60 s at most);
 * returns when it started. */
long long bench_connect_welcomed(void)
{
	long long t0 = bench_now_ns();

	bench_connect_all();
	bench_service_until(t0 + 60 * 1000000000LL, 1);
	return t0;
}

/* 1 when every client has its whole backlog, 0 if one is still waiting,
 * -1 when the rest went away without it. */
int bench_all_backlogs(void)
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

