#include "post.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pl_limits.h"
#include "validate.h"
#include "banned.h"

static const char post_sql[] =
	"SELECT idx, status, message_id, created_at, deliveries "
	"FROM post_messages($1::jsonb)";

static const struct {
	const char *status;
	enum pl_err err;
	const char *message;
} statuses[] = {
	{ "ok", PL_OK, "" },
	{ "duplicate", PL_OK, "" },
	{ "conflict", PL_CONFLICT,
	  "client_msg_id was already used with another body" },
	{ "not_found", PL_NOT_FOUND,
	  "conversation does not exist or is not yours" },
	{ "bad_request", PL_BAD_REQUEST, "invalid message" },
	{ "forbidden", PL_FORBIDDEN, "you cannot send in this conversation" },
	{ "bad_reply", PL_BAD_REQUEST,
	  "reply_to must be a message of this conversation" },
	{ "bad_attachment", PL_BAD_REQUEST,
	  "attachment_ids must be your own uploads, not yet posted" },
};

/* Adds an item's reply_to and attachment_ids to its object o. */
static int add_extras(json_t *o, const struct pl_post_item *item)
{
	json_t *ids;

	if (item->reply_to > 0 &&
	    json_object_set_new(o, "reply_to", json_integer(item->reply_to)))
		return -1;
	if (item->n_attachments == 0)
		return 0;
	ids = json_array();
	if (json_object_set_new(o, "attachment_ids", ids))
		return -1;
	for (size_t k = 0; k < item->n_attachments; k++)
		if (json_array_append_new(ids,
				json_integer(item->attachment_ids[k])))
			return -1;
	return 0;
}

/* Builds the JSON array of the items still pending. Returns NULL on OOM. */
static char *items_json(const struct pl_post_item *items, size_t n,
			const struct pl_post_result *results, size_t *map,
			size_t *npending)
{
	json_t *arr = json_array();
	char *out = NULL;

	*npending = 0;
	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *o;

		if (results[i].err != PL_OK)
			continue;
		o = json_pack("{s:I,s:I,s:s,s:s%}",
			      "sender_id", (json_int_t)items[i].sender_id,
			      "conversation_id",
			      (json_int_t)items[i].conversation_id,
			      "client_msg_id", items[i].client_msg_id,
			      "body", items[i].body, items[i].body_len);
		if (!o || json_array_append_new(arr, o) ||
		    add_extras(o, &items[i]))
			goto out;
		map[(*npending)++] = i;
	}
	out = json_dumps(arr, JSON_COMPACT);
out:
	json_decref(arr);
	return out;
}

enum pl_err pl_post_parse_deliveries(const char *text,
				     struct pl_delivery **out, size_t *n)
{
	json_error_t jerr;
	json_t *arr = json_loads(text, 0, &jerr);
	size_t i;
	json_t *pair;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr)) {
		json_decref(arr);
		return PL_INTERNAL;
	}
	*out = calloc(json_array_size(arr) + 1, sizeof(**out));
	if (!*out) {
		json_decref(arr);
		return PL_INTERNAL;
	}
	json_array_foreach(arr, i, pair) {
		(*out)[i].user_id = json_integer_value(json_array_get(pair, 0));
		(*out)[i].seq = json_integer_value(json_array_get(pair, 1));
	}
	*n = json_array_size(arr);
	json_decref(arr);
	return PL_OK;
}

static enum pl_err read_row(PGresult *res, int row, const size_t *map,
			    size_t npending, struct pl_post_result *results)
{
	long long idx = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	const char *status = PQgetvalue(res, row, 1);
	struct pl_post_result *r;
	size_t k;

	if (idx < 1 || (size_t)idx > npending)
		return PL_INTERNAL;
	r = &results[map[idx - 1]];
	for (k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++)
		if (strcmp(status, statuses[k].status) == 0)
			break;
	if (k == sizeof(statuses) / sizeof(statuses[0]))
		return PL_INTERNAL;
	r->err = statuses[k].err;
	snprintf(r->message, sizeof(r->message), "%s", statuses[k].message);
	r->duplicate = strcmp(status, "duplicate") == 0;
	if (!PQgetisnull(res, row, 2))
		r->message_id = strtoll(PQgetvalue(res, row, 2), NULL, 10);
	if (!PQgetisnull(res, row, 3))
		snprintf(r->created_at, sizeof(r->created_at), "%s",
			 PQgetvalue(res, row, 3));
	if (r->err == PL_OK && !r->duplicate && !PQgetisnull(res, row, 4))
		return pl_post_parse_deliveries(PQgetvalue(res, row, 4),
						&r->deliveries, &r->n_deliveries);
	return PL_OK;
}

