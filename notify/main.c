/*
 * parley-notify: the push notifier daemon (doc/architecture.md "Push
 * notifications").
 *
 * One loop thread. Each job read from parley:push waits [notify] grace_ms
 * after it was queued; then it is dropped when a device of the user stored
 * a cursor at or past the job's seq (it was read), when the member muted the
 * conversation, or when a later job of the same conversation for the same
 * user is already waiting (the burst collapses into that one). Otherwise one
 * push per APNs/FCM device with a live session goes out on the shared
 * HTTP/2 multi handle. The job is acknowledged when every push was accepted
 * or rejected for good; transient failures back off and retry, then are
 * dead-lettered.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "notify.h"
#include "program.h"
#include "banned.h"

#define MAX_JOBS 4096		/* jobs held at once (read, not yet acked) */
#define MAX_INFLIGHT 100	/* pushes in flight: curl's streams per connection */
#define READ_BATCH 256
#define PUSH_TIMEOUT_MS 15000
#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS 60000
#define FCM_TOKEN_WAIT_MS 300000	/* an FCM push waits this for a token */

struct job;

struct push {
	struct notify_req req;	/* first member: done() gets this address */
	struct notifier *n;
	struct job *job;
	int apns;		/* 1: APNs, 0: FCM */
	char *token;		/* owned; never logged */
	int attempt;		/* failed tries so far */
	int auth_retried;	/* refreshed our credential once already */
	int in_flight;
	long long retry_at_ms;
	struct push *next;
};

struct job {
	struct notify_job_fields f;
	long long due_ms;		/* epoch ms */
	int dispatched;
	int pushes_left;
	struct notify_message msg;
	char *sender, *preview;	/* owned, behind msg's pointers */
	struct job *next, **pprev;	/* pprev: the pointer to this job */
};

struct notifier {
	const struct pl_config *cfg;
	struct pl_db db;
	struct notify_queue queue;
	struct notify_http http;
	struct notify_apns apns;
	struct notify_fcm fcm;
	struct notify_metrics *metrics;
	struct job *jobs, **jobs_tail;
	int njobs;
	struct push *pushes;
	int inflight;
	struct latest *latest;	/* LATEST_SLOTS, for dispatch_due() */
	const char *acks[READ_BATCH];
	char ack_ids[READ_BATCH][NOTIFY_ID_MAX];
	int nacks;
};

static void flush_acks(struct notifier *n)
{
	if (n->nacks == 0)
		return;
	/* A lost ack only means the job is sent again after claim_idle_ms. */
	notify_queue_ack(&n->queue, n->acks, n->nacks);
	n->nacks = 0;
}

static void ack(struct notifier *n, const char *id)
{
	if (n->nacks == READ_BATCH)
		flush_acks(n);
	snprintf(n->ack_ids[n->nacks], NOTIFY_ID_MAX, "%s", id);
	n->acks[n->nacks] = n->ack_ids[n->nacks];
	n->nacks++;
}

/* Acknowledges job and frees it. */
static void finish_job(struct notifier *n, struct job *job, const char *why)
{
	pl_log(PL_LOG_DEBUG, "notify: job %s done (%s) user=%lld conv=%lld "
	       "seq=%lld", job->f.id, why, job->f.user_id,
	       job->f.conversation_id, job->f.seq);
	ack(n, job->f.id);
	*job->pprev = job->next;
	if (job->next)
		job->next->pprev = job->pprev;
	else
		n->jobs_tail = job->pprev;
	n->njobs--;
	free(job->sender);
	free(job->preview);
	free(job);
}

static void on_job(const struct notify_job_fields *f, void *arg)
{
	struct notifier *n = arg;
	struct job *job;

	atomic_fetch_add(&n->metrics->jobs_in, 1);
	if (!f->valid) {
		pl_log(PL_LOG_WARN, "notify: unreadable job %s dropped", f->id);
		ack(n, f->id);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job)
		return;	/* stays pending; claimed again later */
	job->f = *f;
	job->due_ms = f->time_ms + n->cfg->notify_grace_ms;
	job->pprev = n->jobs_tail;
	*n->jobs_tail = job;
	n->jobs_tail = &job->next;
	n->njobs++;
}

