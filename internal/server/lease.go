package server

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/lessor"
)

// The lease path. Grant, revoke and checkpoint go through Raft and apply writes them
// into the replicated table (internal/lease). Expiry lives in the leader's memory
// (internal/lessor): the lessor loop below promotes it when this member becomes leader
// (after a ReadIndex round, so the table holds every entry committed before),
// proposes the revokes of expired leases — many at once, which raftnode hands to raft
// as one message, one WAL write, applied in one batch — and checkpoints remaining TTLs
// in LeaseCheckpoint requests of up to leaseCheckpointBatch leases. A renewal on the
// leader answers from the lessor; on a follower it is forwarded to the leader over the
// peer port (leasehttp.go), so the TTL answered is the leader's.

const (
	// lessorTick is how often the lessor loop looks for expired leases and due
	// checkpoints.
	lessorTick = 100 * time.Millisecond
	// leaseRevokeBatch bounds the revokes proposed together; the raft inbox holds 8192.
	leaseRevokeBatch = 2048
	// leaseCheckpointBatch is the most checkpoints in one LeaseCheckpoint request.
	leaseCheckpointBatch = 1000
	// leaseCheckpointRound bounds the checkpoints proposed per tick: at most 20,000
	// leases (20 LeaseCheckpoint proposals of about 16 KB) per second, whatever the
	// number of leases. Beyond it checkpoints wait, most overdue first: a new leader
	// then gives the leases concerned more (never less) than what remained.
	leaseCheckpointRound = 2 * leaseCheckpointBatch
)

// Errors of the lease API, with etcd's messages.
var (
	ErrLeaseExists      = errors.New("lease already exists")
	ErrLeaseTTLTooLarge = errors.New("too large lease TTL")
	ErrNotPrimary       = errors.New("not a primary lessor")
)

// minLeaseTTL is etcd's: ceil((3*electionTicks/2) * heartbeat) seconds.
func (s *Server) minLeaseTTL() int64 {
	hb := s.cfg.HeartbeatInterval
	if hb <= 0 {
		hb = 100 * time.Millisecond
	}
	et := s.cfg.ElectionTimeout
	if et <= 0 {
		et = 10 * hb
	}
	ticks := int64(et / hb)
	return int64(math.Ceil((time.Duration((3*ticks)/2) * hb).Seconds()))
}

// startLessor wires the lessor to the lease table and starts its loop. New calls it.
func (s *Server) startLessor() {
	s.lessor = lessor.New(s.app.Leases(), lessor.Config{MinAfterPromote: s.cfg.ElectionTimeout})
	s.app.Leases().SetListener(s.lessor)
	s.wg.Add(1)
	go s.runLessor()
}

var timeNow = time.Now

func (s *Server) isLeader() bool { return s.node.Leader() == s.cfg.MemberID }

