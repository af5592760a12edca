/*
 * store: the relay's worker threads for PostgreSQL and Redis work.
 *
 * Each thread owns one PostgreSQL and one Redis connection and takes jobs
 * from one queue. Sends are batched: a thread that picks a send takes every
 * other send waiting in the queue with it (up to PL_POST_BATCH_MAX) and
 * stores them in one post_messages() call, so durable throughput follows
 * PostgreSQL's group commit rather than one round trip per message
 * (doc/architecture.md "How a message flows"). Results go back to the service
 * thread as events keyed by connection id.
 *
 * Sends are split into RELAY_SEND_PARTS partitions by conversation, and one
 * thread at a time stores a partition's sends (while the batch before is
 * still being answered and published, in turn). Batches stored at once then
 * mostly touch different conversations and users, so they do not queue on
 * each other's row locks (which made four threads store about one batch at
 * a time), and a conversation's sends are stored in the order they came.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "json.h"
#include "keys.h"
#include "limits.h"
#include "log.h"
#include "post.h"
#include "publish.h"
#include "ratelimit.h"
#include "receipt.h"
#include "redis.h"
#include "registry.h"
#include "relay.h"
#include "banned.h"

static unsigned part_of(const struct relay_job *j)
{
	return (unsigned)((unsigned long long)j->a % RELAY_SEND_PARTS);
}

/* The queue a job waits in: hellos, sends by partition, everything else. */
static struct relay_jobq *queue_of(struct relay *r, const struct relay_job *j)
{
	return j->kind == JOB_AUTH ? &r->hellos :
	       j->kind == JOB_SEND ? &r->sends[part_of(j)] : &r->others;
}

/* Takes the queue's first job (jobs_lock held); it no longer counts as
 * waiting for the connection that asked for it. */
static struct relay_job *jobq_pop(struct relay *r, struct relay_jobq *q)
{
	struct relay_job *j = q->head;

	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = &q->head;
		j->next = NULL;
		if (j->count) {
			atomic_fetch_sub(&j->count->queued, 1);
			r->jobs_waiting--;
		}
	}
	return j;
}

/* A send batch grows to this many sends before another may start. */
#define SEND_FILL 32

/* What take_jobs() took for a send batch. */
struct relay_take {
	unsigned long long ticket;	/* its turn to answer and publish */
	unsigned parts;			/* partitions it holds */
};

static int jobs_queued(const struct relay *r)
{
	int any = r->hellos.head || r->others.head;

	for (int p = 0; p < RELAY_SEND_PARTS; p++)
		any |= r->sends[p].head != NULL;
	return any;
}

struct store {
	struct relay *r;
	struct pl_db db;
	struct pl_redis redis;
	struct pl_registry *registry;	/* over redis */
};

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

static void job_free(struct relay_job *j)
{
	if (!j)
		return;
	relay_jobcount_release(j->count);
	free(j->text);
	free(j->text2);
	free(j->cursors);
	free(j->sessions);
	free(j);
}

/* The free send partition whose next send is oldest, or -1. */
static int oldest_free_part(const struct relay *r)
{
	int best = -1;

	for (int p = 0; p < RELAY_SEND_PARTS; p++) {
		const struct relay_job *head = r->sends[p].head;

		if (head && !(r->parts_busy & (1u << p)) &&
		    (best < 0 || head->seq < r->sends[best].head->seq))
			best = p;
	}
	return best;
}

/* Whether sends may be taken now: a second batch waits for SEND_FILL. */
static int sends_open(const struct relay *r)
{
	return r->sends_storing == 0 || r->sends_queued >= SEND_FILL;
}

/*
 * Wakes one store thread when there is work it can take (called with
 * jobs_lock held). A send that has to wait for the batch being stored
 * wakes nobody: the thread that stores that batch wakes one at commit.
 */
static void wake_if_ready(struct relay *r)
{
	if (r->hellos.head || r->others.head ||
	    (sends_open(r) && oldest_free_part(r) >= 0))
		pthread_cond_signal(&r->jobs_ready);
}

/* Queues job (jobs_lock held). */
static void enqueue(struct relay *r, struct relay_job *job)
{
	struct relay_jobq *q;

	job->next = NULL;
	job->seq = r->jobs_submitted++;
	q = queue_of(r, job);
	*q->tail = job;
	q->tail = &job->next;
	if (job->kind == JOB_SEND)
		r->sends_queued++;
	wake_if_ready(r);
}

