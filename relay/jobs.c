/*
 * jobs: the store threads' queues (see jobs.h).
 *
 * Sends are split into RELAY_SEND_PARTS partitions by conversation, and one
 * thread at a time stores a partition's sends (while the batch before is
 * still being answered and published, in turn). Batches stored at once then
 * mostly touch different conversations and users, so they do not queue on
 * each other's row locks (which made four threads store about one batch at
 * a time), and a conversation's sends are stored in the order they came.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "banned.h"

static unsigned part_of(const struct relay_job *j)
{
	return (unsigned)((unsigned long long)j->as.send.conversation_id %
			  RELAY_SEND_PARTS);
}

/* The queue a job waits in: hellos, sends by partition, everything else. */
static struct relay_jobq *queue_of(struct relay_jobs *js,
				   const struct relay_job *j)
{
	return j->kind == JOB_AUTH ? &js->hellos :
	       j->kind == JOB_SEND ? &js->sends[part_of(j)] : &js->others;
}

/* Takes the queue's first job (jobs_lock held); it no longer counts as
 * waiting for the connection that asked for it. */
static struct relay_job *jobq_pop(struct relay_jobs *js, struct relay_jobq *q)
{
	struct relay_job *j = q->head;

	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = &q->head;
		j->next = NULL;
		if (j->count) {
			atomic_fetch_sub(&j->count->queued, 1);
			js->waiting--;
		}
	}
	return j;
}

/* A send batch grows to this many sends before another may start. */
#define SEND_FILL 32

static int jobs_queued(const struct relay_jobs *js)
{
	int any = js->hellos.head || js->others.head;

	for (int p = 0; p < RELAY_SEND_PARTS; p++)
		any |= js->sends[p].head != NULL;
	return any;
}

struct relay_job *relay_job_new(enum relay_job_kind kind, uint64_t conn_id,
				long long user_id)
{
	struct relay_job *j = calloc(1, sizeof(*j));

	if (j) {
		j->kind = kind;
		j->conn_id = conn_id;
		j->user_id = user_id;
	}
	return j;
}

struct relay_jobcount *relay_jobcount_new(void)
{
	struct relay_jobcount *count = calloc(1, sizeof(*count));

	if (count)
		atomic_init(&count->refs, 1);
	return count;
}

void relay_jobcount_release(struct relay_jobcount *count)
{
	if (count && atomic_fetch_sub(&count->refs, 1) == 1)
		free(count);
}

void relay_job_free(struct relay_job *j)
{
	if (!j)
		return;
	relay_jobcount_release(j->count);
	switch (j->kind) {
	case JOB_SEND:
		free(j->as.send.client_msg_id);
		free(j->as.send.body);
		break;
	case JOB_CURSOR:
		free(j->as.cursors.cursors);
		break;
	case JOB_SESSIONS:
		free(j->as.sessions.refs);
		break;
	default:
		break;
	}
	free(j);
}

/* The free send partition whose next send is oldest, or -1. */
static int oldest_free_part(const struct relay_jobs *js)
{
	int best = -1;

	for (int p = 0; p < RELAY_SEND_PARTS; p++) {
		const struct relay_job *head = js->sends[p].head;

		if (head && !(js->parts_busy & (1u << p)) &&
		    (best < 0 || head->seq < js->sends[best].head->seq))
			best = p;
	}
	return best;
}

/* Whether sends may be taken now: a second batch waits for SEND_FILL. */
static int sends_open(const struct relay_jobs *js)
{
	return js->sends_storing == 0 || js->sends_queued >= SEND_FILL;
}

/*
 * Wakes one store thread when there is work it can take (called with
 * jobs_lock held). A send that has to wait for the batch being stored
 * wakes nobody: the thread that stores that batch wakes one at commit.
 */
static void wake_if_ready(struct relay_jobs *js)
{
	if (js->hellos.head || js->others.head ||
	    (sends_open(js) && oldest_free_part(js) >= 0))
		pthread_cond_signal(&js->ready);
}

/* Queues job (jobs_lock held). */
static void enqueue(struct relay_jobs *js, struct relay_job *job)
{
	struct relay_jobq *q;

	job->next = NULL;
	job->seq = js->submitted++;
	q = queue_of(js, job);
	*q->tail = job;
	q->tail = &job->next;
	if (job->kind == JOB_SEND)
		js->sends_queued++;
	wake_if_ready(js);
}

void relay_job_submit(struct relay_jobs *js, struct relay_job *job)
{
	if (!job)
		return;
	pthread_mutex_lock(&js->lock);
	if (js->closed) {
		pthread_mutex_unlock(&js->lock);
		relay_job_free(job);
		return;
	}
	enqueue(js, job);
	pthread_mutex_unlock(&js->lock);
}

