// Package enginetest is the conformance suite every storage.Engine must pass. It owns
// only tests of the Engine contract (storage/engine.go); engines run it from their own
// tests with RunEngineTests.
package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// Opener opens an engine on dir. The suite opens each engine on a fresh t.TempDir()
// and reopens the same dir to check persistence.
type Opener func(t *testing.T, dir string) storage.Engine

// RunEngineTests runs the conformance suite against engines made by open.
func RunEngineTests(t *testing.T, open Opener) {
	fresh := func(t *testing.T) storage.Engine {
		e := open(t, t.TempDir())
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, fresh(t)) })
	t.Run("BatchAtomicity", func(t *testing.T) { testBatchAtomicity(t, fresh(t)) })
	t.Run("BatchReadsOwnWrites", func(t *testing.T) { testBatchReadsOwnWrites(t, fresh(t)) })
	t.Run("DeleteRange", func(t *testing.T) { testDeleteRange(t, fresh(t)) })
	t.Run("BatchDeleteRangeAmidWrites", func(t *testing.T) { testBatchDeleteRangeAmidWrites(t, fresh(t)) })
	t.Run("IteratorBoundsSeekPrev", func(t *testing.T) { testIterator(t, fresh(t)) })
	t.Run("SnapshotIsolation", func(t *testing.T) { testSnapshot(t, fresh(t)) })
	t.Run("CompactKeepsData", func(t *testing.T) { testCompact(t, fresh(t)) })
	t.Run("SeekPrefixGE", func(t *testing.T) { testSeekPrefixGE(t, fresh(t)) })
	t.Run("TableReader", func(t *testing.T) { testTableReader(t, fresh(t)) })
	t.Run("ReopenPersists", func(t *testing.T) { testReopen(t, open) })
}

func mustCommit(t *testing.T, e storage.Engine, sync bool, f func(b storage.Batch)) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	f(b)
	if err := b.Commit(sync); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func mustSet(t *testing.T, b storage.Batch, k, v string) {
	t.Helper()
	if err := b.Set([]byte(k), []byte(v)); err != nil {
		t.Fatalf("set %q: %v", k, err)
	}
}

func expectGet(t *testing.T, r storage.Reader, k, want string) {
	t.Helper()
	v, err := r.Get([]byte(k))
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	if string(v) != want {
		t.Fatalf("get %q = %q, want %q", k, v, want)
	}
}

func expectMissing(t *testing.T, r storage.Reader, k string) {
	t.Helper()
	if v, err := r.Get([]byte(k)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get %q = %q, %v; want ErrNotFound", k, v, err)
	}
}

// keys lists the keys of r in [lo, hi), forward.
func keys(t *testing.T, r storage.Reader, lo, hi string) []string {
	t.Helper()
	it, err := r.NewIter(bounds(lo, hi))
	if err != nil {
		t.Fatalf("iter: %v", err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()))
	}
	if err := it.Error(); err != nil {
		t.Fatalf("iter: %v", err)
	}
	return out
}

func bounds(lo, hi string) storage.IterOptions {
	var o storage.IterOptions
	if lo != "" {
		o.LowerBound = []byte(lo)
	}
	if hi != "" {
		o.UpperBound = []byte(hi)
	}
	return o
}

func expectKeys(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
}

func testGetMissing(t *testing.T, e storage.Engine) {
	expectMissing(t, e, "nope")
	mustCommit(t, e, false, func(b storage.Batch) { mustSet(t, b, "a", "") })
	expectGet(t, e, "a", "") // an empty value is not a missing key
}

func testBatchAtomicity(t *testing.T, e storage.Engine) {
	b := e.NewBatch()
	mustSet(t, b, "a", "1")
	mustSet(t, b, "b", "2")
	if b.Count() != 2 {
		t.Fatalf("Count = %d, want 2", b.Count())
	}
	expectMissing(t, e, "a") // nothing visible before commit
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	expectGet(t, e, "a", "1")
	expectGet(t, e, "b", "2")

	// A batch closed without commit leaves no trace.
	b = e.NewBatch()
	mustSet(t, b, "c", "3")
	b.Close()
	expectMissing(t, e, "c")
}

