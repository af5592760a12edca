#!/bin/bash
# tests/man.sh: the manual pages of the build dir (doc/man, made by make),
# as TAP for make check.
#   - each page renders without a warning from groff (-ww: every warning);
#   - parley.conf(5) lists exactly the keys parley-admin --help lists (the
#     configuration table's own listing, lib/config.c), each in its section
#     with its default, range, description and environment variable;
#   - each program's page names every option its --help names (for
#     parley-admin, every command's too) and every parley-admin command.
# Without groff the pages cannot be read: one skipped test, and under
# CI=true one failed test (scripts/dev check installs groff-base).
set -u

# The build dir: automake's, else the one this runs in, else the source tree.
if [ -n "${abs_top_builddir:-}" ]; then
	build=$abs_top_builddir
elif [ -f config.status ]; then
	build=$PWD
else
	build=$(cd "$(dirname "$0")/.." && pwd)
fi
man=$build/doc/man
declare -A program=([parley-api]=fcgi [parley-relay]=relay
	[parley-notify]=notify [parley-admin]=admin)
pages=(parley-api.8 parley-relay.8 parley-notify.8 parley-admin.8 parley.conf.5)

if ! command -v groff >/dev/null; then
	if [ "${CI:-}" = true ]; then
		echo "1..1"
		echo "not ok 1 - manual pages could not be checked: groff is not installed (apt-get install groff-base)"
	else
		echo "1..0 # SKIP groff is not installed (apt-get install groff-base)"
	fi
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/parley-man.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Plain text, one line per output line: no bold or underline, no
# hyphenation, lines long enough that no paragraph wraps; then runs of
# spaces squeezed and the indentation dropped.
render() {
	groff -man -Tascii -rLL=2000n -rHY=0 -P-bcou "$1" 2>/dev/null |
		sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//'
}

# ok N TEXT / not_ok N TEXT FILE: one TAP line; FILE's lines become comments.
ok() { echo "ok $1 - $2"; }
not_ok() {
	echo "not ok $1 - $2"
	[ -s "$3" ] && sed 's/^/# /' "$3" | head -40
}

echo "1..$((${#pages[@]} + 1 + ${#program[@]}))"
n=0

for p in "${pages[@]}"; do
	n=$((n + 1))
	if [ ! -f "$man/$p" ]; then
		echo "no $man/$p: run make" >"$work/err"
		not_ok $n "$p renders without warnings" "$work/err"
	elif groff -man -ww -z "$man/$p" >"$work/err" 2>&1 && [ ! -s "$work/err" ]; then
		ok $n "$p renders without warnings"
	else
		not_ok $n "$p renders without warnings" "$work/err"
	fi
done

# "[section] key = default (range)", its help and its variable: from
# --help's two lines per key ("  [s] k = d (r)  VAR" then "      help"),
# and from the page's KEYS section (".SS [s]", then per key a tag line
# "k = d (r)", the help, "Environment: VAR"; an empty default is "(empty)").
"$build/admin/parley-admin" --help | awk '
	/^  \[[a-z_]+\] / {
		i = index($0, "  PARLEY_")
		key = substr($0, 3, i - 3)
		var = substr($0, i + 2)
		sub(/ = $/, " = (empty)", key)
		getline help
		sub(/^ +/, "", help)
		print key " | " help " | Environment: " var
	}' | sed 's/  */ /g' | LC_ALL=C sort >"$work/table"
render "$man/parley.conf.5" | awk '
	$0 == "KEYS" { keys = 1; next }
	keys && /^[A-Z][A-Z ]*$/ { exit }
	keys && /^\[[a-z_]+\]$/ { section = $0; next }
	keys && / = / && section { key = $0; getline help; getline var
		print section " " key " | " help " | " var }' |
	LC_ALL=C sort >"$work/page"
n=$((n + 1))
if [ ! -s "$work/table" ]; then
	echo "parley-admin --help listed no keys" >"$work/err"
	not_ok $n "parley.conf.5 lists every key as --help does" "$work/err"
elif diff -u "$work/table" "$work/page" >"$work/err"; then
	ok $n "parley.conf.5 lists every key as --help does ($(wc -l <"$work/table") keys)"
else
	not_ok $n "parley.conf.5 lists every key as --help does (- --help, + page)" "$work/err"
fi

# Every --option and every command of a program's --help (its part before
# the configuration keys) is named in its page.
for p in parley-api parley-relay parley-notify parley-admin; do
	n=$((n + 1))
	"$build/${program[$p]}/$p" --help | sed '/^configuration keys/,$d' >"$work/help"
	render "$man/$p.8" >"$work/text"
	: >"$work/err"
	for opt in $(grep -o -- '--[a-z][a-z-]*' "$work/help" | sort -u); do
		grep -q -e "$opt" "$work/text" ||
			echo "option $opt is missing" >>"$work/err"
	done
	# Commands: "  users add --count N ...", "  user revoke USER": the
	# words before the first option or argument.
	grep -E '^  [a-z]' "$work/help" | awk '{
		c = $1
		if ($2 ~ /^[a-z][a-z-]*$/) c = c " " $2
		print c }' | while read -r cmd; do
		grep -q -e "^$cmd\\b" "$work/text" ||
			echo "command '$cmd' is missing" >>"$work/err"
	done
	if [ -s "$work/err" ]; then
		not_ok $n "$p.8 names every option and command of --help" "$work/err"
	else
		ok $n "$p.8 names every option and command of --help"
	fi
done
exit 0
