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
)
