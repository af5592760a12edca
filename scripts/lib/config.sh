# shellcheck shell=bash
# scripts/lib/config.sh, sourced by scripts/dev: the configuration files a
# stack runs with, rendered from the templates beside deploy/ with the
# values of load_stack (scripts/dev). Each function prints one file; "up"
# writes them into RUNDIR/etc/ and "config NAME" prints them.
#
#   deploy/parley-dev.conf.in       parley.conf (relay 1) and relay2.conf
#   deploy/parley-dev-push.conf.in  the test stack's [apns] and [fcm]
#   deploy/redis/redis-dev.conf.in  redis.conf
#   deploy/nginx/nginx-dev.conf.in  nginx.conf
#   deploy/apache/apache-dev.conf.in, deploy/apache/parley-site.inc
#                                   apache.conf and apache-site.inc

# render TEMPLATE [NAME=VALUE...]: prints TEMPLATE with every @NAME@
# replaced by VALUE (which may span lines) and its "#:" lines left out.
render() {
	local template=$1 text kv
	shift
	[ -f "$template" ] || die "missing $template"
	text=$(grep -v '^#:' "$template" || true)
	for kv in "$@"; do
		text=${text//"@${kv%%=*}@"/"${kv#*=}"}
	done
	printf '%s\n' "$text"
}

# parley_conf [N]: the configuration, with relay N's [relay] section (the
# stack runs two relays; each is also reachable at its own public URL,
# http://127.0.0.1:HTTP_PORT/r/N/, which discovery hands out).
parley_conf() {
	local n=${1:-1} relay_port=$RELAY_PORT
	[ "$n" = 1 ] || relay_port=$RELAY2_PORT
	local level=info grace_ms=3000 heartbeat=5 timeout=30 grace=5 auth_extra='' limits=''
	local notify_extra='' push='' capacity=10000 relay_extra=''
	if [ "$STACK" = test ]; then
		# Few enough sockets that the fault suite (tests/faults) can fill a
		# relay; PARLEY_RELAY_CAPACITY overrides it.
		capacity=${PARLEY_RELAY_CAPACITY:-200}
		# Short takeover and retry timers, metrics on, and APNs/FCM at the
		# fake push server with the keys made by tests/fake/push-keys.
		notify_extra=$'claim_idle_ms = 2000\nmax_retries = 4\nmetrics_port = '"$NOTIFY_METRICS_PORT"
		push=$(render "$TOP/deploy/parley-dev-push.conf.in" RUNDIR="$RUNDIR" \
			PUSHFAKE_PORT="$PUSHFAKE_PORT")$'\n'
		level=debug grace_ms=300 heartbeat=1 timeout=3 grace=1
		# Sessions of open sockets checked every 3 s, so tests of revoked
		# and expired sessions wait seconds, not a minute. Fencing after
		# 30 s, not 10: the suites restart Redis several times in a row to
		# test the degraded mode, which fencing would end (the cluster bed
		# sets 10 s back and tests fencing itself).
		relay_extra=$'session_check_interval = 3\nfence_after_ms = 30000'
		# Cheap password hashes, and room for a whole suite's signups from
		# one address; the other limits keep their defaults so tests see them.
		auth_extra=$'hash_ops = 1\nhash_memory_kib = 1024'
		limits=$'\n[limits]\nauth_per_ip_per_minute = 600'
	fi
	if [ "$STACK" = bench ]; then
		# Measurements: thousands of accounts made in seconds, and no rate
		# limit in the way. Durability stays as in production.
		level=warn
		auth_extra=$'hash_ops = 1\nhash_memory_kib = 1024'
		limits=$'\n[limits]\nauth_per_ip_per_minute = 0\nauth_per_user_per_minute = 0\nsends_per_second = 0\nrest_per_minute = 0\nframes_per_second = 0'
	fi
	local overlay sets=()
	overlay=$(local_conf)
	[ -z "$overlay" ] || [ -f "$overlay" ] ||
		die "PARLEY_LOCAL_CONF names $overlay, which is not a file"
	if [ -n "$overlay" ]; then
		ini_sets "$overlay" >/dev/null || die "fix $overlay (the operator's settings)"
		mapfile -t sets < <(ini_sets "$overlay")
	fi
	render "$TOP/deploy/parley-dev.conf.in" STACK="$STACK" LEVEL="$level" PG_PORT="$PG_PORT" \
		REDIS_PORT="$REDIS_PORT" RUNDIR="$RUNDIR" AUTH_EXTRA="$auth_extra" \
		RELAY_PORT="$relay_port" PUBLIC_WS_URL="${PUBLIC_URL/#http/ws}" N="$n" \
		CAPACITY="$capacity" RELAY_EXTRA="$relay_extra" GRACE_MS="$grace_ms" \
		NOTIFY_EXTRA="$notify_extra" PUSH="$push" HEARTBEAT="$heartbeat" \
		TIMEOUT="$timeout" GRACE="$grace" LIMITS="$limits" \
		API_METRICS_PORT="$API_METRICS_PORT" |
		if [ -n "$overlay" ]; then
			printf '; %s merged in below, last\n' "$overlay"
			ini_set "${sets[@]}"
		else
			cat
		fi
}

# local_conf: the operator's own settings for this stack, merged into
# parley.conf and relay2.conf after everything generated (so they win), and
# never written by scripts/dev: the file PARLEY_LOCAL_CONF names (which must
# exist), else RUNDIR/etc/parley.local.conf when there is one. Prints its
# path, or nothing. "down --purge" deletes RUNDIR with the file in it.
local_conf() {
	if [ -n "${PARLEY_LOCAL_CONF:-}" ]; then
		printf '%s\n' "$PARLEY_LOCAL_CONF"
	elif [ -f "$RUNDIR/etc/parley.local.conf" ]; then
		printf '%s\n' "$RUNDIR/etc/parley.local.conf"
	fi
}

redis_conf() {
	render "$TOP/deploy/redis/redis-dev.conf.in" STACK="$STACK" REDIS_PORT="$REDIS_PORT" \
		RUNDIR="$RUNDIR"
}

nginx_conf() {
	local listen=$LISTEN
	[[ $listen != *:* ]] || listen=[$listen]
	render "$TOP/deploy/nginx/nginx-dev.conf.in" RUNDIR="$RUNDIR" HTTP_PORT="$HTTP_PORT" \
		LISTEN="$listen" RELAY_PORT="$RELAY_PORT" RELAY2_PORT="$RELAY2_PORT"
}

# Apache's configuration: deploy/apache's template and the shared routes.
apache_conf() {
	render "$TOP/deploy/apache/apache-dev.conf.in" RUNDIR="$RUNDIR" HTTP_PORT="$APACHE_PORT"
}

apache_site() {
	render "$TOP/deploy/apache/parley-site.inc" API_SOCKET="$RUNDIR/run/api.sock" \
		RELAY="127.0.0.1:$RELAY_PORT" WWW="$RUNDIR/www" ERRORS="$RUNDIR/errors" \
		ATTACHMENTS="$RUNDIR/attachments"
}