void relay_job_submit(struct relay *r, struct relay_job *job)
{
	if (!job)
		return;
	pthread_mutex_lock(&r->jobs_lock);
	if (r->jobs_closed) {
		pthread_mutex_unlock(&r->jobs_lock);
		job_free(job);
		return;
	}
	enqueue(r, job);
	pthread_mutex_unlock(&r->jobs_lock);
}

int relay_job_submit_counted(struct relay *r, struct relay_jobcount *count,
			     struct relay_job *job)
{
	const struct pl_config *cfg = r->cfg;

	if (!job)
		return -1;
	pthread_mutex_lock(&r->jobs_lock);
	if (r->jobs_closed || !count ||
	    r->jobs_waiting >= (size_t)cfg->relay_max_jobs ||
	    atomic_load(&count->queued) >= cfg->relay_max_jobs_per_connection) {
		pthread_mutex_unlock(&r->jobs_lock);
		atomic_fetch_add(&r->metrics.jobs_refused, 1);
		job_free(job);
		return -1;
	}
	job->count = count;
	atomic_fetch_add(&count->refs, 1);
	atomic_fetch_add(&count->queued, 1);
	r->jobs_waiting++;
	enqueue(r, job);
	pthread_mutex_unlock(&r->jobs_lock);
	return 0;
}

/*
 * Takes a batch of sends: the queued sends of the free partition with the
 * oldest, then of the next ones, until SEND_FILL are taken or no free
 * partition has any. The partitions taken are busy until release_sends().
 */
static size_t take_sends(struct relay *r, int part, struct relay_job **out,
			 size_t max, struct relay_take *take)
{
	size_t n = 0;

	take->parts = 0;
	while (part >= 0 && n < max) {
		while (n < max && r->sends[part].head)
			out[n++] = jobq_pop(r, &r->sends[part]);
		r->parts_busy |= 1u << part;
		take->parts |= 1u << part;
		if (n >= SEND_FILL)
			break;
		part = oldest_free_part(r);
	}
	r->sends_queued -= n;
	r->sends_storing++;
	take->ticket = r->send_tickets++;
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
static size_t take_jobs(struct relay *r, struct relay_job **out, size_t max,
			struct relay_take *take)
{
	size_t n = 0;

	pthread_mutex_lock(&r->jobs_lock);
	for (;;) {
		int part = -1;

		if (r->hellos.head) {
			while (n < max && r->hellos.head)
				out[n++] = jobq_pop(r, &r->hellos);
			break;
		}
		if (sends_open(r))
			part = oldest_free_part(r);
		if (r->others.head && (part < 0 || r->others.head->seq <
					r->sends[part].head->seq)) {
			out[n++] = jobq_pop(r, &r->others);
			break;
		}
		if (part >= 0) {
			n = take_sends(r, part, out, max, take);
			break;
		}
		if (r->jobs_closed && !jobs_queued(r) && r->sends_storing == 0)
			break;
		pthread_cond_wait(&r->jobs_ready, &r->jobs_lock);
	}
	if (n)
		wake_if_ready(r);	/* more than this thread takes */
	pthread_mutex_unlock(&r->jobs_lock);
	return n;
}

/* A send batch is committed: its partitions may be taken again. */
static void release_sends(struct relay *r, const struct relay_take *take)
{
	pthread_mutex_lock(&r->jobs_lock);
	r->parts_busy &= ~take->parts;
	r->sends_storing--;
	if (r->jobs_closed)	/* the last batch lets the threads exit */
		pthread_cond_broadcast(&r->jobs_ready);
	else
		wake_if_ready(r);
	pthread_mutex_unlock(&r->jobs_lock);
}

/* Waits until the send batches taken before this one are answered. */
static void wait_turn(struct relay *r, const struct relay_take *take)
{
	pthread_mutex_lock(&r->jobs_lock);
	while (r->send_turn != take->ticket)
		pthread_cond_wait(&r->turn_done, &r->jobs_lock);
	pthread_mutex_unlock(&r->jobs_lock);
}

static void end_turn(struct relay *r)
{
	pthread_mutex_lock(&r->jobs_lock);
	r->send_turn++;
	pthread_cond_broadcast(&r->turn_done);
	pthread_mutex_unlock(&r->jobs_lock);
}

/* Posts an "error" frame for a connection (ref: the client_msg_id or NULL). */
static void post_error(struct relay *r, uint64_t conn, enum pl_err code,
		       const char *message, const char *ref)
{
	json_t *o = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
			      "code", pl_err_code(code), "message", message);
	char *text;

	if (o && ref)
		json_object_set_new(o, "ref", json_string(ref));
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (text)
		relay_post_event(r, EV_FRAME, conn, 0, 0, 0, text, strlen(text));
	free(text);
	json_decref(o);
}

