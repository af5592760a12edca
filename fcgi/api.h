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

#include "config.h"
#include "db.h"
#include "err.h"
#include "redis.h"

struct api_worker {
	int id;
	const struct pl_config *cfg;	/* borrowed, immutable */
	struct pl_db db;
	struct pl_redis redis;
};

#define API_MAX_PARAMS 4

struct api_request {
	struct api_worker *w;
	FCGX_Request *fcgx;
	const char *method;		/* borrowed from fcgx */
	char path[1024];		/* REQUEST_URI without the query */
	const char *query;		/* after '?', or "" */
	long long params[API_MAX_PARAMS];	/* the route's {id} values */
	int nparams;
	json_t *body;			/* the JSON body for API_JSON_BODY routes */
	char request_id[17];

	/* The reply, set by api_reply() or api_fail(). */
	int status;
	json_t *reply;
	enum pl_err err;
	char err_message[512];
};

/* Handlers return PL_OK after api_reply(), or what api_fail() returns. */
typedef enum pl_err (*api_handler_fn)(struct api_request *req);

enum api_route_flag {
	API_AUTH = 1 << 0,	/* requires a valid bearer token */
	API_JSON_BODY = 1 << 1,	/* requires a JSON object body */
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

/* Serves one accepted request and writes its response. */
void api_request_handle(struct api_worker *w, FCGX_Request *fcgx);

/* Sets the reply: status and body (stolen; NULL for no body). */
void api_reply(struct api_request *req, int status, json_t *body);

/*
 * Records an error reply (the dispatcher writes {"error":{code,message}})
 * and returns rc, so a handler can "return api_fail(req, PL_NOT_FOUND, ...)".
 */
enum pl_err api_fail(struct api_request *req, enum pl_err rc, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));

/* Handlers, one file per resource. */
enum pl_err api_health_get(struct api_request *req);

#endif
