/*
 * notify: the push notifier's modules (doc/architecture.md "Push notifications").
 *
 * queue.c reads push jobs from the Redis stream parley:push as a member of
 * the consumer group "notify", acknowledges them and takes over the jobs of
 * crashed notifiers. http2.c runs every HTTP request on one libcurl multi
 * handle, multiplexed over HTTP/2. apns.c and fcm.c turn one push into a
 * request for their provider and classify the provider's answer. main.c
 * owns the loop: grace, collapse, the database checks, retries and acks.
 * Everything runs on the one loop thread except the metrics listener, which
 * only reads the atomic counters.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <curl/curl.h>
#include <jwt.h>
#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "keys.h"
#include "redis.h"

/* ---- counters (served by metrics.c) --------------------------------------- */

struct notify_metrics {
	atomic_ulong jobs_in;		/* read or claimed from the stream */
	atomic_ulong jobs_claimed;	/* of those, taken over from another */
	atomic_ulong jobs_dropped;	/* read, muted, member gone, no device */
	atomic_ulong jobs_collapsed;	/* superseded by a later one */
	atomic_ulong sent;		/* pushes accepted by APNs or FCM */
	atomic_ulong retried;		/* pushes scheduled again */
	atomic_ulong failed;		/* dead-lettered or rejected for good */
	atomic_ulong tokens_removed;
	atomic_ulong connects;		/* HTTP connections opened */
	atomic_ulong apns_jwts;		/* provider tokens signed */
	atomic_ulong fcm_tokens;	/* access tokens fetched */
	atomic_ulong latency_count;	/* queued-to-accepted, per push */
	atomic_ulong latency_sum_ms;
};

/*
 * Serves GET /metrics on 127.0.0.1:port from m (borrowed; must outlive the
 * listener) on libmicrohttpd's own thread. Returns the listener for
 * notify_metrics_stop(), or NULL (logged).
 */
void *notify_metrics_start(struct notify_metrics *m, long long port);

/* Stops the listener; NULL is a no-op. */
void notify_metrics_stop(void *listener);

/* ---- http2.c ------------------------------------------------------------ */

#define NOTIFY_RESP_MAX 4096	/* response bytes kept; the rest is dropped */

struct notify_req;
typedef void (*notify_req_fn)(struct notify_req *req, void *arg);

/*
 * One HTTP request. The caller embeds it in its own object, fills url,
 * headers and body through notify_req_set(), and gets done() once, on the
 * loop thread, after the transfer ended (result, status, resp filled in).
 */
struct notify_req {
	CURL *easy;			/* owned while in flight */
	struct curl_slist *headers;	/* owned */
	char *body;			/* owned, sent as the POST body */
	char resp[NOTIFY_RESP_MAX + 1];	/* NUL-terminated */
	size_t resp_len;
	CURLcode result;		/* CURLE_OK: an HTTP answer came */
	long status;			/* HTTP status, 0 without an answer */
	long retry_after_s;		/* Retry-After in seconds, -1 if absent */
	notify_req_fn done;
	void *arg;
};

struct notify_http {
	CURLM *multi;
	int running;			/* transfers in flight */
	atomic_ulong *connects;		/* new connections opened (metrics) */
};

/* Sets up the multi handle (HTTP/2 multiplexing, one connection per host). */
enum pl_err notify_http_init(struct notify_http *h, atomic_ulong *connects);
void notify_http_release(struct notify_http *h);

/*
 * Adds one header line (copied) to req. Returns PL_OK or PL_INTERNAL (out of
 * memory).
 */
