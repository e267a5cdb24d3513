package watch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// fixture is a real mvcc store on Pebble in a temp dir with a hub over it; writes
// notify the hub as the server's apply loop does.
type fixture struct {
	t     *testing.T
	eng   storage.Engine
	store *mvcc.Store
	hub   *Hub
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	eng, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mvcc.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, eng: eng, store: st, hub: New(st, nil)}
	t.Cleanup(func() {
		f.hub.Close()
		_ = st.Close()
		_ = eng.Close()
	})
	return f
}

// txn runs fn in one revision, commits it and notifies the hub.
func (f *fixture) txn(fn func(w *mvcc.TxnWrite)) int64 {
	f.t.Helper()
	b := f.eng.NewBatch()
	defer b.Close()
	w := f.store.Write(b)
	fn(w)
	if err := w.End(); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		f.t.Fatal(err)
	}
	f.store.Committed(w)
	f.hub.Notify(f.store.Rev())
	return f.store.Rev()
}

func (f *fixture) put(k, v string) int64 {
	f.t.Helper()
	return f.txn(func(w *mvcc.TxnWrite) {
		if _, err := w.Put([]byte(k), []byte(v), 0, false); err != nil {
			f.t.Fatal(err)
		}
	})
}

func (f *fixture) del(k string) int64 {
	f.t.Helper()
	return f.txn(func(w *mvcc.TxnWrite) {
		if _, err := w.DeleteRange([]byte(k), nil); err != nil {
			f.t.Fatal(err)
		}
	})
}

// compact schedules a compaction at rev and waits until it has physically run.
func (f *fixture) compact(rev int64) {
	f.t.Helper()
	b := f.eng.NewBatch()
	defer b.Close()
	if err := f.store.ScheduleCompaction(b, rev); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		f.t.Fatal(err)
	}
	f.store.CompactionScheduled(rev)
}

func (f *fixture) watch(s *Stream, r *pb.WatchCreateRequest) int64 {
	f.t.Helper()
	id, err := s.Watch(r)
	if err != nil {
		f.t.Fatalf("Watch(%v): %v", r, err)
	}
	return id
}

// recv returns the stream's next response; the timeout only turns a hang into a
// failure.
func recv(t *testing.T, s *Stream) *pb.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-s.Chan():
		if !ok {
			t.Fatal("stream channel closed")
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no watch response")
	}
	return nil
}

// collect reads responses until it has n events for watch id, checking that events
// come in strictly increasing revisions and that no revision is split over two
// responses.
func collect(t *testing.T, s *Stream, id int64, n int) []*mvccpb.Event {
	t.Helper()
	var evs []*mvccpb.Event
	last := int64(0)
	for len(evs) < n {
		r := recv(t, s)
		if r.WatchId != id {
			continue
		}
		if r.CompactRevision != 0 {
			t.Fatalf("compacted at %d after %d events", r.CompactRevision, len(evs))
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision <= last && !(ev.Kv.ModRevision == last && len(evs) > 0 && sameResponse(r, ev, evs)) {
				t.Fatalf("event at revision %d after %d", ev.Kv.ModRevision, last)
			}
			last = ev.Kv.ModRevision
			evs = append(evs, ev)
		}
	}
	return evs
}

// sameResponse: ev and the previous event of evs share a revision inside response r.
func sameResponse(r *pb.WatchResponse, ev *mvccpb.Event, evs []*mvccpb.Event) bool {
	prev := evs[len(evs)-1]
	for _, e := range r.Events {
		if e == prev {
			return true
		}
	}
	return false
}

func TestSyncedWatcherGetsEachRevisionInOrder(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k")})
	var revs []int64
	for i := range 20 {
		revs = append(revs, f.put("k", fmt.Sprint(i)))
		f.put("other", "x")
	}
	evs := collect(t, s, id, 20)
	for i, ev := range evs {
		if ev.Type != mvccpb.Event_PUT || ev.Kv.ModRevision != revs[i] || string(ev.Kv.Value) != fmt.Sprint(i) {
			t.Fatalf("event %d: %v, want put of %d at %d", i, ev, i, revs[i])
		}
		if ev.PrevKv != nil {
			t.Fatalf("event %d has prev_kv without asking", i)
		}
	}
}

