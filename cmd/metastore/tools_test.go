package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// The server's command lines never reach the tools; the tools' names do.
func TestRunToolDispatch(t *testing.T) {
	for _, args := range [][]string{nil, {"--name", "snapshot"}, {"--version"}, {"-h"}} {
		if _, ok := runTool(args); ok {
			t.Errorf("%q ran a tool", args)
		}
	}
	if code, ok := runTool([]string{"snapshot", "status"}); !ok || code == 0 {
		t.Errorf("snapshot status without a file: code %d, ok %v", code, ok)
	}
}

// siBytes prints sizes as etcdutl's go-humanize Bytes.
func TestSIBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 9: "9 B", 999: "999 B", 3104: "3.1 kB", 24608: "25 kB", 204932640: "205 MB"} {
		if got := siBytes(n); got != want {
			t.Errorf("siBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// backupFile writes a backup of a small state machine at revision 9.
func backupFile(t *testing.T) string {
	t.Helper()
	eng, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	b := eng.NewBatch()
	for _, kv := range [][2][]byte{
		{storage.MetaAppliedIndex, storage.PutUint64(40)},
		{storage.MetaClusterVersion, []byte("3.7.0")},
		{storage.MetaClusterID, storage.PutUint64(1234)},
		{storage.VersionKey([]byte("a"), 9, 0), []byte("v")},
		{storage.RevisionKey(9, 0), []byte("a")},
	} {
		if err := b.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	es := eng.NewSnapshot()
	defer es.Close()
	if _, err := snap.WriteBackup(f, es); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// status prints etcdutl's three formats; any other is a usage error.
func TestPrintStatus(t *testing.T) {
	info, err := snap.ReadBackup(backupFile(t), snap.BackupOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printStatus(&out, "simple", info); err != nil || !strings.HasSuffix(out.String(), ", 9, 5, 544 B, 3.7.0\n") {
		t.Errorf("simple: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := printStatus(&out, "json", info); err != nil || !strings.Contains(out.String(), `"revision":9,"totalKey":5,"totalSize":544,"version":"3.7.0"}`) {
		t.Errorf("json: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := printStatus(&out, "table", info); err != nil || strings.Count(out.String(), "\n") != 5 || !strings.Contains(out.String(), "| TOTAL KEYS |") {
		t.Errorf("table:\n%s%v", out.String(), err)
	}
	var ue usageError
	if err := printStatus(&out, "yaml", info); !errors.As(err, &ue) {
		t.Errorf("yaml: %v", err)
	}
}

// A restore makes a data dir that `check` accepts, with the new cluster's identity and
// none of the old one's; it refuses a data dir that exists.
func TestRestoreThenCheck(t *testing.T) {
	file := backupFile(t)
	dir := filepath.Join(t.TempDir(), "m1")
	f := restoreFlags{dataDir: dir, name: "m1", initialCluster: "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381",
		token: "tok", urls: "http://127.0.0.1:2380"}
	if err := restoreSnapshot(file, f, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := restoreSnapshot(file, f, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("restore into an existing data dir: %v", err)
	}
	var out bytes.Buffer
	if err := checkDataDir(dir, "", &out); err != nil || !strings.Contains(out.String(), "revision 9, applied index 0") {
		t.Fatalf("check: %v\n%s", err, out.String())
	}

	eng, err := pebble.Open(filepath.Join(dir, "db"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, err := eng.Get(storage.MetaAppliedIndex); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the old applied index survived the restore: %v", err)
	}
	id, err := eng.Get(storage.MetaClusterID)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := storage.Uint64(id); v == 1234 {
		t.Error("the old cluster ID survived the restore")
	}
	if _, err := eng.Get(storage.LocalMemberID); err != nil {
		t.Errorf("no member ID: %v", err)
	}
	if _, err := eng.Get(storage.VersionKey([]byte("a"), 9, 0)); err != nil {
		t.Errorf("the key was not restored: %v", err)
	}
}
