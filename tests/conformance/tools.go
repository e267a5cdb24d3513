//go:build tools

// Package conformance pins etcd's own end-to-end test module (go.etcd.io/etcd/tests/v3)
// and the etcdctl/etcdutl it drives, so that etcd's `common` tests can run against the
// metastore binary from outside; see run.sh. Nothing here is imported by the product.
package conformance

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/tests/v3/framework/e2e"
	_ "go.etcd.io/etcd/tests/v3/framework/integration"
)
