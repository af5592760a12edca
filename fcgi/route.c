#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "banned.h"

/*
 * Matches one pattern against path. "{id}" matches a positive decimal
 * integer segment, "{text}" any segment that is not empty (the handler reads
 * it from the path). Returns 1 on a match, with the ids in params.
 */
static int match(const char *pattern, const char *path, long long *params,
		 int *nparams)
{
	const char *p = pattern, *s = path;
	int np = 0;

	while (*p && *s) {
		if (strncmp(p, "{text}", 6) == 0) {
			const char *start = s;

			while (*s && *s != '/')
				s++;
			if (s == start)
				return 0;
			p += 6;
			continue;
		}
		if (strncmp(p, "{id}", 4) == 0) {
			const char *start = s;
			long long v = 0;

			while (*s >= '0' && *s <= '9') {
				if (v > (0x7fffffffffffffffLL - 9) / 10)
					return 0;
				v = v * 10 + (*s - '0');
				s++;
			}
			if (s == start || v <= 0 || np == API_MAX_PARAMS)
				return 0;
			params[np++] = v;
			p += 4;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*p || *s)
		return 0;
	*nparams = np;
	return 1;
}

enum pl_err api_route_find(const struct api_route *table, size_t n,
			   const char *method, const char *path,
			   const struct api_route **route, long long *params,
			   int *nparams, char *allow, size_t allowlen)
{
	int path_exists = 0;
	size_t used = 0;

	if (allowlen)
		allow[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		long long p[API_MAX_PARAMS];
		int np;

		if (!match(table[i].pattern, path, p, &np))
			continue;
		if (strcmp(table[i].method, method) == 0) {
			*route = &table[i];
			memcpy(params, p, sizeof(p));
			*nparams = np;
			return PL_OK;
		}
		path_exists = 1;
		if (used < allowlen) {
			int w = snprintf(allow + used, allowlen - used, "%s%s",
					 used ? ", " : "", table[i].method);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	return path_exists ? PL_METHOD_NOT_ALLOWED : PL_NOT_FOUND;
}
