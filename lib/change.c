#include "change.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_limits.h"
#include "banned.h"

static const char *const kinds[] = {
	[PL_CHANGE_EDIT] = "edit",
	[PL_CHANGE_DELETE] = "delete",
	[PL_CHANGE_REACT] = "react",
	[PL_CHANGE_UNREACT] = "unreact",
};

/* post_event()'s statuses other than "ok" and "noop". */
static const struct {
	const char *status;
	enum pl_err err;
	const char *message;
} refusals[] = {
	{ "not_found", PL_NOT_FOUND,
	  "no such message, or it is not yours to see" },
	{ "forbidden", PL_FORBIDDEN,
	  "only the sender (or, to delete, a group admin) may do this" },
	{ "too_late", PL_FORBIDDEN, "the message is past its edit window" },
	{ "too_many", PL_BAD_REQUEST,
	  "the message has the most distinct reactions a message may have" },
};

static enum pl_err fail(struct pl_change_result *r, enum pl_err err,
			const char *message)
{
	r->err = err;
	snprintf(r->message, sizeof(r->message), "%s", message);
	return err;
}

/* Reads post_event()'s one row into r. */
static enum pl_err read_result(PGresult *res, struct pl_change_result *r)
{
	const char *status = PQgetvalue(res, 0, 0);

	for (size_t k = 0; k < sizeof(refusals) / sizeof(refusals[0]); k++)
		if (strcmp(status, refusals[k].status) == 0)
			return fail(r, refusals[k].err, refusals[k].message);
	if (strcmp(status, "noop") == 0)
		return PL_OK;
	if (strcmp(status, "ok") != 0 || PQgetisnull(res, 0, 1) ||
	    PQgetisnull(res, 0, 2))
		return fail(r, PL_INTERNAL, "internal error");
	r->event = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
	if (!json_is_object(r->event) ||
	    pl_post_parse_deliveries(PQgetvalue(res, 0, 2), &r->deliveries,
				     &r->n_deliveries))
		return fail(r, PL_INTERNAL, "internal error");
	json_object_del(r->event, "seq");
	return PL_OK;
}

enum pl_err pl_change_post(struct pl_db *db, const struct pl_change *c,
			   struct pl_change_result *out)
{
	char uid[24], cid[24], mid[24], window[48], max[24], state[6];
	const char *params[8] = { kinds[c->kind], uid, cid, mid, c->body,
				  c->emoji, window, max };
	PGresult *res = NULL;
	enum pl_err rc = PL_OK;

	memset(out, 0, sizeof(*out));
	snprintf(uid, sizeof(uid), "%lld", c->actor_id);
	snprintf(cid, sizeof(cid), "%lld", c->conversation_id);
	snprintf(mid, sizeof(mid), "%lld", c->message_id);
	snprintf(window, sizeof(window), "%lld seconds", c->edit_window_s);
	snprintf(max, sizeof(max), "%d", PL_REACTIONS_PER_MESSAGE_MAX);
	for (int attempt = 0; attempt < 2; attempt++) {
		/* Not retried on a new connection: an edit that committed with
		 * its answer lost must not be stored twice. */
		rc = pl_db_exec(db, "SELECT status, event, deliveries FROM "
				"post_event($1, $2, $3, $4, $5, $6, "
				"$7::interval, $8)", 8, params, 0, &res, state);
		/* 40P01 deadlock, 40001 serialization: once more. */
		if (rc == PL_UNAVAILABLE && state[0] == '4' && state[1] == '0' &&
		    attempt == 0)
			continue;
		break;
	}
	if (rc == PL_OK)
		rc = read_result(res, out);
	else
		fail(out, rc, rc == PL_UNAVAILABLE ? "the message store is "
		     "unavailable; retry" : "internal error");
	PQclear(res);
	return rc;
}

void pl_change_release(struct pl_change_result *r)
{
	json_decref(r->event);
	free(r->deliveries);
	r->event = NULL;
	r->deliveries = NULL;
	r->n_deliveries = 0;
}
