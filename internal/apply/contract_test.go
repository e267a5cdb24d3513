package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/invariants"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

// step is one request of a scripted sequence and the error it must fail with (nil: it
// succeeds).
type step struct {
	name string
	r    *pb.InternalRaftRequest
	err  error
}

func putReq(k, v string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}
}

func txnReq(ops ...*pb.RequestOp) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: ops}}
}

func putOpWith(p *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
}

func rangeAtOp(k string, rev int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), Revision: rev}}}
}

// failingSteps fails every kind of request in every way it can fail, each failure
// between successful writes so that the batch it fails in is not empty. The state
// before it: a, b, c written at revisions 2, 3, 4 and compacted at revision 3.
func failingSteps() []step {
	missing := &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}
	alarm := func(action pb.AlarmRequest_AlarmAction, t pb.AlarmType) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: action, MemberID: 1, Alarm: t}}
	}
	steps := []step{
		{"put ignore_value on a missing key", &pb.InternalRaftRequest{Put: missing}, ErrKeyNotFound},
		{"put ignore_lease on a missing key", &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("zz"), IgnoreLease: true}}, ErrKeyNotFound},
		{"put with an unknown lease", &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Lease: 7}}, ErrLeaseNotFound},
		{"range at a compacted revision", &pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 2}}, mvcc.ErrCompacted},
		{"range at a future revision", &pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 1000}}, mvcc.ErrFutureRev},
		{"compaction below the compacted revision", &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 2}}, mvcc.ErrCompacted},
		{"compaction at the compacted revision", &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 3}}, mvcc.ErrCompacted},
		{"compaction at a future revision", &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 1000}}, mvcc.ErrFutureRev},
		{"txn: put, then put ignore_value on a missing key", txnReq(putOp("a", "t"), putOpWith(missing)), ErrKeyNotFound},
		{"txn: delete, then put ignore_value on the deleted key", txnReq(delOp("a", ""), putOpWith(&pb.PutRequest{Key: []byte("a"), IgnoreValue: true})), ErrKeyNotFound},
		{"txn: put, then range at a future revision", txnReq(putOp("a", "t"), rangeAtOp("a", 1000)), mvcc.ErrFutureRev},
		{"txn: put, then range at a compacted revision", txnReq(putOp("a", "t"), rangeAtOp("a", 2)), mvcc.ErrCompacted},
		{"txn: put, then a put with an unknown lease", txnReq(putOp("x", "t"), putOpWith(&pb.PutRequest{Key: []byte("y"), Lease: 9})), ErrLeaseNotFound},
		{"txn: put, then a nested txn whose put fails", txnReq(putOp("x", "t"), txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("y", "t"), putOpWith(missing)}})), ErrKeyNotFound},
		{"cluster version that does not parse", &pb.InternalRaftRequest{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "three"}}, ErrInvalidVersion},
		{"lease checkpoint before cluster version 3.4", &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{}}, ErrNotCapable},
		{"auth status before cluster version 3.5", &pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}, ErrNotCapable},

		{"activate NOSPACE", alarm(pb.AlarmRequest_ACTIVATE, pb.AlarmType_NOSPACE), nil},
		{"put under NOSPACE", putReq("a", "n"), ErrNoSpace},
		{"txn with a put under NOSPACE", txnReq(delOp("a", ""), putOp("a", "n")), ErrNoSpace},
		{"deactivate NOSPACE", alarm(pb.AlarmRequest_DEACTIVATE, pb.AlarmType_NOSPACE), nil},
		{"activate CORRUPT", alarm(pb.AlarmRequest_ACTIVATE, pb.AlarmType_CORRUPT), nil},
		{"delete under CORRUPT", &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}, ErrCorrupt},
		{"txn under CORRUPT", txnReq(delOp("a", "")), ErrCorrupt},
		{"compaction under CORRUPT", &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 4}}, ErrCorrupt},
		{"deactivate CORRUPT", alarm(pb.AlarmRequest_DEACTIVATE, pb.AlarmType_CORRUPT), nil},
	}
	var out []step
	var active pb.AlarmType // the alarm raised by the steps so far
	deleted := 0
	for i, s := range steps {
		filler := step{fmt.Sprintf("put before %q", s.name), putReq(fmt.Sprintf("k%02d", i), "v"), nil}
		switch active {
		case pb.AlarmType_NOSPACE:
			// No put succeeds; deleting a key the earlier fillers wrote still writes.
			filler = step{fmt.Sprintf("delete before %q", s.name),
				&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: fmt.Appendf(nil, "k%02d", deleted)}}, nil}
			deleted++
		case pb.AlarmType_CORRUPT:
			// Nothing but alarms: raising CORRUPT for another member writes the list.
			filler = step{fmt.Sprintf("alarm before %q", s.name), alarm(pb.AlarmRequest_ACTIVATE, pb.AlarmType_CORRUPT), nil}
			filler.r.Alarm.MemberID = uint64(100 + i)
		}
		out = append(out, filler, s)
		switch s.name {
		case "activate NOSPACE":
			active = pb.AlarmType_NOSPACE
		case "activate CORRUPT":
			active = pb.AlarmType_CORRUPT
		case "deactivate NOSPACE":
			active = pb.AlarmType_NONE
		}
	}
	return out
}