// runLessor promotes and demotes the lessor as leadership changes, and on the leader
// revokes expired leases and checkpoints remaining TTLs.
//
// The lessor is primary for one term: a member that lost leadership and won it back
// while this loop waited on proposals (A → B → A) sees a new term and starts again from
// the table's checkpoints, as etcd demotes on every leadership loss; its old schedule
// does not know of the renewals B answered meanwhile.
func (s *Server) runLessor() {
	defer s.wg.Done()
	t := time.NewTicker(lessorTick)
	defer t.Stop()
	var term uint64 // the term the lessor was promoted in
	for {
		changed := s.node.LeaderChanged()
		leader := s.isLeader()
		if s.lessor.Primary() && (!leader || s.node.Term() != term) {
			s.lessor.Demote()
		}
		switch {
		case leader && !s.lessor.Primary():
			at := s.node.Term()
			ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
			err := s.linearizableReadNotify(ctx)
			cancel()
			if err == nil && s.isLeader() && s.node.Term() == at {
				term = at
				start := time.Now()
				s.lessor.Promote()
				s.lg.Info("lessor promoted", zap.Int("leases", s.lessor.Len()), zap.Uint64("term", term),
					zap.Duration("took", time.Since(start)))
			}
		case leader:
			primary := func() bool { return s.isLeader() && s.node.Term() == term }
			s.revokeExpired(primary)
			s.checkpointLeases(primary)
		}
		select {
		case <-s.stopping:
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// revokeExpired proposes a LeaseRevoke for every expired lease, all at once, and waits
// for them. A revoke that fails is offered again by the lessor after its retry delay.
//
// primary reports whether this member still leads in the lessor's term; nothing is
// proposed once it does not (a revoke forwarded to a new leader could delete the keys of
// a lease that leader has renewed).
func (s *Server) revokeExpired(primary func() bool) {
	for {
		if !primary() {
			return
		}
		ids := s.lessor.Expired(leaseRevokeBatch)
		if len(ids) == 0 {
			return
		}
		type result struct {
			id  int64
			err error
		}
		done := make(chan result, len(ids))
		for _, id := range ids {
			go func() {
				_, err := s.proposeFor(context.Background(), &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
				done <- result{id, err}
			}()
		}
		failed := 0
		for range ids {
			switch r := <-done; {
			case errors.Is(r.err, lease.ErrLeaseNotFound):
				s.lessor.Revoked(r.id) // revoked already: forget it
			case r.err != nil:
				failed++
			}
		}
		if failed > 0 {
			s.lg.Warn("revoking expired leases failed", zap.Int("failed", failed), zap.Int("proposed", len(ids)))
			return
		}
		select {
		case <-s.stopping:
			return
		default:
		}
	}
}

// checkpointLeases proposes the due checkpoints, leaseCheckpointBatch per request.
func (s *Server) checkpointLeases(primary func() bool) {
	if err := s.checkCapable(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{}}); err != nil {
		return // before 3.4 a checkpoint is not allowed; leases restart whole then
	}
	cps := s.lessor.DueCheckpoints(leaseCheckpointRound)
	for len(cps) > 0 {
		n := min(len(cps), leaseCheckpointBatch)
		r := &pb.LeaseCheckpointRequest{Checkpoints: make([]*pb.LeaseCheckpoint, n)}
		for i, c := range cps[:n] {
			r.Checkpoints[i] = &pb.LeaseCheckpoint{ID: c.ID, Remaining_TTL: c.Remaining}
		}
		cps = cps[n:]
		if !primary() {
			return
		}
		if _, err := s.proposeFor(context.Background(), &pb.InternalRaftRequest{LeaseCheckpoint: r}); err != nil {
			s.lg.Warn("checkpointing leases failed", zap.Error(err))
			return
		}
	}
}

// leasesReloaded brings the lessor in line with a lease table that a snapshot install
// replaced: a primary lessor starts again from the table's checkpoints; one being
// promoted (runLessor's Promote listing the old table) is stopped, and the loop
// promotes it again from the new table.
func (s *Server) leasesReloaded() {
	s.invalidateLeaderURLs()
	if s.lessor.Reset() {
		s.lessor.Promote()
	}
}

// LeaseGrant proposes a grant. A zero ID is replaced by one from the ID generator; a TTL
// below the minimum is raised to it (etcd raises it in its lessor; we do it before
// proposing, so apply needs no configuration).
func (s *Server) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (_ *pb.LeaseGrantResponse, err error) {
	defer translate(&err)
	g := &pb.LeaseGrantRequest{ID: r.GetID(), TTL: r.GetTTL()}
	for g.ID == lease.NoLease {
		g.ID = int64(s.ids.next() & (1<<63 - 1))
	}
	if g.TTL > lease.MaxTTL {
		return nil, ErrLeaseTTLTooLarge
	}
	if floor := s.minLeaseTTL(); g.TTL < floor {
		g.TTL = floor
	}
	if err := s.checkQuota(ctx, proto.Size(g)); err != nil {
		return nil, err
	}
	resp, err := s.proposeFor(ctx, &pb.InternalRaftRequest{LeaseGrant: g})
	if err != nil {
		return nil, err
	}
	s.leaseObserver().LeaseGranted(g.TTL)
	return asResp[*pb.LeaseGrantResponse](resp)
}

// LeaseRevoke proposes a revoke: the lease's keys are deleted in one revision.
func (s *Server) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (_ *pb.LeaseRevokeResponse, err error) {
	defer translate(&err)
	resp, err := s.proposeFor(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: r.GetID()}})
	if err != nil {
		return nil, err
	}
	s.leaseObserver().LeaseRevoked()
	return asResp[*pb.LeaseRevokeResponse](resp)
}

// LeaseRenew renews lease id and returns its TTL: on the leader from its lessor, on a
// follower by asking the leader. ErrLeaseNotFound for an unknown or expired lease.
func (s *Server) LeaseRenew(ctx context.Context, id int64) (_ int64, err error) {
	defer translate(&err)
	start := timeNow()
	var firstErr error
	if !s.isLeader() {
		// A follower's first try starts no timer (one per renewal otherwise):
		// renewRemote answers within the request timeout by itself.
		ttl, err := s.renewRemote(ctx, id)
		if err == nil || errors.Is(err, lease.ErrLeaseNotFound) || ctx.Err() != nil || !retryableLeaseErr(err) {
			return ttl, err
		}
		firstErr = err
	}
	// The retries share the deadline the first try started under.
	cctx, cancel := context.WithDeadline(ctx, start.Add(s.reqTimeout()))
	defer cancel()
	if firstErr != nil && !s.retryLease(cctx, firstErr) {
		return -1, firstErr
	}
	for {
		var ttl int64
		if s.isLeader() {
			ttl, err = s.renewLocal(cctx, id)
		} else {
			ttl, err = s.renewRemote(cctx, id)
		}
		if err == nil || errors.Is(err, lease.ErrLeaseNotFound) || !s.retryLease(cctx, err) {
			return ttl, err
		}
	}
}

// retryLease waits a little before another try after err (no leader yet, a leader not
// promoted yet, a leader that changed), false when the context or the server ended.
func (s *Server) retryLease(ctx context.Context, err error) bool {
	if !retryableLeaseErr(err) {
		return false
	}
	select {
	case <-time.After(50 * time.Millisecond):
		return true
	case <-ctx.Done():
		return false
	case <-s.stopping:
		return false
	}
}

// retryableLeaseErr: err may pass with another try (no leader yet, a leader not
// promoted yet, a leader that changed or did not answer).
func retryableLeaseErr(err error) bool {
	return errors.Is(err, ErrNotPrimary) || errors.Is(err, ErrNoLeader) || errors.Is(err, errLeaderUnreachable)
}

// renewLocal renews on this member's lessor (renewLocalMany of one lease).
func (s *Server) renewLocal(ctx context.Context, id int64) (int64, error) {
	r := s.renewLocalMany(ctx, []int64{id})[0]
	return r.ttl, r.err
}

// renewLocalMany renews leases on this member's lessor. A renewed lease whose remaining
// TTL was checkpointed has the checkpoint reset (remaining 0: the whole TTL) through
// Raft before the answer, so no later leader gives it less than the TTL just promised;
// the resets of one call share the proposals of the cpResetter.
func (s *Server) renewLocalMany(ctx context.Context, ids []int64) []fwdResult {
	out := make([]fwdResult, len(ids))
	var needCP, retry []int
	for i, id := range ids {
		ttl, cp, err := s.lessor.Renew(id)
		if errors.Is(err, lessor.ErrLeaseNotFound) && !s.app.Leases().Exists(id) {
			retry = append(retry, i)
			continue
		}
		out[i] = fwdResult{ttl, err}
		if err == nil && cp {
			needCP = append(needCP, i)
		}
	}
	if len(retry) > 0 {
		// They may be granted by an entry not applied here yet (etcd's FastLeaseKeepAlive).
		werr := s.waitApplied(ctx)
		for _, i := range retry {
			if werr != nil {
				out[i] = fwdResult{-1, werr}
				continue
			}
			ttl, cp, err := s.lessor.Renew(ids[i])
			out[i] = fwdResult{ttl, err}
			if err == nil && cp {
				needCP = append(needCP, i)
			}
		}
	}
	for i := range out {
		if errors.Is(out[i].err, lessor.ErrNotPrimary) {
			out[i] = fwdResult{-1, ErrNotPrimary}
		} else if out[i].err != nil {
			out[i].ttl = -1
		}
	}
	if len(needCP) > 0 && s.checkCapable(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{}}) == nil {
		var wg sync.WaitGroup
		for _, i := range needCP {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.resetCheckpoint(ctx, ids[i]); err != nil {
					out[i] = fwdResult{-1, err}
				}
			}()
		}
		wg.Wait()
	}
	// etcd_debugging_lease_renewed_total counts the renewals the leader saw, its own
	// clients' and those its followers forwarded.
	for i := range out {
		if out[i].err == nil {
			s.leaseObserver().LeaseRenewed()
		}
	}
	return out
}

