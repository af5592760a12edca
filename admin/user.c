/*
 * parley-admin user: what an operator does to one account.
 *
 *   parley-admin [-c FILE] user revoke USER
 *   parley-admin [-c FILE] user disable USER
 *   parley-admin [-c FILE] user enable USER
 *   parley-admin [-c FILE] user reset-password USER
 *                [--password PW | --password-file PATH | --password-stdin]
 *   parley-admin [-c FILE] user export|delete USER (admin/account.c)
 *
 * revoke ends every session of USER as a logout ends one (fcgi/auth.c):
 * revoked in PostgreSQL, which every request and every relay checks, the
 * devices' push tokens cleared, and the relays told on Redis to close the
 * sockets now (without Redis, they close them at their next session check).
 * disable also refuses USER's logins (403) until enable; reset-password sets
 * a new password (a random one, printed, when none is given) and revokes as
 * well. The account's change and the revocation are one transaction, the
 * change first: a login racing it (which reads the user's row FOR SHARE and
 * checks it again) either made its session before, and is revoked, or
 * makes none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "publish.h"
#include "redis.h"
#include "banned.h"

/* What each subcommand changes in users first ($1 the username). */
static const struct user_action {
	const char *name;
	const char *sql;	/* returns the user's id, or no row */
	int revoke;		/* then end every session */
	int password;		/* $2 is a new password hash */
} actions[] = {
	{ "revoke", "SELECT id FROM users WHERE username = $1", 1, 0 },
	{ "disable", "UPDATE users SET disabled_at = coalesce(disabled_at, "
	  "now()) WHERE username = $1 RETURNING id", 1, 0 },
	{ "enable", "UPDATE users SET disabled_at = NULL WHERE username = $1 "
	  "RETURNING id", 0, 0 },
	{ "reset-password", "UPDATE users SET password_hash = $2 WHERE "
	  "username = $1 RETURNING id", 1, 1 },
};

#define NACTIONS (sizeof(actions) / sizeof(actions[0]))

const char ADMIN_REVOKE_SQL[] =
	"WITH s AS (UPDATE sessions SET revoked_at = now() WHERE user_id = $1 "
	"  AND revoked_at IS NULL RETURNING id, device_id), "
	"d AS (UPDATE devices SET push_token = NULL, push_token_set_at = now() "
	"  WHERE id IN (SELECT device_id FROM s) AND push_token IS NOT NULL) "
	"SELECT id, device_id FROM s ORDER BY id";

void admin_publish_revokes(const struct pl_config *cfg, PGresult *res)
{
	struct pl_redis redis;
	int n = PQntuples(res);

	if (n == 0)
		return;
	pl_redis_init(&redis, cfg);
	if (pl_redis_ensure(&redis) != PL_OK) {
		fprintf(stderr, "parley-admin: Redis is unreachable: relays close "
			"the sockets at their next session check ([relay] "
			"session_check_interval)\n");
	} else {
		for (int i = 0; i < n; i++)
			pl_publish_revoke(&redis,
					  strtoll(PQgetvalue(res, i, 0), NULL, 10),
					  strtoll(PQgetvalue(res, i, 1), NULL, 10));
	}
	pl_redis_release(&redis);
}

/*
 * act on the user named username in one transaction (hash: the new
 * password's for reset-password). Returns the exit status.
 */
static int run_action(struct admin *a, const struct user_action *act,
		      const char *username, const char *hash)
{
	const char *params[2] = { username, hash };
	PGresult *res = NULL, *sessions = NULL;
	char uid[24];

	if (pl_db_ensure(&a->db) || admin_exec(a->db.conn, "BEGIN", "BEGIN"))
		return 1;
	if (pl_db_exec(&a->db, act->sql, act->password ? 2 : 1, params, 0,
		       &res, NULL))
		goto rollback;
	if (PQntuples(res) != 1) {
		fprintf(stderr, "parley-admin: no user '%s'\n", username);
		PQclear(res);
		admin_exec(a->db.conn, "ROLLBACK", "ROLLBACK");
		return 1;
	}
	snprintf(uid, sizeof(uid), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	params[0] = uid;
	if (act->revoke && pl_db_exec(&a->db, ADMIN_REVOKE_SQL, 1, params, 0,
				      &sessions, NULL))
		goto rollback;
	if (admin_exec(a->db.conn, "COMMIT", "COMMIT")) {
		PQclear(sessions);
		return 1;
	}
	printf("%s: user '%s' (id %s)", act->name, username, uid);
	if (sessions) {
		printf(", %d sessions revoked", PQntuples(sessions));
		admin_publish_revokes(&a->cfg, sessions);
		PQclear(sessions);
	}
	printf("\n");
	return 0;
rollback:
	admin_exec(a->db.conn, "ROLLBACK", "ROLLBACK");
	return 1;
}

/* Random passwords: 12 bytes in hex. */
#define MADE_BYTES 12

/* The new password's hash for reset-password from its options (argv from
 * 3 on); made, when none is given, gets a random password to print. */
static int new_password(struct admin *a, int argc, char **argv,
			char hash[PL_PASSWORD_HASH_BYTES],
			char made[2 * MADE_BYTES + 1])
{
	const char *password = NULL, *file = NULL;
	char typed[PL_PASSWORD_MAX_BYTES + 3];
	unsigned char raw[MADE_BYTES];
	int from_stdin = 0, status;

	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--password") == 0 && i + 1 < argc)
			password = argv[++i];
		else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strcmp(argv[i], "--password-stdin") == 0)
			from_stdin = 1;
		else {
			fprintf(stderr, "usage: parley-admin user reset-password "
				"USER [--password PW | --password-file PATH | "
				"--password-stdin]\n");
			return 2;
		}
	}
	status = admin_password_option(password, file, from_stdin, typed,
				       sizeof(typed), &password);
	if (status == 0 && !password) {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(made, 2 * MADE_BYTES + 1, raw, sizeof(raw));
		password = made;
	}
	if (status == 0)
		status = admin_hash_password(&a->cfg, password, hash);
	sodium_memzero(typed, sizeof(typed));
	return status;
}

int admin_cmd_user(struct admin *a, int argc, char **argv)
{
	const struct user_action *act = NULL;
	char hash[PL_PASSWORD_HASH_BYTES], made[2 * MADE_BYTES + 1] = "";
	int status;

	if (argc >= 2 && (strcmp(argv[1], "export") == 0 ||
			  strcmp(argv[1], "delete") == 0))
		return admin_cmd_account(a, argc, argv);
	for (size_t i = 0; argc >= 3 && i < NACTIONS; i++)
		if (strcmp(argv[1], actions[i].name) == 0)
			act = &actions[i];
	if (!act || argv[2][0] == '-' || (!act->password && argc != 3)) {
		fprintf(stderr, "usage: parley-admin [-c FILE] user "
			"revoke|disable|enable|reset-password|export|delete "
			"USER\n%s",
			ADMIN_USER_HELP);
		return 2;
	}
	if (act->password) {
		status = new_password(a, argc, argv, hash, made);
		if (status)
			return status;
	}
	status = run_action(a, act, argv[2], act->password ? hash : NULL);
	if (status == 0 && made[0])
		printf("password: %s\n", made);
	sodium_memzero(made, sizeof(made));
	sodium_memzero(hash, sizeof(hash));
	return status;
}
