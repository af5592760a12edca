/*
 * config: parley.conf, one table of keys shared by every program.
 *
 * Each key has one row in the table in config.c: section, name, type,
 * default, range and the field it fills. The INI reader (inih), the
 * environment overrides (PARLEY_<SECTION>_<KEY>), validation and the
 * --help listing all come from that table, and deploy/parley.conf.example
 * documents every row (a unit test checks the two agree).
 */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stdio.h>

#include "log.h"

struct pl_config {
	/* [log] */
	char *log_level;
	enum pl_log_level log_level_value;	/* parsed from log_level */
	/* [database] */
	char *db_conninfo;
	char *db_read_conninfo;	/* "" : reads go to db_conninfo */
	long long db_connect_timeout_s;
	long long db_statement_timeout_ms;	/* parley-api's connections */
	/* [redis] */
	char *redis_host;
	long long redis_port;
	long long redis_timeout_ms;
	char *redis_cluster;	/* "" for one Redis */
	/* [auth] */
	char *auth_secret_file;
	long long auth_token_ttl_s;
	long long auth_hash_concurrency;
	long long auth_hash_ops;
	long long auth_hash_memory_kib;
	long long auth_hash_wait_ms;
	long long auth_hash_queue;
	/* [limits] rate limits; 0 switches one off */
	long long limits_auth_per_ip_per_minute;
	long long limits_auth_per_user_per_minute;
	long long limits_sends_per_second;
	long long limits_sends_burst;
	long long limits_rest_per_minute;
	long long limits_frames_per_second;
	long long limits_frames_burst;
	/* [messages] */
	long long messages_edit_window_s;
	/* [api] */
	char *api_listen;
	long long api_threads;
	long long api_max_body_bytes;
	long long api_metrics_port;
	long long api_max_attachment_bytes;
	/* [attachments] */
	char *attachments_dir;
	long long attachments_image_concurrency;
	/* [relay] */
	long long relay_port;
	char *relay_bind;
	char *relay_public_url;
	char *relay_region;
	char *relay_id;
	long long relay_capacity;
	long long relay_max_jobs;
	long long relay_max_jobs_per_connection;
	long long relay_session_check_interval_s;
	long long relay_fence_after_ms;
	/* [discovery] */
	char *discovery_backend;
	char *discovery_zookeeper;
	long long discovery_zookeeper_session_timeout_ms;
	char *discovery_region;
	/* [notify] */
	long long notify_grace_ms;
	long long notify_claim_idle_ms;
	long long notify_max_retries;
	long long notify_preview_bytes;
	long long notify_content_free;
	long long notify_metrics_port;
	/* [apns] */
	char *apns_url;
	char *apns_key_file;
	char *apns_key_id;
	char *apns_team_id;
	char *apns_topic;
	char *apns_ca_file;
	long long apns_token_lifetime_s;
	/* [fcm] */
	char *fcm_url;
	char *fcm_token_url;
	char *fcm_service_account_file;
	char *fcm_ca_file;
	/* [presence] */
	long long presence_heartbeat_interval_s;
	long long presence_timeout_s;
	long long presence_grace_s;
};

/* Sets every key to its default. Pair with pl_config_release(). */
void pl_config_init(struct pl_config *cfg);

/* Frees the strings cfg owns. Safe on an initialized or released config. */
void pl_config_release(struct pl_config *cfg);

/*
 * Reads path (NULL: defaults only), then applies PARLEY_<SECTION>_<KEY>
 * environment overrides, then validates. Returns 0, or -1 with a message
 * naming "file:line" and the key written to err (errlen bytes).
 * Unknown sections or keys and out-of-range values are errors.
 */
int pl_config_load(struct pl_config *cfg, const char *path, char *err,
		   size_t errlen);

/* The largest configuration file pl_config_load() reads. */
#define PL_CONFIG_MAX_BYTES (1024 * 1024)

/*
 * Like pl_config_load() for the INI text text (borrowed, NUL-terminated),
 * named name (borrowed) in error messages: parses it, then applies the
 * environment overrides and validates. Reads no file; this is what
 * pl_config_load() runs on the file's contents, and what the config fuzz
 * target drives.
 */
int pl_config_parse(struct pl_config *cfg, const char *text, const char *name,
		    char *err, size_t errlen);

/* Writes one line per key: section, key, default, range, env var, help. */
void pl_config_print_help(FILE *out);

/*
 * Calls fn once per table row with the section and key (borrowed static
 * strings). Used by tests to compare the table with the example file.
 */
void pl_config_each_key(void (*fn)(const char *section, const char *key,
				   void *arg), void *arg);

/* One row of the table, as --help and parley.conf(5) show it. */
struct pl_config_row {
	const char *section;	/* the strings are static, never freed */
	const char *name;
	const char *def;	/* the default, as it is written in the file */
	const char *help;
	int is_int;		/* 1: an integer, in min..max */
	long long min, max;
	char env[96];		/* the override, PARLEY_<SECTION>_<KEY> */
};

/*
 * Fills *row with the table's row i (0 is the first). Returns 0, or -1 when
 * there is no row i. The generator of parley.conf(5) (doc/man/config-man.c)
 * reads the table through this.
 */
int pl_config_row(size_t i, struct pl_config_row *row);

/*
 * Returns the path a program reads by default: $PARLEY_CONFIG if set, else
 * the compiled-in /etc/parley/parley.conf (a static or environment string).
 */
const char *pl_config_default_path(void);

/* The longest host a [redis] cluster node may name, with its NUL. */
#define PL_CONFIG_HOST_MAX 256

/* How many nodes [redis] cluster names (0: one Redis, host and port). */
size_t pl_config_redis_nodes(const struct pl_config *cfg);

/*
 * The i-th node of [redis] cluster, "host:port" or "[v6]:port", into host
 * (hostlen bytes) and *port. Returns 0, or -1 when there is none or it does
 * not parse (pl_config_load() refuses such a list).
 */
int pl_config_redis_node(const struct pl_config *cfg, size_t i, char *host,
			 size_t hostlen, int *port);

/* Whether name is a value [discovery] backend takes: 1 or 0. */
int pl_config_discovery_backend_known(const char *name);

#endif
