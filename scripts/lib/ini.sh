# shellcheck shell=bash
# scripts/lib/ini.sh, sourced by scripts/dev and scripts/cluster: changing
# the INI files Parley reads (parley.conf) from a script.

# ini_set SET... < in > out: sets section.key=value in an INI file (in place
# when the key is there, else at the end of its section, else in a new
# section at the end); "-section" drops a whole section.
ini_set() {
	local IFS=$'\n'
	INI_SETS="$*" awk '
	function flush(   i, k) {
		for (i = 1; i <= nk; i++) {
			k = order[i]
			if (index(k, sec ".") == 1 && !(k in done)) {
				print substr(k, length(sec) + 2) " = " want[k]
				done[k] = 1
			}
		}
	}
	function pb() { for (; blanks > 0; blanks--) print "" }
	BEGIN {
		n = split(ENVIRON["INI_SETS"], s, "\n")
		for (i = 1; i <= n; i++) {
			if (s[i] ~ /^-/) { drop[substr(s[i], 2)] = 1; continue }
			eq = index(s[i], "=")
			k = substr(s[i], 1, eq - 1)
			want[k] = substr(s[i], eq + 1)
			order[++nk] = k
			split(k, parts, ".")
			secs[parts[1]] = 1
		}
	}
	/^$/ { blanks++; next }
	/^\[.*\]$/ {
		if (!(sec in drop)) flush()
		sec = substr($0, 2, length($0) - 2)
		seen[sec] = 1
		if (sec in drop) { blanks = 0; next }
		pb()
		print
		next
	}
	sec in drop { blanks = 0; next }
	{ pb() }
	/^[a-z_]+ *=/ {
		k = $0
		sub(/ *=.*/, "", k)
		if ((sec "." k) in want) {
			print k " = " want[sec "." k]
			done[sec "." k] = 1
			next
		}
	}
	{ print }
	END {
		if (!(sec in drop)) flush()
		pb()
		for (x in secs)
			if (!(x in seen)) {
				print ""
				print "[" x "]"
				sec = x
				flush()
			}
	}'
}

# ini_sets FILE: the settings of the INI file FILE, one "section.key=value"
# line each (the form ini_set takes), values trimmed; comment lines (";" or
# "#") and blank lines are left out. Fails, naming the first line that is
# not a comment, a [section] or a key = value inside a section.
ini_sets() {
	awk '
	/^[ \t]*([;#].*)?$/ { next }
	/^[ \t]*\[[a-z_]+\][ \t]*$/ { sec = $0; gsub(/[][ \t]/, "", sec); next }
	sec != "" && /^[ \t]*[a-z_]+[ \t]*=/ {
		k = $0
		sub(/^[ \t]*/, "", k)
		v = k
		sub(/[ \t]*=.*/, "", k)
		sub(/^[^=]*=[ \t]*/, "", v)
		sub(/[ \t\r]*$/, "", v)
		print sec "." k "=" v
		next
	}
	{
		printf "%s:%d: not a comment, a [section] or a key = value in a section: %s\n",
			FILENAME, FNR, $0 > "/dev/stderr"
		exit 1
	}' "$1"
}
