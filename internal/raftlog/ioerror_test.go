package raftlog

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// I/O error tests: one write or sync of the WAL fails (once; the file system works
// again after it). The write that met it must fail, every later one too (the member
// is fail-stop: after a failed fsync nothing may be acknowledged), and a restart
// finds every acknowledged entry and nothing that is not a whole write.
func TestIOErrorIsFailStop(t *testing.T) {
	eng := openEngine(t, filepath.Join(t.TempDir(), "db"))
	defer eng.Close()
	for _, kind := range []errorfs.OpKind{errorfs.OpFileWriteAt, errorfs.OpFileSyncData,
		errorfs.OpFileSync, errorfs.OpCreate, errorfs.OpOpenDir} {
		for _, nth := range []int{1, 2, 5, 13} {
			for _, lose := range []bool{false, true} {
				name := fmt.Sprintf("op%d/%d/lose=%v", kind, nth, lose)
				t.Run(name, func(t *testing.T) { ioErrorRun(t, eng, kind, nth, lose) })
			}
		}
	}
}

// ioErrorRun fails the nth operation of kind, then restarts the log on the file
// system as it is (lose: as a power cut would leave it, with only synced data).
func ioErrorRun(t *testing.T, eng storage.Engine, kind errorfs.OpKind, nth int, lose bool) {
	mem := vfs.NewCrashableMem()
	seen, injected := 0, false
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind != kind || injected {
			return nil
		}
		if seen++; seen == nth {
			injected = true
			return errorfs.ErrInjected
		}
		return nil
	})
	opts := Options{Dir: "/wal", SegmentSize: 400, FS: errorfs.Wrap(mem, inj)}
	s, err := Open(eng, opts)
	if err != nil {
		if injected {
			return // Open itself failed on the error: nothing was acknowledged
		}
		t.Fatal(err)
	}
	defer s.Close()
	var acked []*raftpb.Entry
	var failedBatch []*raftpb.Entry
	for i := uint64(1); i <= 200 && !injected; i += 3 {
		es := []*raftpb.Entry{ent(i, 1, "a"), ent(i+1, 1, "b"), ent(i+2, 1, "c")}
		err := s.Append(hs(1, 1, i-1), es, nil)
		if injected {
			if err == nil {
				t.Fatalf("append of %d-%d returned success although the WAL failed", i, i+2)
			}
			failedBatch = es
			break
		}
		if err != nil {
			t.Fatalf("append of %d-%d: %v", i, i+2, err)
		}
		acked = append(acked, es...)
	}
	if !injected {
		t.Skip("the run never performed the operation")
	}
	// Sticky: the file system works again, the WAL does not.
	next := uint64(len(acked)) + 1
	for k := 0; k < 3; k++ {
		if err := s.Append(hs(1, 1, 0), []*raftpb.Entry{ent(next, 1, "z")}, nil); !errors.Is(err, ErrWALFailed) {
			t.Fatalf("append after a failed write: %v, want ErrWALFailed", err)
		}
	}
	if err := s.CreateSnapshot(1, &raftpb.ConfState{Voters: []uint64{1}}); len(acked) > 0 && !errors.Is(err, ErrWALFailed) {
		t.Fatalf("snapshot after a failed write: %v, want ErrWALFailed", err)
	}
	if l, _ := s.LastIndex(); l != uint64(len(acked)) {
		t.Fatalf("LastIndex %d after a failed write, want %d (the acknowledged log)", l, len(acked))
	}
	s.Close()

	fs := vfs.FS(mem)
	if lose {
		fs = mem.CrashClone(vfs.CrashCloneCfg{})
	}
	ropts := opts
	ropts.FS = fs
	r, err := Open(eng, ropts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close()
	last, _ := r.LastIndex()
	if last != uint64(len(acked)) && last != uint64(len(acked)+len(failedBatch)) {
		t.Fatalf("recovered log ends at %d, want %d (acknowledged) or %d (with the failed write)",
			last, len(acked), len(acked)+len(failedBatch))
	}
	if lose && last != uint64(len(acked)) {
		t.Fatalf("recovered log ends at %d after a power cut, but only %d were synced", last, len(acked))
	}
	if last == 0 {
		return
	}
	got, err := r.Entries(1, last+1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]*raftpb.Entry(nil), acked...), failedBatch...)[:last]
	for k := range got {
		if !proto.Equal(got[k], want[k]) {
			t.Fatalf("recovered entry %d = %v, want %v", k+1, got[k], want[k])
		}
	}
}
