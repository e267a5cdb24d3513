#!/usr/bin/env bash
# Runs etcd's own end-to-end conformance tests (go.etcd.io/etcd/tests/v3/common, build tag
# e2e) against the metastore binary, named `etcd` in a bin dir beside etcdctl and etcdutl
# built from the same etcd version (v3.7.3).
#
#   tests/conformance/run.sh [go test -run regexp]    (default: the KV, txn, compact, watch,
#   lease, member, HashKV, status, online defrag, alarm, auth, user and role tests; TestAuthority, unix sockets, is left out)
#
# BIN_DIR overrides where the binaries go; ETCD_BIN=path runs the tests against another
# `etcd` binary (for example real etcd, to check the harness).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
run=${1:-'^(TestKV|TestTxn|TestCompact|TestWatch|TestLease|TestMember|TestEndpointHashKV|TestEndpointStatus|TestVerifyHashKV|TestDefrag|TestStatus|TestAlarm|TestAuth[^o]|TestUser|TestRole)'}
bin=${BIN_DIR:-$(mktemp -d)}
mkdir -p "$bin"
cd "$here"
if [ -n "${ETCD_BIN:-}" ]; then
  cp "$ETCD_BIN" "$bin/etcd"
else
  (cd "$root" && go build -o "$bin/etcd" ./cmd/metastore)
fi
go build -o "$bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
go build -o "$bin/etcdutl" go.etcd.io/etcd/etcdutl/v3
go test -c -tags e2e -o "$bin/common.test" go.etcd.io/etcd/tests/v3/common
# The tests find their TLS fixtures relative to the package directory.
pkgdir=$(go list -tags e2e -f '{{.Dir}}' go.etcd.io/etcd/tests/v3/common)
cd "$pkgdir"
E2E_TEST_MINIMAL=${E2E_TEST_MINIMAL:-true} "$bin/common.test" -test.run "$run" -test.timeout 20m -bin-dir "$bin" ${CONFORMANCE_FLAGS:-}