static void on_claimed(const struct notify_job_fields *f, void *arg)
{
	struct notifier *n = arg;

	/* Read before (a claim finds this notifier's own idle jobs too). */
	for (struct job *job = n->jobs; job; job = job->next)
		if (strcmp(job->f.id, f->id) == 0)
			return;
	atomic_fetch_add(&n->metrics->jobs_claimed, 1);
	pl_log(PL_LOG_INFO, "notify: took over job %s of a stopped notifier",
	       f->id);
	on_job(f, arg);
}

/* Copies at most max bytes of body, cut at a UTF-8 character boundary. */
static char *make_preview(const char *body, long long max)
{
	size_t len = strlen(body), cut = len;
	char *out;

	if ((long long)len > max) {
		cut = (size_t)max;
		while (cut > 0 && ((unsigned char)body[cut] & 0xC0) == 0x80)
			cut--;
	}
	out = malloc(cut + 4);
	if (!out)
		return NULL;
	memcpy(out, body, cut);
	if (cut < len)
		memcpy(out + cut, "\xE2\x80\xA6", 3);	/* an ellipsis */
	out[cut + (cut < len ? 3 : 0)] = '\0';
	return out;
}

static void add_push(struct notifier *n, struct job *job, int apns,
		     const char *token)
{
	struct push *p = calloc(1, sizeof(*p));

	if (!p || !(p->token = strdup(token))) {
		free(p);
		return;
	}
	p->n = n;
	p->job = job;
	p->apns = apns;
	p->next = n->pushes;
	n->pushes = p;
	job->pushes_left++;
}

/*
 * The grace-time checks of a batch of due jobs, in one statement: per job
 * (x.i, its place in the arrays) the user's highest stored cursor, the mute
 * flag, sender and body, the push devices and, only for a user who has one,
 * the unread count (capped: it is only a badge). A job without a row is of
 * a member or message that is gone, or deleted before its push went out.
 * The preview of a message of attachments alone says what they are
 * ("Photo", "File: name"). A push device is one with a token and a
 * live session (not revoked, not expired): a phone that logged out, or whose
 * session was revoked, gets nothing, whatever token it still holds. Each
 * message is read on its own (LATERAL ... LIMIT 1), pruned to its partition
 * of messages (sql/012), as lib/inbox.h reads a page. The badge counts
 * messages, not edits or reactions (inbox rows with an event_id).
 */
static const char JOBS_SQL[] =
	"SELECT x.i, c.cursor, m.muted, u.display_name, CASE WHEN y.body <> '' "
	"  OR y.attachments IS NULL THEN y.body WHEN y.attachments -> 0 ->> "
	"  'content_type' LIKE 'image/%' THEN 'Photo' ELSE 'File: ' || "
	"  coalesce(y.attachments -> 0 ->> 'name', '') END, b.badge, d.devs "
	"FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY "
	"  AS x(uid, cid, mid, i) "
	"JOIN members m ON m.conversation_id = x.cid AND m.user_id = x.uid "
	"CROSS JOIN LATERAL (SELECT y.sender_id, y.body, y.attachments FROM "
	"  messages y WHERE y.conversation_id = x.cid AND y.message_id = x.mid "
	"  AND y.deleted_at IS NULL LIMIT 1) y "
	"JOIN users u ON u.id = y.sender_id "
	"CROSS JOIN LATERAL (SELECT coalesce(max(cursor), 0) AS cursor "
	"  FROM devices WHERE user_id = x.uid) c "
	"CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(json_agg("
	"  json_build_array(platform, push_token)), '[]') AS devs FROM devices "
	"  WHERE user_id = x.uid AND push_token IS NOT NULL "
	"  AND platform IN ('apns', 'fcm') AND EXISTS (SELECT 1 FROM sessions s "
	"  WHERE s.device_id = devices.id AND s.revoked_at IS NULL "
	"  AND s.expires_at > now())) d "
	"CROSS JOIN LATERAL (SELECT count(*) AS badge FROM (SELECT 1 FROM inbox i "
	"  CROSS JOIN LATERAL (SELECT z.sender_id FROM messages z WHERE "
	"  z.conversation_id = i.conversation_id AND z.message_id = i.message_id "
	"  LIMIT 1) z WHERE d.n > 0 AND i.user_id = x.uid AND "
	"  i.seq > c.cursor AND i.event_id IS NULL AND z.sender_id <> x.uid "
	"  LIMIT 99) q) b";

/* Jobs checked in one statement. */
#define DISPATCH_BATCH 256