/* One field of jobs[0..n) (0 session, 1 user, 2 device) as an array literal. */
static char *id_array(struct relay_job **jobs, size_t n, int field)
{
	long long *v = malloc((n + 1) * sizeof(*v));
	char *text;

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = field == 0 ? jobs[i]->session_id :
		       field == 1 ? jobs[i]->user_id : jobs[i]->device_id;
	text = pl_db_int_array(v, n);
	free(v);
	return text;
}

/*
 * Checks the sessions of a batch of hellos in one statement: a connect storm
 * costs a round trip per batch, not per socket.
 */
static void do_auths(struct store *s, struct relay_job **jobs, size_t n)
{
	char *sids = id_array(jobs, n, 0), *uids = id_array(jobs, n, 1);
	char *dids = id_array(jobs, n, 2);
	const char *params[3] = { sids, uids, dids };
	unsigned char *ok = calloc(n, 1);
	PGresult *res = NULL;
	enum pl_err rc = PL_UNAVAILABLE;

	if (sids && uids && dids && ok)
		rc = pl_db_exec(&s->db,
			"SELECT x.i, d.cursor, h.last_seq FROM unnest($1::bigint[], "
			"$2::bigint[], $3::bigint[]) WITH ORDINALITY AS x(sid, uid, "
			"did, i) JOIN sessions s ON s.id = x.sid AND s.user_id = "
			"x.uid AND s.device_id = x.did AND s.revoked_at IS NULL AND "
			"s.expires_at > now() JOIN devices d ON d.id = s.device_id "
			"JOIN user_heads h ON h.user_id = s.user_id",
			3, params, 1, &res, NULL);
	for (int r = 0; rc == PL_OK && r < PQntuples(res); r++) {
		long long i = strtoll(PQgetvalue(res, r, 0), NULL, 10) - 1;

		if (i < 0 || (size_t)i >= n || ok[i])
			continue;
		ok[i] = 1;
		relay_post_event(s->r, EV_AUTH_OK, jobs[i]->conn_id,
				 jobs[i]->user_id,
				 strtoll(PQgetvalue(res, r, 1), NULL, 10),
				 strtoll(PQgetvalue(res, r, 2), NULL, 10), NULL, 0);
	}
	/* a = 1: the database failed (1013, retry); else the session is gone. */
	for (size_t i = 0; i < n; i++)
		if (!ok || !ok[i])
			relay_post_event(s->r, EV_AUTH_FAIL, jobs[i]->conn_id, 0,
					 rc != PL_OK, 0, NULL, 0);
	PQclear(res);
	free(ok);
	free(sids);
	free(uids);
	free(dids);
}

/* One page of the inbox as frames, one per line (JSON has no raw newline). */
static void do_replay(struct store *s, struct relay_job *j)
{
	char uid[24], after[24], lim[24];
	const char *params[3] = { uid, after, lim };
	PGresult *res;
	size_t len = 0, cap = 0;
	char *text = NULL;
	long long last = j->a;
	int rows;

	atomic_fetch_add(&s->r->metrics.replays, 1);
	snprintf(uid, sizeof(uid), "%lld", j->user_id);
	snprintf(after, sizeof(after), "%lld", j->a);
	snprintf(lim, sizeof(lim), "%lld", j->b);
	if (pl_db_exec(&s->db,
		       "SELECT i.seq, message_out(m, i.seq, 'message') FROM (SELECT * "
		       "FROM inbox WHERE user_id = $1 AND seq > $2 ORDER BY seq "
		       "LIMIT $3) i JOIN messages m ON m.conversation_id = "
		       "i.conversation_id AND m.message_id = i.message_id "
		       "ORDER BY i.seq", 3, params, 1, &res, NULL)) {
		relay_post_event(s->r, EV_REPLAY_FAIL, j->conn_id, j->user_id, 0, 0,
				 NULL, 0);
		return;
	}
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		size_t n = (size_t)PQgetlength(res, i, 1);

		if (len + n + 2 > cap) {
			size_t ncap = (len + n + 2) * 2;
			char *bigger = realloc(text, ncap);

			if (!bigger)
				break;
			text = bigger;
			cap = ncap;
		}
		memcpy(text + len, PQgetvalue(res, i, 1), n);
		len += n;
		text[len++] = '\n';
		text[len] = '\0';
		last = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	}
	PQclear(res);
	relay_post_event(s->r, EV_REPLAY, j->conn_id, j->user_id, rows, last,
			 text ? text : "", len);
	free(text);
}

