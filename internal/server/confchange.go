package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/raftnode"
)

// Errors of membership changes, with etcd's messages (membership/errors.go,
// etcdserver/errors), as the Cluster service answers them.
var (
	ErrIDRemoved        = errors.New("membership: ID removed")
	ErrIDExists         = errors.New("membership: ID exists")
	ErrIDNotFound       = errors.New("membership: ID not found")
	ErrPeerURLExists    = errors.New("membership: peerURL exists")
	ErrMemberNotLearner = errors.New("membership: can only promote a learner member")
	ErrTooManyLearners  = errors.New("membership: too many learner members in cluster")
	ErrLearnerNotReady  = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	// ErrNotEnoughStartedMembers: --strict-reconfig-check refused a change that would
	// leave fewer started voters than a quorum.
	ErrNotEnoughStartedMembers = errors.New("etcdserver: re-configuration failed due to not enough started members")
	// ErrMemberBadURLs: MemberAdd's peer URLs do not parse as etcd's types.NewURLs.
	ErrMemberBadURLs = errors.New("etcdserver: given member URLs are invalid")
	// ErrMemberRemoved is why a member removed from the cluster stops (Err): it
	// applied its own removal, or a peer refused it as removed. etcd's message.
	ErrMemberRemoved = errors.New("the member has been permanently removed from the cluster")
)

// Peers is the transport as conf changes drive it (*transport.Transport): peers are
// added and removed at runtime when a change is applied.
type Peers interface {
	// AddPeer starts sending to id at urls; for a known peer it replaces the URLs.
	AddPeer(id uint64, urls []string)
	RemovePeer(id uint64)
	// ReachablePeers returns the peers that answer within timeout, for the strict
	// reconfiguration check.
	ReachablePeers(ctx context.Context, timeout time.Duration) map[uint64]bool
}

// removedStopDelay is how long a member that applied its own removal keeps running,
// as etcd (stopWithDelay): long enough for its answer to the leader to go out.
const removedStopDelay = time.Second

// removedPeerGrace is how long the transport keeps a peer after its removal was
// applied, so that what raft queued for it still goes out.
const removedPeerGrace = time.Second

// confChangeResult is what the waiter of a conf change receives.
type confChangeResult struct {
	members []*pb.Member
	err     error
}

// applyConfChange applies one conf-change entry, in this order: check it against the
// member list (apply.PrepareConfChange), give raft the change (or, if it was refused,
// a change of nothing, so that raft's pending change is cleared), record raft's new
// configuration, the member list and the applied index in ONE batch, then change the
// transport's peers and answer the waiter. If the raft node stopped meanwhile nothing
// is recorded (the entry is applied again after a restart) and the error wraps
// raftnode.ErrStopped.
func (s *Server) applyConfChange(e *raftpb.Entry) error {
	if e.GetIndex() <= s.app.AppliedIndex() {
		return nil
	}
	c, err := s.app.PrepareConfChange(e)
	if err != nil {
		return err
	}
	cs, err := s.node.ApplyConfChange(c.Raft)
	if err != nil {
		return fmt.Errorf("conf change at %d: %w", c.Index, err)
	}
	if err := s.app.CommitConfChange(c, cs); err != nil {
		return err
	}
	if c.Err != nil {
		s.lg.Warn("configuration change refused", zap.Uint64("index", c.Index), zap.Error(c.Err))
	}
	s.afterConfChange(c)
	if c.ID != 0 {
		res := &confChangeResult{err: c.Err}
		if cl, err := s.app.Members(); err == nil {
			res.members = cl.PB()
		} else if res.err == nil {
			res.err = err
		}
		s.waits.trigger(c.ID, res)
	}
	return nil
}

// afterConfChange makes the transport follow an applied change, and stops this member
// if the change removed it.
func (s *Server) afterConfChange(c *apply.ConfChange) {
	if c.Member == nil || c.Err != nil {
		return
	}
	id := c.Member.ID
	s.invalidateLeaderURLs()
	switch c.Kind {
	case apply.ConfChangeAdd, apply.ConfChangeUpdate:
		if id != s.cfg.MemberID && s.cfg.Peers != nil {
			s.cfg.Peers.AddPeer(id, c.Member.PeerURLs)
		}
		s.lg.Info("applied a configuration change", zap.String("member-id", membership.IDString(id)),
			zap.Strings("peer-urls", c.Member.PeerURLs), zap.Bool("is-learner", c.Member.IsLearner), zap.Int("kind", int(c.Kind)))
	case apply.ConfChangePromote:
		if id == s.cfg.MemberID {
			s.learner.Store(false)
		}
		s.lg.Info("promoted a learner", zap.String("member-id", membership.IDString(id)))
	case apply.ConfChangeRemove:
		s.lg.Info("removed a member", zap.String("member-id", membership.IDString(id)))
		if id == s.cfg.MemberID {
			time.AfterFunc(removedStopDelay, s.stopRemoved)
			return
		}
		if s.cfg.Peers != nil {
			// Not at once: the messages raft queued for it with this Ready, the
			// commit of its removal among them, would be dropped, and a removed
			// member that proposed its own removal would never answer. raft sends
			// it nothing new meanwhile; its own messages are refused (410 Gone).
			peers := s.cfg.Peers
			time.AfterFunc(removedPeerGrace, func() { peers.RemovePeer(id) })
		}
	}
}

// stopRemoved stops the server because it was removed from the cluster.
func (s *Server) stopRemoved() {
	s.lg.Warn("server error", zap.Error(ErrMemberRemoved))
	s.lg.Warn("data-dir used by this member must be removed")
	s.stop(ErrMemberRemoved)
}

// syncPeers makes the transport's peers those of the member list, after a snapshot
// install replaced it underneath; a member the snapshot lists as removed stops.
func (s *Server) syncPeers() {
	cl, err := s.app.Members()
	if err != nil {
		s.lg.Warn("cannot read the member list after a snapshot install", zap.Error(err))
		return
	}
	if cl.IsRemoved(s.cfg.MemberID) {
		time.AfterFunc(removedStopDelay, s.stopRemoved)
		return
	}
	if self := cl.Member(s.cfg.MemberID); self != nil {
		s.learner.Store(self.IsLearner)
	}
	if s.cfg.Peers == nil {
		return
	}
	for _, m := range cl.Members {
		if m.ID != s.cfg.MemberID {
			s.cfg.Peers.AddPeer(m.ID, m.PeerURLs)
		}
	}
	for _, id := range cl.Removed {
		s.cfg.Peers.RemovePeer(id)
	}
}

// isStoppedNode tells an apply error caused by the raft node stopping (the node's own
// watcher reports why) from a failure of the state machine.
func isStoppedNode(err error) bool { return errors.Is(err, raftnode.ErrStopped) }

// IsLearner tells whether this member is a learner now (grpcapi.LearnerReporter): it
// changes when the member is promoted.
func (s *Server) IsLearner() bool { return s.learner.Load() }
