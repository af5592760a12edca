/*
 * What happens to a message after it is sent: edit, delete, reactions
 * (doc/protocol.md "Edits, deletions and reactions"), stored by lib/change
 * as inbox events with their own seqs; after COMMIT each goes to its
 * members' relays, like a message but with no push.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "change.h"
#include "pl_limits.h"
#include "publish.h"
#include "validate.h"
#include "banned.h"

/*
 * Stores change kind (body or emoji as it needs) on message params[1] of
 * conversation params[0] and publishes the event stored, if one was:
 * changing nothing (a second delete, a reaction already there) stores none.
 * Returns PL_OK or fails the request.
 */
static enum pl_err change(struct api_request *req, enum pl_change_kind kind,
			  const char *body, const char *emoji)
{
	struct pl_change c = {
		.kind = kind, .actor_id = req->user_id,
		.conversation_id = req->params[0], .message_id = req->params[1],
		.body = body, .emoji = emoji,
		.edit_window_s = req->w->cfg->messages_edit_window_s,
	};
	struct pl_change_result r;
	enum pl_err rc = pl_change_post(&req->w->db, &c, &r);

	if (rc)
		rc = api_fail(req, rc, "%s (message %lld of conversation %lld)",
			      r.message, c.message_id, c.conversation_id);
	/* Only after COMMIT: tell the relays. */
	else if (r.event)
		pl_publish_event(&req->w->redis, r.event, r.deliveries,
				 r.n_deliveries);
	pl_change_release(&r);
	return rc;
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
	if ((rc = change(req, PL_CHANGE_EDIT, body, NULL)))
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
	enum pl_err rc = change(req, PL_CHANGE_DELETE, NULL, NULL);

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

static enum pl_err react(struct api_request *req, enum pl_change_kind kind)
{
	char emoji[PL_EMOJI_MAX_BYTES + 1];
	enum pl_err rc;

	if ((rc = emoji_of(req, emoji)) ||
	    (rc = change(req, kind, NULL, emoji)))
		return rc;
	api_reply(req, 204, NULL);
	return PL_OK;
}

/* PUT /conversations/{id}/messages/{mid}/reactions/{emoji}: 204. */
enum pl_err api_reactions_put(struct api_request *req)
{
	return react(req, PL_CHANGE_REACT);
}

/* DELETE .../reactions/{emoji}: 204, also when there was none. */
enum pl_err api_reactions_delete(struct api_request *req)
{
	return react(req, PL_CHANGE_UNREACT);
}
