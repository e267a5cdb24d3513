#!/usr/bin/env bash
# Regenerates v3lockpb and v3electionpb (the .pb.go and _grpc.pb.go files) from their
# .proto files. Run from anywhere (go generate ./internal/lockelect runs it). Needs
# protoc on PATH (apt-get install protobuf-compiler); installs the two Go plugins into a
# scratch directory: protoc-gen-go at the version of google.golang.org/protobuf in
# go.mod, protoc-gen-go-grpc at PROTOC_GEN_GO_GRPC_VERSION.
#
# protostub/ holds stand-ins for etcd's rpc.proto and kv.proto, seen by protoc only so
# that the generated code uses the real go.etcd.io/etcd/api/v3 Go types; they are not
# generated.
set -euo pipefail
PROTOC_GEN_GO_GRPC_VERSION=${PROTOC_GEN_GO_GRPC_VERSION:-v1.6.2}
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
pbver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$pbver"
GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
PATH="$bin:$PATH" protoc -I . -I protostub \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  v3lockpb/v3lock.proto v3electionpb/v3election.proto
