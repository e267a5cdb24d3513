package pebble

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
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

// TestWriteStallsCounted: a write stall Pebble induces (here: level 0 over its stop
// threshold, automatic compactions off) is counted from the moment it begins, its time
// grows while it lasts, and a compaction that drains level 0 ends it.
func TestWriteStallsCounted(t *testing.T) {
	e, err := open("db", Options{FS: vfs.NewMem()}, func(o *pebble.Options) {
		o.L0CompactionThreshold, o.L0StopWritesThreshold = 1, 1
		o.DisableAutomaticCompactions = true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n, total := e.WriteStalls(); n != 0 || total != 0 {
		t.Fatalf("stalls of a fresh engine: %d, %v", n, total)
	}
	b := e.NewBatch()
	if err := b.Set([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := e.db.Flush(); err != nil { // level 0 now holds one table: at the threshold
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- e.db.Flush() }() // rotating the memtable must wait
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, _ := e.WriteStalls(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write stall began")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-flushed:
		t.Fatalf("the flush returned during the stall: %v", err)
	default:
	}
	_, during := e.WriteStalls()
	time.Sleep(10 * time.Millisecond)
	if _, later := e.WriteStalls(); later <= during {
		t.Errorf("the stall under way counted %v, then %v: want it growing", during, later)
	}
	if err := e.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stall did not end after level 0 was compacted")
	}
	n, total := e.WriteStalls()
	if n != 1 || total < 10*time.Millisecond {
		t.Errorf("after the stall: %d stalls, %v; want 1 and at least 10ms", n, total)
	}
	if _, again := e.WriteStalls(); again != total {
		t.Errorf("the stall's time still grows after it ended: %v, then %v", total, again)
	}
}
