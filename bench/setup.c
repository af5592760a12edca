/*
 * setup: the accounts and conversations a run needs, made before it starts
 * and not measured: through parley-admin (users add, session) when --admin
 * names it, else by REST signup and login (libcurl).
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "banned.h"

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(void *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t len = size * nmemb;
	char *bigger = realloc(b->p, b->n + len + 1);

	if (!bigger)
		return 0;
	b->p = bigger;
	memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
	return len;
}

/*
 * POSTs body (JSON, stolen: freed here, so callers pass json_pack()'s result
 * straight in) to path; returns the parsed answer or NULL.
 */
static json_t *post(CURL *curl, const char *path, json_t *body, const char *token,
		    long *status)
{
	char url[512], auth[1100];
	char *text = json_dumps(body, JSON_COMPACT);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	struct buf b = { NULL, 0 };
	json_t *out = NULL;
	json_error_t jerr;

	snprintf(url, sizeof(url), "%s%s", B.api, path);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	*status = 0;
	if (curl_easy_perform(curl) == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
		out = b.p ? json_loads(b.p, 0, &jerr) : NULL;
	}
	curl_slist_free_all(h);
	free(text);
	free(b.p);
	json_decref(body);
	return out;
}

/* Logs name in over REST: a new device and its token into c. */
static int login(CURL *curl, const char *name, struct client *c)
{
	long status;
	json_t *r = post(curl, "/api/v1/sessions", json_pack("{s:s,s:s}",
			 "username", name, "password", "bench-password"), NULL,
			 &status);

	if (status != 201 || !r) {
		fprintf(stderr, "login %s: HTTP %ld\n", name, status);
		json_decref(r);
		return -1;
	}
	snprintf(c->token, sizeof(c->token), "%s",
		 json_string_value(json_object_get(r, "token")));
	c->user_id = json_integer_value(json_object_get(json_object_get(r, "user"),
							"id"));
	json_decref(r);
	return 0;
}

