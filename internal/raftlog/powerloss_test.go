package raftlog

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// Power-loss tests: the WAL runs on a crashable in-memory file system, and at a
// random file-system operation the test takes the state a power cut would leave
// (everything synced, and a random share of what was not), reopens the log on it and
// checks that nothing a writer acknowledged is lost and that the log is one raft
// could have produced.

// plModel is what the log must hold: the entries after the dummy, the hard state and
// the snapshot index.
type plModel struct {
	dummyIndex, dummyTerm uint64
	ents                  []*raftpb.Entry // dummyIndex+1, ...
	hs                    *raftpb.HardState
	snapIndex             uint64
}

func (m plModel) last() uint64 { return m.dummyIndex + uint64(len(m.ents)) }

func (m plModel) at(i uint64) *raftpb.Entry {
	if i <= m.dummyIndex || i > m.last() {
		return nil
	}
	return m.ents[i-m.dummyIndex-1]
}

func (m plModel) clone() plModel {
	m.ents = append([]*raftpb.Entry(nil), m.ents...)
	return m
}

// crashPoint is an errorfs injector that, at the n-th mutating operation, takes the
// crash image of mem (before the operation runs) and injects nothing.
type crashPoint struct {
	mem     *vfs.MemFS
	n, seen int
	rng     *rand.Rand
	crashed *vfs.MemFS
}

func (c *crashPoint) String() string { return "crash point" }

func (c *crashPoint) MaybeError(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite || c.crashed != nil {
		return nil
	}
	if c.seen++; c.seen == c.n {
		c.crash()
	}
	return nil
}

func (c *crashPoint) crash() {
	c.crashed = c.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: c.rng.IntN(101), RNG: c.rng})
}

func TestPowerLoss(t *testing.T) {
	eng := openEngine(t, filepath.Join(t.TempDir(), "db"))
	defer eng.Close()
	for seed := uint64(1); seed <= 60; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { powerLossRun(t, eng, seed) })
	}
}

