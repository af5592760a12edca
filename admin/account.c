/*
 * parley-admin user export|delete: a person's data, and the end of their
 * account (doc/deploying.md "A person's data").
 *
 *   parley-admin [-c FILE] user export USER
 *   parley-admin [-c FILE] user delete USER [--erase-messages]
 *
 * export writes one JSON document to standard output: the profile and
 * settings, devices (whether a push token is set, never the token),
 * sessions, friends, blocks, conversations, reactions, uploads and every
 * message USER sent, oldest first per conversation. Messages are read
 * through a cursor, a page at a time: a long history never sits in memory.
 *
 * delete ends the account. Every session is revoked (sockets closed, as
 * "user revoke"); devices, sessions, friendships, blocks both ways,
 * reactions, memberships (a group left without an admin gets its longest
 * standing member as one) and the inbox go; unposted uploads are left for
 * "attachments prune". The users row stays as a tombstone, "Deleted
 * account" under a name no one can log in with and the old name free
 * again, because the messages USER sent stay in the conversations they
 * were sent to: the other members' history is theirs too. With
 * --erase-messages those messages are deleted first, each as a "delete"
 * event the members' devices receive like any other deletion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "change.h"
#include "publish.h"
#include "redis.h"
#include "banned.h"

/* Everything but the messages, as one JSON object ($1 the user's id). */
static const char EXPORT_SQL[] =
	"SELECT json_build_object("
	"'user', (SELECT json_build_object('id', id, 'username', username, "
	"  'display_name', display_name, 'settings', settings, 'created_at', "
	"  rfc3339(created_at), 'disabled_at', rfc3339(disabled_at)) "
	"  FROM users WHERE id = $1), "
	"'devices', (SELECT coalesce(json_agg(json_build_object('id', id, "
	"  'platform', platform, 'name', name, 'push_token_set', push_token "
	"  IS NOT NULL, 'created_at', rfc3339(created_at), 'last_seen', "
	"  rfc3339(last_seen)) ORDER BY id), '[]') FROM devices WHERE "
	"  user_id = $1), "
	"'sessions', (SELECT coalesce(json_agg(json_build_object('id', id, "
	"  'device_id', device_id, 'created_at', rfc3339(created_at), "
	"  'expires_at', rfc3339(expires_at), 'revoked_at', "
	"  rfc3339(revoked_at)) ORDER BY id), '[]') FROM sessions WHERE "
	"  user_id = $1), "
	"'friends', (SELECT coalesce(json_agg(json_build_object('user_id', "
	"  f.friend_id, 'username', u.username, 'state', f.state, 'since', "
	"  rfc3339(f.created_at)) ORDER BY f.friend_id), '[]') FROM "
	"  friendships f JOIN users u ON u.id = f.friend_id WHERE "
	"  f.user_id = $1), "
	"'blocks', (SELECT coalesce(json_agg(json_build_object('user_id', "
	"  b.blocked_id, 'username', u.username, 'since', "
	"  rfc3339(b.created_at)) ORDER BY b.blocked_id), '[]') FROM blocks b "
	"  JOIN users u ON u.id = b.blocked_id WHERE b.user_id = $1), "
	"'conversations', (SELECT coalesce(json_agg(json_build_object('id', "
	"  c.id, 'kind', c.kind, 'title', c.title, 'role', m.role, "
	"  'joined_at', rfc3339(m.joined_at)) ORDER BY c.id), '[]') FROM "
	"  members m JOIN conversations c ON c.id = m.conversation_id WHERE "
	"  m.user_id = $1), "
	"'reactions', (SELECT coalesce(json_agg(json_build_object("
	"  'conversation_id', conversation_id, 'message_id', message_id, "
	"  'emoji', emoji, 'created_at', rfc3339(created_at)) ORDER BY "
	"  created_at), '[]') FROM reactions WHERE user_id = $1), "
	"'attachments', (SELECT coalesce(json_agg(json_build_object('id', id, "
	"  'content_type', content_type, 'size', size, 'name', name, "
	"  'sha256', sha256, 'created_at', rfc3339(created_at), "
	"  'conversation_id', conversation_id, 'message_id', message_id) "
	"  ORDER BY id), '[]') FROM attachments WHERE uploader_id = $1))";

