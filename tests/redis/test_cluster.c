/*
 * lib/redis.c against a real Redis Cluster of three masters and three
 * replicas (PARLEY_TEST_REDIS_CLUSTER: its nodes, masters first, as
 * tests/redis/run-cluster starts them): the slot map found from one node,
 * MOVED after a slot moved behind the client's back, ASK while a slot
 * migrates (single commands and a pipeline), scripts loaded on the nodes
 * that lack them, a pipeline that loses a master (its commands alone
 * fail) and a command that waits out the master's failover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "clock.h"
#include "config.h"
#include "redis.h"
#include "slot.h"

#define NODES 6

static char nodes_env[512];
static char hosts[NODES][64];
static int ports[NODES];
static int nnodes;

/* A client from text: [redis] cluster = seed, timeout_ms. */
static void client(struct pl_redis *r, struct pl_config *cfg, const char *seed,
		   long long timeout_ms)
{
	char text[700], err[256];

	snprintf(text, sizeof(text), "[redis]\ncluster = %s\ntimeout_ms = %lld\n",
		 seed, timeout_ms);
	pl_config_init(cfg);
	assert_int_equal(pl_config_parse(cfg, text, "test", err, sizeof(err)), 0);
	pl_redis_init(r, cfg);
	assert_true(pl_redis_is_cluster(r));
}

static void client_done(struct pl_redis *r, struct pl_config *cfg)
{
	pl_redis_release(r);
	pl_config_release(cfg);
}

/* A plain connection to node i, to arrange the cluster behind the client. */
static redisContext *admin(int i)
{
	redisContext *c = redisConnect(hosts[i], ports[i]);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static redisReply *admin_cmd(int i, const char *fmt, ...)
{
	redisContext *c = admin(i);
	redisReply *rep;
	va_list ap;

	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(rep);
	redisFree(c);
	return rep;
}

static void admin_ok(int i, const char *fmt, const char *a, const char *b)
{
	redisReply *rep = admin_cmd(i, fmt, a, b);

	if (rep->type == REDIS_REPLY_ERROR)
		fail_msg("node %d: %s", i, rep->str);
	freeReplyObject(rep);
}

/* Node i's cluster id. */
static void node_id(int i, char *out, size_t outlen)
{
	redisReply *rep = admin_cmd(i, "CLUSTER MYID");

	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	snprintf(out, outlen, "%s", rep->str);
	freeReplyObject(rep);
}

/*
 * The index (into hosts/ports) of the master that serves slot, as the
 * first node that answers sees it.
 */
static int owner(unsigned slot)
{
	for (int i = 0; i < nnodes; i++) {
		redisContext *c = redisConnect(hosts[i], ports[i]);
		redisReply *rep = c && !c->err ? redisCommand(c, "CLUSTER SLOTS") :
				  NULL;
		long long port = -1;

		for (size_t k = 0; rep && rep->type == REDIS_REPLY_ARRAY &&
				   k < rep->elements; k++) {
			redisReply *e = rep->element[k];

			if (e->element[0]->integer <= slot &&
			    e->element[1]->integer >= slot)
				port = e->element[2]->element[1]->integer;
		}
		if (rep)
			freeReplyObject(rep);
		if (c)
			redisFree(c);
		for (int j = 0; j < nnodes; j++)
			if (ports[j] == port)
				return j;
	}
	fail_msg("no master serves slot %u", slot);
	return -1;
}

static char *get(struct pl_redis *r, const char *key)
{
	const char *argv[2] = { "GET", key };
	redisReply *rep;
	char *v;

	assert_int_equal(pl_redis_command(r, 2, argv, NULL, 1, &rep), PL_OK);
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	v = strdup(rep->str);
	freeReplyObject(rep);
	return v;
}

static void set(struct pl_redis *r, const char *key, const char *value)
{
	const char *argv[3] = { "SET", key, value };
	redisReply *rep;

	assert_int_equal(pl_redis_command(r, 3, argv, NULL, 1, &rep), PL_OK);
	freeReplyObject(rep);
}

static void assert_get(struct pl_redis *r, const char *key, const char *want)
{
	char *v = get(r, key);

	assert_string_equal(v, want);
	free(v);
}

/* Which node of r's table is host:port of node i. */
static size_t client_node(const struct pl_redis *r, int i)
{
	for (size_t k = 0; k < r->nnodes; k++)
		if (r->nodes[k].port == ports[i] &&
		    strcmp(r->nodes[k].host, hosts[i]) == 0)
			return k;
	fail_msg("the client does not know node %d", i);
	return 0;
}

/* Another master than m (masters are nodes 0..2 until a failover). */
static int other_master(int m)
{
	return (m + 1) % 3;
}

/* Keys on every master, from a client told of one node only. */
static void test_one_seed_finds_every_master(void **state)
{
	struct pl_redis r;
	struct pl_config cfg;
	char seed[96], key[32], value[32];
	int on[NODES] = { 0 };

	(void)state;
	snprintf(seed, sizeof(seed), "%s:%d", hosts[0], ports[0]);
	client(&r, &cfg, seed, 2000);
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "seed:%d", i);
		snprintf(value, sizeof(value), "v%d", i);
		set(&r, key, value);
		on[owner(pl_slot(key, strlen(key)))]++;
	}
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "seed:%d", i);
		snprintf(value, sizeof(value), "v%d", i);
		assert_get(&r, key, value);
	}
	for (int m = 0; m < 3; m++)
		assert_true(on[m] > 50);
	/* The client found the masters it was not told of. */
	assert_true(r.nnodes >= 3);
	client_done(&r, &cfg);
}

