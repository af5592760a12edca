/*
 * fuzz_request: one REST request through parley-api's reading steps, in
 * the order api_request_handle() runs them (fcgi/request.c): route, bearer
 * token (API_AUTH routes), Content-Length, JSON body (API_JSON_BODY
 * routes). A request that passes them has its query and body fields read
 * through the accessors the handlers use, and checked by lib/validate.
 *
 * Input: four lines, then the body:
 *   METHOD\n REQUEST_URI\n Authorization value\n CONTENT_LENGTH\n body...
 * (a missing line reads as absent, like an unset FastCGI parameter).
 */
#include <string.h>

#include "api.h"
#include "fuzz.h"
#include "validate.h"

static struct pl_token_key key;
static struct pl_config cfg;
static struct api_worker worker;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	fuzz_key(&key);
	pl_config_init(&cfg);
	worker.cfg = &cfg;
	return 0;
}

/* Takes the next line of *data (*size bytes) as a new string, or NULL. */
static char *take_line(const uint8_t **data, size_t *size)
{
	const uint8_t *nl;
	size_t n;
	char *s;

	if (*size == 0)
		return NULL;
	nl = memchr(*data, '\n', *size);
	n = nl ? (size_t)(nl - *data) : *size;
	s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, *data, n);
	s[n] = '\0';
	*data += nl ? n + 1 : n;
	*size -= nl ? n + 1 : n;
	return s;
}

/* A failed step leaves a reply the dispatcher can send. */
static void check_failure(struct api_request *req, enum pl_err rc)
{
	FUZZ_ASSERT(rc == req->err && req->err != PL_OK);
	FUZZ_ASSERT(req->status == pl_err_http_status(req->err));
	FUZZ_ASSERT(req->err_message[0] != '\0');
	FUZZ_ASSERT(req->reply == NULL);
}

static void reset(struct api_request *req)
{
	req->err = PL_OK;
	req->err_message[0] = '\0';
	req->status = 500;
}

static void query_fields(struct api_request *req)
{
	static const char *const ints[] = { "limit", "before", "after",
					    "conversation_id" };
	static const char *const strs[] = { "q", "region", "user_ids" };
	char buf[2048];
	long long v;
	enum pl_err rc;

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		rc = api_query_int(req, ints[i], -7, 0, 100, &v);
		if (rc)
			check_failure(req, rc);
		else
			FUZZ_ASSERT(v == -7 || (v >= 0 && v <= 100));
		reset(req);
	}
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		int found = api_query_string(req, strs[i], buf, sizeof(buf));

		if (found < 0)
			check_failure(req, req->err);
		else if (found)
			FUZZ_ASSERT(pl_validate_utf8(buf, strlen(buf)));
		reset(req);
	}
}

/* Reads string field name and runs check on it, as the handlers do. */
static void string_field(struct api_request *req, const char *name,
			 enum pl_err (*check)(const char *, char *, size_t))
{
	const char *s = NULL;
	char why[160];
	enum pl_err rc = api_body_string(req, name, 1, &s, NULL);

	if (rc) {
		check_failure(req, rc);
	} else {
		FUZZ_ASSERT(s && pl_validate_utf8(s, strlen(s)));
		if (check && check(s, why, sizeof(why)))
			FUZZ_ASSERT(fuzz_message_ok(why));
	}
	reset(req);
}

static enum pl_err check_body(const char *s, char *why, size_t whylen)
{
	return pl_validate_body(s, strlen(s), why, whylen);
}

/* A push token is checked per platform: every platform's check runs. */
static enum pl_err check_push_token(const char *s, char *why, size_t whylen)
{
	static const char *const platforms[] = { "apns", "fcm", "web", "x" };

	for (size_t i = 0; i < sizeof(platforms) / sizeof(platforms[0]); i++)
		if (pl_validate_push_token(platforms[i], s, why, whylen))
			FUZZ_ASSERT(fuzz_message_ok(why));
	return PL_OK;
}

static void body_fields(struct api_request *req)
{
	static const char *const ints[] = { "user_id", "message_id" };
	long long v;
	int b, present;
	enum pl_err rc;

	string_field(req, "username", pl_validate_username);
	string_field(req, "password", pl_validate_password);
	string_field(req, "display_name", pl_validate_display_name);
	string_field(req, "client_msg_id", pl_validate_client_msg_id);
	string_field(req, "body", check_body);
	string_field(req, "push_token", check_push_token);
	string_field(req, "platform", NULL);
	string_field(req, "title", NULL);
	string_field(req, "name", NULL);
	string_field(req, "kind", NULL);
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		rc = api_body_int(req, ints[i], 0, &v, &present);
		if (rc)
			check_failure(req, rc);
		reset(req);
	}
	rc = api_body_bool(req, "muted", 0, &b, &present);
	if (rc)
		check_failure(req, rc);
	reset(req);
}

static void run(const char *method, const char *uri, const char *auth,
		const char *cl, const char *body, size_t body_len)
{
	struct api_request req;
	const struct api_route *route = NULL;
	struct pl_token_claims claims;
	char allow[128];
	size_t want = 0;
	enum pl_err rc;

	memset(&req, 0, sizeof(req));
	req.w = &worker;
	req.method = method;
	req.status = 500;
	rc = api_request_route(&req, uri, &route, allow, sizeof(allow));
	if (!rc && (route->flags & API_AUTH))
		rc = api_request_bearer(&req, auth, &key, FUZZ_NOW, &claims);
	if (!rc)
		rc = api_request_content_length(&req, cl, cfg.api_max_body_bytes,
						&want);
	/* read_body(): a client that sends less than it announced. */
	if (!rc && want > body_len)
		rc = api_fail(&req, PL_BAD_REQUEST, "request body is incomplete");
	if (!rc && (route->flags & API_JSON_BODY))
		rc = api_request_parse_body(&req, body, want);
	if (rc) {
		check_failure(&req, rc);
	} else {
		FUZZ_ASSERT(route && strcmp(route->method, method) == 0);
		FUZZ_ASSERT(req.nparams >= 0 && req.nparams <= API_MAX_PARAMS);
		for (int i = 0; i < req.nparams; i++)
			FUZZ_ASSERT(req.params[i] > 0);
		FUZZ_ASSERT(!(route->flags & API_JSON_BODY) ||
			    json_is_object(req.body));
		query_fields(&req);
		body_fields(&req);
	}
	json_decref(req.body);
	json_decref(req.reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *method = take_line(&data, &size);
	char *uri = take_line(&data, &size);
	char *auth = take_line(&data, &size);
	char *cl = take_line(&data, &size);
	/* The body as read_body() hands it on: NUL-terminated. */
	char *body = malloc(size + 1);

	if (method && body) {
		memcpy(body, data, size);
		body[size] = '\0';
		run(method, uri, auth, cl, body, size);
	}
	free(method);
	free(uri);
	free(auth);
	free(cl);
	free(body);
	return 0;
}
