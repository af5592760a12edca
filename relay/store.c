/*
 * store: the relay's worker threads for PostgreSQL and Redis work: each
 * takes jobs from the queues (jobs.c) and runs them here.
 *
 * Each thread owns one PostgreSQL and one Redis connection and takes jobs
 * from one queue. Sends are batched: a thread that picks a send takes every
 * other send waiting in the queue with it (up to PL_POST_BATCH_MAX) and
 * stores them in one post_messages() call, so durable throughput follows
 * PostgreSQL's group commit rather than one round trip per message
 * (doc/architecture.md "How a message flows"). Results go back to the service
 * thread as events keyed by connection id (events.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "inbox.h"
#include "json.h"
#include "log.h"
#include "pl_limits.h"
#include "post.h"
#include "presence.h"
#include "publish.h"
#include "ratelimit.h"
#include "receipt.h"
#include "redis.h"
#include "registry.h"
#include "events.h"
#include "jobs.h"
#include "relay.h"
#include "store.h"
#include "banned.h"

struct store {
	struct relay *r;
	struct pl_db db;
	struct pl_redis redis;
};

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
		v[i] = field == 0 ? jobs[i]->as.auth.session_id :
		       field == 1 ? jobs[i]->user_id : jobs[i]->as.auth.device_id;
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
	PGresult *res;
	size_t len = 0, cap = 0;
	char *text = NULL;
	long long last = j->as.replay.after_seq;
	int rows;

	atomic_fetch_add(&s->r->metrics.replays, 1);
	if (pl_inbox_page(&s->db, j->user_id, j->as.replay.after_seq,
			  j->as.replay.limit, &res)) {
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

/* Answers each send of a batch on its connection: "sent", or its error. */
static void answer_sends(struct store *s, struct relay_job **jobs,
			 const struct pl_post_item *items,
			 const struct pl_post_result *results, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct pl_post_result *res = &results[i];
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
}

/*
 * Stores a partition's batch, then lets the partition's next batch be
 * stored while this one is answered and published: in turn (the ticket
 * relay_jobs_take() gave it), so the partition's acks and events still go out
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

	for (size_t i = 0; i < n; i++) {
		const struct relay_job_send *send = &jobs[i]->as.send;

		items[i] = (struct pl_post_item){
			.sender_id = jobs[i]->user_id,
			.conversation_id = send->conversation_id,
			.client_msg_id = send->client_msg_id,
			.body = send->body,
			.body_len = send->body_len,
			.reply_to = send->reply_to,
			.n_attachments = send->n_attachments,
		};
		memcpy(items[i].attachment_ids, send->attachment_ids,
		       sizeof(items[i].attachment_ids));
	}
	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		post_allowed(s, items, n, results);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_observe(&s->r->metrics.store,
				(t1.tv_sec - t0.tv_sec) * 1000000LL +
				(t1.tv_nsec - t0.tv_nsec) / 1000);
	}
	relay_jobs_sends_stored(&s->r->jobs, take);
	relay_jobs_wait_turn(&s->r->jobs, take);
	/* Answer first: the sender learns of the commit without waiting on Redis. */
	answer_sends(s, jobs, items, results, n);
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
			.reply_to = items[i].reply_to,
			.attachments = res->attachments,
		};
		deliveries[fresh] = res->deliveries;
		n_deliveries[fresh++] = res->n_deliveries;
	}
	if (fresh)
		pl_publish_messages(&s->redis, msgs, deliveries, n_deliveries,
				    fresh);
	relay_jobs_end_turn(&s->r->jobs);
	pl_post_results_release(results, n);
}

static void do_cursor(struct store *s, struct relay_job *j)
{
	/* A failure leaves the cursors where they were: they only move forward,
	 * and the device's next ack or close writes them again. */
	pl_cursor_store(&s->db, j->as.cursors.cursors, j->as.cursors.n);
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

	snprintf(conv, sizeof(conv), "%lld", j->as.typing.conversation_id);
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
				       "conversation_id",
				       (json_int_t)j->as.typing.conversation_id,
				       "user_id", (json_int_t)j->user_id));
	PQclear(res);
}

