package apply

import (
	"errors"

	"github.com/metastore/metastore/internal/lease"
)

// Errors the state machine answers with, with etcd's messages. grpcapi maps each to its
// rpctypes error with errors.Is.
var (
	ErrNoSpace       = errors.New("mvcc: database space exceeded")
	ErrLeaseNotFound = lease.ErrLeaseNotFound
	// ErrLeaseExists answers a LeaseGrant of an ID in use; ErrLeaseTTLTooLarge one whose
	// TTL is above lease.MaxTTL.
	ErrLeaseExists      = lease.ErrLeaseExists
	ErrLeaseTTLTooLarge = lease.ErrLeaseTTLTooLarge
	ErrTooManyOps       = errors.New("etcdserver: too many operations in txn request")
	ErrDuplicateKey     = errors.New("etcdserver: duplicate key given in txn request")
	ErrEmptyKey         = errors.New("etcdserver: key is not provided")
	// ErrKeyNotFound answers a put with ignore_value or ignore_lease on a key that does
	// not exist.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
	// ErrCorrupt answers every key-value request while a CORRUPT alarm is active.
	ErrCorrupt = errors.New("etcdserver: corrupt cluster")
	// ErrUnsupported is what CheckCapable and ReadTxn refuse a request with that this
	// build does not implement (auth), before it is proposed. Such a request in
	// a committed entry is not answered: it is fatal (ErrUnknownRequest).
	ErrUnsupported = errors.New("apply: unsupported request")
	// ErrNotCapable answers a request whose type needs a cluster version above the one
	// applied (see version.go), with etcd's message (rpctypes.ErrGRPCNotCapable). It
	// changes nothing.
	ErrNotCapable = errors.New("etcdserver: not capable")
	// ErrInvalidVersion answers a ClusterVersionSet whose version does not parse.
	ErrInvalidVersion = errors.New("apply: invalid version")

	// ErrUnknownRequest is fatal: a committed entry holds a request this build does not
	// apply. The member stops rather than diverge from those that can apply it.
	ErrUnknownRequest = errors.New("apply: request not implemented by this build")
	// ErrClusterVersionTooHigh is fatal: the cluster runs at a version above
	// LocalVersion, which this build cannot serve (etcd's "invalid downgrade").
	ErrClusterVersionTooHigh = errors.New("apply: cluster version is above this build's version")
	// ErrMalformedEntry answers an entry whose data is not an InternalRaftRequest. It
	// changes nothing but still advances the applied index.
	ErrMalformedEntry = errors.New("apply: malformed raft entry")
)
