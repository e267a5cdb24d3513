package raftlog

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Append persists what one raft.Ready asks to persist: the snapshot (if not empty),
// then the entries (discarding every stored entry at or after the first new index),
// then the hard state, in ONE write to the WAL followed by one fdatasync, so when
// Append returns nil the Ready's messages may be sent. A hard state that only moves
// the commit index is written with the Ready's other records, and not at all when
// there are none (see Open).
//
// A non-empty snap is the metadata of a received snapshot; its Data may carry the path
// of the file holding the state (see SnapshotFile). Applying it drops the whole log.
//
// Append must be called from the single writer goroutine.
func (s *Storage) Append(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot) error {
	// The buffer is reused from one Append to the next: only the writer goroutine
	// calls Append, and nothing keeps a reference into it once written.
	recs := recordBuf{b: s.buf[:0]}
	defer func() {
		if cap(recs.b) <= maxKeptBuffer {
			s.buf = recs.b[:0]
		}
	}()
	dummyIndex, dummyTerm, last := s.dummyIndex, s.dummyTerm, s.last
	newSnap := s.snap
	install := false
	if !raft.IsEmptySnap(snap) {
		md := snap.GetMetadata()
		if md.GetIndex() <= s.snap.GetMetadata().GetIndex() {
			return raft.ErrSnapOutOfDate
		}
		newSnap = proto.Clone(snap).(*raftpb.Snapshot)
		newSnap.Metadata = raftpb.EnsureSnapshotMetadata(newSnap.Metadata)
		if _, _, err := recs.addProto(recInstall, newSnap); err != nil {
			return err
		}
		dummyIndex, dummyTerm = md.GetIndex(), md.GetTerm()
		last = dummyIndex
		install = true
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
	var added []entryPos // offsets relative to the start of recs until written
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if first > last+1 {
			return fmt.Errorf("%w: append at %d leaves a gap after %d", ErrOutOfRange, first, last)
		}
		added = make([]entryPos, 0, len(ents))
		for i, e := range ents {
			if e.GetIndex() != first+uint64(i) {
				return fmt.Errorf("%w: entries not contiguous at %d", ErrOutOfRange, e.GetIndex())
			}
			off, n, err := recs.addProto(recEntry, e)
			if err != nil {
				return err
			}
			added = append(added, entryPos{off: off, n: n, term: e.GetTerm()})
		}
		last = ents[len(ents)-1].GetIndex()
	}

	newHS := s.hs
	if !raft.IsEmptyHardState(hs) && !hardStateEqual(hs, s.hs) {
		newHS = proto.Clone(hs).(*raftpb.HardState)
		// A hard state that only moves the commit index is not written on its own: the
		// commit index needs no durability (Open raises a stale one to the log's
		// start, which is committed, and raft learns the rest again), and skipping it
		// saves a write and an fdatasync per Ready that commits without appending.
		if !recs.empty() || hs.GetTerm() != s.hs.GetTerm() || hs.GetVote() != s.hs.GetVote() {
			if _, _, err := recs.addProto(recHardState, newHS); err != nil {
				return err
			}
		}
	}
	if recs.empty() {
		s.mu.Lock()
		s.hs = newHS
		s.mu.Unlock()
		return nil
	}
	seg, base, err := s.w.write(&recs, s.header)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		seg.maxIndex = max(seg.maxIndex, last)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if install {
		s.ents = s.ents[:0]
		s.cache, s.cacheBytes, s.cacheFirst = nil, 0, dummyIndex+1
	}
	s.hs, s.snap = newHS, newSnap
	s.dummyIndex, s.dummyTerm, s.last = dummyIndex, dummyTerm, last
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		s.ents = s.ents[:first-dummyIndex-1]
		for _, p := range added {
			p.seg, p.off = seg, base+p.off
			s.ents = append(s.ents, p)
		}
		// Invariant: the cache holds [cacheFirst, previous last] and first <= previous last+1.
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

// maxKeptBuffer bounds the record buffer Append keeps for the next call.
const maxKeptBuffer = 4 << 20

// header encodes the persisted state that opens a new WAL segment.
func (s *Storage) header() *recordBuf {
	var r recordBuf
	// Marshalling these small messages cannot fail.
	_, _, _ = r.addProto(recHardState, s.hs)
	_, _, _ = r.addProto(recSnapshot, s.snap)
	_, _, _ = r.addProto(recStart, dummyEntry(s.dummyIndex, s.dummyTerm))
	return &r
}

// CreateSnapshot records that the state machine holds the state at index, with
// configuration cs. It writes metadata only: the data is read from the engine when a
// snapshot is sent. The caller guarantees that the state at index is committed to the
// engine; CreateSnapshot first syncs the engine, since the state machine is written
// without fsync and a restart must never find a snapshot record ahead of the state it
// describes. It does not compact the log (see Compact).
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
	if err := s.sm.Sync(); err != nil {
		return err
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index:     new(index),
		Term:      new(term),
		ConfState: proto.Clone(raftpb.EnsureConfState(cs)).(*raftpb.ConfState),
	}}
	var recs recordBuf
	if _, _, err := recs.addProto(recSnapshot, snap); err != nil {
		return err
	}
	if _, _, err := s.w.write(&recs, s.header); err != nil {
		return err
	}
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
	return nil
}

// Compact discards the entries at and before index, keeping only index's term. index
// must not pass the snapshot: the entries after it are what a restart replays. The
// engine is durable at the snapshot (CreateSnapshot synced it; an installed snapshot is
// written synced), so no entry dropped here can be needed to rebuild a state a crash
// lost. WAL segments holding only discarded entries are deleted.
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
	var recs recordBuf
	if _, _, err := recs.addProto(recStart, dummyEntry(index, term)); err != nil {
		return err
	}
	if _, _, err := s.w.write(&recs, s.header); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ents = s.ents[index-s.dummyIndex:]
	s.dummyIndex, s.dummyTerm = index, term
	if s.cacheFirst <= index {
		drop := index + 1 - s.cacheFirst
		for _, e := range s.cache[:drop] {
			s.cacheBytes -= proto.Size(e)
		}
		s.cache = s.cache[drop:]
		s.cacheFirst = index + 1
	}
	// Under the write lock: no reader is inside a segment being deleted.
	return s.w.release(index)
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
