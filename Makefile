# MetaStore. `make test` is the test command CI runs (.ci/run).
GO ?= go
BIN ?= bin

.PHONY: build test etcd-bin unit unit-rocksdb conformance robustness-short robustness bench-compare clean

build:
	$(GO) build -o $(BIN)/metastore ./cmd/metastore
	$(GO) build -o $(BIN)/metastore-bench ./cmd/metastore-bench

# Everything CI checks: unit and process tests with -race, etcd's own conformance tests
# against our binary, and the short robustness (linearizability) run.
test: etcd-bin unit unit-rocksdb conformance robustness-short

# Real etcd v3.7.3, etcdctl and etcdutl, which tests compare our behaviour with.
etcd-bin:
	scripts/build-etcd.sh .etcd-bin

unit:
	$(GO) vet ./...
	ETCD_BIN_DIR=$(CURDIR)/.etcd-bin $(GO) test -race -timeout 25m ./...
	cd bench/compare && $(GO) vet ./... && $(GO) test -race ./...

# The RocksDB engine (needs librocksdb-dev): its own and the engine-comparison tests, then
# the storage, mvcc, apply, server and snap (Raft snapshot install) suites on it (METASTORE_TEST_ENGINE, testengine).
unit-rocksdb:
	$(GO) vet -tags rocksdb ./internal/storage/... ./cmd/...
	$(GO) test -race -tags rocksdb -timeout 10m ./internal/storage/...
	METASTORE_TEST_ENGINE=rocksdb $(GO) test -race -tags rocksdb -timeout 10m ./internal/mvcc/... ./internal/apply/... ./internal/server/... ./internal/snap/...

conformance:
	tests/conformance/run.sh

robustness-short:
	$(MAKE) -C tests/robustness short

robustness:
	$(MAKE) -C tests/robustness long

# Side-by-side MetaStore vs etcd v3.7.3 (docs/BENCHMARKS.md), e.g. make bench-compare ARGS="--rounds 3".
bench-compare:
	scripts/bench-compare.sh $(ARGS)

clean:
	rm -rf $(BIN)
