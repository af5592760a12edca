/*
 * session: a connection's life on the service thread (doc/protocol.md
 * "WebSocket"; doc/architecture.md "How a message flows", steps 5-6): the
 * hello and its deadline, the session check (a store job), the bus
 * subscription, the welcome, the frames of a live WebSocket (send, ack,
 * heartbeat, typing, read) within the socket's frame budget, the cursor
 * its acks move, and the close. Service thread only.
 */
#ifndef RELAY_SESSION_H
#define RELAY_SESSION_H

#include <stddef.h>

#include "token.h"

struct conn;
struct relay;

/*
 * Starts the session check of c for claims (borrowed), to deliver after
 * cursor (-1: the device's stored one). Returns 0, or -1 when out of
 * memory (the caller closes c).
 */
int relay_session_begin(struct conn *c, const struct pl_token_claims *claims,
			long long cursor);
/* An EV_AUTH_OK: the session is live, with the device's stored cursor and
 * the user's head. Subscribes or welcomes. */
void relay_session_auth_ok(struct conn *c, long long stored, long long head);
/* An EV_SUBSCRIBED: welcomes the user's connections that waited for it. */
void relay_session_subscribed(struct relay *r, long long user_id);

/* Handles one complete text frame from the client. */
void relay_session_frame(struct conn *c, const char *text, size_t len);
/* The hello deadline passed. */
void relay_session_timer(struct conn *c);
/* lws closed c: stores its cursor, leaves its user and frees it. */
void relay_session_closed(struct conn *c);

/* Queues c's cursor for the next write if its acks moved it. */
void relay_session_store_cursor(struct conn *c);
/* Submits the cursors gathered since the last call as one job. */
void relay_cursor_flush(struct relay *r);

#endif
