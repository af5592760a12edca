/*
 * Edits, deletions and reactions against a real PostgreSQL (PARLEY_TEST_PG
 * names it): who may do what, what changes nothing, and changes racing
 * sends in the same conversations, checked for escaped deadlocks, gapless
 * per-user seqs with one inbox row per event and member, and a reader that
 * must never see seq N+1 before N.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "db.h"
#include "fixture.h"
#include "post.h"

/* Stores one message of sender in conv; returns its id. */
static long long send_one(struct pl_db *db, long long sender, long long conv,
			  const char *cmid)
{
	struct pl_post_item it = { .sender_id = sender, .conversation_id = conv,
				   .client_msg_id = cmid, .body = "hello",
				   .body_len = 5 };
	struct pl_post_result r;
	long long id;

	assert_int_equal(pl_post_batch(db, &it, 1, &r), PL_OK);
	assert_int_equal(r.err, PL_OK);
	id = r.message_id;
	pl_post_results_release(&r, 1);
	return id;
}

/* Posts change c; returns its err, with *stored whether it made an event. */
static enum pl_err post(struct pl_db *db, struct pl_change c, int *stored)
{
	struct pl_change_result r;
	enum pl_err rc;

	if (!c.edit_window_s)
		c.edit_window_s = 3600;
	rc = pl_change_post(db, &c, &r);
	*stored = r.event != NULL;
	if (r.event) {
		/* One delivery per member of the group, each a seq above 0. */
		assert_true(r.n_deliveries >= 2);
		for (size_t i = 0; i < r.n_deliveries; i++)
			assert_true(r.deliveries[i].seq > 0);
	}
	pl_change_release(&r);
	return rc;
}

static void test_change_rules(void **state)
{
	struct fixture *f = *state;
	long long g = f->group1234, ann = f->u[0], bob = f->u[1];
	long long mid = send_one(&f->db, bob, g, "rules-1");
	long long outsider = add_user(&f->db, "eve");
	int stored;

	/* Edit: the sender only, a member's attempt forbidden, a stranger's
	 * not found; past the window, forbidden. */
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_EDIT, bob, g,
			 mid, "fixed", NULL, 0 }, &stored), PL_OK);
	assert_true(stored);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_EDIT, ann, g,
			 mid, "mine now", NULL, 0 }, &stored), PL_FORBIDDEN);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_EDIT,
			 outsider, g, mid, "x", NULL, 0 }, &stored), PL_NOT_FOUND);
	{
		char c[24], m[24];
		const char *p[2] = { c, m };

		snprintf(c, sizeof(c), "%lld", g);
		snprintf(m, sizeof(m), "%lld", mid);
		PQclear(sql(&f->db, "UPDATE messages SET created_at = now() - "
			    "interval '2 hours' WHERE conversation_id = $1 AND "
			    "message_id = $2", 2, p));
	}
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_EDIT, bob, g,
			 mid, "late", NULL, 0 }, &stored), PL_FORBIDDEN);
	/* Reactions: twice is once, removing what is not there is nothing. */
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_REACT, ann, g,
			 mid, NULL, "+1", 0 }, &stored), PL_OK);
	assert_true(stored);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_REACT, ann, g,
			 mid, NULL, "+1", 0 }, &stored), PL_OK);
	assert_false(stored);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_UNREACT, bob,
			 g, mid, NULL, "+1", 0 }, &stored), PL_OK);
	assert_false(stored);
	/* Delete: not by a plain member; by the sender, once. */
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_DELETE, ann,
			 g, mid, NULL, NULL, 0 }, &stored), PL_FORBIDDEN);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_DELETE, bob,
			 g, mid, NULL, NULL, 0 }, &stored), PL_OK);
	assert_true(stored);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_DELETE, bob,
			 g, mid, NULL, NULL, 0 }, &stored), PL_OK);
	assert_false(stored);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_REACT, ann, g,
			 mid, NULL, "+1", 0 }, &stored), PL_NOT_FOUND);
	assert_int_equal(post(&f->db, (struct pl_change){ PL_CHANGE_EDIT, bob, g,
			 mid + 1000, "x", NULL, 0 }, &stored), PL_NOT_FOUND);
}

#define SENDERS 2
#define CHANGERS 2
#define ROUNDS 40
#define BATCH 6
#define SEEDED 8

struct worker {
	struct fixture *f;
	int index;
	long long seeded[SEEDED];	/* group messages changes work on */
	int escaped, stored, events;
};

