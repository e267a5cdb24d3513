package raftlog

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

func openEngine(t *testing.T, dir string) storage.Engine {
	t.Helper()
	eng, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// openLog opens the log of the member in dir (engine in dir/db, WAL in dir/wal) and
// closes it at the end of the test unless the test closed it.
func openLog(t *testing.T, dir string, opts Options) (*Storage, storage.Engine) {
	t.Helper()
	eng := openEngine(t, filepath.Join(dir, "db"))
	opts.Dir = filepath.Join(dir, "wal")
	s, err := Open(eng, opts)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { closeLog(s, eng) })
	return s, eng
}

// closeLog closes s and eng (a process stop); closing twice is harmless.
func closeLog(s *Storage, eng storage.Engine) {
	s.Close()
	eng.Close()
}

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term), Type: raftpb.EntryNormal.Enum(), Data: []byte(data)}
}

func ents(first, last, term uint64) []*raftpb.Entry {
	var out []*raftpb.Entry
	for i := first; i <= last; i++ {
		out = append(out, ent(i, term, "x"))
	}
	return out
}

func hs(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

func mustTerm(t *testing.T, s *Storage, i uint64) uint64 {
	t.Helper()
	term, err := s.Term(i)
	if err != nil {
		t.Fatalf("Term(%d): %v", i, err)
	}
	return term
}

func checkBounds(t *testing.T, s *Storage, first, last uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("log bounds [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

// A fresh log answers like raft's MemoryStorage: first index 1, last index 0, term(0)=0.
func TestEmptyLog(t *testing.T) {
	s, _ := openLog(t, t.TempDir(), Options{})
	checkBounds(t, s, 1, 0)
	if got := mustTerm(t, s, 0); got != 0 {
		t.Fatalf("Term(0) = %d", got)
	}
	hs, cs, err := s.InitialState()
	if err != nil || !raft.IsEmptyHardState(hs) || len(cs.GetVoters()) != 0 {
		t.Fatalf("InitialState = %v %v %v", hs, cs, err)
	}
	if _, err := s.Term(1); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(1) error = %v, want ErrUnavailable", err)
	}
}

// Everything Append wrote is there after the engine is closed and reopened, and a
// conflicting append replaces the old suffix.
func TestAppendOverwriteAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{})
	if err := s.Append(hs(1, 1, 0), ents(1, 10, 1), nil); err != nil {
		t.Fatal(err)
	}
	// A new leader at term 2 overwrites 6..10 with 6..7.
	if err := s.Append(hs(2, 2, 5), ents(6, 7, 2), nil); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, 7)
	if got := mustTerm(t, s, 7); got != 2 {
		t.Fatalf("Term(7) = %d, want 2", got)
	}
	closeLog(s, eng)

	s, _ = openLog(t, dir, Options{})
	checkBounds(t, s, 1, 7)
	h, _, _ := s.InitialState()
	if h.GetTerm() != 2 || h.GetVote() != 2 || h.GetCommit() != 5 {
		t.Fatalf("hard state after reopen = %v", h)
	}
	got, err := s.Entries(1, 8, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 || got[4].GetTerm() != 1 || got[5].GetTerm() != 2 || got[6].GetIndex() != 7 {
		t.Fatalf("entries after reopen = %v", got)
	}
}

