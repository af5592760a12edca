/*
 * parley-api: the REST API as a multi-threaded FastCGI responder.
 *
 * main.c runs the worker threads; each owns a struct api_worker (one
 * PostgreSQL and one Redis connection) and serves one request at a time.
 * request.c does everything requests share (route lookup, method check, body
 * limit, JSON parsing, the error reply) as the route's flags ask, so the
 * handlers in the per-resource files hold only resource logic.
 */
#ifndef API_H
#define API_H

#include <fcgiapp.h>
#include <jansson.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "password.h"
#include "pl_limits.h"
#include "redis.h"
#include "registry.h"
#include "replica.h"
#include "token.h"

/* What all workers share: read-only after startup, but for the pool. */
/* For metrics: the statuses counted on their own (the last: any other). */
#define API_METRICS_STATUSES 16
#define API_METRICS_BUCKETS 12

/* One route's requests (fcgi/metrics.c); bumped by every worker thread. */
struct api_route_metrics {
	atomic_ulong by_status[API_METRICS_STATUSES];
	atomic_ulong buckets[API_METRICS_BUCKETS];
	atomic_ulong count;
	atomic_ullong sum_us;
};

struct api_metrics {
	struct api_route_metrics *routes;	/* nroutes + 1 (no route) */
	size_t nroutes;
};

struct api_shared {
	const struct pl_config *cfg;
	struct api_metrics metrics;
	struct pl_token_key key;
	struct pl_password_pool passwords;	/* thread-safe */
	/* The hash of a random password, verified for unknown users. */
	char dummy_hash[PL_PASSWORD_HASH_BYTES];
	/* The relay registry every worker uses when its backend is
	 * thread-safe (pl_registry_is_shared), else NULL. Owned. */
	struct pl_registry *registry;
	/* Uploaded images decoded at once ([attachments] image_concurrency). */
	sem_t image_slots;
};

struct api_worker {
	int id;
	const struct pl_config *cfg;	/* borrowed, immutable */
	struct api_shared *shared;	/* borrowed */
	struct pl_db db;
	struct pl_replica replica;	/* reads on a standby, when configured */
	struct pl_redis redis;
	/* The relay registry: the shared one, or the worker's own over redis
	 * (owned when it is not shared->registry). */
	struct pl_registry *registry;
};

#define API_MAX_PARAMS 4

/* Room for the headers a handler adds with api_reply_header(). */
#define API_REPLY_HEADERS_BYTES 8192

struct api_request {
	struct api_worker *w;
	FCGX_Request *fcgx;
	const char *method;		/* borrowed from fcgx */
	char path[1024];		/* REQUEST_URI without the query */
	const char *query;		/* after '?', or "" */
	const struct api_route *route;	/* matched, or NULL */
	long long params[API_MAX_PARAMS];	/* the route's {id} values */
	int nparams;
	json_t *body;			/* the JSON body for API_JSON_BODY routes */
	/* API_UPLOAD routes: the announced length (-1: none, read to the
	 * end) and how many bytes api_upload_read() gave so far. */
	long long upload_length;
	long long upload_read;
	char request_id[17];
	/* Set for API_AUTH routes from the verified token and its session. */
	long long user_id;
	long long session_id;
	long long device_id;
	long long retry_after_s;	/* Retry-After of a 429, or of a 503 if set */
	/*
	 * API_REPLICA routes: the primary's position when the session was
	 * checked, and the standby that caught up with it (NULL: the primary),
	 * chosen by the first read (api_sql) and kept for the request.
	 */
	struct pl_fence fence;
	struct pl_db *read_db;
	int read_db_chosen;

	/* The reply, set by api_reply() or api_fail(). */
	int status;
	json_t *reply;
	char *reply_text;	/* or the body as JSON text, owned */
	/* Headers of a successful reply, "Name: value\r\n" each; an error
	 * reply drops them. */
	char reply_headers[API_REPLY_HEADERS_BYTES];
	size_t reply_headers_len;
	enum pl_err err;
	char err_message[512];
};

/* Handlers return PL_OK after api_reply(), or what api_fail() returns. */
typedef enum pl_err (*api_handler_fn)(struct api_request *req);

enum api_route_flag {
	API_AUTH = 1 << 0,	/* requires a valid bearer token */
	API_JSON_BODY = 1 << 1,	/* requires a JSON object body */
	/* Its reads (api_sql with retry_ok) may go to a standby that has
	 * caught up with the primary (replica.h); needs API_AUTH. */
	API_REPLICA = 1 << 2,
	/* The body is a file of up to [api] max_attachment_bytes (not
	 * max_body_bytes) that the handler reads with api_upload_read(). */
	API_UPLOAD = 1 << 3,
};

struct api_route {
	const char *method;
	const char *pattern;	/* "/api/v1/conversations/{id}/messages" */
	api_handler_fn fn;
	unsigned flags;
};

/* The route table (routes.c). */
extern const struct api_route api_routes[];
extern const size_t api_routes_count;

