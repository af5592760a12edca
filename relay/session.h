/*
 * session: one WebSocket and its delivery state machine (ARCHITECTURE.md
 * "How a message flows", steps 5-6), and the tables that find sockets by
 * connection id and by user. Service thread only.
 */
#ifndef RELAY_SESSION_H
#define RELAY_SESSION_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"

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
	size_t nheld;

	struct frame *out, **out_tail;
	size_t nout, out_bytes;

	unsigned char *rx;	/* a frame being reassembled */
	size_t rx_len;

	int close_code;
	char close_reason[64];

	/* Per-socket limits. */
	double send_tokens;
	long long send_refill_ms;
	long long typing_ms;
	long long typing_conv;
};

/* The per-session user data lws keeps for a socket: just our conn. */
struct pss {
	struct conn *conn;
};

struct conn *relay_conn_new(struct relay *r, struct lws *wsi);
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
