/*
 * The posting path against a real PostgreSQL (PARLEY_TEST_PG names it):
 * per-item answers, dedupe, conflicts, and concurrent batches that overlap in
 * conversations and users, in both orders, checked for escaped deadlocks,
 * gapless message ids, strictly increasing per-user seqs, and a reader that
 * must never see seq N+1 before N. And read markers: two reads racing to
 * move the same marker move it, and announce it, once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "db.h"
#include "fixture.h"
#include "post.h"
#include "receipt.h"
#include "redis.h"

static struct pl_post_item item(long long sender, long long conv,
				const char *cmid, const char *body)
{
	struct pl_post_item it = { .sender_id = sender, .conversation_id = conv,
				   .client_msg_id = cmid, .body = body,
				   .body_len = strlen(body) };

	return it;
}

static void test_post_answers_each_item_on_its_own(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item items[4] = {
		item(f->u[0], f->direct12, "a-1", "hello bob"),
		item(f->u[3], f->direct12, "d-1", "not my conversation"),
		item(f->u[1], f->direct23, "b-1", ""),
		item(f->u[1], f->direct23, "b-2", "hi cat"),
	};
	struct pl_post_result r[4];

	assert_int_equal(pl_post_batch(&f->db, items, 4, r), PL_OK);
	assert_int_equal(r[0].err, PL_OK);
	assert_false(r[0].duplicate);
	assert_int_equal(r[0].message_id, 1);
	assert_true(strlen(r[0].created_at) > 20);
	assert_int_equal(r[0].n_deliveries, 2);	/* the sender's devices sync too */
	assert_int_equal(r[0].deliveries[0].user_id, f->u[0]);
	assert_int_equal(r[0].deliveries[1].user_id, f->u[1]);
	assert_int_equal(r[0].deliveries[0].seq, 1);
	assert_int_equal(r[1].err, PL_NOT_FOUND);
	assert_int_equal(r[2].err, PL_BAD_REQUEST);
	assert_int_equal(r[3].err, PL_OK);
	assert_int_equal(r[3].message_id, 1);
	/* bob got seq 1 from ann's message, then seq 2 from his own. */
	assert_int_equal(r[3].deliveries[0].user_id, f->u[1]);
	assert_int_equal(r[3].deliveries[0].seq, 2);
	pl_post_results_release(r, 4);
}

/*
 * A batch of the plain shape (no reply, attachment or repeated key, nobody
 * blocked) takes post_messages' short way (sql/020): the same answers as
 * the long way gives, item by item, for new messages in several
 * conversations, a retry, a reused key with another body and a sender who
 * is not a member.
 */
static void test_post_plain_batch_answers_each_item(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item first = item(f->u[1], f->direct23, "p-0", "stored before");
	struct pl_post_item items[5] = {
		item(f->u[0], f->group1234, "p-1", "to the group"),
		item(f->u[2], f->direct12, "p-2", "not my conversation"),
		item(f->u[1], f->direct23, "p-0", "stored before"),
		item(f->u[0], f->group1234, "p-3", "again to the group"),
		item(f->u[2], f->direct23, "p-0", "same key, cat's own"),
	};
	struct pl_post_item conflict = item(f->u[1], f->direct23, "p-0", "another body");
	struct pl_post_result r0, r[5], rc;

	assert_int_equal(pl_post_batch(&f->db, &first, 1, &r0), PL_OK);
	assert_int_equal(pl_post_batch(&f->db, items, 5, r), PL_OK);
	assert_int_equal(r[0].err, PL_OK);
	assert_false(r[0].duplicate);
	assert_int_equal(r[0].message_id, 1);
	assert_int_equal(r[0].n_deliveries, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[0].deliveries[i].user_id, f->u[i]);
	assert_int_equal(r[1].err, PL_NOT_FOUND);
	assert_int_equal(r[2].err, PL_OK);
	assert_true(r[2].duplicate);
	assert_int_equal(r[2].message_id, r0.message_id);
	assert_string_equal(r[2].created_at, r0.created_at);
	assert_int_equal(r[2].n_deliveries, 0);
	assert_int_equal(r[3].err, PL_OK);
	assert_int_equal(r[3].message_id, 2);
	/* ann's seqs follow the batch's order: 1 then 2. */
	assert_int_equal(r[0].deliveries[0].seq, 1);
	assert_int_equal(r[3].deliveries[0].seq, 2);
	assert_string_equal(r[3].created_at, r[0].created_at);
	/* The key is the sender's: cat's "p-0" is a new message after bob's. */
	assert_int_equal(r[4].err, PL_OK);
	assert_false(r[4].duplicate);
	assert_int_equal(r[4].message_id, 2);
	assert_int_equal(pl_post_batch(&f->db, &conflict, 1, &rc), PL_OK);
	assert_int_equal(rc.err, PL_CONFLICT);
	/* Each went the short way: only the long way makes its scratch table
	 * (the fixture's connection is new to this test). */
	assert_int_equal(sql_ll(&f->db, "SELECT (to_regclass('pg_temp.pm_items') "
				"IS NULL)::int", 0, NULL), 1);
	pl_post_results_release(&r0, 1);
	pl_post_results_release(r, 5);
	pl_post_results_release(&rc, 1);
}