/*
 * Moves slot from master a to master b with every key in it, as
 * redis-cli --cluster reshard does.
 */
static void move_slot(unsigned slot, int a, int b, const char *only_key)
{
	char ida[64], idb[64], s[16];
	redisReply *keys;

	node_id(a, ida, sizeof(ida));
	node_id(b, idb, sizeof(idb));
	snprintf(s, sizeof(s), "%u", slot);
	admin_ok(b, "CLUSTER SETSLOT %s IMPORTING %s", s, ida);
	admin_ok(a, "CLUSTER SETSLOT %s MIGRATING %s", s, idb);
	keys = admin_cmd(a, "CLUSTER GETKEYSINSLOT %s 100", s);
	for (size_t k = 0; k < keys->elements; k++) {
		redisReply *rep;

		if (only_key && strcmp(keys->element[k]->str, only_key) != 0)
			continue;
		rep = admin_cmd(a, "MIGRATE %s %d %s 0 5000", hosts[b], ports[b],
				keys->element[k]->str);
		assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
		freeReplyObject(rep);
	}
	freeReplyObject(keys);
	if (only_key)
		return;	/* left migrating: ASK */
	for (int i = 0; i < 3; i++)
		admin_ok(i, "CLUSTER SETSLOT %s NODE %s", s, idb);
}

static void test_moved_slot_is_followed(void **state)
{
	struct pl_redis r;
	struct pl_config cfg;
	const char *key = "moved:key";
	unsigned slot = pl_slot(key, strlen(key));
	int a, b;

	(void)state;
	client(&r, &cfg, nodes_env, 2000);
	set(&r, key, "before");
	a = owner(slot);
	b = other_master(a);
	assert_int_equal(r.slots[slot], client_node(&r, a));
	move_slot(slot, a, b, NULL);
	/* a answers MOVED; the client follows and learns the new owner. */
	assert_get(&r, key, "before");
	assert_int_equal(r.slots[slot], client_node(&r, b));
	set(&r, key, "after");
	assert_get(&r, key, "after");
	client_done(&r, &cfg);
}

static void test_ask_during_migration(void **state)
{
	struct pl_redis r;
	struct pl_config cfg;
	const char *moved = "{ask}moved", *stays = "{ask}stays";
	unsigned slot = pl_slot(moved, strlen(moved));
	const char *gets[3][2] = { { "GET", moved }, { "GET", stays },
				   { "GET", "ask:elsewhere" } };
	const char *want[3] = { "m", "s", "e" };
	char ida[64], idb[64], s[16];
	int a, b;

	(void)state;
	assert_int_equal(slot, pl_slot(stays, strlen(stays)));
	client(&r, &cfg, nodes_env, 2000);
	set(&r, moved, "m");
	set(&r, stays, "s");
	set(&r, "ask:elsewhere", "e");
	a = owner(slot);
	b = other_master(a);
	move_slot(slot, a, b, moved);
	/* a still owns the slot; the migrated key answers ASK, once. */
	assert_get(&r, moved, "m");
	assert_get(&r, stays, "s");
	assert_int_equal(r.slots[slot], client_node(&r, a));
	/* The same through a pipeline, in order. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(pl_redis_append(&r, 2, gets[i], NULL), PL_OK);
	for (int i = 0; i < 3; i++) {
		redisReply *rep;

		assert_int_equal(pl_redis_read(&r, &rep), PL_OK);
		assert_int_equal(rep->type, REDIS_REPLY_STRING);
		assert_string_equal(rep->str, want[i]);
		freeReplyObject(rep);
	}
	/* Finish the migration. */
	move_slot(slot, a, b, stays);
	node_id(b, idb, sizeof(idb));
	node_id(a, ida, sizeof(ida));
	snprintf(s, sizeof(s), "%u", slot);
	for (int i = 0; i < 3; i++)
		admin_ok(i, "CLUSTER SETSLOT %s NODE %s", s, idb);
	assert_get(&r, stays, "s");
	assert_int_equal(r.slots[slot], client_node(&r, b));
	client_done(&r, &cfg);
}

