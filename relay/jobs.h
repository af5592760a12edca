/*
 * jobs: the work the service thread hands to the store threads, and the
 * queues it waits in (doc/architecture.md "How a message flows").
 *
 * A job is a kind and that kind's payload, a tagged union of one struct per
 * kind. The service thread makes jobs and submits them; a store thread
 * takes them (relay_jobs_take()) and frees them after running them
 * (store.c). Queues: hellos, sends by partition, everything else; see
 * relay_jobs_take() for the order they are taken in.
 */
#ifndef RELAY_JOBS_H
#define RELAY_JOBS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cursor.h"
#include "pl_limits.h"

enum relay_job_kind {
	JOB_AUTH,		/* a hello or an HTTP stream's session check */
	JOB_REPLAY,		/* one inbox page */
	JOB_SEND,		/* a client's send */
	JOB_CURSOR,		/* every socket's moved cursor, one write */
	JOB_TYPING,		/* a typing event to the other members */
	JOB_READ,		/* a read receipt */
	JOB_PRESENCE,		/* a device's heartbeat, or its socket gone */
	JOB_SWEEP,		/* presence deadlines, once a second */
	JOB_REGISTER,		/* the relay's registry entry */
	JOB_SESSIONS,		/* live sockets' sessions, checked again */
};

/* A live socket's session, checked again while the socket is open. */
struct relay_session_ref {
	uint64_t conn_id;
	long long session_id;
};

struct relay_job_auth {
	long long session_id, device_id;
};

struct relay_job_replay {
	long long after_seq;
	long long limit;
};

struct relay_job_send {
	long long conversation_id;
	char *client_msg_id;	/* owned */
	char *body;		/* owned, body_len bytes and a NUL */
	size_t body_len;
	long long reply_to;	/* 0: not a reply */
	long long attachment_ids[PL_ATTACHMENTS_PER_MESSAGE_MAX];
	size_t n_attachments;
};

struct relay_job_cursors {
	struct pl_cursor *cursors;	/* owned */
	size_t n;
};

struct relay_job_typing {
	long long conversation_id;
};

struct relay_job_read {
	long long device_id, conversation_id, message_id;
};

struct relay_job_presence {
	long long device_id;
	int online;		/* 1 heartbeat, 0 the socket is gone */
};

enum relay_registry_op {
	RELAY_REGISTRY_REGISTER,
	RELAY_REGISTRY_REFRESH,
	RELAY_REGISTRY_DEREGISTER,
};

struct relay_job_register {
	enum relay_registry_op op;
	long long connections;
};

struct relay_job_sessions {
	struct relay_session_ref *refs;	/* owned */
	size_t n;
};

/*
 * A connection's count of jobs waiting in the queues, shared with those
 * jobs: the service thread adds, the store thread that takes a job
 * subtracts, and whichever of the connection and its jobs lets go last
 * frees it (the connection may close while its jobs wait).
 */
struct relay_jobcount {
	atomic_int queued;
	atomic_int refs;
};

struct relay_job {
	enum relay_job_kind kind;
	uint64_t conn_id;	/* the connection to answer, or 0 */
	long long user_id;
	union {			/* by kind; JOB_SWEEP has none */
		struct relay_job_auth auth;
		struct relay_job_replay replay;
		struct relay_job_send send;
		struct relay_job_cursors cursors;
		struct relay_job_typing typing;
		struct relay_job_read read;
		struct relay_job_presence presence;
		struct relay_job_register reg;
		struct relay_job_sessions sessions;
	} as;
	unsigned long long seq;	/* submission order */
	struct relay_jobcount *count;	/* a client's frame asked for it */
	struct relay_job *next;
};

/* Send partitions: a conversation's sends are stored by one thread at a time. */
#define RELAY_SEND_PARTS 4

struct relay_jobq {
	struct relay_job *head, **tail;
};

/* The queues, shared by the service thread and the store threads. */
struct relay_jobs {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct relay_jobq hellos, others, sends[RELAY_SEND_PARTS];
	unsigned long long submitted;
	size_t waiting;		/* asked for by clients' frames, not yet taken */
	int closed;
	unsigned parts_busy;	/* send partitions being stored */
	size_t sends_queued;	/* in sends[] */
	int sends_storing;	/* send batches taken, not yet committed */
	/* Send batches taken, and answered and published: a batch answers
	 * and publishes when the count answered reaches its ticket, so in
	 * the order the batches were taken. */
	unsigned long long send_tickets, send_turn;
	pthread_cond_t turn_done;
	size_t max_waiting;		/* [relay] max_jobs */
	int max_per_connection;		/* [relay] max_jobs_per_connection */
	atomic_ulong *refused;		/* borrowed: the metrics' count */
};

/* A new job with a zeroed payload, or NULL when out of memory. */
struct relay_job *relay_job_new(enum relay_job_kind kind, uint64_t conn_id,
				long long user_id);
/* Frees job and what its payload owns; NULL is a no-op. */
void relay_job_free(struct relay_job *job);

/* A new count with the caller's reference, or NULL; released with
 * relay_jobcount_release() (any thread). */
struct relay_jobcount *relay_jobcount_new(void);
void relay_jobcount_release(struct relay_jobcount *count);

/* Service thread: queue a job (ownership moves; NULL is ignored). Once the
 * queues are closed the job is freed. */
void relay_job_submit(struct relay_jobs *js, struct relay_job *job);
/*
 * Service thread: queues a job that a client's frame asked for, counted in
 * count (borrowed; the job keeps a reference), unless the relay already
 * holds max_waiting such jobs or the connection max_per_connection: then
 * frees the job, counts it refused and returns -1, and the caller refuses
 * the frame.
 */
int relay_job_submit_counted(struct relay_jobs *js,
			     struct relay_jobcount *count, struct relay_job *job);

/* Sets up the queues before the store threads start, with their bounds
 * and the count of refused jobs to add to (borrowed). */
void relay_jobs_init(struct relay_jobs *js, size_t max_waiting,
		     int max_per_connection, atomic_ulong *refused);
/* No job is queued any more; the store threads run what is queued, then
 * relay_jobs_take() returns 0. */
void relay_jobs_close(struct relay_jobs *js);
/* After the store threads are joined. */
void relay_jobs_release(struct relay_jobs *js);

/* What relay_jobs_take() took for a send batch. */
struct relay_take {
	unsigned long long ticket;	/* its turn to answer and publish */
	unsigned parts;			/* partitions it holds */
};

/*
 * Store thread: waits for and takes the next jobs that can run now into
 * out[0..max): a batch of hellos, a batch of sends (with *take filled), or
 * one other job. Returns the count, 0 once the queues are closed and empty.
 */
size_t relay_jobs_take(struct relay_jobs *js, struct relay_job **out,
		       size_t max, struct relay_take *take);
/* A send batch is committed: its partitions may be taken again. */
void relay_jobs_sends_stored(struct relay_jobs *js,
			     const struct relay_take *take);
/* Waits until the send batches taken before this one are answered; then
 * relay_jobs_end_turn() lets the next one go. */
void relay_jobs_wait_turn(struct relay_jobs *js,
			  const struct relay_take *take);
void relay_jobs_end_turn(struct relay_jobs *js);

#endif
