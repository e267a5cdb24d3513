//go:build rocksdb

package engines

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A dir made by RocksDB reopens as RocksDB and is refused by Pebble, with a message
// naming the flag; its statistics are exported.
func TestRocksDBDirRefusedByPebble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	e, err := Open(dir, Options{Engine: RocksDB, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	put(t, e, "k", "v")
	if e.Name() != RocksDB || Collector(e) == nil {
		t.Fatalf("engine %q, collector %v", e.Name(), Collector(e))
	}
	_ = e.Close()
	if got, _ := Recorded(vfs.Default, dir); got != RocksDB {
		t.Fatalf("recorded %q", got)
	}
	for _, name := range []string{"", Pebble} {
		_, err = Open(dir, Options{Engine: name})
		if !errors.Is(err, ErrEngineMismatch) || !strings.Contains(err.Error(), "--storage-engine rocksdb") {
			t.Fatalf("pebble (%q) on a rocksdb dir: %v", name, err)
		}
	}
	e, err = Open(dir, Options{Engine: RocksDB, CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v, err := e.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}
