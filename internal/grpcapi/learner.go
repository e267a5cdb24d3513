package grpcapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// LearnerReporter is optionally implemented by a Backend: whether this member is a
// learner now. A learner serves only what etcd lets a learner serve: Status and
// serializable ranges among unary calls, the Snapshot stream among streams; every other
// call fails with etcd's ErrGRPCNotSupportedForLearner (clientv3 then tries another
// endpoint). It must be cheap and must not block.
type LearnerReporter interface {
	IsLearner() bool
}

// snapshotMethod is the one stream a learner serves.
const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

// supportedForLearner is etcd's isRPCSupportedForLearner.
func supportedForLearner(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.GetSerializable()
	default:
		return false
	}
}

func learnerUnary(lr LearnerReporter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if lr.IsLearner() && !supportedForLearner(req) {
			return nil, rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(ctx, req)
	}
}

func learnerStream(lr LearnerReporter) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if lr.IsLearner() && info.FullMethod != snapshotMethod {
			return rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(srv, ss)
	}
}
