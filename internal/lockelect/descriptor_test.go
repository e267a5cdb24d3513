package lockelect

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	epb "github.com/metastore/metastore/internal/lockelect/v3electionpb"
	lpb "github.com/metastore/metastore/internal/lockelect/v3lockpb"
)

// TestGeneratedDescriptors: the generated v3lockpb and v3electionpb register under
// etcd's proto names (what gRPC method paths and clients rely on), and their imports
// resolve to etcd's real rpc.proto and kv.proto in the protobuf registry (the stubs in
// protostub/ carry the paths etcd's api/v3 registers), so that a header or a key-value
// is etcd's own message, not a placeholder.
func TestGeneratedDescriptors(t *testing.T) {
	for _, c := range []struct {
		file    protoreflect.FileDescriptor
		service protoreflect.FullName
		methods []protoreflect.Name
	}{
		{lpb.File_v3lockpb_v3lock_proto, "v3lockpb.Lock", []protoreflect.Name{"Lock", "Unlock"}},
		{epb.File_v3electionpb_v3election_proto, "v3electionpb.Election", []protoreflect.Name{"Campaign", "Proclaim", "Leader", "Observe", "Resign"}},
	} {
		imps := c.file.Imports()
		for i := range imps.Len() {
			if imp := imps.Get(i); imp.IsPlaceholder() {
				t.Errorf("%s: import %s is not registered (stub path differs from etcd's)", c.file.Path(), imp.Path())
			}
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(c.service)
		if err != nil {
			t.Fatalf("%s: %v", c.service, err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		if sd.Methods().Len() != len(c.methods) {
			t.Errorf("%s has %d methods, want %v", c.service, sd.Methods().Len(), c.methods)
		}
		for _, m := range c.methods {
			if sd.Methods().ByName(m) == nil {
				t.Errorf("%s has no method %s", c.service, m)
			}
		}
	}
	header := (&pb.ResponseHeader{}).ProtoReflect().Descriptor()
	if got := (&lpb.LockResponse{}).ProtoReflect().Descriptor().Fields().ByName("header").Message(); got != header {
		t.Errorf("LockResponse.header is %s (%p), want etcd's %s", got.FullName(), got, header.FullName())
	}
	kv := (&mvccpb.KeyValue{}).ProtoReflect().Descriptor()
	if got := (&epb.LeaderResponse{}).ProtoReflect().Descriptor().Fields().ByName("kv").Message(); got != kv {
		t.Errorf("LeaderResponse.kv is %s, want etcd's %s", got.FullName(), kv.FullName())
	}
	// Observe streams its responses.
	if m := epb.File_v3electionpb_v3election_proto.Services().ByName("Election").Methods().ByName("Observe"); !m.IsStreamingServer() || m.IsStreamingClient() {
		t.Error("Observe must stream from the server only")
	}
}