static void fail_pending(struct pl_post_result *results, const size_t *map,
			 size_t npending, enum pl_err rc)
{
	for (size_t k = 0; k < npending; k++) {
		struct pl_post_result *r = &results[map[k]];

		free(r->deliveries);
		r->deliveries = NULL;
		r->n_deliveries = 0;
		r->err = rc;
		snprintf(r->message, sizeof(r->message), "%s",
			 rc == PL_UNAVAILABLE ?
			 "the message store is unavailable; retry with the same client_msg_id" :
			 "internal error");
	}
}

/*
 * After a batch ran again on a new connection, its duplicates may be its
 * own first run, committed with the answer lost: nothing published them
 * nor queued their pushes. Each such item is answered as stored now, with
 * its deliveries read back from the inbox, so the caller publishes it (a
 * relay drops a seq it has sent already) and queues its pushes once. An
 * item whose deliveries cannot be read stays a duplicate: the inbox still
 * has it for every device.
 */
static void reclaim_duplicates(struct pl_db *db,
			       const struct pl_post_item *items,
			       struct pl_post_result *results,
			       const size_t *map, size_t npending)
{
	for (size_t k = 0; k < npending; k++) {
		struct pl_post_result *r = &results[map[k]];
		const struct pl_post_item *it = &items[map[k]];
		char conv[24], mid[24], *text;
		const char *params[2] = { conv, mid };
		PGresult *res;

		if (r->err != PL_OK || !r->duplicate)
			continue;
		snprintf(conv, sizeof(conv), "%lld", it->conversation_id);
		snprintf(mid, sizeof(mid), "%lld", r->message_id);
		/* Newest first: the message is near the head of each inbox. */
		if (pl_db_exec(db,
			       "SELECT coalesce(jsonb_agg(jsonb_build_array(b.user_id, "
			       "s.seq) ORDER BY b.user_id), '[]') FROM members b "
			       "CROSS JOIN LATERAL (SELECT seq FROM inbox i WHERE "
			       "i.user_id = b.user_id AND i.conversation_id = $1 AND "
			       "i.message_id = $2 ORDER BY seq DESC LIMIT 1) s "
			       "WHERE b.conversation_id = $1",
			       2, params, 1, &res, NULL))
			continue;
		text = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : NULL;
		if (text && pl_post_parse_deliveries(text, &r->deliveries,
						     &r->n_deliveries) == PL_OK)
			r->duplicate = 0;
		PQclear(res);
	}
}

/*
 * The stored attachment objects of each item that posted attachments (new
 * or a duplicate), for its answer and its frames. One that cannot be read
 * leaves attachments NULL: the answer then lists none, and history has them.
 */
