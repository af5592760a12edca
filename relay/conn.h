/*
 * conn: a client connection on the service thread (a WebSocket, a long-poll
 * or an SSE stream), the tables that find connections by id and users by
 * id, and the connection's outbound queue: what is queued for the client
 * and how it goes out, one frame per writeable callback (the take-next-frame
 * step the WebSocket and SSE writers share). Service thread only.
 *
 * The outbound queue is bounded (OUT_MAX_FRAMES, OUT_MAX_BYTES in conn.c):
 * a client that does not read is closed with 4008 and resumes from its
 * cursor (doc/protocol.md "Limits").
 */
#ifndef RELAY_CONN_H
#define RELAY_CONN_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "jobs.h"

struct relay;

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

/* A user with sockets on this relay, and whether its channel is held. */
struct user {
	long long id;
	struct conn *conns;
	int nconns;
	int subscribed;		/* the bus confirmed the channel */
	struct user *next_in_table;
};

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
	long long closing_ms;	/* monotonic: when the close was decided */

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

/* The connection and user tables, made and freed with the relay. */
void relay_tables_init(struct relay *r);
void relay_tables_release(struct relay *r);

/*
 * A new connection of kind on wsi, in the table and counted in
 * r->connections; a WebSocket gets its hello deadline. Returns NULL when
 * out of memory.
 */
struct conn *relay_conn_new(struct relay *r, struct lws *wsi,
			    enum conn_kind kind);
/* Takes c out of the table and frees it and all it holds (session.c's
 * relay_session_closed() does the rest of a close first). */
void relay_conn_free(struct conn *c);
/* The connection with id, or NULL. */
struct conn *relay_conn_find(struct relay *r, uint64_t id);
/* Calls fn on every connection until fn returns non-zero; fn may close
 * connections but not free them. */
void relay_conn_foreach(struct relay *r, int (*fn)(struct conn *c, void *arg),
			void *arg);

/* The user with id; with create, made if absent (NULL when out of memory). */
struct user *relay_user_find(struct relay *r, long long id, int create);
/* Takes u out of the table and frees it (it has no connections left). */
void relay_user_drop(struct relay *r, struct user *u);

/* Queues text for the client (copied). Closes the socket (4008) when the
 * outbound queue is over its bound. */
void relay_conn_queue(struct conn *c, const char *text, size_t len);
/* Schedules a close with code and reason (once; later calls do nothing). */
void relay_conn_close(struct conn *c, int code, const char *reason);
/*
 * The shared write step: writes the next queued frame with lws_write() as
 * protocol (LWS_WRITE_TEXT or LWS_WRITE_HTTP) and asks for the next
 * callback while more is due. Returns 0 (also when nothing was queued), or
 * -1 when the write failed and the connection must close.
 */
int relay_conn_write_next(struct conn *c, enum lws_write_protocol protocol);
/* A WebSocket's writeable callback: one queued frame or the close frame;
 * returns -1 to close. */
int relay_conn_writeable(struct conn *c);

/* Queues {"type":"error",...}; ref is the client_msg_id it answers or NULL. */
void relay_conn_send_error(struct conn *c, enum pl_err code, const char *ref,
			   const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/*
 * Sends an event in the connection's own form: the frame on a WebSocket, an
 * "id:/event:/data:" block on SSE, an entry of the answer on long-poll
 * (which carries inbox events only, seq > 0).
 */
void relay_conn_emit(struct conn *c, const char *type, long long seq,
		     const char *text, size_t len);
/* Long-poll: the answer goes out now (it holds events, or timed out). */
void relay_conn_poll_ready(struct conn *c);
/* Frees the live events held ahead of a gap. */
void relay_conn_drop_held(struct conn *c);

/*
 * Queues a job a client's frame asked for (ownership moves; NULL when its
 * allocation failed), within the relay's and the socket's bounds. A job
 * that could not be made or queued is answered with an error "unavailable"
 * (a send's with its ref, to retry with the same client_msg_id) and never
 * runs. Returns 0 when queued.
 */
int relay_conn_submit(struct conn *c, struct relay_job *job, const char *ref);

#endif
