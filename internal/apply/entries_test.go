package apply

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

func metaUint64(t *testing.T, h *harness, key []byte) uint64 {
	t.Helper()
	v, err := h.eng.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := storage.Uint64(v)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAppliedIndexAndTerm(t *testing.T) {
	h := newHarness(t)
	if h.app.AppliedIndex() != 0 {
		t.Fatalf("fresh applied index = %d", h.app.AppliedIndex())
	}
	h.term = 3
	h.applyAll(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a")}}, nil, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b")}})
	if got := h.app.AppliedIndex(); got != 3 {
		t.Fatalf("applied index = %d, want 3", got)
	}
	if got, term := metaUint64(t, h, storage.MetaAppliedIndex), metaUint64(t, h, storage.MetaAppliedTerm); got != 3 || term != 3 {
		t.Fatalf("stored applied index, term = %d, %d; want 3, 3", got, term)
	}
	h.reopen()
	if h.app.AppliedIndex() != 3 || h.app.AppliedTerm() != 3 || h.store.Rev() != 3 {
		t.Fatalf("after restart: index %d term %d rev %d", h.app.AppliedIndex(), h.app.AppliedTerm(), h.store.Rev())
	}

	// Entries at or below the applied index are skipped: replaying them changes nothing.
	before := dump(t, h.eng)
	h.index = 1
	out := h.applyAll(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c")}}, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("d")}})
	if out[0] != nil || out[1] != nil {
		t.Fatalf("replayed entries answered %v", out)
	}
	if after := dump(t, h.eng); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("replaying applied entries changed the engine")
	}
}

func TestApplyEntriesResults(t *testing.T) {
	h := newHarness(t)
	mk := func(index uint64, r *pb.InternalRaftRequest) *raftpb.Entry {
		data, _ := proto.Marshal(r)
		return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(1), Data: data}
	}
	ents := []*raftpb.Entry{
		mk(1, &pb.InternalRaftRequest{ID: 7, Put: &pb.PutRequest{Key: []byte("a")}}),
		mk(2, &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 8}, Put: &pb.PutRequest{Key: []byte("b")}}),
		{Index: proto.Uint64(3), Term: proto.Uint64(1)}, // a new leader's empty entry
		{Index: proto.Uint64(4), Term: proto.Uint64(1), Data: []byte{0xff, 0xff, 0xff}},
	}
	h.index = 4
	out, err := h.app.ApplyEntries(ents)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 {
		t.Fatalf("%d results for 4 entries", len(out))
	}
	for i, want := range []struct {
		id  uint64
		err error
		nil bool
	}{{7, nil, false}, {8, nil, false}, {0, nil, true}, {0, ErrMalformedEntry, false}} {
		a := out[i]
		if a.Index != uint64(i+1) || a.ID != want.id || (a.Result == nil) != want.nil {
			t.Fatalf("result %d = %+v, want id %d nil %v", i, a, want.id, want.nil)
		}
		if a.Result != nil {
			errIs(t, a.Result.Err, want.err)
		}
	}
	if h.app.AppliedIndex() != 4 || h.store.Rev() != 3 {
		t.Fatalf("applied %d rev %d", h.app.AppliedIndex(), h.store.Rev())
	}

	// A conf-change entry does not belong here.
	h.index++
	bad := []*raftpb.Entry{{Index: proto.Uint64(h.index), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryConfChange.Enum()}}
	if _, err := h.app.ApplyEntries(bad); err == nil {
		t.Fatal("ApplyEntries accepted a conf change entry")
	}
	// A fatal error drops the whole uncommitted batch, in memory too.
	h.index = 4
	data, _ := proto.Marshal(&pb.InternalRaftRequest{ID: 11, Put: &pb.PutRequest{Key: []byte("c")}})
	mixed := []*raftpb.Entry{
		{Index: proto.Uint64(5), Term: proto.Uint64(1), Data: data},
		{Index: proto.Uint64(6), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryConfChange.Enum()},
	}
	if out, err := h.app.ApplyEntries(mixed); err == nil || out != nil {
		t.Fatalf("ApplyEntries = %v, %v; want no results and an error", out, err)
	}
	if h.app.AppliedIndex() != 4 || h.store.Rev() != 3 || h.getKV("c") != nil {
		t.Fatalf("after a failed batch: applied %d rev %d", h.app.AppliedIndex(), h.store.Rev())
	}
	if rev := h.put("d", "1").Header.Revision; rev != 4 {
		t.Fatalf("next put after a failed batch: revision %d, want 4", rev)
	}
}

