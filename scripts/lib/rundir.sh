# shellcheck shell=bash
# scripts/lib/rundir.sh, sourced by scripts/dev: a stack's runtime dir, laid
# out and refreshed by "up": copies of the binaries, sql/ and www/ (with the
# client library, scripts/lib/www.sh), and the configuration
# (scripts/lib/config.sh) in etc/.

# Services whose binary or configuration prepare_rundir found changed.
declare -A CHANGED=()

# copy_if_changed SRC DST: installs SRC as DST (atomically, so a running
# program or script keeps its old file) unless they are equal; succeeds if it
# copied.
copy_if_changed() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then return 1; fi
	cp "$1" "$2.new"
	chmod 0755 "$2.new"
	mv -f "$2.new" "$2"
}

# write_if_changed DST: replaces DST with stdin unless equal; succeeds if it
# wrote.
write_if_changed() {
	local tmp=$1.new
	cat >"$tmp"
	if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
		rm -f "$tmp"
		return 1
	fi
	chmod 0644 "$tmp"
	mv -f "$tmp" "$1"
}

# replace_dir SRC DST [GLOB]: DST becomes a copy of SRC's contents (only the
# files matching GLOB, when given).
replace_dir() {
	local f
	rm -rf "$2.new"
	mkdir -p "$2.new"
	if [ $# -gt 2 ]; then
		for f in "$1"/$3; do
			[ ! -f "$f" ] || cp "$f" "$2.new/"
		done
	elif [ -d "$1" ]; then
		cp -R "$1/." "$2.new/"
	fi
	swap_in_dir "$2"
}

# swap_in_dir DST: DST.new, made readable by all, replaces DST.
swap_in_dir() {
	chmod -R a+rX "$1.new"
	rm -rf "$1"
	mv "$1.new" "$1"
}

# check_local_conf: with the operator's settings (local_conf), both relays'
# parley.conf as "up" would write them must pass parley-admin
# --check-config (every key known, every value in range); else dies before
# any file is written, with the reason, and the running stack is left as it
# was.
check_local_conf() {
	local overlay n out
	overlay=$(local_conf)
	[ -n "$overlay" ] || return 0
	[ -f "$overlay" ] || die "PARLEY_LOCAL_CONF names $overlay, which is not a file"
	ini_sets "$overlay" >/dev/null ||
		die "fix $overlay (the operator's settings for this stack) and run up again"
	for n in 1 2; do
		if ! out=$(parley_conf "$n" | "$BUILDDIR/admin/parley-admin" -c /dev/stdin \
			--check-config 2>&1); then
			die "with $overlay merged in, parley.conf is refused: ${out#parley-admin: }"
		fi
	done
}

# Lays out the runtime dir and refreshes the copies and the configuration.
# Sets CHANGED[service]=1 for services whose binary or configuration changed.
prepare_rundir() {
	local b missing=()
	for b in "$PG_BIN/postgres" "$PG_BIN/initdb" /usr/bin/redis-server /usr/bin/redis-cli /usr/sbin/nginx; do
		[ -x "$b" ] || missing+=("$b")
	done
	[ ${#missing[@]} -eq 0 ] || die "not installed: ${missing[*]} (run scripts/dev up without --no-install)"
	for b in "${BINARIES[@]}"; do
		[ -x "$BUILDDIR/$b" ] || die "missing $BUILDDIR/$b: build first (scripts/dev up without --no-build, or set PARLEY_BUILDDIR)"
	done
	ensure_user
	check_local_conf

	local marker=$RUNDIR/.parley-stack
	if [ -d "$RUNDIR" ]; then
		[ -w "$RUNDIR" ] || die "$RUNDIR is not writable by $(id -un): remove it as its owner, or set PARLEY_RUNDIR"
		if [ -f "$marker" ] && [ "$(cat "$marker")" != "$STACK" ]; then
			die "$RUNDIR belongs to the '$(cat "$marker")' stack, not '$STACK': set PARLEY_RUNDIR"
		fi
	fi
	mkdir -p "$RUNDIR"/{bin,etc,pg,redis,log,run/nginx,attachments}
	echo "$STACK" >"$marker"
	chmod 0700 "$RUNDIR/pg"

	CHANGED=()
	if copy_if_changed "$BUILDDIR/fcgi/parley-api" "$RUNDIR/bin/parley-api"; then CHANGED[api]=1; fi
	if copy_if_changed "$BUILDDIR/relay/parley-relay" "$RUNDIR/bin/parley-relay"; then
		CHANGED[relay]=1 CHANGED[relay2]=1
	fi
	if copy_if_changed "$BUILDDIR/notify/parley-notify" "$RUNDIR/bin/parley-notify"; then CHANGED[notify]=1; fi
	if [ "$STACK" = test ]; then
		bash "$TOP/tests/fake/push-keys" "$RUNDIR/etc/push" "$PUSHFAKE_PORT" ||
			die "cannot generate the test push keys in $RUNDIR/etc/push"
		if copy_if_changed "$TOP/tests/fake/push-server.mjs" "$RUNDIR/bin/push-server.mjs"; then
			CHANGED[pushfake]=1
		fi
	fi
	copy_if_changed "$BUILDDIR/admin/parley-admin" "$RUNDIR/bin/parley-admin" || true
	# A running supervisor keeps its own copy of the script open: no restart.
	copy_if_changed "$TOP/scripts/supervise" "$RUNDIR/bin/supervise" || true
	replace_dir "$TOP/sql" "$RUNDIR/sql" '*.sql'
	# www/ with the client library at js/parley-client/ (scripts/lib/www.sh).
	rm -rf "$RUNDIR/www.new" && mkdir -p "$RUNDIR/www.new" &&
		copy_www "$TOP" "$RUNDIR/www.new" && swap_in_dir "$RUNDIR/www" ||
		die "cannot lay out the web client in $RUNDIR/www"
	replace_dir "$TOP/deploy/apache/errors" "$RUNDIR/errors" '*.json'

	if parley_conf 1 | write_if_changed "$RUNDIR/etc/parley.conf"; then
		CHANGED[api]=1 CHANGED[relay]=1 CHANGED[notify]=1
	fi
	if parley_conf 2 | write_if_changed "$RUNDIR/etc/relay2.conf"; then CHANGED[relay2]=1; fi
	if redis_conf | write_if_changed "$RUNDIR/etc/redis.conf"; then CHANGED[redis]=1; fi
	if nginx_conf | write_if_changed "$RUNDIR/etc/nginx.conf"; then CHANGED[nginx]=1; fi
	if apache_conf | write_if_changed "$RUNDIR/etc/apache.conf"; then CHANGED[apache]=1; fi
	if apache_site | write_if_changed "$RUNDIR/etc/apache-site.inc"; then CHANGED[apache]=1; fi
	if [ ! -s "$RUNDIR/etc/secret" ]; then
		# 32 random bytes as 64 hex digits, no newline.
		(umask 077 && head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$RUNDIR/etc/secret")
	fi
	chmod 0600 "$RUNDIR/etc/secret"

	local s
	for s in "${SERVICES[@]}" "${OPTIONAL_SERVICES[@]}" pushfake migrate nginx-access apache-access; do
		touch "$RUNDIR/log/$s.log"
	done
	if is_root; then
		chown -R parley:parley "$RUNDIR/bin" "$RUNDIR/etc" "$RUNDIR/sql" "$RUNDIR/www" "$RUNDIR/errors" \
			"$RUNDIR/log" "$RUNDIR/run" "$RUNDIR/redis" "$RUNDIR/attachments"
		chown parley:parley "$RUNDIR" "$RUNDIR/pg" "$marker"
	fi
}

# Fails unless the stack's runtime dir has been laid out by "up".
require_rundir() {
	[ -x "$RUNDIR/bin/supervise" ] && [ -f "$RUNDIR/etc/parley.conf" ] && return 0
	die "the $STACK stack is not set up in $RUNDIR: run '$DEV_CMD up' first"
}