/* Decides one checked job from its row of JOBS_SQL. */
static void dispatch_row(struct notifier *n, struct job *job, PGresult *res,
			 int row)
{
	json_t *devs, *d;
	size_t i;

	if (strtoll(PQgetvalue(res, row, 1), NULL, 10) >= job->f.seq ||
	    strcmp(PQgetvalue(res, row, 2), "t") == 0) {
		atomic_fetch_add(&n->metrics->jobs_dropped, 1);
		finish_job(n, job, strcmp(PQgetvalue(res, row, 2), "t") == 0 ?
			   "muted" : "read in grace");
		return;
	}
	job->dispatched = 1;
	job->msg.conversation_id = job->f.conversation_id;
	job->msg.message_id = job->f.message_id;
	job->msg.seq = job->f.seq;
	job->msg.badge = strtoll(PQgetvalue(res, row, 5), NULL, 10);
	if (!n->cfg->notify_content_free) {
		job->sender = strdup(PQgetvalue(res, row, 3));
		job->preview = make_preview(PQgetvalue(res, row, 4),
					    n->cfg->notify_preview_bytes);
		job->msg.sender = job->sender;
		job->msg.preview = job->preview;
	}
	devs = json_loads(PQgetvalue(res, row, 6), 0, NULL);
	json_array_foreach(devs, i, d) {
		const char *platform = json_string_value(json_array_get(d, 0));
		const char *token = json_string_value(json_array_get(d, 1));

		if (!platform || !token)
			continue;
		if (strcmp(platform, "apns") == 0 && n->apns.on)
			add_push(n, job, 1, token);
		else if (strcmp(platform, "fcm") == 0 && n->fcm.on)
			add_push(n, job, 0, token);
	}
	json_decref(devs);
	if (job->pushes_left == 0) {
		atomic_fetch_add(&n->metrics->jobs_dropped, 1);
		finish_job(n, job, "no push device");
	}
}

/* One field of jobs[0..count) as a PostgreSQL array literal. */
static char *job_array(struct job **jobs, int count, int field)
{
	long long *v = malloc(((size_t)count + 1) * sizeof(*v));
	char *text;

	if (!v)
		return NULL;
	for (int i = 0; i < count; i++)
		v[i] = field == 0 ? jobs[i]->f.user_id :
		       field == 1 ? jobs[i]->f.conversation_id :
		       jobs[i]->f.message_id;
	text = pl_db_int_array(v, (size_t)count);
	free(v);
	return text;
}

/*
 * Checks jobs[0..count) (due, not dispatched, not collapsed) and dispatches
 * or finishes each. Returns 0, or -1 when PostgreSQL is away (every job
 * stays as it was, to try later).
 */
static int dispatch(struct notifier *n, struct job **jobs, int count)
{
	char *uids = job_array(jobs, count, 0), *cids = job_array(jobs, count, 1);
	char *mids = job_array(jobs, count, 2);
	const char *params[] = { uids, cids, mids };
	unsigned char seen[DISPATCH_BATCH] = { 0 };
	PGresult *res = NULL;
	enum pl_err rc = PL_UNAVAILABLE;

	if (uids && cids && mids)
		rc = pl_db_exec(&n->db, JOBS_SQL, 3, params, 1, &res, NULL);
	free(uids);
	free(cids);
	free(mids);
	if (rc == PL_UNAVAILABLE) {
		PQclear(res);
		return -1;
	}
	if (rc)
		pl_log(PL_LOG_ERR, "notify: cannot check %d jobs: %s", count,
		       pl_err_code(rc));
	for (int row = 0; rc == PL_OK && row < PQntuples(res); row++) {
		long long i = strtoll(PQgetvalue(res, row, 0), NULL, 10) - 1;

		if (i < 0 || i >= count || seen[i])
			continue;
		seen[i] = 1;
		dispatch_row(n, jobs[i], res, row);
	}
	PQclear(res);
	for (int i = 0; i < count; i++) {
		if (seen[i])
			continue;
		atomic_fetch_add(&n->metrics->jobs_dropped, 1);
		finish_job(n, jobs[i], "not a member or no message");
	}
	return 0;
}

/* Slots of the table of latest waiting seqs: a power of two > MAX_JOBS. */
#define LATEST_SLOTS 8192

struct latest {
	long long user_id, conversation_id, seq;	/* user_id 0: free */
};

