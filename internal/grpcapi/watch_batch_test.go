package grpcapi

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

func evAt(rev int64, key string) *mvccpb.Event {
	return &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev, Value: []byte("v")}}
}

func hubResp(id, rev int64, evs ...*mvccpb.Event) *pb.WatchResponse {
	return &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: id, Events: evs}
}

// TestBatchKeepsOrderAndBarriers: event responses of one watcher merge in order, with
// the newest header revision; a progress or compaction response is never passed (a
// watcher's for that watcher, the stream's -1 for all).
func TestBatchKeepsOrderAndBarriers(t *testing.T) {
	a2, a3 := evAt(2, "a"), evAt(3, "a")
	b2, b3 := evAt(2, "b"), evAt(3, "b")
	a5, b5, a6 := evAt(5, "a"), evAt(5, "b"), evAt(6, "a")
	in := []*pb.WatchResponse{
		hubResp(1, 2, a2), hubResp(2, 2, b2),
		hubResp(1, 3, a3), hubResp(2, 3, b3),
		hubResp(2, 3),  // watcher 2's progress at 3
		hubResp(-1, 4), // the stream's progress at 4
		hubResp(1, 5, a5), hubResp(2, 5, b5),
		{Header: &pb.ResponseHeader{}, WatchId: 2, CompactRevision: 4},
		hubResp(1, 6, a6),
	}
	out := batch(in)
	type want struct {
		id, rev int64
		evs     []*mvccpb.Event
	}
	wants := []want{
		{1, 3, []*mvccpb.Event{a2, a3}}, {2, 3, []*mvccpb.Event{b2, b3}},
		{2, 3, nil}, {-1, 4, nil},
		{1, 6, []*mvccpb.Event{a5, a6}}, {2, 5, []*mvccpb.Event{b5}}, {2, 0, nil},
	}
	if len(out) != len(wants) {
		t.Fatalf("%d responses, want %d", len(out), len(wants))
	}
	for i, w := range wants {
		o := out[i]
		if o.id != w.id || o.rev != w.rev || len(o.events) != len(w.evs) {
			t.Fatalf("response %d: id %d rev %d %d events, want %+v", i, o.id, o.rev, len(o.events), w)
		}
		for j, ev := range w.evs {
			if o.events[j] != ev {
				t.Fatalf("response %d event %d out of order", i, j)
			}
		}
	}
	if out[6].base.CompactRevision != 4 {
		t.Fatal("compaction response lost")
	}
	// The hub's slices are shared by watchers: merging must not write into them.
	if len(in[0].Events) != 1 || in[0].Events[0] != a2 {
		t.Fatal("merge changed a hub response")
	}
}

// TestBatchBoundsMergedSize: merging stops at maxMergedBytes, at a revision boundary.
func TestBatchBoundsMergedSize(t *testing.T) {
	big := make([]byte, maxMergedBytes/3)
	var in []*pb.WatchResponse
	for r := int64(2); r < 8; r++ {
		in = append(in, hubResp(1, r, &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: r, Value: big}}))
	}
	out := batch(in)
	if len(out) != 3 {
		t.Fatalf("%d responses, want 3", len(out))
	}
	next := int64(2)
	for _, o := range out {
		for _, ev := range o.events {
			if ev.Kv.ModRevision != next {
				t.Fatalf("event of revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next++
		}
	}
}

// TestEncodedIsWatchResponse: a response built from pre-encoded events decodes as the
// WatchResponse with those events, and each event is marshalled once.
func TestEncodedIsWatchResponse(t *testing.T) {
	evs := []*mvccpb.Event{evAt(7, "a"), {Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 7},
		PrevKv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 3, Value: []byte("old")}}}
	enc := newEventEncoder()
	h := &pb.ResponseHeader{ClusterId: 1, MemberId: 2, RaftTerm: 3, Revision: 7}
	for _, id := range []int64{0, 5} {
		wr, err := enc.encoded(h, id, evs)
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(wr)
		if err != nil {
			t.Fatal(err)
		}
		var got pb.WatchResponse
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := &pb.WatchResponse{Header: h, WatchId: id, Events: evs}
		if !proto.Equal(&got, want) {
			t.Fatalf("decoded %v, want %v", &got, want)
		}
	}
	if len(enc.enc) != len(evs) {
		t.Fatalf("%d encodings cached, want %d", len(enc.enc), len(evs))
	}
}
