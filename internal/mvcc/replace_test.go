package mvcc_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/testengine"
)

// replaceState is one complete state machine: keys "k%04d" all holding tag, written
// over revs revisions, with applied index index.
type replaceState struct {
	tag   string
	keys  int
	rev   int64
	index uint64
	path  string // its snapshot file
}

func openPebble(t *testing.T, dir string) storage.Engine {
	t.Helper()
	return testengine.Open(t, dir, 8<<20)
}

// makeState writes st into a fresh engine through mvcc, one key per revision plus
// extra overwrites, and saves its snapshot stream to a file.
func makeState(t *testing.T, st *replaceState, overwrites int) {
	t.Helper()
	eng := openPebble(t, t.TempDir())
	defer eng.Close()
	s, err := mvcc.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(k, v string) {
		b := eng.NewBatch()
		defer b.Close()
		w := s.Write(b)
		if _, err := w.Put([]byte(k), []byte(v), 0, false); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		s.Committed(w)
	}
	for i := 0; i < overwrites; i++ {
		write(fmt.Sprintf("k%04d", i%st.keys), "old")
	}
	for i := 0; i < st.keys; i++ {
		write(fmt.Sprintf("k%04d", i), st.tag)
	}
	st.rev = s.Rev()
	b := eng.NewBatch()
	if err := b.Set(storage.MetaAppliedIndex, storage.PutUint64(st.index)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	var buf bytes.Buffer
	if _, err := snap.Write(&buf, eng); err != nil {
		t.Fatal(err)
	}
	st.path = filepath.Join(t.TempDir(), st.tag+".snap")
	if err := os.WriteFile(st.path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReplaceIsAtomicForReaders installs two different states over and over while
// readers read the whole key space, and outgoing snapshots are taken: each reader must
// see all of one state (its keys, its tag, its revision, its applied index), never a
// mixture or a state half written.
func TestReplaceIsAtomicForReaders(t *testing.T) {
	a := &replaceState{tag: "A", keys: 300, index: 1000}
	b := &replaceState{tag: "B", keys: 180, index: 2000}
	makeState(t, a, 50)
	makeState(t, b, 400)
	byTag := map[string]*replaceState{a.tag: a, b.tag: b}
	byIndex := map[uint64]*replaceState{a.index: a, b.index: b}

	eng := openPebble(t, t.TempDir())
	defer eng.Close()
	if err := snap.Install(eng, a.path); err != nil {
		t.Fatal(err)
	}
	s, err := mvcc.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const installs = 12
	var done atomic.Bool
	var seen [2]atomic.Int64 // views that saw A, B
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				v := s.Read()
				res, err := v.Range([]byte("k"), []byte("l"), mvcc.RangeOptions{})
				rev := v.Rev()
				v.Close()
				if err != nil {
					report(err)
					return
				}
				if len(res.KVs) == 0 {
					report(fmt.Errorf("a read saw no keys at revision %d", rev))
					return
				}
				st := byTag[string(res.KVs[0].Value)]
				if st == nil {
					report(fmt.Errorf("a read saw value %q", res.KVs[0].Value))
					return
				}
				for _, kv := range res.KVs {
					if string(kv.Value) != st.tag {
						report(fmt.Errorf("a read mixed states: %q holds %q in state %s", kv.Key, kv.Value, st.tag))
						return
					}
				}
				if len(res.KVs) != st.keys || res.Count != st.keys || rev != st.rev {
					report(fmt.Errorf("state %s read half: %d keys (count %d) at revision %d, want %d at %d",
						st.tag, len(res.KVs), res.Count, rev, st.keys, st.rev))
					return
				}
				if st == a {
					seen[0].Add(1)
				} else {
					seen[1].Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the outgoing-snapshot reader
		defer wg.Done()
		src := snap.NewSource(s)
		for !done.Load() {
			out, err := src.Open()
			if err != nil {
				report(fmt.Errorf("open outgoing snapshot: %w", err))
				return
			}
			st := byIndex[out.Metadata().GetIndex()]
			var buf bytes.Buffer
			_, err = out.WriteTo(&buf)
			out.Close()
			if err != nil || st == nil {
				report(fmt.Errorf("outgoing snapshot at index %d: %v", out.Metadata().GetIndex(), err))
				return
			}
			dec, err := snap.NewDecoder(&buf)
			if err != nil {
				report(err)
				return
			}
			// Every state's snapshot has the same number of pairs once written whole.
			for dec.Next() {
			}
			if dec.Err() != nil {
				report(dec.Err())
				return
			}
			if want := pairs(t, st); dec.Count() != want {
				report(fmt.Errorf("outgoing snapshot of state %s has %d pairs, want %d", st.tag, dec.Count(), want))
				return
			}
		}
	}()
	for i := 0; i < installs; i++ {
		next := b
		if i%2 == 1 {
			next = a
		}
		if err := s.Replace(func() error { return snap.Install(eng, next.path) }); err != nil {
			t.Fatal(err)
		}
		if s.Rev() != next.rev {
			t.Fatalf("after installing %s the store is at revision %d, want %d", next.tag, s.Rev(), next.rev)
		}
	}
	done.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("views that saw A: %d, B: %d", seen[0].Load(), seen[1].Load())
}

var pairCounts sync.Map // path → pair count

// pairs is the number of pairs in st's snapshot file.
func pairs(t *testing.T, st *replaceState) uint64 {
	if n, ok := pairCounts.Load(st.path); ok {
		return n.(uint64)
	}
	n, err := snap.Verify(st.path)
	if err != nil {
		t.Error(err)
	}
	pairCounts.Store(st.path, n)
	return n
}
