#!/bin/bash
# tests/package/run.sh [--no-install] [--out DIR]: the Debian packages, built,
# installed and run as an operator would, then purged. As root on Debian
# bookworm; "scripts/dev package-test" runs it.
#
#   1. builds parley-server, parley-admin and parley-web with
#      dpkg-buildpackage -us -uc -b from a copy of this checkout's files
#      (tracked, and untracked unless ignored), and runs lintian on them:
#      any error fails;
#   2. installs them with apt-get install ./*.deb (apt brings their runtime
#      dependencies) and checks what installing did: the user parley, the
#      conffiles, the secret, no unit enabled, no site enabled;
#   3. starts a private PostgreSQL (initdb in a temp dir) and Redis on
#      loopback as parley, migrates with the installed /usr/sbin/parley-admin,
#      starts the installed parley-api, parley-relay and parley-notify as
#      parley the way their units' ExecStart does (-c /etc/parley/parley.conf,
#      the shipped conffile, with PARLEY_<SECTION>_<KEY> overrides pointing
#      at the private stores, as a unit's Environment= drop-in would), and a
#      private nginx with the installed site, moved to a loopback port;
#   4. GET /api/v1/health through that nginx must answer {"status":"ok",...},
#      GET / the installed web client, GET /api/v1/discover the relay;
#   5. stops everything it started, purges the packages and the dependencies
#      their installation brought, and deletes its temp dir (also when it
#      fails or is interrupted): the machine is left with the packages and
#      files it had (CI may run on it next).
#
# It refuses to run where Parley is installed already (packages, or files of
# make install), or a port it needs is taken. Ports: PostgreSQL 25432, Redis
# 26379, nginx 28880, the relay 28891 (PARLEY_PKG_PG_PORT,
# PARLEY_PKG_REDIS_PORT, PARLEY_PKG_HTTP_PORT, PARLEY_PKG_RELAY_PORT).
# --no-install: do not install missing build and test packages
# (scripts/lib/packages.sh, PACKAGES and PACKAGE_TEST_PACKAGES); --out DIR:
# keep the .deb files, the build log and lintian's report in DIR.
# Ends with "package-test: N passed, N failed".
set -eEuo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=${PARLEY_PKG_PG_PORT:-25432}
REDIS_PORT=${PARLEY_PKG_REDIS_PORT:-26379}
HTTP_PORT=${PARLEY_PKG_HTTP_PORT:-28880}
RELAY_PORT=${PARLEY_PKG_RELAY_PORT:-28891}
DEBS=(parley-server parley-admin parley-web)
# What make install or these packages put on a machine: none may be there.
PARLEY_PATHS=(/etc/parley /usr/share/parley /usr/sbin/parley-api
	/usr/sbin/parley-relay /usr/sbin/parley-notify /usr/sbin/parley-admin
	/etc/nginx/sites-available/parley /etc/nginx/sites-enabled/parley
	/etc/apache2/sites-available/parley.conf)

say() { echo "package-test: $*"; }
warn() { echo "package-test: $*" >&2; }
die() {
	echo "package-test: $*" >&2
	exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }
# The user the units run their programs as (User=parley, Group=parley).
AS_PARLEY=(setpriv --reuid=parley --regid=parley --init-groups)
as_parley() { "${AS_PARLEY[@]}" "$@"; }

# shellcheck source=scripts/lib/packages.sh
. "$TOP/scripts/lib/packages.sh"

install=1 out=
while [ $# -gt 0 ]; do
	case $1 in
	--no-install) install= ;;
	--out)
		[ $# -ge 2 ] || die "--out needs a directory"
		out=$2
		shift
		;;
	*) die "usage: tests/package/run.sh [--no-install] [--out DIR]" ;;
	esac
	shift
done

PASS=0 FAIL=0
ok() {
	PASS=$((PASS + 1))
	echo "ok - $*"
}
not_ok() {
	FAIL=$((FAIL + 1))
	echo "not ok - $*"
}
# check TEXT COMMAND...: one result line, from COMMAND's status.
check() {
	local text=$1
	shift
	if "$@" >/dev/null; then ok "$text"; else not_ok "$text"; fi
}

# ---------------------------------------------------------------------------
# Before anything: this machine must have no Parley, and the ports be free.

is_root || die "run as root: it installs and purges packages and runs services as the user parley"
command -v dpkg-query >/dev/null || die "dpkg-query not found: this needs Debian bookworm"
[ -d "$TOP/.git" ] || [ -f "$TOP/.git" ] || die "$TOP is no git checkout: the copy to build is made with git ls-files"
[ -f "$TOP/debian/control" ] || die "$TOP/debian/control not found"
for p in "${DEBS[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case $st in
	'' | un*) ;;
	*) die "$p is known to dpkg ('$st'): this test would purge it; purge it first" ;;
	esac
