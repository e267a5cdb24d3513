#!/usr/bin/env bash
# A new member joining a loaded store, MetaStore against etcd (docs/BENCHMARKS.md). For
# each server and round: one fresh member loaded with --mb MiB of incompressible values
# (8 KiB, 4 puts per txn), then `etcdctl member add` and a second member started with
# --initial-cluster-state existing; the figure is the time from its start until it serves
# the leader's revision (endpoint status on the new member), polled every 100 ms.
# Usage: scripts/bench-join.sh MB ROUNDS (needs make build and .etcd-bin: make etcd-bin;
# ports 35101-35122).
set -euo pipefail
mb=${1:-1024}
rounds=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
etcdctl=$root/.etcd-bin/etcdctl
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

start() { # bin name clientport peerport initial-cluster state
	"$1" --name "$2" --data-dir "$dir/$2" \
		--listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
		--listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
		--initial-cluster "$5" --initial-cluster-state "$6" >"$dir/$2.log" 2>&1 &
	pids+=($!)
}
status() { "$etcdctl" --endpoints "127.0.0.1:$1" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)[0]["Status"]
    print(s["header"]["revision"], s.get("raftAppliedIndex", 0))
except Exception:
    print(0, 0)
'; }
now() { date +%s.%N; }

printf '| server | round | loaded MiB | db on the leader | join: start to revision served | db on the new member |\n|---|---|---|---|---|---|\n'
for r in $(seq "$rounds"); do
	for srv in metastore etcd; do
		bin=$root/bin/metastore
		[ "$srv" = etcd ] && bin=$root/.etcd-bin/etcd
		rm -rf "$dir"/m1 "$dir"/m2
		pids=()
		start "$bin" m1 35101 35102 m1=http://127.0.0.1:35102 new
		for _ in $(seq 100); do status 35101 >/dev/null && break; sleep 0.1; done
		"$root/bin/metastore-bench" --endpoints 127.0.0.1:35101 --conns 4 --clients 8 load --keys $((mb * 128)) \
			--val-size 8192 --batch 4 --random-values >/dev/null
		read -r rev _ < <(status 35101)
		"$etcdctl" --endpoints 127.0.0.1:35101 member add m2 --peer-urls http://127.0.0.1:35112 >/dev/null
		t0=$(now)
		start "$bin" m2 35111 35112 m1=http://127.0.0.1:35102,m2=http://127.0.0.1:35112 existing
		while :; do
			read -r got _ < <(status 35111 || echo "0 0")
			[ "${got:-0}" -ge "$rev" ] && break
			sleep 0.1
		done
		t1=$(now)
		printf '| %s | %d | %d | %s | %.2f s | %s |\n' "$srv" "$r" "$mb" "$(du -sh "$dir/m1" | cut -f1)" \
			"$(python3 -c "print($t1-$t0)")" "$(du -sh "$dir/m2" | cut -f1)"
		du -sh "$dir"/m1/* "$dir"/m2/* >&2 # where the space is
		kill "${pids[@]}"
		wait "${pids[@]}" 2>/dev/null || true
	done
done
