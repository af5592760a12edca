/*
 * admin.h: what parley-admin's commands share (admin/main.c runs them,
 * admin/user.c holds "user", admin/stats.c "stats", admin/attachments.c
 * "attachments").
 */
#ifndef PL_ADMIN_H
#define PL_ADMIN_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "password.h"

/* What every command gets: the configuration and a lazy connection. */
struct admin {
	struct pl_config cfg;
	struct pl_db db;
};

/*
 * A command's handler: argv[0] is the command's name, the rest its own
 * arguments. Returns the exit status (2 for a usage error, printed).
 */
typedef int (*admin_cmd_fn)(struct admin *a, int argc, char **argv);

/* Runs a script of several statements (what names it in messages). 0 or -1. */
int admin_exec(PGconn *conn, const char *sql, const char *what);

/*
 * The password of a command taking --password PW (password), --password-file
 * PATH (file) or --password-stdin (from_stdin), at most one of them: *out
 * is PW, or buf holding the file's or standard input's first line, or NULL
 * when none was given. Returns 0, or 2 (printed).
 */
int admin_password_option(const char *password, const char *file,
			  int from_stdin, char *buf, size_t buflen,
			  const char **out);

/*
 * hash: password's hash with the [auth] settings, once it passes the rules
 * a signup's password must. Returns 0, 2 (refused, printed) or 1.
 */
int admin_hash_password(const struct pl_config *cfg, const char *password,
			char hash[PL_PASSWORD_HASH_BYTES]);

/* stats [--window SECONDS] (admin/stats.c). */
int admin_cmd_stats(struct admin *a, int argc, char **argv);

/* attachments prune [--older-than SECONDS] (admin/attachments.c). */
int admin_cmd_attachments(struct admin *a, int argc, char **argv);

/* user revoke|disable|enable|reset-password USER [...] (admin/user.c). */
int admin_cmd_user(struct admin *a, int argc, char **argv);

/* user export|delete USER [...] (admin/account.c), from admin_cmd_user. */
int admin_cmd_account(struct admin *a, int argc, char **argv);

/*
 * Every live session of the user $1 revoked and its device's push token
 * cleared, returning (session id, device id) rows; then, after COMMIT,
 * admin_publish_revokes() tells the relays to close their sockets now.
 */
extern const char ADMIN_REVOKE_SQL[];
void admin_publish_revokes(const struct pl_config *cfg, PGresult *res);

#define ADMIN_USER_HELP \
	"  user revoke USER\n" \
	"      end every session of USER: their tokens stop working on REST at\n" \
	"      once, their sockets are closed, their phones get no more pushes\n" \
	"  user disable USER\n" \
	"      revoke as above, and refuse USER's logins (403 forbidden)\n" \
	"  user enable USER\n" \
	"      let USER log in again\n" \
	"  user reset-password USER\n" \
	"            [--password PW | --password-file PATH | --password-stdin]\n" \
	"      a new password for USER (a random one is printed when none is\n" \
	"      given), and revoke as above: every device logs in again\n" \
	"  user export USER\n" \
	"      USER's data as one JSON document on standard output: profile,\n" \
	"      devices, sessions, friends, blocks, conversations, reactions,\n" \
	"      uploads and every message they sent\n" \
	"  user delete USER [--erase-messages]\n" \
	"      end the account: revoked as above, its devices, friends,\n" \
	"      blocks, reactions and memberships gone, the name free again;\n" \
	"      the messages it sent stay, from \"Deleted account\", unless\n" \
	"      --erase-messages deletes them first\n"

#endif
