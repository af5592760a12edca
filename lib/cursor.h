/*
 * cursor: devices' stored cursors (doc/architecture.md "How a message flows",
 * step 6), written the same way by /sync and by the relay's acks, long-polls
 * and SSE streams.
 */
#ifndef PL_CURSOR_H
#define PL_CURSOR_H

#include <stddef.h>

#include "db.h"
#include "err.h"

struct pl_cursor {
	long long user_id;
	long long device_id;
	long long seq;
};

/*
 * Stores cursors[0..n) in one statement. Each only moves forward and never
 * past its user's newest seq; a device listed twice keeps the higher seq.
 * Returns PL_OK, or PL_UNAVAILABLE / PL_INTERNAL from the database.
 */
enum pl_err pl_cursor_store(struct pl_db *db, const struct pl_cursor *cursors,
			    size_t n);

#endif
