package server

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// notifier is shared by every linearizable read that waits for the same ReadIndex round.
type notifier struct {
	c   chan struct{}
	err error
}

func newNotifier() *notifier { return &notifier{c: make(chan struct{})} }

func (n *notifier) notify(err error) {
	n.err = err
	close(n.c)
}

// linearizableReadNotify returns once this member has applied everything that was
// committed when the call was made, as confirmed by the leader through ReadIndex.
// Concurrent callers share one ReadIndex round (batching).
func (s *Server) linearizableReadNotify(ctx context.Context) error {
	s.readMu.RLock()
	nc := s.readNotifier
	s.readMu.RUnlock()
	select {
	case s.readWaitc <- struct{}{}:
	default:
	}
	select {
	case <-nc.c:
		return nc.err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return ErrStopped
	}
}

// linearizableReadLoop runs one ReadIndex round at a time for all waiting readers.
func (s *Server) linearizableReadLoop() {
	defer s.wg.Done()
	var seq uint64
	for {
		select {
		case <-s.readWaitc:
		case <-s.stopping:
			return
		}
		s.readMu.Lock()
		nr := s.readNotifier
		s.readNotifier = newNotifier()
		s.readMu.Unlock()

		seq++
		index, err := s.requestReadIndex(seq)
		if err != nil {
			nr.notify(err)
			continue
		}
		select {
		case <-s.applied.wait(index):
			nr.notify(nil)
		case <-s.stopping:
			nr.notify(ErrStopped)
			return
		}
	}
}

// requestReadIndex asks raft for the current commit index, confirmed by a quorum, and
// retries while the request is lost (for example across a leader change): every half
// election timeout, and at once when a leader is elected (raft holds a new leader's
// answer until it has committed an entry of its term).
func (s *Server) requestReadIndex(seq uint64) (uint64, error) {
	rctx := binary.BigEndian.AppendUint64(nil, seq)
	timeout := time.NewTimer(s.reqTimeout())
	defer timeout.Stop()
	retry := time.NewTicker(s.cfg.ElectionTimeout / 2)
	defer retry.Stop()
	leaderChanged := s.node.LeaderChanged()
	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ElectionTimeout)
		defer cancel()
		if err := s.node.ReadIndex(ctx, rctx); err != nil {
			s.observer().ReadIndexFailed()
			s.lg.Debug("read index request failed", zap.Error(err))
		}
	}
	send()
	for {
		select {
		case rs := <-s.node.ReadStates():
			if len(rs.RequestCtx) == 8 && binary.BigEndian.Uint64(rs.RequestCtx) == seq {
				return rs.Index, nil
			}
			// A stale answer to an earlier round that timed out: ignore it (etcd counts
			// it as a slow read index: this member's reads queue behind the leader).
			s.observer().SlowReadIndex()
		case <-retry.C:
			s.observer().SlowReadIndex()
			send()
		case <-leaderChanged:
			leaderChanged = s.node.LeaderChanged()
			if s.node.Leader() != 0 {
				send()
			}
		case <-timeout.C:
			s.observer().SlowReadIndex()
			return 0, ErrTimeout
		case <-s.stopping:
			return 0, ErrStopped
		}
	}
}

var errNotReady = errors.New("server: not ready")

// WaitReady blocks until this member can serve linearizable reads: it has a leader and
// has applied everything committed before the call. It retries until ctx ends.
func (s *Server) WaitReady(ctx context.Context) error {
	var once sync.Once
	for {
		rctx, cancel := context.WithTimeout(ctx, s.reqTimeout())
		err := s.linearizableReadNotify(rctx)
		cancel()
		if err == nil {
			return nil
		}
		once.Do(func() { s.lg.Info("waiting for the cluster to serve linearizable reads", zap.Error(err)) })
		select {
		case <-ctx.Done():
			return errors.Join(errNotReady, ctx.Err())
		case <-s.stopping:
			return ErrStopped
		case <-time.After(100 * time.Millisecond):
		}
	}
}