/* The "sub" claim of a token (base64url JSON between the dots), or 0. */
static long long token_user(const char *token)
{
	static const char *abc =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(token, '.');
	char out[1024];
	size_t n = 0;
	unsigned int acc = 0;
	int bits = 0;
	json_t *o;
	long long sub = 0;

	if (!p)
		return 0;
	for (p++; *p && *p != '.' && n < sizeof(out) - 1; p++) {
		const char *at = strchr(abc, *p);

		if (!at)
			return 0;
		acc = (acc << 6) | (unsigned int)(at - abc);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	o = json_loadb(out, n, 0, NULL);
	sub = json_integer_value(json_object_get(o, "sub"));
	json_decref(o);
	return sub;
}

/*
 * Runs B.admin with -c B.admin_config and args (NULL-terminated); returns
 * its standard output (malloc'd) if it exits 0, else NULL.
 */
static char *run_admin(const char **args, int nargs)
{
	const char **argv = calloc((size_t)nargs + 4, sizeof(*argv));
	struct buf b = { NULL, 0 };
	char chunk[65536];
	int fds[2], status, n = 0;
	ssize_t got;
	pid_t pid;

	if (!argv || pipe(fds)) {
		free(argv);
		return NULL;
	}
	argv[n++] = B.admin;
	if (B.admin_config) {
		argv[n++] = "-c";
		argv[n++] = B.admin_config;
	}
	for (int i = 0; i < nargs; i++)
		argv[n++] = args[i];
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(B.admin, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", B.admin, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	free(argv);
	while ((got = read(fds[0], chunk, sizeof(chunk))) > 0 ||
	       (got < 0 && errno == EINTR))
		if (got > 0)
			on_body(chunk, 1, (size_t)got, &b);
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s %s failed\n", B.admin, args[0]);
		free(b.p);
		return NULL;
	}
	if (!b.p)
		b.p = strdup("");
	return b.p;
}

/*
 * parley-admin: users add, then one session per client (and per storm
 * sender, a second device of each pair's A), tokens one per line.
 */
static int admin_accounts(const char *prefix, int nsenders)
{
	int n = B.clients + nsenders, nargs = 0;
	const char **args = calloc((size_t)n + 16, sizeof(*args));
	char **names = calloc((size_t)B.clients, sizeof(*names));
	char count[24], *out = NULL, *line, *save = NULL;
	int rc = -1, i = 0;

	if (!args || !names)
		goto out;
	snprintf(count, sizeof(count), "%d", B.clients);
	out = run_admin((const char *[]){ "users", "add", "--count", count,
		"--prefix", prefix, "--password", "bench-password" }, 8);
	if (!out)
		goto out;
	fprintf(stderr, "%s", out);
	free(out);
	args[nargs++] = "session";
	for (i = 0; i < B.clients; i++) {
		if (asprintf(&names[i], "%s%d", prefix, i + 1) < 0)
			goto out;
		args[nargs++] = names[i];
	}
	for (i = 0; i < nsenders; i++)
		args[nargs++] = names[2 * i];
	out = run_admin(args, nargs);
	if (!out)
		goto out;
	i = 0;
	for (line = strtok_r(out, "\n", &save); line && i < n;
	     line = strtok_r(NULL, "\n", &save), i++) {
		struct client *c = i < B.clients ? &B.c[i] : &B.senders[i - B.clients];

		snprintf(c->token, sizeof(c->token), "%s", line);
		c->user_id = token_user(line);
	}
	rc = i == n ? 0 : -1;
	if (rc)
		fprintf(stderr, "parley-admin session printed %d of %d tokens\n", i, n);
out:
	for (int j = 0; names && j < B.clients; j++)
		free(names[j]);
	free(names);
	free(args);
	free(out);
	return rc;
}

/*
 * The conversations of B.c's groups of B.group_size (direct ones for 2),
 * made by each group's first member; the storm senders share their A's.
 * Returns 0, or -1 (printed).
 */
static int make_conversations(CURL *curl, int nsenders)
{
	long status;
	int m = B.group_size;

	for (int g = 0; g + m <= B.clients; g += m) {
		json_t *body, *r;

		if (m == 2) {
			body = json_pack("{s:s,s:I}", "kind", "direct", "user_id",
					 (json_int_t)B.c[g + 1].user_id);
		} else {
			json_t *ids = json_array();

			for (int i = g + 1; i < g + m; i++)
				json_array_append_new(ids, json_integer(B.c[i].user_id));
			body = json_pack("{s:s,s:s,s:o}", "kind", "group", "title",
					 "bench", "member_ids", ids);
		}
		r = post(curl, "/api/v1/conversations", body, B.c[g].token, &status);
		if ((status != 201 && status != 200) || !r) {
			fprintf(stderr, "conversation: HTTP %ld\n", status);
			json_decref(r);
			return -1;
		}
		for (int i = g; i < g + m; i++) {
			B.c[i].conversation_id =
				json_integer_value(json_object_get(r, "id"));
			B.c[i].group = g;
		}
		if (g / 2 < nsenders) {
			B.senders[g / 2].conversation_id = B.c[g].conversation_id;
			B.senders[g / 2].group = g;
		}
		json_decref(r);
	}
	return 0;
}

int bench_setup_accounts(void)
{
	CURL *curl = curl_easy_init();
	char name[64], prefix[40];
	long status;
	unsigned int salt = (unsigned int)(bench_now_ns() / 1000) & 0xffffff;
	int storm = strcmp(B.scenario, "storm") == 0;
	int nsenders = storm ? B.clients / 2 : 0;
	long long t0 = bench_now_ns();

	if (!curl)
		return -1;
	snprintf(prefix, sizeof(prefix), "%s%06x", B.prefix, salt);
	if (nsenders && !(B.senders = calloc((size_t)nsenders, sizeof(*B.senders))))
		return -1;
	if (B.admin && admin_accounts(prefix, nsenders))
		return -1;
	for (int i = 0; i < B.clients; i++) {
		struct client *c = &B.c[i];
		json_t *r;

		c->index = i;
		if (B.admin)
			continue;
		snprintf(name, sizeof(name), "%s%d", prefix, i + 1);
		r = post(curl, "/api/v1/users", json_pack("{s:s,s:s}", "username",
			 name, "password", "bench-password"), NULL, &status);
		json_decref(r);
		if (status != 201) {
			fprintf(stderr, "signup %s: HTTP %ld\n", name, status);
			return -1;
		}
		if (login(curl, name, c))
			return -1;
		if (i % 2 == 0 && i / 2 < nsenders &&
		    login(curl, name, &B.senders[i / 2]))
			return -1;
	}
	for (int i = 0; i < nsenders; i++)
		B.senders[i].index = B.clients + i;
	if (strcmp(B.scenario, "idle") != 0 &&
	    make_conversations(curl, nsenders))
		return -1;
	curl_easy_cleanup(curl);
	fprintf(stderr, "accounts: %d users%s%s in %.2f s (%s)\n", B.clients,
		nsenders ? " (and a second device of each A)" : "",
		strcmp(B.scenario, "idle") ? " and their conversations" : "",
		(double)(bench_now_ns() - t0) / 1e9, B.admin ? "parley-admin" : "REST signup");
	return 0;
}