static void read_attachments(struct pl_db *db,
			     const struct pl_post_item *items,
			     struct pl_post_result *results, const size_t *map,
			     size_t npending)
{
	for (size_t k = 0; k < npending; k++) {
		struct pl_post_result *r = &results[map[k]];
		char conv[24], mid[24];
		const char *params[2] = { conv, mid };
		PGresult *res;

		if (r->err != PL_OK || items[map[k]].n_attachments == 0)
			continue;
		snprintf(conv, sizeof(conv), "%lld",
			 items[map[k]].conversation_id);
		snprintf(mid, sizeof(mid), "%lld", r->message_id);
		if (pl_db_exec(db, "SELECT coalesce(attachments, '[]') FROM "
			       "messages WHERE conversation_id = $1 AND "
			       "message_id = $2", 2, params, 1, &res, NULL))
			continue;
		if (PQntuples(res) == 1)
			r->attachments = strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
}

/* Validates first: an invalid item is answered on its own. */
static void validate_items(const struct pl_post_item *items, size_t n,
			   struct pl_post_result *results)
{
	for (size_t i = 0; i < n; i++) {
		struct pl_post_result *r = &results[i];

		r->err = pl_validate_client_msg_id(items[i].client_msg_id,
						   r->message, sizeof(r->message));
		if (r->err == PL_OK && items[i].n_attachments >
		    PL_ATTACHMENTS_PER_MESSAGE_MAX) {
			r->err = PL_BAD_REQUEST;
			snprintf(r->message, sizeof(r->message), "at most %d "
				 "attachments", PL_ATTACHMENTS_PER_MESSAGE_MAX);
		}
		/* A message of attachments alone may have an empty body. */
		if (r->err == PL_OK && (items[i].body_len > 0 ||
					items[i].n_attachments == 0))
			r->err = pl_validate_body(items[i].body, items[i].body_len,
						  r->message, sizeof(r->message));
	}
}

enum pl_err pl_post_batch(struct pl_db *db, const struct pl_post_item *items,
			  size_t n, struct pl_post_result *results)
{
	size_t map[PL_POST_BATCH_MAX];
	size_t npending = 0;
	char *json = NULL;
	PGresult *res = NULL;
	enum pl_err rc = PL_OK;
	char state[6];
	int rerun = 0;

	memset(results, 0, n * sizeof(*results));
	if (n == 0 || n > PL_POST_BATCH_MAX) {
		for (size_t i = 0; i < n; i++)
			results[i].err = PL_BAD_REQUEST;
		return PL_BAD_REQUEST;
	}
	validate_items(items, n, results);
	json = items_json(items, n, results, map, &npending);
	if (!json) {
		rc = PL_INTERNAL;
		goto out;
	}
	if (npending == 0)
		goto out;
	for (int attempt = 0; attempt < 2; attempt++) {
		const char *params[1] = { json };
		int was_connected = db->conn && PQstatus(db->conn) == CONNECTION_OK;
		unsigned long long connects = db->connects;

		rc = pl_db_exec(db, post_sql, 1, params, 1, &res, state);
		/*
		 * pl_db_exec() ran the batch again on a new connection: the
		 * first run may have committed with its answer lost.
		 */
		if (was_connected && db->connects != connects)
			rerun = 1;
		/* 40P01 deadlock, 40001 serialization: retry the batch once. */
		if (rc == PL_UNAVAILABLE && state[0] == '4' && state[1] == '0' &&
		    attempt == 0)
			continue;
		break;
	}
	if (rc)
		goto out;
	if ((size_t)PQntuples(res) != npending) {
		pl_log(PL_LOG_ERR, "post: post_messages returned %d rows for %zu items",
		       PQntuples(res), npending);
		rc = PL_INTERNAL;
		goto out;
	}
	for (int row = 0; row < PQntuples(res); row++) {
		rc = read_row(res, row, map, npending, results);
		if (rc) {
			pl_log(PL_LOG_ERR, "post: cannot read post_messages row %d",
			       row);
			goto out;
		}
	}
	if (rerun)
		reclaim_duplicates(db, items, results, map, npending);
	read_attachments(db, items, results, map, npending);
out:
	if (rc && npending)
		fail_pending(results, map, npending, rc);
	PQclear(res);
	free(json);
	return rc;
}

void pl_post_results_release(struct pl_post_result *results, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(results[i].deliveries);
		results[i].deliveries = NULL;
		results[i].n_deliveries = 0;
		free(results[i].attachments);
		results[i].attachments = NULL;
	}
}

enum pl_err pl_post_item_extras(const json_t *obj, struct pl_post_item *item,
				char *why, size_t whylen)
{
	const json_t *reply = json_object_get(obj, "reply_to");
	const json_t *ids = json_object_get(obj, "attachment_ids");
	size_t i;
	json_t *id;

	item->reply_to = 0;
	item->n_attachments = 0;
	if (reply && !json_is_null(reply)) {
		if (!json_is_integer(reply) || json_integer_value(reply) <= 0) {
			snprintf(why, whylen, "'reply_to' must be a message id");
			return PL_BAD_REQUEST;
		}
		item->reply_to = json_integer_value(reply);
	}
	if (!ids || json_is_null(ids))
		return PL_OK;
	if (!json_is_array(ids)) {
		snprintf(why, whylen, "'attachment_ids' must be a list of ids");
		return PL_BAD_REQUEST;
	}
	if (json_array_size(ids) > PL_ATTACHMENTS_PER_MESSAGE_MAX) {
		snprintf(why, whylen, "at most %d attachments",
			 PL_ATTACHMENTS_PER_MESSAGE_MAX);
		return PL_BAD_REQUEST;
	}
	json_array_foreach(ids, i, id) {
		if (!json_is_integer(id) || json_integer_value(id) <= 0) {
			snprintf(why, whylen, "'attachment_ids' must be a list "
				 "of ids");
			return PL_BAD_REQUEST;
		}
		item->attachment_ids[i] = json_integer_value(id);
	}
	item->n_attachments = json_array_size(ids);
	return PL_OK;
}
