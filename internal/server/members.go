package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
)

// The Cluster service's changes: MemberAdd, MemberRemove, MemberUpdate, MemberPromote.
// Each is checked here as etcd's EtcdServer checks it before proposing (the
// --strict-reconfig-check quorum rules, a learner's progress), then proposed as a raft
// ConfChange whose Context carries the member as etcd's does, and answered once
// applied on this member (confchange.go), where the member list decides the rest
// (ErrIDExists, ErrPeerURLExists, ErrIDNotFound, ErrMemberNotLearner,
// ErrTooManyLearners). One change at a time is proposed from a member; raft itself
// drops a change proposed while another is pending.

// reachTimeout bounds the probe of the peers for the strict reconfiguration check.
const reachTimeout = time.Second

// learnerReadyPercent is how far a learner's log must have caught up with the
// leader's to be promoted (etcd's readyPercentThreshold).
const learnerReadyPercent = 0.9

// MemberAdd adds a member with peerURLs (a learner if isLearner), its ID derived as
// etcd derives the ID of an added member (from the URLs and the time), and returns it
// and the member list after the change.
func (s *Server) MemberAdd(ctx context.Context, peerURLs []string, isLearner bool) (_ *pb.Member, _ []*pb.Member, err error) {
	defer translate(&err)
	urls, err := membership.ParseURLs(peerURLs)
	if err != nil {
		return nil, nil, ErrMemberBadURLs
	}
	now := time.Now()
	m := membership.NewMember("", urls, "", &now)
	m.IsLearner = isLearner
	if err := s.mayAddMember(ctx, m); err != nil {
		return nil, nil, err
	}
	b, err := membership.EncodeAddContext(m)
	if err != nil {
		return nil, nil, err
	}
	typ := raftpb.ConfChangeType_ConfChangeAddNode
	if isLearner {
		typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
	}
	members, err := s.configure(ctx, &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(m.ID), Context: b})
	if err != nil {
		return nil, nil, err
	}
	return &pb.Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner}, members, nil
}

// MemberRemove removes member id and returns the member list after the change.
func (s *Server) MemberRemove(ctx context.Context, id uint64) (_ []*pb.Member, err error) {
	defer translate(&err)
	if err := s.mayRemoveMember(ctx, id); err != nil {
		return nil, err
	}
	return s.configure(ctx, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)})
}

// MemberUpdate sets the peer URLs of member id (etcd checks nothing before proposing).
func (s *Server) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) (_ []*pb.Member, err error) {
	defer translate(&err)
	b, err := membership.EncodeUpdateContext(id, peerURLs)
	if err != nil {
		return nil, err
	}
	return s.configure(ctx, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(id), Context: b})
}

// MemberPromote makes learner id a voter, if its log is in sync with the leader's.
// Only the leader knows that: a member that does not lead forwards the request to the
// leader over the peer port (promote.go), as etcd does.
func (s *Server) MemberPromote(ctx context.Context, id uint64) (_ []*pb.Member, err error) {
	defer translate(&err)
	members, err := s.promoteCounted(ctx, id)
	if errors.Is(err, ErrNotLeader) {
		return s.forwardPromote(ctx, id)
	}
	return members, err
}

// promoteCounted is promoteLocal, counted as etcd counts promotions: by the member
// that decided (the leader, asked directly or forwarded to), not by one that only
// forwarded; the failure's label is the error etcd's client sees.
func (s *Server) promoteCounted(ctx context.Context, id uint64) ([]*pb.Member, error) {
	members, err := s.promoteLocal(ctx, id)
	switch {
	case err == nil:
		s.memberObserver().LearnerPromoted()
	case !errors.Is(err, ErrNotLeader):
		s.memberObserver().LearnerPromoteFailed(TranslateError(err).Error())
	}
	return members, err
}

// promoteLocal promotes id if this member leads, else fails with ErrNotLeader.
func (s *Server) promoteLocal(ctx context.Context, id uint64) ([]*pb.Member, error) {
	if err := s.isLearnerReady(id); err != nil {
		return nil, err
	}
	if s.cfg.StrictReconfigCheck {
		cl, err := s.currentMembers(ctx)
		if err != nil {
			return nil, err
		}
		if !cl.ReadyToPromoteMember(id) {
			s.lg.Warn("rejecting member promote request; not enough healthy members",
				zap.String("member-id", membership.IDString(id)), zap.Error(ErrNotEnoughStartedMembers))
			return nil, ErrNotEnoughStartedMembers
		}
	}
	b, err := membership.EncodePromoteContext(id)
	if err != nil {
		return nil, err
	}
	return s.configure(ctx, &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id), Context: b})
}

// isLearnerReady is etcd's check that a learner caught up: its match index is at least
// 90% of the leader's. A member raft does not track fails with ErrIDNotFound; a voter
// passes (the member list then refuses it with ErrMemberNotLearner).
func (s *Server) isLearnerReady(id uint64) error {
	st := s.node.Status()
	if st.Progress == nil {
		return ErrNotLeader
	}
	pr, ok := st.Progress[id]
	if !ok {
		return ErrIDNotFound
	}
	leaderMatch := st.Progress[st.ID].Match
	if leaderMatch > 0 && float64(pr.Match)/float64(leaderMatch) < learnerReadyPercent {
		s.lg.Warn("rejecting promote learner: learner is not ready",
			zap.Float64("learner-ready-percent", float64(pr.Match)/float64(leaderMatch)),
			zap.Float64("ready-percent-threshold", learnerReadyPercent))
		return ErrLearnerNotReady
	}
	return nil
}

