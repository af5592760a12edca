#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

void api_reply(struct api_request *req, int status, json_t *body)
{
	json_decref(req->reply);
	req->status = status;
	req->reply = body;
	req->err = PL_OK;
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
	req->err = rc ? rc : PL_INTERNAL;
	req->status = pl_err_http_status(req->err);
	return req->err;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
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
	json_t *body = req->reply;

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
	FCGX_FPrintF(out, "Status: %d %s\r\n", req->status,
		     reason_phrase(req->status));
	FCGX_FPrintF(out, "X-Request-Id: %s\r\n%s", req->request_id,
		     extra_headers ? extra_headers : "");
	if (text) {
		size_t len = strlen(text);

		FCGX_FPrintF(out, "Content-Type: application/json\r\n"
			     "Cache-Control: no-store\r\n"
			     "Content-Length: %zu\r\n\r\n", len + 1);
		FCGX_PutStr(text, (int)len, out);
		FCGX_PutS("\n", out);
	} else {
		FCGX_FPrintF(out, "\r\n");
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
static enum pl_err read_body(struct api_request *req, char **out, size_t *len)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->fcgx->envp);
	unsigned long long want = 0;
	char *end;
	char *buf;
	int got;

	*out = NULL;
	*len = 0;
	if (cl && *cl) {
		errno = 0;
		want = strtoull(cl, &end, 10);
		if (errno || *end)
			return api_fail(req, PL_BAD_REQUEST,
					"bad Content-Length header");
	}
	if (want > (unsigned long long)req->w->cfg->api_max_body_bytes)
		return api_fail(req, PL_TOO_LARGE,
				"request body is over %lld bytes",
				req->w->cfg->api_max_body_bytes);
	buf = malloc((size_t)want + 1);
	if (!buf)
		return api_fail(req, PL_INTERNAL, "out of memory");
	got = want ? FCGX_GetStr(buf, (int)want, req->fcgx->in) : 0;
	if (got < 0 || (unsigned long long)got != want) {
		free(buf);
		return api_fail(req, PL_BAD_REQUEST, "request body is incomplete");
	}
	buf[want] = '\0';
	*out = buf;
	*len = (size_t)want;
	return PL_OK;
}

static enum pl_err parse_json_body(struct api_request *req, const char *text,
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

static enum pl_err dispatch(struct api_request *req, char *allow,
			    size_t allowlen)
{
	const struct api_route *route;
	const char *uri = FCGX_GetParam("REQUEST_URI", req->fcgx->envp);
	size_t pathlen;
	char *text = NULL;
	size_t len;
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
			    req->path, &route, req->params, &req->nparams,
			    allow, allowlen);
	if (rc == PL_NOT_FOUND)
		return api_fail(req, rc, "no route for %s %s", req->method,
				req->path);
	if (rc == PL_METHOD_NOT_ALLOWED)
		return api_fail(req, rc, "%s is not allowed on %s (allowed: %s)",
				req->method, req->path, allow);
	rc = read_body(req, &text, &len);
	if (rc)
		return rc;
	if (route->flags & API_JSON_BODY)
		rc = parse_json_body(req, text, len);
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

	memset(&req, 0, sizeof(req));
	req.w = w;
	req.fcgx = fcgx;
	req.method = FCGX_GetParam("REQUEST_METHOD", fcgx->envp);
	req.status = 500;
	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(req.request_id, sizeof(req.request_id), id, sizeof(id));

	if (dispatch(&req, allow, sizeof(allow)) == PL_METHOD_NOT_ALLOWED)
		snprintf(headers, sizeof(headers), "Allow: %s\r\n", allow);
	else if (!req.err && !req.reply && req.status == 500)
		api_fail(&req, PL_INTERNAL, "handler gave no reply");
	pl_log(PL_LOG_DEBUG, "request: %s %s %d request_id=%s", req.method,
	       req.path, req.status, req.request_id);
	drain_input(fcgx);
	write_response(&req, headers);
	json_decref(req.reply);
	json_decref(req.body);
}
