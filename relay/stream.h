/*
 * stream: GET /poll and GET /events (doc/protocol.md "Long-poll",
 * "Server-Sent Events"): a connection that authenticates with a bearer
 * token, is delivered to like a WebSocket (delivery.c), and writes its
 * answer over HTTP: the long-poll answer in one piece once it holds events
 * or times out, SSE as a stream of event blocks with keepalive comments.
 * Service thread only.
 */
#ifndef RELAY_STREAM_H
#define RELAY_STREAM_H

#include <libwebsockets.h>

#include "err.h"

struct conn;

/* HTTP 426 Upgrade Required, which lws 4.1 has no name for. */
#define RELAY_HTTP_UPGRADE_REQUIRED 426

/*
 * Starts authentication of a long-poll or SSE connection with its bearer
 * token and cursor (-1: the device's stored one). Returns 0, or -1 when the
 * token is invalid or memory ran out (the caller answers 401).
 */
int relay_stream_start(struct conn *c, const char *token, long long after);
/*
 * Writes the HTTP answer of a long-poll or SSE connection: 0 while it goes
 * on, 1 when the answer is complete, -1 to close the connection.
 */
int relay_stream_writeable(struct conn *c);
/* Every tick: the stream's heartbeat, SSE keepalive and long-poll timeout. */
void relay_stream_tick(struct conn *c, long long now_ms);
/*
 * Writes a whole JSON error answer ({"error":{code,message}}) on an HTTP
 * connection. Returns 1 when written (the caller then completes the
 * transaction), -1 when the connection must close.
 */
int relay_http_error(struct lws *wsi, int status, enum pl_err code,
		     const char *message);

#endif