/*
 * Stores the sends of items[0..n) that their senders' send budgets allow
 * (the Redis buckets REST sends take from too: one budget per user across
 * relays and reconnects, open while Redis is down), and answers the rest
 * rate_limited, each in results[0..n).
 */
static void post_allowed(struct store *s, const struct pl_post_item *items,
			 size_t n, struct pl_post_result *results)
{
	const struct pl_config *cfg = s->r->cfg;
	char uids[PL_POST_BATCH_MAX][24];
	const char *keys[PL_POST_BATCH_MAX];
	long long wait_s[PL_POST_BATCH_MAX];
	struct pl_post_item ok[PL_POST_BATCH_MAX];
	struct pl_post_result ok_results[PL_POST_BATCH_MAX];
	size_t map[PL_POST_BATCH_MAX], nok = 0;

	if (cfg->limits_sends_per_second <= 0) {
		pl_post_batch(&s->db, items, n, results);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(uids[i], sizeof(uids[i]), "%lld", items[i].sender_id);
		keys[i] = uids[i];
	}
	pl_ratelimit_take_many(&s->redis, "send", keys, n,
			       (double)cfg->limits_sends_per_second,
			       cfg->limits_sends_burst, wait_s);
	memset(results, 0, n * sizeof(*results));
	for (size_t i = 0; i < n; i++) {
		if (wait_s[i]) {
			results[i].err = PL_RATE_LIMITED;
			snprintf(results[i].message, sizeof(results[i].message),
				 "sending too fast; retry in %lld s with the same "
				 "client_msg_id", wait_s[i]);
			continue;
		}
		map[nok] = i;
		ok[nok++] = items[i];
	}
	if (nok == 0)
		return;
	pl_post_batch(&s->db, ok, nok, ok_results);
	for (size_t k = 0; k < nok; k++)
		results[map[k]] = ok_results[k];
}

/*
 * Stores a partition's batch, then lets the partition's next batch be
 * stored while this one is answered and published: in turn (the ticket
 * take_jobs() gave it), so the partition's acks and events still go out
 * in the order its batches were taken and committed.
 */
