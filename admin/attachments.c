/*
 * parley-admin attachments prune [--older-than SECONDS]: removes the
 * uploads no message posted within SECONDS (default 86400) of their upload,
 * their rows first and then their files and thumbnails, and the temporary
 * files of uploads that never finished. Meant for cron (doc/deploying.md
 * "Attachments").
 *
 * A row goes in a DELETE that takes only unposted rows: a send claiming the
 * same upload at that moment either wins (it holds the row, and the DELETE,
 * rechecking after the lock, leaves it) or finds it gone and is answered
 * 400. Files are unlinked only after their rows are gone, so a file is
 * never missing under a row a message lists.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"
#include "banned.h"

/* Rows removed per statement, to keep each transaction short. */
#define PRUNE_BATCH "1000"

/* The largest --older-than: ten years. */
#define MAX_AGE_S 315360000

/* A temporary file left this long is of an upload that died. */
#define TMP_STALE_S 3600

static const char PRUNE_SQL[] =
	"DELETE FROM attachments WHERE id IN (SELECT id FROM attachments "
	"WHERE message_id IS NULL AND "
	"created_at < now() - $1::float8 * interval '1 second' "
	"ORDER BY created_at LIMIT " PRUNE_BATCH ") AND message_id IS NULL "
	"RETURNING id, storage, size, thumb_width IS NOT NULL";

/* Unlinks dir/name; a file already gone is no error. Returns 0 or -1. */
static int remove_file(const char *dir, const char *name, const char *suffix)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s%s", dir, name, suffix);
	if (unlink(path) == 0 || errno == ENOENT)
		return 0;
	pl_log_errno(PL_LOG_WARN, "admin: cannot remove '%s'", path);
	return -1;
}

/*
 * Removes the unposted uploads older than older_than_s seconds and their
 * files, printing each. Returns 0, or 1 when the database failed or a
 * file could not be removed (said).
 */
static int prune_rows(struct admin *a, long long older_than_s,
		      long long *count, long long *bytes)
{
	char secs[24];
	const char *params[] = { secs };
	int status = 0, n;

	snprintf(secs, sizeof(secs), "%lld", older_than_s);
	do {
		PGresult *res;

		if (pl_db_exec(&a->db, PRUNE_SQL, 1, params, 0, &res, NULL)) {
			fprintf(stderr, "parley-admin: cannot prune attachments: "
				"PostgreSQL failed\n");
			return 1;
		}
		n = PQntuples(res);
		for (int i = 0; i < n; i++) {
			const char *storage = PQgetvalue(res, i, 1);

			if (remove_file(a->cfg.attachments_dir, storage, ""))
				status = 1;
			if (PQgetvalue(res, i, 3)[0] == 't' &&
			    remove_file(a->cfg.attachments_dir, storage, ".thumb"))
				status = 1;
			printf("removed attachment %s: %s (%s bytes)\n",
			       PQgetvalue(res, i, 0), storage,
			       PQgetvalue(res, i, 2));
			*bytes += strtoll(PQgetvalue(res, i, 2), NULL, 10);
		}
		*count += n;
		PQclear(res);
	} while (n > 0);
	return status;
}

/*
 * Removes the files of dir/tmp untouched for TMP_STALE_S seconds (an upload
 * in progress writes its file as the body arrives). Returns 0, or 1 when
 * one could not be removed (said).
 */
static int prune_tmp(const char *dir, long long *count)
{
	char tmp[4096];
	struct dirent *e;
	time_t now = time(NULL);
	int status = 0;
	DIR *d;

	snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
	d = opendir(tmp);
	if (!d) {
		if (errno == ENOENT)
			return 0;	/* nothing was ever uploaded */
		pl_log_errno(PL_LOG_WARN, "admin: cannot read '%s'", tmp);
		return 1;
	}
	while ((e = readdir(d))) {
		struct stat st;
		char path[4096 + 256];

		snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
		if (e->d_name[0] == '.' || lstat(path, &st) != 0 ||
		    !S_ISREG(st.st_mode) || now - st.st_mtime < TMP_STALE_S)
			continue;
		if (remove_file(tmp, e->d_name, "")) {
			status = 1;
			continue;
		}
		printf("removed temporary file tmp/%s\n", e->d_name);
		(*count)++;
	}
	closedir(d);
	return status;
}

/* attachments prune [--older-than SECONDS] */
int admin_cmd_attachments(struct admin *a, int argc, char **argv)
{
	long long older_than = 86400, count = 0, bytes = 0, tmp = 0;
	char *end;
	int status;

	if (argc < 2 || strcmp(argv[1], "prune") != 0) {
		fprintf(stderr, "parley-admin: usage: attachments prune "
			"[--older-than SECONDS]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--older-than") == 0 && i + 1 < argc) {
			errno = 0;
			older_than = strtoll(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || older_than < 0 ||
			    older_than > MAX_AGE_S) {
				fprintf(stderr, "parley-admin: --older-than "
					"takes seconds, 0 to %d\n", MAX_AGE_S);
				return 2;
			}
		} else {
			fprintf(stderr, "parley-admin: usage: attachments prune "
				"[--older-than SECONDS]\n");
			return 2;
		}
	}
	status = prune_rows(a, older_than, &count, &bytes);
	if (prune_tmp(a->cfg.attachments_dir, &tmp))
		status = 1;
	printf("pruned %lld unposted attachments (%lld bytes) and %lld "
	       "temporary files\n", count, bytes, tmp);
	return status;
}