static void test_post_retry_returns_the_original(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item first = item(f->u[0], f->group1234, "r-1", "once");
	struct pl_post_item again[2] = {
		item(f->u[0], f->group1234, "r-1", "once"),
		item(f->u[0], f->group1234, "r-2", "twice in one batch"),
	};
	struct pl_post_item dup_in_batch = item(f->u[0], f->group1234, "r-2",
						"twice in one batch");
	struct pl_post_result r1, r2[2], r3;
	char conv[24];
	const char *p[1] = { conv };

	assert_int_equal(pl_post_batch(&f->db, &first, 1, &r1), PL_OK);
	assert_int_equal(r1.err, PL_OK);
	assert_int_equal(pl_post_batch(&f->db, again, 2, r2), PL_OK);
	assert_int_equal(r2[0].err, PL_OK);
	assert_true(r2[0].duplicate);
	assert_int_equal(r2[0].message_id, r1.message_id);
	assert_string_equal(r2[0].created_at, r1.created_at);
	assert_int_equal(r2[0].n_deliveries, 0);
	assert_false(r2[1].duplicate);
	assert_int_equal(pl_post_batch(&f->db, &dup_in_batch, 1, &r3), PL_OK);
	assert_true(r3.duplicate);
	assert_int_equal(r3.message_id, r2[1].message_id);

	snprintf(conv, sizeof(conv), "%lld", f->group1234);
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FROM messages "
				"WHERE conversation_id = $1", 1, p), 2);
	/* Four members, two messages: eight inbox rows, no more. */
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FROM inbox "
				"WHERE conversation_id = $1", 1, p), 8);
	pl_post_results_release(&r1, 1);
	pl_post_results_release(r2, 2);
	pl_post_results_release(&r3, 1);
}

static void test_post_same_batch_same_key_is_stored_once(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item items[2] = {
		item(f->u[1], f->direct12, "same", "body"),
		item(f->u[1], f->direct12, "same", "body"),
	};
	struct pl_post_result r[2];

	assert_int_equal(pl_post_batch(&f->db, items, 2, r), PL_OK);
	assert_int_equal(r[0].err, PL_OK);
	assert_false(r[0].duplicate);
	assert_int_equal(r[1].err, PL_OK);
	assert_true(r[1].duplicate);
	assert_int_equal(r[1].message_id, r[0].message_id);
	pl_post_results_release(r, 2);
}

