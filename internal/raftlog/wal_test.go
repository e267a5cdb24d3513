package raftlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/internal/storage"
)

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "wal", "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// validSize is the size of the records in a segment file (the rest is preallocated
// zeros).
func validSize(t *testing.T, name string) int64 {
	t.Helper()
	f, err := vfs.Default.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := scanSegment(f, st.Size(), func(int64, byte, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A crash in the middle of a write leaves a torn record at the end of the newest
// segment: Open cuts it off, and what comes after it is written and read back.
func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{})
	if err := s.Append(hs(1, 1, 0), ents(1, 5, 1), nil); err != nil {
		t.Fatal(err)
	}
	closeLog(s, eng)
	segs := segmentFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	end := validSize(t, segs[0])
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A header announcing 100 bytes with a checksum, and only part of the body.
	if _, err := f.WriteAt([]byte{100, 0, 0, 0, 1, 2, 3, 4, recEntry, 'x', 'y'}, end); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s, eng = openLog(t, dir, Options{})
	checkBounds(t, s, 1, 5)
	if err := s.Append(hs(1, 1, 5), ents(6, 6, 1), nil); err != nil {
		t.Fatal(err)
	}
	closeLog(s, eng)
	s, _ = openLog(t, dir, Options{})
	checkBounds(t, s, 1, 6)
	if got, err := s.Entries(1, 7, 1<<30); err != nil || len(got) != 6 {
		t.Fatalf("entries after the cut: %d, %v", len(got), err)
	}
}

// A segment created just before a crash, whose header never became durable, is
// dropped; the log goes on in the previous one.
func TestSegmentWithTornHeaderIsDropped(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{})
	if err := s.Append(hs(1, 1, 0), ents(1, 5, 1), nil); err != nil {
		t.Fatal(err)
	}
	closeLog(s, eng)
	bad := filepath.Join(dir, "wal", segmentName(2))
	if err := os.WriteFile(bad, []byte{9, 0, 0, 0, 1, 2, 3}, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ = openLog(t, dir, Options{})
	checkBounds(t, s, 1, 5)
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the segment with a torn header is still there: %v", err)
	}
}