done
for f in "${PARLEY_PATHS[@]}"; do
	if [ -e "$f" ] || [ -L "$f" ]; then
		die "$f exists (make install?): this test would change or delete it"
	fi
done
for port in "$PG_PORT" "$REDIS_PORT" "$HTTP_PORT" "$RELAY_PORT"; do
	if ss -Hltn "sport = :$port" | grep -q .; then
		die "port $port is taken (PARLEY_PKG_*_PORT choose others)"
	fi
done

[ -z "$install" ] || ensure_packages --package

# State to restore: the user and group parley, the installed packages.
had_user='' had_group=''
! getent passwd parley >/dev/null || had_user=1
! getent group parley >/dev/null || had_group=1
installed_packages() {
	dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' | awk '$1 == "ii" { print $2 }' | sort
}

WORK=$(mktemp -d /var/tmp/parley-package.XXXXXX)
chmod 0755 "$WORK"
declare -A PIDS=()
PG_STARTED='' APT_TOUCHED='' RELAY_CONF_MADE='' BEFORE="$WORK/packages.before"

# Stops a process this script started: SIGTERM, then SIGKILL after 15 s.
stop_pid() {
	local name=$1 pid=${PIDS[$1]:-} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name (pid $pid) did not stop on SIGTERM: killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	unset "PIDS[$name]"
}

