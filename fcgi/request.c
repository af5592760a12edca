#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "ratelimit.h"
#include "validate.h"
#include "banned.h"

void api_reply(struct api_request *req, int status, json_t *body)
{
	json_decref(req->reply);
	free(req->reply_text);
	req->status = status;
	req->reply = body;
	req->reply_text = NULL;
	req->err = PL_OK;
}

void api_reply_text(struct api_request *req, int status, char *text)
{
	api_reply(req, status, NULL);
	req->reply_text = text;
}

enum pl_err api_fail(struct api_request *req, enum pl_err rc, const char *fmt,
		     ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->err_message, sizeof(req->err_message), fmt, ap);
	va_end(ap);
	json_decref(req->reply);
	req->reply = NULL;
	free(req->reply_text);
	req->reply_text = NULL;
	req->err = rc ? rc : PL_INTERNAL;
	req->status = pl_err_http_status(req->err);
	/* No header of a reply that was being made goes out with an error. */
	req->reply_headers_len = 0;
	req->reply_headers[0] = '\0';
	return req->err;
}

enum pl_err api_reply_header(struct api_request *req, const char *fmt, ...)
{
	size_t room = sizeof(req->reply_headers) - req->reply_headers_len;
	char *at = req->reply_headers + req->reply_headers_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(at, room, fmt, ap);
	va_end(ap);
	/* Room for the CRLF, and no header smuggled inside a value. */
	if (n < 0 || (size_t)n + 3 > room || strpbrk(at, "\r\n")) {
		*at = '\0';
		return api_fail(req, PL_INTERNAL, "a reply header is too long "
				"or malformed");
	}
	memcpy(at + n, "\r\n", 3);
	req->reply_headers_len += (size_t)n + 2;
	return PL_OK;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static void write_response(struct api_request *req, const char *extra_headers)
{
	FCGX_Stream *out = req->fcgx->out;
	char *text = NULL;
	const char *payload;
	json_t *body = req->reply;
	char head[512];
	int n;

	if (req->err) {
		char msg[600];

		/* A 500 names the request id that the log line carries too. */
		snprintf(msg, sizeof(msg), "%s", req->err_message);
		if (req->err == PL_INTERNAL) {
			pl_log(PL_LOG_ERR, "request: %s %s failed: %s request_id=%s",
			       req->method, req->path, req->err_message,
			       req->request_id);
			snprintf(msg, sizeof(msg), "%s (request id %s)",
				 req->err_message, req->request_id);
		}
		body = json_pack("{s:{s:s,s:s}}", "error", "code",
				 pl_err_code(req->err), "message", msg);
		if (!body)	/* msg quoted bytes that are not UTF-8 */
			body = json_pack("{s:{s:s,s:s}}", "error", "code",
					 pl_err_code(req->err), "message",
					 "the request was refused");
	}
	if (body && req->status != 204)
		text = json_dumps(body, JSON_COMPACT);
	payload = text ? text : !req->err && req->status != 204 ?
		req->reply_text : NULL;
	/* libfcgi's own printf knows no %zu or %lld: format here. */
	n = snprintf(head, sizeof(head), "Status: %d %s\r\nX-Request-Id: %s\r\n%s",
		     req->status, reason_phrase(req->status), req->request_id,
		     extra_headers ? extra_headers : "");
	if (payload)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
			      "Content-Type: application/json\r\n"
			      "Cache-Control: no-store\r\n"
			      "Content-Length: %zu\r\n", strlen(payload) + 1);
	FCGX_PutStr(head, n, out);
	/* A handler's own headers (api_reply_header()), then the blank line. */
	FCGX_PutStr(req->reply_headers, (int)req->reply_headers_len, out);
	FCGX_PutStr("\r\n", 2, out);
	if (payload) {
		FCGX_PutStr(payload, (int)strlen(payload), out);
		FCGX_PutStr("\n", 1, out);
	}
	if (body != req->reply)
		json_decref(body);
	free(text);
}

/*
 * Reads the request body into a new NUL-terminated buffer (*out, freed by
 * the caller). Returns PL_OK, PL_TOO_LARGE over the configured limit, or
 * PL_BAD_REQUEST when the client sent less than it announced.
 */
