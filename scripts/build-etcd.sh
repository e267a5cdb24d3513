#!/usr/bin/env bash
# Builds etcd, etcdctl and etcdutl v3.7.3 into $1 (default: ./.etcd-bin) from a scratch
# module, because `go install` refuses modules with replace directives. Used by the
# conformance, robustness and benchmark comparisons; nothing here is part of the product.
set -euo pipefail
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
out=$(realpath -m "${1:-.etcd-bin}")
mkdir -p "$out"
if [ -x "$out/etcd" ] && [ -x "$out/etcdctl" ] && [ -x "$out/etcdutl" ] && "$out/etcd" --version 2>/dev/null | grep -q "${ETCD_VERSION#v}"; then
  echo "etcd ${ETCD_VERSION} already in $out"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
go mod init scratch/etcdbuild >/dev/null 2>&1
cat > tools.go <<GO
//go:build tools
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
)
GO
GOFLAGS=-mod=mod go get go.etcd.io/etcd/server/v3@${ETCD_VERSION} go.etcd.io/etcd/etcdctl/v3@${ETCD_VERSION} go.etcd.io/etcd/etcdutl/v3@${ETCD_VERSION} >/dev/null
GOFLAGS=-mod=mod go build -o "$out/etcd" go.etcd.io/etcd/server/v3
GOFLAGS=-mod=mod go build -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3
GOFLAGS=-mod=mod go build -o "$out/etcdutl" go.etcd.io/etcd/etcdutl/v3
"$out/etcd" --version
