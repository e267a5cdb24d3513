package apply

import (
	"errors"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestOddRequestsDoNotPanic applies requests with missing messages, unknown enum values
// and nil list elements, through raft and through ReadTxn.
func TestOddRequestsDoNotPanic(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	odd := []*pb.TxnRequest{
		{Compare: []*pb.Compare{nil, {}, {Key: []byte("a"), Target: 99, Result: 99}, {Key: []byte("a"), Target: pb.Compare_VALUE}}},
		{Success: []*pb.RequestOp{nil, {}, {Request: &pb.RequestOp_RequestTxn{}}, {Request: &pb.RequestOp_RequestPut{}},
			{Request: &pb.RequestOp_RequestDeleteRange{}}, {Request: &pb.RequestOp_RequestRange{}}}},
		{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), SortTarget: 42, SortOrder: 7}}}}},
		{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{}}, nil}},
	}
	for _, r := range odd {
		h.app.ApplyEntries([]*raftpb.Entry{h.entry(&pb.InternalRaftRequest{Txn: r})})
		// In process (not marshaled), the nil pointers stay nil.
		v := h.store.Read()
		h.app.ReadTxn(v, r)
		p, err := planTxn(v, r)
		if err != nil {
			t.Fatal(err)
		}
		h.app.checkTxn(v, p, &txnWrites{})
		v.Close()
	}
	for _, r := range []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{}},
		{DeleteRange: &pb.DeleteRangeRequest{}},
		{Range: &pb.RangeRequest{SortTarget: 42}},
		{Compaction: &pb.CompactionRequest{Revision: -3}},
		{Alarm: &pb.AlarmRequest{Action: 9, Alarm: 9}},
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, Alarm: 9}},
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, Alarm: 9}},
		{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "not a version"}},
	} {
		h.applyAll(r)
	}
	v := h.store.Read()
	defer v.Close()
	if _, err := Range(v, &pb.RangeRequest{}); err != nil {
		t.Fatal(err)
	}
}

// FuzzApplyEntry applies arbitrary entry data: the state machine must answer, not panic
// (with invariants on, a failed request that wrote panics) or fail, unless the entry
// holds a request this build cannot apply, which is fatal by contract.
func FuzzApplyEntry(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, r := range randomRequests(rng, 30) {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h.index++
		e := &raftpb.Entry{Index: proto.Uint64(h.index), Term: proto.Uint64(1), Data: data}
		out, err := h.app.ApplyEntries([]*raftpb.Entry{e})
		if errors.Is(err, ErrUnknownRequest) || errors.Is(err, ErrClusterVersionTooHigh) {
			h.index--
			return
		}
		if err != nil {
			t.Fatalf("ApplyEntries: %v", err)
		}
		if len(out) != 1 {
			t.Fatalf("%d results", len(out))
		}
	})
}