// mayAddMember is etcd's --strict-reconfig-check for an add: a voter may be added only
// if the started voters stay a quorum, and only if this member reaches a quorum of the
// voters counting the new one as down.
func (s *Server) mayAddMember(ctx context.Context, m *membership.Member) error {
	if !s.cfg.StrictReconfigCheck {
		return nil
	}
	cl, err := s.currentMembers(ctx)
	if err != nil {
		return err
	}
	if !m.IsLearner && !cl.ReadyToAddVotingMember() {
		s.lg.Warn("rejecting member add request; not enough healthy members", zap.Error(ErrNotEnoughStartedMembers))
		return ErrNotEnoughStartedMembers
	}
	voters := cl.VotingMembers()
	if len(voters) > 1 && s.connectedVoters(ctx, voters) < (len(voters)+1)/2+1 {
		s.lg.Warn("rejecting member add request; local member has not been connected to majority peers, reconfigure breaks active quorum",
			zap.Error(ErrUnhealthy))
		return ErrUnhealthy
	}
	return nil
}

// mayRemoveMember is etcd's --strict-reconfig-check for a removal: removing a voter
// must leave the started voters a quorum and, unless the member removed is down, the
// voters this member reaches a quorum of those that remain.
func (s *Server) mayRemoveMember(ctx context.Context, id uint64) error {
	if !s.cfg.StrictReconfigCheck {
		return nil
	}
	cl, err := s.currentMembers(ctx)
	if err != nil {
		return err
	}
	if m := cl.Member(id); m != nil && m.IsLearner {
		return nil
	}
	if !cl.ReadyToRemoveVotingMember(id) {
		s.lg.Warn("rejecting member remove request; not enough healthy members",
			zap.String("member-id", membership.IDString(id)), zap.Error(ErrNotEnoughStartedMembers))
		return ErrNotEnoughStartedMembers
	}
	reach := s.reachable(ctx)
	if id != s.cfg.MemberID && !reach[id] {
		return nil // a member that is down is not part of the active quorum
	}
	voters := cl.VotingMembers()
	active := 0
	for _, m := range voters {
		if m.ID == s.cfg.MemberID || s.activeLongEnough(reach, m.ID) {
			active++
		}
	}
	if active-1 < 1+(len(voters)-1)/2 {
		s.lg.Warn("rejecting member remove request; local member has not been connected to all peers, reconfigure breaks active quorum",
			zap.String("member-id", membership.IDString(id)), zap.Int("active-peers", active), zap.Error(ErrUnhealthy))
		return ErrUnhealthy
	}
	return nil
}

// currentMembers is the member list once this member has applied everything committed
// (one ReadIndex round): the strict checks must not count on a list that misses a change
// another member already answered (etcd checks its local list as it is).
func (s *Server) currentMembers(ctx context.Context) (*membership.Cluster, error) {
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	return s.app.Members()
}

func (s *Server) reachable(ctx context.Context) map[uint64]bool {
	if s.cfg.Peers == nil {
		return nil
	}
	return s.cfg.Peers.ReachablePeers(ctx, reachTimeout)
}

// connectedVoters counts this member and the voters it reaches now and has seen up
// for healthInterval.
func (s *Server) connectedVoters(ctx context.Context, voters []*membership.Member) int {
	reach := s.reachable(ctx)
	n := 0
	for _, m := range voters {
		if m.ID == s.cfg.MemberID || s.activeLongEnough(reach, m.ID) {
			n++
		}
	}
	return n
}

// configure proposes cc and waits until this member applied it, as etcd's configure:
// the answer is the member list after the change, or the error the member list
// refused it with.
func (s *Server) configure(ctx context.Context, cc *raftpb.ConfChange) ([]*pb.Member, error) {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	id := s.ids.next()
	cc.Id = proto.Uint64(id)
	ch := s.waits.register(id)
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, s.reqTimeout())
	defer cancel()
	if err := s.node.ProposeConfChange(cctx, cc); err != nil {
		s.waits.trigger(id, nil)
		return nil, s.parseProposeCtxErr(err, start)
	}
	select {
	case x := <-ch:
		res, ok := x.(*confChangeResult)
		if !ok || res == nil {
			return nil, ErrStopped
		}
		if res.err != nil {
			return nil, res.err
		}
		return res.members, nil
	case <-cctx.Done():
		s.waits.trigger(id, nil)
		return nil, s.parseProposeCtxErr(cctx.Err(), start)
	case <-s.stopping:
		return nil, ErrStopped
	}
}

// PeerMembers answers the peer port's GET /members (transport.Membership): the
// cluster ID and the member list as etcd encodes it.
func (s *Server) PeerMembers() (uint64, []byte, error) {
	cl, err := s.app.Members()
	if err != nil {
		return 0, nil, err
	}
	b, err := membership.MarshalMembers(cl)
	return s.cfg.ClusterID, b, err
}

// IsRemoved tells whether id was removed from the cluster (transport.Membership).
func (s *Server) IsRemoved(id uint64) bool {
	cl, err := s.app.Members()
	return err == nil && cl.IsRemoved(id)
}

// RemovedByPeer stops this member: a peer refused it as removed (transport.Membership).
func (s *Server) RemovedByPeer() { go s.stopRemoved() }
