#!/usr/bin/env bash
# The cost of --metrics extensive against basic (docs/BENCHMARKS.md). Each round starts
# two fresh single members, one per level, and drives both at once with the same
# workload, so that both share whatever else the machine is doing; the figure is the
# per-round ratio extensive/basic. Usage: scripts/bench-metrics-level.sh [rounds] [seconds]
# (needs bin/metastore and bin/metastore-bench: make build; uses ports 35001-35004).
set -euo pipefail
rounds=${1:-6}
secs=${2:-8}
bin=$(cd "$(dirname "$0")/.." && pwd)/bin
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$dir"' EXIT

start() { # name level clientport peerport
	"$bin/metastore" --name "$1" --data-dir "$dir/$1" --metrics "$2" \
		--listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
		--listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
		--initial-cluster "$1=http://127.0.0.1:$4" >"$dir/$1.log" 2>&1 &
}
waitready() { for _ in $(seq 100); do grep -q "ready to serve client requests" "$dir/$1.log" && return; sleep 0.1; done; echo "$1 not ready" >&2; tail -5 "$dir/$1.log" >&2; exit 1; }
bench() { # port workload... ; prints ops/s
	"$bin/metastore-bench" --endpoints "127.0.0.1:$1" --conns 10 --clients 100 --json "${@:2}" --duration "${secs}s" --total 0 |
		python3 -c 'import json,sys; print(round(json.load(sys.stdin)["results"][0]["throughput_per_second"]))'
}

printf '| round | workload | basic ops/s | extensive ops/s | extensive/basic |\n|---|---|---|---|---|\n'
for r in $(seq "$rounds"); do
	rm -rf "$dir"/b "$dir"/e
	# Swap the ports every round so neither level always has the same ones.
	if ((r % 2)); then bp=(35001 35002) ep=(35003 35004); else bp=(35003 35004) ep=(35001 35002); fi
	start b basic "${bp[@]}"
	mb=$!
	start e extensive "${ep[@]}"
	me=$!
	waitready b
	waitready e
	for w in "put --key-size 8 --val-size 256 --key-space-size 100000" "range k --consistency l"; do
		# shellcheck disable=SC2086
		bench "${bp[0]}" $w >"$dir/rb" &
		p1=$!
		# shellcheck disable=SC2086
		bench "${ep[0]}" $w >"$dir/re" &
		p2=$!
		wait $p1 $p2
		b=$(cat "$dir/rb") e=$(cat "$dir/re")
		printf '| %d | %s | %s | %s | %s |\n' "$r" "${w%% *}" "$b" "$e" "$(python3 -c "print(f'{$e/$b:.3f}')")"
	done
	kill $mb $me
	wait $mb $me 2>/dev/null || true
done
