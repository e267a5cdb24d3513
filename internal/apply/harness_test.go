package apply

import (
	"bytes"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/testengine"
)

// harness is one member's state machine on a real engine (testengine: Pebble, or $METASTORE_TEST_ENGINE) in a temp dir.
type harness struct {
	t     testing.TB
	dir   string
	eng   storage.Engine
	store *mvcc.Store
	app   *Applier
	index uint64 // raft index of the last entry handed to ApplyEntries
	term  uint64
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), term: 1}
	h.open()
	t.Cleanup(h.close)
	return h
}

func (h *harness) open() {
	h.t.Helper()
	eng := testengine.Open(h.t, h.dir, 1<<20)
	store, err := mvcc.Open(eng)
	if err != nil {
		h.t.Fatal(err)
	}
	app, err := New(eng, store, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng, h.store, h.app = eng, store, app
}

func (h *harness) close() {
	if h.eng == nil {
		return
	}
	h.store.Close()
	h.eng.Close()
	h.eng = nil
}

// reopen closes and reopens the engine, store and applier, as a restart does.
func (h *harness) reopen() {
	h.t.Helper()
	h.close()
	h.open()
}

// entry wraps r as the next raft entry.
func (h *harness) entry(r *pb.InternalRaftRequest) *raftpb.Entry {
	h.index++
	var data []byte
	if r != nil {
		if r.Header == nil && r.ID == 0 {
			r.Header = &pb.RequestHeader{ID: h.index + 1000}
		}
		var err error
		if data, err = proto.Marshal(r); err != nil {
			h.t.Fatal(err)
		}
	}
	return &raftpb.Entry{Index: proto.Uint64(h.index), Term: proto.Uint64(h.term),
		Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
}

// applyAll applies the requests as consecutive entries in one ApplyEntries call.
func (h *harness) applyAll(rs ...*pb.InternalRaftRequest) []*Result {
	h.t.Helper()
	ents := make([]*raftpb.Entry, len(rs))
	for i, r := range rs {
		ents[i] = h.entry(r)
	}
	out, err := h.app.ApplyEntries(ents)
	if err != nil {
		h.t.Fatalf("ApplyEntries: %v", err)
	}
	if len(out) != len(rs) {
		h.t.Fatalf("ApplyEntries returned %d results for %d entries", len(out), len(rs))
	}
	res := make([]*Result, len(out))
	for i, a := range out {
		res[i] = a.Result
	}
	return res
}

// do applies one request and returns its response, failing on a request error.
func (h *harness) do(r *pb.InternalRaftRequest) proto.Message {
	h.t.Helper()
	res := h.applyAll(r)[0]
	if res.Err != nil {
		h.t.Fatalf("request %v: %v", r, res.Err)
	}
	return res.Resp
}

// doErr applies one request and returns its error.
func (h *harness) doErr(r *pb.InternalRaftRequest) error {
	h.t.Helper()
	return h.applyAll(r)[0].Err
}

// grant applies a LeaseGrant of lease id with ttl.
func (h *harness) grant(id, ttl int64) {
	h.t.Helper()
	h.do(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: ttl}})
}

func (h *harness) put(k, v string) *pb.PutResponse {
	h.t.Helper()
	return h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}).(*pb.PutResponse)
}

func (h *harness) del(k, end string) *pb.DeleteRangeResponse {
	h.t.Helper()
	return h.do(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end)}}).(*pb.DeleteRangeResponse)
}

func (h *harness) txn(r *pb.TxnRequest) *pb.TxnResponse {
	h.t.Helper()
	return h.do(&pb.InternalRaftRequest{Txn: r}).(*pb.TxnResponse)
}

// get reads r from the committed state, outside raft.
func (h *harness) get(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	v := h.store.Read()
	defer v.Close()
	return Range(v, r)
}

func (h *harness) mustGet(r *pb.RangeRequest) *pb.RangeResponse {
	h.t.Helper()
	resp, err := h.get(r)
	if err != nil {
		h.t.Fatalf("Range %v: %v", r, err)
	}
	return resp
}

// getKV returns the live version of key k, nil if none.
func (h *harness) getKV(k string) *mvccpb.KeyValue {
	h.t.Helper()
	resp := h.mustGet(&pb.RangeRequest{Key: []byte(k)})
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

// dump returns every key/value pair in the engine, in order, for comparing states.
func dump(t testing.TB, r storage.Reader) [][2][]byte {
	t.Helper()
	it, err := r.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func keysOf(kvs []*mvccpb.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

// Request builders, to keep the tables readable.

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func getOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end)}}}
}

func delOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end)}}}
}

func txnOp(r *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
}

func cmpValue(k string, res pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VALUE, Result: res, TargetUnion: &pb.Compare_Value{Value: []byte(v)}}
}

func cmpVersion(k string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VERSION, Result: res, TargetUnion: &pb.Compare_Version{Version: v}}
}

func cmpCreate(k string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_CREATE, Result: res, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: v}}
}

func cmpMod(k string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_MOD, Result: res, TargetUnion: &pb.Compare_ModRevision{ModRevision: v}}
}

func cmpLease(k string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_LEASE, Result: res, TargetUnion: &pb.Compare_Lease{Lease: v}}
}

func withRange(c *pb.Compare, end string) *pb.Compare {
	c.RangeEnd = []byte(end)
	return c
}

// errIs fails unless err matches want (nil matches nil).
func errIs(t testing.TB, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func mustEqualProto(t testing.TB, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}