/* The set-based path (2 items or more, sql/007) answers like the item loop. */
static void test_post_big_batch_answers_each_item(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item items[20];
	struct pl_post_result r[20];
	char ids[20][16];
	long long want = 1;

	for (int i = 0; i < 20; i++) {
		/* 17, 18 and 19 reuse the keys of 0, 1 and 2. */
		snprintf(ids[i], sizeof(ids[i]), "big-%d", i < 17 ? i : i - 17);
		items[i] = item(f->u[0], f->direct12, ids[i], "same body");
	}
	items[5] = item(f->u[3], f->direct12, "big-x", "not a member");
	items[6] = item(f->u[0], f->direct12, "big-y", "");
	items[19].body = "another body";
	items[19].body_len = strlen(items[19].body);
	assert_int_equal(pl_post_batch(&f->db, items, 20, r), PL_OK);
	assert_int_equal(r[5].err, PL_NOT_FOUND);
	assert_int_equal(r[6].err, PL_BAD_REQUEST);
	for (int i = 0; i < 17; i++) {
		if (i == 5 || i == 6)
			continue;
		assert_int_equal(r[i].err, PL_OK);
		assert_false(r[i].duplicate);
		assert_int_equal(r[i].message_id, want++);	/* gapless, input order */
		assert_int_equal(r[i].n_deliveries, 2);
		assert_int_equal(r[i].deliveries[0].user_id, f->u[0]);
	}
	/* u[0]'s seqs follow the input order too. */
	assert_true(r[1].deliveries[0].seq == r[0].deliveries[0].seq + 1);
	assert_int_equal(r[17].err, PL_OK);
	assert_true(r[17].duplicate);
	assert_int_equal(r[17].message_id, r[0].message_id);
	assert_true(r[18].duplicate);
	assert_int_equal(r[18].message_id, r[1].message_id);
	assert_int_equal(r[19].err, PL_CONFLICT);
	pl_post_results_release(r, 20);
}

static void test_post_reused_key_with_other_body_is_conflict(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item a = item(f->u[2], f->direct23, "k", "first body");
	struct pl_post_item b = item(f->u[2], f->direct23, "k", "second body");
	struct pl_post_item other_sender = item(f->u[1], f->direct23, "k", "x");
	struct pl_post_result ra, rb, rc;

	assert_int_equal(pl_post_batch(&f->db, &a, 1, &ra), PL_OK);
	assert_int_equal(pl_post_batch(&f->db, &b, 1, &rb), PL_OK);
	assert_int_equal(rb.err, PL_CONFLICT);
	/* The key is per sender: someone else may use the same one. */
	assert_int_equal(pl_post_batch(&f->db, &other_sender, 1, &rc), PL_OK);
	assert_int_equal(rc.err, PL_OK);
	assert_int_equal(rc.message_id, ra.message_id + 1);
	pl_post_results_release(&ra, 1);
	pl_post_results_release(&rb, 1);
	pl_post_results_release(&rc, 1);
}

/* Concurrency: writers in both conversation orders, and an inbox reader. */

#define WRITERS 4
#define BATCHES 30
/* Writer 0 sends single messages (the item loop of sql/002), 1 small
 * batches and 2 and 3 big ones (the set-based statements of sql/007). */
#define BATCH_MAX 40
#define BATCH_OF(w) ((w) == 0 ? 1 : (w) == 1 ? 6 : BATCH_MAX)

struct writer {
	struct fixture *f;
	int index;
	int escaped;		/* results that were not PL_OK */
	int stored;		/* new messages */
	int duplicates;
};