cleanup() {
	local rc=$? name
	trap - EXIT INT TERM
	set +e
	for name in nginx parley-api parley-relay parley-notify redis; do
		stop_pid "$name"
	done
	if [ -n "$PG_STARTED" ]; then
		"${AS_PARLEY[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1
	fi
	if [ -n "$APT_TOUCHED" ]; then
		say "purging ${DEBS[*]}"
		apt_get purge "${DEBS[@]}" >>"$WORK/log/apt.log" 2>&1 ||
			warn "apt-get purge failed: $(tail -n 5 "$WORK/log/apt.log")"
		# What installing them brought in, and nothing else.
		local added=()
		mapfile -t added < <(comm -13 "$BEFORE" <(installed_packages))
		if [ ${#added[@]} -gt 0 ]; then
			say "purging what their installation brought: ${added[*]}"
			apt_get purge "${added[@]}" >>"$WORK/log/apt.log" 2>&1 ||
				warn "apt-get purge ${added[*]} failed"
		fi
	fi
	if [ -n "$RELAY_CONF_MADE" ]; then
		rm -f /etc/parley/relay-1.conf
		rmdir /etc/parley 2>/dev/null
	fi
	# The package keeps the user parley, as Debian's system users stay;
	# the test takes away what it made.
	if [ -z "$had_user" ] && getent passwd parley >/dev/null; then userdel parley; fi
	if [ -z "$had_group" ] && getent group parley >/dev/null; then groupdel parley; fi
	if [ -n "$out" ]; then
		mkdir -p "$out" && cp "$WORK"/build/*.deb "$WORK"/build/*.changes "$WORK"/build/*.buildinfo \
			"$WORK"/log/build.log \
			"$WORK"/log/lintian.log "$out"/ 2>/dev/null
	fi
	if [ "$rc" -ne 0 ] || [ "$FAIL" -ne 0 ]; then
		for name in "$WORK"/log/*.log; do
			case $name in */build.log | */apt.log) continue ;; esac
			[ -s "$name" ] || continue
			echo "---- ${name##*/} (last lines)"
			tail -n 15 "$name"
		done
	fi
	cd /
	rm -rf "$WORK"
	[ "$rc" -eq 0 ] || [ "$FAIL" -gt 0 ] || FAIL=1
	echo "package-test: $PASS passed, $FAIL failed"
	[ "$rc" -ne 0 ] || [ "$FAIL" -eq 0 ] || rc=1
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_get() {
	env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 "$@"
}

# ---------------------------------------------------------------------------
# 1. Build and lint.

mkdir -p "$WORK/log" "$WORK/build"
version=$(cd "$TOP" && dpkg-parsechangelog -S Version)
src="$WORK/build/parley-${version%-*}"
mkdir -p "$src"
# The checkout's files as they are, without its build outputs.
(cd "$TOP" && git ls-files -z --cached --others --exclude-standard |
	tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$src"
say "building the packages in $src (dpkg-buildpackage -us -uc -b -j2; log: build.log)"
start=$SECONDS
if (cd "$src" && dpkg-buildpackage -us -uc -b -j2) >"$WORK/log/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b built ${DEBS[*]} in $((SECONDS - start)) s"
	grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$WORK/log/build.log" | sed 's/^/# make check: /' || true
else
	not_ok "dpkg-buildpackage failed after $((SECONDS - start)) s"
	tail -n 40 "$WORK/log/build.log"
	exit 1
fi
changes=("$WORK"/build/*.changes)
lintian --fail-on error "${changes[0]}" >"$WORK/log/lintian.log" 2>&1 && lint_rc=0 || lint_rc=$?
sed 's/^/# lintian: /' "$WORK/log/lintian.log" | grep -v 'running with root privileges' || true
check "lintian reports no error" [ "$lint_rc" -eq 0 ]

# ---------------------------------------------------------------------------
# 2. Install, and look at what installing did.

installed_packages >"$BEFORE"
APT_TOUCHED=1
debs=()
for p in "${DEBS[@]}"; do debs+=("$WORK"/build/"$p"_*.deb); done
say "apt-get install ${debs[*]##*/}"
if apt_get install "${debs[@]}" >"$WORK/log/apt.log" 2>&1; then
	ok "apt-get install ./parley-*.deb"
else
	not_ok "apt-get install ./parley-*.deb"
	tail -n 20 "$WORK/log/apt.log"
	exit 1
fi

conffiles=$(dpkg-query -W -f='${Conffiles}\n' "${DEBS[@]}" | awk 'NF { print $1 }' | sort | tr '\n' ' ')
check "conffiles: $conffiles" [ "$conffiles" = "/etc/apache2/sites-available/parley.conf /etc/nginx/sites-available/parley /etc/parley/parley.conf " ]
check "the system user parley exists" getent passwd parley
check "/etc/parley/parley.conf is root:parley 0640" \
	[ "$(stat -c '%U:%G %a' /etc/parley/parley.conf)" = "root:parley 640" ]
check "/etc/parley/secret is parley's alone, 64 hex digits" \
	[ "$(stat -c '%U %a %s' /etc/parley/secret)" = "parley 600 64" ]
check "no unit enabled on install" \
	[ -z "$(find /etc/systemd/system -name 'parley*' 2>/dev/null)" ]
no_site_enabled() { [ ! -e /etc/nginx/sites-enabled/parley ] && [ ! -e /etc/apache2/sites-enabled/parley.conf ]; }
check "no site enabled on install" no_site_enabled
# (The local stacks run copies of the programs from their runtime dirs.)
none_running() { ! pgrep -f '^/usr/sbin/parley-(api|relay|notify)( |$)' >/dev/null; }
check "no installed Parley program running after install" none_running
manpages() {
	local p
	for p in man8/parley-api.8 man8/parley-relay.8 man8/parley-notify.8 man8/parley-admin.8 man5/parley.conf.5; do
		[ -f "/usr/share/man/$p.gz" ] || return 1
	done
}
check "the manual pages parley-api(8), parley-relay(8), parley-notify(8), parley-admin(8), parley.conf(5)" manpages
check "the shipped parley.conf passes parley-api --check-config as parley" \
	as_parley env -i PATH=/usr/sbin:/usr/bin /usr/sbin/parley-api -c /etc/parley/parley.conf --check-config

# ---------------------------------------------------------------------------
# 3. Private stores, the installed programs, the installed site.

mkdir -p "$WORK/pg" "$WORK/redis" "$WORK/run/nginx" "$WORK/etc"
chown parley:parley "$WORK/pg" "$WORK/redis" "$WORK/run" "$WORK/run/nginx" "$WORK/log"
cd "$WORK"

say "PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT (in $WORK)"
as_parley "$PG_BIN/initdb" -D "$WORK/pg" -U parley --auth=trust -E UTF8 --locale=C.UTF-8 \
	>"$WORK/log/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$WORK/log/initdb.log")"
PG_STARTED=1
as_parley "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/log/postgres.log" -w -t 60 \
	-o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/run -c fsync=off" start \
	>/dev/null || die "PostgreSQL did not start"
as_parley "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U parley parley || die "createdb failed"

"${AS_PARLEY[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$WORK/redis" --daemonize no >"$WORK/log/redis.log" 2>&1 &
PIDS[redis]=$!

# wait_for TEXT SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS.
wait_for() {
	local text=$1 secs=$2 deadline=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || { warn "$text: not ready after $secs s"; return 1; }
		sleep 0.2
	done
}
wait_for redis 20 redis-cli -p "$REDIS_PORT" ping || die "Redis did not start"

# What a drop-in with Environment= lines would give the units: this test's
# stores and socket instead of the shipped defaults.
OVERRIDES=(PARLEY_DATABASE_CONNINFO="host=127.0.0.1 port=$PG_PORT dbname=parley user=parley"
	PARLEY_REDIS_PORT="$REDIS_PORT" PARLEY_API_LISTEN="$WORK/run/api.sock")
SVC_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME="$WORK" "${OVERRIDES[@]}")

# Relay 1's configuration, as doc/deploying.md has the operator write it:
# parley.conf with its own [relay] port, public_url and id.
RELAY_CONF_MADE=1
sed -e '/^\[relay\]/,/^\[/{' -e "s|^port = .*|port = $RELAY_PORT|" \
	-e "s|^public_url = .*|public_url = ws://127.0.0.1:$HTTP_PORT/r/1/ws|" \
	-e 's|^id =.*|id = package-test-1|' -e '}' /etc/parley/parley.conf >/etc/parley/relay-1.conf
chgrp parley /etc/parley/relay-1.conf
chmod 0640 /etc/parley/relay-1.conf

if "${SVC_ENV[@]}" /usr/sbin/parley-admin -c /etc/parley/parley.conf migrate \
	>"$WORK/log/migrate.log" 2>&1; then
	ok "/usr/sbin/parley-admin migrate applies /usr/share/parley/sql"
else
	not_ok "/usr/sbin/parley-admin migrate"
	exit 1
fi

# unit_key UNIT INSTANCE KEY: the value of KEY= in the installed UNIT,
# with %i as INSTANCE.
unit_key() {
	sed -n "s/^$3=//p" "/lib/systemd/system/$1" | sed "s/%i/$2/g"
}
# start NAME UNIT [INSTANCE]: what systemd would do for UNIT, without
# systemd: its ExecStartPre, then its ExecStart in the background, as
# parley, with its LimitNOFILE.
start() {
	local name=$1 unit=$2 instance=${3:-} pre=() cmd=() limit=()
	read -ra pre <<<"$(unit_key "$unit" "$instance" ExecStartPre)"
	read -ra cmd <<<"$(unit_key "$unit" "$instance" ExecStart)"
	[ ${#cmd[@]} -gt 0 ] || die "$unit has no ExecStart"
	[ -z "$(unit_key "$unit" "$instance" LimitNOFILE)" ] ||
		limit=(prlimit --nofile="$(unit_key "$unit" "$instance" LimitNOFILE)" --)
	if [ ${#pre[@]} -gt 0 ]; then
		check "$unit: ExecStartPre=${pre[*]}" \
			as_parley "${SVC_ENV[@]}" "${pre[@]}"
	fi
	"${limit[@]}" "${AS_PARLEY[@]}" "${SVC_ENV[@]}" "${cmd[@]}" >"$WORK/log/$name.log" 2>&1 &
	PIDS[$name]=$!
}
if command -v systemd-analyze >/dev/null; then
	cp /lib/systemd/system/parley-relay@.service "$WORK/etc/parley-relay@1.service"
	check "the installed units pass systemd-analyze verify" \
		systemd-analyze verify --man=no /lib/systemd/system/parley-api.service \
		/lib/systemd/system/parley-notify.service "$WORK/etc/parley-relay@1.service"
fi
start parley-api parley-api.service
start parley-relay parley-relay@.service 1
start parley-notify parley-notify.service
wait_for parley-api 30 test -S "$WORK/run/api.sock" || exit 1
wait_for parley-relay 30 bash -c "ss -Hltn 'sport = :$RELAY_PORT' | grep -q ." || exit 1

# The installed site, as an operator edits it for this machine: plain HTTP
# on a loopback port instead of the redirect and TLS, this test's socket,
# relay ports and logs.
site=$WORK/etc/parley-site.conf
awk '
	/^server \{/ { block = $0 "\n"; inblock = 1; next }
	inblock { block = block $0 "\n"; if ($0 ~ /^\}/) { inblock = 0; if (block !~ /return 301/) printf "%s", block }; next }
	{ print }
' /etc/nginx/sites-available/parley |
	sed -e "s|^\(\s*\)listen 443 ssl http2;|\1listen 127.0.0.1:$HTTP_PORT;|" \
		-e '/listen \[::\]:443/d' -e '/^\s*ssl_/d' \
		-e "s|unix:/run/parley/api.sock|unix:$WORK/run/api.sock|" \
		-e "s|127.0.0.1:8091|127.0.0.1:$RELAY_PORT|g" -e "s|127.0.0.1:8092|127.0.0.1:$((RELAY_PORT + 1))|g" \
		-e "s|/var/log/nginx/|$WORK/log/|g" >"$site"
if grep -nE '/run/parley|:809[12]|/var/log/nginx|listen +(80|443)|ssl' "$site"; then
	die "the installed site did not render as expected: the lines above are left"
fi
ln -s /etc/nginx/fastcgi_params /etc/nginx/mime.types "$WORK/etc/"
cat >"$WORK/etc/nginx.conf" <<EOF
# Debian's nginx.conf, reduced: the http {} block includes the site as
# sites-enabled/* would.
worker_processes 1;
pid $WORK/run/nginx.pid;
error_log $WORK/log/nginx-error.log warn;
events { worker_connections 256; }
http {
    include mime.types;
    default_type application/octet-stream;
    client_body_temp_path $WORK/run/nginx/client_body;
    proxy_temp_path $WORK/run/nginx/proxy;
    fastcgi_temp_path $WORK/run/nginx/fastcgi;
    uwsgi_temp_path $WORK/run/nginx/uwsgi;
    scgi_temp_path $WORK/run/nginx/scgi;
    include $site;
}
EOF
NGINX=(nginx -c "$WORK/etc/nginx.conf" -p "$WORK/run/nginx/" -e "$WORK/log/nginx-error.log")
check "nginx -t accepts the installed site" as_parley "${NGINX[@]}" -t -q
"${AS_PARLEY[@]}" "${NGINX[@]}" -g 'daemon off;' >>"$WORK/log/nginx-error.log" 2>&1 &
PIDS[nginx]=$!
say "nginx on 127.0.0.1:$HTTP_PORT with /etc/nginx/sites-available/parley"
wait_for nginx 20 bash -c "ss -Hltn 'sport = :$HTTP_PORT' | grep -q ." || exit 1

# ---------------------------------------------------------------------------
# 4. Through nginx.

URL=http://127.0.0.1:$HTTP_PORT
health() { curl -fsS --max-time 5 "$URL/api/v1/health"; }
if wait_for "GET /api/v1/health" 30 bash -c "curl -fsS --max-time 5 '$URL/api/v1/health' | grep -q '\"status\": *\"ok\"'"; then
	ok "GET /api/v1/health through nginx: $(health)"
else
	not_ok "GET /api/v1/health through nginx: $(health 2>&1 || true)"
fi
check "GET / serves /usr/share/parley/www/index.html" \
	cmp -s <(curl -fsS --max-time 5 "$URL/") /usr/share/parley/www/index.html
# The web client imports the client library (clients/js/src) from there.
check "GET /js/parley-client/index.js serves the client library" \
	cmp -s <(curl -fsS --max-time 5 "$URL/js/parley-client/index.js") \
	/usr/share/parley/www/js/parley-client/index.js
discover=
wait_for "the relay's registration" 30 bash -c "curl -fsS --max-time 5 '$URL/api/v1/discover' | grep -q 'r/1/ws'" || true
discover=$(curl -sS --max-time 5 "$URL/api/v1/discover" 2>&1 || true)
check "GET /api/v1/discover hands out the relay: $discover" \
	grep -q "\"ws://127.0.0.1:$HTTP_PORT/r/1/ws\"" <<<"$discover"
for name in parley-api parley-relay parley-notify; do
	check "$name is still running" kill -0 "${PIDS[$name]}"
done

# ---------------------------------------------------------------------------
# 5. Stop, purge, and see that nothing is left.

for name in nginx parley-api parley-relay parley-notify redis; do
	stop_pid "$name"
done
as_parley "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null
PG_STARTED=
say "purging ${DEBS[*]}"
apt_get purge "${DEBS[@]}" >>"$WORK/log/apt.log" 2>&1
added=()
mapfile -t added < <(comm -13 "$BEFORE" <(installed_packages))
[ ${#added[@]} -eq 0 ] || apt_get purge "${added[@]}" >>"$WORK/log/apt.log" 2>&1
APT_TOUCHED=
check "the installed packages are those of before" cmp -s "$BEFORE" <(installed_packages)
kept=$(find /etc/parley -mindepth 1 -printf '%P ' 2>&1)
check "purge kept the operator's relay-1.conf alone in /etc/parley: $kept" [ "$kept" = "relay-1.conf " ]
rm -f /etc/parley/relay-1.conf
rmdir /etc/parley
RELAY_CONF_MADE=''
left=()
for f in "${PARLEY_PATHS[@]}"; do
	if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done
check "purge left none of Parley's files${left[*]:+: ${left[*]}}" [ ${#left[@]} -eq 0 ]
