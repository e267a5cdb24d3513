package grpcapi

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// The per-client request rate limit (ours, off by default: Options.RequestRate): every
// client IP address has a token bucket of RequestRate requests per second holding at
// most RequestBurst; a unary call or the start of a stream that finds it empty fails at
// once with etcd's "etcdserver: too many requests" (ResourceExhausted, which clientv3
// does not retry) and is counted in metastore_rate_limited_requests_total. Calls from
// this member's in-process connections are not limited, except those of the JSON
// gateway, which are limited by the address its HTTP client connected from (the
// gateway's X-Forwarded-For metadata). Buckets idle for a minute are dropped.

// RateLimitedMetricName is the counter of requests refused by the rate limit.
const RateLimitedMetricName = "metastore_rate_limited_requests_total"

// ConnectionsRefusedMetricName is the counter of client connections closed by the
// connection limit (cmd's --max-client-connections, clientport.LimitListener).
const ConnectionsRefusedMetricName = "metastore_connections_refused_total"

// ConnectionsRefused returns the counter of ConnectionsRefusedMetricName registered
// with reg (the one already there, if any; unregistered with a nil reg).
func ConnectionsRefused(reg prometheus.Registerer, lg *zap.Logger) prometheus.Counter {
	if lg == nil {
		lg = zap.NewNop()
	}
	return register(reg, lg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: ConnectionsRefusedMetricName,
		Help: "Client connections closed at once because --max-client-connections were open.",
	}))
}

// bucketIdle is how long an unused client bucket is kept.
const bucketIdle = time.Minute

// rateLimiter holds one token bucket per client address.
type rateLimiter struct {
	limit   rate.Limit
	burst   int
	refused prometheus.Counter

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

func newRateLimiter(perSecond float64, burst int, reg prometheus.Registerer, lg *zap.Logger) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(perSecond))
	}
	return &rateLimiter{
		limit: rate.Limit(perSecond),
		burst: burst,
		refused: register(reg, lg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: RateLimitedMetricName,
			Help: "Client requests refused with 'etcdserver: too many requests' by the per-client rate limit (--client-request-rate).",
		})),
		buckets: map[string]*bucket{},
	}
}

// allow takes a token of the caller's bucket; false when it is empty.
func (rl *rateLimiter) allow(ctx context.Context) bool {
	key, limited := clientKey(ctx)
	if !limited {
		return true
	}
	now := time.Now()
	rl.mu.Lock()
	if now.Sub(rl.swept) > bucketIdle {
		for k, b := range rl.buckets {
			if now.Sub(b.used) > bucketIdle {
				delete(rl.buckets, k)
			}
		}
		rl.swept = now
	}
	b := rl.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		rl.buckets[key] = b
	}
	b.used = now
	ok := b.lim.AllowN(now, 1)
	rl.mu.Unlock()
	if !ok {
		rl.refused.Inc()
	}
	return ok
}

// clientKey is the address a call is limited by: the host of the peer's address; for
// an in-process peer, the HTTP client's address the gateway forwards, or nothing (not
// limited).
func clientKey(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", false
	}
	if p.Addr.Network() == "bufconn" { // this member's own in-process clients
		// grpc-gateway appends the HTTP peer's own address after whatever the request
		// carried (its X-Forwarded-For header, or a Grpc-Metadata-X-Forwarded-For), so
		// only the last entry of the last value is the client's: the rest is the
		// client's to choose and would give it a fresh bucket on every request.
		v := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for")
		if len(v) == 0 {
			return "", false
		}
		last := v[len(v)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if last = strings.TrimSpace(last); last != "" {
			return last, true
		}
		return "", false
	}
	s := p.Addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host, true
	}
	return s, true
}

func (rl *rateLimiter) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !rl.allow(ctx) {
			return nil, rpctypes.ErrGRPCRequestTooManyRequests
		}
		return handler(ctx, req)
	}
}

func (rl *rateLimiter) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !rl.allow(ss.Context()) {
			return rpctypes.ErrGRPCRequestTooManyRequests
		}
		return handler(srv, ss)
	}
}

// keepaliveOptions are etcd's: the enforcement policy only with a positive min time,
// the server pings only with a positive interval and timeout (otherwise gRPC's own
// defaults apply, as with etcd's 0).
func keepaliveOptions(opts Options) []grpc.ServerOption {
	var out []grpc.ServerOption
	if opts.KeepAliveMinTime > 0 {
		out = append(out, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: opts.KeepAliveMinTime}))
	}
	if opts.KeepAliveInterval > 0 && opts.KeepAliveTimeout > 0 {
		out = append(out, grpc.KeepaliveParams(keepalive.ServerParameters{Time: opts.KeepAliveInterval, Timeout: opts.KeepAliveTimeout}))
	}
	return out
}
