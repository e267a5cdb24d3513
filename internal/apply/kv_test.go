package apply

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/mvcc"
)

func TestFirstWriteIsRevisionTwo(t *testing.T) {
	h := newHarness(t)
	if got := h.mustGet(&pb.RangeRequest{Key: []byte("a")}).Header.Revision; got != 1 {
		t.Fatalf("empty store revision = %d, want 1", got)
	}
	if rev := h.put("a", "1").Header.Revision; rev != 2 {
		t.Fatalf("first put revision = %d, want 2", rev)
	}
	mustEqualProto(t, h.getKV("a"), &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1})
	h.put("a", "2")
	mustEqualProto(t, h.getKV("a"), &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("2"), CreateRevision: 2, ModRevision: 3, Version: 2})
	h.del("a", "")
	h.put("a", "3")
	// A put after a delete starts a new generation: create = mod, version 1.
	mustEqualProto(t, h.getKV("a"), &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("3"), CreateRevision: 5, ModRevision: 5, Version: 1})
}

func TestPutPrevKV(t *testing.T) {
	h := newHarness(t)
	resp := h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v1"), PrevKv: true}}).(*pb.PutResponse)
	if resp.PrevKv != nil {
		t.Fatalf("prev_kv of a new key = %v, want none", resp.PrevKv)
	}
	resp = h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v2"), PrevKv: true}}).(*pb.PutResponse)
	mustEqualProto(t, resp, &pb.PutResponse{
		Header: &pb.ResponseHeader{Revision: 3},
		PrevKv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v1"), CreateRevision: 2, ModRevision: 2, Version: 1},
	})
	// Without prev_kv, no prev_kv.
	if resp := h.put("k", "v3"); resp.PrevKv != nil {
		t.Fatalf("prev_kv returned without asking: %v", resp.PrevKv)
	}
}

func TestPutIgnoreValueAndLease(t *testing.T) {
	h := newHarness(t)
	for _, p := range []*pb.PutRequest{
		{Key: []byte("missing"), IgnoreValue: true},
		{Key: []byte("missing"), Value: []byte("x"), IgnoreLease: true},
	} {
		errIs(t, h.doErr(&pb.InternalRaftRequest{Put: p}), ErrKeyNotFound)
	}
	if rev := h.store.Rev(); rev != 1 {
		t.Fatalf("a failed put changed the revision to %d", rev)
	}

	h.put("k", "keep")
	resp := h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), IgnoreValue: true, PrevKv: true}}).(*pb.PutResponse)
	if resp.Header.Revision != 3 || string(resp.PrevKv.Value) != "keep" {
		t.Fatalf("ignore_value put: %v", resp)
	}
	mustEqualProto(t, h.getKV("k"), &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("keep"), CreateRevision: 2, ModRevision: 3, Version: 2})

	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("new"), IgnoreLease: true}})
	if got := h.getKV("k"); string(got.Value) != "new" || got.Lease != 0 {
		t.Fatalf("ignore_lease put: %v", got)
	}
}

func TestPutLease(t *testing.T) {
	h := newHarness(t)
	errIs(t, h.doErr(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Lease: 7}}), ErrLeaseNotFound)
	if h.getKV("k") != nil || h.store.Rev() != 1 {
		t.Fatal("put with an unknown lease wrote")
	}
	h.grant(7, 60)
	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7}})
	if got := h.getKV("k"); got.Lease != 7 {
		t.Fatalf("lease = %d, want 7", got.Lease)
	}
	// ignore_lease keeps the lease.
	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("w"), IgnoreLease: true}})
	if got := h.getKV("k"); got.Lease != 7 || string(got.Value) != "w" {
		t.Fatalf("after ignore_lease: %v", got)
	}
}

func TestDeleteRange(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"a", "b", "c", "d"} {
		h.put(k, "v"+k)
	} // revisions 2..5

	// Deleting nothing does not advance the revision.
	resp := h.del("x", "")
	mustEqualProto(t, resp, &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 5}})
	// An inverted range deletes nothing.
	mustEqualProto(t, h.del("c", "a"), &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 5}})

	resp = h.do(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), PrevKv: true}}).(*pb.DeleteRangeResponse)
	mustEqualProto(t, resp, &pb.DeleteRangeResponse{
		Header:  &pb.ResponseHeader{Revision: 6},
		Deleted: 2,
		PrevKvs: []*mvccpb.KeyValue{
			{Key: []byte("a"), Value: []byte("va"), CreateRevision: 2, ModRevision: 2, Version: 1},
			{Key: []byte("b"), Value: []byte("vb"), CreateRevision: 3, ModRevision: 3, Version: 1},
		},
	})
	// Without prev_kv: only the count. "\x00" = every key >= key.
	mustEqualProto(t, h.del("c", "\x00"), &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 7}, Deleted: 2})
	if n := h.mustGet(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}).Count; n != 0 {
		t.Fatalf("%d keys left", n)
	}
	// The old versions are still readable at their revisions.
	old := h.mustGet(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 5})
	if got := keysOf(old.Kvs); len(got) != 4 || old.Header.Revision != 7 {
		t.Fatalf("range at revision 5 = %v (header %d)", got, old.Header.Revision)
	}
}

func TestRangeThroughRaft(t *testing.T) {
	h := newHarness(t)
	res := h.applyAll(
		&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}},
		&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a")}},
		&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 3}},
	)
	// The range sees the put of the entry before it, though the batch is not committed yet.
	rr := res[1].Resp.(*pb.RangeResponse)
	if rr.Count != 1 || rr.Header.Revision != 2 {
		t.Fatalf("range in the same batch: %v", rr)
	}
	errIs(t, res[2].Err, mvcc.ErrFutureRev)
}