static struct latest *latest_slot(struct latest *t, long long user,
				  long long conv)
{
	unsigned long long h = (unsigned long long)user * 0x9E3779B97F4A7C15ULL ^
			       (unsigned long long)conv * 0xC2B2AE3D27D4EB4FULL;

	for (size_t i = (size_t)(h >> 51) & (LATEST_SLOTS - 1);;
	     i = (i + 1) & (LATEST_SLOTS - 1))
		if (t[i].user_id == 0 || (t[i].user_id == user &&
					  t[i].conversation_id == conv))
			return &t[i];
}

/*
 * Fills t with the highest seq waiting (not dispatched) per user and
 * conversation: a job below it collapses into that later one. One pass,
 * rather than a walk of every job for each due one.
 */
static void note_latest(struct notifier *n, struct latest *t)
{
	memset(t, 0, LATEST_SLOTS * sizeof(*t));
	for (struct job *j = n->jobs; j; j = j->next) {
		struct latest *l;

		if (j->dispatched || j->f.user_id == 0)
			continue;
		l = latest_slot(t, j->f.user_id, j->f.conversation_id);
		if (l->user_id == 0 || j->f.seq > l->seq)
			*l = (struct latest){ j->f.user_id, j->f.conversation_id,
					      j->f.seq };
	}
}

/* Dispatches the jobs due at now, a batch at a time. */
static void dispatch_due(struct notifier *n, long long now)
{
	struct job *batch[DISPATCH_BATCH];
	int count;

	do {
		int noted = 0;

		count = 0;
		for (struct job *j = n->jobs, *next; j && count < DISPATCH_BATCH;
		     j = next) {
			next = j->next;
			if (j->dispatched || j->due_ms > now)
				continue;
			if (!noted) {
				note_latest(n, n->latest);
				noted = 1;
			}
			if (j->f.user_id &&
			    latest_slot(n->latest, j->f.user_id,
					j->f.conversation_id)->seq > j->f.seq) {
				atomic_fetch_add(&n->metrics->jobs_collapsed, 1);
				finish_job(n, j, "collapsed");
				continue;
			}
			batch[count++] = j;
		}
		if (count && dispatch(n, batch, count) < 0) {
			/* PostgreSQL is away: wait, rather than pay a connect
			 * timeout for every due job. */
			for (struct job *k = n->jobs; k; k = k->next)
				if (!k->dispatched && k->due_ms <= now)
					k->due_ms = now + 1000;
			return;
		}
	} while (count == DISPATCH_BATCH);
}

