/*
 * fcm: Firebase Cloud Messaging HTTP v1 requests (doc/architecture.md "Push").
 *
 * POST {url}/v1/projects/<project_id>/messages:send with an OAuth2 access
 * token. The token comes from the service account: a JWT signed RS256 with
 * its private key is exchanged at token_url (default: the file's token_uri)
 * and cached until a minute before expires_in runs out. The exchange runs
 * on the same multi handle as the pushes; FCM pushes wait for it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "notify.h"
#include "token.h"
#include "banned.h"

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
/* Google's tokens live an hour; a longer claim is trusted up to a day. */
#define FCM_TOKEN_MAX_S (24 * 3600)

static char *dup_field(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v && *v ? strdup(v) : NULL;
}

int notify_fcm_init(struct notify_fcm *f, const struct pl_config *cfg,
		    atomic_ulong *token_count)
{
	json_error_t jerr;
	json_t *sa;
	const char *pem;
	char err[1024], *text;
	size_t len;
	int rc = -1;

	memset(f, 0, sizeof(*f));
	f->token_count = token_count;
	if (!cfg->fcm_service_account_file[0]) {
		pl_log(PL_LOG_INFO, "fcm: no [fcm] service_account_file: fcm "
		       "pushes are off");
		return 0;
	}
	/* It holds the private key: refused when others may read it. */
	if (pl_token_secret_read(cfg->fcm_service_account_file,
				 NOTIFY_KEY_FILE_MAX, &text, &len, err,
				 sizeof(err))) {
		pl_log(PL_LOG_ERR, "fcm: [fcm] service_account_file: %s", err);
		return -1;
	}
	sa = json_loadb(text, len, 0, &jerr);
	explicit_bzero(text, len);
	free(text);
	if (!sa) {
		pl_log(PL_LOG_ERR, "fcm: cannot read service account '%s': %s",
		       cfg->fcm_service_account_file, jerr.text);
		return -1;
	}
	f->project_id = dup_field(sa, "project_id");
	f->client_email = dup_field(sa, "client_email");
	f->token_url = cfg->fcm_token_url[0] ? strdup(cfg->fcm_token_url) :
		       dup_field(sa, "token_uri");
	pem = json_string_value(json_object_get(sa, "private_key"));
	if (!f->project_id || !f->client_email || !f->token_url || !pem) {
		pl_log(PL_LOG_ERR, "fcm: service account '%s' lacks project_id, "
		       "client_email, private_key or token_uri",
		       cfg->fcm_service_account_file);
		goto out;
	}
	if (notify_key_read(NULL, pem, 0, &f->key_pem))
		goto out;
	f->url = cfg->fcm_url;
	f->ca_file = cfg->fcm_ca_file;
	f->on = 1;
	rc = 0;
	pl_log(PL_LOG_INFO, "fcm: pushes go to '%s' project=%s", f->url,
	       f->project_id);
out:
	json_decref(sa);
	return rc;
}

void notify_fcm_release(struct notify_fcm *f)
{
	notify_req_release(&f->token_req);
	free(f->token_url);
	free(f->project_id);
	free(f->client_email);
	free(f->key_pem);
	free(f->access_token);
	memset(f, 0, sizeof(*f));
}

void notify_fcm_invalidate(struct notify_fcm *f)
{
	free(f->access_token);
	f->access_token = NULL;
}

enum pl_err notify_fcm_token_answer(const struct notify_req *req, char **token,
				    long long *expires_in_s, long long *refresh_ms)
{
	json_t *o = NULL;
	const char *tok;
	json_int_t expires_in;

	*token = NULL;
	*expires_in_s = 0;
	*refresh_ms = 0;
	if (req->result == CURLE_OK && req->status == 200)
		o = json_loads(req->resp, 0, NULL);
	tok = o ? json_string_value(json_object_get(o, "access_token")) : NULL;
	expires_in = o ? json_integer_value(json_object_get(o, "expires_in")) : 0;
	if (tok && expires_in > 0) {
		/* Bounded, so the milliseconds below cannot overflow. */
		if (expires_in > FCM_TOKEN_MAX_S)
			expires_in = FCM_TOKEN_MAX_S;
		*token = strdup(tok);
		*expires_in_s = expires_in;
		/* Refresh a minute early (or at half the lifetime, if shorter). */
		*refresh_ms = (expires_in > 120 ? expires_in - 60 :
			       expires_in / 2) * 1000;
	}
	json_decref(o);
	return *token ? PL_OK : PL_UNAVAILABLE;
}

static void on_token(struct notify_req *req, void *arg)
{
	struct notify_fcm *f = arg;
	char *tok;
	long long expires_in, refresh_ms;

	f->fetching = 0;
	if (notify_fcm_token_answer(req, &tok, &expires_in, &refresh_ms)) {
		pl_log(PL_LOG_WARN, "fcm: token exchange at '%s' failed "
		       "status=%ld", f->token_url, req->status);
		f->retry_at_ms = pl_clock_mono_ms() + 2000;
		goto out;
	}
	notify_fcm_invalidate(f);
	f->access_token = tok;
	f->expires_at_ms = pl_clock_mono_ms() + refresh_ms;
	if (f->token_count)
		atomic_fetch_add(f->token_count, 1);
	pl_log(PL_LOG_INFO, "fcm: got an access token expires_in=%lld",
	       expires_in);
out:
	notify_req_release(req);
}

