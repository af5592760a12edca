# shellcheck shell=bash
# scripts/lib/packages.sh, sourced by scripts/dev: what a machine needs to
# build and test Parley (Debian packages, the browser tests' npm modules),
# and building a tree.

# Debian packages to build and run Parley ("up").
PACKAGES=(
	build-essential autoconf automake pkg-config
	libfcgi-dev libpq-dev libhiredis-dev libjansson-dev libwebsockets-dev
	libcurl4-openssl-dev libssl-dev libjwt-dev libsodium-dev libinih-dev
	libcmocka-dev libev-dev libwebsockets-evlib-ev libmicrohttpd-dev
	libzookeeper-mt-dev libvips-dev
	postgresql-15 postgresql-client-15 redis-server redis-tools nginx
	curl procps openssl
)
# And what only the checks and benchmarks need ("check", "faults", "leaks",
# "fuzz", "bench"): Apache for the REST suites' second run, the e2e suites'
# and example client's Python libraries (YAML for the alert rules' check),
# node for the fake push server, clang's sanitizer and fuzzer runtimes, wrk,
# groff and man to check the manual pages (tests/man.sh), and the cluster
# bed's reduced run (scripts/cluster check): ZooKeeper and its Java,
# iptables, ping, kazoo.
CHECK_PACKAGES=(
	apache2 libapache2-mod-xsendfile wrk python3 python3-websocket python3-websockets
	python3-yaml nodejs clang libclang-rt-14-dev groff-base man-db
	zookeeper default-jre-headless iptables iputils-ping iproute2
	util-linux python3-kazoo
)

# And what building the Debian packages needs besides PACKAGES (debian/control's
# Build-Depends, and lintian) and testing them (ss), for "package-test"
# (tests/package/run.sh).
PACKAGE_TEST_PACKAGES=(
	debhelper dpkg-dev fakeroot lintian groff-base iproute2
)

# ensure_packages [--check | --package]: installs the packages of PACKAGES
# (with --check, and of CHECK_PACKAGES; with --package, and of
# PACKAGE_TEST_PACKAGES) that are missing (apt-get update once).
ensure_packages() {
	local missing=() p st want=("${PACKAGES[@]}")
	case ${1:-} in
	--check) want+=("${CHECK_PACKAGES[@]}") ;;
	--package) want+=("${PACKAGE_TEST_PACKAGES[@]}") ;;
	esac
	command -v dpkg-query >/dev/null || die "dpkg-query not found: Parley's scripts expect Debian bookworm"
	for p in "${want[@]}"; do
		st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[[ $st == ii* ]] || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	say "installing missing Debian packages: ${missing[*]}"
	local sudo=()
	if ! is_root; then
		if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			die "missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}"
		fi
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# What the browser tests (tests/browser) need: Debian's Chromium, node and
# npm, and playwright-core from npm (pinned by tests/browser/package-lock.json
# to a version that runs on Debian bookworm's Node.js 18); the client
# library's tests (clients/js/test) need node, npm and the ws package
# (clients/js/package-lock.json). Installed by
# "check" when missing; without them tests/stack-tests.sh reports the browser
# tests skipped, or failed under CI=true. npm is Debian's package only where
# no npm exists: NodeSource's nodejs bundles its own and conflicts with it.
BROWSER_PACKAGES=(chromium)

# node_bin: prints the node every check uses (npm ci, the browser tests, the
# test stack's fake push server): PARLEY_NODE, else Debian's /usr/bin/node,
# what a fresh bookworm machine has, else the first on PATH; nothing if none.
# tests/stack-tests.sh picks the same one.
node_bin() {
	if [ -n "${PARLEY_NODE:-}" ]; then
		echo "$PARLEY_NODE"
	elif [ -x /usr/bin/node ]; then
		echo /usr/bin/node
	else
		command -v node || true
	fi
}

ensure_browser_tests() {
	local p st missing=() node
	for p in "${BROWSER_PACKAGES[@]}"; do
		st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[[ $st == ii* ]] || missing+=("$p")
	done
	command -v npm >/dev/null || missing+=(npm)
	if [ ${#missing[@]} -gt 0 ]; then
		if is_root; then
			say "installing the browser tests' Debian packages: ${missing[*]}"
			env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
				{ env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
				  env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } ||
				warn "could not install ${missing[*]}: the browser tests cannot run"
		else
			warn "${missing[*]} not installed: the browser tests cannot run (apt-get install ${missing[*]})"
		fi
	fi
	npm_ci_in "$TOP/tests/browser" playwright-core
	npm_ci_in "$TOP/clients/js" ws
}

# npm_ci_in DIR MODULE: npm ci in DIR (pinned by its package-lock.json)
# when node_modules is missing, lacks MODULE or is older than the lock file.
# Failures are warnings: tests/stack-tests.sh then reports what cannot run.
npm_ci_in() {
	local dir=$1 module=$2 node
	[ -f "$dir/package-lock.json" ] || return 0
	node=$(node_bin)
	if [ -z "$node" ] || [ ! -x "$node" ] || ! command -v npm >/dev/null; then
		warn "node and npm not found: the tests in ${dir#"$TOP"/} cannot run (apt-get install nodejs npm)"
		return 0
	fi
	if [ -f "$dir/node_modules/.package-lock.json" ] && [ -d "$dir/node_modules/$module" ] &&
		[ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
		return 0
	fi
	say "npm ci in ${dir#"$TOP"/} (node $("$node" --version 2>/dev/null))"
	# npm runs under "#!/usr/bin/env node": the same node as the tests.
	(cd "$dir" && PATH=$(dirname "$node"):$PATH npm ci --no-audit --no-fund) ||
		warn "npm ci failed in ${dir#"$TOP"/}: its tests cannot run"
}

# build_tree DIR [CONFIGURE_ARGS...]: ./autogen.sh if there is no configure,
# configure DIR if it has no Makefile (a VPATH build when DIR is not the
# source tree), then make -j2.
build_tree() {
	local dir=$1
	shift
	if [ ! -x "$TOP/configure" ]; then
		say "running ./autogen.sh"
		(cd "$TOP" && ./autogen.sh) || return 1
	fi
	mkdir -p "$dir" || return 1
	if [ ! -f "$dir/Makefile" ]; then
		if [ "$(cd "$dir" && pwd)" != "$TOP" ] && [ -f "$TOP/config.status" ]; then
			warn "cannot build in '$dir': the source tree is configured in place; run 'make distclean' in $TOP first"
			return 1
		fi
		say "configuring in $dir: configure $*"
		(cd "$dir" && "$TOP/configure" "$@") || return 1
	fi
	say "building in $dir"
	make -C "$dir" -j2
}
