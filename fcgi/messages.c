/*
 * Messages over HTTP: send, history and search (doc/protocol.md "REST").
 * Sending goes through lib/'s posting path and publishing, the same code
 * the relay uses for WebSocket sends.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "post.h"
#include "publish.h"
#include "ratelimit.h"
#include "banned.h"

#define SEARCH_QUERY_MAX_BYTES 256

/*
 * POST /conversations/{id}/messages {client_msg_id, body, reply_to?,
 * attachment_ids?}; body may be empty, or left out, when there are
 * attachments.
 */
enum pl_err api_messages_send(struct api_request *req)
{
	const struct pl_config *cfg = req->w->cfg;
	struct pl_post_item item = { .sender_id = req->user_id,
				     .conversation_id = req->params[0] };
	struct pl_post_result result;
	struct pl_message msg;
	char uid[24], why[160];
	enum pl_err rc;
	int has_body;

	if ((rc = api_body_string(req, "client_msg_id", 1, &item.client_msg_id,
				  NULL)) ||
	    (rc = api_body_string(req, "body", 0, &item.body, &has_body)))
		return rc;
	if ((rc = pl_post_item_extras(req->body, &item, why, sizeof(why))))
		return api_fail(req, rc, "%s", why);
	if (!has_body && item.n_attachments == 0)
		return api_fail(req, PL_BAD_REQUEST, "'body' is required");
	if (!has_body)
		item.body = "";
	item.body_len = strlen(item.body);
	if (pl_ratelimit_take(&req->w->redis, "send", api_ll(uid, req->user_id),
			      (double)cfg->limits_sends_per_second,
			      cfg->limits_sends_burst, &req->retry_after_s))
		return api_fail(req, PL_RATE_LIMITED, "sending too fast; retry in "
				"%lld s", req->retry_after_s);
	pl_post_batch(&req->w->db, &item, 1, &result);
	if (result.err) {
		rc = api_fail(req, result.err, "%s", result.message);
		pl_post_results_release(&result, 1);
		return rc;
	}
	msg = (struct pl_message){
		.conversation_id = item.conversation_id,
		.message_id = result.message_id,
		.sender_id = item.sender_id,
		.body = item.body,
		.body_len = item.body_len,
		.created_at = result.created_at,
		.client_msg_id = item.client_msg_id,
		.reply_to = item.reply_to,
		.attachments = result.attachments,
	};
	/* Only after COMMIT: tell the relays, and queue pushes. */
	if (!result.duplicate)
		pl_publish_message(&req->w->redis, &msg, result.deliveries,
				   result.n_deliveries);
	api_reply(req, result.duplicate ? 200 : 201, pl_json_message(&msg));
	pl_post_results_release(&result, 1);
	return PL_OK;
}

/*
 * A condition on a row of messages: its sender is not someone VIEWER (a
 * parameter) blocked. The blocker's history and search leave out what the
 * inbox never gave them (doc/protocol.md "Blocking"). Whether the viewer
 * blocked anyone is asked once per statement (an InitPlan): most have not,
 * and then no row asks again.
 */
#define NOT_BLOCKED(VIEWER) \
	"(NOT EXISTS (SELECT 1 FROM blocks WHERE user_id = " VIEWER \
	"::bigint) OR NOT EXISTS (SELECT 1 FROM blocks bl WHERE bl.user_id = " \
	VIEWER "::bigint AND bl.blocked_id = sender_id))"

/*
 * GET /conversations/{id}/messages?before=MID|after=MID&limit=N: newest
 * first by default or with before; oldest first with after.
 */
enum pl_err api_messages_list(struct api_request *req)
{
	char cid[24], uid[24], b[24], a[24], lim[24], missing[96];
	long long before, after, limit;
	enum pl_err rc;

	if ((rc = api_query_int(req, "before", 0, 0, INT64_MAX, &before)) ||
	    (rc = api_query_int(req, "after", -1, 0, INT64_MAX, &after)) ||
	    (rc = api_query_int(req, "limit", 50, 1, 100, &limit)))
		return rc;
	/* One statement: NULL (404) unless the caller is a member. */
	snprintf(missing, sizeof(missing), "conversation %lld does not exist "
		 "or is not yours", req->params[0]);
	api_ll(cid, req->params[0]);
	api_ll(uid, req->user_id);
	api_ll(lim, limit);
	if (after >= 0)
		return api_sql_reply_json(req, 200,
			"SELECT CASE WHEN EXISTS (SELECT 1 FROM members WHERE "
			"conversation_id = $1 AND user_id = $4) THEN "
			"json_build_object('messages', coalesce(json_agg("
			"message_out(m, $4::bigint) ORDER BY m.message_id), '[]')) "
			"END FROM (SELECT * FROM messages WHERE conversation_id = "
			"$1 AND message_id > $2 AND " NOT_BLOCKED("$4") " ORDER BY "
			"message_id LIMIT $3) m",
			4, (const char *const[]){ cid, api_ll(a, after), lim, uid },
			missing);
	/*
	 * No "before" is before the largest id: one text for both keeps the
	 * statement's plan generic (an "OR $2 = 0" would be planned per call).
	 */
	return api_sql_reply_json(req, 200,
		"SELECT CASE WHEN EXISTS (SELECT 1 FROM members WHERE "
		"conversation_id = $1 AND user_id = $4) THEN "
		"json_build_object('messages', coalesce(json_agg("
		"message_out(m, $4::bigint) ORDER BY m.message_id DESC), '[]')) "
		"END FROM (SELECT * FROM messages WHERE conversation_id = $1 "
		"AND message_id < $2 AND " NOT_BLOCKED("$4") " ORDER BY "
		"message_id DESC LIMIT $3) m",
		4, (const char *const[]){ cid, api_ll(b, before ? before :
			INT64_MAX), lim, uid }, missing);
}

