package raftlog

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storage"
)

// Append persists what one raft.Ready asks to persist: the snapshot (if not empty),
// then the entries (discarding every stored entry at or after the first new index),
// then the hard state, in ONE engine batch. The batch is committed with sync=true
// whenever raft requires durability (new entries, a snapshot, a new term or vote), so
// when Append returns nil the Ready's messages may be sent. A hard state that only
// moves the commit index is written without fsync with the Ready's entries, and not at
// all when there are none (see Open).
//
// A non-empty snap is the metadata of a received snapshot; its Data may carry the path
// of the file holding the state (see SnapshotFile). Applying it drops the whole log.
//
// Append must be called from the single writer goroutine.
func (s *Storage) Append(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot) error {
	b := s.eng.NewBatch()
	defer b.Close()

	dummyIndex, dummyTerm, last := s.dummyIndex, s.dummyTerm, s.last
	newSnap := s.snap
	mustSync := false
	if !raft.IsEmptySnap(snap) {
		md := snap.GetMetadata()
		if md.GetIndex() <= s.snap.GetMetadata().GetIndex() {
			return raft.ErrSnapOutOfDate
		}
		newSnap = proto.Clone(snap).(*raftpb.Snapshot)
		newSnap.Metadata = raftpb.EnsureSnapshotMetadata(newSnap.Metadata)
		if err := setProto(b, storage.RaftSnapshotKey, newSnap); err != nil {
			return err
		}
		bounds := logBounds()
		if err := b.DeleteRange(bounds.LowerBound, bounds.UpperBound); err != nil {
			return err
		}
		dummyIndex, dummyTerm = md.GetIndex(), md.GetTerm()
		last = dummyIndex
		if err := setProto(b, storage.RaftLogKey(dummyIndex), dummyEntry(dummyIndex, dummyTerm)); err != nil {
			return err
		}
		mustSync = true
	}

	if len(ents) > 0 && ents[0].GetIndex() <= dummyIndex {
		// The head of ents is already compacted away.
		skip := dummyIndex + 1 - ents[0].GetIndex()
		if skip >= uint64(len(ents)) {
			ents = nil
		} else {
			ents = ents[skip:]
		}
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if last == 0 && dummyIndex == 0 {
			// The first write of a new log: make the virtual dummy real, so that the
			// first 'L' key is always the dummy.
			if err := setProto(b, storage.RaftLogKey(0), dummyEntry(0, 0)); err != nil {
				return err
			}
		}
		if first > last+1 {
			return fmt.Errorf("%w: append at %d leaves a gap after %d", ErrOutOfRange, first, last)
		}
		if first <= last {
			if err := b.DeleteRange(storage.RaftLogKey(first), storage.RaftLogKey(last+1)); err != nil {
				return err
			}
		}
		for i, e := range ents {
			if e.GetIndex() != first+uint64(i) {
				return fmt.Errorf("%w: entries not contiguous at %d", ErrOutOfRange, e.GetIndex())
			}
			if err := setProto(b, storage.RaftLogKey(e.GetIndex()), e); err != nil {
				return err
			}
		}
		last = ents[len(ents)-1].GetIndex()
		mustSync = true
	}

	newHS := s.hs
	if !raft.IsEmptyHardState(hs) && !hardStateEqual(hs, s.hs) {
		newHS = proto.Clone(hs).(*raftpb.HardState)
		if hs.GetTerm() != s.hs.GetTerm() || hs.GetVote() != s.hs.GetVote() {
			mustSync = true
		}
		// A hard state that only moves the commit index is not written on its own: the
		// commit index needs no durability (Open raises a stale one to the log's
		// start, which is committed, and raft learns the rest again), and skipping it
		// saves an engine write per Ready that commits without appending.
		if b.Count() > 0 || mustSync {
			if err := setProto(b, storage.RaftHardStateKey, newHS); err != nil {
				return err
			}
		}
	}
	if b.Count() == 0 {
		s.mu.Lock()
		s.hs = newHS
		s.mu.Unlock()
		return nil
	}
	if err := b.Commit(mustSync); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if newSnap != s.snap {
		s.cache, s.cacheBytes, s.cacheFirst = nil, 0, dummyIndex+1
	}
	s.hs, s.snap = newHS, newSnap
	s.dummyIndex, s.dummyTerm, s.last = dummyIndex, dummyTerm, last
	if len(ents) > 0 {
		// Invariant: the cache holds [cacheFirst, previous last] and first <= previous last+1.
		first := ents[0].GetIndex()
		if first < s.cacheFirst {
			s.cache, s.cacheBytes, s.cacheFirst = nil, 0, first
		}
		keep := first - s.cacheFirst
		for _, e := range s.cache[keep:] {
			s.cacheBytes -= proto.Size(e)
		}
		// Appending in place is safe: Entries copies what it returns, so nobody else
		// holds this backing array (capping it here copied the whole cache every Ready).
		s.cache = append(s.cache[:keep], ents...)
		for _, e := range ents {
			s.cacheBytes += proto.Size(e)
		}
	}
	s.trimCacheLocked()
	return nil
}