/* The messages USER sent, oldest first per conversation. */
static const char MESSAGES_CURSOR[] =
	"DECLARE sent NO SCROLL CURSOR FOR SELECT message_out(m, $1::bigint) "
	"FROM messages m WHERE sender_id = $1 ORDER BY conversation_id, "
	"message_id";

#define PAGE "1000"

/* The id of the user named username, or 0 (printed). */
static long long user_id(struct admin *a, const char *username)
{
	const char *params[1] = { username };
	PGresult *res;
	long long id = 0;

	if (pl_db_ensure(&a->db) || pl_db_exec(&a->db, "SELECT id FROM users "
	    "WHERE username = $1", 1, params, 0, &res, NULL))
		return 0;
	if (PQntuples(res) == 1)
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		fprintf(stderr, "parley-admin: no user '%s'\n", username);
	PQclear(res);
	return id;
}

/* Writes the cursor's rows as the elements of a JSON array. 0 or -1. */
static int write_messages(PGconn *conn)
{
	int first = 1;

	for (;;) {
		PGresult *res = PQexec(conn, "FETCH " PAGE " FROM sent");
		int n;

		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "parley-admin: reading messages: %s",
				PQerrorMessage(conn));
			PQclear(res);
			return -1;
		}
		n = PQntuples(res);
		for (int i = 0; i < n; i++) {
			fputs(first ? "\n" : ",\n", stdout);
			fputs(PQgetvalue(res, i, 0), stdout);
			first = 0;
		}
		PQclear(res);
		if (n == 0)
			return 0;
	}
}

static int export_user(struct admin *a, const char *username)
{
	long long id = user_id(a, username);
	char uid[24];
	const char *params[1] = { uid };
	PGresult *res;
	const char *text;
	size_t len;
	int rc;

	if (!id)
		return 1;
	snprintf(uid, sizeof(uid), "%lld", id);
	/* One snapshot for the whole document. */
	if (admin_exec(a->db.conn, "BEGIN ISOLATION LEVEL REPEATABLE READ "
		       "READ ONLY", "BEGIN"))
		return 1;
	if (pl_db_exec(&a->db, EXPORT_SQL, 1, params, 0, &res, NULL))
		goto fail;
	text = PQgetvalue(res, 0, 0);
	len = strlen(text);
	/* The object without its closing brace, then the messages. */
	fwrite(text, 1, len - 1, stdout);
	PQclear(res);
	fputs(", \"messages\": [", stdout);
	res = PQexecParams(a->db.conn, MESSAGES_CURSOR, 1, NULL, params, NULL,
			   NULL, 0);
	rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc)
		fprintf(stderr, "parley-admin: %s", PQerrorMessage(a->db.conn));
	PQclear(res);
	if (rc || write_messages(a->db.conn))
		goto fail;
	fputs("\n]}\n", stdout);
	admin_exec(a->db.conn, "COMMIT", "COMMIT");
	return fflush(stdout) == 0 ? 0 : 1;
fail:
	admin_exec(a->db.conn, "ROLLBACK", "ROLLBACK");
	return 1;
}

/*
 * Deletes every message user id sent that is not deleted yet, each through
 * pl_change_post() and published to its members. Returns how many, or -1.
 */
static long long erase_messages(struct admin *a, long long id)
{
	char uid[24];
	const char *params[1] = { uid };
	struct pl_redis redis;
	long long erased = 0;
	PGresult *res;

	snprintf(uid, sizeof(uid), "%lld", id);
	if (pl_db_exec(&a->db, "SELECT conversation_id, message_id FROM "
		       "messages WHERE sender_id = $1 AND deleted_at IS NULL "
		       "ORDER BY conversation_id, message_id", 1, params, 0, &res,
		       NULL))
		return -1;
	pl_redis_init(&redis, &a->cfg);
	for (int i = 0; i < PQntuples(res); i++) {
		struct pl_change c = {
			.kind = PL_CHANGE_DELETE, .actor_id = id,
			.conversation_id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
			.message_id = strtoll(PQgetvalue(res, i, 1), NULL, 10),
		};
		struct pl_change_result r;

		/* A conversation USER left: not theirs to change any more. */
		if (pl_change_post(&a->db, &c, &r) == PL_OK && r.event) {
			pl_publish_event(&redis, r.event, r.deliveries,
					 r.n_deliveries);
			erased++;
		} else if (r.err != PL_OK && r.err != PL_NOT_FOUND) {
			pl_change_release(&r);
			erased = -1;
			break;
		}
		pl_change_release(&r);
	}
	pl_redis_release(&redis);
	PQclear(res);
	return erased;
}

