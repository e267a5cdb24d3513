package mvcc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/storage"
)

// liveKeys counts the live keys by a range over every key: what Keys must equal.
func liveKeys(t *testing.T, s *Store) int64 {
	t.Helper()
	v := s.Read()
	defer v.Close()
	r, err := v.Range([]byte{0}, []byte{0}, RangeOptions{CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return int64(r.Count)
}

func expectKeys(t *testing.T, s *Store, want int64) {
	t.Helper()
	if got, live := s.Keys(), liveKeys(t, s); got != want || live != want {
		t.Fatalf("Keys() = %d, live keys = %d, want %d", got, live, want)
	}
}

// The key count (etcd_debugging_mvcc_keys_total) follows creates and deletes of live
// keys in every kind of write, is not changed by compaction, and survives a reopen.
func TestKeysCountFollowsWrites(t *testing.T) {
	dir := t.TempDir()
	eng := openEngine(t, dir)
	s, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	expectKeys(t, s, 0)
	put(t, s, "a", "1", 0)
	put(t, s, "b", "1", 0)
	expectKeys(t, s, 2)
	put(t, s, "a", "2", 0) // overwrite
	expectKeys(t, s, 2)
	del(t, s, "a", "")
	expectKeys(t, s, 1)
	del(t, s, "a", "") // already deleted: nothing
	del(t, s, "zz", "")
	expectKeys(t, s, 1)
	put(t, s, "a", "3", 0) // recreated after a delete
	expectKeys(t, s, 2)
	txn(t, s, func(w *TxnWrite) { // one txn: two creates, an overwrite, a put then delete
		mustPut(t, w, "c", "1")
		mustPut(t, w, "d", "1")
		mustPut(t, w, "a", "4")
		mustPut(t, w, "e", "1")
		if _, err := w.DeleteRange([]byte("e"), nil); err != nil {
			t.Fatal(err)
		}
	})
	expectKeys(t, s, 4) // a b c d
	for i := 0; i < 5; i++ {
		put(t, s, fmt.Sprintf("p/%d", i), "v", 7) // keys of a lease
	}
	expectKeys(t, s, 9)
	// A lease revoke deletes its keys with DeleteRange, one key each.
	for i := 0; i < 2; i++ {
		del(t, s, fmt.Sprintf("p/%d", i), "")
	}
	expectKeys(t, s, 7)
	del(t, s, "p/", "p0") // delete range
	expectKeys(t, s, 4)
	compact(t, s, s.Rev())
	expectKeys(t, s, 4)
	s.Close()
	eng.Close()

	eng = openEngine(t, dir)
	defer eng.Close()
	s, err = Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	expectKeys(t, s, 4)
	del(t, s, "\x00", "\x00") // every key
	expectKeys(t, s, 0)
}

// A TxnWrite whose batch is discarded does not count: Reload brings the count back
// to the engine's.
func TestKeysCountOfDiscardedBatch(t *testing.T) {
	s, eng := newStore(t)
	put(t, s, "a", "1", 0)
	b := eng.NewBatch()
	w := s.Write(b)
	mustPut(t, w, "b", "1")
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	b.Close() // discarded
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	expectKeys(t, s, 1)
	put(t, s, "c", "1", 0)
	expectKeys(t, s, 2)
}

// A state without the stored count (an older build's data dir, a restored etcd
// snapshot) is counted once at Open, and a Replace (a Raft snapshot install) takes the
// installed state's count.
func TestKeysCountOfStateWithoutCountAndOfReplace(t *testing.T) {
	s, eng := newStore(t)
	for i := 0; i < 10; i++ {
		put(t, s, fmt.Sprint(i), "v", 0)
	}
	del(t, s, "3", "")
	b := eng.NewBatch()
	if err := b.Delete(storage.MetaKeyCount); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s2, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	expectKeys(t, s2, 9)
	put(t, s2, "x", "v", 0)
	expectKeys(t, s2, 10)

	// Replace the state by one of 3 keys, written by another store.
	other, oeng := newStore(t)
	for _, k := range []string{"a", "b", "c"} {
		put(t, other, k, "v", 0)
	}
	snap := oeng.NewSnapshot()
	defer snap.Close()
	err = s2.Replace(func() error {
		b := eng.NewBatch()
		defer b.Close()
		for _, p := range storage.StateMachinePrefixes {
			if err := b.DeleteRange([]byte{p}, []byte{p + 1}); err != nil {
				return err
			}
			it, err := snap.NewIter(storage.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
			if err != nil {
				return err
			}
			for ok := it.First(); ok; ok = it.Next() {
				if err := b.Set(it.Key(), it.Value()); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return b.Commit(false)
	})
	if err != nil {
		t.Fatal(err)
	}
	expectKeys(t, s2, 3)
}

// The compaction hooks are told each batch and the end of each compaction, with the
// versions deleted.
func TestCompactionHooks(t *testing.T) {
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	var mu sync.Mutex
	var batches, versions, finished int
	s, err := OpenWithOptions(eng, Options{
		OnCompactBatch: func(_ time.Duration, n int) { mu.Lock(); batches++; versions += n; mu.Unlock() },
		OnCompacted:    func(time.Duration) { mu.Lock(); finished++; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 5; i++ {
		put(t, s, "a", fmt.Sprint(i), 0) // 2..6
	}
	put(t, s, "b", "1", 0) // 7
	del(t, s, "b", "")     // 8
	compact(t, s, 8)
	// WaitCompacted returns once finished is published, which follows the hook.
	if err := s.WaitCompacted(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// a: 4 older versions; b: the put and the tombstone.
	if batches < 1 || versions != 6 || finished != 1 {
		t.Fatalf("batches %d, versions %d, finished %d; want >= 1, 6, 1", batches, versions, finished)
	}
	expectKeys(t, s, 1)
}