static void do_sends(struct store *s, struct relay_job **jobs, size_t n,
		     const struct relay_take *take)
{
	struct pl_post_item items[PL_POST_BATCH_MAX] = { { 0 } };
	struct pl_post_result results[PL_POST_BATCH_MAX];
	struct pl_message msgs[PL_POST_BATCH_MAX];
	const struct pl_delivery *deliveries[PL_POST_BATCH_MAX];
	size_t n_deliveries[PL_POST_BATCH_MAX], fresh = 0;

	for (size_t i = 0; i < n; i++)
		items[i] = (struct pl_post_item){
			.sender_id = jobs[i]->user_id,
			.conversation_id = jobs[i]->a,
			.client_msg_id = jobs[i]->text,
			.body = jobs[i]->text2,
			.body_len = jobs[i]->text2_len,
		};
	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		post_allowed(s, items, n, results);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_observe(&s->r->metrics.store,
				(t1.tv_sec - t0.tv_sec) * 1000000LL +
				(t1.tv_nsec - t0.tv_nsec) / 1000);
	}
	release_sends(s->r, take);
	wait_turn(s->r, take);
	/* Answer first: the sender learns of the commit without waiting on Redis. */
	for (size_t i = 0; i < n; i++) {
		struct pl_post_result *res = &results[i];
		json_t *o;
		char *text;

		if (res->err) {
			atomic_fetch_add(&s->r->metrics.send_errors, 1);
			post_error(s->r, jobs[i]->conn_id, res->err, res->message,
				   items[i].client_msg_id);
			continue;
		}
		if (!res->duplicate)
			atomic_fetch_add(&s->r->metrics.sends, 1);
		o = json_pack("{s:s,s:s,s:I,s:I,s:s}", "type", "sent",
			      "client_msg_id", items[i].client_msg_id,
			      "conversation_id", (json_int_t)items[i].conversation_id,
			      "message_id", (json_int_t)res->message_id,
			      "created_at", res->created_at);
		text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (text)
			relay_post_event(s->r, EV_FRAME, jobs[i]->conn_id, 0, 0, 0,
					 text, strlen(text));
		free(text);
		json_decref(o);
	}
	/* Then every new message to Redis, the batch in one pipeline. */
	for (size_t i = 0; i < n; i++) {
		struct pl_post_result *res = &results[i];

		if (res->err != PL_OK || res->duplicate)
			continue;
		msgs[fresh] = (struct pl_message){
			.conversation_id = items[i].conversation_id,
			.message_id = res->message_id,
			.sender_id = items[i].sender_id,
			.body = items[i].body,
			.body_len = items[i].body_len,
			.created_at = res->created_at,
			.client_msg_id = items[i].client_msg_id,
		};
		deliveries[fresh] = res->deliveries;
		n_deliveries[fresh++] = res->n_deliveries;
	}
	if (fresh)
		pl_publish_messages(&s->redis, msgs, deliveries, n_deliveries,
				    fresh);
	end_turn(s->r);
	pl_post_results_release(results, n);
}

static void do_cursor(struct store *s, struct relay_job *j)
{
	/* A failure leaves the cursors where they were: they only move forward,
	 * and the device's next ack or close writes them again. */
	pl_cursor_store(&s->db, j->cursors, j->ncursors);
}

/* Publishes frame (stolen) to the users listed in column 0 of res. */
static void publish_rows(struct store *s, PGresult *res, json_t *frame)
{
	int n = PQntuples(res);
	long long *users = calloc((size_t)n + 1, sizeof(*users));
	char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;

	for (int i = 0; users && i < n; i++)
		users[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	if (users && text)
		pl_publish_frame(&s->redis, users, (size_t)n, text);
	free(users);
	free(text);
	json_decref(frame);
}

static void do_typing(struct store *s, struct relay_job *j)
{
	char conv[24], uid[24];
	const char *params[2] = { conv, uid };
	PGresult *res;

	snprintf(conv, sizeof(conv), "%lld", j->a);
	snprintf(uid, sizeof(uid), "%lld", j->user_id);
	if (pl_db_exec(&s->db,
		       "SELECT m.user_id, EXISTS (SELECT 1 FROM members x WHERE "
		       "x.conversation_id = $1 AND x.user_id = $2) FROM members m "
		       "WHERE m.conversation_id = $1 AND m.user_id <> $2",
		       2, params, 1, &res, NULL))
		return;
	if (PQntuples(res) == 0 || PQgetvalue(res, 0, 1)[0] != 't') {
		post_error(s->r, j->conn_id, PL_NOT_FOUND,
			   "conversation does not exist or is not yours", NULL);
		PQclear(res);
		return;
	}
	publish_rows(s, res, json_pack("{s:s,s:I,s:I}", "type", "typing",
				       "conversation_id", (json_int_t)j->a,
				       "user_id", (json_int_t)j->user_id));
	PQclear(res);
}

static void do_read(struct store *s, struct relay_job *j)
{
	long long upto;
	int moved = 0;
	enum pl_err rc = pl_receipt_mark_read(&s->db, &s->redis, j->a, j->user_id,
					      j->b, &upto, &moved);

	if (rc == PL_OK && !moved) {
		/* Answered on this socket only: the members know already. */
		json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "type", "read",
				      "conversation_id", (json_int_t)j->a,
				      "user_id", (json_int_t)j->user_id,
				      "message_id", (json_int_t)upto);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

		if (text)
			relay_post_event(s->r, EV_FRAME, j->conn_id, 0, 0, 0, text,
					 strlen(text));
		free(text);
		json_decref(o);
	} else if (rc == PL_NOT_FOUND)
		post_error(s->r, j->conn_id, rc,
			   "conversation does not exist or is not yours", NULL);
	else if (rc)
		post_error(s->r, j->conn_id, rc, "the database is unavailable; retry",
			   NULL);
}