/*
 * Finds the route for method and path in table[0..n). Returns PL_OK and sets
 * *route and params (*nparams of them, from "{id}" segments: positive
 * integers); PL_METHOD_NOT_ALLOWED when the path exists with other methods
 * (then allow, allowlen bytes, lists them, comma-separated); PL_NOT_FOUND.
 */
enum pl_err api_route_find(const struct api_route *table, size_t n,
			   const char *method, const char *path,
			   const struct api_route **route, long long *params,
			   int *nparams, char *allow, size_t allowlen);

/*
 * The steps of reading a request that need no connection, in the order
 * api_request_handle() runs them (route, bearer token for API_AUTH routes,
 * Content-Length, JSON body for API_JSON_BODY routes). Each returns PL_OK or
 * fails req through api_fail() and returns the code; the request fuzz
 * target drives them the same way.
 *
 * api_request_route() splits uri (borrowed, may be NULL) into req->path and
 * req->query (borrowed from uri) and finds the route for req->method (*route,
 * and req->params); on PL_METHOD_NOT_ALLOWED allow lists the methods.
 * api_request_bearer() checks an Authorization header value (borrowed, may
 * be NULL) and its token's signature and expiry against now, filling
 * *claims; the session's liveness is checked in PostgreSQL afterwards.
 * api_request_content_length() reads a CONTENT_LENGTH value (NULL or "":
 * 0) into *want, refusing one over max_bytes.
 * api_request_parse_body() parses text[0..len) into req->body, which must be
 * a JSON object.
 */
enum pl_err api_request_route(struct api_request *req, const char *uri,
			      const struct api_route **route, char *allow,
			      size_t allowlen);
enum pl_err api_request_bearer(struct api_request *req, const char *header,
			       const struct pl_token_key *key, time_t now,
			       struct pl_token_claims *claims);
enum pl_err api_request_content_length(struct api_request *req, const char *cl,
				       long long max_bytes, size_t *want);
enum pl_err api_request_parse_body(struct api_request *req, const char *text,
				   size_t len);

/* Serves one accepted request and writes its response. */
void api_request_handle(struct api_worker *w, FCGX_Request *fcgx);

/* Sets the reply: status and body (stolen; NULL for no body). */
void api_reply(struct api_request *req, int status, json_t *body);

/*
 * Adds one header to a successful reply ("Name: value", without CRLF).
 * Returns PL_OK, or fails the request (PL_INTERNAL) when the headers would
 * be over API_REPLY_HEADERS_BYTES or the value holds a CR or LF.
 */
enum pl_err api_reply_header(struct api_request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Reads the next bytes of an API_UPLOAD route's body into buf (at most len)
 * and sets *got to their count, 0 at the end of the body. Returns PL_OK;
 * PL_TOO_LARGE once the body is over [api] max_attachment_bytes;
 * PL_BAD_REQUEST when the body ends short of its Content-Length (the
 * client went away). Failures fail the request.
 */
enum pl_err api_upload_read(struct api_request *req, void *buf, size_t len,
			    size_t *got);

/*
 * Sets the reply to JSON that is text already (from PostgreSQL), sent as it
 * is: text (a malloc'd string) is stolen.
 */
void api_reply_text(struct api_request *req, int status, char *text);

/*
 * Records an error reply (the dispatcher writes {"error":{code,message}})
 * and returns rc, so a handler can "return api_fail(req, PL_NOT_FOUND, ...)".
 */
enum pl_err api_fail(struct api_request *req, enum pl_err rc, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));

/*
 * Typed access to the JSON body's fields. Each returns PL_OK, or fails the
 * request with PL_BAD_REQUEST naming the field (missing when required, or of
 * the wrong type). An absent optional field leaves *out untouched and sets
 * *present (if not NULL) to 0. Strings are borrowed from req->body.
 */
enum pl_err api_body_string(struct api_request *req, const char *name,
			    int required, const char **out, int *present);
enum pl_err api_body_int(struct api_request *req, const char *name,
			 int required, long long *out, int *present);
enum pl_err api_body_bool(struct api_request *req, const char *name,
			  int required, int *out, int *present);

/*
 * Reads query parameter name, percent-decoded, into out (outlen bytes).
 * Returns 1 when present, 0 when absent, and fails the request (returning
 * -1) when it is longer than outlen - 1 or not valid UTF-8.
 */
int api_query_string(struct api_request *req, const char *name, char *out,
		     size_t outlen);

/*
 * Reads integer query parameter name into *out: def when absent, else a
 * decimal integer in min..max. Returns PL_OK or fails with PL_BAD_REQUEST.
 */
enum pl_err api_query_int(struct api_request *req, const char *name,
			  long long def, long long min, long long max,
			  long long *out);

/*
 * Runs a statement on the worker's connection (see pl_db_exec). A failure
 * fails the request (503 or 500) and returns its code. retry_ok as there.
 */
enum pl_err api_sql(struct api_request *req, const char *sql, int nparams,
		    const char *const *params, int retry_ok, PGresult **out);

