package watch

import (
	"fmt"
	"runtime"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestIdleWatcherMemory reports the heap an idle watcher costs (the target:
// at most etcd's ~350 B per watcher), for watchers of distinct keys and of prefixes,
// all on one stream. It fails only far above the target.
func TestIdleWatcherMemory(t *testing.T) {
	f := newFixture(t)
	const n = 10000
	for _, kind := range []string{"key", "prefix"} {
		s := f.hub.NewStream()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			k := []byte(fmt.Sprintf("/registry/pods/ns/pod-%06d", i))
			r := &pb.WatchCreateRequest{Key: k}
			if kind == "prefix" {
				r.RangeEnd = append(append([]byte(nil), k...), 0xff)
			}
			f.watch(s, r)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / n
		t.Logf("%s watchers: %.0f B each (keys of 29 bytes)", kind, per)
		if per > 1000 {
			t.Errorf("%s watchers cost %.0f B each", kind, per)
		}
		s.Close()
	}
}
