// Package raftlog owns the durable Raft state of one member inside the shared
// storage.Engine: the hard state ('H'), the snapshot metadata ('S') and the log
// entries ('L' index). It implements raft.Storage for go.etcd.io/raft/v3 and the
// writes the Ready loop must make. It must not touch any other key prefix: the state
// machine's keys belong to apply/mvcc, and installing snapshot data belongs to snap.
//
// Layout. The log is the contiguous run of 'L' keys. Its first key is a "dummy": an
// entry whose index and term are those of the last compacted (or snapshotted) entry,
// kept so that Term(FirstIndex()-1) keeps answering; its payload is dropped. A brand-new
// log has a virtual dummy at index 0, term 0, made real by its first append.
//
// Concurrency. Readers (the raft.Storage methods, called by raft's goroutine) may run
// concurrently with writers. Writers (Append, CreateSnapshot, Compact) must be called
// from ONE goroutine, the Ready loop. A writer commits to the engine and THEN
// publishes the new in-memory state, except Compact, which hides the entries first and
// deletes them after: raft never reads an index it has handed out as unstable, so a
// reader never observes a half-written log.
package raftlog

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storage"
)

// ErrCorrupt is returned when the stored log is not what this package writes.
var ErrCorrupt = errors.New("raftlog: corrupt raft state")

// ErrOutOfRange is returned by writers asked to act on indexes the log does not hold.
var ErrOutOfRange = errors.New("raftlog: index out of range")

// Default limits of the in-memory tail cache.
const (
	DefaultCacheEntries = 8192
	DefaultCacheBytes   = 32 << 20
)

// Options tune a Storage. Zero values take the defaults.
type Options struct {
	// CacheEntries and CacheBytes bound the in-memory copy of the log tail.
	CacheEntries int
	CacheBytes   int
	// Logger is for the rare events worth a line; nil: none.
	Logger *zap.Logger
	// SnapDir is the member's snap dir, recorded for raftnode (Storage.SnapDir).
	SnapDir string
}

// Storage is the Raft log of one member kept in a storage.Engine.
type Storage struct {
	eng  storage.Engine
	opts Options

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
	// cache holds entries [cacheFirst, last]; cacheBytes is their encoded size.
	cache      []*raftpb.Entry
	cacheFirst uint64
	cacheBytes int
}

var _ raft.Storage = (*Storage)(nil)

// Open loads the raft state kept in eng.
func Open(eng storage.Engine, opts Options) (*Storage, error) {
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Storage{eng: eng, opts: opts, hs: &raftpb.HardState{}, snap: raftpb.EnsureSnapshot(nil)}
	if v, err := eng.Get(storage.RaftHardStateKey); err == nil {
		if err := proto.Unmarshal(v, s.hs); err != nil {
			return nil, fmt.Errorf("%w: hard state: %v", ErrCorrupt, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if v, err := eng.Get(storage.RaftSnapshotKey); err == nil {
		if err := proto.Unmarshal(v, s.snap); err != nil {
			return nil, fmt.Errorf("%w: snapshot metadata: %v", ErrCorrupt, err)
		}
		s.snap = raftpb.EnsureSnapshot(s.snap)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	s.dummyIndex = s.snap.GetMetadata().GetIndex()
	s.dummyTerm = s.snap.GetMetadata().GetTerm()
	s.last = s.dummyIndex

	it, err := eng.NewIter(logBounds())
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if it.First() {
		first, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		if !it.Last() {
			return nil, fmt.Errorf("%w: log vanished while opening", ErrCorrupt)
		}
		last, err := decodeEntry(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		s.dummyIndex, s.dummyTerm = first.GetIndex(), first.GetTerm()
		s.last = last.GetIndex()
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if s.dummyIndex < s.snap.GetMetadata().GetIndex() && s.last < s.snap.GetMetadata().GetIndex() {
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
	opts.Logger.Info("opened raft log", zap.Uint64("first-index", s.dummyIndex+1), zap.Uint64("last-index", s.last),
		zap.Uint64("snapshot-index", s.snap.GetMetadata().GetIndex()), zap.Uint64("term", s.hs.GetTerm()),
		zap.Uint64("commit", s.hs.GetCommit()))
	return s, nil
}

func logBounds() storage.IterOptions {
	return storage.IterOptions{LowerBound: []byte{storage.PrefixRaftLog}, UpperBound: []byte{storage.PrefixRaftLog + 1}}
}

func decodeEntry(k, v []byte) (*raftpb.Entry, error) {
	idx, err := storage.ParseRaftLogKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, idx, err)
	}
	if e.GetIndex() != idx {
		return nil, fmt.Errorf("%w: key index %d holds entry %d", ErrCorrupt, idx, e.GetIndex())
	}
	return e, nil
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
	case i >= s.cacheFirst:
		return s.cache[i-s.cacheFirst].GetTerm(), nil
	}
	v, err := s.eng.Get(storage.RaftLogKey(i))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("%w: entry %d missing", ErrCorrupt, i)
	} else if err != nil {
		return 0, err
	}
	e, err := decodeEntry(storage.RaftLogKey(i), v)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
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
		it, err := s.eng.NewIter(storage.IterOptions{LowerBound: storage.RaftLogKey(lo), UpperBound: storage.RaftLogKey(end)})
		if err != nil {
			return nil, err
		}
		next := lo
		for ok := it.First(); ok; ok = it.Next() {
			e, err := decodeEntry(it.Key(), it.Value())
			if err != nil {
				it.Close()
				return nil, err
			}
			if e.GetIndex() != next {
				it.Close()
				return nil, fmt.Errorf("%w: entry %d missing", ErrCorrupt, next)
			}
			if full(e) {
				it.Close()
				return out, nil
			}
			out = append(out, e)
			next++
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if next != end {
			return nil, fmt.Errorf("%w: entry %d missing", ErrCorrupt, next)
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

// Engine is the engine the log lives in (shared with the state machine).
func (s *Storage) Engine() storage.Engine { return s.eng }

// SnapDir is Options.SnapDir.
func (s *Storage) SnapDir() string { return s.opts.SnapDir }
