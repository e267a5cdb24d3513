#!/usr/bin/env bash
# Quick A/B of the issue's client counts: for each round, starts an N-member cluster of
# MetaStore, then one of etcd (in turn, on the same loopback ports), and runs put with 1,
# 100 and 1000 clients and a linearizable single-key get with 1000 clients. "get-s c=1"
# (a serializable get, 1 client: no Raft, no disk) is the round trip a 1-client put
# pays on top of its fdatasync.
#   scripts/bench-ab.sh [members=3] [rounds=2]
# Needs bin/metastore and bin/metastore-bench (make build) and etcd (ETCD_BIN, default
# .etcd-bin/etcd from scripts/build-etcd.sh). Compare ratios within one run only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-3}; R=${2:-2}
MS=${MS_BIN:-$root/bin/metastore}; ETCD=${ETCD_BIN:-$root/.etcd-bin/etcd}; BENCH=${BENCH_BIN:-$root/bin/metastore-bench}
base=${BASE_PORT:-41000}
start() { # bin dir -> writes $dir/eps, $dir/pids
  local bin=$1 d=$2 ic="" eps=""
  rm -rf "$d"; mkdir -p "$d"
  for i in $(seq 1 "$N"); do ic="$ic,m$i=http://127.0.0.1:$((base+10*i+1))"; done
  for i in $(seq 1 "$N"); do
    local c=http://127.0.0.1:$((base+10*i)) p=http://127.0.0.1:$((base+10*i+1))
    "$bin" --name "m$i" --data-dir "$d/m$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "${ic#,}" \
      --initial-cluster-token ab >"$d/m$i.log" 2>&1 &
    echo $! >>"$d/pids"; eps="$eps,127.0.0.1:$((base+10*i))"
  done
  echo "${eps#,}" >"$d/eps"
  for _ in $(seq 1 100); do grep -q "ready to serve" "$d/m1.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
}
run() { printf "%-12s" "$1"; shift; "$BENCH" "$@" 2>&1 | grep -E "Throughput|p50" | tr -s "\n\t " " "; echo; }
for round in $(seq 1 "$R"); do
  for bin in "$MS" "$ETCD"; do
    d=$(mktemp -d); start "$bin" "$d"
    eps=$(cat "$d/eps"); one=${eps%%,*}
    echo "== round $round $(basename "$bin") members=$N"
    run "get-s c=1" range foo --endpoints="$one" --consistency s --clients 1 --total 1500
    run "put c=1" put --endpoints="$one" --clients 1 --total 1500 --val-size 256
    run "put c=100" put --endpoints="$eps" --clients 100 --conns 10 --total 20000 --key-space-size 100000 --val-size 256
    run "put c=1000" put --endpoints="$eps" --clients 1000 --conns 100 --total 40000 --key-space-size 100000 --val-size 256
    run "get c=1000" range foo --endpoints="$eps" --clients 1000 --conns 100 --total 40000
    kill $(cat "$d/pids") 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$d"; sleep 0.5
  done
done
