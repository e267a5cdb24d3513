package mvcc

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/metastore/metastore/internal/storage"
)

// compactBatchSize is how many revision-log entries one compaction batch covers, so
// that a compaction never holds the engine's commit pipeline for long.
const compactBatchSize = 1000

// compactBatchPause is the pause between two compaction batches (etcd's default
// --compaction-sleep-interval).
const compactBatchPause = 10 * time.Millisecond

// compactBatchBudget bounds the time one compaction batch spends reading and deleting:
// a batch ends at compactBatchSize entries, or once it has handled compactBatchMin
// entries and worked this long, so that large values (8 KiB: 1000 entries took ~45 ms)
// do not hold the engine and a processor long enough to show in the writers' tail
// latency (put p99 during a compaction of 500 MB went from 1.9-3.1x to 1.2-1.7x its
// idle p99; BENCHMARKS). The minimum keeps a slow machine (or -race) from crawling
// through a compaction a few entries per pause.
const (
	compactBatchBudget = 2 * time.Millisecond
	compactBatchMin    = 100
)

// ErrClosed is returned by WaitCompacted once the store is closed.
var ErrClosed = errors.New("mvcc: store closed")

var errReloaded = errors.New("mvcc: store reloaded during compaction")

// ScheduleCompaction records, in b, a logical compaction at rev: once b is committed,
// reads below rev fail with ErrCompacted. ErrCompacted if rev <= CompactRev(), ErrFutureRev
// if rev > Rev(). The caller commits b, then calls CompactionScheduled(rev) to publish
// the compaction and wake the background compactor.
func (s *Store) ScheduleCompaction(b storage.Batch, rev int64) error {
	if rev <= s.writeCompact {
		return ErrCompacted
	}
	if rev > s.writeRev {
		return ErrFutureRev
	}
	if err := b.Set(storage.MetaCompactScheduled, int64Value(rev)); err != nil {
		return err
	}
	s.writeCompact = rev
	return nil
}

// CompactionScheduled tells the background compactor that a compaction at rev was
// committed.
func (s *Store) CompactionScheduled(rev int64) {
	if prev := s.compactRev.Load(); rev > prev {
		s.hashes.add(s.eng.NewSnapshot(), prev, rev) // see compactHashes
		s.compactRev.Store(rev)                      // only the writer stores
	}
	s.mu.Lock()
	if rev > s.target {
		s.target = rev
	}
	s.mu.Unlock()
	s.kick()
}

// WaitCompacted returns once every version that compaction at rev may drop has been
// deleted and the engine has reclaimed their space (etcd's physical=true). It fails if
// the compactor failed, the store was closed, or ctx ended.
func (s *Store) WaitCompacted(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		finished, err, closed, ch := s.finished, s.err, s.closed, s.changed
		s.mu.Unlock()
		switch {
		case finished >= rev:
			return nil
		case err != nil:
			return err
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// runCompactor is the background compaction goroutine.
func (s *Store) runCompactor() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		hctx, hcancel := s.stopContext()
		s.hashes.run(hctx)
		hcancel()
		for {
			s.mu.Lock()
			target, finished, gen := s.target, s.finished, s.gen
			s.mu.Unlock()
			if target <= finished {
				break
			}
			err := s.compact(target, gen)
			if errors.Is(err, ErrClosed) {
				return
			}
			if errors.Is(err, errReloaded) {
				continue
			}
			s.mu.Lock()
			if err != nil {
				s.err = err
			} else if s.gen == gen {
				s.finished, s.err = target, nil
			}
			s.broadcastLocked()
			s.mu.Unlock()
			if err != nil {
				break // the next CompactionScheduled or Reload retries
			}
		}
	}
}

