// Package raftlog owns the durable Raft state of one member: the hard state, the
// snapshot metadata and the log entries, in a write-ahead log of its own (wal.go; the
// directory is etcd's --wal-dir, by default inside the data dir), on a Pebble vfs.FS
// (Options.FS; the OS unless a test gives a crashable or error-injecting one). A failed
// WAL write or sync is sticky (ErrWALFailed): the member must stop. It implements
// raft.Storage for go.etcd.io/raft/v3 and the writes the Ready loop must make. It
// never writes the state machine's engine; it only syncs it before recording a
// snapshot of it (see CreateSnapshot), which no compaction can pass.
//
// Layout. The log is the run of entries [FirstIndex, LastIndex]. The entry before the
// first, the "dummy", is kept by index and term only, so that Term(FirstIndex()-1)
// keeps answering: it is the last compacted (or snapshotted) entry. In memory the
// Storage keeps, for every entry of the log, its term and its place in the WAL, and a
// copy of the newest entries (the cache); older entries are read from the WAL.
//
// Concurrency. Readers (the raft.Storage methods) may run concurrently with writers.
// Writers (Append, CreateSnapshot, Compact, Close) must be called from ONE goroutine,
// the Ready loop. A writer makes its record durable and THEN publishes the new
// in-memory state, so a reader never observes a half-written log.
package raftlog

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt is returned when the stored log is not what this package writes.
var ErrCorrupt = errors.New("raftlog: corrupt raft state")

// ErrOutOfRange is returned by writers asked to act on indexes the log does not hold.
var ErrOutOfRange = errors.New("raftlog: index out of range")

// StateMachine is what the Raft log needs of the state machine it serves: to make
// every write committed to it durable (CreateSnapshot syncs it before recording a log
// snapshot, which no log cut may pass). A storage engine is one.
type StateMachine interface {
	Sync() error
}

// Default limits of the in-memory tail cache.
const (
	DefaultCacheEntries = 8192
	DefaultCacheBytes   = 32 << 20
)

// Options tune a Storage. Zero values take the defaults, except Dir.
type Options struct {
	// Dir is the WAL directory (required).
	Dir string
	// SegmentSize is the preallocated size of a WAL segment; default
	// DefaultSegmentSize.
	SegmentSize int64
	// CacheEntries and CacheBytes bound the in-memory copy of the log tail.
	CacheEntries int
	CacheBytes   int
	// Logger is for the rare events worth a line; nil: none.
	Logger *zap.Logger
	// SnapDir is the member's snap dir, recorded for raftnode (Storage.SnapDir).
	SnapDir string
	// FS is the file system the WAL lives on; nil: vfs.Default (the OS). Tests put
	// it on a crashable MemFS or an errorfs to simulate power loss and I/O errors.
	FS vfs.FS
	// OnSync, if set, is called after every WAL write with its fdatasync's duration
	// and the bytes written (etcd's etcd_disk_wal_fsync_duration_seconds and
	// etcd_disk_wal_write_bytes_total). It runs on the Ready loop: it must be cheap.
	OnSync func(took time.Duration, bytes int)
}

// entryPos is where an entry of the log is in the WAL, and its term.
type entryPos struct {
	seg  *segment
	off  int64
	n    int
	term uint64
}

// Storage is the Raft log of one member.
type Storage struct {
	sm   StateMachine
	opts Options
	w    *wal
	buf  []byte // Append's record buffer, reused (writer only)

	mu sync.RWMutex
	// hs is the last persisted hard state (never nil).
	hs *raftpb.HardState
	// snap is the last persisted snapshot metadata (never nil). Its Data holds the
	// path of a received snapshot file, or nothing for a local snapshot.
	snap *raftpb.Snapshot
	// dummyIndex/dummyTerm identify the entry before the first available one.
	dummyIndex, dummyTerm uint64
	// last is the index of the last entry (dummyIndex when the log is empty).
	last uint64
	// ents locates entries [dummyIndex+1, last].
	ents []entryPos
	// cache holds entries [cacheFirst, last]; cacheBytes is their encoded size.
	cache      []*raftpb.Entry
	cacheFirst uint64
	cacheBytes int

	// gapAt, during Open only: the replay met entries whose predecessors were in
	// deleted segments; a later log start at or after it must cover them.
	gapAt uint64
}

var _ raft.Storage = (*Storage)(nil)

