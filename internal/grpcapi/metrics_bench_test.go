package grpcapi

import (
	"context"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// BenchmarkMetricsInterceptor is the per-call cost of go-grpc-middleware's server
// metrics at --metrics basic (counters) and extensive (plus grpc_server_handling_seconds),
// around a handler that does nothing: the difference is what extensive adds to every
// call (docs/BENCHMARKS.md compares it with a put's cost).
func BenchmarkMetricsInterceptor(b *testing.B) {
	for _, level := range []string{"basic", "extensive"} {
		b.Run(level, func(b *testing.B) {
			var opts []grpcprom.ServerMetricsOption
			if level == "extensive" {
				opts = append(opts, grpcprom.WithServerHandlingTimeHistogram())
			}
			icpt := grpcprom.NewServerMetrics(opts...).UnaryServerInterceptor()
			info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
			req := &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}
			handler := func(context.Context, any) (any, error) { return &pb.PutResponse{}, nil }
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := icpt(ctx, req, info, handler); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
