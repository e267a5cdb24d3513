#!/usr/bin/env bash
# Short side-by-side of the two engines, one member each, same binary.
set -euo pipefail
# Needs a rocksdb-tagged build: go build -tags rocksdb -o $BIN/metastore ./cmd/metastore && go build -o $BIN/metastore-bench ./cmd/metastore-bench
B=${BIN:-bin}
for eng in pebble rocksdb; do
  D=$(mktemp -d)
  $B/metastore --storage-engine $eng --data-dir $D/m --listen-client-urls http://127.0.0.1:24791 --advertise-client-urls http://127.0.0.1:24791 \
    --listen-peer-urls http://127.0.0.1:24801 --initial-advertise-peer-urls http://127.0.0.1:24801 --initial-cluster default=http://127.0.0.1:24801 >$D/log 2>&1 &
  pid=$!
  sleep 2
  E="--endpoints 127.0.0.1:24791 --conns 4 --clients 32"
  echo "== $eng"
  $B/metastore-bench put $E --total 30000 --key-space-size 30000 --key-size 16 --val-size 256 2>&1 | grep -E "Throughput|Average|p50" | tr '\n' ' '; echo " [put]"
  $B/metastore-bench range k --prefix=false $E --total 30000 --consistency s 2>&1 | grep -E "Throughput|Average|p50" | tr '\n' ' '; echo " [range s]"
  $B/metastore-bench range k --prefix=false $E --total 30000 --consistency l 2>&1 | grep -E "Throughput|Average|p50" | tr '\n' ' '; echo " [range l]"
  $B/metastore-bench list $E --keys 10000 --val-size 256 --page-size 500 --total 200 --consistency s 2>&1 | grep -E "Throughput|Average|p50" | tr '\n' ' '; echo " [list]"
  echo "rss_kb $(ps -o rss= -p $pid) disk $(du -sh $D/m/db | cut -f1)"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf $D
done
