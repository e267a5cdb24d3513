//go:build rocksdb

package engines

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// TestEnginesAgree runs the same random operations (sets, deletes, range deletes in
// batches, some read through the batch before commit, snapshots, flushes and
// compactions) on Pebble and RocksDB and compares every read: Gets and iterator walks
// (First/Last/SeekGE/SeekLT/SeekPrefixGE/Next/Prev/NextPrefix, with random bounds) on the
// engine, a snapshot and an open batch.
func TestEnginesAgree(t *testing.T) {
	dir := t.TempDir()
	var engs [2]storage.Engine
	for i, name := range []string{Pebble, RocksDB} {
		e, err := Open(filepath.Join(dir, name), Options{Engine: name, CacheSize: 1 << 20, MemTableSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		engs[i] = e
	}
	seed := rand.Int63() // logged, to replay a failure
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)

	userKeys := []string{"a", "a\x00", "ab", "b", "ba", "c", "\x00", "zz"}
	key := func() []byte {
		switch rng.Intn(3) {
		case 0: // a version key: the prefixes the filters are built on
			return storage.VersionKey([]byte(userKeys[rng.Intn(len(userKeys))]), int64(rng.Intn(20)), int64(rng.Intn(2)))
		case 1:
			return []byte{storage.PrefixMeta, byte('a' + rng.Intn(6))}
		default:
			return []byte{byte('A' + rng.Intn(30)), byte(rng.Intn(4))}
		}
	}
	bound := func() []byte {
		if rng.Intn(3) == 0 {
			return nil
		}
		return key()
	}
	type reader struct {
		name string
		rs   [2]storage.Reader
	}
	compareReads := func(step int, r reader) {
		for q := 0; q < 20; q++ {
			k := key()
			var got [2]string
			for i := range r.rs {
				v, err := r.rs[i].Get(k)
				switch {
				case errors.Is(err, storage.ErrNotFound):
					got[i] = "<missing>"
				case err != nil:
					t.Fatal(err)
				default:
					got[i] = string(v)
				}
			}
			if got[0] != got[1] {
				t.Fatalf("step %d %s Get(%q): pebble %q, rocksdb %q", step, r.name, k, got[0], got[1])
			}
		}
		lo, hi := bound(), bound()
		if lo != nil && hi != nil && bytes.Compare(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		var its [2]storage.Iterator
		for i := range r.rs {
			it, err := r.rs[i].NewIter(storage.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			its[i] = it
		}
		prefixMode := false
		for op := 0; op < 40; op++ {
			var ok [2]bool
			var desc string
			c := rng.Intn(10)
			if op == 0 {
				c = rng.Intn(5) // position first
			}
			if prefixMode && c == 7 {
				c = 6 // no Prev after SeekPrefixGE
			}
			seek := key()
			if c == 4 && (lo != nil && bytes.Compare(seek, lo) < 0 || hi != nil && bytes.Compare(seek, hi) >= 0) {
				c = 2 // Pebble refuses a prefix seek outside the bounds
			}
			if c == 5 && !prefixMode && hi != nil && storage.Split(hi) != len(hi) {
				c = 6 // NextPrefix needs an upper bound that is a whole prefix
			}
			for i, it := range its {
				switch c {
				case 0:
					desc, ok[i], prefixMode = "First", it.First(), false
				case 1:
					desc, ok[i], prefixMode = "Last", it.Last(), false
				case 2:
					desc, ok[i], prefixMode = fmt.Sprintf("SeekGE(%q)", seek), it.SeekGE(seek), false
				case 3:
					desc, ok[i], prefixMode = fmt.Sprintf("SeekLT(%q)", seek), it.SeekLT(seek), false
				case 4:
					desc, ok[i], prefixMode = fmt.Sprintf("SeekPrefixGE(%q)", seek), it.SeekPrefixGE(seek), true
				case 5:
					if prefixMode {
						desc, ok[i] = "Next", it.Next()
						continue
					}
					desc, ok[i] = "NextPrefix", it.(interface{ NextPrefix() bool }).NextPrefix()
				case 7:
					desc, ok[i] = "Prev", it.Prev()
				default:
					desc, ok[i] = "Next", it.Next()
				}
			}
			var pos [2]string
			for i, it := range its {
				if ok[i] != it.Valid() {
					t.Fatalf("step %d %s: %s returned %v, Valid %v", step, r.name, desc, ok[i], it.Valid())
				}
				if ok[i] {
					pos[i] = fmt.Sprintf("%q=%q", it.Key(), it.Value())
				} else {
					pos[i] = "<end>"
				}
				if err := it.Error(); err != nil {
					t.Fatalf("step %d %s %s: %v", step, r.name, desc, err)
				}
			}
			if pos[0] != pos[1] {
				t.Fatalf("step %d %s [%q, %q) %s: pebble at %s, rocksdb at %s", step, r.name, lo, hi, desc, pos[0], pos[1])
			}
		}
	}

	var snaps [2]storage.Snapshot
	for step := 0; step < 300; step++ {
		var bs [2]storage.Batch
		for i := range engs {
			bs[i] = engs[i].NewBatch()
		}
		for n := rng.Intn(8); n >= 0; n-- {
			k, v := key(), []byte(fmt.Sprint(step, n))
			c := rng.Intn(10)
			var ek []byte
			if c == 9 {
				ek = key()
				if bytes.Compare(k, ek) > 0 {
					k, ek = ek, k
				}
			}
			for i := range bs {
				var err error
				switch {
				case c < 6:
					err = bs[i].Set(k, v)
				case c < 9:
					err = bs[i].Delete(k)
				default:
					err = bs[i].DeleteRange(k, ek)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if rng.Intn(3) == 0 {
			compareReads(step, reader{"batch", [2]storage.Reader{bs[0], bs[1]}})
		}
		for i := range bs {
			if err := bs[i].Commit(rng.Intn(4) == 0); err != nil {
				t.Fatal(err)
			}
			bs[i].Close()
		}
		compareReads(step, reader{"engine", [2]storage.Reader{engs[0], engs[1]}})
		if snaps[0] != nil {
			compareReads(step, reader{"snapshot", [2]storage.Reader{snaps[0], snaps[1]}})
		}
		switch rng.Intn(20) {
		case 0:
			for i := range engs {
				if snaps[i] != nil {
					snaps[i].Close()
				}
				snaps[i] = engs[i].NewSnapshot()
			}
		case 1:
			for i := range engs {
				if err := engs[i].Compact(nil, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i := range snaps {
		if snaps[i] != nil {
			snaps[i].Close()
		}
	}
}
