/*
 * delivery: a connection's events in seq order (doc/architecture.md "How a
 * message flows", step 5): live events from the bus, events held ahead of
 * a gap, and inbox pages read to fill gaps and on resume (replays, which
 * long-poll and SSE answer from too). Service thread only.
 */
#ifndef RELAY_DELIVERY_H
#define RELAY_DELIVERY_H

struct conn;
struct relay;
struct relay_event;

/* Reads the inbox after the last seq sent (again once the read in flight
 * returns, if one is). */
void relay_delivery_replay(struct conn *c);
/* An EV_USER_FRAME: delivers it to the user's live connections. */
void relay_delivery_user_frame(struct relay *r, const struct relay_event *ev);
/* An EV_REPLAY page for c: sends what follows, reads on or releases what
 * was held. */
void relay_delivery_replayed(struct conn *c, const struct relay_event *ev);
/* An EV_REPLAY_FAIL for c: the next tick reads again. */
void relay_delivery_replay_failed(struct conn *c);
/* Every tick: reads the inbox for a gap that stays open. */
void relay_delivery_tick(struct conn *c, long long mono_ms);

#endif
