/*
 * Checks doc/api/openapi.yaml against the route table, fcgi/routes.c: every
 * row of the table is documented (its path and, under it, its method), and
 * the document names no path or method that the table lacks.
 *
 * Both files are read as text: routes.c references every handler, so it
 * cannot be linked into a unit test. From routes.c come the rows
 * `{ "METHOD", V1 "/path", ...` of api_routes[] (V1 is "/api/v1"; adjacent
 * string literals are joined), comments blanked first. From the YAML come
 * the path keys at two spaces' indentation under the top-level `paths:`
 * (`  /api/v1/...:`) and the method keys at four under each (`    get:`).
 * A `{...}` segment matches any `{...}` segment: the table says `{id}`, the
 * document names its parameters (`{conversation_id}`).
 *
 * Compile with -DPL_OPENAPI='"path/to/doc/api/openapi.yaml"' and
 * -DPL_ROUTES_C='"path/to/fcgi/routes.c"'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PL_OPENAPI
#error "define PL_OPENAPI as the quoted path of doc/api/openapi.yaml"
#endif
#ifndef PL_ROUTES_C
#error "define PL_ROUTES_C as the quoted path of fcgi/routes.c"
#endif

#define MAX_FILE_BYTES (1024 * 1024)
#define MAX_OPS 256
#define PATH_BYTES 256
#define METHOD_BYTES 16
#define ERR_BYTES 512
#define V1_PREFIX "/api/v1"

/* The methods an OpenAPI path item can hold, as its keys spell them. */
static const char *const yaml_methods[] = {
	"get", "put", "post", "delete", "options", "head", "patch", "trace",
};

struct op {
	char method[METHOD_BYTES];	/* upper case, "GET"; "" for a bare path */
	char path[PATH_BYTES];		/* as written */
	char shape[PATH_BYTES];		/* path with every {...} segment as {} */
	int line;			/* 1-based line where it is written */
};

struct op_list {
	struct op ops[MAX_OPS];
	size_t n;
};

/* What both tests compare; each test loads its own copy. */
struct model {
	struct op_list table;		/* the rows of routes.c */
	struct op_list doc_ops;		/* the (path, method) pairs of the YAML */
	struct op_list doc_paths;	/* the path keys of the YAML */
};

/*
 * Reads the whole file at path into a new NUL-terminated buffer (the caller
 * frees it). Returns NULL, with the reason in err, when it cannot be read or
 * is over MAX_FILE_BYTES.
 */
