/*
 * bus: the relay's Redis pub/sub connection, on its own thread (bus.c
 * explains the protocol with the service thread).
 */
#ifndef RELAY_BUS_H
#define RELAY_BUS_H

struct relay;

/* Starts the bus thread. Returns 0, or -1 when it cannot. */
int relay_bus_start(struct relay *r);
/* Stops and joins the bus thread. */
void relay_bus_stop(struct relay *r);
/* Service thread: subscribe (1) or unsubscribe (0) a user's channel; the
 * confirmation of a subscription comes back as EV_SUBSCRIBED. */
void relay_bus_request(struct relay *r, long long user_id, int subscribe);

#endif