// Open loads the raft state from the WAL in opts.Dir (creating an empty one if there
// is none). sm is the state machine, synced by CreateSnapshot.
func Open(sm StateMachine, opts Options) (*Storage, error) {
	if opts.Dir == "" {
		return nil, errors.New("raftlog: Options.Dir is required")
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Storage{sm: sm, opts: opts, hs: &raftpb.HardState{}, snap: raftpb.EnsureSnapshot(nil)}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	w, err := openWAL(opts.FS, opts.Dir, opts.SegmentSize, s.replay)
	if err != nil {
		return nil, err
	}
	w.onSync = opts.OnSync
	s.w = w
	if w.cut >= 0 {
		opts.Logger.Warn("cut a torn record off the end of the WAL (a write interrupted by a crash, never acknowledged)",
			zap.String("segment", segmentName(w.current().seq)), zap.Int64("offset", w.cut))
	}
	if s.gapAt != 0 {
		w.close()
		return nil, fmt.Errorf("%w: the WAL lacks the entries before %d", ErrCorrupt, s.gapAt+1)
	}
	if s.last < s.snap.GetMetadata().GetIndex() {
		w.close()
		return nil, fmt.Errorf("%w: log [%d, %d] ends before snapshot %d",
			ErrCorrupt, s.dummyIndex, s.last, s.snap.GetMetadata().GetIndex())
	}
	// The stored commit index may lag (Append does not write a change of it alone), but
	// raft needs it at least at the log's start: everything up to the snapshot and the
	// compacted prefix was applied, so committed.
	if c := max(s.dummyIndex, s.snap.GetMetadata().GetIndex()); s.hs.GetCommit() < c && !raft.IsEmptyHardState(s.hs) {
		s.hs.Commit = proto.Uint64(c)
	}
	s.cacheFirst = s.last + 1
	opts.Logger.Info("opened raft log", zap.String("wal-dir", opts.Dir), zap.Int("segments", len(w.segs)),
		zap.Uint64("first-index", s.dummyIndex+1), zap.Uint64("last-index", s.last),
		zap.Uint64("snapshot-index", s.snap.GetMetadata().GetIndex()), zap.Uint64("term", s.hs.GetTerm()),
		zap.Uint64("commit", s.hs.GetCommit()))
	return s, nil
}

// replay applies one WAL record, in write order, to the state being opened.
func (s *Storage) replay(seg *segment, off int64, typ byte, payload []byte) error {
	switch typ {
	case recEntry:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(payload, e); err != nil {
			return fmt.Errorf("entry: %v", err)
		}
		i := e.GetIndex()
		seg.maxIndex = max(seg.maxIndex, i)
		pos := entryPos{seg: seg, off: off, n: len(payload), term: e.GetTerm()}
		switch {
		case i <= s.dummyIndex:
			// Compacted, or before an installed snapshot.
			return nil
		case i > s.last+1:
			// Its predecessors were in segments deleted after a compaction, which a
			// later log start record covers (checked at the end).
			s.ents = s.ents[:0]
			s.dummyIndex, s.dummyTerm = i-1, 0
			s.gapAt = max(s.gapAt, i-1)
		default:
			s.ents = s.ents[:i-s.dummyIndex-1]
		}
		s.ents = append(s.ents, pos)
		s.last = i
	case recHardState:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(payload, hs); err != nil {
			return fmt.Errorf("hard state: %v", err)
		}
		s.hs = hs
	case recSnapshot, recInstall:
		snap := &raftpb.Snapshot{}
		if err := proto.Unmarshal(payload, snap); err != nil {
			return fmt.Errorf("snapshot: %v", err)
		}
		s.snap = raftpb.EnsureSnapshot(snap)
		if typ == recInstall {
			md := s.snap.GetMetadata()
			s.ents = s.ents[:0]
			s.dummyIndex, s.dummyTerm, s.last = md.GetIndex(), md.GetTerm(), md.GetIndex()
			if s.dummyIndex >= s.gapAt {
				s.gapAt = 0
			}
		}
	case recStart:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(payload, e); err != nil {
			return fmt.Errorf("log start: %v", err)
		}
		i := e.GetIndex()
		switch {
		case i > s.last:
			s.ents = s.ents[:0]
			s.dummyIndex, s.dummyTerm, s.last = i, e.GetTerm(), i
		case i >= s.dummyIndex:
			s.ents = s.ents[i-s.dummyIndex:]
			s.dummyIndex, s.dummyTerm = i, e.GetTerm()
		}
		if i >= s.gapAt {
			s.gapAt = 0
		}
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

// Close closes the WAL. The Storage must not be used afterwards.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.close()
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	hs := proto.Clone(s.hs).(*raftpb.HardState)
	cs := proto.Clone(raftpb.EnsureConfState(s.snap.GetMetadata().GetConfState())).(*raftpb.ConfState)
	return hs, cs, nil
}

// HardState returns the last persisted hard state.
func (s *Storage) HardState() *raftpb.HardState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.hs).(*raftpb.HardState)
}

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.dummyIndex + 1, nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// Snapshot implements raft.Storage. It returns metadata only: the data of a snapshot
// is streamed from the state machine by the transport, never carried by raft.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &raftpb.Snapshot{Metadata: proto.Clone(s.snap.GetMetadata()).(*raftpb.SnapshotMetadata)}, nil
}

// SnapshotFile returns the snapshot metadata together with the path of the file it
// was received in ("" for a snapshot this member took itself).
func (s *Storage) SnapshotFile() (*raftpb.SnapshotMetadata, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.snap.GetMetadata()).(*raftpb.SnapshotMetadata), string(s.snap.GetData())
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case i < s.dummyIndex:
		return 0, raft.ErrCompacted
	case i == s.dummyIndex:
		return s.dummyTerm, nil
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	return s.ents[i-s.dummyIndex-1].term, nil
}

// Entries implements raft.Storage: entries [lo, hi), at least one if any, at most
// maxSize encoded bytes otherwise.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if lo <= s.dummyIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 || lo >= hi {
		return nil, raft.ErrUnavailable
	}
	var out []*raftpb.Entry
	var size uint64
	full := func(e *raftpb.Entry) bool {
		size += uint64(proto.Size(e))
		return len(out) > 0 && size > maxSize
	}
	if lo < s.cacheFirst {
		end := min(hi, s.cacheFirst)
		for i := lo; i < end; i++ {
			p := s.ents[i-s.dummyIndex-1]
			b, err := readAt(p.seg, p.off, p.n)
			if err != nil {
				return nil, err
			}
			e := &raftpb.Entry{}
			if err := proto.Unmarshal(b, e); err != nil || e.GetIndex() != i {
				return nil, fmt.Errorf("%w: WAL entry %d unreadable (%v)", ErrCorrupt, i, err)
			}
			if full(e) {
				return out, nil
			}
			out = append(out, e)
		}
		lo = end
	}
	for i := lo; i < hi; i++ {
		e := s.cache[i-s.cacheFirst]
		if full(e) {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// SnapDir is Options.SnapDir.
func (s *Storage) SnapDir() string { return s.opts.SnapDir }