// waitApplied waits until this member applied what is committed now.
func (s *Server) waitApplied(ctx context.Context) error {
	ci := s.node.CommittedIndex()
	select {
	case <-s.applied.wait(ci):
		return nil
	case <-ctx.Done():
		return s.parseProposeCtxErr(ctx.Err(), time.Now())
	case <-s.stopping:
		return ErrStopped
	}
}

// LeaseTimeToLive answers from the leader's lessor (asking the leader from a follower).
// An unknown lease is ErrLeaseNotFound (grpcapi answers TTL -1, as etcd).
func (s *Server) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (_ *pb.LeaseTimeToLiveResponse, err error) {
	defer translate(&err)
	cctx, cancel := context.WithTimeout(ctx, s.reqTimeout())
	defer cancel()
	for {
		var resp *pb.LeaseTimeToLiveResponse
		if s.isLeader() {
			resp, err = s.timeToLiveLocal(cctx, r)
		} else {
			resp, err = s.timeToLiveRemote(cctx, r)
		}
		if err == nil || errors.Is(err, lease.ErrLeaseNotFound) || !s.retryLease(cctx, err) {
			return resp, err
		}
	}
}

func (s *Server) timeToLiveLocal(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	// Answer after every entry committed now is applied, as etcd's leader does.
	if err := s.waitApplied(ctx); err != nil {
		return nil, err
	}
	in, ok := s.app.Leases().Get(r.GetID())
	if !ok {
		return nil, lease.ErrLeaseNotFound
	}
	rem, err := s.lessor.Remaining(r.GetID())
	switch {
	case errors.Is(err, lessor.ErrNotPrimary):
		return nil, ErrNotPrimary
	case err != nil:
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.GetID(), TTL: int64(rem.Seconds()), GrantedTTL: in.TTL}
	if r.GetKeys() {
		keys, _ := s.app.Leases().Keys(r.GetID())
		resp.Keys = keys
	}
	return resp, nil
}

// LeaseLeases lists this member's leases (etcd reads its local lessor too).
func (s *Server) LeaseLeases(ctx context.Context) (*pb.LeaseLeasesResponse, error) {
	list := s.app.Leases().List()
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: make([]*pb.LeaseStatus, len(list))}
	for i, in := range list {
		resp.Leases[i] = &pb.LeaseStatus{ID: in.ID}
	}
	return resp, nil
}

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
