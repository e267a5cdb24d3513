package watch

import (
	"bytes"
	"cmp"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// watcher is one watch of one stream. Its fields are guarded by Hub.mu.
type watcher struct {
	id     int64
	stream *Stream
	key    []byte
	// end, as etcd's mvcc: nil watches key alone; empty and non-nil every key >= key;
	// otherwise [key, end).
	end []byte

	// startRev is the start revision the client asked for (0: from now). A watcher
	// whose startRev is above the hub's revision is not "synced" for progress.
	startRev int64
	// minRev is the lowest revision the watcher has not received yet (events below it
	// were sent or did not match). In the synced group it may be above the hub's
	// revision (a watch from now, or from the future).
	minRev int64

	prevKV   bool
	noPut    bool
	noDelete bool

	// seq orders watchers created on the same key (intervals).
	seq uint64
	// prevK, nextK link the synced watchers of one key (group.keys), without a
	// container per key.
	prevK, nextK *watcher

	synced bool
	// done: canceled, compacted or its stream closed; the hub forgets it.
	done bool
}

// contains reports whether the watcher's range holds key.
func (w *watcher) contains(key []byte) bool {
	if w.end == nil {
		return bytes.Equal(key, w.key)
	}
	if bytes.Compare(key, w.key) < 0 {
		return false
	}
	return len(w.end) == 0 || bytes.Compare(key, w.end) < 0
}

// events is a run of events shared by every watcher they are offered to, with their
// copies without PrevKv made once, when a watcher that did not ask for prev_kv first
// needs one. Watchers that want every event share one slice (all, or allBare), so the
// fan-out of a revision allocates no slice per watcher; those slices are never
// written after they are made (receivers must copy before they append).
type events struct {
	evs     []*mvccpb.Event
	bare    []*mvccpb.Event
	allBare []*mvccpb.Event
	// header is shared by the responses of one revision (synced delivery); nil for a
	// catch-up chunk.
	header *pb.ResponseHeader
}

func newEvents(evs []*mvccpb.Event) *events { return &events{evs: slices.Clip(evs)} }

// bareAt is evs[i] without PrevKv. The events themselves are never changed.
func (e *events) bareAt(i int) *mvccpb.Event {
	ev := e.evs[i]
	if ev.PrevKv == nil {
		return ev
	}
	if e.bare == nil {
		e.bare = make([]*mvccpb.Event, len(e.evs))
	}
	if e.bare[i] == nil {
		e.bare[i] = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
	}
	return e.bare[i]
}

// all is every event, with PrevKv if prevKV, as one shared slice.
func (e *events) all(prevKV bool) []*mvccpb.Event {
	if prevKV {
		return e.evs
	}
	if e.allBare == nil {
		e.allBare = make([]*mvccpb.Event, len(e.evs))
		for i := range e.evs {
			e.allBare[i] = e.bareAt(i)
		}
	}
	return e.allBare
}

// filter returns the events this watcher sends: in its range, at or above minRev, not
// filtered out, without PrevKv unless asked. When it wants them all, the slice is the
// shared one (e.all).
func (w *watcher) filter(e *events) []*mvccpb.Event {
	var out []*mvccpb.Event
	for i, ev := range e.evs {
		if !w.wants(ev) {
			if out == nil {
				out = make([]*mvccpb.Event, 0, len(e.evs)-1)
				for j := range i {
					out = append(out, w.variant(e, j))
				}
			}
			continue
		}
		if out != nil {
			out = append(out, w.variant(e, i))
		}
	}
	if out == nil {
		return e.all(w.prevKV)
	}
	return out
}

// variant is e.evs[i] as this watcher sends it (with PrevKv or not).
func (w *watcher) variant(e *events, i int) *mvccpb.Event {
	if w.prevKV {
		return e.evs[i]
	}
	return e.bareAt(i)
}

// wants reports whether the watcher sends ev.
func (w *watcher) wants(ev *mvccpb.Event) bool {
	if ev.Kv.ModRevision < w.minRev || !w.contains(ev.Kv.Key) {
		return false
	}
	return !(w.noPut && ev.Type == mvccpb.Event_PUT) && !(w.noDelete && ev.Type == mvccpb.Event_DELETE)
}

// trySend queues resp on the watcher's stream without blocking; false if the stream
// has no room (Stream.offer). Called with Hub.mu held.
func (w *watcher) trySend(resp *pb.WatchResponse) bool { return w.stream.offer(resp) }

// group is a set of watchers indexed for event matching: watchers of one key by that
// key (a list through the watchers themselves), range watchers in an interval tree.
type group struct {
	keys   map[string]*watcher // head of each key's list
	ranges intervals
	n      int
}

func newGroup() *group {
	return &group{keys: make(map[string]*watcher)}
}

func (g *group) add(w *watcher) {
	if w.end == nil {
		head := g.keys[string(w.key)]
		w.prevK, w.nextK = nil, head
		if head != nil {
			head.prevK = w
		}
		g.keys[string(w.key)] = w
	} else {
		g.ranges.insert(w)
	}
	g.n++
}

// delete removes w, which must be in the group.
func (g *group) delete(w *watcher) {
	if w.end == nil {
		switch {
		case w.prevK != nil:
			w.prevK.nextK = w.nextK
		case w.nextK != nil:
			g.keys[string(w.key)] = w.nextK
		default:
			delete(g.keys, string(w.key))
		}
		if w.nextK != nil {
			w.nextK.prevK = w.prevK
		}
		w.prevK, w.nextK = nil, nil
	} else {
		g.ranges.remove(w)
	}
	g.n--
}

func (g *group) size() int { return g.n }

// mayWant reports whether a watcher of the group watches key.
func (g *group) mayWant(key []byte) bool {
	if g.keys[string(key)] != nil {
		return true
	}
	return g.ranges.n > 0 && g.ranges.any(key)
}

// matching calls fn once for each watcher that may want one of evs (its range holds
// one of their keys). fn may delete the watcher it is given from the group.
func (g *group) matching(evs []*mvccpb.Event, fn func(w *watcher)) {
	var seen map[*watcher]struct{}
	if len(evs) > 1 {
		seen = make(map[*watcher]struct{})
	}
	for _, ev := range evs {
		for w := g.keys[string(ev.Kv.Key)]; w != nil; {
			next := w.nextK
			if _, ok := seen[w]; !ok {
				if seen != nil {
					seen[w] = struct{}{}
				}
				fn(w)
			}
			w = next
		}
	}
	var ranged []*watcher
	for _, ev := range evs {
		ranged = g.ranges.stab(ev.Kv.Key, ranged)
	}
	if len(evs) > 1 {
		slices.SortFunc(ranged, func(a, b *watcher) int { return cmp.Compare(a.seq, b.seq) })
		ranged = slices.Compact(ranged)
	}
	for _, w := range ranged {
		fn(w)
	}
}

// each calls fn for every watcher of the group; fn may delete it.
func (g *group) each(fn func(w *watcher)) {
	for _, head := range g.keys {
		for w := head; w != nil; {
			next := w.nextK
			fn(w)
			w = next
		}
	}
	var ranged []*watcher
	g.ranges.each(func(w *watcher) { ranged = append(ranged, w) })
	for _, w := range ranged {
		fn(w)
	}
}
