/*
 * What happens to a message after it is sent: edit, delete, reactions
 * (doc/protocol.md "Edits, deletions and reactions"). Each is one call of
 * post_event() (sql/014), which stores it as an inbox event with its own
 * seq for every member who receives it, under the posting path's locks;
 * after COMMIT the event goes to their relays, like a message but with no
 * push.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "limits.h"
#include "publish.h"
#include "validate.h"
#include "banned.h"

/* What post_event()'s status means for the request. */
static const struct {
	const char *status;
	enum pl_err err;
	const char *message;
} statuses[] = {
	{ "not_found", PL_NOT_FOUND,
	  "no such message, or it is not yours to see" },
	{ "forbidden", PL_FORBIDDEN,
	  "only the sender (or, to delete, a group admin) may do this" },
	{ "too_late", PL_FORBIDDEN, "the message is past its edit window" },
	{ "too_many", PL_BAD_REQUEST,
	  "the message has the most distinct reactions a message may have" },
};

/* Parses "[[user_id, seq], ...]" into a new array; NULL when empty or bad. */
static struct pl_delivery *deliveries_of(json_t *arr, size_t *n)
{
	struct pl_delivery *d;
	size_t i;
	json_t *pair;

	*n = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return NULL;
	d = calloc(json_array_size(arr), sizeof(*d));
	if (!d)
		return NULL;
	json_array_foreach(arr, i, pair) {
		d[i].user_id = json_integer_value(json_array_get(pair, 0));
		d[i].seq = json_integer_value(json_array_get(pair, 1));
	}
	*n = json_array_size(arr);
	return d;
}

/*
 * Runs post_event(kind) on message params[1] of conversation params[0] and
 * publishes the event it stored, if it stored one (changing nothing, as a
 * second delete or reaction does, stores none). Returns PL_OK or fails the
 * request.
 */
static enum pl_err post_event(struct api_request *req, const char *kind,
			      const char *body, const char *emoji)
{
	long long conv = req->params[0], mid = req->params[1];
	char cid[24], msg[24], uid[24], window[48], max[24];
	const char *params[] = { kind, api_ll(uid, req->user_id),
				 api_ll(cid, conv), api_ll(msg, mid), body,
				 emoji, window, max };
	struct pl_delivery *d;
	const char *status;
	json_t *ev, *dels;
	PGresult *res;
	enum pl_err rc;
	size_t n;

	snprintf(window, sizeof(window), "%lld seconds",
		 req->w->cfg->messages_edit_window_s);
	api_ll(max, PL_REACTIONS_PER_MESSAGE_MAX);
	if ((rc = api_sql(req, "SELECT status, event, deliveries FROM "
			  "post_event($1, $2, $3, $4, $5, $6, $7::interval, $8)",
			  8, params, 0, &res)))
		return rc;
	status = PQgetvalue(res, 0, 0);
	for (size_t k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++)
		if (strcmp(status, statuses[k].status) == 0) {
			rc = statuses[k].err;
			PQclear(res);
			return api_fail(req, rc, "%s (message %lld of "
					"conversation %lld)", statuses[k].message,
					mid, conv);
		}
	if (strcmp(status, "ok") != 0) {
		PQclear(res);
		return PL_OK;	/* "noop": nothing changed, nothing to tell */
	}
	ev = api_json_column(res, 0, 1);
	dels = api_json_column(res, 0, 2);
	PQclear(res);
	/* Only after COMMIT: tell the relays. */
	d = deliveries_of(dels, &n);
	if (ev && d)
		pl_publish_event(&req->w->redis, ev, d, n);
	free(d);
	json_decref(dels);
	json_decref(ev);
	return PL_OK;
}

/* PATCH /conversations/{id}/messages/{mid} {body}: 200 the message. */
enum pl_err api_messages_edit(struct api_request *req)
{
	char cid[24], mid[24], uid[24], why[160];
	const char *body;
	enum pl_err rc;

	if ((rc = api_body_string(req, "body", 1, &body, NULL)))
		return rc;
	if ((rc = pl_validate_body(body, strlen(body), why, sizeof(why))))
		return api_fail(req, rc, "%s", why);
	if ((rc = post_event(req, "edit", body, NULL)))
		return rc;
	return api_sql_reply_json(req, 200,
		"SELECT message_out(m, $3::bigint) FROM messages m WHERE "
		"conversation_id = $1 AND message_id = $2",
		3, (const char *const[]){ api_ll(cid, req->params[0]),
					  api_ll(mid, req->params[1]),
					  api_ll(uid, req->user_id) },
		"the message is gone");
}

/* DELETE /conversations/{id}/messages/{mid}: 204, idempotent. */
enum pl_err api_messages_delete(struct api_request *req)
{
	enum pl_err rc = post_event(req, "delete", NULL, NULL);

	if (rc)
		return rc;
	api_reply(req, 204, NULL);
	return PL_OK;
}

/*
 * The emoji of .../reactions/{emoji}: the path's last segment,
 * percent-decoded, 1..PL_EMOJI_MAX_BYTES bytes of UTF-8. Returns PL_OK or
 * fails the request.
 */
static enum pl_err emoji_of(struct api_request *req,
			    char out[PL_EMOJI_MAX_BYTES + 1])
{
	const char *seg = strrchr(req->path, '/');
	char *dec;
	int len;

	if (!seg || !seg[1])
		return api_fail(req, PL_BAD_REQUEST, "the emoji is missing");
	dec = curl_easy_unescape(NULL, seg + 1, 0, &len);
	if (!dec)
		return api_fail(req, PL_INTERNAL, "out of memory");
	if (len < 1 || len > PL_EMOJI_MAX_BYTES ||
	    !pl_validate_utf8(dec, (size_t)len)) {
		curl_free(dec);
		return api_fail(req, PL_BAD_REQUEST, "an emoji is 1..%d bytes "
				"of UTF-8", PL_EMOJI_MAX_BYTES);
	}
	memcpy(out, dec, (size_t)len + 1);
	curl_free(dec);
	return PL_OK;
}

static enum pl_err react(struct api_request *req, const char *kind)
{
	char emoji[PL_EMOJI_MAX_BYTES + 1];
	enum pl_err rc;

	if ((rc = emoji_of(req, emoji)) ||
	    (rc = post_event(req, kind, NULL, emoji)))
		return rc;
	api_reply(req, 204, NULL);
	return PL_OK;
}

/* PUT /conversations/{id}/messages/{mid}/reactions/{emoji}: 204. */
enum pl_err api_reactions_put(struct api_request *req)
{
	return react(req, "react");
}

/* DELETE .../reactions/{emoji}: 204, also when there was none. */
enum pl_err api_reactions_delete(struct api_request *req)
{
	return react(req, "unreact");
}
