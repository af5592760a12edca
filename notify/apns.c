/*
 * apns: Apple Push Notification service requests (doc/architecture.md "Push").
 *
 * POST {url}/3/device/<token> with a provider JWT (ES256, header kid, claims
 * iss and iat) signed with the team's .p8 key. One token is shared by every
 * request and signed again only after token_lifetime_s, because APNs refuses
 * tokens refreshed more often than every 20 minutes and expires them after
 * 60. The key is read once here and never logged.
 */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "notify.h"
#include "token.h"
#include "banned.h"

int notify_key_read(const char *path, const char *pem, int want_ec,
		    char **out)
{
	char *text = NULL;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int rc = -1;

	*out = NULL;
	if (path) {
		char err[1024];
		size_t n;

		/* Refused when its group or others may read it (lib/token.h). */
		if (pl_token_secret_read(path, NOTIFY_KEY_FILE_MAX, &text, &n,
					 err, sizeof(err))) {
			pl_log(PL_LOG_ERR, "notify: key: %s", err);
			return -1;
		}
	} else {
		text = strdup(pem);
		if (!text)
			goto out;
	}
	bio = BIO_new_mem_buf(text, -1);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (!pkey) {
		pl_log(PL_LOG_ERR, "notify: key '%s' is not a PEM private key",
		       path ? path : "private_key");
		goto out;
	}
	/* The key must fit the algorithm: ES256 is P-256, RS256 is RSA. */
	if (want_ec ? (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
		       EVP_PKEY_get_bits(pkey) != 256) :
		      EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		pl_log(PL_LOG_ERR, "notify: key '%s' is not %s",
		       path ? path : "private_key",
		       want_ec ? "a P-256 EC key (ES256)" : "an RSA key (RS256)");
		goto out;
	}
	*out = text;
	text = NULL;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	return rc;
}

char *notify_jwt_sign(jwt_alg_t alg, const char *key_pem, const char *kid,
		      const char *claims_json)
{
	jwt_t *j = NULL;
	char *token = NULL;

	if (jwt_new(&j))
		return NULL;
	if (jwt_set_alg(j, alg, (const unsigned char *)key_pem,
			(int)strlen(key_pem)) ||
	    (kid && jwt_add_header(j, "kid", kid)) ||
	    jwt_add_grants_json(j, claims_json))
		goto out;
	/* A NULL key would mean alg "none": insist on the one asked for. */
	if (jwt_get_alg(j) != alg)
		goto out;
	token = jwt_encode_str(j);
out:
	jwt_free(j);
	return token;
}

int notify_apns_init(struct notify_apns *a, const struct pl_config *cfg,
		     atomic_ulong *signed_count)
{
	memset(a, 0, sizeof(*a));
	a->signed_count = signed_count;
	if (!cfg->apns_key_file[0]) {
		pl_log(PL_LOG_INFO, "apns: no [apns] key_file: apns pushes are off");
		return 0;
	}
	if (!cfg->apns_key_id[0] || !cfg->apns_team_id[0] ||
	    !cfg->apns_topic[0]) {
		pl_log(PL_LOG_ERR, "apns: [apns] key_id, team_id and topic are "
		       "needed with key_file");
		return -1;
	}
	if (notify_key_read(cfg->apns_key_file, NULL, 1, &a->key_pem))
		return -1;
	a->url = cfg->apns_url;
	a->key_id = cfg->apns_key_id;
	a->team_id = cfg->apns_team_id;
	a->topic = cfg->apns_topic;
	a->ca_file = cfg->apns_ca_file;
	a->lifetime_s = cfg->apns_token_lifetime_s;
	a->on = 1;
	pl_log(PL_LOG_INFO, "apns: pushes go to '%s' topic=%s", a->url, a->topic);
	return 0;
}

void notify_apns_release(struct notify_apns *a)
{
	free(a->key_pem);
	free(a->jwt);
	memset(a, 0, sizeof(*a));
}

void notify_apns_invalidate(struct notify_apns *a)
{
	free(a->jwt);
	a->jwt = NULL;
}

