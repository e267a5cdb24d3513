package watch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
)

// The randomized model test: random puts, deletes, range deletes and multi-key txns
// on a small key space, random compactions, and watchers of one key, a range, a prefix
// or everything, from now, from the past or from the future, with filters and prev_kv,
// on streams that are read as events come and streams that are not read until the
// end (so they go busy and unsynced). A model replays the same operations and says
// which events each watcher must see; the hub must deliver exactly those, in
// order, a revision never split over two responses, unless compaction overtook the
// watcher, which must then end with compact_revision set after a prefix of them.

// modelKV is the model's live version of a key.
type modelKV struct {
	value                   string
	create, mod, ver, lease int64
}

func (m *modelKV) pb(key string) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(m.value), CreateRevision: m.create, ModRevision: m.mod, Version: m.ver, Lease: m.lease}
}

type model struct {
	live    map[string]*modelKV
	history []*mvccpb.Event // every event, in revision order, prev_kv filled
}

var modelKeys = []string{"a", "a/1", "a/2", "b", "b/1", "c", "d", "e"}

// op is one write of a txn; end != "" makes it a range delete of [key, end).
type modelOp struct {
	put      bool
	key, end string
	value    string
}

// apply runs ops as one revision on the model.
func (m *model) apply(rev int64, ops []modelOp) {
	for _, op := range ops {
		if op.put {
			kv := &modelKV{value: op.value, create: rev, mod: rev, ver: 1}
			var prev *mvccpb.KeyValue
			if old := m.live[op.key]; old != nil {
				prev = old.pb(op.key)
				kv.create, kv.ver = old.create, old.ver+1
			}
			m.live[op.key] = kv
			m.history = append(m.history, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv.pb(op.key), PrevKv: prev})
			continue
		}
		var keys []string
		for k := range m.live {
			if k == op.key || (op.end != "" && k >= op.key && k < op.end) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			m.history = append(m.history, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(k), ModRevision: rev}, PrevKv: m.live[k].pb(k)})
			delete(m.live, k)
		}
	}
}

// modelWatcher is one watcher with what the model expects and what it got.
type modelWatcher struct {
	req      *pb.WatchCreateRequest
	id       int64
	stream   int
	created  int64 // the store's revision when it was created
	canceled int64 // the store's revision when the test canceled it; 0 if not
	// belowCompaction: it started below the compacted revision, so it must be compacted.
	belowCompaction bool

	got       []*mvccpb.Event
	lastResp  int64 // the highest revision of the responses so far
	compacted int64 // the compact_revision it ended with
	err       string
}

// wants: the model's answer, every event the watcher must get (before any cancel).
func (w *modelWatcher) wants(m *model) []*mvccpb.Event {
	from := w.req.StartRevision
	if from <= 0 {
		from = w.created + 1
	}
	var out []*mvccpb.Event
	for _, ev := range m.history {
		if ev.Kv.ModRevision < from || (w.canceled != 0 && ev.Kv.ModRevision > w.canceled) {
			continue
		}
		k := ev.Kv.Key
		in := bytes.Equal(k, w.req.Key)
		if w.req.RangeEnd != nil {
			in = bytes.Compare(k, w.req.Key) >= 0 && (len(w.req.RangeEnd) == 0 || bytes.Compare(k, w.req.RangeEnd) < 0)
		}
		if !in {
			continue
		}
		var filtered bool
		for _, f := range w.req.Filters {
			filtered = filtered || (f == pb.WatchCreateRequest_NOPUT && ev.Type == mvccpb.Event_PUT) || (f == pb.WatchCreateRequest_NODELETE && ev.Type == mvccpb.Event_DELETE)
		}
		if filtered {
			continue
		}
		e := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		if w.req.PrevKv {
			e.PrevKv = ev.PrevKv
		}
		out = append(out, e)
	}
	return out
}

