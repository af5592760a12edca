/*
 * store: the relay's store threads, each with its own PostgreSQL and Redis
 * connection, running the jobs the service thread queues (jobs.h).
 */
#ifndef RELAY_STORE_H
#define RELAY_STORE_H

struct relay;

/*
 * Sets up the job queues and starts nthreads store threads. Returns 0, or
 * -1 when a thread cannot start (those started are stopped by
 * relay_store_stop(), which the caller calls either way once r->stores is
 * set).
 */
int relay_store_start(struct relay *r, int nthreads);

/* Closes the queues, lets the threads run what is queued (cursor writes,
 * the registry removal), joins them and frees the queues. */
void relay_store_stop(struct relay *r);

#endif