static void test_scripts_load_where_missing(void **state)
{
	static const char script[] = "return redis.call('GET', KEYS[1])";
	struct pl_redis r;
	struct pl_config cfg;
	char key[32], value[32];

	(void)state;
	for (int i = 0; i < 3; i++) {
		redisReply *rep = admin_cmd(i, "SCRIPT FLUSH");

		freeReplyObject(rep);
	}
	client(&r, &cfg, nodes_env, 2000);
	for (int i = 0; i < 60; i++) {
		const char *argv[4] = { "EVAL", script, "1", key };
		redisReply *rep;

		snprintf(key, sizeof(key), "script:%d", i);
		snprintf(value, sizeof(value), "s%d", i);
		set(&r, key, value);
		assert_int_equal(pl_redis_command(&r, 4, argv, NULL, 1, &rep),
				 PL_OK);
		assert_int_equal(rep->type, REDIS_REPLY_STRING);
		assert_string_equal(rep->str, value);
		freeReplyObject(rep);
	}
	client_done(&r, &cfg);
}

/*
 * A pipeline over every master right after one died: the dead master's
 * commands fail, the others' are answered, in order, at once.
 */
static void pipeline_around_a_dead_master(struct pl_redis *r, int dead)
{
	char keys[30][32];
	int on_dead = 0;

	for (int i = 0; i < 30; i++) {
		const char *argv[2] = { "GET", keys[i] };

		snprintf(keys[i], sizeof(keys[i]), "seed:%d", i);
		assert_int_equal(pl_redis_append(r, 2, argv, NULL), PL_OK);
	}
	for (int i = 0; i < 30; i++) {
		int here = (int)r->slots[pl_slot(keys[i], strlen(keys[i]))] ==
			   (int)client_node(r, dead);
		redisReply *rep = NULL;
		enum pl_err rc = pl_redis_read(r, &rep);

		on_dead += here;
		assert_int_equal(rc, here ? PL_UNAVAILABLE : PL_OK);
		if (rep) {
			char want[32];

			snprintf(want, sizeof(want), "v%d", i);
			assert_string_equal(rep->str, want);
			freeReplyObject(rep);
		}
	}
	assert_true(on_dead > 0 && on_dead < 30);
}

/* The master of key's slot is killed: the command waits for its replica. */
static void test_command_waits_out_a_failover(void **state)
{
	struct pl_redis r;
	struct pl_config cfg;
	const char *key = "failover:key";
	redisReply *info;
	long long t0, took;
	char *pid;
	int m;

	(void)state;
	client(&r, &cfg, nodes_env, 15000);
	set(&r, key, "before");
	for (int i = 0; i < 30; i++) {
		char k[32], v[32];

		snprintf(k, sizeof(k), "seed:%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		assert_get(&r, k, v);	/* connected to every master */
	}
	m = owner(pl_slot(key, strlen(key)));
	info = admin_cmd(m, "INFO server");
	pid = strstr(info->str, "process_id:");
	assert_non_null(pid);
	t0 = pl_clock_mono_ms();
	assert_int_equal(kill((pid_t)strtol(pid + 11, NULL, 10), SIGKILL), 0);
	freeReplyObject(info);
	pipeline_around_a_dead_master(&r, m);
	set(&r, key, "after");
	took = pl_clock_mono_ms() - t0;
	print_message("# a write to the killed master's slot went through "
		      "after %lld ms\n", took);
	assert_get(&r, key, "after");
	/* The replica serves the slot now. */
	for (int i = 0; i < 50 && owner(pl_slot(key, strlen(key))) == m; i++)
		poll(NULL, 0, 100);
	assert_int_not_equal(owner(pl_slot(key, strlen(key))), m);
	client_done(&r, &cfg);
}

int main(void)
{
	const char *env = getenv("PARLEY_TEST_REDIS_CLUSTER");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_seed_finds_every_master),
		cmocka_unit_test(test_moved_slot_is_followed),
		cmocka_unit_test(test_ask_during_migration),
		cmocka_unit_test(test_scripts_load_where_missing),
		/* Last: it leaves a master dead. */
		cmocka_unit_test(test_command_waits_out_a_failover),
	};
	struct pl_config cfg;
	char text[700], err[256];

	if (!env || !*env) {
		fprintf(stderr, "PARLEY_TEST_REDIS_CLUSTER is not set "
			"(tests/redis/run-cluster sets it)\n");
		return 1;
	}
	snprintf(nodes_env, sizeof(nodes_env), "%s", env);
	snprintf(text, sizeof(text), "[redis]\ncluster = %s\n", env);
	pl_config_init(&cfg);
	if (pl_config_parse(&cfg, text, "env", err, sizeof(err)))
		return 1;
	for (nnodes = 0; nnodes < NODES &&
	     pl_config_redis_node(&cfg, (size_t)nnodes, hosts[nnodes],
				  sizeof(hosts[nnodes]), &ports[nnodes]) == 0;
	     nnodes++)
		;
	pl_config_release(&cfg);
	if (nnodes != NODES) {
		fprintf(stderr, "PARLEY_TEST_REDIS_CLUSTER: want %d nodes\n",
			NODES);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