func TestTxnEventsArriveInOneResponse(t *testing.T) {
	f := newFixture(t)
	f.put("p/c", "old")
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("p/"), RangeEnd: []byte("p0")})
	rev := f.txn(func(w *mvcc.TxnWrite) {
		_, _ = w.Put([]byte("p/a"), []byte("1"), 0, false)
		_, _ = w.Put([]byte("p/b"), []byte("2"), 0, false)
		_, _ = w.DeleteRange([]byte("p/c"), nil)
	})
	r := recv(t, s)
	if r.WatchId != id || len(r.Events) != 3 || r.Header.Revision != rev {
		t.Fatalf("response %v: want the txn's 3 events at %d in one", r, rev)
	}
	if r.Events[2].Type != mvccpb.Event_DELETE || r.Events[2].Kv.ModRevision != rev {
		t.Fatalf("third event %v: want the delete of p/c at %d", r.Events[2], rev)
	}
}

func TestPastStartRevisionReplaysThenFollows(t *testing.T) {
	f := newFixture(t)
	first := f.put("k", "0")
	// More history than one catch-up chunk holds.
	n := maxRevsPerChunk + 200
	for i := 1; i < n; i++ {
		f.put("k", fmt.Sprint(i))
	}
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: first})
	// Writes racing the catch-up: no gap and no duplicate at the hand-over.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := n; i < n+100; i++ {
			f.put("k", fmt.Sprint(i))
		}
	}()
	evs := collect(t, s, id, n+100)
	<-done
	for i, ev := range evs {
		if string(ev.Kv.Value) != fmt.Sprint(i) || ev.Kv.ModRevision != first+int64(i) {
			t.Fatalf("event %d: value %q at %d, want %d at %d", i, ev.Kv.Value, ev.Kv.ModRevision, i, first+int64(i))
		}
	}
}

func TestSlowStreamMovesToUnsyncedWhileFastKeepsReceiving(t *testing.T) {
	f := newFixture(t)
	slow := f.hub.NewStream()
	fast := f.hub.NewStream()
	slowID := f.watch(slow, &pb.WatchCreateRequest{Key: []byte("k")})
	fastID := f.watch(fast, &pb.WatchCreateRequest{Key: []byte("k")})
	n := 3 * streamBufLen
	for i := range n {
		f.put("k", fmt.Sprint(i))
	}
	// The slow stream has not been read at all: the fast one still gets everything.
	if got := len(collect(t, fast, fastID, n)); got != n {
		t.Fatalf("fast watcher got %d events, want %d", got, n)
	}
	if m := f.hub.Metrics(); m.SlowWatchers != 1 || m.Watchers != 2 || m.Streams != 2 || m.EventsSent < uint64(n) {
		t.Fatalf("metrics %+v, want 2 streams, 2 watchers of which the slow one unsynced, %d events sent at least", m, n)
	}
	// Then the slow one reads and catches up from history, without gap or duplicate.
	evs := collect(t, slow, slowID, n)
	for i, ev := range evs {
		if string(ev.Kv.Value) != fmt.Sprint(i) {
			t.Fatalf("slow watcher event %d has value %q", i, ev.Kv.Value)
		}
	}
	next := f.put("k", "after")
	if ev := collect(t, slow, slowID, 1)[0]; ev.Kv.ModRevision != next {
		t.Fatalf("after catching up: event at %d, want %d", ev.Kv.ModRevision, next)
	}
}

func TestCompactionCancelsWatcherItOvertakes(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k")})
	var last int64
	for i := range 2 * streamBufLen {
		last = f.put("k", fmt.Sprint(i))
	}
	f.compact(last)
	// The buffer holds what was sent before the stream was full; then compaction.
	events := 0
	for {
		r := recv(t, s)
		if r.CompactRevision != 0 {
			if r.WatchId != id || r.CompactRevision != last {
				t.Fatalf("compaction response %v, want watch %d compacted at %d", r, id, last)
			}
			break
		}
		events += len(r.Events)
	}
	if events >= 2*streamBufLen {
		t.Fatalf("%d events before compaction: the watcher was never behind", events)
	}
	f.put("k", "later")
	if got := f.store.Rev(); got != last+1 {
		t.Fatalf("rev %d", got)
	}
	if err := s.Cancel(id); err != nil {
		t.Fatalf("cancel of a compacted watcher: %v (etcd keeps its id until then)", err)
	}
}

