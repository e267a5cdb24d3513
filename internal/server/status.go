package server

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// Header returns what every response header carries.
func (s *Server) Header() *pb.ResponseHeader {
	return &pb.ResponseHeader{
		ClusterId: s.cfg.ClusterID,
		MemberId:  s.cfg.MemberID,
		RaftTerm:  s.node.Term(),
		Revision:  s.store.Rev(),
	}
}

// Leader is the current leader's ID, or 0.
func (s *Server) Leader() uint64 { return s.node.Leader() }

// Alarms lists the active alarms as this member has applied them (no Raft round).
func (s *Server) Alarms() []*pb.AlarmMember { return s.app.Alarms() }

// Status reports this member's state for Maintenance.Status.
func (s *Server) Status(ctx context.Context) (*pb.StatusResponse, error) {
	resp := &pb.StatusResponse{
		Version:          Version,
		StorageVersion:   ClusterVersion,
		DbSize:           int64(s.cfg.Engine.DiskSize()),
		DbSizeInUse:      int64(storage.StateMachineSize(s.cfg.Engine)),
		DbSizeQuota:      s.cfg.QuotaBackendBytes,
		Leader:           s.node.Leader(),
		RaftIndex:        s.node.CommittedIndex(),
		RaftTerm:         s.node.Term(),
		RaftAppliedIndex: s.applied.appliedIndex(),
		IsLearner:        s.learner.Load(),
	}
	resp.DowngradeInfo = &pb.DowngradeInfo{}
	if resp.Leader == 0 {
		resp.Errors = append(resp.Errors, ErrNoLeader.Error())
	}
	for _, a := range s.app.Alarms() {
		resp.Errors = append(resp.Errors, a.String())
	}
	return resp, nil
}

// MemberList lists the cluster's members; linearizable waits for a ReadIndex round.
func (s *Server) MemberList(ctx context.Context, linearizable bool) (_ []*pb.Member, err error) {
	defer translate(&err)
	if linearizable {
		if err := s.linearizableReadNotify(ctx); err != nil {
			return nil, err
		}
	}
	cl, err := s.app.Members()
	if err != nil {
		return nil, err
	}
	return cl.PB(), nil
}

// Publish records this member's name and client URLs in the replicated member list,
// through Raft, as etcd does once a member starts; it retries until it succeeds or ctx
// ends.
func (s *Server) Publish(ctx context.Context, name string, clientURLs []string) error {
	req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID:        s.cfg.MemberID,
		MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: clientURLs},
	}}
	for {
		_, err := s.proposeFor(ctx, req)
		if err == nil {
			return nil
		}
		s.lg.Warn("failed to publish local member to cluster through raft", zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return ErrStopped
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Alarm activates, deactivates or lists alarms through raft.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (_ *pb.AlarmResponse, err error) {
	defer translate(&err)
	resp, err := s.proposeFor(ctx, &pb.InternalRaftRequest{Alarm: r})
	if err != nil {
		return nil, err
	}
	return asResp[*pb.AlarmResponse](resp)
}

// HashKV hashes this member's key-value history at rev (0: the current revision) as
// mvcc.Store.HashKV does, on a snapshot, without a Raft round (as etcd). ErrFutureRev
// above the current revision, ErrCompacted below the compacted one.
func (s *Server) HashKV(ctx context.Context, rev int64) (_ *pb.HashKVResponse, err error) {
	defer translate(&err)
	start := time.Now()
	h, err := s.store.HashKV(ctx, rev)
	s.hashObserver().HashedKV(time.Since(start))
	if err != nil {
		return nil, err
	}
	compact := h.CompactRev
	if compact == 0 {
		compact = -1 // never compacted: etcd's compactMainRev starts at -1
	}
	return &pb.HashKVResponse{Hash: h.Hash, CompactRevision: compact, HashRevision: h.Rev}, nil
}

// checkQuota refuses a write of about cost bytes once the engine is past the quota,
// and raises the NOSPACE alarm through raft the first time, as etcd does.
func (s *Server) checkQuota(ctx context.Context, cost int) error {
	for _, a := range s.app.Alarms() {
		if a.GetAlarm() == pb.AlarmType_NOSPACE {
			return ErrNoSpace
		}
	}
	q := s.cfg.QuotaBackendBytes
	if q <= 0 || s.quotaSize()+int64(cost) <= q {
		return nil
	}
	s.nospaceOnce.Lock()
	defer s.nospaceOnce.Unlock()
	for _, a := range s.app.Alarms() {
		if a.GetAlarm() == pb.AlarmType_NOSPACE {
			return ErrNoSpace
		}
	}
	_, err := s.Alarm(ctx, &pb.AlarmRequest{
		Action:   pb.AlarmRequest_ACTIVATE,
		MemberID: s.cfg.MemberID,
		Alarm:    pb.AlarmType_NOSPACE,
	})
	if err != nil {
		s.lg.Warn("failed to raise the NOSPACE alarm")
	}
	return ErrNoSpace
}

// quotaSizeTTL bounds how stale the size used by the quota check may be: asking the
// engine on every write is costly (Pebble's Metrics), and the quota is a soft limit.
const quotaSizeTTL = 100 * time.Millisecond

// quotaSize is the state machine's size (storage.StateMachineSize), refreshed at most
// every quotaSizeTTL.
func (s *Server) quotaSize() int64 {
	now := time.Now().UnixNano()
	if now-s.sizeAt.Load() < int64(quotaSizeTTL) {
		return s.size.Load()
	}
	size := int64(storage.StateMachineSize(s.cfg.Engine))
	s.size.Store(size)
	s.sizeAt.Store(now)
	return size
}
