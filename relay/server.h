/*
 * server: the relay's lws protocols: "http" (long-poll, SSE, /metrics and
 * JSON errors) and "parley.v1" (the WebSocket). Service thread only.
 */
#ifndef RELAY_SERVER_H
#define RELAY_SERVER_H

#include <libwebsockets.h>

/* For lws_context_creation_info.protocols; the context's user is the
 * struct relay. */
extern const struct lws_protocols relay_protocols[];

#endif
