package server

import "errors"

// Errors the server returns, with etcd's messages (etcdserver/errors). grpcapi maps each
// to its rpctypes error with errors.Is.
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
)

// ErrCanceled is returned when the client cancelled a request while it was in flight.
var ErrCanceled = errors.New("etcdserver: request cancelled")