// A bad record in a segment that is not the newest is corruption, not a torn write.
func TestCorruptOlderSegment(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{SegmentSize: 300})
	for i := uint64(1); i <= 20; i++ {
		if err := s.Append(hs(1, 1, i-1), ents(i, i, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	closeLog(s, eng)
	segs := segmentFiles(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, validSize(t, segs[0])-1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	eng = openEngine(t, filepath.Join(dir, "db"))
	defer eng.Close()
	if _, err := Open(eng, Options{Dir: filepath.Join(dir, "wal")}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

// Compaction deletes the segments whose entries are all compacted, and the log reopens
// with the rest, although the oldest remaining segment no longer starts right after
// the compacted prefix.
func TestCompactionDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{SegmentSize: 1024})
	for i := uint64(1); i <= 200; i += 5 {
		if err := s.Append(hs(2, 1, i-1), ents(i, i+4, 2), nil); err != nil {
			t.Fatal(err)
		}
	}
	before := len(segmentFiles(t, dir))
	if err := s.CreateSnapshot(180, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(150); err != nil {
		t.Fatal(err)
	}
	after := len(segmentFiles(t, dir))
	if before < 5 || after >= before {
		t.Fatalf("%d segments before the compaction, %d after", before, after)
	}
	for _, seg := range s.w.segs[:len(s.w.segs)-1] {
		if seg.maxIndex <= 150 {
			t.Errorf("segment %d, entries up to %d, survived the compaction to 150", seg.seq, seg.maxIndex)
		}
	}
	closeLog(s, eng)
	s, _ = openLog(t, dir, Options{SegmentSize: 1024})
	checkBounds(t, s, 151, 200)
	if got := mustTerm(t, s, 150); got != 2 {
		t.Fatalf("Term(150) = %d", got)
	}
	if got, err := s.Entries(151, 201, 1<<30); err != nil || len(got) != 50 || got[0].GetIndex() != 151 {
		t.Fatalf("entries after reopen: %d, %v", len(got), err)
	}
}

// A data dir whose raft log an older build kept in the engine is refused, not read as
// an empty log; a WAL dir in use by another Storage is refused.
func TestOldLayoutAndLock(t *testing.T) {
	dir := t.TempDir()
	eng := openEngine(t, filepath.Join(dir, "db"))
	defer eng.Close()
	b := eng.NewBatch()
	b.Set(storage.RaftHardStateKey, []byte{})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := storage.CheckLayout(eng); !errors.Is(err, storage.ErrOldLayout) {
		t.Fatalf("CheckLayout of an old layout = %v", err)
	}

	other := t.TempDir()
	s, _ := openLog(t, other, Options{})
	_ = s
	eng2 := openEngine(t, filepath.Join(t.TempDir(), "db"))
	defer eng2.Close()
	if _, err := Open(eng2, Options{Dir: filepath.Join(other, "wal")}); err == nil {
		t.Fatal("a second Open of a WAL dir in use succeeded")
	}
}

// syncCounter is an engine that counts Sync calls.
type syncCounter struct {
	storage.Engine
	syncs int
}

func (e *syncCounter) Sync() error {
	e.syncs++
	return e.Engine.Sync()
}

// The state machine is written without fsync, so the engine is synced before a
// snapshot record says it holds a state (and so before any compaction, which cannot
// pass the snapshot, drops the entries that could rebuild it).
func TestSnapshotSyncsTheEngine(t *testing.T) {
	dir := t.TempDir()
	eng := &syncCounter{Engine: openEngine(t, filepath.Join(dir, "db"))}
	defer eng.Close()
	s, err := Open(eng, Options{Dir: filepath.Join(dir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(hs(1, 1, 10), ents(1, 10, 1), nil); err != nil {
		t.Fatal(err)
	}
	if eng.syncs != 0 {
		t.Fatalf("Append synced the engine %d times", eng.syncs)
	}
	if err := s.CreateSnapshot(8, nil); err != nil {
		t.Fatal(err)
	}
	if eng.syncs != 1 {
		t.Fatalf("CreateSnapshot synced the engine %d times, want 1", eng.syncs)
	}
	if err := s.Compact(9); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Compact past the snapshot = %v", err)
	}
}

// A cut torn tail leaves nothing behind it: a later write at the cut that happens to
// end where a record of the torn write began must not bring that record back.
func TestCutTailLeavesNothingBehind(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"os", vfs.Default, filepath.Join(t.TempDir(), "wal")}, // truncated
		{"mem", vfs.NewMem(), "/wal"},                          // zeroed
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := openEngine(t, filepath.Join(t.TempDir(), "db"))
			defer eng.Close()
			opts := Options{Dir: tc.dir, FS: tc.fs}
			s, err := Open(eng, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Append(hs(1, 1, 0), ents(1, 3, 1), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(nil, ents(4, 6, 1), nil); err != nil {
				t.Fatal(err)
			}
			pos := s.ents[4-s.dummyIndex-1]
			path, recOff := pos.seg.path, pos.off-recHeaderSize-1
			s.Close()

			// Tear entry 4's record: its CRC no longer matches; 5 and 6 stay valid.
			f, err := tc.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{0xff}, recOff+4); err != nil {
				t.Fatal(err)
			}
			f.Close()

			s, err = Open(eng, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkBounds(t, s, 1, 3)
			// One record (no hard state) of the torn record's size: the next one would
			// start where 5 was.
			if err := s.Append(nil, []*raftpb.Entry{ent(4, 2, "y")}, nil); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s, err = Open(eng, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkBounds(t, s, 1, 4)
			if term := mustTerm(t, s, 4); term != 2 {
				t.Fatalf("entry 4 has term %d, want 2", term)
			}
		})
	}
}
