package watch

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestBusyStreamGetsRevisionsBatched: the watchers of a stream that is behind are not
// sent each revision alone; once the stream is read they get what they missed in
// fewer responses, each holding whole revisions, in order, with no gap or duplicate.
func TestBusyStreamGetsRevisionsBatched(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	const watchers, puts = 2 * streamBusyLen, 20
	ids := make([]int64, watchers)
	for i := range ids {
		ids[i] = f.watch(s, &pb.WatchCreateRequest{Key: []byte("k")})
	}
	first := f.store.Rev() + 1
	for i := range puts {
		f.put("k", fmt.Sprint(i))
	}
	// Not read yet: at most one busy stream's worth of single revisions is queued.
	next := make(map[int64]int64)
	for _, id := range ids {
		next[id] = first
	}
	responses := 0
	for done := 0; done < watchers; {
		r := recv(t, s)
		if len(r.Events) == 0 {
			t.Fatalf("response without events: %v", r)
		}
		responses++
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next[r.WatchId] {
				t.Fatalf("watcher %d: event at %d, want %d", r.WatchId, ev.Kv.ModRevision, next[r.WatchId])
			}
			next[r.WatchId]++
		}
		if next[r.WatchId] == first+puts {
			done++
		}
	}
	if responses >= watchers*puts/2 {
		t.Fatalf("%d responses for %d watchers x %d revisions: not batched", responses, watchers, puts)
	}
	// And they follow new revisions again.
	rev := f.put("k", "after")
	for range watchers {
		r := recv(t, s)
		if len(r.Events) != 1 || r.Events[0].Kv.ModRevision != rev {
			t.Fatalf("after catching up: %v", r)
		}
	}
}
