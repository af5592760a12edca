# shellcheck shell=bash
# scripts/lib/services.sh, sourced by scripts/dev: one stack's services, each
# run under scripts/supervise in a session of its own: how each is started,
# probed for readiness and stopped, and how their processes are found.

# PostgreSQL settings of the bench stack (bench/run reports each as the
# server has it).
PG_BENCH_SETTINGS=(
	-c shared_buffers=2GB -c wal_buffers=64MB -c max_wal_size=8GB
	-c checkpoint_timeout=15min -c checkpoint_completion_target=0.9
	-c wal_compression=lz4 -c jit=off -c autovacuum_naptime=5s
)

# Creates the service user when running as root.
ensure_user() {
	is_root || return 0
	id -u parley >/dev/null 2>&1 && return 0
	say "creating system user parley"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin parley
}

# Runs a command as the service user, in the runtime dir (PostgreSQL's tools
# fail in a working directory they cannot read).
as_svc() { (cd "$RUNDIR" && exec "${AS_SVC[@]}" "${SVC_ENV[@]}" "$@"); }

pidfile() { echo "$RUNDIR/run/$1.pid"; }
childfile() { echo "$RUNDIR/run/$1.child.pid"; }
logfile() { echo "$RUNDIR/log/$1.log"; }

valid_service() {
	local s
	for s in "${SERVICES[@]}" "${OPTIONAL_SERVICES[@]}"; do [ "$s" = "$1" ] && return 0; done
	return 1
}

where() {
	case $1 in
	postgres) echo "port $PG_PORT" ;;
	redis) echo "port $REDIS_PORT" ;;
	api) echo "socket $RUNDIR/run/api.sock" ;;
	relay) echo "port $RELAY_PORT" ;;
	relay2) echo "port $RELAY2_PORT" ;;
	notify) [ "$STACK" = test ] && echo "metrics port $NOTIFY_METRICS_PORT" || echo "-" ;;
	pushfake) echo "port $PUSHFAKE_PORT" ;;
	nginx) echo "port $HTTP_PORT" ;;
	apache) echo "port $APACHE_PORT" ;;
	esac
}

# ---------------------------------------------------------------------------
# Processes

# True while pid $1 exists and is not a zombie.
alive() {
	local stat
	[ -n "$1" ] || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# Prints the pid of NAME's supervisor and succeeds if it is running.
supervisor_pid() {
	local pid cmd
	pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
	alive "$pid" || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *supervise\ "$1"\ * ]] || return 1
	echo "$pid"
}

# Prints the pid of NAME's service process and succeeds if it is running.
child_pid() {
	local pid
	supervisor_pid "$1" >/dev/null || return 1
	pid=$(cat "$(childfile "$1")" 2>/dev/null) || return 1
	alive "$pid" || return 1
	echo "$pid"
}