// compact physically compacts at target. Every version has a revision-log entry until
// a compaction at or above its revision has handled its key, so the keys that can
// hold versions to drop are exactly those named by log entries at or below target.
// For each such key, in one batch, it deletes every version older than the newest one
// at or below target, and that one too if it is a tombstone; it deletes the log
// entries below target. A key's deletions are atomic, so a concurrent TxnWrite (which
// reads the engine's latest state) never sees an older version resurface.
//
// Every deleted version is at or below target and writers only add versions above
// it, so compaction and writes never touch the same keys.
func (s *Store) compact(target int64, gen uint64) error {
	began := time.Now()
	start := storage.RevisionKey(0, 0)
	end := storage.RevisionKey(target+1, 0)
	var span keySpan // the version keys deleted
	for start != nil {
		select {
		case <-s.stop:
			return ErrClosed
		default:
		}
		s.mu.Lock()
		reloaded := s.gen != gen
		s.mu.Unlock()
		if reloaded {
			return errReloaded
		}
		next, err := s.compactBatch(start, end, target, &span)
		if err != nil {
			return err
		}
		start = next
		if start != nil && compactBatchPause > 0 {
			// etcd's --compaction-sleep-interval: leave the engine and the CPU to the
			// writers between batches.
			select {
			case <-s.stop:
				return ErrClosed
			case <-time.After(compactBatchPause):
			}
		}
	}
	// Reclaim the space of what was deleted: the span of deleted versions (often most
	// of the key space) and the start of the revision log.
	if span.lo != nil {
		if err := s.eng.Compact(span.lo, append(span.hi, 0)); err != nil {
			return err
		}
	}
	if err := s.eng.Compact(storage.RevisionKey(0, 0), storage.RevisionKey(target, 0)); err != nil {
		return err
	}
	b := s.eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.MetaCompactFinished, int64Value(target)); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return err
	}
	if s.opts.OnCompacted != nil {
		s.opts.OnCompacted(time.Since(began))
	}
	return nil
}

// compactBatch handles up to compactBatchSize revision-log entries in [start, end) in
// one engine batch and returns where the next batch starts (nil when done).
func (s *Store) compactBatch(start, end []byte, target int64, span *keySpan) (next []byte, err error) {
	began := time.Now()
	logIt, err := s.eng.NewIter(storage.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return nil, err
	}
	defer logIt.Close()
	keyIt, err := s.eng.NewIter(storage.IterOptions{
		LowerBound: []byte{storage.PrefixKey}, UpperBound: []byte{storage.PrefixKey + 1}})
	if err != nil {
		return nil, err
	}
	defer keyIt.Close()
	b := s.eng.NewBatch()
	defer b.Close()

	done := make(map[string]bool) // keys handled in this batch
	n, versions := 0, 0
	ok := logIt.First()
	for ; ok && n < compactBatchSize && (n < compactBatchMin || time.Since(began) < compactBatchBudget); ok = logIt.Next() {
		n++
		main, _, err := storage.ParseRevisionKey(logIt.Key())
		if err != nil {
			return nil, err
		}
		key, _, err := decodeRevLog(logIt.Value())
		if err != nil {
			return nil, err
		}
		if !done[string(key)] {
			done[string(key)] = true
			d, err := compactKey(keyIt, b, key, target, span)
			if err != nil {
				return nil, err
			}
			versions += d
		}
		if main < target {
			if err := b.Delete(logIt.Key()); err != nil {
				return nil, err
			}
		}
	}
	if ok {
		// The iterator is at the first entry this batch did not handle: the next
		// batch starts there. (It started past it, which left one entry in every
		// compactBatchSize behind until the next compaction.)
		next = bytes.Clone(logIt.Key())
	}
	if err := logIt.Error(); err != nil {
		return nil, err
	}
	if b.Count() > 0 {
		if err := b.Commit(false); err != nil {
			return nil, err
		}
	}
	if s.opts.OnCompactBatch != nil {
		s.opts.OnCompactBatch(time.Since(began), versions)
	}
	return next, nil
}

// compactKey deletes, into b, the versions of key that no read at or above target can
// see: all older than the newest version at or below target, and that one if it is a
// tombstone. It returns how many it deleted.
func compactKey(it storage.Iterator, b storage.Batch, key []byte, target int64, span *keySpan) (deleted int, err error) {
	newest := storage.VersionKey(key, target, storage.MaxSub)
	prefix := newest[:len(newest)-16]
	first := true
	for ok := it.SeekGE(newest); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(newest) || !bytes.HasPrefix(k, prefix) {
			break
		}
		if v := it.Value(); !first || isTombstone(v) {
			var err error
			if sd, ok := b.(storage.SizedDeleter); ok {
				err = sd.DeleteSized(k, uint32(len(v))) // each version key is written once
			} else {
				err = b.Delete(k)
			}
			if err != nil {
				return deleted, err
			}
			span.add(k)
			deleted++
		}
		first = false
	}
	return deleted, it.Error()
}

// keySpan is the smallest span holding every key added to it.
type keySpan struct{ lo, hi []byte }

func (sp *keySpan) add(k []byte) {
	if sp.lo == nil || bytes.Compare(k, sp.lo) < 0 {
		sp.lo = bytes.Clone(k)
	}
	if sp.hi == nil || bytes.Compare(k, sp.hi) > 0 {
		sp.hi = bytes.Clone(k)
	}
}
