package apply

import "errors"

// Errors the state machine answers with, with etcd's messages. grpcapi maps each to its
// rpctypes error with errors.Is.
var (
	ErrNoSpace       = errors.New("mvcc: database space exceeded")
	ErrLeaseNotFound = errors.New("lease not found")
	ErrTooManyOps    = errors.New("etcdserver: too many operations in txn request")
	ErrDuplicateKey  = errors.New("etcdserver: duplicate key given in txn request")
	ErrEmptyKey      = errors.New("etcdserver: key is not provided")
	// ErrKeyNotFound answers a put with ignore_value or ignore_lease on a key that does
	// not exist.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
	// ErrCorrupt answers every key-value request while a CORRUPT alarm is active.
	ErrCorrupt = errors.New("etcdserver: corrupt cluster")
	// ErrUnsupported answers a raft request of a kind this state machine does not
	// implement yet (leases, auth, cluster version). It changes nothing.
	ErrUnsupported = errors.New("apply: unsupported request")
	// ErrMalformedEntry answers an entry whose data is not an InternalRaftRequest. It
	// changes nothing but still advances the applied index.
	ErrMalformedEntry = errors.New("apply: malformed raft entry")
)
