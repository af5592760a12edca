#include "err.h"

#include <string.h>
#include "banned.h"

static const struct {
	int status;
	const char *code;
} table[PL_ERR_COUNT_] = {
	[PL_OK] = { 200, "ok" },
#define PL_ERR_ROW(name, st, cd) [PL_##name] = { st, cd },
	PL_ERR_MAP(PL_ERR_ROW)
#undef PL_ERR_ROW
};

int pl_err_http_status(enum pl_err err)
{
	if ((int)err < 0 || err >= PL_ERR_COUNT_)
		return 500;
	return table[err].status;
}

const char *pl_err_code(enum pl_err err)
{
	if ((int)err < 0 || err >= PL_ERR_COUNT_)
		return "internal";
	return table[err].code;
}

int pl_err_from_code(const char *code, enum pl_err *out)
{
	for (int i = 0; i < PL_ERR_COUNT_; i++) {
		if (strcmp(table[i].code, code) == 0) {
			*out = (enum pl_err)i;
			return 0;
		}
	}
	return -1;
}
