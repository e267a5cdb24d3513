package grpcapi

import (
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

func bigEvents(n, size int) []*mvccpb.Event {
	var evs []*mvccpb.Event
	for i := range n {
		evs = append(evs, &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte{byte('a' + i)}, ModRevision: int64(i + 2), Value: []byte(strings.Repeat("v", size))}})
	}
	return evs
}

// TestSendFragments splits as etcd's sendFragments: parts under the limit (each with
// one event at least), all but the last marked fragment, the same header and id.
func TestSendFragments(t *testing.T) {
	const limit = 1000
	for _, tc := range []struct {
		name  string
		evs   []*mvccpb.Event
		parts []int // events per sent response
	}{
		{"under the limit", bigEvents(3, 100), []int{3}},
		{"one event over the limit is sent whole", bigEvents(1, 5000), []int{1}},
		{"split", bigEvents(5, 400), []int{2, 2, 1}},
		{"each event alone over the limit", bigEvents(3, 2000), []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wr := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: 9}, WatchId: 4, Events: tc.evs}
			var sent []*pb.WatchResponse
			if err := sendFragments(wr, limit, func(r *pb.WatchResponse) error { sent = append(sent, r); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(sent) != len(tc.parts) {
				t.Fatalf("%d responses, want %d", len(sent), len(tc.parts))
			}
			var all []*mvccpb.Event
			for i, r := range sent {
				if len(r.Events) != tc.parts[i] || r.WatchId != 4 || r.Header.Revision != 9 {
					t.Fatalf("part %d: %d events, id %d, header %v", i, len(r.Events), r.WatchId, r.Header)
				}
				if last := i == len(sent)-1; r.Fragment == last && len(sent) > 1 {
					t.Fatalf("part %d of %d: fragment=%v", i, len(sent), r.Fragment)
				}
				if len(r.Events) > 1 && proto.Size(r) >= limit {
					t.Fatalf("part %d of %d bytes with %d events", i, proto.Size(r), len(r.Events))
				}
				all = append(all, r.Events...)
			}
			for i, ev := range all {
				if ev != tc.evs[i] {
					t.Fatalf("event %d out of order", i)
				}
			}
		})
	}
}
