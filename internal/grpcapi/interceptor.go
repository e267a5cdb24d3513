package grpcapi

import (
	"context"
	"fmt"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// requiresLeader reports whether the caller asked, with etcd's "hasleader" metadata,
// to be refused when the member has no leader.
// ValueFromIncomingContext copies only this key's values, not the whole metadata map as
// FromIncomingContext does: this runs for every request.
func requiresLeader(ctx context.Context) bool {
	ks := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(ks) > 0 && ks[0] == rpctypes.MetadataHasLeader
}

// requireLeaderUnary answers ErrGRPCNoLeader, as etcd does, to a request that requires
// a leader when there is none.
func requireLeaderUnary(lr LeaderReporter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if requiresLeader(ctx) && lr.Leader() == 0 {
			return nil, rpctypes.ErrGRPCNoLeader
		}
		return handler(ctx, req)
	}
}

// requireLeaderStream checks at stream start only. A Watch stream that requires a
// leader also ends when the leader is lost later (watchServer.monitorLeader).
func requireLeaderStream(lr LeaderReporter) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if requiresLeader(ss.Context()) && lr.Leader() == 0 {
			return rpctypes.ErrGRPCNoLeader
		}
		return handler(srv, ss)
	}
}

// slowRequestInterceptor logs etcd's "request stats" for a unary request: at warn
// level when it took longer than threshold, at debug level otherwise (slowlog.go).
func slowRequestInterceptor(lg *zap.Logger, threshold time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logRequestStats(ctx, lg, threshold, info.FullMethod, start, req, resp)
		return resp, err
	}
}

func protoSize(m any) int {
	if pm, ok := m.(proto.Message); ok {
		return proto.Size(pm)
	}
	return -1
}

// zapLogger adapts a zap logger to the go-grpc-middleware logging interface.
func zapLogger(lg *zap.Logger) logging.Logger {
	return logging.LoggerFunc(func(_ context.Context, lvl logging.Level, msg string, fields ...any) {
		zf := make([]zap.Field, 0, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			zf = append(zf, zap.Any(fmt.Sprint(fields[i]), fields[i+1]))
		}
		var zl zapcore.Level
		switch lvl {
		case logging.LevelDebug:
			zl = zapcore.DebugLevel
		case logging.LevelInfo:
			zl = zapcore.InfoLevel
		case logging.LevelWarn:
			zl = zapcore.WarnLevel
		default:
			zl = zapcore.ErrorLevel
		}
		lg.Log(zl, msg, zf...)
	})
}