func TestStartBelowCompactionIsCompacted(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		f.put("k", fmt.Sprint(i))
	}
	f.compact(4)
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2})
	if r := recv(t, s); r.WatchId != id || r.CompactRevision != 4 || len(r.Events) != 0 {
		t.Fatalf("response %v, want compact_revision 4", r)
	}
	// At the compacted revision itself the history is still there.
	id2 := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 4})
	evs := collect(t, s, id2, 3)
	if evs[0].Kv.ModRevision != 4 || evs[2].Kv.ModRevision != 6 {
		t.Fatalf("events from the compacted revision: %v", evs)
	}
}

func TestFiltersAndPrevKV(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	noPut := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	noDel := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	prev := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true})
	f.put("k", "1")
	f.put("k", "2")
	d := f.del("k")
	byID := map[int64][]*mvccpb.Event{}
	for len(byID[noPut])+len(byID[noDel])+len(byID[prev]) < 1+2+3 {
		r := recv(t, s)
		byID[r.WatchId] = append(byID[r.WatchId], r.Events...)
	}
	if evs := byID[noPut]; len(evs) != 1 || evs[0].Type != mvccpb.Event_DELETE || evs[0].PrevKv != nil {
		t.Fatalf("NOPUT watcher got %v", evs)
	}
	if evs := byID[noDel]; len(evs) != 2 || evs[1].PrevKv == nil || string(evs[1].PrevKv.Value) != "1" || evs[0].PrevKv != nil {
		t.Fatalf("NODELETE+prev_kv watcher got %v", evs)
	}
	evs := byID[prev]
	if len(evs) != 3 || evs[2].Kv.ModRevision != d || string(evs[2].PrevKv.Value) != "2" {
		t.Fatalf("prev_kv watcher got %v", evs)
	}
}

func TestProgressAllWaitsForUnsyncedWatchers(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	s.RequestProgressAll()
	if r := recv(t, s); r.WatchId != -1 || r.Header.Revision != f.store.Rev() || len(r.Events) != 0 {
		t.Fatalf("progress on an idle stream: %v", r)
	}
	first := f.put("k", "0")
	var last int64
	for i := 1; i < 3*streamBufLen; i++ {
		last = f.put("k", fmt.Sprint(i))
	}
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: first})
	s.RequestProgressAll()
	seen := int64(0)
	for {
		r := recv(t, s)
		if r.WatchId == -1 {
			if seen != last || r.Header.Revision < last {
				t.Fatalf("progress at %d after events up to %d, want it after %d", r.Header.Revision, seen, last)
			}
			break
		}
		if r.WatchId == id && len(r.Events) > 0 {
			seen = r.Events[len(r.Events)-1].Kv.ModRevision
		}
	}
}