// A received snapshot replaces the whole log; Compact keeps the term of its index.
func TestSnapshotAndCompact(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{})
	if err := s.Append(hs(3, 1, 20), ents(1, 20, 3), nil); err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	if err := s.CreateSnapshot(15, cs); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSnapshot(15, cs); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("second CreateSnapshot(15) = %v", err)
	}
	if err := s.Compact(16); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Compact past the snapshot = %v", err)
	}
	if err := s.Compact(10); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 11, 20)
	if got := mustTerm(t, s, 10); got != 3 {
		t.Fatalf("Term(10) after compaction = %d", got)
	}
	if _, err := s.Entries(10, 12, 1<<30); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries(10,..) = %v", err)
	}
	if err := s.Compact(10); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Compact(10) again = %v", err)
	}

	// A leader's snapshot at 30 (term 4), received into a file.
	snap := &raftpb.Snapshot{Data: []byte("/snap/30.snap"), Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(30)), Term: new(uint64(4)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}
	if err := s.Append(hs(4, 0, 30), nil, snap); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 31, 30)
	if err := s.Append(nil, ents(31, 32, 4), nil); err != nil {
		t.Fatal(err)
	}
	closeLog(s, eng)

	s, _ = openLog(t, dir, Options{})
	checkBounds(t, s, 31, 32)
	if got := mustTerm(t, s, 30); got != 4 {
		t.Fatalf("Term(30) = %d", got)
	}
	md, path := s.SnapshotFile()
	if md.GetIndex() != 30 || path != "/snap/30.snap" {
		t.Fatalf("SnapshotFile = %v %q", md, path)
	}
	rs, _ := s.Snapshot()
	if len(rs.GetData()) != 0 || rs.GetMetadata().GetIndex() != 30 {
		t.Fatalf("Snapshot() = %v, want metadata only", rs)
	}
	_, gotCS, _ := s.InitialState()
	if len(gotCS.GetVoters()) != 2 || gotCS.GetVoters()[1] != 2 {
		t.Fatalf("conf state = %v", gotCS)
	}
}