/*
 * Substrings take SEARCH_SUBSTRING_MIN_CHARS characters in one word of the
 * query: the trigram index needs three characters to narrow anything, and a
 * shorter pattern would read and rank every message the caller can see.
 */
#define SEARCH_SUBSTRING_MIN_CHARS 3

/*
 * Each kind of match (words, substrings) gives at most SEARCH_CANDIDATES of
 * its newest messages to be ranked: ranking parses a message's body again,
 * and a common word would otherwise rank hundreds of thousands of them.
 */
#define SEARCH_CANDIDATES "5000"

/*
 * The newest SEARCH_CANDIDATES messages of the caller's conversations that
 * match MATCH, a condition on message m: q.ts holds the query's words
 * ('simple' configuration, any language), q.pat the query as an ILIKE
 * pattern. Each kind of match is its own branch, so each uses its own index
 * and PostgreSQL rechecks only that condition.
 */
#define SEARCH_BRANCH(MATCH) \
	"(SELECT m.conversation_id, m.message_id FROM q, messages m " \
	"  JOIN members b ON b.conversation_id = m.conversation_id AND " \
	"  b.user_id = $1 " \
	"  WHERE ($3::bigint = 0 OR m.conversation_id = $3) AND " \
	NOT_BLOCKED("$1") " AND " MATCH \
	"  ORDER BY m.created_at DESC, m.message_id DESC " \
	"  LIMIT " SEARCH_CANDIDATES ")"
#define SEARCH_WORDS SEARCH_BRANCH("to_tsvector('simple', m.body) @@ q.ts")
#define SEARCH_SUBSTRINGS SEARCH_BRANCH("m.body ILIKE q.pat")

/*
 * The search over CANDIDATES: word matches rank first, then newest. Each
 * candidate's message is read on its own, pruned to its partition; LIMIT 1
 * (its key finds one) tells the planner so, which would otherwise rather
 * hash all of messages.
 */
#define SEARCH_SQL(CANDIDATES) \
	"WITH q AS (SELECT plainto_tsquery('simple', $2) AS ts, " \
	"  '%' || replace(replace(replace($2, '\\', '\\\\'), '%', '\\%'), " \
	"  '_', '\\_') || '%' AS pat), " \
	"c AS (" CANDIDATES ") " \
	"SELECT json_build_object('messages', coalesce(json_agg(" \
	"  message_out(r.msg, $1::bigint) ORDER BY r.rank DESC, r.created_at DESC, " \
	"  r.message_id DESC), '[]')) FROM (" \
	"  SELECT m.msg, m.created_at, m.message_id, " \
	"  ts_rank(to_tsvector('simple', m.body), q.ts) AS rank " \
	"  FROM q, c CROSS JOIN LATERAL (SELECT m AS msg, m.created_at, " \
	"  m.message_id, m.body FROM messages m " \
	"  WHERE m.conversation_id = c.conversation_id " \
	"  AND m.message_id = c.message_id LIMIT 1) m " \
	"  ORDER BY rank DESC, m.created_at DESC, m.message_id DESC " \
	"  LIMIT $4) r"

/* The most characters (UTF-8 code points) in one space-separated word of q. */
static size_t longest_word_chars(const char *q)
{
	size_t best = 0, n = 0;

	for (const unsigned char *p = (const unsigned char *)q; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			n = 0;
			continue;
		}
		if ((*p & 0xc0) != 0x80 && ++n > best)
			best = n;
	}
	return best;
}

/*
 * GET /search?q=TEXT&conversation_id=ID&limit=N: the caller's messages that
 * hold q's words (any language, 'simple' configuration) or, when a word of
 * q has SEARCH_SUBSTRING_MIN_CHARS characters or more, q as a substring
 * (trigram index, CJK included); word matches rank first, then newest, among
 * the newest SEARCH_CANDIDATES matches of each kind. A search that runs past
 * [database] statement_timeout_ms is answered 503.
 */
enum pl_err api_messages_search(struct api_request *req)
{
	char q[SEARCH_QUERY_MAX_BYTES + 1], uid[24], cid[24], lim[24];
	long long conv, limit;
	int found = api_query_string(req, "q", q, sizeof(q));
	int substrings;
	enum pl_err rc;

	if (found < 0)
		return req->err;
	if (!found || !q[0])
		return api_fail(req, PL_BAD_REQUEST, "'q' is required");
	if ((rc = api_query_int(req, "conversation_id", 0, 1, INT64_MAX, &conv)) ||
	    (rc = api_query_int(req, "limit", 20, 1, 100, &limit)))
		return rc;
	substrings = longest_word_chars(q) >= SEARCH_SUBSTRING_MIN_CHARS;
	/* Two statements, not a flag: each gets a plan of its own. */
	return api_sql_reply_json(req, 200, substrings ?
		SEARCH_SQL(SEARCH_WORDS " UNION " SEARCH_SUBSTRINGS) :
		SEARCH_SQL(SEARCH_WORDS),
		4, (const char *const[]){ api_ll(uid, req->user_id), q,
					  api_ll(cid, conv), api_ll(lim, limit) },
		"");
}
