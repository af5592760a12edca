/*
 * service: the service thread's own work outside lws callbacks: the events
 * other threads post (events.h), handled in the order they came, and the
 * tick main.c runs every 250 ms (cursor writes, gap retries, long-poll and
 * SSE keepalives, token expiry and due session checks). Service thread
 * only.
 */
#ifndef RELAY_SERVICE_H
#define RELAY_SERVICE_H

struct relay;

/* Handles every event posted so far. */
void relay_service_events(struct relay *r);
/* One tick over every connection; submits the cursors and session checks
 * it gathered, each as one job. */
void relay_service_tick(struct relay *r);
/* Closes up to max open connections with 1001; returns how many. */
int relay_service_drain(struct relay *r, int max);

#endif