// CreateSnapshot records that the state machine holds the state at index, with
// configuration cs. It writes metadata only: the data is read from the engine when a
// snapshot is sent. The caller guarantees that the state at index is committed to the
// engine. It does not compact the log (see Compact).
func (s *Storage) CreateSnapshot(index uint64, cs *raftpb.ConfState) error {
	if index <= s.snap.GetMetadata().GetIndex() {
		return raft.ErrSnapOutOfDate
	}
	if index > s.last {
		return fmt.Errorf("%w: snapshot at %d beyond last index %d", ErrOutOfRange, index, s.last)
	}
	term, err := s.Term(index)
	if err != nil {
		return err
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index:     new(index),
		Term:      new(term),
		ConfState: proto.Clone(raftpb.EnsureConfState(cs)).(*raftpb.ConfState),
	}}
	b := s.eng.NewBatch()
	defer b.Close()
	if err := setProto(b, storage.RaftSnapshotKey, snap); err != nil {
		return err
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
	return nil
}

// Compact discards the entries at and before index, keeping only index's term. index
// must not pass the snapshot: the entries after it are what a restart replays.
func (s *Storage) Compact(index uint64) error {
	if index <= s.dummyIndex {
		return raft.ErrCompacted
	}
	if index > s.snap.GetMetadata().GetIndex() || index > s.last {
		return fmt.Errorf("%w: compact at %d beyond snapshot %d", ErrOutOfRange, index, s.snap.GetMetadata().GetIndex())
	}
	term, err := s.Term(index)
	if err != nil {
		return err
	}
	// Hide the entries first: once we hold the write lock no reader is inside them.
	s.mu.Lock()
	s.dummyIndex, s.dummyTerm = index, term
	if s.cacheFirst <= index {
		drop := index + 1 - s.cacheFirst
		for _, e := range s.cache[:drop] {
			s.cacheBytes -= proto.Size(e)
		}
		s.cache = s.cache[drop:]
		s.cacheFirst = index + 1
	}
	s.mu.Unlock()

	b := s.eng.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{storage.PrefixRaftLog}, storage.RaftLogKey(index)); err != nil {
		return err
	}
	if err := setProto(b, storage.RaftLogKey(index), dummyEntry(index, term)); err != nil {
		return err
	}
	return b.Commit(false)
}

func (s *Storage) trimCacheLocked() {
	drop := 0
	for len(s.cache)-drop > 1 && (len(s.cache)-drop > s.opts.CacheEntries || s.cacheBytes > s.opts.CacheBytes) {
		s.cacheBytes -= proto.Size(s.cache[drop])
		drop++
	}
	if drop > 0 {
		s.cache = s.cache[drop:]
		s.cacheFirst += uint64(drop)
	}
}

func dummyEntry(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term)}
}

func hardStateEqual(a, b *raftpb.HardState) bool {
	return a.GetTerm() == b.GetTerm() && a.GetVote() == b.GetVote() && a.GetCommit() == b.GetCommit()
}

func setProto(b storage.Batch, key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Set(key, v)
}
