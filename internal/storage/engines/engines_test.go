package engines

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/internal/storage"
)

func put(t *testing.T, e storage.Engine, k, v string) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	if err := b.Set([]byte(k), []byte(v)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

func TestRecordsAndReopensPebble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	put(t, e, "k", "v")
	if e.Name() != Pebble {
		t.Fatalf("default engine %q", e.Name())
	}
	_ = e.Close()
	if b, err := os.ReadFile(filepath.Join(dir, MarkerFile)); err != nil || string(b) != "pebble\n" {
		t.Fatalf("marker %q, %v", b, err)
	}
	e, err = Open(dir, Options{Engine: Pebble, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v, err := e.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}

// A Pebble dir of a build before the marker opens as Pebble and gets its marker.
func TestUnmarkedDirIsPebble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	e, err := Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	if err := os.Remove(filepath.Join(dir, MarkerFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Engine: RocksDB}); !errors.Is(err, ErrEngineMismatch) {
		t.Fatalf("rocksdb on an unmarked pebble dir: %v, want ErrEngineMismatch", err)
	}
	e, err = Open(dir, Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	if got, _ := Recorded(vfs.Default, dir); got != Pebble {
		t.Fatalf("recorded %q", got)
	}
}

// A dir made by Pebble is refused by RocksDB, with a message naming the flag.
func TestPebbleDirRefusedByRocksDB(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	e, err := Open(dir, Options{Engine: Pebble, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	_, err = Open(dir, Options{Engine: RocksDB})
	if !errors.Is(err, ErrEngineMismatch) || !strings.Contains(err.Error(), "--storage-engine pebble") {
		t.Fatalf("rocksdb on a pebble dir: %v", err)
	}
}

func TestUnknownEngine(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{Engine: "bbolt"}); !errors.Is(err, ErrUnknownEngine) {
		t.Fatalf("Open(bbolt): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, MarkerFile), []byte("leveldb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrUnknownEngine) {
		t.Fatalf("Open on a leveldb marker: %v", err)
	}
}

// The marker goes through the vfs given: Pebble on a MemFS leaves the disk alone.
func TestMarkerThroughVFS(t *testing.T) {
	fs := vfs.NewMem()
	e, err := Open("/db", Options{FS: fs, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	if got, err := Recorded(fs, "/db"); err != nil || got != Pebble {
		t.Fatalf("recorded on the MemFS: %q, %v", got, err)
	}
}