func setupFailState(h *harness) {
	h.t.Helper()
	h.put("a", "1")
	h.put("b", "2")
	h.put("c", "3")
	h.do(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 3}})
	// The compactor runs in the background: let it finish so that both members compare
	// equal.
	if err := h.store.WaitCompacted(context.Background(), 3); err != nil {
		h.t.Fatal(err)
	}
}

// withoutAppliedIndex drops the applied index and term, which differ between a member
// that applied the failing entries and one that did not.
func withoutAppliedIndex(kvs [][2][]byte) [][2][]byte {
	var out [][2][]byte
	for _, kv := range kvs {
		if bytes.Equal(kv[0], storage.MetaAppliedIndex) || bytes.Equal(kv[0], storage.MetaAppliedTerm) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// TestFailedRequestsLeaveNoTrace applies every failing request, interleaved with
// successful writes, in ONE batch, and compares the engine with a member that applied
// only the successful ones: a failed request must change nothing (no key, no revision).
// Under -race the invariant of ApplyEntries also checks each failure's batch.
func TestFailedRequestsLeaveNoTrace(t *testing.T) {
	all := newHarness(t)
	setupFailState(all)
	ok := newHarness(t)
	setupFailState(ok)

	steps := failingSteps()
	var reqs, okReqs []*pb.InternalRaftRequest
	for _, s := range steps {
		reqs = append(reqs, proto.Clone(s.r).(*pb.InternalRaftRequest))
		if s.err == nil {
			okReqs = append(okReqs, proto.Clone(s.r).(*pb.InternalRaftRequest))
		}
	}
	res := all.applyAll(reqs...)
	for i, s := range steps {
		if s.err == nil && res[i].Err != nil {
			t.Fatalf("%s: %v", s.name, res[i].Err)
		}
		if s.err != nil && !errors.Is(res[i].Err, s.err) {
			t.Fatalf("%s: error %v, want %v", s.name, res[i].Err, s.err)
		}
	}
	ok.applyAll(okReqs...)
	if got, want := withoutAppliedIndex(dump(t, all.eng)), withoutAppliedIndex(dump(t, ok.eng)); fmt.Sprint(got) != fmt.Sprint(want) {
		for i := 0; i < len(got) || i < len(want); i++ {
			var g, w [2][]byte
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !bytes.Equal(g[0], w[0]) || !bytes.Equal(g[1], w[1]) {
				t.Fatalf("the failed requests changed the engine: at %d %q=%q, want %q=%q", i, g[0], g[1], w[0], w[1])
			}
		}
	}
	if all.store.Rev() != ok.store.Rev() {
		t.Fatalf("revision %d with the failed requests, %d without", all.store.Rev(), ok.store.Rev())
	}
	if all.app.AppliedIndex() != all.index {
		t.Fatalf("applied index %d, want %d: failed requests still advance it", all.app.AppliedIndex(), all.index)
	}
}

// TestInvariantCatchesFailedRequestThatWrote makes a failed request leave a write in the
// batch (through the test hook) and expects the invariant to stop the apply.
func TestInvariantCatchesFailedRequestThatWrote(t *testing.T) {
	if !invariants.Enabled {
		t.Skip("built without the invariants or race tag")
	}
	h := newHarness(t)
	afterFailedRequest = func(b storage.Batch) { _ = b.Set(storage.MetaKey("stray"), []byte("x")) }
	defer func() { afterFailedRequest = nil }()

	var recovered any
	func() {
		defer func() { recovered = recover() }()
		h.app.ApplyEntries(h.applyEntriesOf(putReq("a", "1"), &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}))
	}()
	if recovered == nil {
		t.Fatal("a failed request that wrote into the batch did not trip the invariant")
	}
	// A failing compaction flushes the batch first; the check must see the new batch.
	h.reopen()
	recovered = nil
	func() {
		defer func() { recovered = recover() }()
		h.app.ApplyEntries(h.applyEntriesOf(putReq("a", "1"), &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 100}}))
	}()
	if recovered == nil {
		t.Fatal("a failed compaction that wrote into the batch did not trip the invariant")
	}
}

