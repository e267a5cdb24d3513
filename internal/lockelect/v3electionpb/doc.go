// Package v3electionpb is MetaStore's generated code for etcd's v3election gRPC service
// (Campaign, Proclaim, Leader, Observe, Resign), from v3election.proto: wire-compatible
// with etcd's go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb (same
// proto package, names, field numbers and types), so that the product need not import
// etcd's server module. Headers and key-values are the real
// go.etcd.io/etcd/api/v3 etcdserverpb.ResponseHeader and mvccpb.KeyValue.
//
// It owns only the messages and the service stubs; serving them is lockelect's. Do not
// edit the .pb.go files: change v3election.proto and run ../generate.sh.
package v3electionpb
