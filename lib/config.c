#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

#ifndef PL_SYSCONFDIR
#define PL_SYSCONFDIR "/etc"
#endif

enum key_type { KEY_STR, KEY_INT };

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	const char *def;
	long long min, max;
	size_t offset;
	const char *help;
};

#define STR(sec, nm, dflt, field, hlp) \
	{ sec, nm, KEY_STR, dflt, 0, 0, offsetof(struct pl_config, field), hlp }
#define INT(sec, nm, dflt, lo, hi, field, hlp) \
	{ sec, nm, KEY_INT, #dflt, lo, hi, offsetof(struct pl_config, field), hlp }

static const struct key keys[] = {
	STR("log", "level", "info", log_level, "err, warn, info or debug"),
	STR("database", "conninfo",
	    "host=127.0.0.1 port=5432 dbname=parley user=parley", db_conninfo,
	    "libpq connection string"),
	STR("database", "read_conninfo", "", db_read_conninfo,
	    "libpq connection string for reads that standbys may serve "
	    "(history, search, sync), fenced so that none misses an "
	    "acknowledged write; empty: every read goes to conninfo"),
	INT("database", "connect_timeout", 5, 1, 300, db_connect_timeout_s,
	    "seconds to wait for one connection attempt"),
	INT("database", "statement_timeout_ms", 5000, 0, 3600000,
	    db_statement_timeout_ms,
	    "milliseconds one parley-api statement may run before PostgreSQL "
	    "cancels it and the request is answered 503 (0: no limit)"),
	STR("redis", "host", "127.0.0.1", redis_host,
	    "Redis address (an IP address or a unix socket path)"),
	INT("redis", "port", 6379, 0, 65535, redis_port,
	    "Redis TCP port (ignored for a unix socket)"),
	INT("redis", "timeout_ms", 1000, 10, 60000, redis_timeout_ms,
	    "milliseconds to wait for Redis to connect or answer"),
	STR("redis", "cluster", "", redis_cluster,
	    "a Redis Cluster's nodes, host:port,host:port,... (any of them; "
	    "the rest are found): set, it replaces host and port"),
	STR("auth", "secret_file", PL_SYSCONFDIR "/parley/secret",
	    auth_secret_file, "file holding the token signing secret"),
	INT("auth", "token_ttl", 86400, 60, 31536000, auth_token_ttl_s,
	    "seconds a session token stays valid"),
	INT("auth", "hash_concurrency", 2, 1, 64, auth_hash_concurrency,
	    "password hashes computed at once (each holds hash_memory_kib)"),
	INT("auth", "hash_ops", 2, 1, 10, auth_hash_ops,
	    "argon2id passes per password hash"),
	INT("auth", "hash_memory_kib", 65536, 64, 1048576, auth_hash_memory_kib,
	    "argon2id memory per password hash, in KiB"),
	INT("auth", "hash_wait_ms", 1000, 0, 60000, auth_hash_wait_ms,
	    "milliseconds a login or signup waits for a hashing slot before it "
	    "is answered 503"),
	INT("auth", "hash_queue", 8, 0, 256, auth_hash_queue,
	    "logins and signups that may wait for a hashing slot at once; more "
	    "are answered 503 at once"),
	INT("limits", "auth_per_ip_per_minute", 60, 0, 1000000,
	    limits_auth_per_ip_per_minute,
	    "signups and logins per client address per minute (0: off)"),
	INT("limits", "auth_per_user_per_minute", 10, 0, 1000000,
	    limits_auth_per_user_per_minute,
	    "signups and logins per username per minute (0: off)"),
	INT("limits", "sends_per_second", 50, 0, 1000000, limits_sends_per_second,
	    "messages a user may send per second, sustained (0: off)"),
	INT("limits", "sends_burst", 200, 1, 1000000, limits_sends_burst,
	    "messages a user may send at once before sends_per_second applies"),
	INT("limits", "rest_per_minute", 600, 0, 10000000, limits_rest_per_minute,
	    "REST requests per user per minute (0: off)"),
	INT("limits", "frames_per_second", 200, 0, 1000000,
	    limits_frames_per_second,
	    "frames of any type one WebSocket may send per second, sustained; "
	    "past the burst the socket is closed with 4008 (0: off)"),
	INT("limits", "frames_burst", 1000, 1, 1000000, limits_frames_burst,
	    "frames one WebSocket may send at once before frames_per_second "
	    "applies"),
	INT("messages", "edit_window", 172800, 0, 315360000,
	    messages_edit_window_s,
	    "seconds after sending during which the sender may edit a message"),
	STR("api", "listen", "/run/parley/api.sock", api_listen,
	    "FastCGI socket: a unix socket path or HOST:PORT"),
	INT("api", "threads", 16, 1, 256, api_threads,
	    "worker threads, each with its own database and Redis connection"),
	INT("api", "max_body_bytes", 65536, 1024, 1048576, api_max_body_bytes,
	    "largest accepted request body"),
	INT("api", "metrics_port", 0, 0, 65535, api_metrics_port,
	    "TCP port of GET /metrics on 127.0.0.1 (0: off)"),
	INT("api", "max_attachment_bytes", 26214400, 1024, 1073741824,
	    api_max_attachment_bytes,
	    "largest accepted upload (POST /api/v1/attachments); the web "
	    "server's body limit on that route must be the same"),
	STR("attachments", "dir", "/var/lib/parley/attachments", attachments_dir,
	    "directory of uploaded files and their thumbnails: parley-api "
	    "writes it, the web server serves from it"),
	INT("attachments", "image_concurrency", 2, 1, 64,
	    attachments_image_concurrency,
	    "uploaded images decoded at once for their size and thumbnail "
	    "(each may hold 4 bytes a pixel, up to 50 megapixels); more wait"),
	INT("relay", "port", 8091, 1, 65535, relay_port,
	    "TCP port the relay listens on"),
	STR("relay", "bind", "127.0.0.1", relay_bind,
	    "address the relay listens on (empty: every address)"),
	STR("relay", "public_url", "ws://127.0.0.1:8091/ws", relay_public_url,
	    "WebSocket URL clients are given by discovery"),
	STR("relay", "region", "default", relay_region,
	    "region name used by discovery"),
	STR("relay", "id", "", relay_id,
	    "relay id in the registry (empty: host name and port)"),
	INT("relay", "capacity", 10000, 1, 1000000, relay_capacity,
	    "connections this relay is sized for"),
	INT("relay", "max_jobs", 16384, 16, 10000000, relay_max_jobs,
	    "database and Redis jobs the relay queues at most; past it frames "
	    "are refused with an error 'unavailable'"),
	INT("relay", "max_jobs_per_connection", 256, 1, 100000,
	    relay_max_jobs_per_connection,
	    "jobs one connection may have queued at most; past it its frames "
	    "are refused with an error 'unavailable'"),
	INT("relay", "fence_after_ms", 10000, 0, 600000, relay_fence_after_ms,
	    "milliseconds without Redis or the registry after which the relay "
	    "closes its sockets with 1001 and deregisters, until both are back "
	    "(0: never)"),
	INT("relay", "session_check_interval", 60, 1, 3600,
	    relay_session_check_interval_s,
	    "seconds between checks of each open socket's session against the "
	    "database (revoked or expired sessions are closed with 4003)"),
	STR("discovery", "backend", "redis", discovery_backend,
	    "where relays register and parley-api finds them: redis or "
	    "zookeeper"),
	STR("discovery", "zookeeper", "", discovery_zookeeper,
	    "the ZooKeeper ensemble, host:port,host:port,... (backend "
	    "zookeeper)"),
	INT("discovery", "zookeeper_session_timeout_ms", 6000, 1000, 60000,
	    discovery_zookeeper_session_timeout_ms,
	    "milliseconds ZooKeeper keeps a silent session; a relay's entry "
	    "goes this long after the relay"),
	STR("discovery", "region", "", discovery_region,
	    "the region GET /api/v1/discover prefers when a request names none"),
	INT("notify", "grace_ms", 3000, 0, 600000, notify_grace_ms,
	    "milliseconds a push waits for the user to read the message"),
	INT("notify", "claim_idle_ms", 30000, 100, 3600000, notify_claim_idle_ms,
	    "milliseconds a job may sit unacknowledged before another notifier "
	    "takes it over"),
	INT("notify", "max_retries", 8, 0, 100, notify_max_retries,
	    "retries of a push after 429, 5xx or network errors before it is "
	    "dead-lettered"),
	INT("notify", "preview_bytes", 120, 0, 1024, notify_preview_bytes,
	    "bytes of the message body shown in a push (cut at a character)"),
	INT("notify", "content_free", 0, 0, 1, notify_content_free,
	    "1: pushes carry no sender name and no preview"),
	INT("notify", "metrics_port", 0, 0, 65535, notify_metrics_port,
	    "TCP port of GET /metrics on 127.0.0.1 (0: off)"),
	STR("apns", "url", "https://api.push.apple.com", apns_url,
	    "APNs origin; /3/device/<token> is appended"),
	STR("apns", "key_file", "", apns_key_file,
	    "the team's .p8 signing key (empty: APNs pushes are off)"),
	STR("apns", "key_id", "", apns_key_id, "the .p8 key's id (JWT kid)"),
	STR("apns", "team_id", "", apns_team_id, "the team id (JWT iss)"),
	STR("apns", "topic", "", apns_topic, "the app's bundle id (apns-topic)"),
	STR("apns", "ca_file", "", apns_ca_file,
	    "CA bundle for the APNs server (empty: the system's)"),
	INT("apns", "token_lifetime_s", 2400, 1, 3300, apns_token_lifetime_s,
	    "seconds a provider JWT is reused before a new one is signed"),
	STR("fcm", "url", "https://fcm.googleapis.com", fcm_url,
	    "FCM origin; /v1/projects/<project_id>/messages:send is appended"),
	STR("fcm", "token_url", "", fcm_token_url,
	    "OAuth2 token endpoint (empty: the service account's token_uri)"),
	STR("fcm", "service_account_file", "", fcm_service_account_file,
	    "the service-account JSON (empty: FCM pushes are off)"),
	STR("fcm", "ca_file", "", fcm_ca_file,
	    "CA bundle for FCM and the token endpoint (empty: the system's)"),
	INT("presence", "heartbeat_interval", 5, 1, 300,
	    presence_heartbeat_interval_s,
	    "seconds between client heartbeats"),
	INT("presence", "timeout", 30, 1, 3600, presence_timeout_s,
	    "seconds without a heartbeat before a device is offline"),
	INT("presence", "grace", 5, 0, 3600, presence_grace_s,
	    "seconds after the last socket closes before a user is offline"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **str_field(struct pl_config *cfg, const struct key *k)
{
	return (char **)((char *)cfg + k->offset);
}

static long long *int_field(struct pl_config *cfg, const struct key *k)
{
	return (long long *)((char *)cfg + k->offset);
}

/* Sets one key from text. Returns 0, or -1 with a reason in err. */
static int set_value(struct pl_config *cfg, const struct key *k,
		     const char *value, char *err, size_t errlen)
{
	if (k->type == KEY_STR) {
		char *copy = strdup(value);

		if (!copy) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*str_field(cfg, k));
		*str_field(cfg, k) = copy;
		return 0;
	}

	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno || end == value || *end != '\0') {
		snprintf(err, errlen, "'%s' is not an integer", value);
		return -1;
	}
	if (v < k->min || v > k->max) {
		snprintf(err, errlen, "%lld is out of range %lld..%lld", v,
			 k->min, k->max);
		return -1;
	}
	*int_field(cfg, k) = v;
	return 0;
}

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

void pl_config_init(struct pl_config *cfg)
{
	char ignored[8];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++)
		if (set_value(cfg, &keys[i], keys[i].def, ignored,
			      sizeof(ignored)))
			abort();	/* a default outside its own range */
	cfg->log_level_value = PL_LOG_INFO;
}