/* Tells a user's accepted friends that the user came or went. */
static void announce_presence(struct store *s, long long user, int online,
			      long long last_seen_ms)
{
	char uid[24], stamp[PL_CLOCK_RFC3339_BYTES];
	const char *params[1] = { uid };
	PGresult *res;

	pl_clock_rfc3339_ms(last_seen_ms, stamp);
	snprintf(uid, sizeof(uid), "%lld", user);
	if (pl_db_exec(&s->db, "SELECT friend_id FROM friendships WHERE "
		       "user_id = $1 AND state = 'accepted'", 1, params, 1, &res,
		       NULL))
		return;
	publish_rows(s, res, json_pack("{s:s,s:I,s:s,s:s}", "type", "presence",
				       "user_id", (json_int_t)user, "status",
				       online ? "online" : "offline",
				       "last_seen", stamp));
	PQclear(res);
}

/*
 * Presence in Redis (doc/architecture.md "Presence"; names in lib/keys.h):
 * a user's hash holds "d:{device}" deadlines, "last_seen" and "state" (what
 * friends were last told); PL_KEY_PRESENCE_DEADLINES orders every device
 * deadline and PL_KEY_PRESENCE_PENDING the users whose last device left,
 * due to be announced offline after the grace period unless one comes back.
 */
static const char heartbeat_lua[] =
	"local key, user, dev = KEYS[1], ARGV[1], ARGV[2]\n"
	"local deadline, now = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"redis.call('HSET', key, 'd:' .. dev, deadline, 'last_seen', now)\n"
	"redis.call('ZADD', '" PL_KEY_PRESENCE_DEADLINES "', deadline, user .. ':' .. dev)\n"
	"redis.call('ZREM', '" PL_KEY_PRESENCE_PENDING "', user)\n"
	"if redis.call('HGET', key, 'state') ~= 'online' then\n"
	"  redis.call('HSET', key, 'state', 'online') return 1 end\n"
	"return 0\n";

static const char gone_lua[] =
	"local key, user, dev = KEYS[1], ARGV[1], ARGV[2]\n"
	"local now, grace = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"redis.call('HDEL', key, 'd:' .. dev)\n"
	"redis.call('ZREM', '" PL_KEY_PRESENCE_DEADLINES "', user .. ':' .. dev)\n"
	"local f = redis.call('HGETALL', key)\n"
	"for i = 1, #f, 2 do\n"
	"  if string.sub(f[i], 1, 2) == 'd:' and tonumber(f[i + 1]) > now then return 0 end\n"
	"end\n"
	"redis.call('HSET', key, 'last_seen', now)\n"
	"redis.call('ZADD', '" PL_KEY_PRESENCE_PENDING "', now + grace, user)\n"
	"return 1\n";

/* Returns the users now offline: {user, last_seen, ...}. */
static const char sweep_lua[] =
	"local now = tonumber(ARGV[1])\n"
	"local expired = redis.call('ZRANGEBYSCORE', '" PL_KEY_PRESENCE_DEADLINES "', '-inf', now, 'LIMIT', 0, 1000)\n"
	"for _, m in ipairs(expired) do\n"
	"  redis.call('ZREM', '" PL_KEY_PRESENCE_DEADLINES "', m)\n"
	"  local user, dev = string.match(m, '^(%d+):(%d+)$')\n"
	"  if user then\n"
	"    local key = '" PL_KEY_PRESENCE_PREFIX "' .. user\n"
	"    local d = tonumber(redis.call('HGET', key, 'd:' .. dev))\n"
	"    if d and d <= now then redis.call('HDEL', key, 'd:' .. dev) end\n"
	"    redis.call('ZADD', '" PL_KEY_PRESENCE_PENDING "', now, user)\n"
	"  end\n"
	"end\n"
	"local out = {}\n"
	"local due = redis.call('ZRANGEBYSCORE', '" PL_KEY_PRESENCE_PENDING "', '-inf', now, 'LIMIT', 0, 1000)\n"
	"for _, user in ipairs(due) do\n"
	"  redis.call('ZREM', '" PL_KEY_PRESENCE_PENDING "', user)\n"
	"  local key = '" PL_KEY_PRESENCE_PREFIX "' .. user\n"
	"  local live = false\n"
	"  local f = redis.call('HGETALL', key)\n"
	"  for i = 1, #f, 2 do\n"
	"    if string.sub(f[i], 1, 2) == 'd:' and tonumber(f[i + 1]) > now then live = true end\n"
	"  end\n"
	"  if not live and redis.call('HGET', key, 'state') == 'online' then\n"
	"    redis.call('HSET', key, 'state', 'offline')\n"
	"    local seen = redis.call('HGET', key, 'last_seen') or tostring(now)\n"
	"    table.insert(out, user) table.insert(out, seen)\n"
	"  end\n"
	"end\n"
	"return out\n";

