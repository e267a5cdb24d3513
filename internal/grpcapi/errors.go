package grpcapi

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/server"
)

// errorMapping pairs a sentinel error of package server with the gRPC status etcd
// answers for it (etcd's server/etcdserver/api/v3rpc/util.go). Only server's errors
// are listed: server translates those of the layers below (apply, mvcc, raftnode,
// storage) into its own before returning them (server.TranslateError). It is a list,
// not a map: toGRPCError matches with errors.Is so that a wrapped sentinel is still
// recognised.
var errorMapping = []struct {
	sentinel error
	grpc     error
}{
	{server.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{server.ErrFutureRev, rpctypes.ErrGRPCFutureRev},

	{server.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{server.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{server.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
	{server.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{server.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{server.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{server.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{server.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},

	{server.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	// etcd's table holds the client-side rpctypes.ErrTooManyRequests here, which gRPC
	// sends as codes.Unknown; the client decodes it by message to the same error. We send
	// the status etcd meant (ResourceExhausted, same message).
	{server.ErrTooManyRequests, rpctypes.ErrGRPCRequestTooManyRequests},
	{server.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{server.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{server.ErrLeaderChanged, rpctypes.ErrGRPCLeaderChanged},
	{server.ErrCanceled, rpctypes.ErrGRPCCanceled},
	// Also what a lower layer stopping under a request during shutdown becomes; clients
	// treat it as retryable on another endpoint (codes.Unavailable).
	{server.ErrStopped, rpctypes.ErrGRPCStopped},
	{server.ErrTimeout, rpctypes.ErrGRPCTimeout},
	{server.ErrTimeoutDueToLeaderFail, rpctypes.ErrGRPCTimeoutDueToLeaderFail},
	{server.ErrTimeoutDueToConnectionLost, rpctypes.ErrGRPCTimeoutDueToConnectionLost},
	{server.ErrTimeoutWaitAppliedIndex, rpctypes.ErrGRPCTimeoutWaitAppliedIndex},
	{server.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},
	{server.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	{server.ErrNotCapable, rpctypes.ErrGRPCNotCapable},
	// Membership changes (the Cluster service).
	{server.ErrIDRemoved, rpctypes.ErrGRPCMemberNotFound},
	{server.ErrIDNotFound, rpctypes.ErrGRPCMemberNotFound},
	{server.ErrIDExists, rpctypes.ErrGRPCMemberExist},
	{server.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	{server.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{server.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{server.ErrNotEnoughStartedMembers, rpctypes.ErrGRPCMemberNotEnoughStarted},
	{server.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{server.ErrMemberBadURLs, rpctypes.ErrGRPCMemberBadURLs},
	// MoveLeader and Downgrade (etcd sends ErrTimeoutLeaderTransfer and
	// ErrUnknownMethod as codes.Unknown with their message, as toGRPCError does).
	{server.ErrBadLeaderTransferee, rpctypes.ErrGRPCBadLeaderTransferee},
	{server.ErrWrongDowngradeVersionFormat, rpctypes.ErrGRPCWrongDowngradeVersionFormat},
	{server.ErrInvalidDowngradeTargetVersion, rpctypes.ErrGRPCInvalidDowngradeTargetVersion},
	{server.ErrClusterVersionUnavailable, rpctypes.ErrGRPCClusterVersionUnavailable},
	{server.ErrNoInflightDowngrade, rpctypes.ErrGRPCNoInflightDowngrade},
	// Ours, for features not built yet (and request kinds the state machine does not
	// implement yet): clients see codes.Unimplemented.
	{server.ErrUnimplemented, status.Error(codes.Unimplemented, server.ErrUnimplemented.Error())},
}

// toGRPCError turns an error of the backend into the gRPC status error an etcd server
// would send, so clientv3 decodes it into the same rpctypes error:
//
//   - a known sentinel (errors.Is, so wrapping is fine) -> its rpctypes.ErrGRPC* status;
//   - context.Canceled / context.DeadlineExceeded -> codes.Canceled "context canceled" /
//     codes.DeadlineExceeded "context deadline exceeded", what etcd's gRPC server sends
//     (etcd lets grpc-go convert them with status.FromContextError);
//   - an error that already carries a gRPC status (e.g. codes.Unimplemented) -> unchanged;
//   - anything else -> codes.Unknown with the error's message.
//
// nil maps to nil.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range errorMapping {
		if errors.Is(err, m.sentinel) {
			return m.grpc
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	return status.Error(codes.Unknown, err.Error())
}
