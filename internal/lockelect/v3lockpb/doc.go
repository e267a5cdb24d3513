// Package v3lockpb is MetaStore's generated code for etcd's v3lock gRPC service (Lock,
// Unlock), from v3lock.proto: wire-compatible with etcd's
// go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb (same proto package, names,
// field numbers and types), so that the product need not import etcd's server module.
// Headers are the real go.etcd.io/etcd/api/v3/etcdserverpb.ResponseHeader.
//
// It owns only the messages and the service stubs; serving them is lockelect's. Do not
// edit the .pb.go files: change v3lock.proto and run ../generate.sh.
package v3lockpb
