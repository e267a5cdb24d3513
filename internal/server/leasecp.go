package server

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// cpResetter resets the checkpoints of renewed leases (remaining 0: the whole TTL)
// through Raft, sharing one LeaseCheckpoint request among the renewals that arrive
// while the previous one is in flight, so that keep-alives cost one proposal per
// round trip, not one each.
type cpResetter struct {
	mu      sync.Mutex
	ids     []int64
	waiters []chan error
	running bool
}

// resetCheckpoint returns once a checkpoint resetting lease id is applied on this
// member (or failed).
func (s *Server) resetCheckpoint(ctx context.Context, id int64) error {
	r := &s.cpReset
	ch := make(chan error, 1)
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.waiters = append(r.waiters, ch)
	if !r.running {
		r.running = true
		go s.flushCheckpointResets()
	}
	r.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return s.parseProposeCtxErr(ctx.Err(), timeNow())
	case <-s.stopping:
		return ErrStopped
	}
}

func (s *Server) flushCheckpointResets() {
	r := &s.cpReset
	for {
		r.mu.Lock()
		ids, waiters := r.ids, r.waiters
		r.ids, r.waiters = nil, nil
		if len(ids) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		var err error
		for len(ids) > 0 && err == nil {
			n := min(len(ids), leaseCheckpointBatch)
			req := &pb.LeaseCheckpointRequest{Checkpoints: make([]*pb.LeaseCheckpoint, n)}
			for i, id := range ids[:n] {
				req.Checkpoints[i] = &pb.LeaseCheckpoint{ID: id}
			}
			ids = ids[n:]
			ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
			_, err = s.proposeFor(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: req})
			cancel()
		}
		for _, ch := range waiters {
			ch <- err
		}
	}
}
