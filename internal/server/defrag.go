package server

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// Defragment is etcd's defrag for an LSM: a compaction of the engine's whole key space
// (Pebble rewrites every table, dropping what deletes, overwrites and mvcc compaction
// left behind), so that the space of deleted and compacted data is given back now. It
// answers when the compaction is done; dbSize (Status) is then smaller.
//
// It never blocks reads or writes: the engine compacts beside its writers (its
// snapshots and batches go on), apply takes no lock this holds, and the only lock held
// here is the one that makes concurrent Defragment calls take turns. A client that
// goes away leaves the compaction running to its end (as etcd's defrag does).
func (s *Server) Defragment(ctx context.Context) (err error) {
	defer translate(&err)
	select { // one at a time, as etcd's defrag holds its backend
	case s.defragSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return ErrStopped
	}
	defer func() { <-s.defragSem }()
	start := time.Now()
	before := s.cfg.Engine.DiskSize()
	s.lg.Info("defragmenting", zap.Uint64("current-db-size-bytes", before))
	if err := s.cfg.Engine.Compact(nil, nil); err != nil {
		s.lg.Warn("failed to defragment", zap.Error(err))
		return err
	}
	s.waitFilesDeleted(ctx)
	s.sizeAt.Store(0) // the quota check must see the new size
	s.lg.Info("finished defragmenting", zap.Duration("took", time.Since(start)),
		zap.Uint64("current-db-size-bytes", s.cfg.Engine.DiskSize()),
		zap.Int64("current-db-size-in-use-bytes", int64(storage.StateMachineSize(s.cfg.Engine))))
	return nil
}

// Bounds of waitFilesDeleted.
const (
	defragSettlePoll = 50 * time.Millisecond
	defragSettleMax  = 10 * time.Second
)

// waitFilesDeleted waits, after the compaction, until the engine has deleted the
// files it replaced (it does so in the background, once no reader holds them): until
// its disk size stays the same over three polls, at most defragSettleMax or ctx. So
// the dbSize a Status reads right after the Defragment answer is the smaller one.
func (s *Server) waitFilesDeleted(ctx context.Context) {
	deadline := time.Now().Add(defragSettleMax)
	last, same := s.cfg.Engine.DiskSize(), 0
	for same < 3 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		case <-time.After(defragSettlePoll):
		}
		if n := s.cfg.Engine.DiskSize(); n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
}