enum pl_err api_request_content_length(struct api_request *req, const char *cl,
				       long long max_bytes, size_t *want)
{
	unsigned long long v = 0;
	char *end;

	*want = 0;
	if (cl && *cl) {
		errno = 0;
		v = strtoull(cl, &end, 10);
		if (errno || *end)
			return api_fail(req, PL_BAD_REQUEST,
					"bad Content-Length header");
	}
	if (v > (unsigned long long)max_bytes)
		return api_fail(req, PL_TOO_LARGE,
				"request body is over %lld bytes", max_bytes);
	*want = (size_t)v;
	return PL_OK;
}

static enum pl_err read_body(struct api_request *req, char **out, size_t *len)
{
	size_t want;
	char *buf;
	int got;
	enum pl_err rc;

	*out = NULL;
	*len = 0;
	rc = api_request_content_length(req, FCGX_GetParam("CONTENT_LENGTH",
							   req->fcgx->envp),
					req->w->cfg->api_max_body_bytes, &want);
	if (rc)
		return rc;
	buf = malloc(want + 1);
	if (!buf)
		return api_fail(req, PL_INTERNAL, "out of memory");
	got = want ? FCGX_GetStr(buf, (int)want, req->fcgx->in) : 0;
	if (got < 0 || (size_t)got != want) {
		free(buf);
		return api_fail(req, PL_BAD_REQUEST, "request body is incomplete");
	}
	buf[want] = '\0';
	*out = buf;
	*len = want;
	return PL_OK;
}

/*
 * An API_UPLOAD route's body is left for its handler to stream through
 * api_upload_read(); only its announced length is checked here, so that an
 * upload known to be too large is refused before a byte of it is read.
 */
static enum pl_err upload_begin(struct api_request *req)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->fcgx->envp);
	size_t want;
	enum pl_err rc;

	req->upload_length = -1;
	req->upload_read = 0;
	if (!cl || !*cl)
		return PL_OK;
	rc = api_request_content_length(req, cl,
					req->w->cfg->api_max_attachment_bytes,
					&want);
	if (rc == PL_OK)
		req->upload_length = (long long)want;
	return rc;
}

enum pl_err api_upload_read(struct api_request *req, void *buf, size_t len,
			    size_t *got)
{
	long long max = req->w->cfg->api_max_attachment_bytes;
	int n;

	*got = 0;
	if (len > INT_MAX)
		len = INT_MAX;
	n = FCGX_GetStr(buf, (int)len, req->fcgx->in);
	if (n < 0)
		return api_fail(req, PL_BAD_REQUEST, "request body is incomplete");
	if (n == 0) {
		if (req->upload_length >= 0 &&
		    req->upload_read != req->upload_length)
			return api_fail(req, PL_BAD_REQUEST,
					"request body is incomplete");
		return PL_OK;
	}
	req->upload_read += n;
	/* Without a Content-Length, the limit holds all the same. */
	if (req->upload_read > max)
		return api_fail(req, PL_TOO_LARGE, "the upload is over %lld "
				"bytes ([api] max_attachment_bytes)", max);
	*got = (size_t)n;
	return PL_OK;
}

enum pl_err api_request_parse_body(struct api_request *req, const char *text,
				   size_t len)
{
	json_error_t jerr;

	if (len == 0)
		return api_fail(req, PL_BAD_REQUEST, "a JSON object body is required");
	req->body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req->body)
		return api_fail(req, PL_BAD_REQUEST, "malformed JSON at line %d "
				"column %d: %s", jerr.line, jerr.column,
				jerr.text);
	if (!json_is_object(req->body))
		return api_fail(req, PL_BAD_REQUEST,
				"the body must be a JSON object");
	return PL_OK;
}

/* Reads and discards what is left of the body, so a kept connection stays in step. */
static void drain_input(FCGX_Request *fcgx)
{
	char buf[4096];

	while (FCGX_GetStr(buf, sizeof(buf), fcgx->in) > 0)
		;
}

/*
 * Checks the bearer token: signature and expiry locally, then that its
 * session (of that user and device) is neither revoked nor expired in
 * PostgreSQL, the truth whatever Redis says. Then counts the request against
 * the user's REST rate limit.
 */
