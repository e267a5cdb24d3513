package mvcc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// versionsOf lists the revisions of every version of key physically in the engine,
// newest first.
func versionsOf(t *testing.T, eng storage.Engine, key string) []string {
	t.Helper()
	lo := storage.KeyPrefix([]byte(key))
	it, err := eng.NewIter(storage.IterOptions{LowerBound: lo, UpperBound: storage.PrefixEnd(lo)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		_, main, sub, err := storage.ParseVersionKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%d.%d", main, sub)
		if isTombstone(it.Value()) {
			s += "t"
		}
		out = append(out, s)
	}
	return out
}

func rangeAll(t *testing.T, s *Store, rev int64) string {
	t.Helper()
	r := s.Read()
	defer r.Close()
	res, err := r.Range([]byte("\x00"), []byte("\x00"), RangeOptions{Rev: rev})
	return resultString(res, err)
}

func TestCompactionDropsOldVersionsPhysically(t *testing.T) {
	s, eng := newStore(t)
	put(t, s, "a", "1", 0) // 2
	put(t, s, "a", "2", 0) // 3
	put(t, s, "b", "1", 0) // 4
	del(t, s, "b", "")     // 5
	put(t, s, "c", "1", 0) // 6
	del(t, s, "c", "")     // 7
	put(t, s, "c", "2", 0) // 8
	put(t, s, "a", "3", 0) // 9
	put(t, s, "d", "1", 0) // 10
	del(t, s, "d", "")     // 11: a tombstone exactly at the compaction revision

	before := map[int64]string{}
	for rev := int64(8); rev <= s.Rev(); rev++ {
		before[rev] = rangeAll(t, s, rev)
	}
	compact(t, s, 11)
	for rev, want := range before {
		if rev < 11 {
			continue
		}
		if got := rangeAll(t, s, rev); got != want {
			t.Errorf("range at %d after compaction:\n got %s\nwant %s", rev, got, want)
		}
	}
	for key, want := range map[string]string{
		"a": "[9.0]", // the newest version at or below 11 only
		"b": "[]",    // deleted before 11: gone with its tombstone
		"c": "[8.0]",
		"d": "[]", // the tombstone at 11 itself goes too
	} {
		if got := fmt.Sprint(versionsOf(t, eng, key)); got != want {
			t.Errorf("versions of %q after compaction at 11 = %s, want %s", key, got, want)
		}
	}
	// The revision log keeps only entries at or above the compaction revision.
	var revs []string
	if err := s.Changes(11, 0, func(ev *mvccpb.Event) error {
		revs = append(revs, eventString(ev))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := `[DELETE "d= c0 m11 v0 l0"]`; fmt.Sprint(revs) != want {
		t.Errorf("changes from 11 = %v, want %s", revs, want)
	}
	it, _ := eng.NewIter(storage.IterOptions{LowerBound: []byte{storage.PrefixRevision}, UpperBound: storage.RevisionKey(11, 0)})
	if it.First() {
		t.Errorf("revision-log entry %x left below the compaction revision", it.Key())
	}
	it.Close()
	// A later compaction drops what the newer versions supersede.
	put(t, s, "a", "4", 0) // 12
	put(t, s, "x", "1", 0) // 13
	compact(t, s, 13)
	if got := fmt.Sprint(versionsOf(t, eng, "a")); got != "[12.0]" {
		t.Errorf("versions of a after compaction at 13 = %s", got)
	}
}

func TestCompactionInManyBatchesReclaimsSpace(t *testing.T) {
	s, eng := newStore(t)
	val := make([]byte, 500)
	for i := range val {
		val[i] = byte(i*7 + 3)
	}
	for round := 0; round < 6; round++ {
		txn(t, s, func(w *TxnWrite) {
			for k := 0; k < 800; k++ {
				val[0], val[1] = byte(round), byte(k)
				if _, err := w.Put([]byte(fmt.Sprintf("key%04d", k)), val, 0, false); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	rev := s.Rev()
	want := rangeAll(t, s, rev)
	if err := eng.Compact(nil, nil); err != nil {
		t.Fatal(err)
	}
	liveBefore := eng.LiveSize()
	compact(t, s, rev) // 4800 revision-log entries: several batches
	if got := rangeAll(t, s, rev); got != want {
		t.Fatal("range at the compaction revision changed")
	}
	for _, k := range []string{"key0000", "key0799"} {
		if got := versionsOf(t, eng, k); len(got) != 1 || got[0] != fmt.Sprintf("%d.%d", rev, atoi(k[3:])) {
			t.Errorf("versions of %s = %s, want only the last one", k, got)
		}
	}
	if after := eng.LiveSize(); after > liveBefore/3 {
		t.Errorf("LiveSize %d -> %d after dropping 5 of 6 versions", liveBefore, after)
	}
}

func TestOpenResumesUnfinishedCompaction(t *testing.T) {
	dir := t.TempDir()
	eng := openEngine(t, dir)
	s, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		put(t, s, "a", fmt.Sprint(i), 0) // 2..6
	}
	// Schedule and commit, but "crash" before waking the compactor.
	b := eng.NewBatch()
	if err := s.ScheduleCompaction(b, 5); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s.Close()
	if got := len(versionsOf(t, eng, "a")); got != 5 {
		t.Fatalf("%d versions before the compaction ran, want 5", got)
	}
	eng.Close()

	eng = openEngine(t, dir)
	defer eng.Close()
	s, err = Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.CompactRev() != 5 {
		t.Fatalf("reopened CompactRev = %d, want 5", s.CompactRev())
	}
	if err := s.WaitCompacted(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(versionsOf(t, eng, "a")); got != "[6.0 5.0]" {
		t.Fatalf("versions after resumed compaction = %s, want [6.0 5.0]", got)
	}
}

func TestWaitCompactedHonoursContextAndClose(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitCompacted(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitCompacted on a cancelled context: %v", err)
	}
	done := make(chan error)
	go func() { done <- s.WaitCompacted(context.Background(), 10) }()
	s.Close()
	if err := <-done; err == nil {
		t.Fatal("WaitCompacted returned nil after Close without compacting")
	}
}

// TestConcurrentReadersDuringWritesAndCompaction runs readers against a writer that
// keeps compacting. Every write transaction puts "counter" (value = its revision) and
// one of 50 other keys, so a read at revision R must see counter at R.
func TestConcurrentReadersDuringWritesAndCompaction(t *testing.T) {
	s, _ := newStore(t)
	const writes = 600
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := s.Read()
				cur := r.Rev()
				rev := s.CompactRev() + int64(i%7) // at or above the compacted revision...
				if rev > cur || rev <= 0 {
					rev = cur
				}
				res, err := r.Range([]byte("counter"), nil, RangeOptions{Rev: rev})
				if errors.Is(err, ErrCompacted) && rev < s.CompactRev() {
					r.Close() // ...unless a compaction was published in between
					continue
				}
				if err == nil && rev > 1 && (len(res.KVs) != 1 || res.KVs[0].ModRevision != rev ||
					string(res.KVs[0].Value) != fmt.Sprint(rev)) {
					err = fmt.Errorf("counter at %d = %v", rev, res.KVs)
				}
				if err == nil {
					res, err = r.Range([]byte("k"), []byte("l"), RangeOptions{Rev: rev})
					for _, kv := range res.KVs {
						if kv.ModRevision > rev || string(kv.Value) != fmt.Sprint(kv.ModRevision) {
							err = fmt.Errorf("range at %d: %s", rev, kvString(kv))
						}
					}
				}
				r.Close()
				if err != nil {
					errc <- fmt.Errorf("reader %d: %w", g, err)
					return
				}
			}
		}(g)
	}
	for i := 0; i < writes; i++ {
		txn(t, s, func(w *TxnWrite) {
			v := []byte(fmt.Sprint(w.Rev() + 1))
			if _, err := w.Put([]byte("counter"), v, 0, false); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Put([]byte(fmt.Sprintf("k%02d", i%50)), v, 0, false); err != nil {
				t.Fatal(err)
			}
		})
		if i%40 == 39 {
			rev := s.Rev() - 5
			b := s.eng.NewBatch()
			if err := s.ScheduleCompaction(b, rev); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			s.CompactionScheduled(rev) // not waited for: it runs under the readers
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
