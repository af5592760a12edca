#!/bin/bash
# bench/pubsub-cluster.sh: classic PUBLISH/SUBSCRIBE against sharded
# SPUBLISH/SSUBSCRIBE on a Redis Cluster of 3 masters and 3 replicas, under
# the bench's 1:1 and group loads (doc/scale-out.md, "Pub/sub on a Redis
# Cluster: classic or sharded").
#
#   [PARLEY_BUILDDIR=DIR] bench/pubsub-cluster.sh
#
# Starts six redis-server nodes on 127.0.0.1 ports 47001-47006 (cluster bus
# 57001-57006) in a temporary directory, joins them with `redis-cli --cluster
# create --cluster-replicas 1`, waits until every node sees cluster_state:ok
# and every replica in sync, measures the nodes' idle CPU for 5 s, then runs
# bench/pubsub for each load (1:1, groups of 100), each offered rate (flat
# out, then the fixed rates) and both forms, alternating the forms. Prints a
# Markdown table, then bench/pubsub's lines, each with the bytes the nodes
# sent each other on the cluster bus during the run (every bus socket's
# bytes_sent from ss -i) per publish.
# The nodes are stopped and the directory removed on every exit. Bounded:
# each run is killed after its seconds + 30; the whole script takes about
# 3 minutes with the defaults.
#
# The fixed rates are the bench's targets (doc/benchmarks.md): 1:1 at 5,000
# msgs/s (its latency target) and 10,000 (its flat-out target), groups of
# 100 at 250 and 500 msgs/s (500: its 50,000 deliveries/s target).
#
# Environment: PARLEY_BUILDDIR (where bench/pubsub is built; default the
# source tree), PUBSUB_SECONDS (measured seconds per run, 10), PUBSUB_USERS
# (3000), PUBSUB_RATES_1TO1 ("5000 10000"), PUBSUB_RATES_GROUP ("250 500"),
# PUBSUB_REPLICAS (replicas per master, 1; 0 runs 3 masters alone on
# 47001-47003, to see how classic pub/sub's cost follows the node count),
# PUBSUB_ARGS (more bench/pubsub options).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${PARLEY_BUILDDIR:-$top}
bin=$build/bench/pubsub
seconds=${PUBSUB_SECONDS:-10}
users=${PUBSUB_USERS:-3000}
rates_1to1=${PUBSUB_RATES_1TO1:-5000 10000}
rates_group=${PUBSUB_RATES_GROUP:-250 500}
replicas=${PUBSUB_REPLICAS:-1}
masters=3
case $replicas in 0 | 1) ;; *) echo "pubsub-cluster: PUBSUB_REPLICAS is 0 or 1" >&2; exit 2 ;; esac
nodes=$((masters * (1 + replicas)))
mapfile -t ports < <(seq 47001 $((47000 + nodes)))
say() { echo "pubsub-cluster: $*" >&2; }

[ -x "$bin" ] || { say "$bin is not built (make bench/pubsub)"; exit 1; }
command -v redis-server >/dev/null || { say "redis-server is missing (apt-get install redis-server)"; exit 1; }
for p in "${ports[@]}"; do
	if ss -Htln "sport = :$p or sport = :$((p + 10000))" | grep -q .; then
		say "port $p or $((p + 10000)) is in use; refusing to touch another Redis"
		exit 1
	fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-pubsub.XXXXXX")