# Prints the pids of the live (not zombie) processes in session $1.
session_pids() {
	local d stat f
	for d in /proc/[0-9]*; do
		stat=$(cat "$d/stat" 2>/dev/null) || continue
		stat=${stat##*) }
		read -ra f <<<"$stat"
		[ "${f[3]}" = "$1" ] && [ "${f[0]}" != Z ] && echo "${d#/proc/}"
	done
	return 0
}

# Prints the pids of the service user's processes whose working directory is
# in the runtime dir (root only: as another user this cannot tell a service
# from the caller's own shell).
rundir_pids() {
	is_root || return 0
	local uid d cwd
	uid=$(id -u "$SVC_USER" 2>/dev/null) || return 0
	for d in /proc/[0-9]*; do
		[ "$(stat -c %u "$d" 2>/dev/null)" = "$uid" ] || continue
		cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
		case $cwd in
		"$RUNDIR" | "$RUNDIR"/*) echo "${d#/proc/}" ;;
		esac
	done
	return 0
}

# Prints how many whole seconds process $1 has been running.
proc_age() {
	local stat f up
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	stat=${stat##*) }
	read -ra f <<<"$stat"
	read -r up _ </proc/uptime
	# Field 22 of /proc/PID/stat (index 19 here) is the start time in ticks.
	echo $(( ${up%.*} - f[19] / $(getconf CLK_TCK) ))
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------
# Services

# Sets CMD (the service's foreground command) and STOPSIG.
service_cmd() {
	STOPSIG=TERM
	case $1 in
	postgres)
		CMD=("$PG_BIN/postgres" -D "$RUNDIR/pg" -p "$PG_PORT" -k "$RUNDIR/run"
			-c listen_addresses=127.0.0.1)
		# Every stack keeps initdb's durability (fsync, synchronous_commit
		# and full_page_writes on), as production does: the fault suite
		# crashes PostgreSQL (postgres-kill) and finds every acked message
		# again; the whole make check spends seconds on it.
		# The bench stack is tuned as README "Benchmarks" documents:
		# durability as initdb sets it (fsync, synchronous_commit and
		# full_page_writes on), memory and checkpoints sized for the
		# machine, no JIT (whose compile time lands on one message).
		[ "$STACK" != bench ] || CMD+=("${PG_BENCH_SETTINGS[@]}")
		# SIGTERM is PostgreSQL's "smart" shutdown, which waits for clients.
		STOPSIG=INT
		;;
	redis) CMD=(/usr/bin/redis-server "$RUNDIR/etc/redis.conf") ;;
	api | relay | notify)
		CMD=("$RUNDIR/bin/parley-$1" -c "$RUNDIR/etc/parley.conf") ;;
	relay2) CMD=("$RUNDIR/bin/parley-relay" -c "$RUNDIR/etc/relay2.conf") ;;
	nginx)
		CMD=(/usr/sbin/nginx -c "$RUNDIR/etc/nginx.conf" -p "$RUNDIR/run/nginx/"
			-e "$RUNDIR/log/nginx.log" -g 'daemon off;') ;;
	apache) CMD=(/usr/sbin/apache2 -f "$RUNDIR/etc/apache.conf" -DFOREGROUND) ;;
	pushfake)
		local d=$RUNDIR/etc/push
		CMD=("$(node_bin)" "$RUNDIR/bin/push-server.mjs" --port "$PUSHFAKE_PORT"
			--cert "$d/tls.crt" --key "$d/tls.key" --apns-pub "$d/apns.pub"
			--key-id TESTKEY123 --team-id TESTTEAM12 --topic org.parley.test
			--fcm-pub "$d/fcm.pub" --client-email notify@parley-test.iam.gserviceaccount.com
			--project-id parley-test) ;;
	esac
	# PARLEY_WRAP runs Parley's own daemons under a tool (see "leaks").
	if [ -n "${PARLEY_WRAP:-}" ] && [[ ${CMD[0]} == "$RUNDIR"/bin/parley-* ]]; then
		local wrap=()
		read -ra wrap <<<"$PARLEY_WRAP"
		CMD=("${wrap[@]}" "${CMD[@]}")
	fi
}

# Prints the last lines of NAME's log.
show_log() {
	local f
	f=$(logfile "$1")
	[ -s "$f" ] || return 0
	echo "---- last lines of $f ----" >&2
	tail -n "${2:-40}" "$f" >&2
	echo "----" >&2
}

# fail_service NAME REASON: stops NAME, shows its log and exits.
fail_service() {
	warn "$1 failed to start: $2"
	stop_service "$1" >/dev/null 2>&1 || true
	show_log "$1"
	die "the rest of the $STACK stack is left as it is; stop it with: $DEV_CMD down"
}

# Checks that the service looks ready (see wait_ready).
service_ready() {
	case $1 in
	postgres) "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U parley -d postgres -t 1 ;;
	redis) [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] ;;
	api) [ -S "$RUNDIR/run/api.sock" ] && child_pid api >/dev/null ;;
	relay) port_open "$RELAY_PORT" ;;
	relay2) port_open "$RELAY2_PORT" ;;
	pushfake) port_open "$PUSHFAKE_PORT" ;;
	notify)
		# No port to probe: ready once it has stayed up for a second.
		local pid
		pid=$(child_pid notify) && [ "$(proc_age "$pid")" -ge 1 ]
		;;
	nginx) curl -s -o /dev/null -m 2 "http://$LOCAL_HOST:$HTTP_PORT/" ;;
	apache) curl -s -o /dev/null -m 2 "http://127.0.0.1:$APACHE_PORT/" ;;
	esac
}

# wait_ready NAME LOG_OFFSET: waits up to 30 s for NAME to be ready; fails
# at once if the service exits (its supervisor logs that after LOG_OFFSET).
wait_ready() {
	local name=$1 offset=$2 log deadline
	log=$(logfile "$name")
	deadline=$((SECONDS + 30))
	while :; do
		supervisor_pid "$name" >/dev/null || fail_service "$name" "its supervisor is gone"
		if tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -q "^supervise: $name exited"; then
			fail_service "$name" "it exited"
		fi
		service_ready "$name" && return 0
		[ "$SECONDS" -lt "$deadline" ] || fail_service "$name" "not ready after 30 s"
		sleep 0.2
	done
}

# Starts NAME's supervisor in a new session and waits for its pid file.
launch() {
	local name=$1 log pidf
	log=$(logfile "$name")
	pidf=$(pidfile "$name")
	service_cmd "$name"
	rm -f "$pidf" "$(childfile "$name")"
	# Processes of an earlier supervisor that died without cleaning up.
	kill_sessions "$name"
	# shellcheck disable=SC2094 # the log is only appended to
	(
		# The service must hold none of the caller's descriptors (a test
		# harness waits for EOF on its pipes; fd 9 is the stack lock).
		local fd
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			[ "$fd" -le 2 ] || eval "exec $fd>&-" 2>/dev/null || true
		done
		cd "$RUNDIR" || exit 1
		exec setsid "${AS_SVC[@]}" "${SVC_ENV[@]}" /bin/bash "$RUNDIR/bin/supervise" \
			"$name" "$pidf" "$log" --stop-signal "$STOPSIG" -- "${CMD[@]}"
	) </dev/null >>"$log" 2>&1 &
	local deadline=$((SECONDS + 5)) pid
	until pid=$(supervisor_pid "$name"); do
		[ "$SECONDS" -lt "$deadline" ] || fail_service "$name" "its supervisor did not start"
		sleep 0.05
	done
	# The supervisor leads a new session: its pid is the session id, kept to
	# find the service's processes even if the supervisor dies.
	echo "$pid" >"$RUNDIR/run/$name.sid"
}

# Steps before a service starts.
pre_start() {
	case $1 in
	postgres)
		if [ ! -f "$RUNDIR/pg/PG_VERSION" ]; then
			say "initdb $RUNDIR/pg"
			if ! as_svc "$PG_BIN/initdb" -D "$RUNDIR/pg" --locale=C.UTF-8 --encoding=UTF8 \
				-A trust -U parley >>"$(logfile postgres)" 2>&1; then
				find "$RUNDIR/pg" -mindepth 1 -delete
				show_log postgres
				die "initdb failed"
			fi
		fi
		! port_open "$PG_PORT" || die "port $PG_PORT (postgres) is in use by another program"
		;;
	redis) ! port_open "$REDIS_PORT" || die "port $REDIS_PORT (redis) is in use by another program" ;;
	api) rm -f "$RUNDIR/run/api.sock" ;;
	relay) ! port_open "$RELAY_PORT" || die "port $RELAY_PORT (relay) is in use by another program" ;;
	relay2) ! port_open "$RELAY2_PORT" || die "port $RELAY2_PORT (relay2) is in use by another program" ;;
	pushfake) ! port_open "$PUSHFAKE_PORT" || die "port $PUSHFAKE_PORT (pushfake) is in use by another program" ;;
	apache)
		[ -x /usr/sbin/apache2 ] || die "apache2 is not installed"
		! port_open "$APACHE_PORT" || die "port $APACHE_PORT (apache) is in use by another program"
		local msg
		if ! msg=$(as_svc /usr/sbin/apache2 -t -f "$RUNDIR/etc/apache.conf" 2>&1); then
			echo "$msg" >&2
			die "apache2 -t failed for $RUNDIR/etc/apache.conf"
		fi
		;;
	nginx)
		! port_open "$HTTP_PORT" || die "port $HTTP_PORT (nginx) is in use by another program"
		local out
		if ! out=$(as_svc /usr/sbin/nginx -t -q -c "$RUNDIR/etc/nginx.conf" -p "$RUNDIR/run/nginx/" \
			-e "$RUNDIR/log/nginx.log" 2>&1); then
			echo "$out" >&2
			die "nginx -t failed for $RUNDIR/etc/nginx.conf"
		fi
		;;
	esac
}

# Starts NAME unless it runs, and waits until it is ready.
start_service() {
	local name=$1 offset pid
	offset=$(stat -c %s "$(logfile "$name")" 2>/dev/null || echo 0)
	if pid=$(supervisor_pid "$name"); then
		wait_ready "$name" "$offset"
		say "$name already running (pid $(child_pid "$name" || echo "?"), $(where "$name"))"
		return 0
	fi
	pre_start "$name"
	offset=$(stat -c %s "$(logfile "$name")" 2>/dev/null || echo 0)
	launch "$name"
	wait_ready "$name" "$offset"
	say "$name started (pid $(child_pid "$name" || echo "?"), $(where "$name"))"
}

# Kills what is left of the sessions of the given services' supervisors.
kill_sessions() {
	local name sidf sid pids
	for name in "$@"; do
		sidf=$RUNDIR/run/$name.sid
		[ -f "$sidf" ] || continue
		sid=$(cat "$sidf")
		pids=$(session_pids "$sid")
		if [ -n "$pids" ]; then
			warn "$name: killing leftover processes ${pids//$'\n'/ }"
			# shellcheck disable=SC2086
			kill -KILL $pids 2>/dev/null || true
		fi
		rm -f "$sidf"
	done
}

# stop_services NAME...: asks the supervisors to stop (they stop their
# service), waits up to 12 s (PARLEY_STOP_TIMEOUT + 2), then SIGKILLs
# whatever is left of them.
stop_services() {
	local name pid pids=() names=() deadline
	for name in "$@"; do
		if pid=$(supervisor_pid "$name"); then
			echo "$pid" >"$RUNDIR/run/$name.sid"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$name")
		fi
	done
	deadline=$((SECONDS + ${PARLEY_STOP_TIMEOUT:-10} + 2))
	for pid in "${pids[@]}"; do
		while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
	done
	kill_sessions "$@"
	for name in "$@"; do rm -f "$(pidfile "$name")" "$(childfile "$name")"; done
	[ ${#names[@]} -eq 0 ] || say "stopped ${names[*]}"
}

stop_service() { stop_services "$1"; }

