/*
 * heartbeat: a connection's side of presence (doc/architecture.md
 * "Presence"): the jobs that tell Redis a device is there or gone. A
 * WebSocket counts as a heartbeat when welcomed and on each heartbeat
 * frame; long-poll and SSE count as one while open (stream.c). Service
 * thread only; the store threads do the writes (lib/presence.h).
 */
#ifndef RELAY_HEARTBEAT_H
#define RELAY_HEARTBEAT_H

struct conn;

/* The connection is live: its device is there from now on. */
void relay_heartbeat_welcome(struct conn *c);
/* A heartbeat: at most one presence write per heartbeat interval. */
void relay_heartbeat(struct conn *c);
/* A live connection closed: its device may be gone. */
void relay_heartbeat_gone(struct conn *c);

#endif
