package pebble

import (
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/enginetest"
)

func TestEngineConformance(t *testing.T) {
	enginetest.RunEngineTests(t, func(t *testing.T, dir string) storage.Engine {
		e, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}

func TestSeparateWALDir(t *testing.T) {
	enginetest.RunEngineTests(t, func(t *testing.T, dir string) storage.Engine {
		e, err := Open(dir, Options{WALDir: filepath.Join(dir, "..", filepath.Base(dir)+"-wal"), CacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}

func TestInMemoryFS(t *testing.T) {
	fs := vfs.NewMem() // shared by every open, so reopening finds the data
	enginetest.RunEngineTests(t, func(t *testing.T, dir string) storage.Engine {
		e, err := Open(dir, Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}
