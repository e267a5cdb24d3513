#!/usr/bin/env bash
# Restart time, MetaStore against etcd: for each round and each binary, starts an
# N-member cluster on loopback, writes one key, stops every member (SIGTERM), starts them
# all again and times until `etcdctl get` of the key succeeds (linearizable, 300 ms per
# attempt).
#   scripts/restart-ab.sh [members=3] [rounds=3]
# Needs bin/metastore (make build), etcd and etcdctl (ETCD_BIN, ETCDCTL_BIN; default
# .etcd-bin/ from scripts/build-etcd.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-3}; R=${2:-3}
MS=${MS_BIN:-$root/bin/metastore}; ETCD=${ETCD_BIN:-$root/.etcd-bin/etcd}
CTL=${ETCDCTL_BIN:-$root/.etcd-bin/etcdctl}
base=${BASE_PORT:-44000}
ic=""; eps=""
for i in $(seq 1 "$N"); do
  ic="$ic,m$i=http://127.0.0.1:$((base+10*i+1))"; eps="$eps,127.0.0.1:$((base+10*i))"
done
ic=${ic#,}; eps=${eps#,}
start() { # bin dir
  pids=""
  for i in $(seq 1 "$N"); do
    local c=http://127.0.0.1:$((base+10*i)) p=http://127.0.0.1:$((base+10*i+1))
    "$1" --name "m$i" --data-dir "$2/m$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$ic" \
      --initial-cluster-token restart >>"$2/m$i.log" 2>&1 &
    pids="$pids $!"
  done
}
for round in $(seq 1 "$R"); do
  for bin in "$MS" "$ETCD"; do
    d=$(mktemp -d)
    start "$bin" "$d"
    until "$CTL" --endpoints="$eps" --command-timeout=300ms put k v >/dev/null 2>&1; do sleep 0.05; done
    kill $pids; wait $pids 2>/dev/null || true
    t0=$(date +%s.%N)
    start "$bin" "$d"
    until "$CTL" --endpoints="$eps" --command-timeout=300ms get k 2>/dev/null | grep -q '^v$'; do sleep 0.01; done
    t1=$(date +%s.%N)
    printf "round %d %-10s members=%d first read after restart: %.3f s\n" "$round" "$(basename "$bin")" "$N" "$(echo "$t1 - $t0" | bc)"
    kill $pids; wait $pids 2>/dev/null || true
    rm -rf "$d"
  done
done
