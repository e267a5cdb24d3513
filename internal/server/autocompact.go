package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/mvcc"
)

// Auto compaction, as etcd's --auto-compaction-mode/--auto-compaction-retention: only
// the leader proposes compactions; every member applies them through Raft.
//
// periodic: keep the revisions of the last `period`. A revision is sampled every
// min(period, 1h)/10; once `period` has passed, each sample interval compacts to the
// revision sampled `period` ago.
//
// revision: every 5 minutes compact to (current revision - retention).

// revisionCompactInterval is how often revision-mode auto compaction runs (etcd's).
const revisionCompactInterval = 5 * time.Minute

// periodicPlan decides periodic compactions from revision samples; it does no I/O.
type periodicPlan struct {
	compactEvery time.Duration // min(period, 1h); samples are taken every tenth of it
	retentions   int
	revs         []int64
	lastSuccess  time.Time
	lastRev      int64
	base         time.Duration
}

func newPeriodicPlan(period time.Duration, start time.Time) *periodicPlan {
	itv := period
	if itv > time.Hour {
		itv = time.Hour
	}
	return &periodicPlan{
		compactEvery: itv,
		retentions:   int(period/(itv/10)) + 1,
		lastSuccess:  start,
		base:         period,
	}
}

// sampleInterval is how often sample is called.
func (p *periodicPlan) sampleInterval() time.Duration { return p.compactEvery / 10 }

// sample records the current revision and returns the revision to compact to now,
// or 0 when it is not time yet.
func (p *periodicPlan) sample(now time.Time, rev int64) int64 {
	p.revs = append(p.revs, rev)
	if len(p.revs) > p.retentions {
		p.revs = p.revs[1:] // revs[0] is the revision of `period` ago
	}
	target := p.revs[0]
	if now.Sub(p.lastSuccess) < p.base || target == p.lastRev {
		return 0
	}
	p.base = p.compactEvery
	return target
}

// succeeded records a compaction (or one already done by someone else) at rev.
func (p *periodicPlan) succeeded(now time.Time, rev int64) {
	p.lastRev = rev
	p.lastSuccess = now
}

// runAutoCompaction runs until the server stops. mode is "periodic" or "revision";
// a zero period and zero revisions disable it.
func (s *Server) runAutoCompaction(mode string, period time.Duration, revisions int64) {
	defer s.wg.Done()
	compact := func(rev int64) bool {
		ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
		defer cancel()
		start := time.Now()
		_, err := s.Compact(ctx, &pb.CompactionRequest{Revision: rev})
		if err == nil || errors.Is(err, mvcc.ErrCompacted) {
			s.lg.Info("completed auto compaction", zap.String("mode", mode), zap.Int64("revision", rev),
				zap.Duration("took", time.Since(start)))
			return true
		}
		s.lg.Warn("failed auto compaction", zap.String("mode", mode), zap.Int64("revision", rev), zap.Error(err))
		return false
	}
	switch {
	case mode == "revision" && revisions > 0:
		var prev int64
		t := time.NewTicker(revisionCompactInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stopping:
				return
			case <-t.C:
			}
			rev := s.store.Rev() - revisions
			if !s.node.IsLeader() || rev <= 0 || rev == prev {
				continue
			}
			s.lg.Info("starting auto revision compaction", zap.Int64("revision", rev), zap.Int64("revision-compaction-retention", revisions))
			if compact(rev) {
				prev = rev
			}
		}
	case mode == "periodic" && period > 0:
		plan := newPeriodicPlan(period, time.Now())
		t := time.NewTicker(plan.sampleInterval())
		defer t.Stop()
		for {
			select {
			case <-s.stopping:
				return
			case <-t.C:
			}
			rev := plan.sample(time.Now(), s.store.Rev())
			if rev == 0 || !s.node.IsLeader() {
				continue
			}
			s.lg.Info("starting auto periodic compaction", zap.Int64("revision", rev), zap.Duration("compact-period", period))
			if compact(rev) {
				plan.succeeded(time.Now(), rev)
			}
		}
	}
}
