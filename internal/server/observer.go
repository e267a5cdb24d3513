package server

import (
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/mvcc"
)

// Observer is told the server's events that etcd counts (etcd_server_*; cmd wires
// internal/metrics' implementation). Its methods run on the request and apply paths:
// they must be cheap and must not block.
type Observer interface {
	// ProposalFailed: a proposal this member made ended without being applied.
	ProposalFailed()
	// SlowApply: applying one hand-over of entries took longer than
	// --warning-apply-duration (etcd's default: 100ms).
	SlowApply()
	// SlowReadIndex: a ReadIndex round waited past its retry interval, got an answer
	// to an earlier round, or timed out (etcd's slow_read_indexes_total).
	SlowReadIndex()
	// ReadIndexFailed: raft refused a ReadIndex request (etcd's read_indexes_failed_total).
	ReadIndexFailed()
}

type nopObserver struct{}

func (nopObserver) ProposalFailed()  {}
func (nopObserver) SlowApply()       {}
func (nopObserver) SlowReadIndex()   {}
func (nopObserver) ReadIndexFailed() {}

func (s *Server) observer() Observer {
	if s.cfg.Observer == nil {
		return nopObserver{}
	}
	return s.cfg.Observer
}

// PendingProposals is the number of this member's proposals waiting for their result
// (etcd's etcd_server_proposals_pending).
func (s *Server) PendingProposals() int {
	s.waits.mu.Lock()
	defer s.waits.mu.Unlock()
	return len(s.waits.m)
}

// QuotaBackendBytes is the configured backend quota (etcd_server_quota_backend_bytes).
func (s *Server) QuotaBackendBytes() int64 { return s.cfg.QuotaBackendBytes }

// LeaseObserver, when the Observer implements it too, is told the leases this member
// granted, revoked and renewed for its clients (etcd's etcd_debugging_lease_*).
type LeaseObserver interface {
	LeaseGranted(ttl int64)
	LeaseRevoked()
	LeaseRenewed()
}

type nopLeaseObserver struct{}

func (nopLeaseObserver) LeaseGranted(int64) {}
func (nopLeaseObserver) LeaseRevoked()      {}
func (nopLeaseObserver) LeaseRenewed()      {}

func (s *Server) leaseObserver() LeaseObserver {
	if lo, ok := s.cfg.Observer.(LeaseObserver); ok {
		return lo
	}
	return nopLeaseObserver{}
}

// ApplyObserver, when the Observer implements it too, is told how long each request
// took to apply (etcd's etcd_server_apply_duration_seconds{version,op,success}).
type ApplyObserver interface {
	Applied(op string, success bool, took time.Duration)
}

// MemberObserver, when the Observer implements it too, is told the learner promotions
// this member made as leader (etcd's learner_promote_successes and _failures{Reason}).
type MemberObserver interface {
	LearnerPromoted()
	LearnerPromoteFailed(reason string)
}

// installApplyTiming times every applied request for an ApplyObserver.
func (s *Server) installApplyTiming() {
	ao, ok := s.cfg.Observer.(ApplyObserver)
	if !ok {
		return
	}
	s.app.SetRequestHook(func(r *pb.InternalRaftRequest, apply func() (*apply.Result, error)) (*apply.Result, error) {
		start := time.Now()
		res, err := apply()
		if err == nil && res != nil {
			// As etcd: a compacted revision is no failure of the apply.
			ao.Applied(applyOp(r), res.Err == nil || errors.Is(res.Err, mvcc.ErrCompacted), time.Since(start))
		}
		return res, err
	})
}

// applyOp is etcd's op label of apply_duration_seconds for r (its uberApplier's
// names): requestType's, but for AuthStatus and the unknown, which it leaves "unknown".
func applyOp(r *pb.InternalRaftRequest) string {
	if t := requestType(r); t != "AuthStatus" && t != "Unknown" {
		return t
	}
	return "unknown"
}