// record takes one response for w, checking the response-level guarantees.
func (w *modelWatcher) record(r *pb.WatchResponse) {
	if w.err != "" {
		return
	}
	if w.compacted != 0 {
		w.err = fmt.Sprintf("response %v after compaction", r)
		return
	}
	if r.CompactRevision != 0 {
		w.compacted = r.CompactRevision
		return
	}
	if len(r.Events) == 0 {
		return // progress
	}
	first, last := r.Events[0].Kv.ModRevision, r.Events[len(r.Events)-1].Kv.ModRevision
	switch {
	case first <= w.lastResp:
		w.err = fmt.Sprintf("response from revision %d after one up to %d: out of order, duplicated or a revision split", first, w.lastResp)
	case r.Header == nil || r.Header.Revision < last:
		w.err = fmt.Sprintf("response header %v below its last event's revision %d", r.Header, last)
	}
	for i := 1; i < len(r.Events); i++ {
		if r.Events[i].Kv.ModRevision < r.Events[i-1].Kv.ModRevision {
			w.err = fmt.Sprintf("events out of order inside a response: %v", r.Events)
		}
	}
	w.lastResp = last
	w.got = append(w.got, r.Events...)
}

func TestWatchHubAgreesWithModel(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runWatchModel(t, seed) })
	}
}

func runWatchModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x77a7c4))
	f := newFixture(t)
	m := &model{live: map[string]*modelKV{}}

	const nStreams = 4 // streams 0 and 1 are read as events come; 2 and 3 only at the end
	var (
		mu       sync.Mutex
		watchers []*modelWatcher
		byID     [nStreams]map[int64]*modelWatcher
		streams  [nStreams]*Stream
		wg       sync.WaitGroup
	)
	drain := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range streams[i].Chan() {
				mu.Lock()
				if w := byID[i][r.WatchId]; w != nil {
					w.record(r)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range streams {
		streams[i] = f.hub.NewStream()
		byID[i] = map[int64]*modelWatcher{}
		if i < 2 {
			drain(i)
		}
	}
	var compacted []int64
	compactRev := int64(0)

	newWatcher := func() {
		req := &pb.WatchCreateRequest{Key: []byte(modelKeys[rng.IntN(len(modelKeys))])}
		switch rng.IntN(4) {
		case 1: // a range
			req.RangeEnd = []byte(modelKeys[rng.IntN(len(modelKeys))] + "\x00")
			if bytes.Compare(req.Key, req.RangeEnd) >= 0 {
				req.Key, req.RangeEnd = req.RangeEnd[:len(req.RangeEnd)-1], append(req.Key, 0)
			}
		case 2: // a prefix
			req.RangeEnd = append(slices.Clone(req.Key[:1]), req.Key[0]+1)
			req.Key = req.Key[:1]
		case 3: // every key from key
			req.RangeEnd = []byte{}
		}
		rev := f.store.Rev()
		switch rng.IntN(3) {
		case 1: // the past
			req.StartRevision = 1 + rng.Int64N(rev+1)
		case 2: // the future
			req.StartRevision = rev + 1 + rng.Int64N(3)
		}
		req.PrevKv = rng.IntN(2) == 0
		switch rng.IntN(5) {
		case 0:
			req.Filters = []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}
		case 1:
			req.Filters = []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}
		}
		si := rng.IntN(nStreams)
		mu.Lock()
		defer mu.Unlock()
		id, err := streams[si].Watch(req)
		if err != nil {
			t.Fatalf("Watch(%v): %v", req, err)
		}
		w := &modelWatcher{req: req, id: id, stream: si, created: rev, belowCompaction: req.StartRevision > 0 && req.StartRevision < compactRev}
		watchers = append(watchers, w)
		byID[si][id] = w
	}

	nOps := 600 + rng.IntN(900) // sometimes more than one catch-up chunk
	for i := 0; i < nOps; i++ {
		switch x := rng.IntN(100); {
		case x < 4:
			newWatcher()
			continue
		case x < 5 && len(watchers) > 0:
			w := watchers[rng.IntN(len(watchers))]
			mu.Lock()
			if w.canceled == 0 && w.compacted == 0 {
				if err := streams[w.stream].Cancel(w.id); err == nil {
					w.canceled = f.store.Rev()
				}
			}
			mu.Unlock()
			continue
		case x < 6:
			// Compaction mostly well behind the head, so that most watchers live on.
			if rev := f.store.Rev() - 100; rev > compactRev+1 {
				c := compactRev + 1 + rng.Int64N(rev-compactRev)
				f.compact(c)
				compactRev = c
				compacted = append(compacted, c)
			}
			continue
		}
		// A write: one to three ops on distinct keys, some of them deletes.
		var ops []modelOp
		used := map[string]bool{}
		for n := 1 + rng.IntN(3); len(ops) < n; {
			k := modelKeys[rng.IntN(len(modelKeys))]
			if used[k] {
				continue
			}
			used[k] = true
			switch y := rng.IntN(10); {
			case y < 7:
				ops = append(ops, modelOp{put: true, key: k, value: fmt.Sprintf("v%d", i)})
			case y < 9:
				ops = append(ops, modelOp{key: k})
			default:
				// A range delete takes the txn alone (etcd refuses overlapping ops).
				if len(ops) == 0 {
					end := k + "\xff"
					ops = append(ops, modelOp{key: k, end: end})
				}
				n = len(ops)
			}
		}
		wrote := false
		for _, op := range ops {
			if op.put {
				wrote = true
			} else {
				for k := range m.live {
					if k == op.key || (op.end != "" && k >= op.key && k < op.end) {
						wrote = true
					}
				}
			}
		}
		if !wrote {
			continue // deleting nothing writes no revision, in mvcc as in etcd
		}
		rev := f.txn(func(w *mvcc.TxnWrite) {
			for _, op := range ops {
				var err error
				if op.put {
					_, err = w.Put([]byte(op.key), []byte(op.value), 0, false)
				} else if op.end != "" {
					_, err = w.DeleteRange([]byte(op.key), []byte(op.end))
				} else {
					_, err = w.DeleteRange([]byte(op.key), nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		})
		m.apply(rev, ops)
		if want := int64(len(m.history)); rev <= 0 || m.history[want-1].Kv.ModRevision != rev {
			t.Fatalf("store at revision %d, the model's last event at %d", rev, m.history[want-1].Kv.ModRevision)
		}
	}
	drain(2)
	drain(3)

	// Wait until every watcher has all it must get, or has been compacted.
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range watchers {
			if w.err == "" && w.compacted == 0 && w.canceled == 0 && len(w.got) < len(w.wants(m)) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(60 * time.Second); !done(); {
		if time.Now().After(deadline) {
			break // the checks below say who is missing what
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Everything queued for canceled watchers has arrived once the others have theirs
	// (each stream's responses are in order); close the streams and check.
	for _, s := range streams {
		s.Close()
	}
	wg.Wait()
	var nCompacted, nEvents int
	for _, w := range watchers {
		want := w.wants(m)
		desc := fmt.Sprintf("watcher %d of stream %d (%v, created at %d, canceled at %d)", w.id, w.stream, w.req, w.created, w.canceled)
		if w.err != "" {
			t.Fatalf("%s: %s", desc, w.err)
		}
		got := w.got
		nEvents += len(got)
		if len(got) > len(want) {
			t.Fatalf("%s: %d events, the model has %d", desc, len(got), len(want))
		}
		for i := range got {
			exp := want[i]
			if got[i].PrevKv == nil && exp.PrevKv != nil && exp.Kv.ModRevision <= compactRev {
				// As etcd's, the previous version is read at mod_revision-1 when sent: a
				// compaction that has reached the event's revision leaves it out.
				exp = &mvccpb.Event{Type: exp.Type, Kv: exp.Kv}
			}
			if !proto.Equal(got[i], exp) {
				t.Fatalf("%s: event %d is %v, the model says %v", desc, i, got[i], exp)
			}
		}
		switch {
		case w.compacted != 0:
			nCompacted++
			if !slices.Contains(compacted, w.compacted) {
				t.Fatalf("%s: compacted at %d, compactions were %v", desc, w.compacted, compacted)
			}
			if w.lastResp >= w.compacted {
				t.Fatalf("%s: compacted at %d after receiving revision %d", desc, w.compacted, w.lastResp)
			}
		case w.belowCompaction:
			t.Fatalf("%s: started below the compacted revision and was not compacted", desc)
		case w.canceled != 0:
			// A prefix of what it watched up to the cancel: checked above.
		case len(got) != len(want):
			t.Fatalf("%s: %d events of the model's %d (first missing %v)", desc, len(got), len(want), want[len(got)])
		}
	}
	t.Logf("%d revisions, %d watchers (%d compacted), %d events delivered, compactions at %v", f.store.Rev(), len(watchers), nCompacted, nEvents, compacted)
}