func TestApplyConfChange(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // index 1
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	if err := h.app.ApplyConfChangeWithMembers(2, 1, cs, []byte("members-blob")); err != nil {
		t.Fatal(err)
	}
	h.index = 2
	h.reopen()
	got, err := h.app.ConfState()
	if err != nil {
		t.Fatal(err)
	}
	mustEqualProto(t, got, cs)
	if h.app.AppliedIndex() != 2 {
		t.Fatalf("applied index = %d", h.app.AppliedIndex())
	}
	if v, _ := h.eng.Get(storage.MetaMembers); string(v) != "members-blob" {
		t.Fatalf("members = %q", v)
	}
	// An old conf change is ignored.
	if err := h.app.ApplyConfChange(1, 1, &raftpb.ConfState{Voters: []uint64{9}}); err != nil {
		t.Fatal(err)
	}
	got, _ = h.app.ConfState()
	mustEqualProto(t, got, cs)
}

func TestCompaction(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		h.put("k", fmt.Sprint(i)) // revisions 2..6
	}
	errIs(t, h.doErr(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 7}}), mvcc.ErrFutureRev)

	res := h.applyAll(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 4, Physical: true}})[0]
	if res.Err != nil || !res.Physical || res.CompactRev != 4 {
		t.Fatalf("compaction result %+v", res)
	}
	mustEqualProto(t, res.Resp, &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: 6}})
	if h.store.CompactRev() != 4 {
		t.Fatalf("compact revision = %d", h.store.CompactRev())
	}
	errIs(t, h.doErr(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 4}}), mvcc.ErrCompacted)
	errIs(t, h.doErr(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 3}}), mvcc.ErrCompacted)

	// Writes and compactions mixed in one ApplyEntries call see each other.
	out := h.applyAll(
		&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("x")}}, // rev 7
		&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 7}},
		&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 7}},
		&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("k"), Revision: 6}},
		&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("y")}}, // rev 8
	)
	errIs(t, out[1].Err, nil)
	errIs(t, out[2].Err, mvcc.ErrCompacted)
	errIs(t, out[3].Err, mvcc.ErrCompacted)
	if got := out[4].Resp.(*pb.PutResponse).Header.Revision; got != 8 {
		t.Fatalf("put after compaction: revision %d", got)
	}
	if h.app.AppliedIndex() != h.index {
		t.Fatalf("applied index %d, want %d", h.app.AppliedIndex(), h.index)
	}
}