static void push_done(struct notifier *n, struct push *p)
{
	struct push **pp;
	struct job *job = p->job;

	for (pp = &n->pushes; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	notify_req_release(&p->req);
	free(p->token);
	free(p);
	if (--job->pushes_left == 0)
		finish_job(n, job, "pushed");
}

/* Deletes the token unless the device registered it again since the job. */
static void remove_token(struct notifier *n, struct push *p)
{
	char at[24];
	const char *params[] = { p->apns ? "apns" : "fcm", p->token, at };
	PGresult *res = NULL;

	snprintf(at, sizeof(at), "%lld", p->job->f.time_ms);
	if (pl_db_exec(&n->db, "UPDATE devices SET push_token = NULL, "
		       "push_token_set_at = now() WHERE platform = $1 AND "
		       "push_token = $2 AND push_token_set_at <= "
		       "to_timestamp($3::double precision / 1000)",
		       3, params, 1, &res, NULL) == PL_OK &&
	    strcmp(PQcmdTuples(res), "0") != 0) {
		atomic_fetch_add(&n->metrics->tokens_removed, 1);
		pl_log(PL_LOG_INFO, "notify: removed a dead %s token user=%lld",
		       params[0], p->job->f.user_id);
	}
	PQclear(res);
}

static long long backoff_ms(const struct push *p)
{
	long long ms = BACKOFF_BASE_MS;

	if (p->req.retry_after_s >= 0)
		return p->req.retry_after_s * 1000 + rand() % 250;
	for (int i = 1; i < p->attempt && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	/* Full jitter over the upper half, so retries spread out. */
	return ms / 2 + rand() % (ms / 2 + 1);
}

static void on_push_done(struct notify_req *req, void *arg)
{
	struct push *p = arg;
	struct notifier *n = p->n;
	enum notify_outcome o = p->apns ? notify_apns_outcome(req) :
				notify_fcm_outcome(req);

	p->in_flight = 0;
	n->inflight--;
	switch (o) {
	case NOTIFY_SENT:
		atomic_fetch_add(&n->metrics->sent, 1);
		atomic_fetch_add(&n->metrics->latency_count, 1);
		atomic_fetch_add(&n->metrics->latency_sum_ms,
				 (unsigned long)(pl_clock_now_ms() - p->job->f.time_ms));
		break;
	case NOTIFY_TOKEN_GONE:
		remove_token(n, p);
		break;
	case NOTIFY_AUTH:
		if (!p->auth_retried) {
			/* Our credential was refused: a new one, once. */
			p->auth_retried = 1;
			if (p->apns)
				notify_apns_invalidate(&n->apns);
			else
				notify_fcm_invalidate(&n->fcm);
			p->retry_at_ms = 0;
			return;
		}
		atomic_fetch_add(&n->metrics->failed, 1);
		pl_log(PL_LOG_ERR, "notify: dead-lettered job %s: %s refused "
		       "a fresh credential status=%ld", p->job->f.id,
		       p->apns ? "apns" : "fcm", req->status);
		break;
	case NOTIFY_RETRY:
		if (++p->attempt <= n->cfg->notify_max_retries) {
			atomic_fetch_add(&n->metrics->retried, 1);
			p->retry_at_ms = pl_clock_now_ms() + backoff_ms(p);
			pl_log(PL_LOG_DEBUG, "notify: retrying job %s %s attempt=%d "
			       "status=%ld", p->job->f.id, p->apns ? "apns" :
			       "fcm", p->attempt, req->status);
			return;
		}
		atomic_fetch_add(&n->metrics->failed, 1);
		pl_log(PL_LOG_ERR, "notify: dead-lettered job %s user=%lld %s "
		       "after %d attempts status=%ld error=%s", p->job->f.id,
		       p->job->f.user_id, p->apns ? "apns" : "fcm", p->attempt,
		       req->status, curl_easy_strerror(req->result));
		break;
	case NOTIFY_REJECTED:
		atomic_fetch_add(&n->metrics->failed, 1);
		break;
	}
	push_done(n, p);
}

static void start_pushes(struct notifier *n, long long now)
{
	int fcm_ready = -1;

	for (struct push *p = n->pushes, *next; p && n->inflight < MAX_INFLIGHT;
	     p = next) {
		char url[8192];
		enum pl_err rc;

		next = p->next;
		if (p->in_flight || p->retry_at_ms > now)
			continue;
		if (!p->apns) {
			if (fcm_ready < 0)
				fcm_ready = notify_fcm_ready(&n->fcm, &n->http,
							     pl_clock_mono_ms());
			if (!fcm_ready && now - p->job->due_ms > FCM_TOKEN_WAIT_MS) {
				/* No access token for minutes: give up on
				 * this push rather than hold the job forever. */
				atomic_fetch_add(&n->metrics->failed, 1);
				pl_log(PL_LOG_ERR, "notify: dead-lettered job %s "
				       "user=%lld fcm: no access token",
				       p->job->f.id, p->job->f.user_id);
				push_done(n, p);
				continue;
			}
			if (!fcm_ready)
				continue;
		}
		rc = p->apns ? notify_apns_prepare(&n->apns, &p->req, p->token,
						   &p->job->msg, url,
						   sizeof(url)) :
			       notify_fcm_prepare(&n->fcm, &p->req, p->token,
						  &p->job->msg, url, sizeof(url));
		if (rc == PL_OK)
			rc = notify_http_start(&n->http, &p->req, url,
					       p->apns ? n->apns.ca_file :
					       n->fcm.ca_file, PUSH_TIMEOUT_MS,
					       on_push_done, p);
		if (rc) {
			p->retry_at_ms = now + 1000;
			continue;
		}
		p->in_flight = 1;
		n->inflight++;
	}
}

/* Milliseconds until something is due (a job's grace or a retry), max 500. */
static long long idle_ms(struct notifier *n, long long now)
{
	long long next = now + 500;

	for (struct job *j = n->jobs; j; j = j->next)
		if (!j->dispatched && j->due_ms < next)
			next = j->due_ms;
	for (struct push *p = n->pushes; p; p = p->next)
		if (!p->in_flight && p->retry_at_ms < next)
			next = p->retry_at_ms;
	return next > now ? next - now : 0;
}

/* Keeps this notifier's jobs from looking abandoned to the others. */
static void touch_jobs(struct notifier *n)
{
	const char *ids[READ_BATCH];
	int k = 0;

	for (struct job *j = n->jobs; j; j = j->next) {
		ids[k++] = j->f.id;
		if (k == READ_BATCH) {
			notify_queue_touch(&n->queue, ids, k);
			k = 0;
		}
	}
	notify_queue_touch(&n->queue, ids, k);
}

static void run(struct notifier *n)
{
	long long next_claim = 0, next_read = 0, stop_deadline = 0;

	while (!pl_stop_requested || (n->inflight > 0 &&
				      pl_clock_mono_ms() < stop_deadline)) {
		long long now = pl_clock_now_ms(), mono = pl_clock_mono_ms(), wait;
		int blocked = 0;

		if (pl_stop_requested && !stop_deadline)
			stop_deadline = mono + 3000;
		wait = idle_ms(n, now);
		if (!pl_stop_requested && n->njobs < MAX_JOBS &&
		    mono >= next_read) {
			int block = n->http.running ? 0 : (int)wait;

			blocked = 1;
			if (notify_queue_read(&n->queue, READ_BATCH, block,
					      on_job, n))
				next_read = mono + 1000;	/* Redis away */
		}
		if (!pl_stop_requested && mono >= next_claim) {
			touch_jobs(n);
			notify_queue_claim(&n->queue, READ_BATCH, on_claimed, n);
			next_claim = mono + n->cfg->notify_claim_idle_ms / 3;
		}
		now = pl_clock_now_ms();
		dispatch_due(n, now);
		start_pushes(n, now);
		flush_acks(n);
		notify_http_run(&n->http, n->http.running ? 50 : 0);
		if (!n->http.running && n->njobs == 0 && pl_stop_requested)
			break;
		if (!n->http.running && next_read > pl_clock_mono_ms())
			pl_program_sleep_ms(50);
		else if (!n->http.running && !blocked && wait > 0)
			/* Holding MAX_JOBS, none due: wait for the next one
			 * rather than spin over them. */
			pl_program_sleep_ms(wait < 50 ? wait : 50);
	}
	flush_acks(n);
}

int main(int argc, char **argv)
{
	struct pl_config cfg;
	struct notifier n;
	struct notify_metrics metrics;
	void *listener = NULL;
	int next, status;

	status = pl_program_start(argc, argv, "parley-notify", NULL, &cfg, &next);
	if (status >= 0) {
		pl_config_release(&cfg);
		return status;
	}
	memset(&n, 0, sizeof(n));
	n.jobs_tail = &n.jobs;
	n.latest = calloc(LATEST_SLOTS, sizeof(*n.latest));
	memset(&metrics, 0, sizeof(metrics));
	n.cfg = &cfg;
	n.metrics = &metrics;
	srand((unsigned)(time(NULL) ^ pl_clock_mono_ms()));
	if (!n.latest || curl_global_init(CURL_GLOBAL_DEFAULT) ||
	    notify_http_init(&n.http, &metrics.connects) ||
	    notify_apns_init(&n.apns, &cfg, &metrics.apns_jwts) ||
	    notify_fcm_init(&n.fcm, &cfg, &metrics.fcm_tokens)) {
		pl_log(PL_LOG_ERR, "notify: cannot start");
		free(n.latest);
		pl_config_release(&cfg);
		return 1;
	}
	pl_db_init(&n.db, &cfg);
	notify_queue_init(&n.queue, &cfg);
	if (cfg.notify_metrics_port &&
	    !(listener = notify_metrics_start(&metrics,
					      cfg.notify_metrics_port))) {
		free(n.latest);
		pl_config_release(&cfg);
		return 1;
	}
	pl_log(PL_LOG_INFO, "notify: starting grace_ms=%lld claim_idle_ms=%lld",
	       cfg.notify_grace_ms, cfg.notify_claim_idle_ms);
	pl_db_wait(&n.db);
	run(&n);
	pl_log(PL_LOG_INFO, "notify: stopping with %d jobs left to others",
	       n.njobs);
	notify_metrics_stop(listener);
	while (n.pushes) {
		struct push *p = n.pushes;

		n.pushes = p->next;
		notify_req_release(&p->req);
		free(p->token);
		free(p);
	}
	while (n.jobs) {
		struct job *j = n.jobs;

		n.jobs = j->next;
		free(j->sender);
		free(j->preview);
		free(j);
	}
	free(n.latest);
	notify_fcm_release(&n.fcm);
	notify_apns_release(&n.apns);
	notify_http_release(&n.http);
	notify_queue_release(&n.queue);
	pl_db_release(&n.db);
	curl_global_cleanup();
	pl_config_release(&cfg);
	return 0;
}