static void do_presence(struct store *s, struct relay_job *j)
{
	const struct pl_config *cfg = s->r->cfg;
	char key[48], user[24], dev[24], a3[24], a4[24];
	const char *argv[7] = { "EVAL", NULL, "1", key, user, dev, a3 };
	const char *argv8[8];
	redisReply *rep;
	long long now = pl_clock_now_ms();

	snprintf(key, sizeof(key), PL_KEY_PRESENCE_FMT, j->user_id);
	snprintf(user, sizeof(user), "%lld", j->user_id);
	snprintf(dev, sizeof(dev), "%lld", j->device_id);
	if (j->a) {
		snprintf(a3, sizeof(a3), "%lld", now + cfg->presence_timeout_s * 1000);
		snprintf(a4, sizeof(a4), "%lld", now);
		argv[1] = heartbeat_lua;
	} else {
		snprintf(a3, sizeof(a3), "%lld", now);
		snprintf(a4, sizeof(a4), "%lld", cfg->presence_grace_s * 1000);
		argv[1] = gone_lua;
	}
	memcpy(argv8, argv, sizeof(argv));
	argv8[7] = a4;
	if (pl_redis_command(&s->redis, 8, argv8, NULL, 1, &rep))
		return;
	if (j->a && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
		announce_presence(s, j->user_id, 1, now);
	freeReplyObject(rep);
}

static void do_sweep(struct store *s)
{
	char now[24];
	const char *argv[4] = { "EVAL", sweep_lua, "0", now };
	redisReply *rep;

	snprintf(now, sizeof(now), "%lld", pl_clock_now_ms());
	if (pl_redis_command(&s->redis, 4, argv, NULL, 1, &rep))
		return;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
	     i += 2)
		announce_presence(s, strtoll(rep->element[i]->str, NULL, 10), 0,
				  strtoll(rep->element[i + 1]->str, NULL, 10));
	freeReplyObject(rep);
}

/*
 * The relay's entry in the registry /api/v1/discover reads: b = 1 registers
 * (a = connections), b = 2 refreshes it, b = 0 removes it.
 */
static void do_register(struct store *s, struct relay_job *j)
{
	const struct pl_config *cfg = s->r->cfg;
	struct pl_registry_entry e = { .connections = j->a,
				       .capacity = cfg->relay_capacity };

	if (!s->registry)
		return;
	if (!j->b) {
		pl_registry_deregister(s->registry, s->r->id);
		return;
	}
	snprintf(e.id, sizeof(e.id), "%s", s->r->id);
	snprintf(e.url, sizeof(e.url), "%s", cfg->relay_public_url);
	snprintf(e.region, sizeof(e.region), "%s", cfg->relay_region);
	if (j->b == 1)
		pl_registry_register(s->registry, &e);
	else
		pl_registry_refresh(s->registry, &e);
}

/*
 * Checks the sessions of live sockets in one statement (doc/architecture.md
 * "Security"): a session revoked while Redis could not announce it, or one
 * that expired, closes its sockets with 4003. A database failure checks
 * nothing: the sockets are due again at their next interval.
 */