/* The database checks keys itself, whatever a caller validated (010). */
static void test_post_sets_refuse_malformed_keys(void **state)
{
	struct fixture *f = *state;
	char items[1024];
	const char *p[1] = { items };
	PGresult *res;

	snprintf(items, sizeof(items),
		 "[{\"sender_id\":%lld,\"conversation_id\":%lld,"
		 "\"client_msg_id\":\"k-ok\",\"body\":\"x\"},"
		 "{\"sender_id\":%lld,\"conversation_id\":%lld,"
		 "\"client_msg_id\":\"tab\\there\",\"body\":\"x\"},"
		 "{\"sender_id\":%lld,\"conversation_id\":%lld,"
		 "\"client_msg_id\":\"caf\u00e9\",\"body\":\"x\"},"
		 "{\"sender_id\":%lld,\"conversation_id\":%lld,"
		 "\"client_msg_id\":\"%065d\",\"body\":\"x\"},"
		 "{\"sender_id\":%lld,\"conversation_id\":%lld,"
		 "\"client_msg_id\":\"%064d\",\"body\":\"x\"}]",
		 f->u[0], f->direct12, f->u[0], f->direct12, f->u[0],
		 f->direct12, f->u[0], f->direct12, 0, f->u[0], f->direct12, 0);
	res = sql(&f->db, "SELECT status FROM post_messages($1::jsonb) "
		  "ORDER BY idx", 1, p);
	assert_int_equal(PQntuples(res), 5);
	assert_string_equal(PQgetvalue(res, 0, 0), "ok");
	assert_string_equal(PQgetvalue(res, 1, 0), "bad_request");
	assert_string_equal(PQgetvalue(res, 2, 0), "bad_request");
	assert_string_equal(PQgetvalue(res, 3, 0), "bad_request");
	assert_string_equal(PQgetvalue(res, 4, 0), "ok");
	PQclear(res);
}


/*
 * A TCP proxy in front of PostgreSQL that can lose one answer: armed, it
 * cuts the connection when the server sends the result of a statement
 * that names post_messages, without passing it on. The server has run
 * (and committed) the statement; the client sees a lost connection.
 */
struct proxy {
	int listen_fd;
	int port;
	const char *pg_host;
	int pg_port;
	volatile int armed;	/* 1: cut at the next post_messages answer */
	volatile int cuts;
	volatile int stop;
	pthread_t thread;
};

static int connect_pg(const struct proxy *p)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)p->pg_port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, p->pg_host, &a.sin_addr);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Forwards one connection until either side closes or the cut. */
static void relay_one(struct proxy *p, int client)
{
	int server = connect_pg(p), posted = 0;
	char buf[65536];

	while (server >= 0 && !p->stop) {
		struct pollfd fds[2] = { { client, POLLIN, 0 }, { server, POLLIN, 0 } };
		ssize_t n;

		if (poll(fds, 2, 200) <= 0)
			continue;
		if (fds[0].revents) {
			n = read(client, buf, sizeof(buf));
			if (n <= 0 || write(server, buf, (size_t)n) != n)
				break;
			if (p->armed && memmem(buf, (size_t)n, "post_messages", 13))
				posted = 1;
		}
		if (fds[1].revents) {
			n = read(server, buf, sizeof(buf));
			if (n <= 0)
				break;
			/* The statement's own answer (CommandComplete "SELECT n"),
			 * not the one to its Parse. */
			if (posted && memmem(buf, (size_t)n, "SELECT ", 7)) {
				p->armed = 0;
				p->cuts++;
				break;	/* the answer is lost */
			}
			if (write(client, buf, (size_t)n) != n)
				break;
		}
	}
	if (server >= 0)
		close(server);
	close(client);
}

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;

	while (!p->stop) {
		struct pollfd fd = { p->listen_fd, POLLIN, 0 };
		int client;

		if (poll(&fd, 1, 200) <= 0)
			continue;
		client = accept(p->listen_fd, NULL, NULL);
		if (client >= 0)
			relay_one(p, client);	/* one connection at a time */
	}
	return NULL;
}

static void proxy_start(struct proxy *p, const char *pg_host, int pg_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	memset(p, 0, sizeof(*p));
	p->pg_host = pg_host;
	p->pg_port = pg_port;
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->listen_fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(p->listen_fd, 4), 0);
	assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
	p->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
	p->stop = 1;
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
}

/* The value of key in a "key=value ..." conninfo, or def. */
static void conninfo_value(const char *conninfo, const char *key, char *out,
			   size_t outlen, const char *def)
{
	size_t klen = strlen(key);
	const char *at = conninfo;

	snprintf(out, outlen, "%s", def);
	while ((at = strstr(at, key))) {
		if ((at == conninfo || at[-1] == ' ') && at[klen] == '=') {
			size_t n = strcspn(at + klen + 1, " ");

			snprintf(out, outlen, "%.*s", (int)n, at + klen + 1);
			return;
		}
		at += klen;
	}
}

