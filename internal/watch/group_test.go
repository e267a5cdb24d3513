package watch

import (
	"slices"
	"testing"

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