static void do_sessions(struct store *s, struct relay_job *j)
{
	long long *sids = malloc(j->nsessions * sizeof(*sids));
	char *ids = NULL;
	const char *params[1];
	PGresult *res;

	for (size_t i = 0; sids && i < j->nsessions; i++)
		sids[i] = j->sessions[i].session_id;
	ids = sids ? pl_db_int_array(sids, j->nsessions) : NULL;
	free(sids);
	if (!ids)
		return;
	params[0] = ids;
	if (pl_db_exec(&s->db,
		       "SELECT x.i FROM unnest($1::bigint[]) WITH ORDINALITY AS "
		       "x(sid, i) WHERE NOT EXISTS (SELECT 1 FROM sessions s "
		       "WHERE s.id = x.sid AND s.revoked_at IS NULL AND "
		       "s.expires_at > now())", 1, params, 1, &res, NULL)) {
		free(ids);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		long long i = strtoll(PQgetvalue(res, r, 0), NULL, 10) - 1;

		if (i >= 0 && (size_t)i < j->nsessions)
			relay_post_event(s->r, EV_SESSION_GONE,
					 j->sessions[i].conn_id, 0, 0, 0, NULL, 0);
	}
	PQclear(res);
	free(ids);
}

/* Runs what take_jobs() took: a batch of sends or hellos, else one job. */
static void run_jobs(struct store *s, struct relay_job **jobs, size_t n,
		     const struct relay_take *take)
{
	struct relay_job *j = jobs[0];

	switch (j->kind) {
	case JOB_SEND: do_sends(s, jobs, n, take); break;
	case JOB_AUTH: do_auths(s, jobs, n); break;
	case JOB_REPLAY: do_replay(s, j); break;
	case JOB_CURSOR: do_cursor(s, j); break;
	case JOB_TYPING: do_typing(s, j); break;
	case JOB_READ: do_read(s, j); break;
	case JOB_PRESENCE: do_presence(s, j); break;
	case JOB_SWEEP: do_sweep(s); break;
	case JOB_REGISTER: do_register(s, j); break;
	case JOB_SESSIONS: do_sessions(s, j); break;
	}
}

static void *store_main(void *arg)
{
	struct store *s = arg;
	struct relay_job *jobs[PL_POST_BATCH_MAX];
	struct relay_take take = { 0, 0 };
	size_t n;

	while ((n = take_jobs(s->r, jobs, PL_POST_BATCH_MAX, &take)) > 0) {
		run_jobs(s, jobs, n, &take);
		for (size_t i = 0; i < n; i++)
			job_free(jobs[i]);
	}
	pl_registry_free(s->registry);
	pl_db_release(&s->db);
	pl_redis_release(&s->redis);
	free(s);
	return NULL;
}

int relay_store_start(struct relay *r, int nthreads)
{
	pthread_mutex_init(&r->jobs_lock, NULL);
	pthread_cond_init(&r->jobs_ready, NULL);
	pthread_cond_init(&r->turn_done, NULL);
	r->hellos.head = r->others.head = NULL;
	r->hellos.tail = &r->hellos.head;
	r->others.tail = &r->others.head;
	for (int p = 0; p < RELAY_SEND_PARTS; p++) {
		r->sends[p].head = NULL;
		r->sends[p].tail = &r->sends[p].head;
	}
	r->stores = calloc((size_t)nthreads, sizeof(*r->stores));
	if (!r->stores)
		return -1;
	for (int i = 0; i < nthreads; i++) {
		struct store *s = calloc(1, sizeof(*s));

		if (!s)
			return -1;
		s->r = r;
		pl_db_init(&s->db, r->cfg);
		pl_redis_init(&s->redis, r->cfg);
		s->registry = pl_registry_open(r->cfg, &s->redis);
		if (!s->registry || pthread_create(&r->stores[i], NULL, store_main, s)) {
			pl_registry_free(s->registry);
			pl_db_release(&s->db);
			pl_redis_release(&s->redis);
			free(s);
			return -1;
		}
		r->nstores++;
	}
	return 0;
}

void relay_store_stop(struct relay *r)
{
	pthread_mutex_lock(&r->jobs_lock);
	r->jobs_closed = 1;
	pthread_cond_broadcast(&r->jobs_ready);
	pthread_mutex_unlock(&r->jobs_lock);
	/* Jobs already queued (cursor writes, the registry removal) still run. */
	for (int i = 0; i < r->nstores; i++)
		pthread_join(r->stores[i], NULL);
	free(r->stores);
	pthread_cond_destroy(&r->jobs_ready);
	pthread_cond_destroy(&r->turn_done);
	pthread_mutex_destroy(&r->jobs_lock);
}
