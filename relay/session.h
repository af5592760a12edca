/*
 * session: one WebSocket and its delivery state machine (doc/architecture.md
 * "How a message flows", steps 5-6), and the tables that find sockets by
 * connection id and by user. Service thread only.
 */
#ifndef RELAY_SESSION_H
#define RELAY_SESSION_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"

/* How a connection carries events (doc/protocol.md "WebSocket", "Long-poll",
 * "Server-Sent Events"). */
enum conn_kind {
	KIND_WS,
	KIND_POLL,
	KIND_SSE,
};

enum conn_state {
	CONN_HELLO,		/* waiting for the hello frame */
	CONN_AUTH,		/* session being checked */
	CONN_SUBSCRIBING,	/* waiting for the bus to confirm */
	CONN_LIVE,		/* welcomed: delivering */
	CONN_CLOSING,		/* a close frame is due */
};

struct frame {
	struct frame *next;
	size_t len;
	unsigned char data[];	/* LWS_PRE bytes, then the text */
};

/* A live event that arrived ahead of a gap, kept until the gap is filled. */
struct held {
	struct held *next;
	long long seq;
	struct frame *frame;
};

struct user;

struct conn {
	uint64_t id;
	struct lws *wsi;
	struct relay *r;
	enum conn_kind kind;
	enum conn_state state;
	long long user_id, session_id, device_id;
	struct user *user;
	struct conn *next_in_user, *next_in_table;

	long long last;		/* last seq sent on this socket */
	long long acked;	/* highest ack */
	long long stored;	/* highest cursor submitted for storage */
	int replaying;		/* an inbox read is in flight */
	int replay_again;	/* read again when it returns */
	struct held *held;	/* sorted by seq, at most HELD_MAX */
	struct held *held_last;	/* its tail */
	size_t nheld;
	long long held_since_ms;	/* monotonic: when the first was held */

	struct frame *out, **out_tail;
	size_t nout, out_bytes;

	/* Frames that came after hello and before welcome, taken in order
	 * once the socket is live (doc/protocol.md "WebSocket"); bounded. */
	struct frame *pending, **pending_tail;
	size_t npending, pending_bytes;

	unsigned char *rx;	/* a frame being reassembled */
	size_t rx_len;

	int close_code;
	char close_reason[64];

	/* Long-poll: the events gathered for the answer, and its limit. */
	json_t *poll_events;
	long long poll_limit;
	long long poll_after;
	long long poll_limit_ms;	/* when an empty answer is due */
	int poll_done;		/* the answer is ready to write */
	int http_headers_sent;
	long long keepalive_ms;	/* SSE: last write, for comment lines */

	/* Per-socket limits (doc/protocol.md "Limits"): the frame budget, a
	 * token bucket over every frame type; the last typing job and
	 * presence write, each at most one per interval; the jobs queued. */
	long long expires_s;	/* the token's expiry, epoch seconds */
	long long session_check_ms;	/* monotonic: next session check */
	double frame_tokens;
	long long frame_refill_ms;
	long long typing_ms;
	long long presence_ms;
	struct relay_jobcount *jobs;
};

/* The per-session user data lws keeps for a socket: our conn, or for a
 * plain HTTP request that gets a fixed answer, that answer. */
struct pss {
	struct conn *conn;
	int reply_status;
	size_t reply_len;
	char reply[256];
};

struct conn *relay_conn_new(struct relay *r, struct lws *wsi,
			    enum conn_kind kind);
/*
 * Starts authentication of a long-poll or SSE connection with its bearer
 * token and cursor (-1: the device's stored one). Returns 0, or -1 when the
 * token is invalid (the caller answers 401).
 */
int relay_conn_start_http(struct conn *c, const char *token, long long after);
/*
 * Writes the HTTP answer of a long-poll or SSE connection: 0 while it goes
 * on, 1 when the answer is complete, -1 to close the connection.
 */
int relay_conn_http_writeable(struct conn *c);
void relay_conn_closed(struct conn *c);
struct conn *relay_conn_find(struct relay *r, uint64_t id);

/* Handles one complete text frame from the client. */
void relay_conn_frame(struct conn *c, const char *text, size_t len);
/* Queues text for the client (copied). Closes the socket (4008) when the
 * outbound queue is over its bound. */
void relay_conn_queue(struct conn *c, const char *text, size_t len);
/* Schedules a close with code and reason. */
void relay_conn_close(struct conn *c, int code, const char *reason);
/* Writes one queued frame or the close; returns -1 to close. */
int relay_conn_writeable(struct conn *c);
/* The hello deadline passed. */
void relay_conn_timer(struct conn *c);

#endif