static void test_post_answer_lost_after_commit_is_published(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item it[2] = {
		item(f->u[0], f->direct12, "lost-1", "committed, answer lost"),
		item(f->u[1], f->group1234, "lost-2", "in the same batch"),
	};
	struct pl_post_result r[2];
	struct pl_config via = cfg;
	struct pl_db db;
	struct proxy p;
	char host[64], port[16], conninfo[512], conv[24];
	const char *params[1] = { conv };

	conninfo_value(cfg.db_conninfo, "host", host, sizeof(host), "127.0.0.1");
	conninfo_value(cfg.db_conninfo, "port", port, sizeof(port), "5432");
	proxy_start(&p, host, atoi(port));
	/* The last of a repeated conninfo key wins. */
	snprintf(conninfo, sizeof(conninfo), "%s host=127.0.0.1 port=%d",
		 cfg.db_conninfo, p.port);
	via.db_conninfo = conninfo;
	pl_db_init(&db, &via);
	assert_int_equal(pl_db_ensure(&db), PL_OK);
	p.armed = 1;
	assert_int_equal(pl_post_batch(&db, it, 2, r), PL_OK);
	assert_int_equal(p.cuts, 1);
	/* Stored once, and answered as stored now, with every delivery, so
	 * the caller publishes both and queues their pushes. */
	snprintf(conv, sizeof(conv), "%lld", f->direct12);
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FROM messages WHERE "
				"conversation_id = $1", 1, params), 1);
	assert_int_equal(r[0].err, PL_OK);
	assert_false(r[0].duplicate);
	assert_int_equal(r[0].n_deliveries, 2);
	assert_int_equal(r[0].deliveries[0].user_id, f->u[0]);
	assert_int_equal(r[0].deliveries[1].user_id, f->u[1]);
	assert_int_equal(r[0].deliveries[0].seq, 1);
	assert_int_equal(r[1].err, PL_OK);
	assert_false(r[1].duplicate);
	assert_int_equal(r[1].n_deliveries, 4);
	/* bob: seq 1 from ann's message, 2 from his own. */
	assert_int_equal(r[1].deliveries[1].user_id, f->u[1]);
	assert_int_equal(r[1].deliveries[1].seq, 2);
	pl_post_results_release(r, 2);
	/* A plain retry later is a duplicate again, with nothing to publish. */
	assert_int_equal(pl_post_batch(&db, it, 1, r), PL_OK);
	assert_true(r[0].duplicate);
	assert_int_equal(r[0].n_deliveries, 0);
	pl_post_results_release(r, 1);
	pl_db_release(&db);
	proxy_stop(&p);
}

/*
 * Messages have no foreign keys (010): a conversation still takes its
 * messages with it, and a user who sent messages still cannot be deleted.
 */