pids=()
# Stops the nodes this script started (by their pids) and removes the
# directory, on every exit.
alive() {
	local pid
	for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
	return 1
}
cleanup() {
	local pid i
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for i in $(seq 1 50); do
		alive || break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cli() { local p=$1; shift; timeout 10 redis-cli -h 127.0.0.1 -p "$p" "$@"; }

# The nodes: no persistence (pub/sub writes nothing), default client limits.
for p in "${ports[@]}"; do
	mkdir -p "$dir/$p"
	cat >"$dir/$p/redis.conf" <<EOF
bind 127.0.0.1
port $p
cluster-enabled yes
cluster-config-file $dir/$p/nodes.conf
cluster-node-timeout 5000
dir $dir/$p
logfile $dir/$p/redis.log
save ""
appendonly no
EOF
	redis-server "$dir/$p/redis.conf" &
	pids+=($!)
done
for p in "${ports[@]}"; do
	for i in $(seq 1 100); do
		[ "$(cli "$p" PING 2>/dev/null)" = PONG ] && break
		[ "$i" -lt 100 ] || { say "node $p did not start"; tail -n 5 "$dir/$p/redis.log" >&2; exit 1; }
		sleep 0.1
	done
done
# shellcheck disable=SC2046 # one word per node
timeout 60 redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") \
	--cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 ||
	{ say "cluster create failed"; tail -n 5 "$dir/create.log" >&2; exit 1; }
# Ready when every node sees the cluster ok, every master and replica in
# its role and connected (bench/pubsub finds the replicas in CLUSTER
# SLOTS), and every replica in sync.
ready() {
	local p info
	for p in "${ports[@]}"; do
		info=$(cli "$p" CLUSTER INFO 2>/dev/null; cli "$p" INFO replication 2>/dev/null)
		grep -q '^cluster_state:ok' <<<"$info" || return 1
		grep -q "^cluster_known_nodes:$nodes" <<<"$info" || return 1
		if grep -q '^role:slave' <<<"$info"; then
			grep -q '^master_link_status:up' <<<"$info" || return 1
		fi
		[ "$(cli "$p" CLUSTER NODES | awk -v m="$masters" -v r="$replicas" '
			$3 ~ /fail|handshake|noaddr/ || $8 != "connected" { bad++ }
			$3 ~ /master/ && NF > 8 { nm++ }
			$3 ~ /slave/ && $4 != "-" { nr++ }
			END { print (!bad && nm == m && nr == m * r) ? "ok" : "no" }')" = ok ] || return 1
	done
}
for i in $(seq 1 300); do
	ready && break
	[ "$i" -lt 300 ] || { say "cluster not ready after 30 s"; exit 1; }
	sleep 0.1
done

# The nodes' own CPU with no load (cluster bus pings, cron), % of one core.
cpu_sum() {
	local p
	for p in "${ports[@]}"; do cli "$p" INFO cpu; done |
		awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.3f\n", s }'
}
c0=$(cpu_sum)
sleep 5
idle_pct=$(awk -v a="$c0" -v b="$(cpu_sum)" 'BEGIN { printf "%.1f", (b - a) * 100 / 5 }')

# Bytes the nodes sent each other on the cluster bus so far: every bus
# socket's bytes_sent (ss -i), each end counting what it sent.
bus_bytes() {
	local lo=$((ports[0] + 10000)) hi=$((ports[-1] + 10000))
	ss -Htin "( sport >= :$lo and sport <= :$hi ) or ( dport >= :$lo and dport <= :$hi )" |
		grep -o 'bytes_sent:[0-9]*' | awk -F: '{ s += $2 } END { printf "%.0f\n", s }'
}
field() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2" | head -n 1; }
row() {
	local out="|" cell
	for cell in "$@"; do out+=" $cell |"; done
	echo "$out"
}
lines=()
rows=()
# run LOAD RATE MODE: one bench/pubsub run, its table row and line kept.
run() {
	local load=$1 rate=$2 mode=$3 out l b0 bus
	say "$mode, $load, $([ "$rate" = 0 ] && echo "flat out" || echo "$rate msgs/s")"
	b0=$(bus_bytes)
	# shellcheck disable=SC2086 # PUBSUB_ARGS is a list of options
	out=$(timeout $((seconds + 30)) "$bin" --cluster 127.0.0.1:47001 --mode "$mode" \
		--load "$load" --rate "$rate" --users "$users" --duration "$seconds" \
		${PUBSUB_ARGS:-} 2>&1) || true
	l=$(grep '^mode=' <<<"$out" || true)
	if [ -z "$l" ]; then
		say "$mode $load gave no figures: $(tail -n 1 <<<"$out")"
		lines+=("$mode $load $rate: no figures: $(tail -n 1 <<<"$out")")
		return
	fi
	bus=$(awk -v b="$(($(bus_bytes) - b0))" -v p="$(field published "$l")" \
		'BEGIN { printf "%.1f", (p > 0 ? b / p / 1024 : 0) }')
	lines+=("$l bus_kib_per_publish=$bus")
	rows+=("$(row "$load" "$([ "$rate" = 0 ] && echo "flat out" || echo "$rate")" "$mode" \
		"$(field msgs_per_s "$l")" "$(field deliveries_per_s "$l")" \
		"$(field p50_ms "$l")" "$(field p99_ms "$l")" "$(field nodes_cpu_pct "$l")" \
		"$(field masters_cpu_pct "$l") / $(field replicas_cpu_pct "$l")" \
		"$(field node_cpu_us_per_delivery "$l")" "$(field bench_cpu_pct "$l")" \
		"$(awk -v z="$(field answered_zero "$l")" -v p="$(field published "$l")" \
			'BEGIN { printf "%.0f", (p > 0 ? z * 100 / p : 0) }')" \
		"$bus" \
		"$(field lost "$l") / $(field duplicated "$l") / $(field errors "$l") / $(field disconnects "$l")" \
		"$(field max_output_buffer_kib "$l")")")
	sleep 1
}

started=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for load in 1:1 group; do
	fixed=$([ "$load" = 1:1 ] && echo "$rates_1to1" || echo "$rates_group")
	for rate in 0 $fixed; do
		for mode in classic sharded; do run "$load" "$rate" "$mode"; done
	done
done

echo "# Pub/sub on a Redis Cluster: classic or sharded"
echo
echo "- $(date -u +'%Y-%m-%d %H:%M UTC'); $(nproc) cores," \
	"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -sr);" \
	"load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "- $(redis-server --version | cut -d' ' -f1-3), $masters masters + $((masters * replicas)) replicas" \
	"on 127.0.0.1:${ports[0]}-${ports[-1]}; client-output-buffer-limit" \
	"$(cli 47001 CONFIG GET client-output-buffer-limit | tail -n 1); the $nodes nodes idle:" \
	"$idle_pct % of one core together"
first=${lines[0]:-}
echo "- $(field users "$first") users (channels parley:u:<id>) over $(field relays "$first") relays;" \
	"$(field publishers "$first") publishers, each with a link per master; at most" \
	"$(field window "$first") publishes in flight; $(field payload "$first")-byte events;" \
	"groups of 100; $(field seconds "$first") s measured after a warm-up per run;" \
	"all runs took $(($(date +%s) - started)) s"
echo
row load "offered msgs/s" form "msgs/s" "deliveries/s" "p50 ms" "p99 ms" \
	"$nodes nodes' CPU %" "masters / replicas %" "node CPU µs per delivery" \
	"bench CPU %" "publishes answered 0 %" "bus KiB per publish" \
	"lost / dup / errors / disconnects" "max sub obuf KiB"
row --- --- --- --- --- --- --- --- --- --- --- --- --- --- ---
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${lines[@]}"
