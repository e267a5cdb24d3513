//go:build !rocksdb

package engines

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A build without the tag refuses a rocksdb data dir, and --storage-engine rocksdb,
// naming the build that opens them; it writes nothing to a new dir.
func TestRocksDBNeedsTheTag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	_, err := Open(dir, Options{Engine: RocksDB})
	if !errors.Is(err, ErrEngineUnavailable) || !strings.Contains(err.Error(), "go build -tags rocksdb") {
		t.Fatalf("--storage-engine rocksdb without the tag: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("refused open left %s behind: %v", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MarkerFile), []byte("rocksdb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", Pebble, RocksDB} {
		_, err := Open(dir, Options{Engine: name})
		if !errors.Is(err, ErrEngineUnavailable) || !strings.Contains(err.Error(), "go build -tags rocksdb") ||
			!strings.Contains(err.Error(), "librocksdb-dev") {
			t.Fatalf("rocksdb dir opened as %q without the tag: %v", name, err)
		}
	}
}
