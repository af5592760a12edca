/*
 * inbox: the reads of a user's inbox (doc/architecture.md "How a message
 * flows", step 6): the events after a seq, in seq order, at most a limit.
 * One definition serves the three readers: the relay's replay and gap fill
 * (which long-poll and SSE answer from too) and GET /sync.
 *
 * Every statement takes the same parameters: $1 the user id, $2 the seq to
 * read after, $3 the most events to read.
 */
#ifndef PL_INBOX_H
#define PL_INBOX_H

#include <libpq-fe.h>

#include "db.h"
#include "err.h"

/*
 * The page of the inbox, its rows as i, each with its message as m.msg (a
 * messages row) and, for an edit, deletion or reaction (sql/014), its event
 * as e.ev (else NULL); a row whose message is gone is left out. messages is
 * hash-partitioned by conversation (sql/012) and a page names many, so each
 * row's message is read on its own (LATERAL), pruned to its partition as it
 * runs. LIMIT 1, which the key implies, also tells the planner that a read
 * costs one partition's, not all of them: as a join, the page would rather
 * hash all of messages.
 */
#define PL_INBOX_PAGE_FROM \
	"(SELECT * FROM inbox WHERE user_id = $1 AND seq > $2 ORDER BY seq " \
	"LIMIT $3) i CROSS JOIN LATERAL (SELECT m AS msg FROM messages m " \
	"WHERE m.conversation_id = i.conversation_id AND m.message_id = " \
	"i.message_id LIMIT 1) m LEFT JOIN LATERAL (SELECT e AS ev FROM " \
	"message_events e WHERE i.event_id IS NOT NULL AND e.id = i.event_id) e " \
	"ON true"

/*
 * One row of the page as its inbox event (doc/protocol.md "Inbox event
 * kinds"): {"type": "message", "seq", ...the message as the user sees it}
 * or the edit, delete or reaction event.
 */
#define PL_INBOX_EVENT_OUT \
	"CASE WHEN i.event_id IS NULL THEN message_out(m.msg, $1::bigint, " \
	"i.seq) ELSE event_out(e.ev, i.seq, (m.msg).sender_id) END"

/*
 * GET /sync's answer in one row and column: {"events": [{type, seq, ...}],
 * "cursor": the last seq read, else $2} (doc/protocol.md "REST": /sync).
 */
#define PL_INBOX_SYNC_SQL \
	"SELECT json_build_object('events', coalesce(json_agg(" \
	PL_INBOX_EVENT_OUT " ORDER BY i.seq), '[]'), 'cursor', " \
	"coalesce(max(i.seq), $2)) FROM " PL_INBOX_PAGE_FROM

/*
 * Reads one page of user_id's inbox after seq `after`, at most limit rows,
 * each row (seq, the relay's "message" frame as JSON text), in seq order.
 * On PL_OK *res holds the rows and the caller PQclear()s it; else the error
 * of pl_db_exec() and *res is NULL.
 */
enum pl_err pl_inbox_page(struct pl_db *db, long long user_id,
			  long long after, long long limit, PGresult **res);

#endif