/* Starts the token exchange. Returns 0, or -1 (logged). */
static int fetch_token(struct notify_fcm *f, struct notify_http *h)
{
	long long iat = (long long)time(NULL);
	json_t *c = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", f->client_email,
			      "scope", FCM_SCOPE, "aud", f->token_url, "iat",
			      (json_int_t)iat, "exp", (json_int_t)(iat + 3600));
	char *claims = c ? json_dumps(c, JSON_COMPACT) : NULL;
	char *assertion = claims ? notify_jwt_sign(JWT_ALG_RS256, f->key_pem,
						   NULL, claims) : NULL;
	struct notify_req *req = &f->token_req;
	int rc = -1;

	json_decref(c);
	free(claims);
	if (!assertion) {
		pl_log(PL_LOG_ERR, "fcm: cannot sign the token request");
		goto out;
	}
	notify_req_release(req);
	if (asprintf(&req->body, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
		     "grant-type%%3Ajwt-bearer&assertion=%s", assertion) < 0) {
		req->body = NULL;
		goto out;
	}
	if (notify_req_header(req, "content-type: "
			      "application/x-www-form-urlencoded") ||
	    notify_http_start(h, req, f->token_url, f->ca_file, 10000,
			      on_token, f))
		goto out;
	f->fetching = 1;
	rc = 0;
out:
	free(assertion);
	return rc;
}

int notify_fcm_ready(struct notify_fcm *f, struct notify_http *h,
		     long long now)
{
	if (f->access_token && now < f->expires_at_ms)
		return 1;
	if (f->fetching || now < f->retry_at_ms)
		return 0;
	if (fetch_token(f, h))
		f->retry_at_ms = now + 2000;
	return 0;
}

static char *payload(const char *token, const struct notify_message *m)
{
	char conv[24], mid[24], seq[24];
	json_t *android, *note = NULL, *root;
	char *text;

	snprintf(conv, sizeof(conv), "%lld", m->conversation_id);
	snprintf(mid, sizeof(mid), "%lld", m->message_id);
	snprintf(seq, sizeof(seq), "%lld", m->seq);
	android = json_pack("{s:s,s:s,s:{s:s}}", "collapse_key", conv,
			    "priority", "high", "notification", "tag", conv);
	if (android && m->badge >= 0)
		json_object_set_new(json_object_get(android, "notification"),
				    "notification_count", json_integer(m->badge));
	note = m->sender ? json_pack("{s:s,s:s}", "title", m->sender, "body",
				     m->preview ? m->preview : "") :
			   json_pack("{s:s}", "body", "New message");
	root = json_pack("{s:{s:s,s:{s:s,s:s,s:s},s:o,s:o}}", "message",
			 "token", token, "data", "conversation_id", conv,
			 "message_id", mid, "seq", seq, "notification", note,
			 "android", android);
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	return text;
}

enum pl_err notify_fcm_prepare(struct notify_fcm *f, struct notify_req *req,
			       const char *token,
			       const struct notify_message *m, char *url,
			       size_t urllen)
{
	if (!f->access_token)
		return PL_UNAVAILABLE;
	notify_req_release(req);
	snprintf(url, urllen, "%s/v1/projects/%s/messages:send", f->url,
		 f->project_id);
	req->body = payload(token, m);
	if (!req->body ||
	    notify_req_header(req, "authorization: Bearer %s",
			      f->access_token) ||
	    notify_req_header(req, "content-type: application/json"))
		return PL_INTERNAL;
	return PL_OK;
}

/* What an FCM error body says (error.status, error.details[]). */
struct fcm_error {
	char code[64];		/* the first details[].errorCode, else status */
	char field[64];		/* the first details[].fieldViolations[].field */
	int token_field;	/* a field violation names message.token */
};

static void read_error(const struct notify_req *req, struct fcm_error *e)
{
	json_t *o = json_loads(req->resp, 0, NULL);
	json_t *err = json_object_get(o, "error"), *d, *v;
	const char *code = json_string_value(json_object_get(err, "status"));
	const char *found = NULL;
	size_t i, k;

	memset(e, 0, sizeof(*e));
	json_array_foreach(json_object_get(err, "details"), i, d) {
		const char *c = json_string_value(json_object_get(d, "errorCode"));

		if (c && !found)
			found = c;
		json_array_foreach(json_object_get(d, "fieldViolations"), k, v) {
			const char *f = json_string_value(json_object_get(v,
									  "field"));

			if (!f)
				continue;
			if (!e->field[0])
				snprintf(e->field, sizeof(e->field), "%s", f);
			if (strcmp(f, "message.token") == 0)
				e->token_field = 1;
		}
	}
	snprintf(e->code, sizeof(e->code), "%s", found ? found :
		 code ? code : "");
	json_decref(o);
}

/*
 * FCM answers 400 INVALID_ARGUMENT both for a malformed token and for a
 * malformed message, so that code alone never condemns a token: only a
 * field violation on message.token does (or UNREGISTERED and
 * SENDER_ID_MISMATCH, which are about the token by definition). A payload
 * FCM refuses is a bug of ours that would otherwise delete the token of
 * every device it was sent to.
 */
enum notify_outcome notify_fcm_outcome(const struct notify_req *req)
{
	struct fcm_error e;

	if (req->result != CURLE_OK)
		return NOTIFY_RETRY;
	if (req->status == 200)
		return NOTIFY_SENT;
	read_error(req, &e);
	if (strcmp(e.code, "UNREGISTERED") == 0 ||
	    strcmp(e.code, "SENDER_ID_MISMATCH") == 0 ||
	    (req->status == 400 && e.token_field))
		return NOTIFY_TOKEN_GONE;
	if (req->status == 401)
		return NOTIFY_AUTH;
	if (req->status == 429 || req->status >= 500)
		return NOTIFY_RETRY;
	pl_log(PL_LOG_WARN, "fcm: push rejected status=%ld code=%s field=%s",
	       req->status, e.code[0] ? e.code : "-",
	       e.field[0] ? e.field : "-");
	return NOTIFY_REJECTED;
}