/*
 * Runs a statement returning one row with one JSON column and replies with it
 * (status), or fails with not_found_message when there is no row or it is
 * NULL. Returns PL_OK or the failure.
 */
enum pl_err api_sql_reply_json(struct api_request *req, int status,
			       const char *sql, int nparams,
			       const char *const *params,
			       const char *not_found_message);

/* The number of rows an INSERT, UPDATE or DELETE touched. */
long long api_rows_affected(PGresult *res);

/* Parses a JSON text column into a new reference, or NULL. */
json_t *api_json_column(PGresult *res, int row, int col);

/*
 * Writes v (stolen, freed either way) as compact JSON text for a jsonb SQL
 * param. Returns PL_OK with *text a new string the caller frees, or fails
 * the request with PL_INTERNAL when out of memory.
 */
enum pl_err api_json_param(struct api_request *req, json_t *v, char **text);

/* Formats a long long into buf (24 bytes) and returns buf, for SQL params. */
const char *api_ll(char buf[24], long long v);

/* Handlers, one file per resource. */
enum pl_err api_health_get(struct api_request *req);

enum pl_err api_auth_signup(struct api_request *req);
enum pl_err api_auth_login(struct api_request *req);
enum pl_err api_auth_refresh(struct api_request *req);
enum pl_err api_auth_logout(struct api_request *req);

enum pl_err api_users_me(struct api_request *req);
enum pl_err api_users_update_me(struct api_request *req);
enum pl_err api_users_search(struct api_request *req);
enum pl_err api_users_get(struct api_request *req);

enum pl_err api_friends_list(struct api_request *req);
enum pl_err api_friends_add(struct api_request *req);
enum pl_err api_friends_remove(struct api_request *req);

enum pl_err api_conversations_create(struct api_request *req);
enum pl_err api_conversations_list(struct api_request *req);
enum pl_err api_conversations_get(struct api_request *req);
enum pl_err api_conversations_update(struct api_request *req);
enum pl_err api_conversations_add_member(struct api_request *req);
enum pl_err api_conversations_remove_member(struct api_request *req);
enum pl_err api_conversations_read(struct api_request *req);

enum pl_err api_messages_send(struct api_request *req);
enum pl_err api_messages_list(struct api_request *req);
enum pl_err api_messages_search(struct api_request *req);

enum pl_err api_messages_edit(struct api_request *req);
enum pl_err api_messages_delete(struct api_request *req);
enum pl_err api_reactions_put(struct api_request *req);
enum pl_err api_reactions_delete(struct api_request *req);

enum pl_err api_blocks_add(struct api_request *req);
enum pl_err api_blocks_remove(struct api_request *req);
enum pl_err api_blocks_list(struct api_request *req);

/* Room for api_blocked_by()'s list: a group's members. */
#define API_BLOCK_LIST_BYTES (PL_GROUP_MAX_MEMBERS * 21 + 4)

/*
 * Sets *blocked to whether any of users[0..n) blocked user. Returns PL_OK,
 * or fails the request (503 or 500).
 */
enum pl_err api_blocked_by(struct api_request *req, const long long *users,
			   size_t n, long long user, int *blocked);

enum pl_err api_sync_get(struct api_request *req);

enum pl_err api_attachments_upload(struct api_request *req);
enum pl_err api_attachments_get(struct api_request *req);
enum pl_err api_attachments_thumbnail(struct api_request *req);

enum pl_err api_devices_register(struct api_request *req);
enum pl_err api_devices_list(struct api_request *req);
enum pl_err api_devices_remove(struct api_request *req);

enum pl_err api_presence_get(struct api_request *req);
enum pl_err api_discover_get(struct api_request *req);

/*
 * Presence of users[0..n) from Redis (doc/architecture.md "Presence"): a new
 * JSON array of {user_id, status, last_seen} in the same order. Redis being
 * down makes everyone "offline" with last_seen null.
 */
json_t *api_presence_of(struct api_request *req, const long long *users,
			size_t n);

/*
 * Publishes a "conversation" event (change: created, updated, member_added,
 * member_removed) to every member of conversation id, each seeing it from
 * their own side, plus extra_user (0: none), who may no longer be a member.
 */
void api_conversation_event(struct api_request *req, long long id,
			    const char *change, long long extra_user);

/*
 * Metrics (fcgi/metrics.c): api_metrics_init() sizes m for the route table;
 * api_metrics_observe() counts one answered request (route NULL: none
 * matched) with its status and time in microseconds; api_metrics_start()
 * serves GET /metrics on 127.0.0.1:port (a handle for pl_metrics_http_stop(),
 * or NULL, logged).
 */
int api_metrics_init(struct api_metrics *m, size_t nroutes);
void api_metrics_release(struct api_metrics *m);
void api_metrics_observe(struct api_metrics *m, const struct api_route *route,
			 int status, long long us);
void *api_metrics_start(struct api_shared *shared, long long port);

#endif
