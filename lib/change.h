/*
 * change: what happens to a stored message after it is sent (doc/protocol.md
 * "Edits, deletions and reactions"): an edit, a deletion, a reaction added
 * or removed. Each is one call of post_event() (sql/014), which stores it as
 * an inbox event with its own seq for every member who receives it, under
 * the posting path's locks in the posting path's order (the conversation's
 * row, then the members' heads by user id), so every user's seqs stay
 * gapless and committed in order. The caller publishes the event after
 * this returns (pl_publish_event()), never before; nothing is pushed.
 */
#ifndef PL_CHANGE_H
#define PL_CHANGE_H

#include <jansson.h>
#include <stddef.h>

#include "db.h"
#include "err.h"
#include "post.h"

enum pl_change_kind {
	PL_CHANGE_EDIT,		/* body: the new body */
	PL_CHANGE_DELETE,
	PL_CHANGE_REACT,	/* emoji */
	PL_CHANGE_UNREACT,	/* emoji */
};

struct pl_change {
	enum pl_change_kind kind;
	long long actor_id;
	long long conversation_id;
	long long message_id;
	const char *body;		/* PL_CHANGE_EDIT; borrowed, validated */
	const char *emoji;		/* reactions; borrowed, validated */
	long long edit_window_s;	/* [messages] edit_window */
};

struct pl_change_result {
	/*
	 * PL_OK (stored, or nothing to change: event NULL), PL_NOT_FOUND (no
	 * such message, deleted, not a member, or its sender is blocked by
	 * the actor), PL_FORBIDDEN (not the sender or a group admin, or past
	 * the edit window), PL_BAD_REQUEST (the most distinct emoji already),
	 * PL_UNAVAILABLE or PL_INTERNAL.
	 */
	enum pl_err err;
	char message[160];		/* why, when err != PL_OK */
	json_t *event;			/* owned: the event without "seq" */
	struct pl_delivery *deliveries;	/* owned, n_deliveries of them */
	size_t n_deliveries;
};

/*
 * Stores change c in one transaction; a deadlock or serialization failure
 * runs it once more. Returns out->err, which the caller releases with
 * pl_change_release() whatever this returns.
 */
enum pl_err pl_change_post(struct pl_db *db, const struct pl_change *c,
			   struct pl_change_result *out);

void pl_change_release(struct pl_change_result *r);

#endif