func TestWatchIDs(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	if id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("a")}); id != 0 {
		t.Fatalf("first auto id %d, want 0", id)
	}
	f.watch(s, &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 2})
	if _, err := s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 2}); err != ErrDuplicateID {
		t.Fatalf("duplicate id: %v", err)
	}
	// Auto ids skip the ones taken: 1, then 3.
	if id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("a")}); id != 1 {
		t.Fatalf("auto id %d, want 1", id)
	}
	if id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("a")}); id != 3 {
		t.Fatalf("auto id %d, want 3", id)
	}
	if _, err := s.Watch(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}); err != ErrEmptyRange {
		t.Fatalf("range end below key: %v", err)
	}
	if err := s.Cancel(7); err != ErrNotExist {
		t.Fatalf("cancel of an unknown id: %v", err)
	}
	if err := s.Cancel(2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, ok := <-s.Chan(); ok {
		t.Fatal("channel open after Close")
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	f.watch(s, &pb.WatchCreateRequest{Key: []byte("k")})
	// Nobody reads s; Notify must still return at once every time (no timing: a
	// blocked Notify would hang the test).
	for i := range 4 * streamBufLen {
		f.put("k", fmt.Sprint(i))
	}
}

// TestCreationRacingCompaction creates watchers from past revisions while compaction
// moves up: each gets either its whole history from its start revision, in order and
// without a gap, or a compaction response before any event it should not have lost.
func TestCreationRacingCompaction(t *testing.T) {
	f := newFixture(t)
	first := f.put("k", "0")
	const n = 400
	for i := 1; i < n; i++ {
		f.put("k", fmt.Sprint(i))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rev := first + 20; rev < first+n-50; rev += 20 {
			f.compact(rev)
		}
	}()
	type made struct {
		s     *Stream
		id    int64
		start int64
	}
	var ws []made
	for i := range 40 {
		s := f.hub.NewStream()
		start := first + int64(i*9)
		ws = append(ws, made{s, f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: start}), start})
	}
	<-done
	last := f.store.Rev()
	compacted := 0
	for _, w := range ws {
		next := w.start
		for next <= last {
			r := recv(t, w.s)
			if r.CompactRevision != 0 {
				if r.CompactRevision <= next {
					t.Fatalf("watcher from %d: compacted at %d while it needed %d", w.start, r.CompactRevision, next)
				}
				compacted++
				break
			}
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("watcher from %d: event at %d, want %d", w.start, ev.Kv.ModRevision, next)
				}
				next++
			}
		}
		w.s.Close()
	}
	t.Logf("%d of %d watchers were compacted", compacted, len(ws))
}

// TestCatchUpPastTheHubsRevision: a catch-up reads what the store has, even revisions
// the hub has not been told of yet; when the hub reads them, the watcher gets no
// duplicate, and progress never reports less than what was sent.
func TestCatchUpPastTheHubsRevision(t *testing.T) {
	f := newFixture(t)
	first := f.put("k", "0")
	f.put("k", "1")
	// Two revisions the apply loop has not told the hub about yet.
	notify := f.hub.Notify
	silent := func(k, v string) int64 {
		b := f.eng.NewBatch()
		defer b.Close()
		w := f.store.Write(b)
		if _, err := w.Put([]byte(k), []byte(v), 0, false); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		f.store.Committed(w)
		return f.store.Rev()
	}
	silent("k", "2")
	last := silent("k", "3")
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: first})
	r := recv(t, s)
	if len(r.Events) != 4 || r.Header.Revision != last {
		t.Fatalf("catch-up response: %d events at %d, want the 4 up to %d", len(r.Events), r.Header.Revision, last)
	}
	s.RequestProgressAll()
	notify(last)
	if r := recv(t, s); r.WatchId != -1 || r.Header.Revision < last {
		t.Fatalf("after the catch-up: %v, want progress at %d at least", r, last)
	}
	next := f.put("k", "4")
	if r := recv(t, s); r.WatchId != id || len(r.Events) != 1 || r.Events[0].Kv.ModRevision != next {
		t.Fatalf("next response %v, want only the put at %d", r, next)
	}
}

// TestStreamHoldsBoundedBytes: a stream that does not read holds about
// maxStreamBytes of events, not every revision; its watcher then catches up.
func TestStreamHoldsBoundedBytes(t *testing.T) {
	f := newFixture(t)
	s := f.hub.NewStream()
	id := f.watch(s, &pb.WatchCreateRequest{Key: []byte("big")})
	value := strings.Repeat("v", 1<<20)
	n := maxStreamBytes>>20 + 8
	for range n {
		f.put("big", value)
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.hub.Metrics().SlowWatchers != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher of a full stream never became unsynced")
		}
		time.Sleep(time.Millisecond)
	}
	f.hub.mu.Lock()
	s.reclaim()
	held, queued := s.queuedBytes, len(s.ch)
	f.hub.mu.Unlock()
	if held > maxStreamBytes+(2<<20) || queued >= n {
		t.Fatalf("a stream that does not read holds %d bytes in %d responses (bound %d)", held, queued, maxStreamBytes)
	}
	if got := len(collect(t, s, id, n)); got != n {
		t.Fatalf("%d events after catching up, want %d", got, n)
	}
}