// A hard state that only moves the commit index is not written alone; after a reopen
// the stored commit is never below the log's start (raft panics on that), and a commit
// written along with entries survives.
func TestCommitOnlyHardStateIsNotWritten(t *testing.T) {
	dir := t.TempDir()
	s, eng := openLog(t, dir, Options{})
	if err := s.Append(hs(2, 1, 3), ents(1, 10, 2), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(hs(2, 1, 10), nil, nil); err != nil {
		t.Fatal(err)
	}
	if h := s.HardState(); h.GetCommit() != 10 {
		t.Fatalf("in-memory commit = %d, want 10", h.GetCommit())
	}
	closeLog(s, eng)
	s, eng = openLog(t, dir, Options{})
	if h := s.HardState(); h.GetCommit() != 3 || h.GetTerm() != 2 || h.GetVote() != 1 {
		t.Fatalf("hard state after reopen = %v, want the last one written with entries (commit 3)", h)
	}

	// The state machine applied up to 8; the log is cut there.
	if err := s.Append(hs(2, 1, 9), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSnapshot(8, &raftpb.ConfState{Voters: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(7); err != nil {
		t.Fatal(err)
	}
	closeLog(s, eng)
	s, _ = openLog(t, dir, Options{})
	if h := s.HardState(); h.GetCommit() != 8 {
		t.Fatalf("commit after reopen = %d, want it raised to the snapshot index 8", h.GetCommit())
	}
	// raft accepts that state.
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: s, Applied: 8,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16})
	if err != nil {
		t.Fatal(err)
	}
	if st := rn.Status(); st.GetCommit() != 8 || st.Applied != 8 {
		t.Fatalf("raft restarted at commit %d applied %d", st.GetCommit(), st.Applied)
	}
}

// Entries honours maxSize but always returns at least one entry.
func TestEntriesMaxSize(t *testing.T) {
	s, _ := openLog(t, t.TempDir(), Options{CacheEntries: 3})
	if err := s.Append(hs(1, 1, 0), ents(1, 10, 1), nil); err != nil {
		t.Fatal(err)
	}
	one := uint64(proto.Size(ent(1, 1, "x")))
	for _, tc := range []struct {
		lo, hi, max uint64
		want        int
	}{
		{1, 11, 0, 1}, {1, 11, one, 1}, {1, 11, 3 * one, 3}, {1, 11, 1 << 30, 10},
		{6, 11, 2 * one, 2}, {8, 11, 2 * one, 2}, {9, 10, 0, 1},
	} {
		got, err := s.Entries(tc.lo, tc.hi, tc.max)
		if err != nil || len(got) != tc.want || got[0].GetIndex() != tc.lo {
			t.Errorf("Entries(%d, %d, %d) = %d entries, %v; want %d", tc.lo, tc.hi, tc.max, len(got), err, tc.want)
		}
	}
}

// Differential test: random appends, overwrites, snapshots, compactions and reopens
// against raft's own MemoryStorage, with a tiny cache so reads hit the WAL and tiny
// segments so that the WAL rolls and deletes segments all the time.
func TestRandomAgainstMemoryStorage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	opts := Options{CacheEntries: 4, CacheBytes: 200, SegmentSize: 512}
	s, eng := openLog(t, dir, opts)
	ms := raft.NewMemoryStorage()
	term := uint64(1)
	for step := 0; step < 400; step++ {
		first, _ := ms.FirstIndex()
		last, _ := ms.LastIndex()
		snapMeta, _ := ms.Snapshot()
		snapIndex := snapMeta.GetMetadata().GetIndex()
		switch op := rng.IntN(10); {
		case op < 5: // append, possibly overwriting a suffix
			from := last + 1
			if last >= first && rng.IntN(3) == 0 {
				from = first + uint64(rng.IntN(int(last-first+1)))
				if from <= snapIndex {
					from = snapIndex + 1
				}
				term++
			}
			es := make([]*raftpb.Entry, 1+rng.IntN(5))
			for i := range es {
				es[i] = ent(from+uint64(i), term, string(rune('a'+rng.IntN(26))))
			}
			if err := s.Append(hs(term, 1, 0), es, nil); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if err := ms.Append(es); err != nil {
				t.Fatal(err)
			}
		case op == 5 && last > snapIndex: // local snapshot
			idx := snapIndex + 1 + uint64(rng.IntN(int(last-snapIndex)))
			if err := s.CreateSnapshot(idx, &raftpb.ConfState{Voters: []uint64{1}}); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if _, err := ms.CreateSnapshot(idx, &raftpb.ConfState{Voters: []uint64{1}}, nil); err != nil {
				t.Fatal(err)
			}
		case op == 6 && snapIndex >= first: // compaction up to the snapshot
			idx := first + uint64(rng.IntN(int(snapIndex-first+1)))
			if err := s.Compact(idx); err != nil {
				t.Fatalf("step %d: compact %d: %v", step, idx, err)
			}
			if err := ms.Compact(idx); err != nil {
				t.Fatal(err)
			}
		case op == 7: // received snapshot ahead of the log
			term++
			snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(last + uint64(rng.IntN(5)) + 1), Term: new(term),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}
			if err := s.Append(hs(term, 0, snap.GetMetadata().GetIndex()), nil, snap); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if err := ms.ApplySnapshot(snap); err != nil {
				t.Fatal(err)
			}
		case op == 8: // restart
			closeLog(s, eng)
			s, eng = openLog(t, dir, opts)
		}
		compareStorages(t, step, s, ms)
	}
}

func compareStorages(t *testing.T, step int, s *Storage, ms *raft.MemoryStorage) {
	t.Helper()
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	checkBounds(t, s, first, last)
	for i := first - 1; i <= last; i++ {
		want, _ := ms.Term(i)
		if got := mustTerm(t, s, i); got != want {
			t.Fatalf("step %d: Term(%d) = %d, want %d", step, i, got, want)
		}
	}
	if last < first {
		return
	}
	got, err := s.Entries(first, last+1, 1<<30)
	if err != nil {
		t.Fatalf("step %d: Entries: %v", step, err)
	}
	want, _ := ms.Entries(first, last+1, 1<<30)
	if len(got) != len(want) {
		t.Fatalf("step %d: %d entries, want %d", step, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("step %d: entry %v, want %v", step, got[i], want[i])
		}
	}
	sm, _ := s.Snapshot()
	mm, _ := ms.Snapshot()
	if sm.GetMetadata().GetIndex() != mm.GetMetadata().GetIndex() || sm.GetMetadata().GetTerm() != mm.GetMetadata().GetTerm() {
		t.Fatalf("step %d: snapshot %v, want %v", step, sm.GetMetadata(), mm.GetMetadata())
	}
}
