//go:build rocksdb

package rocksdb

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/enginetest"
)

func open(t *testing.T, dir string, o Options) *Engine {
	t.Helper()
	if o.CacheSize == 0 {
		o.CacheSize = 1 << 20
	}
	e, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEngineConformance(t *testing.T) {
	enginetest.RunEngineTests(t, func(t *testing.T, dir string) storage.Engine { return open(t, dir, Options{}) })
}

func TestSeparateWALDir(t *testing.T) {
	enginetest.RunEngineTests(t, func(t *testing.T, dir string) storage.Engine {
		return open(t, dir, Options{WALDir: filepath.Join(dir, "..", filepath.Base(dir)+"-wal")})
	})
}

func TestRefusesOtherFS(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{FS: vfs.NewMem()}); !errors.Is(err, ErrUnsupportedFS) {
		t.Fatalf("Open on a MemFS: %v, want ErrUnsupportedFS", err)
	}
	e := open(t, t.TempDir(), Options{FS: vfs.Default})
	_ = e.Close()
}

// TestSplitMatchesStorage checks the C prefix extractor against storage.Split, on the
// keys MetaStore writes and on random bytes rich in the bytes Split looks at.
func TestSplitMatchesStorage(t *testing.T) {
	keys := [][]byte{nil, {}, {'K'}, {'K', 0}, {'K', 0, 1}, {'K', 0, 0xff, 0, 1, 9}, []byte("Mapplied"),
		storage.VersionKey([]byte("a\x00b"), 5, 1), storage.KeyPrefix(nil), storage.RevisionKey(3, 0)}
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte{'K', 0, 1, 0xff, 'a'}
	for i := 0; i < 20000; i++ {
		k := make([]byte, rng.Intn(12))
		for j := range k {
			k[j] = alphabet[rng.Intn(len(alphabet))]
		}
		keys = append(keys, k)
	}
	for _, k := range keys {
		if got, want := cSplit(k), storage.Split(k); got != want {
			t.Fatalf("C split of %q = %d, storage.Split = %d", k, got, want)
		}
	}
}

func keysOf(t *testing.T, r storage.Reader) []string {
	t.Helper()
	it, err := r.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key())+"="+string(it.Value()))
	}
	var back []string
	for ok := it.Last(); ok; ok = it.Prev() {
		back = append([]string{string(it.Key()) + "=" + string(it.Value())}, back...)
	}
	if fmt.Sprint(out) != fmt.Sprint(back) {
		t.Fatalf("forward %q, backward %q", out, back)
	}
	return out
}

// TestBatchDeleteRange covers what RocksDB's indexed batch does not do by itself: a
// range deletion hides the engine's keys and the batch's earlier writes, later writes
// in the range win, in the batch's reads and once committed.
func TestBatchDeleteRange(t *testing.T) {
	e := open(t, t.TempDir(), Options{})
	defer e.Close()
	b := e.NewBatch()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		_ = b.Set([]byte(k), []byte("old"))
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = e.NewBatch()
	defer b.Close()
	_ = b.Set([]byte("bb"), []byte("mine")) // written, then deleted by the range
	_ = b.Set([]byte("e"), []byte("new"))   // outside the range: kept
	_ = b.DeleteRange([]byte("b"), []byte("d"))
	_ = b.Set([]byte("c"), []byte("again"))  // after the range: visible
	_ = b.Set([]byte("bc"), []byte("later")) // after the range: visible
	want := "[a=old bc=later c=again d=old e=new]"
	if got := fmt.Sprint(keysOf(t, b)); got != want {
		t.Fatalf("batch reads %s, want %s", got, want)
	}
	for k, v := range map[string]string{"a": "old", "b": "", "bb": "", "bc": "later", "c": "again"} {
		got, err := b.Get([]byte(k))
		if v == "" {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("batch Get(%q) = %q, %v; want not found", k, got, err)
			}
		} else if string(got) != v {
			t.Fatalf("batch Get(%q) = %q, %v; want %q", k, got, err, v)
		}
	}
	if got := fmt.Sprint(keysOf(t, e)); got != "[a=old b=old c=old d=old e=old]" {
		t.Fatalf("engine before commit reads %s", got)
	}
	if b.Count() != 5 {
		t.Fatalf("Count = %d, want 5", b.Count())
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(keysOf(t, e)); got != want {
		t.Fatalf("engine after commit reads %s, want %s", got, want)
	}
}

// TestPrefixSeekUsesFilters checks that point seeks of absent keys in flushed tables are
// answered by the prefix bloom filters.
func TestPrefixSeekUsesFilters(t *testing.T) {
	e := open(t, t.TempDir(), Options{})
	defer e.Close()
	b := e.NewBatch()
	for i := 0; i < 1000; i++ {
		_ = b.Set(storage.VersionKey([]byte(fmt.Sprintf("key%04d", i)), int64(i+1), 0), []byte("v"))
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := e.Compact(nil, nil); err != nil {
		t.Fatal(err)
	}
	before := e.Stats().BloomPrefixUseful
	for i := 0; i < 100; i++ {
		it, _ := e.NewIter(storage.IterOptions{})
		if it.SeekPrefixGE(storage.VersionKey([]byte(fmt.Sprintf("absent%04d", i)), 1000, storage.MaxSub)) {
			t.Fatalf("found %q", it.Key())
		}
		it.Close()
	}
	if got := e.Stats().BloomPrefixUseful - before; got < 90 {
		t.Fatalf("prefix filters ruled out %d of 100 seeks of absent keys", got)
	}
	it, _ := e.NewIter(storage.IterOptions{})
	defer it.Close()
	k := storage.VersionKey([]byte("key0500"), 1000, storage.MaxSub)
	if !it.SeekPrefixGE(k) || !bytes.HasPrefix(it.Key(), storage.KeyPrefix([]byte("key0500"))) || it.Next() {
		t.Fatalf("SeekPrefixGE of a present key: valid=%v key=%q", it.Valid(), it.Key())
	}
}

func TestStatsCollector(t *testing.T) {
	e := open(t, t.TempDir(), Options{})
	defer e.Close()
	for round := 0; round < 3; round++ {
		b := e.NewBatch()
		for i := 0; i < 500; i++ {
			_ = b.Set([]byte(fmt.Sprintf("k%d-%d", round, i)), bytes.Repeat([]byte("x"), 100))
		}
		_ = b.Commit(false)
		b.Close()
		if err := e.Compact(nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Get([]byte("k1-1")); err != nil {
		t.Fatal(err)
	}
	s := e.Stats()
	if s.Compactions == 0 || s.Flushes < 3 || s.BlockCacheCapacity != 1<<20 || s.TableBytes == 0 || len(s.FilesPerLevel) != numLevels {
		t.Fatalf("stats after three flushes and compactions: %+v", s)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(e))
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(collectorMetrics)-1+numLevels {
		t.Fatalf("%d metrics gathered", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP metastore_engine_block_cache_capacity_bytes Capacity of the block cache.
# TYPE metastore_engine_block_cache_capacity_bytes gauge
metastore_engine_block_cache_capacity_bytes 1.048576e+06
`), "metastore_engine_block_cache_capacity_bytes"); err != nil {
		t.Fatal(err)
	}
}