// requestType is etcd's type label of request_duration_seconds for a proposal of r
// (its getRequestType).
func requestType(r *pb.InternalRaftRequest) string {
	switch {
	case r.Range != nil:
		return "Range"
	case r.Put != nil:
		return "Put"
	case r.DeleteRange != nil:
		return "DeleteRange"
	case r.Txn != nil:
		return "Txn"
	case r.Compaction != nil:
		return "Compaction"
	case r.LeaseGrant != nil:
		return "LeaseGrant"
	case r.LeaseRevoke != nil:
		return "LeaseRevoke"
	case r.LeaseCheckpoint != nil:
		return "LeaseCheckpoint"
	case r.Alarm != nil:
		return "Alarm"
	case r.Authenticate != nil:
		return "Authenticate"
	case r.AuthEnable != nil:
		return "AuthEnable"
	case r.AuthDisable != nil:
		return "AuthDisable"
	case r.AuthStatus != nil:
		return "AuthStatus"
	case r.AuthUserAdd != nil:
		return "AuthUserAdd"
	case r.AuthUserDelete != nil:
		return "AuthUserDelete"
	case r.AuthUserChangePassword != nil:
		return "AuthUserChangePassword"
	case r.AuthUserGrantRole != nil:
		return "AuthUserGrantRole"
	case r.AuthUserGet != nil:
		return "AuthUserGet"
	case r.AuthUserRevokeRole != nil:
		return "AuthUserRevokeRole"
	case r.AuthUserList != nil:
		return "AuthUserList"
	case r.AuthRoleAdd != nil:
		return "AuthRoleAdd"
	case r.AuthRoleGrantPermission != nil:
		return "AuthRoleGrantPermission"
	case r.AuthRoleGet != nil:
		return "AuthRoleGet"
	case r.AuthRoleRevokePermission != nil:
		return "AuthRoleRevokePermission"
	case r.AuthRoleDelete != nil:
		return "AuthRoleDelete"
	case r.AuthRoleList != nil:
		return "AuthRoleList"
	case r.ClusterVersionSet != nil:
		return "ClusterVersionSet"
	case r.ClusterMemberAttrSet != nil:
		return "ClusterMemberAttrSet"
	case r.DowngradeInfoSet != nil:
		return "DowngradeInfoSet"
	case r.DowngradeVersionTest != nil:
		return "DowngradeVersionTest"
	}
	return "Unknown"
}

type nopMemberObserver struct{}

func (nopMemberObserver) LearnerPromoted()            {}
func (nopMemberObserver) LearnerPromoteFailed(string) {}

func (s *Server) memberObserver() MemberObserver {
	if mo, ok := s.cfg.Observer.(MemberObserver); ok {
		return mo
	}
	return nopMemberObserver{}
}

// HashObserver, when the Observer implements it too, is told how long each Hash and
// each HashKV (a client's or the corruption checks') took, as etcd's
// etcd_mvcc_hash_duration_seconds and hash_rev_duration_seconds.
type HashObserver interface {
	Hashed(took time.Duration)
	HashedKV(took time.Duration)
}

type nopHashObserver struct{}

func (nopHashObserver) Hashed(time.Duration)   {}
func (nopHashObserver) HashedKV(time.Duration) {}

func (s *Server) hashObserver() HashObserver {
	if ho, ok := s.cfg.Observer.(HashObserver); ok {
		return ho
	}
	return nopHashObserver{}
}

// RequestObserver, when the Observer implements it too, is told how long each request
// took this member, from its arrival to its answer (etcd's
// etcd_server_request_duration_seconds{type,success}): proposals by requestType,
// served reads as "Range" and "ReadonlyTxn". success is false for a request that
// failed before its answer was computed (no leader, timeout, a failed ReadIndex); an
// answer that is an error of the request (a compacted revision) is a success, as etcd.
type RequestObserver interface {
	Requested(typ string, success bool, took time.Duration)
}

type nopRequestObserver struct{}

func (nopRequestObserver) Requested(string, bool, time.Duration) {}

func (s *Server) requestObserver() RequestObserver {
	if ro, ok := s.cfg.Observer.(RequestObserver); ok {
		return ro
	}
	return nopRequestObserver{}
}
