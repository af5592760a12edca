/*
 * err: the one table of Parley's error codes.
 *
 * Every error that crosses a module boundary is an enum pl_err. The table
 * below maps each to the HTTP status and the contract's "code" string
 * (doc/protocol.md "Errors"); no other file maps errors to HTTP statuses.
 */
#ifndef PL_ERR_H
#define PL_ERR_H

/* X(NAME, http status, contract code) */
#define PL_ERR_MAP(X)                                  \
	X(BAD_REQUEST, 400, "bad_request")             \
	X(UNAUTHORIZED, 401, "unauthorized")           \
	X(FORBIDDEN, 403, "forbidden")                 \
	X(NOT_FOUND, 404, "not_found")                 \
	X(METHOD_NOT_ALLOWED, 405, "method_not_allowed") \
	X(CONFLICT, 409, "conflict")                   \
	X(TOO_LARGE, 413, "too_large")                 \
	X(RATE_LIMITED, 429, "rate_limited")           \
	X(INTERNAL, 500, "internal")                   \
	X(UNAVAILABLE, 503, "unavailable")

enum pl_err {
	PL_OK = 0,
#define PL_ERR_ENUM(name, status, code) PL_##name,
	PL_ERR_MAP(PL_ERR_ENUM)
#undef PL_ERR_ENUM
	PL_ERR_COUNT_
};

/* Returns the HTTP status for err (200 for PL_OK, 500 for unknown values). */
int pl_err_http_status(enum pl_err err);

/*
 * Returns the contract's code string for err ("ok" for PL_OK, "internal" for
 * unknown values). The string is static.
 */
const char *pl_err_code(enum pl_err err);

/*
 * Looks up a contract code string. Returns 0 and sets *out on success, -1 if
 * code names no error.
 */
int pl_err_from_code(const char *code, enum pl_err *out);

#endif
