package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/membership"
)

// Errors of MoveLeader and Downgrade, with etcd's messages.
var (
	ErrBadLeaderTransferee   = errors.New("etcdserver: bad leader transferee")
	ErrTimeoutLeaderTransfer = errors.New("etcdserver: request timed out, leader transfer took too long")

	ErrWrongDowngradeVersionFormat   = errors.New("etcdserver: wrong downgrade target version format")
	ErrInvalidDowngradeTargetVersion = errors.New("etcdserver: invalid downgrade target version")
	ErrClusterVersionUnavailable     = errors.New("etcdserver: cluster version not found during downgrade")
	ErrNoInflightDowngrade           = errors.New("etcdserver: no inflight downgrade job")
	ErrUnknownMethod                 = errors.New("etcdserver: unknown method")
)

// MoveLeader hands leadership to member target, as etcd's MoveLeader: only the
// leader may (ErrNotLeader); the target must be a voting member of the cluster
// (ErrBadLeaderTransferee); it returns once target leads, or ErrTimeoutLeaderTransfer
// when ctx ends first (the request timeout when ctx has none).
func (s *Server) MoveLeader(ctx context.Context, target uint64) (err error) {
	defer translate(&err)
	lead := s.node.Leader()
	if lead != s.cfg.MemberID {
		return ErrNotLeader
	}
	cl, err := s.app.Members()
	if err != nil {
		return err
	}
	if m := cl.Member(target); m == nil || m.IsLearner {
		return ErrBadLeaderTransferee
	}
	if target == lead {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.reqTimeout())
		defer cancel()
	}
	start := time.Now()
	s.lg.Info("leadership transfer starting", zap.String("local-member-id", membership.IDString(s.cfg.MemberID)),
		zap.String("current-leader-member-id", membership.IDString(lead)), zap.String("transferee-member-id", membership.IDString(target)))
	interval := s.cfg.HeartbeatInterval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	s.node.TransferLeadership(ctx, lead, target)
	for s.node.Leader() != target {
		select {
		case <-ctx.Done():
			return ErrTimeoutLeaderTransfer
		case <-s.stopping:
			return ErrStopped
		case <-s.node.LeaderChanged():
		case <-time.After(interval):
		}
	}
	s.lg.Info("leadership transfer finished", zap.String("old-leader-member-id", membership.IDString(lead)),
		zap.String("new-leader-member-id", membership.IDString(target)), zap.Duration("took", time.Since(start)))
	return nil
}

// Downgrade is etcd's Downgrade (validate, enable, cancel), with one honest
// difference: etcd v3.7 accepts the minor version below the cluster's (3.6), as etcd
// 3.6 binaries can take over its data; there is no older MetaStore for a cluster to
// go to, so every well-formed target answers ErrInvalidDowngradeTargetVersion (what
// etcd answers for a target it cannot go to), and no downgrade job ever exists. A
// malformed target answers ErrWrongDowngradeVersionFormat; cancel succeeds, as
// etcd's does even without a job (it only logs "no inflight downgrade job").
func (s *Server) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (_ *pb.DowngradeResponse, err error) {
	defer translate(&err)
	cv := s.ClusterVersion()
	switch r.Action {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		if !validSemver(r.Version) && !validSemver(r.Version+".0") { // etcd takes MAJOR.MINOR too
			s.lg.Warn("reject downgrade request", zap.String("target-version", r.Version), zap.Error(ErrWrongDowngradeVersionFormat))
			return nil, ErrWrongDowngradeVersionFormat
		}
		if cv == "" {
			return nil, ErrClusterVersionUnavailable
		}
		s.lg.Warn("reject downgrade request: there is no older MetaStore version to downgrade to",
			zap.String("cluster-version", cv), zap.String("target-version", r.Version), zap.Error(ErrInvalidDowngradeTargetVersion))
		return nil, ErrInvalidDowngradeTargetVersion
	case pb.DowngradeRequest_CANCEL:
		s.lg.Warn("failed to cancel downgrade", zap.Error(ErrNoInflightDowngrade))
		return &pb.DowngradeResponse{Version: majorMinor(cv)}, nil
	default:
		return nil, ErrUnknownMethod
	}
}

// validSemver is the check of semver.NewVersion that etcd applies to a target:
// MAJOR.MINOR.PATCH numbers, with an optional -prerelease and +metadata.
func validSemver(v string) bool {
	core, _, _ := strings.Cut(v, "+")
	core, _, _ = strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// majorMinor is etcd's version.Cluster: "3.7.0" → "3.7".
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}
