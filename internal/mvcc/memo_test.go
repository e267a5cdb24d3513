package mvcc

import (
	"fmt"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// countRange reads [key, end) at rev with a limit and checks the count and the keys.
func countRange(t *testing.T, s *Store, key, end string, rev, limit int64, wantCount int, wantFirst string) RangeResult {
	t.Helper()
	r := s.Read()
	defer r.Close()
	res, err := r.Range([]byte(key), []byte(end), RangeOptions{Rev: rev, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != wantCount {
		t.Fatalf("range %q %q at %d: count %d, want %d", key, end, rev, res.Count, wantCount)
	}
	if limit > 0 && int64(len(res.KVs)) != min(limit, int64(wantCount)) {
		t.Fatalf("range %q %q at %d: %d keys, want %d", key, end, rev, len(res.KVs), min(limit, int64(wantCount)))
	}
	if wantFirst != "" && (len(res.KVs) == 0 || string(res.KVs[0].Key) != wantFirst) {
		t.Fatalf("range %q %q at %d: first key %v, want %q", key, end, rev, res.KVs, wantFirst)
	}
	return res
}

func putKeys(t *testing.T, s *Store, from, to int) {
	t.Helper()
	txn(t, s, func(w *TxnWrite) {
		for i := from; i < to; i++ {
			if _, err := w.Put([]byte(fmt.Sprintf("k%04d", i)), []byte("v"), 0, false); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A range with a limit reads again after writes: its count comes from the memo plus the
// revision log, and stays exact through puts of new and existing keys and deletes, at
// the new revision and at the old one.
func TestCountMemoFollowsWrites(t *testing.T) {
	s, _ := newStore(t)
	putKeys(t, s, 0, 200)
	rev0 := s.Rev()
	countRange(t, s, "k", "l", 0, 10, 200, "k0000")
	if d := s.memo.deltas.Load(); d != 0 {
		t.Fatalf("first count from the memo (%d)", d)
	}

	putKeys(t, s, 150, 250)                                // 50 overwritten, 50 new
	del(t, s, "k0000", "k0010")                            // 10 deleted
	put(t, s, "a", "outside the range", 0)                 // not counted
	txn(t, s, func(w *TxnWrite) { putDel(t, w, "k0003") }) // deleted, put back, deleted in one revision
	countRange(t, s, "k", "l", 0, 10, 240, "k0010")
	countRange(t, s, "k", "l", rev0, 10, 200, "k0000") // back to the first revision
	countRange(t, s, "\x00", "\x00", 0, 5, 241, "a")   // another range: counted anew
	if d, c := s.memo.deltas.Load(), s.memo.counted.Load(); d != 2 || c != 2 {
		t.Fatalf("memo answered %d counts and %d were counted, want 2 and 2", d, c)
	}

	// count_only needs no walk at all once the memo knows.
	r := s.Read()
	res, err := r.Range([]byte("k"), []byte("l"), RangeOptions{CountOnly: true})
	r.Close()
	if err != nil || res.Count != 240 || len(res.KVs) != 0 {
		t.Fatalf("count_only: %v %d %d", err, res.Count, len(res.KVs))
	}

	// Compaction above the remembered revisions: the log between them and the read is
	// gone, so the range is counted again.
	put(t, s, "k9998", "v", 0)
	put(t, s, "k9999", "v", 0)
	compact(t, s, s.Rev())
	before := s.memo.counted.Load()
	countRange(t, s, "k", "l", 0, 10, 242, "k0010")
	if s.memo.counted.Load() != before+1 {
		t.Fatalf("a count remembered below the compacted revision was used")
	}
}

func putDel(t *testing.T, w *TxnWrite, k string) {
	t.Helper()
	for i := 0; i < 2; i++ {
		if _, err := w.DeleteRange([]byte(k), nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := w.Put([]byte(k), []byte("again"), 0, false); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Paging through a range at one revision, as Kubernetes lists: every page after the
// first takes its count from the memo (the first page recorded where the next starts).
func TestCountMemoPaging(t *testing.T) {
	s, _ := newStore(t)
	putKeys(t, s, 0, 1000)
	rev := s.Rev()
	putKeys(t, s, 1000, 1100) // after the listed revision
	key, left := "k", 1000
	for page := 0; left > 0; page++ {
		// As apply does: ask for one more than the page, to learn whether there are more.
		res := countRange(t, s, key, "l", rev, 101, left, fmt.Sprintf("k%04d", page*100))
		key = string(res.KVs[min(99, len(res.KVs)-1)].Key) + "\x00"
		left -= 100
	}
	if d, c := s.memo.deltas.Load(), s.memo.counted.Load(); c != 1 || d != 9 {
		t.Fatalf("pages: %d counted, %d from the memo; want 1 and 9", c, d)
	}
}

// A put written before the revision log recorded whether it created its key cannot be
// used to bring a count forward: the range is counted again.
func TestCountMemoOldLogEntries(t *testing.T) {
	s, eng := newStore(t)
	putKeys(t, s, 0, 100)
	countRange(t, s, "k", "l", 0, 1, 100, "k0000")
	// A put as an older build wrote it: version and a log entry with bit 0 alone.
	b := eng.NewBatch()
	rev := s.Rev() + 1
	w := s.Write(b)
	if _, err := w.Put([]byte("k0100"), []byte("v"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(storage.RevisionKey(rev, 0), append([]byte{0}, "k0100"...)); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s.Committed(w)
	before := s.memo.counted.Load()
	countRange(t, s, "k", "l", 0, 1, 101, "k0000")
	if s.memo.counted.Load() != before+1 {
		t.Fatalf("the range was not counted again")
	}
}

// Pebble's iterators skip a key's older versions in one step; a change to the engine's
// iterator type that lost NextPrefix would silently make every count slower.
func TestEngineIteratorsHaveNextPrefix(t *testing.T) {
	_, eng := newStore(t)
	opts := storage.IterOptions{LowerBound: []byte{storage.PrefixKey}, UpperBound: []byte{storage.PrefixKey + 1}}
	snap := eng.NewSnapshot()
	defer snap.Close()
	b := eng.NewBatch()
	defer b.Close()
	for name, r := range map[string]storage.Reader{"engine": eng, "snapshot": snap, "batch": b} {
		it, err := r.NewIter(opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := it.(prefixNexter); !ok {
			t.Errorf("%s iterator %T has no NextPrefix", name, it)
		}
		it.Close()
	}
}

// setMemo turns the count memo on (as configured) or off, for benchmarks.
func setMemo(s *Store, on bool) {
	if on {
		s.memo.minCount = memoMinCount
	} else {
		s.memo.minCount = int(^uint(0) >> 1)
	}
}

// The memo stays within memoEntries and memoPerRange, and drops the ranges used least
// recently.
func TestCountMemoBounded(t *testing.T) {
	m := newCountMemo()
	m.minCount = 0
	gen := m.generation()
	for i := 0; i < 3*memoEntries; i++ {
		m.put(gen, []byte(fmt.Sprintf("k%d", i)), []byte("z"), 10, i)
		m.put(gen, []byte("hot"), []byte("z"), int64(i), i) // used all along
		if _, ok := m.nearest(gen, []byte("hot"), []byte("z"), int64(i), 0, int64(i)); !ok {
			t.Fatalf("step %d: the range in use was dropped", i)
		}
	}
	n := 0
	for k, es := range m.ranges {
		if len(es) > memoPerRange {
			t.Fatalf("range %q has %d entries", k, len(es))
		}
		n += len(es)
	}
	if n != m.n || n > memoEntries {
		t.Fatalf("%d entries (counted %d), bound %d", n, m.n, memoEntries)
	}
	if _, ok := m.nearest(gen, []byte("k0"), []byte("z"), 10, 0, 10); ok {
		t.Fatalf("the range used first and never again was kept")
	}
	if e, ok := m.nearest(gen, []byte(fmt.Sprintf("k%d", 3*memoEntries-1)), []byte("z"), 10, 0, 10); !ok || e.count != 3*memoEntries-1 {
		t.Fatalf("the newest range: %+v %v", e, ok)
	}
	m.reset()
	if _, ok := m.nearest(gen, []byte("hot"), []byte("z"), 1, 0, 1<<40); ok {
		t.Fatalf("an entry of the generation before reset was used")
	}
}