/* Returns the provider token, signing a new one when it is too old. */
static const char *provider_token(struct notify_apns *a)
{
	long long now = (long long)time(NULL);
	if (a->jwt && now - a->jwt_iat < a->lifetime_s)
		return a->jwt;
	notify_apns_invalidate(a);
	{
		json_t *c = json_pack("{s:s,s:I}", "iss", a->team_id, "iat",
				      (json_int_t)now);
		char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;

		json_decref(c);
		if (!text)
			return NULL;
		a->jwt = notify_jwt_sign(JWT_ALG_ES256, a->key_pem, a->key_id,
					 text);
		free(text);
	}
	if (!a->jwt) {
		pl_log(PL_LOG_ERR, "apns: cannot sign the provider token");
		return NULL;
	}
	a->jwt_iat = now;
	if (a->signed_count)
		atomic_fetch_add(a->signed_count, 1);
	pl_log(PL_LOG_INFO, "apns: signed a new provider token iat=%lld", now);
	return a->jwt;
}

static char *payload(const struct notify_message *m)
{
	json_t *aps, *root;
	char *text;

	aps = json_object();
	if (m->sender)
		json_object_set_new(aps, "alert", json_pack("{s:s,s:s}",
				    "title", m->sender, "body",
				    m->preview ? m->preview : ""));
	else
		json_object_set_new(aps, "alert", json_pack("{s:s}", "body",
				    "New message"));
	json_object_set_new(aps, "sound", json_string("default"));
	if (m->badge >= 0)
		json_object_set_new(aps, "badge", json_integer(m->badge));
	json_object_set_new(aps, "thread-id", json_sprintf("%lld",
			    m->conversation_id));
	root = json_pack("{s:o,s:I,s:I,s:I}", "aps", aps, "conversation_id",
			 (json_int_t)m->conversation_id, "message_id",
			 (json_int_t)m->message_id, "seq", (json_int_t)m->seq);
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	return text;
}

enum pl_err notify_apns_prepare(struct notify_apns *a, struct notify_req *req,
				const char *token,
				const struct notify_message *m, char *url,
				size_t urllen)
{
	const char *jwt = provider_token(a);
	long long expiration = (long long)time(NULL) + 86400;

	if (!jwt)
		return PL_INTERNAL;
	notify_req_release(req);
	snprintf(url, urllen, "%s/3/device/%s", a->url, token);
	req->body = payload(m);
	if (!req->body ||
	    notify_req_header(req, "authorization: bearer %s", jwt) ||
	    notify_req_header(req, "apns-topic: %s", a->topic) ||
	    notify_req_header(req, "apns-push-type: alert") ||
	    notify_req_header(req, "apns-priority: 10") ||
	    notify_req_header(req, "apns-expiration: %lld", expiration) ||
	    notify_req_header(req, "apns-collapse-id: %lld",
			      m->conversation_id) ||
	    notify_req_header(req, "content-type: application/json"))
		return PL_INTERNAL;
	return PL_OK;
}

/* The "reason" of an APNs error body, or "". */
static void reason(const struct notify_req *req, char *out, size_t outlen)
{
	json_t *o = json_loads(req->resp, 0, NULL);
	const char *r = o ? json_string_value(json_object_get(o, "reason")) : NULL;

	snprintf(out, outlen, "%s", r ? r : "");
	json_decref(o);
}

enum notify_outcome notify_apns_outcome(const struct notify_req *req)
{
	char why[64];

	if (req->result != CURLE_OK)
		return NOTIFY_RETRY;
	if (req->status == 200)
		return NOTIFY_SENT;
	reason(req, why, sizeof(why));
	if (req->status == 410 ||
	    (req->status == 400 && strcmp(why, "BadDeviceToken") == 0))
		return NOTIFY_TOKEN_GONE;
	if (req->status == 403 && (strcmp(why, "ExpiredProviderToken") == 0 ||
				   strcmp(why, "InvalidProviderToken") == 0))
		return NOTIFY_AUTH;
	if (req->status == 429 || req->status >= 500)
		return NOTIFY_RETRY;
	pl_log(PL_LOG_WARN, "apns: push rejected status=%ld reason=%s",
	       req->status, why[0] ? why : "-");
	return NOTIFY_REJECTED;
}
