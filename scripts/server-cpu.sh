#!/usr/bin/env bash
# Server CPU of one metastore-bench run: starts an N-member cluster of BIN on loopback,
# runs metastore-bench with the given arguments against all members, and prints the
# throughput and the CPU the members used (sum of utime+stime from /proc, in clock
# ticks), so that two builds (or MetaStore and etcd) can be compared in alternating runs.
#   scripts/server-cpu.sh BIN MEMBERS BENCH-ARGS...
#   e.g. scripts/server-cpu.sh bin/metastore 3 put --clients 1000 --conns 100 --total 40000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=$1; N=$2; shift 2
BENCH=${BENCH_BIN:-$root/bin/metastore-bench}
base=${BASE_PORT:-43000}
d=$(mktemp -d); ic=""; eps=""; pids=""
for i in $(seq 1 "$N"); do ic="$ic,m$i=http://127.0.0.1:$((base+10*i+1))"; done
for i in $(seq 1 "$N"); do
  c=http://127.0.0.1:$((base+10*i)); p=http://127.0.0.1:$((base+10*i+1))
  "$BIN" --name "m$i" --data-dir "$d/m$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "${ic#,}" \
    --initial-cluster-token cpu >"$d/m$i.log" 2>&1 &
  pids="$pids $!"; eps="$eps,127.0.0.1:$((base+10*i))"
done
for _ in $(seq 1 100); do grep -q "ready to serve" "$d/m1.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
cpu() { local t=0; for p in $pids; do set -- $(awk '{print $14, $15}' "/proc/$p/stat"); t=$((t+$1+$2)); done; echo $t; }
c0=$(cpu)
out=$("$BENCH" "$@" --endpoints="${eps#,}" 2>&1)
c1=$(cpu)
echo "$(basename "$BIN"): $(echo "$out" | grep -E 'Throughput' | tr -s ' \t' ' ')  server CPU $((c1-c0)) ticks"
kill $pids; wait $pids 2>/dev/null || true; rm -rf "$d"
