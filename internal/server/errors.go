package server

import "errors"

// Errors the server returns, with etcd's messages (etcdserver/errors). They are the
// whole error vocabulary of Server's exported methods: an error of a layer below
// (apply, mvcc, raftnode, storage) is translated into one of these before it leaves
// the package (translate.go), so grpcapi maps only these, with errors.Is.
var (
	ErrStopped                    = errors.New("etcdserver: server stopped")
	ErrTimeout                    = errors.New("etcdserver: request timed out")
	ErrTimeoutDueToLeaderFail     = errors.New("etcdserver: request timed out, possibly due to previous leader failure")
	ErrTimeoutDueToConnectionLost = errors.New("etcdserver: request timed out, possibly due to connection lost")
	ErrTimeoutWaitAppliedIndex    = errors.New("etcdserver: request timed out, waiting for the applied index took too long")
	ErrLeaderChanged              = errors.New("etcdserver: leader changed")
	ErrNoLeader                   = errors.New("etcdserver: no leader")
	ErrNotLeader                  = errors.New("etcdserver: not leader")
	ErrTooManyRequests            = errors.New("etcdserver: too many requests")
	ErrRequestTooLarge            = errors.New("etcdserver: request is too large")
	ErrUnhealthy                  = errors.New("etcdserver: unhealthy cluster")
	ErrCorrupt                    = errors.New("etcdserver: corrupt cluster")
	ErrNotCapable                 = errors.New("etcdserver: not capable")
)

// ErrUnimplemented answers requests for features that do not exist yet (it is also
// what apply's ErrUnsupported becomes).
var ErrUnimplemented = errors.New("etcdserver: not implemented")

// ErrCanceled is returned when the client cancelled a request while it was in flight.
var ErrCanceled = errors.New("etcdserver: request cancelled")

// Errors of the state machine and the store, as the server hands them on (the
// translation of apply's and mvcc's sentinels; same messages).
var (
	// ErrCompacted: the revision asked for is below the compacted revision.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the revision asked for is above the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrNoSpace: the NOSPACE alarm is active (or the quota is exceeded); writes are refused.
	ErrNoSpace       = errors.New("mvcc: database space exceeded")
	ErrLeaseNotFound = errors.New("lease not found")
	ErrTooManyOps    = errors.New("etcdserver: too many operations in txn request")
	ErrDuplicateKey  = errors.New("etcdserver: duplicate key given in txn request")
	ErrEmptyKey      = errors.New("etcdserver: key is not provided")
	// ErrKeyNotFound: a put with ignore_value or ignore_lease on a key that does not exist.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
)