enum pl_err api_request_bearer(struct api_request *req, const char *header,
			       const struct pl_token_key *key, time_t now,
			       struct pl_token_claims *claims)
{
	char why[128];

	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return api_fail(req, PL_UNAUTHORIZED,
				"an Authorization: Bearer token is required");
	header += 7;
	while (*header == ' ')
		header++;
	if (pl_token_verify(key, header, now, claims, why, sizeof(why)))
		return api_fail(req, PL_UNAUTHORIZED, "%s", why);
	return PL_OK;
}

/*
 * The session check; for API_REPLICA routes with a standby configured, the
 * same statement reads the fence for the request's reads (replica.h).
 */
#define SESSION_SQL(MORE) "SELECT 1" MORE " FROM sessions WHERE id = $1 " \
	"AND user_id = $2 AND device_id = $3 AND revoked_at IS NULL " \
	"AND expires_at > now()"

static enum pl_err authenticate(struct api_request *req, unsigned flags)
{
	const struct pl_config *cfg = req->w->cfg;
	struct pl_token_claims claims;
	char sid[24], uid[24], did[24];
	PGresult *res;
	enum pl_err rc;
	int live, fenced;

	rc = api_request_bearer(req, FCGX_GetParam("HTTP_AUTHORIZATION",
						   req->fcgx->envp),
				&req->w->shared->key, time(NULL), &claims);
	if (rc)
		return rc;
	fenced = (flags & API_REPLICA) && req->w->replica.enabled;
	rc = api_sql(req, fenced ? SESSION_SQL(", " PL_FENCE_SQL) :
		     SESSION_SQL(""),
		     3, (const char *const[]){ api_ll(sid, claims.session_id),
					       api_ll(uid, claims.user_id),
					       api_ll(did, claims.device_id) },
		     1, &res);
	if (rc)
		return rc;
	live = PQntuples(res) == 1;
	if (live && fenced)
		pl_fence_read(&req->fence, res, 1);
	PQclear(res);
	if (!live)
		return api_fail(req, PL_UNAUTHORIZED, "the session has ended");
	req->user_id = claims.user_id;
	req->session_id = claims.session_id;
	req->device_id = claims.device_id;
	if (pl_ratelimit_take(&req->w->redis, "rest", uid,
			      cfg->limits_rest_per_minute / 60.0,
			      cfg->limits_rest_per_minute, &req->retry_after_s))
		return api_fail(req, PL_RATE_LIMITED,
				"too many requests; retry in %lld s",
				req->retry_after_s);
	return PL_OK;
}

enum pl_err api_request_route(struct api_request *req, const char *uri,
			      const struct api_route **route, char *allow,
			      size_t allowlen)
{
	size_t pathlen;
	enum pl_err rc;

	if (!uri || !req->method)
		return api_fail(req, PL_BAD_REQUEST, "no REQUEST_URI");
	/* Route on REQUEST_URI: nginx and Apache fill PATH_INFO differently. */
	pathlen = strcspn(uri, "?");
	if (pathlen >= sizeof(req->path))
		return api_fail(req, PL_NOT_FOUND, "no such route");
	memcpy(req->path, uri, pathlen);
	req->path[pathlen] = '\0';
	req->query = uri[pathlen] == '?' ? uri + pathlen + 1 : "";

	rc = api_route_find(api_routes, api_routes_count, req->method,
			    req->path, route, req->params, &req->nparams,
			    allow, allowlen);
	if (rc == PL_NOT_FOUND)
		return api_fail(req, rc, "no route for %s %s", req->method,
				req->path);
	if (rc == PL_METHOD_NOT_ALLOWED)
		return api_fail(req, rc, "%s is not allowed on %s (allowed: %s)",
				req->method, req->path, allow);
	return rc;
}

static enum pl_err dispatch(struct api_request *req, char *allow,
			    size_t allowlen)
{
	const struct api_route *route;
	char *text = NULL;
	size_t len;
	enum pl_err rc;

	rc = api_request_route(req, FCGX_GetParam("REQUEST_URI", req->fcgx->envp),
			       &route, allow, allowlen);
	if (rc)
		return rc;
	req->route = route;
	if (route->flags & API_AUTH) {
		rc = authenticate(req, route->flags);
		if (rc)
			return rc;
	}
	if (route->flags & API_UPLOAD) {
		rc = upload_begin(req);
		return rc ? rc : route->fn(req);
	}
	rc = read_body(req, &text, &len);
	if (rc)
		return rc;
	if (route->flags & API_JSON_BODY)
		rc = api_request_parse_body(req, text, len);
	free(text);
	if (rc)
		return rc;
	return route->fn(req);
}