// TestDeterminism applies the same random entries to two members, split into batches
// differently, and compares every key and value of the two engines.
func TestDeterminism(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := randomRequests(rng, 400)
	a, b := newHarness(t), newHarness(t)
	apply := func(h *harness, batch func() int) {
		for rest := reqs; len(rest) > 0; {
			n := min(batch(), len(rest))
			h.applyAll(rest[:n]...)
			rest = rest[n:]
		}
	}
	apply(a, func() int { return 1 })
	// b applies in batches of random sizes, restarting now and then, while another
	// goroutine reads its alarms and applied index.
	stopReader := readConcurrently(b.app)
	restarts := 0
	apply(b, func() int {
		if rng.IntN(10) == 0 {
			stopReader()
			b.reopen()
			restarts++
			stopReader = readConcurrently(b.app)
		}
		return 1 + rng.IntN(40)
	})
	stopReader()
	if restarts == 0 {
		t.Fatal("no restart happened")
	}
	// The background compactor deletes old versions at its own pace: compare once it is done.
	for _, h := range []*harness{a, b} {
		if err := h.store.WaitCompacted(context.Background(), h.store.CompactRev()); err != nil {
			t.Fatal(err)
		}
	}
	da, db := dump(t, a.eng), dump(t, b.eng)
	if a.store.Rev() != b.store.Rev() || a.app.AppliedIndex() != b.app.AppliedIndex() {
		t.Fatalf("revisions %d / %d, applied %d / %d", a.store.Rev(), b.store.Rev(), a.app.AppliedIndex(), b.app.AppliedIndex())
	}
	if len(da) != len(db) {
		t.Fatalf("engines hold %d and %d keys", len(da), len(db))
	}
	for i := range da {
		if !bytes.Equal(da[i][0], db[i][0]) || !bytes.Equal(da[i][1], db[i][1]) {
			t.Fatalf("engines differ at %q: %x / %x", da[i][0], da[i][1], db[i][1])
		}
	}
	if a.store.Rev() < 50 {
		t.Fatalf("only %d revisions: the random requests write too little", a.store.Rev())
	}
}

// readConcurrently calls the Applier's concurrent-safe getters in a loop until the
// returned function is called.
func readConcurrently(app *Applier) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
				_ = app.Alarms()
				_ = app.AppliedIndex()
			}
		}
	}()
	return func() { close(quit); <-done }
}

// randomRequests returns n requests over a small key space: puts, deletes, txns with
// compares and nested txns, compactions (some failing), and alarms.
func randomRequests(rng *rand.Rand, n int) []*pb.InternalRaftRequest {
	key := func() []byte { return []byte{'k', byte('a' + rng.IntN(8))} }
	end := func() []byte {
		if rng.IntN(3) == 0 {
			return []byte{'k', byte('a' + rng.IntN(9))}
		}
		return nil
	}
	put := func() *pb.PutRequest {
		p := &pb.PutRequest{Key: key(), Value: []byte(fmt.Sprint(rng.IntN(100))), PrevKv: rng.IntN(2) == 0}
		if rng.IntN(10) == 0 {
			p.IgnoreValue, p.Value = true, nil
		}
		p.IgnoreLease = rng.IntN(10) == 0
		return p
	}
	var ops func(depth int) []*pb.RequestOp
	ops = func(depth int) []*pb.RequestOp {
		out := make([]*pb.RequestOp, rng.IntN(4))
		for i := range out {
			switch rng.IntN(4) {
			case 0:
				out[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: put()}}
			case 1:
				out[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key(), RangeEnd: end()}}}
			case 2:
				out[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key(), RangeEnd: end()}}}
			default:
				if depth < 2 {
					out[i] = txnOp(&pb.TxnRequest{
						Compare: []*pb.Compare{cmpVersion(string(key()), pb.Compare_CompareResult(rng.IntN(4)), int64(rng.IntN(3)))},
						Success: ops(depth + 1), Failure: ops(depth + 1),
					})
				} else {
					out[i] = getOp("ka", "")
				}
			}
		}
		return out
	}
	reqs := make([]*pb.InternalRaftRequest, n)
	rev := int64(1)
	for i := range reqs {
		switch x := rng.IntN(20); {
		case x < 8:
			reqs[i] = &pb.InternalRaftRequest{Put: put()}
			rev++
		case x < 11:
			reqs[i] = &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: key(), RangeEnd: end(), PrevKv: rng.IntN(2) == 0}}
		case x < 17:
			reqs[i] = &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
				Compare: []*pb.Compare{cmpValue(string(key()), pb.Compare_CompareResult(rng.IntN(4)), fmt.Sprint(rng.IntN(100)))},
				Success: ops(0), Failure: ops(0),
			}}
		case x < 18:
			reqs[i] = &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rng.Int64N(rev + 3)}}
		default:
			act := pb.AlarmRequest_AlarmAction(rng.IntN(3))
			reqs[i] = alarmReq(act, uint64(rng.IntN(2)), pb.AlarmType_NOSPACE)
		}
	}
	return reqs
}
