/*
 * post: storing messages, the one path every writer uses.
 *
 * The relay (WebSocket sends) and the API (POST .../messages) both store
 * messages by handing a batch to pl_post_batch(), which drives the
 * post_messages() function in one transaction (its current definition,
 * and that of post_messages_sets(), which it hands the batch to, are in
 * sql/current/functions/, generated from the migrations; see sql/README):
 * validate before locking, per-item answers, one global lock order, gapless
 * per-conversation message ids and per-user seqs committed in order
 * (doc/architecture.md "How a message flows", step 2). The caller publishes the
 * returned deliveries after this returns, never before.
 */
#ifndef PL_POST_H
#define PL_POST_H

#include <jansson.h>
#include <stddef.h>

#include "db.h"
#include "err.h"
#include "pl_limits.h"

/* One send. Strings are borrowed for the duration of the call. */
struct pl_post_item {
	long long sender_id;
	long long conversation_id;
	const char *client_msg_id;	/* NUL-terminated */
	const char *body;		/* body_len bytes, not necessarily NUL-terminated */
	size_t body_len;
	long long reply_to;		/* 0: not a reply */
	long long attachment_ids[PL_ATTACHMENTS_PER_MESSAGE_MAX];
	size_t n_attachments;		/* with attachments, body may be empty */
};

/* One inbox row the send created: publish it to user_id. */
struct pl_delivery {
	long long user_id;
	long long seq;
};

/* The answer to one item. */
struct pl_post_result {
	/*
	 * PL_OK (stored now, or a duplicate of an earlier identical send),
	 * PL_CONFLICT (client_msg_id reused with another body), PL_NOT_FOUND
	 * (no such conversation or not a member), PL_FORBIDDEN (a direct
	 * conversation whose other member blocked the sender), PL_BAD_REQUEST
	 * (also: reply_to not a message of the conversation, an attachment
	 * not the sender's own unposted upload) or
	 * PL_TOO_LARGE (invalid field), PL_UNAVAILABLE (outcome unknown:
	 * retry with the same client_msg_id) or PL_INTERNAL.
	 */
	enum pl_err err;
	char message[160];	/* why, when err != PL_OK */
	int duplicate;		/* 1: nothing new was stored */
	long long message_id;	/* for PL_OK and duplicates */
	char created_at[40];	/* RFC 3339, for PL_OK */
	size_t n_deliveries;	/* 0 for duplicates and errors */
	struct pl_delivery *deliveries;	/* owned by the result, sorted by user_id */
	char *attachments;	/* owned: the stored message's attachments as a
				 * JSON array, for items that had any */
};

/*
 * Stores items[0..n) (n <= PL_POST_BATCH_MAX) in one transaction, writing one
 * answer per item to results[0..n), which the caller releases with
 * pl_post_results_release() whatever this returns. When the connection is
 * lost mid-statement the batch runs again on a new connection, and its
 * duplicates then count as stored now (duplicate = 0, with deliveries): the
 * first run may have committed with its answer lost, so nothing published
 * them yet. A deadlock or
 * serialization failure retries the batch once. Returns PL_OK when the batch
 * ran (each result then says how its item went); PL_UNAVAILABLE when
 * PostgreSQL is down or the retry failed too, PL_INTERNAL on a bug, and
 * PL_BAD_REQUEST for n out of range: then every result carries that error
 * (items that failed validation keep their own).
 */
enum pl_err pl_post_batch(struct pl_db *db, const struct pl_post_item *items,
			  size_t n, struct pl_post_result *results);

/*
 * Reads a send's optional "reply_to" (a message id, or null) and
 * "attachment_ids" (a list of at most PL_ATTACHMENTS_PER_MESSAGE_MAX ids)
 * from obj, a REST body or a WebSocket "send" frame (borrowed), into item.
 * Returns PL_OK, or PL_BAD_REQUEST with why set.
 */
enum pl_err pl_post_item_extras(const json_t *obj, struct pl_post_item *item,
				char *why, size_t whylen);

/*
 * Parses the deliveries the posting functions return, "[[user_id, seq],
 * ...]", into *out (n of them, freed by the caller). PL_OK, or PL_INTERNAL
 * (malformed, or out of memory) with *out NULL.
 */
enum pl_err pl_post_parse_deliveries(const char *text,
				     struct pl_delivery **out, size_t *n);

/* Frees the deliveries and attachments of results[0..n). */
void pl_post_results_release(struct pl_post_result *results, size_t n);

#endif