func testBatchReadsOwnWrites(t *testing.T, e storage.Engine) {
	mustCommit(t, e, false, func(b storage.Batch) {
		mustSet(t, b, "a", "old")
		mustSet(t, b, "d", "gone")
	})
	b := e.NewBatch()
	defer b.Close()
	mustSet(t, b, "a", "new")
	mustSet(t, b, "b", "2")
	if err := b.Delete([]byte("d")); err != nil {
		t.Fatal(err)
	}
	expectGet(t, b, "a", "new")
	expectGet(t, b, "b", "2")
	expectMissing(t, b, "d")
	expectKeys(t, keys(t, b, "", ""), "a", "b")
	// The engine still sees the committed state.
	expectGet(t, e, "a", "old")
	expectKeys(t, keys(t, e, "", ""), "a", "d")
	// Writes after an iterator is made are seen by the next one.
	mustSet(t, b, "c", "3")
	expectKeys(t, keys(t, b, "", ""), "a", "b", "c")
}

func testDeleteRange(t *testing.T, e storage.Engine) {
	mustCommit(t, e, false, func(b storage.Batch) {
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			mustSet(t, b, k, k)
		}
	})
	b := e.NewBatch()
	if err := b.DeleteRange([]byte("b"), []byte("d")); err != nil {
		t.Fatal(err)
	}
	expectKeys(t, keys(t, b, "", ""), "a", "d", "e") // visible in the batch
	expectMissing(t, b, "c")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	expectKeys(t, keys(t, e, "", ""), "a", "d", "e")
	// A key written after the range deletion is live again.
	mustCommit(t, e, false, func(b storage.Batch) { mustSet(t, b, "c", "again") })
	expectGet(t, e, "c", "again")
}

