#!/usr/bin/env bash
# Side-by-side benchmark of MetaStore against etcd v3.7.3 (see docs/BENCHMARKS.md).
# Builds etcd (scripts/build-etcd.sh), metastore-bench and the compare harness (bench/compare,
# a Go module of its own), and MetaStore's server if cmd/metastore builds; without it, or with
# COMPARE_B=etcd, both sides are etcd, which checks that the harness is fair.
# Any arguments go to the harness, e.g.:
#   scripts/bench-compare.sh --rounds 3 --total 2000 --keys 100000 --out /tmp/table.md
# Environment: ETCD_BIN (skip building etcd), OUT_DIR (binaries; default bin/bench),
#   COMPARE_B=etcd|metastore (default: metastore if it builds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${OUT_DIR:-$root/bin/bench}")
mkdir -p "$out"
cd "$root"

etcd_bin=${ETCD_BIN:-}
if [ -z "$etcd_bin" ]; then
  "$root/scripts/build-etcd.sh" "$root/.etcd-bin" >&2
  etcd_bin="$root/.etcd-bin/etcd"
fi
go build -o "$out/metastore-bench" ./cmd/metastore-bench
(cd bench/compare && go build -o "$out/compare" .)

args=(--etcd-bin "$etcd_bin" --bench-bin "$out/metastore-bench")
if [ "${COMPARE_B:-metastore}" = metastore ]; then
  if [ -d cmd/metastore ] && go build -o "$out/metastore" ./cmd/metastore 2>"$out/metastore-build.log"; then
    args+=(--metastore-bin "$out/metastore")
    echo "B = MetaStore ($out/metastore)" >&2
  else
    echo "B = etcd: cmd/metastore does not build yet (see $out/metastore-build.log)" >&2
  fi
fi
exec "$out/compare" "${args[@]}" "$@"