static void do_read(struct store *s, struct relay_job *j)
{
	long long upto;
	int moved = 0;
	const struct relay_job_read *rd = &j->as.read;
	enum pl_err rc = pl_receipt_mark_read(&s->db, &s->redis,
					      rd->conversation_id, j->user_id,
					      rd->message_id, &upto, &moved);

	if (rc == PL_OK && !moved) {
		/* Answered on this socket only: the members know already. */
		json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "type", "read",
				      "conversation_id",
				      (json_int_t)rd->conversation_id,
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
	/* Never across a block, either way (doc/protocol.md "Blocking"). */
	if (pl_db_exec(&s->db, "SELECT f.friend_id FROM friendships f WHERE "
		       "f.user_id = $1 AND f.state = 'accepted' AND NOT EXISTS "
		       "(SELECT 1 FROM blocks b WHERE (b.user_id = $1 AND "
		       "b.blocked_id = f.friend_id) OR (b.user_id = f.friend_id "
		       "AND b.blocked_id = $1))", 1, params, 1, &res, NULL))
		return;
	publish_rows(s, res, json_pack("{s:s,s:I,s:s,s:s}", "type", "presence",
				       "user_id", (json_int_t)user, "status",
				       online ? "online" : "offline",
				       "last_seen", stamp));
	PQclear(res);
}

/*
 * A device's heartbeat or its socket gone, in Redis
 * (lib/presence.h); friends hear of a user who came online at once, of one
 * who went offline from the sweep after the grace period.
 */
static void do_presence(struct store *s, struct relay_job *j)
{
	const struct pl_config *cfg = s->r->cfg;
	long long now = pl_clock_now_ms();
	int came_online;

	if (!j->as.presence.online) {
		pl_presence_gone(&s->redis, j->user_id, j->as.presence.device_id, now,
				 cfg->presence_grace_s * 1000);
		return;
	}
	if (pl_presence_heartbeat(&s->redis, j->user_id, j->as.presence.device_id,
				  now,
				  cfg->presence_timeout_s * 1000,
				  &came_online) == PL_OK && came_online)
		announce_presence(s, j->user_id, 1, now);
}

static void do_sweep(struct store *s)
{
	struct pl_presence *gone;
	size_t n;

	if (pl_presence_sweep(&s->redis, pl_clock_now_ms(), &gone, &n) == PL_OK) {
		for (size_t i = 0; i < n; i++)
			announce_presence(s, gone[i].user_id, 0,
					  gone[i].last_seen_ms);
		free(gone);
	}
	atomic_store(&s->r->sweeping, 0);
}

/*
 * The relay's entry in the registry /api/v1/discover reads (lib/registry.h):
 * one registry for the relay, whichever thread runs the job, so a backend
 * that ties the entry to its connection (a session) keeps one.
 */
static void do_register(struct store *s, struct relay_job *j)
{
	const struct pl_config *cfg = s->r->cfg;
	struct pl_registry_entry e = { .connections = j->as.reg.connections,
				       .capacity = cfg->relay_capacity };

	snprintf(e.id, sizeof(e.id), "%s", s->r->id);
	snprintf(e.url, sizeof(e.url), "%s", cfg->relay_public_url);
	snprintf(e.region, sizeof(e.region), "%s", cfg->relay_region);
	pthread_mutex_lock(&s->r->registry_lock);
	if (j->as.reg.op == RELAY_REGISTRY_DEREGISTER)
		pl_registry_deregister(s->r->registry, s->r->id);
	else if (j->as.reg.op == RELAY_REGISTRY_REGISTER)
		pl_registry_register(s->r->registry, &e);
	else
		pl_registry_refresh(s->r->registry, &e);
	pthread_mutex_unlock(&s->r->registry_lock);
}

/*
 * Checks the sessions of live sockets in one statement (doc/architecture.md
 * "Security"): a session revoked while Redis could not announce it, or one
 * that expired, closes its sockets with 4003. A database failure checks
 * nothing: the sockets are due again at their next interval.
 */
static void do_sessions(struct store *s, struct relay_job *j)
{
	const struct relay_job_sessions *ss = &j->as.sessions;
	long long *sids = malloc(ss->n * sizeof(*sids));
	char *ids = NULL;
	const char *params[1];
	PGresult *res;

	for (size_t i = 0; sids && i < ss->n; i++)
		sids[i] = ss->refs[i].session_id;
	ids = sids ? pl_db_int_array(sids, ss->n) : NULL;
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

		if (i >= 0 && (size_t)i < ss->n)
			relay_post_event(s->r, EV_SESSION_GONE, ss->refs[i].conn_id,
					 0, 0, 0, NULL, 0);
	}
	PQclear(res);
	free(ids);
}

/* Runs what relay_jobs_take() took: a batch of sends or hellos, else one job. */
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

	while ((n = relay_jobs_take(&s->r->jobs, jobs, PL_POST_BATCH_MAX,
				    &take)) > 0) {
		run_jobs(s, jobs, n, &take);
		for (size_t i = 0; i < n; i++)
			relay_job_free(jobs[i]);
	}
	pl_db_release(&s->db);
	pl_redis_release(&s->redis);
	free(s);
	return NULL;
}

int relay_store_start(struct relay *r, int nthreads)
{
	relay_jobs_init(&r->jobs, (size_t)r->cfg->relay_max_jobs,
			(int)r->cfg->relay_max_jobs_per_connection,
			&r->metrics.jobs_refused);
	pthread_mutex_init(&r->registry_lock, NULL);
	pl_redis_init(&r->registry_redis, r->cfg);
	r->registry = pl_registry_open(r->cfg, &r->registry_redis);
	r->stores = calloc((size_t)nthreads, sizeof(*r->stores));
	if (!r->registry || !r->stores)
		return -1;
	for (int i = 0; i < nthreads; i++) {
		struct store *s = calloc(1, sizeof(*s));

		if (!s)
			return -1;
		s->r = r;
		pl_db_init(&s->db, r->cfg);
		pl_redis_init(&s->redis, r->cfg);
		if (pthread_create(&r->stores[i], NULL, store_main, s)) {
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
	relay_jobs_close(&r->jobs);
	/* Jobs already queued (cursor writes, the registry removal) still run. */
	for (int i = 0; i < r->nstores; i++)
		pthread_join(r->stores[i], NULL);
	free(r->stores);
	relay_jobs_release(&r->jobs);
	pl_registry_free(r->registry);
	pl_redis_release(&r->registry_redis);
	pthread_mutex_destroy(&r->registry_lock);
}
