package watch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func matched(g *group, keys ...string) []int64 {
	var evs []*mvccpb.Event
	for _, k := range keys {
		evs = append(evs, &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(k)}})
	}
	var ids []int64
	g.matching(evs, func(w *watcher) { ids = append(ids, w.id) })
	slices.Sort(ids)
	return ids
}

func TestGroupMatchesEachWatcherOnce(t *testing.T) {
	g := newGroup()
	ws := []*watcher{
		{id: 1, key: []byte("a")},
		{id: 2, key: []byte("a")},
		{id: 3, key: []byte("a")},
		{id: 4, key: []byte("b")},
		{id: 5, key: []byte("a"), end: []byte("c")}, // [a, c)
		{id: 6, key: []byte("b"), end: []byte{}},    // every key from b
	}
	for _, w := range ws {
		w.seq = uint64(w.id)
		g.add(w)
	}
	for _, tc := range []struct {
		keys []string
		want []int64
	}{
		{[]string{"a"}, []int64{1, 2, 3, 5}},
		{[]string{"a", "a", "b"}, []int64{1, 2, 3, 4, 5, 6}},
		{[]string{"c"}, []int64{6}},
		{[]string{"0"}, nil},
	} {
		if got := matched(g, tc.keys...); !slices.Equal(got, tc.want) {
			t.Errorf("events on %v matched %v, want %v", tc.keys, got, tc.want)
		}
	}
	g.delete(ws[1]) // middle of a's list
	if got := matched(g, "a"); !slices.Equal(got, []int64{1, 3, 5}) {
		t.Fatalf("after deleting 2: %v", got)
	}
	g.delete(ws[2]) // head (added last)
	g.delete(ws[0])
	if got := matched(g, "a"); !slices.Equal(got, []int64{5}) || g.keys["a"] != nil {
		t.Fatalf("after deleting a's watchers: %v, head %v", got, g.keys["a"])
	}
	// A watcher may leave the group while it is being matched.
	g.add(ws[0])
	g.add(ws[1])
	var ids []int64
	g.matching([]*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("a")}}}, func(w *watcher) {
		ids = append(ids, w.id)
		g.delete(w)
	})
	if len(ids) != 3 || g.size() != 2 {
		t.Fatalf("matched %v while deleting, size after %d (want 3 matched, 2 left)", ids, g.size())
	}
}

// TestIntervalsAgreeWithAScan compares the interval tree with checking every range,
// over random inserts, removals and stabs.
func TestIntervalsAgreeWithAScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte { return []byte{byte('a' + rng.IntN(12)), byte('a' + rng.IntN(3))} }
	var tree intervals
	var all []*watcher
	for step := range 4000 {
		switch op := rng.IntN(10); {
		case op < 5 || len(all) == 0:
			w := &watcher{seq: uint64(step), key: key()}
			if rng.IntN(4) == 0 {
				w.end = []byte{} // every key from key
			} else {
				w.end = append(w.key[:1:1], w.key[1]+byte(1+rng.IntN(30)))
				if rng.IntN(2) == 0 {
					w.end = key()
				}
				if bytes.Compare(w.key, w.end) >= 0 {
					continue
				}
			}
			tree.insert(w)
			all = append(all, w)
		case op < 7:
			i := rng.IntN(len(all))
			if !tree.remove(all[i]) {
				t.Fatalf("step %d: remove of a present watcher failed", step)
			}
			all = slices.Delete(all, i, i+1)
		default:
			k := key()
			var want []uint64
			for _, w := range all {
				if w.contains(k) {
					want = append(want, w.seq)
				}
			}
			var got []uint64
			for _, w := range tree.stab(k, nil) {
				got = append(got, w.seq)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: stab(%q) = %v, want %v", step, k, got, want)
			}
			if tree.any(k) != (len(want) > 0) {
				t.Fatalf("step %d: any(%q) = %v with %d ranges holding it", step, k, tree.any(k), len(want))
			}
		}
		if tree.n != len(all) {
			t.Fatalf("step %d: tree holds %d, want %d", step, tree.n, len(all))
		}
	}
}

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