int relay_job_submit_counted(struct relay_jobs *js,
			     struct relay_jobcount *count, struct relay_job *job)
{
	if (!job)
		return -1;
	pthread_mutex_lock(&js->lock);
	if (js->closed || !count ||
	    js->waiting >= js->max_waiting ||
	    atomic_load(&count->queued) >= js->max_per_connection) {
		pthread_mutex_unlock(&js->lock);
		atomic_fetch_add(js->refused, 1);
		relay_job_free(job);
		return -1;
	}
	job->count = count;
	atomic_fetch_add(&count->refs, 1);
	atomic_fetch_add(&count->queued, 1);
	js->waiting++;
	enqueue(js, job);
	pthread_mutex_unlock(&js->lock);
	return 0;
}

/*
 * Takes a batch of sends: the queued sends of the free partition with the
 * oldest, then of the next ones, until SEND_FILL are taken or no free
 * partition has any. The partitions taken are busy until
 * relay_jobs_sends_stored().
 */
static size_t take_sends(struct relay_jobs *js, int part,
			 struct relay_job **out, size_t max,
			 struct relay_take *take)
{
	size_t n = 0;

	take->parts = 0;
	while (part >= 0 && n < max) {
		while (n < max && js->sends[part].head)
			out[n++] = jobq_pop(js, &js->sends[part]);
		js->parts_busy |= 1u << part;
		take->parts |= 1u << part;
		if (n >= SEND_FILL)
			break;
		part = oldest_free_part(js);
	}
	js->sends_queued -= n;
	js->sends_storing++;
	take->ticket = js->send_tickets++;
	return n;
}

/*
 * Takes the next jobs that can run now, in constant time whatever the
 * queues hold: hellos first, in a batch (in a connect storm every socket is
 * welcomed before the replays and presence work the welcomes start); else
 * the older of the next other job and the next send of a partition no
 * thread is storing, which comes with the sends queued behind it
 * (take_sends()). A send batch starts while another is being stored only
 * when SEND_FILL sends wait: below that, one batch at a time takes what
 * came meanwhile, and PostgreSQL's cost per batch is paid once for all of
 * it rather than per partition. Returns the count taken (0 once the queues
 * are closed and empty).
 */
size_t relay_jobs_take(struct relay_jobs *js, struct relay_job **out,
		       size_t max, struct relay_take *take)
{
	size_t n = 0;

	pthread_mutex_lock(&js->lock);
	for (;;) {
		int part = -1;

		if (js->hellos.head) {
			while (n < max && js->hellos.head)
				out[n++] = jobq_pop(js, &js->hellos);
			break;
		}
		if (sends_open(js))
			part = oldest_free_part(js);
		if (js->others.head && (part < 0 || js->others.head->seq <
					js->sends[part].head->seq)) {
			out[n++] = jobq_pop(js, &js->others);
			break;
		}
		if (part >= 0) {
			n = take_sends(js, part, out, max, take);
			break;
		}
		if (js->closed && !jobs_queued(js) && js->sends_storing == 0)
			break;
		pthread_cond_wait(&js->ready, &js->lock);
	}
	if (n)
		wake_if_ready(js);	/* more than this thread takes */
	pthread_mutex_unlock(&js->lock);
	return n;
}

void relay_jobs_sends_stored(struct relay_jobs *js,
			     const struct relay_take *take)
{
	pthread_mutex_lock(&js->lock);
	js->parts_busy &= ~take->parts;
	js->sends_storing--;
	if (js->closed)	/* the last batch lets the threads exit */
		pthread_cond_broadcast(&js->ready);
	else
		wake_if_ready(js);
	pthread_mutex_unlock(&js->lock);
}

void relay_jobs_wait_turn(struct relay_jobs *js,
			  const struct relay_take *take)
{
	pthread_mutex_lock(&js->lock);
	while (js->send_turn != take->ticket)
		pthread_cond_wait(&js->turn_done, &js->lock);
	pthread_mutex_unlock(&js->lock);
}

void relay_jobs_end_turn(struct relay_jobs *js)
{
	pthread_mutex_lock(&js->lock);
	js->send_turn++;
	pthread_cond_broadcast(&js->turn_done);
	pthread_mutex_unlock(&js->lock);
}

void relay_jobs_init(struct relay_jobs *js, size_t max_waiting,
		     int max_per_connection, atomic_ulong *refused)
{
	memset(js, 0, sizeof(*js));
	js->max_waiting = max_waiting;
	js->max_per_connection = max_per_connection;
	js->refused = refused;
	pthread_mutex_init(&js->lock, NULL);
	pthread_cond_init(&js->ready, NULL);
	pthread_cond_init(&js->turn_done, NULL);
	js->hellos.head = js->others.head = NULL;
	js->hellos.tail = &js->hellos.head;
	js->others.tail = &js->others.head;
	for (int p = 0; p < RELAY_SEND_PARTS; p++) {
		js->sends[p].head = NULL;
		js->sends[p].tail = &js->sends[p].head;
	}
}

void relay_jobs_close(struct relay_jobs *js)
{
	pthread_mutex_lock(&js->lock);
	js->closed = 1;
	pthread_cond_broadcast(&js->ready);
	pthread_mutex_unlock(&js->lock);
}

void relay_jobs_release(struct relay_jobs *js)
{
	pthread_cond_destroy(&js->ready);
	pthread_cond_destroy(&js->turn_done);
	pthread_mutex_destroy(&js->lock);
}
