package grpcapi

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// logRequestStats is etcd's v3rpc logUnaryRequestStats: a unary call that took longer
// than warnLatency (--warning-unary-request-duration) is logged at warn level as
// "request stats", with etcd's fields; with the logger at debug level every call is,
// at debug level. Put and txn values are redacted (etcd's loggable requests). Counts and
// sizes are etcd's: a range's response count, a put's request count 1, a txn's
// request count and size those of the branch it took, -1 for other calls.
func logRequestStats(ctx context.Context, lg *zap.Logger, warnLatency time.Duration, method string, start time.Time, req, resp any) {
	took := time.Since(start)
	debug := lg.Core().Enabled(zapcore.DebugLevel)
	if !debug && took <= warnLatency {
		return
	}
	remote := "No remote client info."
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	var reqCount, respCount int64
	var reqSize, respSize int
	var content string
	switch rs := resp.(type) {
	case *pb.RangeResponse:
		if r, ok := req.(*pb.RangeRequest); ok {
			reqSize, content = proto.Size(r), r.String()
		}
		if rs != nil {
			respCount, respSize = rs.GetCount(), proto.Size(rs)
		}
	case *pb.PutResponse:
		if r, ok := req.(*pb.PutRequest); ok {
			reqCount, reqSize, content = 1, proto.Size(r), pb.NewLoggablePutRequest(r).String()
		}
		if rs != nil {
			respSize = proto.Size(rs)
		}
	case *pb.DeleteRangeResponse:
		if r, ok := req.(*pb.DeleteRangeRequest); ok {
			reqSize, content = proto.Size(r), r.String()
		}
		if rs != nil {
			respCount, respSize = rs.GetDeleted(), proto.Size(rs)
		}
	case *pb.TxnResponse:
		if r, ok := req.(*pb.TxnRequest); ok && rs != nil {
			ops := r.GetFailure()
			if rs.GetSucceeded() {
				ops = r.GetSuccess()
			}
			reqCount = int64(len(ops))
			for _, op := range ops {
				reqSize += proto.Size(op)
			}
			content = pb.NewLoggableTxnRequest(r).String()
		}
		if rs != nil {
			respSize = proto.Size(rs)
		}
	default:
		reqCount, reqSize, respCount, respSize = -1, -1, -1, -1
	}
	fields := []zap.Field{
		zap.Time("start time", start),
		zap.Duration("time spent", took),
		zap.String("remote", remote),
		zap.String("response type", method),
		zap.Int64("request count", reqCount),
		zap.Int("request size", reqSize),
		zap.Int64("response count", respCount),
		zap.Int("response size", respSize),
		zap.String("request content", content),
	}
	if debug {
		lg.Debug("request stats", fields...)
	} else {
		lg.Warn("request stats", fields...)
	}
}