/* Sends batches over the three conversations, bob in each. */
static void *sender_main(void *arg)
{
	struct worker *w = arg;
	long long convs[3] = { w->f->direct12, w->f->group1234, w->f->direct23 };
	struct pl_db db;
	char cmids[BATCH][32];

	pl_db_init(&db, &cfg);
	for (int b = 0; b < ROUNDS; b++) {
		struct pl_post_item items[BATCH] = { { 0 } };
		struct pl_post_result r[BATCH];

		for (int i = 0; i < BATCH; i++) {
			int c = w->index % 2 ? 2 - i % 3 : i % 3;

			snprintf(cmids[i], sizeof(cmids[i]), "s%d-%d-%d",
				 w->index, b, i);
			items[i] = (struct pl_post_item){
				.sender_id = w->f->u[1], .conversation_id =
				convs[c], .client_msg_id = cmids[i],
				.body = "racing", .body_len = 6 };
		}
		if (pl_post_batch(&db, items, BATCH, r) != PL_OK)
			w->escaped += BATCH;
		for (int i = 0; i < BATCH; i++)
			if (r[i].err != PL_OK)
				w->escaped++;
			else
				w->stored++;
		pl_post_results_release(r, BATCH);
	}
	pl_db_release(&db);
	return NULL;
}

/* Edits, reacts and unreacts on the seeded group messages. */
static void *changer_main(void *arg)
{
	struct worker *w = arg;
	struct pl_db db;
	long long user = w->f->u[w->index % 2 ? 2 : 0];	/* cat or ann */

	pl_db_init(&db, &cfg);
	for (int b = 0; b < ROUNDS * 2; b++) {
		long long mid = w->seeded[(b + w->index) % SEEDED];
		struct pl_change c = { .actor_id = user, .conversation_id =
				       w->f->group1234, .message_id = mid,
				       .emoji = b % 4 < 2 ? "+1" : "ok",
				       .edit_window_s = 3600 };
		struct pl_change_result r;

		c.kind = b % 2 ? PL_CHANGE_UNREACT : PL_CHANGE_REACT;
		if (pl_change_post(&db, &c, &r) != PL_OK)
			w->escaped++;
		else if (r.event)
			w->events++;
		pl_change_release(&r);
	}
	pl_db_release(&db);
	return NULL;
}



/* Every user's seqs gapless, the head agreeing, one row per message and
 * per event of each of the user's conversations. */
static void check_inboxes(struct fixture *f)
{
	for (int u = 0; u < 4; u++) {
		char user[24];
		const char *p[1] = { user };

		snprintf(user, sizeof(user), "%lld", f->u[u]);
		assert_int_equal(sql_ll(&f->db, "SELECT count(*) - coalesce("
					"max(seq), 0) FROM inbox WHERE user_id = $1",
					1, p), 0);
		assert_int_equal(sql_ll(&f->db, "SELECT h.last_seq - (SELECT "
					"count(*) FROM inbox i WHERE i.user_id = "
					"h.user_id) FROM user_heads h WHERE "
					"h.user_id = $1", 1, p), 0);
		assert_int_equal(sql_ll(&f->db, "SELECT (SELECT count(*) FROM "
					"inbox WHERE user_id = $1) - (SELECT count(*) "
					"FROM messages m JOIN members b ON "
					"b.conversation_id = m.conversation_id WHERE "
					"b.user_id = $1) - (SELECT count(*) FROM "
					"message_events e JOIN members b ON "
					"b.conversation_id = e.conversation_id WHERE "
					"b.user_id = $1)", 1, p), 0);
	}
}

static void test_changes_racing_sends_keep_every_order(void **state)
{
	struct fixture *f = *state;
	struct worker w[SENDERS + CHANGERS];
	struct reader rd = { .user = f->u[1] };
	pthread_t t[SENDERS + CHANGERS], rt;
	long long seeded[SEEDED];
	int events = 0;
	char conv[24];
	const char *p[1] = { conv };

	for (int i = 0; i < SEEDED; i++) {
		char cmid[24];

		snprintf(cmid, sizeof(cmid), "seed-%d", i);
		seeded[i] = send_one(&f->db, f->u[3], f->group1234, cmid);
	}
	assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
	for (int i = 0; i < SENDERS + CHANGERS; i++) {
		w[i] = (struct worker){ .f = f, .index = i };
		memcpy(w[i].seeded, seeded, sizeof(seeded));
		assert_int_equal(pthread_create(&t[i], NULL, i < SENDERS ?
				 sender_main : changer_main, &w[i]), 0);
	}
	for (int i = 0; i < SENDERS + CHANGERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].escaped, 0);	/* no deadlock escaped */
		events += w[i].events;
	}
	rd.stop = 1;
	pthread_join(rt, NULL);
	assert_int_equal(rd.gaps, 0);
	assert_true(rd.polls > 1);
	assert_true(events > 0);
	check_inboxes(f);
	/* Every event a change reported is stored, and only those. */
	snprintf(conv, sizeof(conv), "%lld", f->group1234);
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FROM message_events "
				"WHERE conversation_id = $1", 1, p), events);
	/* Reactions left are what adds minus removes say. */
	assert_int_equal(sql_ll(&f->db, "SELECT count(*) FILTER (WHERE op = "
				"'add') - count(*) FILTER (WHERE op = 'remove') - "
				"(SELECT count(*) FROM reactions WHERE "
				"conversation_id = $1) FROM message_events WHERE "
				"conversation_id = $1", 1, p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_change_rules, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_changes_racing_sends_keep_every_order, setup,
			teardown),
	};

	return fixture_main("test_change", tests,
			    sizeof(tests) / sizeof(tests[0]));
}