enum pl_err notify_req_header(struct notify_req *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Starts req as a POST of its body (transferred to req by the caller
 * beforehand) to url (copied), checking the server against ca_file (NULL or
 * "": the system's CAs). done(req, arg) follows exactly once, from
 * notify_http_run(); on an error return it is never called and req is
 * unchanged except that resp/status are reset.
 */
enum pl_err notify_http_start(struct notify_http *h, struct notify_req *req,
			      const char *url, const char *ca_file,
			      long timeout_ms, notify_req_fn done, void *arg);

/*
 * Drives the transfers: waits up to wait_ms for network activity, then
 * calls done() for every finished request. A request's easy handle is freed
 * before its done() runs; headers and body stay until notify_req_release().
 */
void notify_http_run(struct notify_http *h, int wait_ms);

/*
 * libcurl's write and header callbacks for req (arg), which keep what
 * notify_apns_outcome() and notify_fcm_outcome() read: the body's first
 * NOTIFY_RESP_MAX bytes in resp (NUL-terminated, the rest dropped) and a
 * Retry-After in seconds (capped at 3600; an HTTP date counts as absent).
 * They take size * nmemb bytes of data (borrowed) and return that count.
 */
size_t notify_req_on_body(char *data, size_t size, size_t nmemb, void *arg);
size_t notify_req_on_header(char *data, size_t size, size_t nmemb, void *arg);

/* Frees what req owns (headers, body); safe on a zeroed request. */
void notify_req_release(struct notify_req *req);

/* ---- outcomes shared by apns.c and fcm.c ---------------------------------- */

enum notify_outcome {
	NOTIFY_SENT,		/* accepted */
	NOTIFY_RETRY,		/* 429, 5xx, network: back off and try again */
	NOTIFY_TOKEN_GONE,	/* the device token is dead: delete it */
	NOTIFY_AUTH,		/* our provider credential was refused */
	NOTIFY_REJECTED,	/* refused for good (bad payload, topic ...) */
};

/* What one push says, built once per job and shared by its devices. */
struct notify_message {
	long long conversation_id, message_id, seq;
	const char *sender;	/* NULL for content-free pushes */
	const char *preview;	/* NULL for content-free pushes */
	long long badge;	/* -1: omit */
};

/* ---- apns.c ------------------------------------------------------------- */

#define NOTIFY_KEY_FILE_MAX 65536	/* bytes of a key or service account */

/*
 * Reads a PEM private key from path (or, with path NULL, takes the PEM text
 * pem, borrowed) and checks it suits the algorithm: a P-256 EC key when
 * want_ec (ES256), else RSA (RS256). A file its group or others may read is
 * refused (pl_token_secret_read()). Returns 0 with *out a new string the
 * caller frees, or -1 (logged, without the key).
 */
int notify_key_read(const char *path, const char *pem, int want_ec,
		    char **out);

/*
 * Signs a JWT with alg and key_pem (borrowed), header kid (NULL: none) and
 * the claims of claims_json. Returns a new string (free()) or NULL.
 */
char *notify_jwt_sign(jwt_alg_t alg, const char *key_pem, const char *kid,
		      const char *claims_json);

struct notify_apns {
	int on;
	char *url, *key_id, *team_id, *topic, *ca_file;	/* borrowed from cfg */
	char *key_pem;		/* the .p8 key; never logged */
	long long lifetime_s;
	char *jwt;		/* the current provider token */
	long long jwt_iat;	/* its iat, epoch seconds */
	atomic_ulong *signed_count;
};

/*
 * Reads the .p8 key named by cfg (borrowed; must outlive a) and checks that
 * it is a P-256 EC key, as ES256 requires. Without a key_file APNs is off
 * (a->on = 0), which is logged once. Returns 0, or -1 (logged) when the key
 * is configured but unusable.
 */
int notify_apns_init(struct notify_apns *a, const struct pl_config *cfg,
		     atomic_ulong *signed_count);
void notify_apns_release(struct notify_apns *a);

/* Drops the provider token so the next request signs a new one. */
void notify_apns_invalidate(struct notify_apns *a);

/*
 * Fills req for one alert to device token (borrowed): URL, headers (provider
 * JWT, reused until token_lifetime_s) and JSON body. Returns PL_OK,
 * PL_INTERNAL when signing or allocation failed (logged).
 */
enum pl_err notify_apns_prepare(struct notify_apns *a, struct notify_req *req,
				const char *token,
				const struct notify_message *m, char *url,
				size_t urllen);

/* Classifies a finished APNs request. */
enum notify_outcome notify_apns_outcome(const struct notify_req *req);

/* ---- fcm.c -------------------------------------------------------------- */

struct notify_fcm {
	int on;
	char *url, *ca_file;		/* borrowed from cfg */
	char *token_url, *project_id, *client_email;	/* owned */
	char *key_pem;			/* RS256 private key; never logged */
	char *access_token;		/* owned; NULL until fetched */
	long long expires_at_ms;	/* refresh before this */
	long long retry_at_ms;		/* after a failed fetch */
	int fetching;
	struct notify_req token_req;
	atomic_ulong *token_count;
};

/*
 * Reads the service-account JSON named by cfg (project_id, client_email,
 * private_key, token_uri) and checks the key is RSA. Without a file FCM is
 * off (logged once). Returns 0, or -1 (logged) for an unusable file.
 */
int notify_fcm_init(struct notify_fcm *f, const struct pl_config *cfg,
		    atomic_ulong *token_count);
void notify_fcm_release(struct notify_fcm *f);

/*
 * Returns 1 when an access token is valid at now_ms; otherwise starts
 * fetching one on h (unless a fetch runs or failed recently) and returns 0.
 */
int notify_fcm_ready(struct notify_fcm *f, struct notify_http *h,
		     long long now_ms);

/*
 * Reads the token endpoint's answer in req: on a 200 whose JSON body holds
 * a string "access_token" and a positive "expires_in", returns PL_OK with
 * *token a new string (free()), *expires_in_s (at most a day), and
 * *refresh_ms, how long from now to fetch the next one; else PL_UNAVAILABLE.
 */
enum pl_err notify_fcm_token_answer(const struct notify_req *req, char **token,
				    long long *expires_in_s, long long *refresh_ms);
/* Drops the access token (after a 401) so the next push fetches one. */
void notify_fcm_invalidate(struct notify_fcm *f);

/* Like notify_apns_prepare(), for FCM HTTP v1; needs notify_fcm_ready(). */
enum pl_err notify_fcm_prepare(struct notify_fcm *f, struct notify_req *req,
			       const char *token,
			       const struct notify_message *m, char *url,
			       size_t urllen);

/*
 * Classifies a finished FCM request. The token is gone for UNREGISTERED,
 * SENDER_ID_MISMATCH, or a 400 whose field violations name message.token;
 * any other 400 (INVALID_ARGUMENT about the message) is rejected for good
 * and the token kept.
 */
enum notify_outcome notify_fcm_outcome(const struct notify_req *req);

/* ---- queue.c ------------------------------------------------------------ */

#define NOTIFY_GROUP PL_KEY_PUSH_GROUP
#define NOTIFY_ID_MAX 48

/* One entry of a push stream parley:push:{B} (lib/publish.c writes them). */
struct notify_job_fields {
	char id[NOTIFY_ID_MAX];		/* "B/ms-n": bucket B's stream id */
	long long time_ms;		/* the id's time: when it was queued */
	long long user_id, conversation_id, message_id, seq;
	int valid;			/* 0: unreadable entry, ack and skip */
};

typedef void (*notify_job_fn)(const struct notify_job_fields *job, void *arg);

struct notify_queue {
	struct pl_redis block;		/* XREADGROUP ... BLOCK only */
	struct pl_redis cmd;		/* XACK, XAUTOCLAIM, XCLAIM, XGROUP */
	char consumer[96];		/* unique per process */
	int group_ready;
	int next_bucket;		/* where the next read starts */
	char claim_cursor[PL_KEY_BUCKETS][NOTIFY_ID_MAX];
	long long claim_idle_ms;
};

/* Copies settings from cfg; names this process's consumer. No I/O. */
void notify_queue_init(struct notify_queue *q, const struct pl_config *cfg);
void notify_queue_release(struct notify_queue *q);

/*
 * Reads up to count new jobs, blocking up to block_ms (0: not at all) on the
 * blocking connection, creating the group (and stream) first if needed.
 * Calls fn once per job. Returns PL_OK or PL_UNAVAILABLE.
 */
enum pl_err notify_queue_read(struct notify_queue *q, int count, int block_ms,
			      notify_job_fn fn, void *arg);

/*
 * Takes over up to count jobs idle longer than claim_idle_ms (XAUTOCLAIM),
 * calling fn for each. Returns PL_OK or PL_UNAVAILABLE.
 */
enum pl_err notify_queue_claim(struct notify_queue *q, int count,
			       notify_job_fn fn, void *arg);

/* Acknowledges n jobs by id. Returns PL_OK or PL_UNAVAILABLE. */
enum pl_err notify_queue_ack(struct notify_queue *q, const char *const *ids,
			     int n);

/*
 * Resets the idle time of n jobs this notifier still works on (XCLAIM to
 * itself, JUSTID), so no other notifier takes them over.
 */
enum pl_err notify_queue_touch(struct notify_queue *q, const char *const *ids,
			       int n);

#endif