// testBatchDeleteRangeAmidWrites puts range deletions between a batch's sets and
// deletes, inside and outside the ranges, overlapping: a range hides the engine's keys
// and the batch's own earlier writes in it, and the batch's later writes win, both in
// reads through the batch (Get, and iteration both ways) and once committed.
func testBatchDeleteRangeAmidWrites(t *testing.T, e storage.Engine) {
	mustCommit(t, e, false, func(b storage.Batch) {
		for _, k := range []string{"a", "b", "ba", "c", "d", "e", "x"} {
			mustSet(t, b, k, "old")
		}
	})
	del := func(b storage.Batch, k string) {
		t.Helper()
		if err := b.Delete([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	delRange := func(b storage.Batch, lo, hi string) {
		t.Helper()
		if err := b.DeleteRange([]byte(lo), []byte(hi)); err != nil {
			t.Fatal(err)
		}
	}
	b := e.NewBatch()
	defer b.Close()
	mustSet(t, b, "bb", "before") // inside the first range: hidden by it
	mustSet(t, b, "e", "new")     // outside every range: kept
	del(b, "a")                   // outside: deleted
	del(b, "c")                   // inside: deleted either way
	delRange(b, "b", "d")         // hides b, ba, bb (own), c
	mustSet(t, b, "c", "again")   // after the range: visible
	mustSet(t, b, "bc", "later")  // after the range: visible
	mustSet(t, b, "bd", "gone")   // after the range, then deleted
	del(b, "bd")
	mustSet(t, b, "y", "new")   // outside, past the engine's keys
	delRange(b, "bc", "c\x00")  // overlaps the first: hides bc and c written since
	mustSet(t, b, "c", "third") // after both ranges: visible
	delRange(b, "w", "x")       // covers nothing
	delRange(b, "d", "d")       // empty: deletes nothing

	want := map[string]string{"c": "third", "d": "old", "e": "new", "x": "old", "y": "new"}
	check := func(name string, r storage.Reader) {
		t.Helper()
		for _, k := range []string{"a", "b", "ba", "bb", "bc", "bd", "c", "d", "e", "w", "x", "y"} {
			if v, ok := want[k]; ok {
				expectGet(t, r, k, v)
			} else {
				expectMissing(t, r, k)
			}
		}
		expectKeys(t, keys(t, r, "", ""), "c", "d", "e", "x", "y")
		expectKeys(t, keys(t, r, "b", "d"), "c")
		it, err := r.NewIter(storage.IterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var back []string
		for ok := it.Last(); ok; ok = it.Prev() {
			back = append(back, string(it.Key()))
		}
		expectKeys(t, back, "y", "x", "e", "d", "c")
		if !it.SeekGE([]byte("a")) || string(it.Key()) != "c" {
			t.Fatalf("%s: SeekGE(a) at %q, want c", name, it.Key())
		}
		if it.SeekLT([]byte("c")) {
			t.Fatalf("%s: SeekLT(c) at %q, want nothing", name, it.Key())
		}
	}
	check("batch", b)
	// Nothing is visible in the engine before the commit.
	expectKeys(t, keys(t, e, "", ""), "a", "b", "ba", "c", "d", "e", "x")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	check("engine", e)
}

func testIterator(t *testing.T, e storage.Engine) {
	mustCommit(t, e, false, func(b storage.Batch) {
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			mustSet(t, b, k, "v"+k)
		}
	})
	expectKeys(t, keys(t, e, "b", "d"), "b", "c")
	expectKeys(t, keys(t, e, "", "c"), "a", "b")
	expectKeys(t, keys(t, e, "c", ""), "c", "d", "e")

	it, err := e.NewIter(bounds("b", "e"))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	check := func(ok bool, want string) {
		t.Helper()
		if want == "" {
			if ok || it.Valid() {
				t.Fatalf("iterator valid at %q, want exhausted", it.Key())
			}
			return
		}
		if !ok || !it.Valid() || string(it.Key()) != want || string(it.Value()) != "v"+want {
			t.Fatalf("iterator at %v %q=%q, want %q", ok, it.Key(), it.Value(), want)
		}
	}
	check(it.SeekGE([]byte("bb")), "c")
	check(it.Prev(), "b")
	check(it.Prev(), "")
	check(it.SeekGE([]byte("a")), "b") // clamped to the lower bound
	check(it.SeekGE([]byte("e")), "")  // at the upper bound
	check(it.SeekLT([]byte("z")), "d") // clamped to the upper bound
	check(it.SeekLT([]byte("c")), "b")
	check(it.Last(), "d")
	check(it.Next(), "")
	check(it.First(), "b")
	check(it.Next(), "c")
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
}

func testSnapshot(t *testing.T, e storage.Engine) {
	mustCommit(t, e, false, func(b storage.Batch) {
		mustSet(t, b, "a", "1")
		mustSet(t, b, "b", "1")
	})
	s := e.NewSnapshot()
	defer s.Close()
	mustCommit(t, e, false, func(b storage.Batch) {
		mustSet(t, b, "a", "2")
		mustSet(t, b, "c", "2")
		if err := b.Delete([]byte("b")); err != nil {
			t.Fatal(err)
		}
	})
	if err := e.Compact(nil, nil); err != nil {
		t.Fatal(err)
	}
	expectGet(t, s, "a", "1")
	expectGet(t, s, "b", "1")
	expectMissing(t, s, "c")
	expectKeys(t, keys(t, s, "", ""), "a", "b")
	expectKeys(t, keys(t, e, "", ""), "a", "c")
}

func testCompact(t *testing.T, e storage.Engine) {
	rng := rand.New(rand.NewSource(1))
	mustCommit(t, e, false, func(b storage.Batch) {
		for i := 0; i < 2000; i++ {
			val := make([]byte, 1000) // incompressible
			rng.Read(val)
			if err := b.Set([]byte(fmt.Sprintf("k%05d", i)), val); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err := e.Compact(nil, nil); err != nil {
		t.Fatal(err)
	}
	full := e.DiskSize()
	if full < 100_000 {
		t.Fatalf("DiskSize = %d after writing 2MB", full)
	}
	mustCommit(t, e, false, func(b storage.Batch) {
		if err := b.DeleteRange([]byte("k00000"), []byte("k01900")); err != nil {
			t.Fatal(err)
		}
	})
	if err := e.Compact([]byte("k"), []byte("l")); err != nil {
		t.Fatal(err)
	}
	expectKeys(t, keys(t, e, "k01898", "k01902"), "k01900", "k01901")
	if live := e.LiveSize(); live >= full/2 {
		t.Fatalf("LiveSize = %d after deleting 95%% of %d bytes and compacting", live, full)
	}
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	e := open(t, dir)
	mustCommit(t, e, true, func(b storage.Batch) { mustSet(t, b, "synced", "1") })
	mustCommit(t, e, false, func(b storage.Batch) { mustSet(t, b, "unsynced", "2") })
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	if e.Name() == "" {
		t.Fatal("engine has no name")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Get([]byte("synced")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	e = open(t, dir)
	defer e.Close()
	expectGet(t, e, "synced", "1")
	expectGet(t, e, "unsynced", "2")
}

// testSeekPrefixGE writes versions of user keys in three layers (compacted tables, the
// memtable, an uncommitted batch) and checks that SeekPrefixGE finds, for every user key
// and revision, the version a full SeekGE finds, and that Next stops at the key's last
// version: prefix filters may skip tables but never a version.
func testSeekPrefixGE(t *testing.T, e storage.Engine) {
	userKeys := [][]byte{[]byte("a"), []byte("a\x00"), []byte("ab"), {0}, []byte("b"), []byte("never")}
	write := func(b storage.Batch, rev int64) {
		for i, k := range userKeys[:len(userKeys)-1] {
			if (int(rev)+i)%3 != 0 {
				if err := b.Set(storage.VersionKey(k, rev, 0), []byte(fmt.Sprint(rev))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for rev := int64(1); rev <= 6; rev++ {
		mustCommit(t, e, false, func(b storage.Batch) { write(b, rev) })
	}
	if err := e.Compact(nil, nil); err != nil {
		t.Fatal(err)
	}
	for rev := int64(7); rev <= 9; rev++ {
		mustCommit(t, e, false, func(b storage.Batch) { write(b, rev) })
	}
	b := e.NewBatch()
	defer b.Close()
	write(b, 10)
	snap := e.NewSnapshot()
	defer snap.Close()

	for name, r := range map[string]storage.Reader{"engine": e, "snapshot": snap, "batch": b} {
		for _, k := range userKeys {
			prefix := storage.KeyPrefix(k)
			for rev := int64(0); rev <= 11; rev++ {
				seek := storage.VersionKey(k, rev, storage.MaxSub)
				var want []string
				it, err := r.NewIter(storage.IterOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for ok := it.SeekGE(seek); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
					want = append(want, string(it.Key()))
				}
				_ = it.Close()

				var got []string
				it, err = r.NewIter(storage.IterOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for ok := it.SeekPrefixGE(seek); ok; ok = it.Next() {
					got = append(got, string(it.Key()))
				}
				if err := it.Error(); err != nil {
					t.Fatal(err)
				}
				_ = it.Close()
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
					t.Fatalf("%s: SeekPrefixGE(%q at %d) visits %q, want %q", name, k, rev, got, want)
				}
			}
		}
	}
}

// testTableReader checks, for engines that implement storage.TableReader, that table
// iterators see exactly what was committed before a finished FlushAsync.
func testTableReader(t *testing.T, e storage.Engine) {
	tr, ok := e.(storage.TableReader)
	if !ok {
		t.Skip("the engine has no memory tables to skip")
	}
	tableKeys := func() []string {
		it, err := tr.NewTableIter(storage.IterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []string
		for ok := it.First(); ok; ok = it.Next() {
			out = append(out, string(it.Key()))
		}
		return out
	}
	flush := func() {
		ch, err := tr.FlushAsync()
		if err != nil {
			t.Fatal(err)
		}
		<-ch
	}
	mustCommit(t, e, false, func(b storage.Batch) { mustSet(t, b, "a", "1") })
	flush()
	mustCommit(t, e, false, func(b storage.Batch) { mustSet(t, b, "b", "1") })
	pending := e.NewBatch() // not committed before the next flush
	defer pending.Close()
	mustSet(t, pending, "c", "1")
	expectKeys(t, tableKeys(), "a")
	flush()
	expectKeys(t, tableKeys(), "a", "b")
	if err := pending.Commit(false); err != nil {
		t.Fatal(err)
	}
	expectKeys(t, tableKeys(), "a", "b")
	expectKeys(t, keys(t, e, "", ""), "a", "b", "c")
}