void api_request_handle(struct api_worker *w, FCGX_Request *fcgx)
{
	struct api_request req;
	unsigned char id[8];
	char allow[128];
	char headers[192] = "";
	long long started_us = pl_clock_mono_us();

	memset(&req, 0, sizeof(req));
	req.w = w;
	req.fcgx = fcgx;
	req.method = FCGX_GetParam("REQUEST_METHOD", fcgx->envp);
	req.status = 500;
	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(req.request_id, sizeof(req.request_id), id, sizeof(id));

	if (dispatch(&req, allow, sizeof(allow)) == PL_METHOD_NOT_ALLOWED)
		snprintf(headers, sizeof(headers), "Allow: %s\r\n", allow);
	else if (req.err == PL_RATE_LIMITED ||
		 (req.err == PL_UNAVAILABLE && req.retry_after_s > 0))
		snprintf(headers, sizeof(headers), "Retry-After: %lld\r\n",
			 req.retry_after_s > 0 ? req.retry_after_s : 1);
	else if (!req.err && !req.reply && req.status == 500)
		api_fail(&req, PL_INTERNAL, "handler gave no reply");
	pl_log(PL_LOG_DEBUG, "request: %s %s %d request_id=%s", req.method,
	       req.path, req.status, req.request_id);
	drain_input(fcgx);
	write_response(&req, headers);
	api_metrics_observe(&w->shared->metrics, req.route, req.status,
			    pl_clock_mono_us() - started_us);
	json_decref(req.reply);
	free(req.reply_text);
	json_decref(req.body);
}

/* Field access ----------------------------------------------------------- */

static json_t *body_field(struct api_request *req, const char *name,
			  int required, int *present, enum pl_err *rc)
{
	json_t *v = req->body ? json_object_get(req->body, name) : NULL;

	*rc = PL_OK;
	if (present)
		*present = v && !json_is_null(v);
	if (!v || json_is_null(v)) {
		if (required)
			*rc = api_fail(req, PL_BAD_REQUEST, "'%s' is required",
				       name);
		return NULL;
	}
	return v;
}

enum pl_err api_body_string(struct api_request *req, const char *name,
			    int required, const char **out, int *present)
{
	enum pl_err rc;
	json_t *v = body_field(req, name, required, present, &rc);

	if (!v)
		return rc;
	if (!json_is_string(v))
		return api_fail(req, PL_BAD_REQUEST, "'%s' must be a string", name);
	/* jansson rejects invalid UTF-8 and, by default, "\u0000". */
	*out = json_string_value(v);
	return PL_OK;
}

enum pl_err api_body_int(struct api_request *req, const char *name,
			 int required, long long *out, int *present)
{
	enum pl_err rc;
	json_t *v = body_field(req, name, required, present, &rc);

	if (!v)
		return rc;
	if (!json_is_integer(v))
		return api_fail(req, PL_BAD_REQUEST, "'%s' must be an integer",
				name);
	*out = json_integer_value(v);
	return PL_OK;
}

enum pl_err api_body_bool(struct api_request *req, const char *name,
			  int required, int *out, int *present)
{
	enum pl_err rc;
	json_t *v = body_field(req, name, required, present, &rc);

	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return api_fail(req, PL_BAD_REQUEST, "'%s' must be true or false",
				name);
	*out = json_is_true(v);
	return PL_OK;
}

int api_query_string(struct api_request *req, const char *name, char *out,
		     size_t outlen)
{
	size_t namelen = strlen(name);
	const char *p = req->query;

	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > namelen && strncmp(p, name, namelen) == 0 &&
		    p[namelen] == '=') {
			const char *val = p + namelen + 1;
			size_t vlen = len - namelen - 1;
			char raw[4096];
			char *dec;
			int declen;

			if (vlen >= sizeof(raw))
				goto too_long;
			/* Form encoding writes spaces as '+'. */
			for (size_t i = 0; i < vlen; i++)
				raw[i] = val[i] == '+' ? ' ' : val[i];
			raw[vlen] = '\0';
			dec = curl_easy_unescape(NULL, raw, (int)vlen, &declen);
			if (!dec)
				return api_fail(req, PL_INTERNAL, "out of memory"), -1;
			if ((size_t)declen >= outlen) {
				curl_free(dec);
				goto too_long;
			}
			if (!pl_validate_utf8(dec, (size_t)declen)) {
				curl_free(dec);
				api_fail(req, PL_BAD_REQUEST,
					 "query parameter '%s' is not valid UTF-8",
					 name);
				return -1;
			}
			memcpy(out, dec, (size_t)declen + 1);
			curl_free(dec);
			return 1;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return 0;
too_long:
	api_fail(req, PL_TOO_LARGE, "query parameter '%s' is too long", name);
	return -1;
}