func powerLossRun(t *testing.T, eng storage.Engine, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	mem := vfs.NewCrashableMem()
	cp := &crashPoint{mem: mem, rng: rng, n: 1 + rng.IntN(400)}
	opts := Options{Dir: "/member/wal", SegmentSize: 512, CacheEntries: 4, CacheBytes: 200,
		FS: errorfs.Wrap(mem, cp)}
	s, err := Open(eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	m := plModel{hs: &raftpb.HardState{}}
	var pre, post plModel
	for step := 0; cp.crashed == nil; step++ {
		pre, post = m.clone(), m.clone()
		if step == 300 {
			cp.crash() // between operations: then everything must be there
			break
		}
		term, commit, last := m.hs.GetTerm(), m.hs.GetCommit(), m.last()
		var err error
		switch op := rng.IntN(10); {
		case op < 6: // a Ready: entries (possibly overwriting an uncommitted suffix), hard state
			from := last + 1
			if last > commit && rng.IntN(3) == 0 {
				from = commit + 1 + uint64(rng.IntN(int(last-commit)))
				term++
			}
			if term == 0 {
				term = 1
			}
			es := make([]*raftpb.Entry, rng.IntN(6))
			for i := range es {
				es[i] = ent(from+uint64(i), term, fmt.Sprintf("%d-%d", step, i))
			}
			newLast := last
			if len(es) > 0 {
				newLast = from + uint64(len(es)) - 1
				post.ents = append(post.ents[:from-post.dummyIndex-1], es...)
			}
			newCommit := commit + uint64(rng.IntN(int(newLast-commit+1)))
			post.hs = hs(term, 1, newCommit)
			err = s.Append(post.hs, es, nil)
		case op < 8 && commit > m.snapIndex: // a local snapshot at an applied index
			idx := m.snapIndex + 1 + uint64(rng.IntN(int(commit-m.snapIndex)))
			post.snapIndex = idx
			err = s.CreateSnapshot(idx, &raftpb.ConfState{Voters: []uint64{1}})
		case op < 9 && m.snapIndex > m.dummyIndex: // compaction up to the snapshot
			idx := m.dummyIndex + 1 + uint64(rng.IntN(int(m.snapIndex-m.dummyIndex)))
			post.dummyTerm = m.at(idx).GetTerm()
			post.ents = post.ents[idx-m.dummyIndex:]
			post.dummyIndex = idx
			err = s.Compact(idx)
		case op == 9: // a received snapshot ahead of the log
			term++
			idx := last + 1 + uint64(rng.IntN(5))
			snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(idx), Term: new(term),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}
			post = plModel{dummyIndex: idx, dummyTerm: term, hs: hs(term, 0, idx), snapIndex: idx}
			err = s.Append(post.hs, nil, snap)
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		m = post
	}
	s.Close()

	// Restart on what the power cut left.
	ropts := opts
	ropts.FS = cp.crashed
	r, err := Open(eng, ropts)
	if err != nil {
		t.Fatalf("reopen after the crash at op %d: %v", cp.n, err)
	}
	defer r.Close()
	checkRecovered(t, r, pre, post)

	// The recovered log takes new writes, and they survive a clean restart.
	rl, _ := r.LastIndex()
	rhs := r.HardState()
	e := ent(rl+1, max(rhs.GetTerm(), 1), "after")
	if err := r.Append(hs(max(rhs.GetTerm(), 1), rhs.GetVote(), rhs.GetCommit()), []*raftpb.Entry{e}, nil); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	r.Close()
	r2, err := Open(eng, ropts)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got, err := r2.Entries(rl+1, rl+2, 1<<30)
	if err != nil || len(got) != 1 || !proto.Equal(got[0], e) {
		t.Fatalf("entry written after recovery: %v, %v", got, err)
	}
}

// checkRecovered checks that r is a log the crash could leave while the operation
// taking pre to post was in flight: all of pre that the operation keeps is there,
// every entry is pre's or post's, the log is contiguous, the commit index within it.
func checkRecovered(t *testing.T, r *Storage, pre, post plModel) {
	t.Helper()
	first, _ := r.FirstIndex()
	last, _ := r.LastIndex()
	dummy := first - 1
	if dummy != pre.dummyIndex && dummy != post.dummyIndex {
		t.Fatalf("log starts after %d, want %d (before the crash) or %d (in flight)", dummy, pre.dummyIndex, post.dummyIndex)
	}
	if term, err := r.Term(dummy); err != nil || (term != pre.dummyTerm && term != post.dummyTerm) {
		t.Fatalf("Term(%d) = %d, %v", dummy, term, err)
	}
	snap, _ := r.Snapshot()
	if si := snap.GetMetadata().GetIndex(); si != pre.snapIndex && si != post.snapIndex {
		t.Fatalf("snapshot at %d, want %d or %d", si, pre.snapIndex, post.snapIndex)
	}
	var got []*raftpb.Entry
	if last > dummy {
		var err error
		if got, err = r.Entries(first, last+1, 1<<30); err != nil {
			t.Fatalf("Entries(%d, %d): %v", first, last+1, err)
		}
	}
	if uint64(len(got)) != last-dummy {
		t.Fatalf("log [%d, %d] returned %d entries", first, last, len(got))
	}
	fromPost := false // once an entry is post's and not pre's, the rest must be post's
	for k, e := range got {
		i := first + uint64(k)
		if e.GetIndex() != i {
			t.Fatalf("entry %d has index %d: the log is not contiguous", i, e.GetIndex())
		}
		inPre, inPost := proto.Equal(e, pre.at(i)), proto.Equal(e, post.at(i))
		switch {
		case !inPre && !inPost:
			t.Fatalf("entry %d = %v was never written", i, e)
		case fromPost && !inPost:
			t.Fatalf("entry %d is from before the in-flight write, after one from it", i)
		case !inPre:
			fromPost = true
		}
	}
	// Nothing acknowledged is lost: pre's entries after the start, up to where the
	// in-flight operation changes the log, are all there.
	keep := pre.last()
	for i := max(dummy, pre.dummyIndex) + 1; i <= pre.last(); i++ {
		if !proto.Equal(pre.at(i), post.at(i)) {
			keep = i - 1
			break
		}
	}
	if last < keep {
		t.Fatalf("log ends at %d, but entries up to %d were acknowledged", last, keep)
	}
	h := r.HardState()
	if (h.GetTerm() != pre.hs.GetTerm() || h.GetVote() != pre.hs.GetVote()) &&
		(h.GetTerm() != post.hs.GetTerm() || h.GetVote() != post.hs.GetVote()) {
		t.Fatalf("hard state %v, want term/vote of %v or %v", h, pre.hs, post.hs)
	}
	if h.GetCommit() > last {
		t.Fatalf("commit %d beyond the last index %d", h.GetCommit(), last)
	}
}