func (h *harness) applyEntriesOf(rs ...*pb.InternalRaftRequest) []*raftpb.Entry {
	out := make([]*raftpb.Entry, len(rs))
	for i, r := range rs {
		out[i] = h.entry(r)
	}
	return out
}

// TestRequestErrorsAreAnswered: an error that depends only on the request and the state
// is answered, even when wrapped, and the member goes on (also after a restart); any
// other error met while applying is fatal.
func TestRequestErrorsAreAnswered(t *testing.T) {
	for _, err := range requestErrors {
		if !isRequestError(fmt.Errorf("context: %w", err)) {
			t.Fatalf("%v is not a request error", err)
		}
	}
	for _, err := range []error{storage.ErrClosed, errors.New("pebble: disk I/O"), ErrUnknownRequest, ErrClusterVersionTooHigh} {
		if isRequestError(err) {
			t.Fatalf("%v counts as a request error; it must be fatal", err)
		}
	}

	h := newHarness(t)
	h.put("a", "1")
	// execPut meeting ErrKeyNotFound (a check that passed and then failed) is a request
	// error, not a halt: write answers it.
	p := h.app.newPending()
	defer p.b.Close()
	res, err := h.app.write(p, func(tw *mvcc.TxnWrite) (proto.Message, error) {
		return execPut(tw, h.app.leaseWriter(p), &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})
	})
	if err != nil || !errors.Is(res.Err, ErrKeyNotFound) {
		t.Fatalf("write = %v, %v; want a request error ErrKeyNotFound", res, err)
	}
	engineErr := errors.New("engine: I/O error")
	if _, err := h.app.write(p, func(*mvcc.TxnWrite) (proto.Message, error) { return nil, engineErr }); !errors.Is(err, engineErr) {
		t.Fatalf("write with an engine error = %v, want it fatal", err)
	}

	// Through ApplyEntries and a restart: the failed entry is applied (as a failure)
	// exactly once and the next entries go on.
	errIs(t, h.doErr(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}), ErrKeyNotFound)
	h.reopen()
	if h.app.AppliedIndex() != h.index {
		t.Fatalf("after restart applied %d, want %d", h.app.AppliedIndex(), h.index)
	}
	if rev := h.put("b", "2").Header.Revision; rev != 3 {
		t.Fatalf("put after a failed request: revision %d, want 3", rev)
	}
}