enum pl_err api_query_int(struct api_request *req, const char *name,
			  long long def, long long min, long long max,
			  long long *out)
{
	char buf[32], *end;
	int found = api_query_string(req, name, buf, sizeof(buf));
	long long v;

	if (found < 0)
		return req->err;
	if (!found) {
		*out = def;
		return PL_OK;
	}
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || *end || v < min || v > max)
		return api_fail(req, PL_BAD_REQUEST, "'%s' must be an integer "
				"from %lld to %lld", name, min, max);
	*out = v;
	return PL_OK;
}

/* api_sql()'s answer for what pl_db_exec() returned. */
static enum pl_err api_sql_result(struct api_request *req, enum pl_err rc,
				  const char sqlstate[6])
{
	if (rc == PL_UNAVAILABLE && strcmp(sqlstate, "57014") == 0)
		return api_fail(req, rc, "the request ran longer than [database] "
				"statement_timeout_ms (%lld ms) allows",
				req->w->cfg->db_statement_timeout_ms);
	if (rc == PL_UNAVAILABLE)
		return api_fail(req, rc, "the database is unavailable; retry");
	if (rc)
		return api_fail(req, PL_INTERNAL, "database error");
	return PL_OK;
}

enum pl_err api_sql(struct api_request *req, const char *sql, int nparams,
		    const char *const *params, int retry_ok, PGresult **out)
{
	char sqlstate[6];
	enum pl_err rc;

	if (retry_ok && req->fence.lsn[0] && !req->read_db_chosen) {
		req->read_db = pl_replica_for(&req->w->replica, &req->fence);
		req->read_db_chosen = 1;
	}
	if (retry_ok && req->read_db) {
		rc = pl_db_exec(req->read_db, sql, nparams, params, 1, out,
				sqlstate);
		/* A standby lost, or a query cancelled by its replay: the
		 * primary answers this read and the rest of the request's. */
		if (rc != PL_UNAVAILABLE || strcmp(sqlstate, "57014") == 0)
			return api_sql_result(req, rc, sqlstate);
		req->read_db = NULL;
	}
	rc = pl_db_exec(&req->w->db, sql, nparams, params, retry_ok, out,
			sqlstate);
	return api_sql_result(req, rc, sqlstate);
}

json_t *api_json_column(PGresult *res, int row, int col)
{
	json_error_t jerr;

	if (PQgetisnull(res, row, col))
		return NULL;
	return json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, &jerr);
}

enum pl_err api_sql_reply_json(struct api_request *req, int status,
			       const char *sql, int nparams,
			       const char *const *params,
			       const char *not_found_message)
{
	PGresult *res;
	char *v;
	enum pl_err rc = api_sql(req, sql, nparams, params, 1, &res);

	if (rc)
		return rc;
	/* PostgreSQL's JSON goes out as it came: no parse and dump here. */
	v = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ?
		strdup(PQgetvalue(res, 0, 0)) : NULL;
	PQclear(res);
	if (!v)
		return api_fail(req, PL_NOT_FOUND, "%s", not_found_message);
	api_reply_text(req, status, v);
	return PL_OK;
}

long long api_rows_affected(PGresult *res)
{
	return strtoll(PQcmdTuples(res), NULL, 10);
}

enum pl_err api_json_param(struct api_request *req, json_t *v, char **text)
{
	*text = v ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	if (!*text)
		return api_fail(req, PL_INTERNAL, "out of memory");
	return PL_OK;
}

const char *api_ll(char buf[24], long long v)
{
	snprintf(buf, 24, "%lld", v);
	return buf;
}