void pl_config_release(struct pl_config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].type == KEY_STR) {
			free(*str_field(cfg, &keys[i]));
			*str_field(cfg, &keys[i]) = NULL;
		}
	}
}

struct parse_state {
	struct pl_config *cfg;
	char *err;
	size_t errlen;
};

/* inih calls this per key; returning 0 makes ini_parse() report the line. */
static int on_ini_key(void *user, const char *section, const char *name,
		      const char *value)
{
	struct parse_state *st = user;
	const struct key *k = find_key(section, name);
	char why[256];

	if (st->err[0])
		return 0;	/* keep the first error */
	if (!k) {
		snprintf(st->err, st->errlen, "unknown key '%s' in section [%s]",
			 name, section);
		return 0;
	}
	if (set_value(st->cfg, k, value, why, sizeof(why))) {
		snprintf(st->err, st->errlen, "[%s] %s: %s", section, name, why);
		return 0;
	}
	return 1;
}

static void env_name(const struct key *k, char *out, size_t outlen)
{
	size_t n = (size_t)snprintf(out, outlen, "PARLEY_%s_%s", k->section,
				    k->name);

	for (size_t i = 0; i < n && i < outlen; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* Applies the environment overrides, then the checks across keys. */
/*
 * The values [discovery] backend takes: the names of lib/registry.c's
 * backends (test_config checks that the two lists agree). Kept here so the
 * configuration does not depend on the registry, which depends on it.
 */
static const char *const discovery_backends[] = { "redis", "zookeeper" };

int pl_config_discovery_backend_known(const char *name)
{
	for (size_t i = 0; i < sizeof(discovery_backends) /
			       sizeof(discovery_backends[0]); i++)
		if (strcmp(name, discovery_backends[i]) == 0)
			return 1;
	return 0;
}

int pl_config_redis_node(const struct pl_config *cfg, size_t i, char *host,
			 size_t hostlen, int *port)
{
	const char *p = cfg->redis_cluster, *end, *colon = NULL;
	char *num_end;
	size_t hl;
	long v;

	for (size_t k = 0; k < i && *p; k++)
		p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',');
	if (!*p)
		return -1;
	end = p + strcspn(p, ",");
	for (const char *c = p; c < end; c++)
		if (*c == ':')
			colon = c;
	if (!colon || colon == p)
		return -1;
	hl = (size_t)(colon - p);
	/* [::1]:6379: the brackets are not the address. */
	if (p[0] == '[' && hl >= 2 && colon[-1] == ']') {
		p++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	v = strtol(colon + 1, &num_end, 10);
	if (num_end != end || colon + 1 == end || v < 1 || v > 65535)
		return -1;
	memcpy(host, p, hl);
	host[hl] = '\0';
	*port = (int)v;
	return 0;
}

size_t pl_config_redis_nodes(const struct pl_config *cfg)
{
	size_t n = 0;

	for (const char *p = cfg->redis_cluster; *p; p++)
		n += *p == ',';
	return cfg->redis_cluster[0] ? n + 1 : 0;
}

static int finish(struct pl_config *cfg, char *err, size_t errlen)
{
	char why[512];

	for (size_t i = 0; i < NKEYS; i++) {
		char name[96];
		const char *value;

		env_name(&keys[i], name, sizeof(name));
		value = getenv(name);
		if (!value)
			continue;
		if (set_value(cfg, &keys[i], value, why, sizeof(why))) {
			snprintf(err, errlen, "environment %s: %s", name, why);
			return -1;
		}
	}
	if (pl_log_level_parse(cfg->log_level, &cfg->log_level_value)) {
		snprintf(err, errlen, "[log] level: '%s' is not one of err, "
			 "warn, info, debug", cfg->log_level);
		return -1;
	}
	if (!pl_config_discovery_backend_known(cfg->discovery_backend)) {
		snprintf(err, errlen, "[discovery] backend: '%s' is not one of "
			 "redis, zookeeper", cfg->discovery_backend);
		return -1;
	}
	for (size_t i = 0; i < pl_config_redis_nodes(cfg); i++) {
		char host[PL_CONFIG_HOST_MAX];
		int port;

		if (pl_config_redis_node(cfg, i, host, sizeof(host), &port)) {
			snprintf(err, errlen, "[redis] cluster: node %zu of '%s' "
				 "is not host:port", i + 1, cfg->redis_cluster);
			return -1;
		}
	}
	if (strcmp(cfg->discovery_backend, "zookeeper") == 0 &&
	    !cfg->discovery_zookeeper[0]) {
		snprintf(err, errlen, "[discovery] zookeeper: the backend "
			 "zookeeper needs its servers, host:port,...");
		return -1;
	}
	return 0;
}

/*
 * The first line of text longer than inih reads whole (INI_MAX_LINE bytes,
 * the newline and NUL included: it would cut it and read the rest as a line
 * of its own), or 0.
 */
static int long_line(const char *text)
{
	int line = 1;

	for (const char *p = text; *p; line++) {
		size_t n = strcspn(p, "\n");

		if (n + 2 > INI_MAX_LINE)
			return line;
		p += n + (p[n] == '\n');
	}
	return 0;
}

int pl_config_parse(struct pl_config *cfg, const char *text, const char *name,
		    char *err, size_t errlen)
{
	struct parse_state st = { cfg, err, errlen };
	char why[512];
	int line;

	err[0] = '\0';
	if ((line = long_line(text)) != 0) {
		snprintf(err, errlen, "%s:%d: the line is longer than %d "
			 "characters", name, line, INI_MAX_LINE - 2);
		return -1;
	}
	line = ini_parse_string(text, on_ini_key, &st);
	if (line != 0) {
		/* ini_parse_string() fails (-2) only when it cannot allocate. */
		snprintf(why, sizeof(why), "%s", err[0] ? err :
			 line < 0 ? "out of memory" : "syntax error");
		snprintf(err, errlen, "%s:%d: %s", name, line > 0 ? line : 0, why);
		return -1;
	}
	return finish(cfg, err, errlen);
}

/*
 * Reads the file at path into a new NUL-terminated string (*out). Returns 0,
 * or -1 when it cannot be read or is over PL_CONFIG_MAX_BYTES.
 */
static int read_file(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	char *text = f ? malloc(PL_CONFIG_MAX_BYTES + 1) : NULL;
	size_t n = 0;
	int rc = -1;

	*out = NULL;
	if (!text)
		goto out;
	n = fread(text, 1, PL_CONFIG_MAX_BYTES + 1, f);
	if (ferror(f) || n > PL_CONFIG_MAX_BYTES)
		goto out;
	text[n] = '\0';
	*out = text;
	text = NULL;
	rc = 0;
out:
	free(text);
	if (f)
		fclose(f);
	return rc;
}

int pl_config_load(struct pl_config *cfg, const char *path, char *err,
		   size_t errlen)
{
	char *text;
	int rc;

	err[0] = '\0';
	if (!path)
		return finish(cfg, err, errlen);
	if (read_file(path, &text)) {
		snprintf(err, errlen, "cannot read '%s'", path);
		return -1;
	}
	rc = pl_config_parse(cfg, text, path, err, errlen);
	free(text);
	return rc;
}

void pl_config_print_help(FILE *out)
{
	fprintf(out, "configuration keys (section, key, default, environment):\n");
	for (size_t i = 0; i < NKEYS; i++) {
		char name[96];

		env_name(&keys[i], name, sizeof(name));
		fprintf(out, "  [%s] %s = %s", keys[i].section, keys[i].name,
			keys[i].def);
		if (keys[i].type == KEY_INT)
			fprintf(out, " (%lld..%lld)", keys[i].min, keys[i].max);
		fprintf(out, "  %s\n      %s\n", name, keys[i].help);
	}
}

void pl_config_each_key(void (*fn)(const char *section, const char *key,
				   void *arg), void *arg)
{
	for (size_t i = 0; i < NKEYS; i++)
		fn(keys[i].section, keys[i].name, arg);
}

int pl_config_row(size_t i, struct pl_config_row *row)
{
	if (i >= NKEYS)
		return -1;
	row->section = keys[i].section;
	row->name = keys[i].name;
	row->def = keys[i].def;
	row->help = keys[i].help;
	row->is_int = keys[i].type == KEY_INT;
	row->min = keys[i].min;
	row->max = keys[i].max;
	env_name(&keys[i], row->env, sizeof(row->env));
	return 0;
}

const char *pl_config_default_path(void)
{
	const char *env = getenv("PARLEY_CONFIG");

	return env && *env ? env : PL_SYSCONFDIR "/parley/parley.conf";
}
