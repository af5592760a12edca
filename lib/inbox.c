#include "inbox.h"

#include <stdio.h>

#include "banned.h"

static const char page_sql[] =
	"SELECT i.seq, " PL_INBOX_EVENT_OUT " FROM "
	PL_INBOX_PAGE_FROM " ORDER BY i.seq";

enum pl_err pl_inbox_page(struct pl_db *db, long long user_id,
			  long long after, long long limit, PGresult **res)
{
	char uid[24], a[24], lim[24];
	const char *params[3] = { uid, a, lim };

	snprintf(uid, sizeof(uid), "%lld", user_id);
	snprintf(a, sizeof(a), "%lld", after);
	snprintf(lim, sizeof(lim), "%lld", limit);
	return pl_db_exec(db, page_sql, 3, params, 1, res, NULL);
}