static void test_messages_keep_their_references(void **state)
{
	struct fixture *f = *state;
	struct pl_post_item it = item(f->u[0], f->direct12, "ref-1", "kept");
	struct pl_post_result r;
	char uid[24], cid[24], sqlstate[6] = "";
	const char *pu[1] = { uid }, *pc[1] = { cid };
	PGresult *res = NULL;

	assert_int_equal(pl_post_batch(&f->db, &it, 1, &r), PL_OK);
	assert_int_equal(r.err, PL_OK);
	pl_post_results_release(&r, 1);
	snprintf(uid, sizeof(uid), "%lld", f->u[0]);
	snprintf(cid, sizeof(cid), "%lld", f->direct12);
	assert_int_not_equal(pl_db_exec(&f->db, "DELETE FROM users WHERE id = $1",
					1, pu, 0, &res, sqlstate), PL_OK);
	PQclear(res);
	assert_string_equal(sqlstate, "23503");
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FROM users WHERE id = $1",
				1, pu), 1);
	PQclear(sql(&f->db, "DELETE FROM conversations WHERE id = $1", 1, pc));
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FROM messages "
				"WHERE conversation_id = $1", 1, pc), 0);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct pl_db db;
	long long convs[3] = { w->f->direct12, w->f->direct23, w->f->group1234 };
	long long senders[3] = { w->f->u[1], w->f->u[1], w->f->u[1] };
	char cmids[BATCH_MAX][32];
	int batch = BATCH_OF(w->index);

	/* bob (u[1]) is in all three conversations; others write too. */
	if (w->index % 2)
		senders[0] = w->f->u[0], senders[1] = w->f->u[2],
		senders[2] = w->f->u[3];
	pl_db_init(&db, &cfg);
	for (int b = 0; b < BATCHES; b++) {
		struct pl_post_item items[BATCH_MAX];
		struct pl_post_result r[BATCH_MAX];

		for (int i = 0; i < batch; i++) {
			/* Even writers walk conversations up, odd ones down. */
			int c = w->index % 2 ? 2 - i % 3 : i % 3;
			/* Every third batch retries the previous batch's keys. */
			int key_batch = b % 3 == 2 ? b - 1 : b;

			snprintf(cmids[i], sizeof(cmids[i]), "w%d-b%d-i%d",
				 w->index, key_batch, i);
			items[i] = item(senders[c], convs[c], cmids[i],
					"concurrent message");
		}
		if (pl_post_batch(&db, items, (size_t)batch, r) != PL_OK)
			w->escaped += batch;
		for (int i = 0; i < batch; i++) {
			if (r[i].err != PL_OK)
				w->escaped++;
			else if (r[i].duplicate)
				w->duplicates++;
			else
				w->stored++;
		}
		pl_post_results_release(r, (size_t)batch);
	}
	pl_db_release(&db);
	return NULL;
}


static void test_post_concurrent_batches_keep_every_order(void **state)
{
	struct fixture *f = *state;
	struct writer w[WRITERS];
	struct reader rd = { .user = f->u[1] };
	pthread_t wt[WRITERS], rt;
	int stored = 0;
	long long convs[3] = { f->direct12, f->direct23, f->group1234 };

	assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .f = f, .index = i };
		assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(wt[i], NULL);
		assert_int_equal(w[i].escaped, 0);	/* no deadlock escaped */
		/* Every third batch was a retry: its items were all duplicates. */
		assert_int_equal(w[i].duplicates, (BATCHES / 3) * BATCH_OF(i));
		stored += w[i].stored;
	}
	rd.stop = 1;
	pthread_join(rt, NULL);
	assert_int_equal(rd.gaps, 0);
	assert_true(rd.polls > 1);

	for (int c = 0; c < 3; c++) {
		char conv[24];
		const char *p[1] = { conv };

		snprintf(conv, sizeof(conv), "%lld", convs[c]);
		/* Gapless ids: 1..count. */
		assert_int_equal(sql_ll(&f->db, "SELECT count(*) - max(message_id) "
					"FROM messages WHERE conversation_id = $1",
					1, p), 0);
	}
	for (int u = 0; u < 4; u++) {
		char user[24];
		const char *p[1] = { user };

		snprintf(user, sizeof(user), "%lld", f->u[u]);
		/* Strictly increasing, gapless seqs: 1..count, and the head agrees. */
		assert_int_equal(sql_ll(&f->db, "SELECT count(*) - coalesce(max(seq), 0) "
					"FROM inbox WHERE user_id = $1", 1, p), 0);
		assert_int_equal(sql_ll(&f->db, "SELECT h.last_seq - (SELECT count(*) "
					"FROM inbox i WHERE i.user_id = h.user_id) "
					"FROM user_heads h WHERE h.user_id = $1", 1, p), 0);
		/* One inbox row per message of each of the user's conversations. */
		assert_int_equal(sql_ll(&f->db, "SELECT (SELECT count(*) FROM inbox "
					"WHERE user_id = $1) - (SELECT count(*) FROM messages m "
					"JOIN members b ON b.conversation_id = m.conversation_id "
					"WHERE b.user_id = $1)", 1, p), 0);
	}
	/* The reader followed bob to his last seq. */
	{
		char user[24];
		const char *p[1] = { user };

		snprintf(user, sizeof(user), "%lld", f->u[1]);
		assert_true(rd.last <= sql_ll(&f->db, "SELECT last_seq FROM "
					      "user_heads WHERE user_id = $1", 1, p));
	}
	assert_int_equal(stored, (BATCHES - BATCHES / 3) *
			 (BATCH_OF(0) + BATCH_OF(1) + BATCH_OF(2) + BATCH_OF(3)));
}