static char *read_text(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t len = 0;
	int failed, too_big;

	if (!f) {
		snprintf(err, errlen, "cannot open '%s'", path);
		return NULL;
	}
	buf = malloc(MAX_FILE_BYTES + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "out of memory reading '%s'", path);
		return NULL;
	}
	for (;;) {
		size_t got = fread(buf + len, 1, MAX_FILE_BYTES - len, f);

		len += got;
		if (got == 0 || len == MAX_FILE_BYTES)
			break;
	}
	too_big = len == MAX_FILE_BYTES && fgetc(f) != EOF;
	failed = ferror(f);
	fclose(f);
	if (failed || too_big) {
		free(buf);
		snprintf(err, errlen, "cannot read '%s'%s", path,
			 too_big ? ": too large" : "");
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* The 1-based line number of position at in text. */
static int line_of(const char *text, const char *at)
{
	int line = 1;

	for (const char *p = text; p < at; p++)
		if (*p == '\n')
			line++;
	return line;
}

/*
 * Writes path into out (outlen bytes) with every whole `{...}` segment
 * replaced by `{}`, so "/a/{id}/b" and "/a/{conversation_id}/b" compare
 * equal. A longer result is cut, which only makes a comparison fail.
 */
static void path_shape(const char *path, char *out, size_t outlen)
{
	const char *p = path;
	size_t o = 0;

	while (*p && o + 1 < outlen) {
		if (*p == '{' && (p == path || p[-1] == '/')) {
			size_t n = strcspn(p, "}/");

			if (p[n] == '}' && (p[n + 1] == '/' || p[n + 1] == '\0') &&
			    o + 2 < outlen) {
				out[o++] = '{';
				out[o++] = '}';
				p += n + 1;
				continue;
			}
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
}

/*
 * Appends (method, path) to l, the method upper-cased. Returns 0, or -1 with
 * the reason in err when l is full or a string is too long.
 */
static int add_op(struct op_list *l, const char *method, size_t method_len,
		  const char *path, size_t path_len, int line, char *err,
		  size_t errlen)
{
	struct op *o;

	if (l->n == MAX_OPS) {
		snprintf(err, errlen, "line %d: more than %d entries", line,
			 MAX_OPS);
		return -1;
	}
	if (method_len >= METHOD_BYTES || path_len >= PATH_BYTES) {
		snprintf(err, errlen, "line %d: method or path too long", line);
		return -1;
	}
	o = &l->ops[l->n++];
	for (size_t i = 0; i < method_len; i++)
		o->method[i] = (char)toupper((unsigned char)method[i]);
	o->method[method_len] = '\0';
	memcpy(o->path, path, path_len);
	o->path[path_len] = '\0';
	path_shape(o->path, o->shape, sizeof(o->shape));
	o->line = line;
	return 0;
}

/* Returns the first entry of l with method (any, if NULL) and shape, or NULL. */
static const struct op *find_op(const struct op_list *l, const char *method,
				const char *shape)
{
	for (size_t i = 0; i < l->n; i++)
		if ((!method || strcmp(l->ops[i].method, method) == 0) &&
		    strcmp(l->ops[i].shape, shape) == 0)
			return &l->ops[i];
	return NULL;
}

/* routes.c ---------------------------------------------------------------- */

/* Returns the position after the string or character literal at p. */
static char *skip_literal(char *p)
{
	char quote = *p++;

	while (*p && *p != quote) {
		if (*p == '\\' && p[1])
			p++;
		p++;
	}
	return *p ? p + 1 : p;
}

/* Overwrites C comments in s with spaces, keeping newlines and literals. */
static void blank_comments(char *s)
{
	char *p = s;

	while (*p) {
		if (*p == '"' || *p == '\'') {
			p = skip_literal(p);
		} else if (p[0] == '/' && p[1] == '*') {
			while (*p && !(p[0] == '*' && p[1] == '/')) {
				if (*p != '\n')
					*p = ' ';
				p++;
			}
			if (*p) {
				p[0] = ' ';
				p[1] = ' ';
				p += 2;
			}
		} else if (p[0] == '/' && p[1] == '/') {
			while (*p && *p != '\n')
				*p++ = ' ';
		} else {
			p++;
		}
	}
}

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/*
 * Appends the contents of the string literal at p (a '"') to out at *used
 * (outlen bytes in all). Returns the position after it, or NULL when it is
 * unterminated or does not fit.
 */
static const char *read_literal(const char *p, char *out, size_t outlen,
				size_t *used)
{
	for (p++; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (*used + 1 >= outlen)
			return NULL;
		out[(*used)++] = *p;
	}
	out[*used] = '\0';
	return *p ? p + 1 : NULL;
}

/*
 * Parses the route row `{ "METHOD", V1 "/path" ...,` that starts at p (a
 * '{'). Returns 1 with method and path filled, 0 when p starts anything
 * else.
 */
static int parse_row(const char *p, char *method, size_t method_len,
		     char *path, size_t path_len)
{
	size_t used = 0;

	p = skip_space(p + 1);
	if (*p != '"')
		return 0;
	p = read_literal(p, method, method_len, &used);
	if (!p || used == 0)
		return 0;
	for (size_t i = 0; i < used; i++)
		if (!isupper((unsigned char)method[i]))
			return 0;
	p = skip_space(p);
	if (*p != ',')
		return 0;
	p = skip_space(p + 1);
	used = 0;
	path[0] = '\0';
	for (;;) {
		if (strncmp(p, "V1", 2) == 0 && !isalnum((unsigned char)p[2]) &&
		    p[2] != '_') {
			int w = snprintf(path + used, path_len - used, "%s",
					 V1_PREFIX);

			if (w < 0 || (size_t)w >= path_len - used)
				return 0;
			used += (size_t)w;
			p = skip_space(p + 2);
		} else if (*p == '"') {
			p = read_literal(p, path, path_len, &used);
			if (!p)
				return 0;
			p = skip_space(p);
		} else {
			break;
		}
	}
	return *p == ',' && path[0] == '/';
}

/*
 * Collects the rows of api_routes[] in the text of routes.c (modified:
 * comments are blanked). Returns 0, or -1 with the reason in err.
 */
static int parse_routes(char *text, struct op_list *l, char *err,
			size_t errlen)
{
	char *p;
	int depth = 1;

	blank_comments(text);
	p = strstr(text, "api_routes[]");
	if (p)
		p = strchr(p, '=');
	if (p)
		p = strchr(p, '{');
	if (!p) {
		snprintf(err, errlen, "%s: no 'api_routes[] = {' table",
			 PL_ROUTES_C);
		return -1;
	}
	for (p++; *p && depth > 0;) {
		char method[METHOD_BYTES], path[PATH_BYTES];

		if (*p == '"' || *p == '\'') {
			p = skip_literal(p);
			continue;
		}
		if (*p == '{') {
			if (depth == 1 && parse_row(p, method, sizeof(method),
						    path, sizeof(path)) &&
			    add_op(l, method, strlen(method), path, strlen(path),
				   line_of(text, p), err, errlen))
				return -1;
			depth++;
		} else if (*p == '}') {
			depth--;
		}
		p++;
	}
	if (depth > 0) {
		snprintf(err, errlen, "%s: api_routes[] is not closed",
			 PL_ROUTES_C);
		return -1;
	}
	return 0;
}

/* openapi.yaml ------------------------------------------------------------ */

static int is_yaml_method(const char *word, size_t len)
{
	for (size_t i = 0; i < sizeof(yaml_methods) / sizeof(yaml_methods[0]);
	     i++)
		if (strlen(yaml_methods[i]) == len &&
		    strncmp(yaml_methods[i], word, len) == 0)
			return 1;
	return 0;
}

/*
 * Reads one line of the paths section, len bytes without the newline and
 * trailing blanks: a path key (two spaces' indentation) becomes the current
 * path; a method key under it (four) is recorded. Returns 0, or -1 with the
 * reason in err.
 */
static int yaml_paths_line(const char *line, size_t len, int line_no,
			   struct model *m, const char **cur, size_t *cur_len,
			   char *err, size_t errlen)
{
	size_t indent = strspn(line, " ");

	if (indent == 2) {
		const char *key = line + 2;
		size_t key_len = len - 2;

		*cur = NULL;
		if (key[0] != '/' && key[0] != '"' && key[0] != '\'')
			return 0;	/* an extension key, "x-...:" */
		if (key_len < 2 || key[key_len - 1] != ':') {
			snprintf(err, errlen, "%s:%d: a path key must be "
				 "written alone, as '  /path:'", PL_OPENAPI,
				 line_no);
			return -1;
		}
		key_len--;
		if (key[0] == '"' || key[0] == '\'') {
			if (key_len < 2 || key[key_len - 1] != key[0]) {
				snprintf(err, errlen, "%s:%d: unbalanced quotes",
					 PL_OPENAPI, line_no);
				return -1;
			}
			key++;
			key_len -= 2;
		}
		*cur = key;
		*cur_len = key_len;
		return add_op(&m->doc_paths, "", 0, key, key_len, line_no, err,
			      errlen);
	}
	if (indent == 4 && *cur) {
		const char *word = line + 4;
		size_t word_len = strspn(word, "abcdefghijklmnopqrstuvwxyz");

		if (word_len < len - 4 && word[word_len] == ':' &&
		    is_yaml_method(word, word_len))
			return add_op(&m->doc_ops, word, word_len, *cur,
				      *cur_len, line_no, err, errlen);
	}
	return 0;
}

/*
 * Collects the path keys and their method keys under the top-level
 * `paths:` of the YAML text. Returns 0, or -1 with the reason in err.
 */
static int parse_yaml(const char *text, struct model *m, char *err,
		      size_t errlen)
{
	const char *line = text, *cur = NULL;
	size_t cur_len = 0;
	int line_no = 0, in_paths = 0, saw_paths = 0;

	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		size_t indent;

		line_no++;
		while (len > 0 && (line[len - 1] == '\r' ||
				   line[len - 1] == ' ' || line[len - 1] == '\t'))
			len--;
		indent = strspn(line, " ");
		if (len > indent && line[indent] != '#') {
			if (indent == 0) {
				in_paths = len == 6 && strncmp(line, "paths:", 6) == 0;
				saw_paths |= in_paths;
				cur = NULL;
			} else if (in_paths &&
				   yaml_paths_line(line, len, line_no, m, &cur,
						   &cur_len, err, errlen)) {
				return -1;
			}
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	if (!saw_paths) {
		snprintf(err, errlen, "%s: no top-level 'paths:'", PL_OPENAPI);
		return -1;
	}
	return 0;
}

/*
 * Reads and parses both files into a new model (the caller frees it).
 * Returns NULL with the reason in err.
 */
static struct model *load_model(char *err, size_t errlen)
{
	struct model *m = calloc(1, sizeof(*m));
	char *routes = NULL, *yaml = NULL;
	int rc = -1;

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	routes = read_text(PL_ROUTES_C, err, errlen);
	if (!routes)
		goto out;
	yaml = read_text(PL_OPENAPI, err, errlen);
	if (!yaml)
		goto out;
	if (parse_routes(routes, &m->table, err, errlen) ||
	    parse_yaml(yaml, m, err, errlen))
		goto out;
	if (m->table.n == 0) {
		snprintf(err, errlen, "%s: no route rows found", PL_ROUTES_C);
		goto out;
	}
	rc = 0;
out:
	free(routes);
	free(yaml);
	if (rc) {
		free(m);
		return NULL;
	}
	return m;
}

/* Tests ------------------------------------------------------------------- */

static void test_openapi_documents_every_route(void **state)
{
	char err[ERR_BYTES];
	struct model *m = load_model(err, sizeof(err));
	size_t missing = 0, routes;

	(void)state;
	if (!m)
		fail_msg("%s", err);
	routes = m->table.n;
	for (size_t i = 0; i < m->table.n; i++) {
		const struct op *r = &m->table.ops[i];

		if (find_op(&m->doc_ops, r->method, r->shape))
			continue;
		print_error("%s:%d: route %s %s is not documented in %s (no "
			    "path '%s' with a '%s' key under it)\n",
			    PL_ROUTES_C, r->line, r->method, r->path,
			    PL_OPENAPI, r->shape, r->method);
		missing++;
	}
	free(m);
	if (missing)
		fail_msg("%zu of %zu routes are not documented", missing,
			 routes);
}

static void test_openapi_documents_no_unknown_route(void **state)
{
	char err[ERR_BYTES];
	struct model *m = load_model(err, sizeof(err));
	size_t unknown = 0;

	(void)state;
	if (!m)
		fail_msg("%s", err);
	for (size_t i = 0; i < m->doc_paths.n; i++) {
		const struct op *d = &m->doc_paths.ops[i];

		if (find_op(&m->table, NULL, d->shape))
			continue;
		print_error("%s:%d: path %s is not in the route table of %s\n",
			    PL_OPENAPI, d->line, d->path, PL_ROUTES_C);
		unknown++;
	}
	for (size_t i = 0; i < m->doc_ops.n; i++) {
		const struct op *d = &m->doc_ops.ops[i];

		if (find_op(&m->table, d->method, d->shape) ||
		    !find_op(&m->table, NULL, d->shape))
			continue;	/* known, or reported as a path above */
		print_error("%s:%d: %s %s is not in the route table of %s\n",
			    PL_OPENAPI, d->line, d->method, d->path,
			    PL_ROUTES_C);
		unknown++;
	}
	free(m);
	if (unknown)
		fail_msg("%zu documented paths or methods are not routes",
			 unknown);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openapi_documents_every_route),
		cmocka_unit_test(test_openapi_documents_no_unknown_route),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
