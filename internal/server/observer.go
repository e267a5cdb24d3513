package server

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