/* One racing read: its own connections, and what it got. */
struct racer {
	pthread_t thread;
	long long conv, user, upto;
	int moved;
	enum pl_err rc;
};

static void *race_read(void *arg)
{
	struct racer *r = arg;
	struct pl_db db;
	struct pl_redis redis;

	pl_db_init(&db, &cfg);
	pl_redis_init(&redis, &cfg);
	r->rc = pl_receipt_mark_read(&db, &redis, r->conv, r->user, 7, &r->upto,
				     &r->moved);
	pl_redis_release(&redis);
	pl_db_release(&db);
	return NULL;
}

static void test_receipt_racing_reads_move_the_marker_once(void **state)
{
	struct fixture *f = *state;
	struct pl_db holder;
	struct racer racers[2];
	char conv[24], user[24];
	const char *p[2] = { conv, user };
	long long waiting = 0;

	snprintf(conv, sizeof(conv), "%lld", f->direct12);
	snprintf(user, sizeof(user), "%lld", f->u[1]);
	PQclear(sql(&f->db, "UPDATE conversations SET last_message_id = 10 "
		    "WHERE id = $1", 1, p));
	/* Hold the member row, so both reads take their snapshot and wait. */
	pl_db_init(&holder, &cfg);
	PQclear(sql(&holder, "BEGIN", 0, NULL));
	PQclear(sql(&holder, "SELECT 1 FROM members WHERE conversation_id = $1 "
		    "AND user_id = $2 FOR UPDATE", 2, p));
	for (int i = 0; i < 2; i++) {
		racers[i] = (struct racer){ .conv = f->direct12, .user = f->u[1] };
		assert_int_equal(pthread_create(&racers[i].thread, NULL, race_read,
						&racers[i]), 0);
	}
	for (int tries = 0; tries < 200 && waiting < 2; tries++) {
		waiting = sql_ll(&f->db, "SELECT count(*) FROM pg_stat_activity "
				 "WHERE wait_event_type = 'Lock' AND query LIKE "
				 "'WITH me AS%'", 0, NULL);
		if (waiting < 2)
			poll(NULL, 0, 50);
	}
	assert_int_equal(waiting, 2);
	PQclear(sql(&holder, "COMMIT", 0, NULL));
	pl_db_release(&holder);
	for (int i = 0; i < 2; i++) {
		pthread_join(racers[i].thread, NULL);
		assert_int_equal(racers[i].rc, PL_OK);
	}
	/* One of the two moved the marker to 7; the other found it there. */
	assert_int_equal(racers[0].moved + racers[1].moved, 1);
	assert_int_equal(sql_ll(&f->db, "SELECT last_read_message_id FROM members "
				"WHERE conversation_id = $1 AND user_id = $2", 2, p), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_post_answers_each_item_on_its_own,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_plain_batch_answers_each_item,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_retry_returns_the_original,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_same_batch_same_key_is_stored_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_reused_key_with_other_body_is_conflict,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_big_batch_answers_each_item,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_concurrent_batches_keep_every_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_sets_refuse_malformed_keys,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages_keep_their_references,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_answer_lost_after_commit_is_published,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_receipt_racing_reads_move_the_marker_once,
						setup, teardown),
	};

	return fixture_main("test_post", tests, sizeof(tests) / sizeof(tests[0]));
}
