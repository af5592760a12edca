/*
 * receipt: read markers, the one path both the API (POST .../read) and the
 * relay ("read" frames) use.
 *
 * A member's marker only moves forward and never past the conversation's
 * last message; once stored, a "read" frame goes to every member, so the
 * other members and the reader's other devices see it (doc/protocol.md).
 */
#ifndef PL_RECEIPT_H
#define PL_RECEIPT_H

#include "db.h"
#include "err.h"
#include "redis.h"

/*
 * Marks conversation_id read by user_id up to message_id and publishes the
 * receipt. On PL_OK *upto is the marker now stored and *moved says whether
 * this call moved it: a read that does not move the marker (a repeat, or an
 * older message) writes and publishes nothing. Returns PL_NOT_FOUND when
 * the conversation does not exist or the user is not a member, else what the
 * database answered (PL_UNAVAILABLE, PL_INTERNAL). Publishing failures are
 * not errors: Redis is the fast path only.
 */
enum pl_err pl_receipt_mark_read(struct pl_db *db, struct pl_redis *redis,
				 long long conversation_id, long long user_id,
				 long long message_id, long long *upto, int *moved);

#endif