/* The account's data gone and its row a tombstone ($1 the id). */
static const char DELETE_SQL[] =
	"WITH heir AS (SELECT DISTINCT ON (x.conversation_id) "
	"  x.conversation_id, x.user_id FROM members x JOIN members me ON "
	"  me.conversation_id = x.conversation_id AND me.user_id = $1 AND "
	"  me.role = 'admin' WHERE x.user_id <> $1 AND NOT EXISTS (SELECT 1 "
	"  FROM members o WHERE o.conversation_id = x.conversation_id AND "
	"  o.user_id <> $1 AND o.role = 'admin') ORDER BY x.conversation_id, "
	"  x.joined_at, x.user_id), "
	"promoted AS (UPDATE members m SET role = 'admin' FROM heir h WHERE "
	"  m.conversation_id = h.conversation_id AND m.user_id = h.user_id), "
	"left_ AS (DELETE FROM members WHERE user_id = $1 RETURNING 1), "
	"f AS (DELETE FROM friendships WHERE user_id = $1 OR friend_id = $1), "
	"b AS (DELETE FROM blocks WHERE user_id = $1 OR blocked_id = $1), "
	"r AS (DELETE FROM reactions WHERE user_id = $1), "
	"i AS (DELETE FROM inbox WHERE user_id = $1), "
	"att AS (UPDATE attachments SET created_at = '-infinity' WHERE "
	"  uploader_id = $1 AND message_id IS NULL), "
	"s AS (DELETE FROM sessions WHERE user_id = $1), "
	"d AS (DELETE FROM devices WHERE user_id = $1), "
	"u AS (UPDATE users SET username = 'deleted-' || id, display_name = "
	"  'Deleted account', password_hash = '!', settings = '{}', "
	"  disabled_at = coalesce(disabled_at, now()) WHERE id = $1) "
	"SELECT count(*) FROM left_";

static int delete_user(struct admin *a, const char *username, int erase)
{
	long long id = user_id(a, username), erased = 0;
	char uid[24];
	const char *params[1] = { uid };
	PGresult *sessions = NULL, *res = NULL;

	if (!id)
		return 1;
	snprintf(uid, sizeof(uid), "%lld", id);
	/* First, while USER is still a member of their conversations. */
	if (erase && (erased = erase_messages(a, id)) < 0)
		return 1;
	if (admin_exec(a->db.conn, "BEGIN", "BEGIN"))
		return 1;
	if (pl_db_exec(&a->db, "SELECT id FROM users WHERE id = $1 FOR UPDATE",
		       1, params, 0, &res, NULL))
		goto rollback;
	PQclear(res);
	res = NULL;
	if (pl_db_exec(&a->db, ADMIN_REVOKE_SQL, 1, params, 0, &sessions,
		       NULL) ||
	    pl_db_exec(&a->db, DELETE_SQL, 1, params, 0, &res, NULL))
		goto rollback;
	if (admin_exec(a->db.conn, "COMMIT", "COMMIT"))
		goto out;
	printf("delete: user '%s' (id %s): %d sessions revoked, %s "
	       "conversations left, %lld messages erased; the name is free\n",
	       username, uid, PQntuples(sessions), PQgetvalue(res, 0, 0),
	       erased);
	admin_publish_revokes(&a->cfg, sessions);
	PQclear(sessions);
	PQclear(res);
	return 0;
rollback:
	admin_exec(a->db.conn, "ROLLBACK", "ROLLBACK");
out:
	PQclear(sessions);
	PQclear(res);
	return 1;
}

int admin_cmd_account(struct admin *a, int argc, char **argv)
{
	int erase = argc == 4 && strcmp(argv[3], "--erase-messages") == 0;

	if (argc >= 3 && argv[2][0] != '-' && strcmp(argv[1], "export") == 0 &&
	    argc == 3)
		return export_user(a, argv[2]);
	if (argc >= 3 && argv[2][0] != '-' && strcmp(argv[1], "delete") == 0 &&
	    (argc == 3 || erase))
		return delete_user(a, argv[2], erase);
	fprintf(stderr, "usage: parley-admin [-c FILE] user export USER\n"
		"       parley-admin [-c FILE] user delete USER "
		"[--erase-messages]\n");
	return 2;
}
