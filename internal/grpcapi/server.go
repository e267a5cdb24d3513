// Package grpcapi is the client-facing gRPC layer of MetaStore, the counterpart of etcd's
// server/etcdserver/api/v3rpc: for every RPC it validates the request exactly as etcd
// does, calls one Backend method, maps the backend's error to etcd's gRPC status
// (toGRPCError) and fills the response header. It also provides the HTTP endpoints that
// share the client port (/metrics, /health, /version; see http.go); clientport serves
// both on the port.
//
// It owns request validation, error mapping, gRPC server options and interceptors
// (recovery, logging, prometheus). It must not touch storage, raft or the state
// machine: everything goes through Backend, and of this module it imports package
// server alone (internal/lint enforces it). It registers no global state: metrics go
// to the Registerer given in Options.
package grpcapi

import (
	"context"
	"errors"
	"math"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Backend is what the gRPC layer needs from the server. Errors should be (or wrap) the
// sentinel errors of package server (which translates those of the layers below it),
// or context errors; anything else reaches the client as codes.Unknown. An error that already is a gRPC status error is
// passed through unchanged.
//
// Response headers may be nil or partly filled: the gRPC layer sets ClusterId, MemberId
// and RaftTerm from Header(), and Revision from Header() when the response left it 0.
type Backend interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error)
	// MemberList returns the members; linearizable asks for a read through raft.
	MemberList(ctx context.Context, linearizable bool) ([]*pb.Member, error)
	// Status fills Version, DbSize, DbSizeInUse, Leader, RaftIndex, RaftTerm,
	// RaftAppliedIndex, IsLearner and Errors (the active alarms as strings).
	Status(ctx context.Context) (*pb.StatusResponse, error)
	Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error)
	// HashKV hashes the key-value history at rev (0: current); ErrFutureRev, ErrCompacted.
	HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error)
	// Header returns ClusterId, MemberId, RaftTerm and the current store Revision. It is
	// called once per response: it must be cheap and must not block.
	Header() *pb.ResponseHeader
}

// LeaderReporter is optionally implemented by a Backend. Leader returns the ID of the
// leader this member knows, 0 if none; it must be cheap and must not block. With it,
// requests carrying etcd's "hasleader=true" metadata (clientv3.WithRequireLeader) fail
// with ErrGRPCNoLeader when there is no leader, and /health checks the leader without
// a Status call.
type LeaderReporter interface {
	Leader() uint64
}

// AlarmLister is optionally implemented by a Backend: the active alarms as this member
// knows them, without a raft round. /health uses it; without it /health asks Alarm GET.
type AlarmLister interface {
	Alarms() []*pb.AlarmMember
}

// Defaults, etcd's (embed/config.go).
const (
	DefaultMaxRequestBytes      = 1536 * 1024 // 1.5 MiB
	DefaultMaxTxnOps            = 128
	DefaultMaxConcurrentStreams = math.MaxUint32
	DefaultKeepAliveMinTime     = 5 * time.Second
	DefaultKeepAliveInterval    = 2 * time.Hour
	DefaultKeepAliveTimeout     = 20 * time.Second
	DefaultWarningUnaryRequest  = 300 * time.Millisecond

	// grpcOverheadBytes is added to MaxRequestBytes for the gRPC receive limit, so that
	// a request just under the limit is not refused by gRPC for its framing (etcd's
	// MaxRequestBytesWithOverhead).
	grpcOverheadBytes = 512 * 1024
)

// Options configure NewServer. The zero value is usable: zero fields take the defaults
// above, a nil Logger logs nothing and a nil Registry registers no metrics.
type Options struct {
	Logger *zap.Logger
	// MaxRequestBytes is the largest request the server accepts (etcd's
	// --max-request-bytes); gRPC's receive limit is this plus 512 KiB.
	MaxRequestBytes uint
	// MaxTxnOps bounds the ops of each txn branch (etcd's --max-txn-ops).
	MaxTxnOps uint
	// MaxConcurrentStreams per client connection (etcd's --max-concurrent-streams).
	MaxConcurrentStreams uint32
	// KeepAliveMinTime: clients pinging more often are disconnected
	// (etcd's --grpc-keepalive-min-time).
	KeepAliveMinTime time.Duration
	// KeepAliveInterval and KeepAliveTimeout: server-to-client pings
	// (etcd's --grpc-keepalive-interval, --grpc-keepalive-timeout). A negative value
	// of any of the three is etcd's 0: that setting is left to gRPC (limits.go).
	KeepAliveInterval time.Duration
	KeepAliveTimeout  time.Duration
	// WarningUnaryRequestDuration: a unary request slower than this is logged at warn
	// level with its (value-redacted) content (etcd's --warning-unary-request-duration).
	WarningUnaryRequestDuration time.Duration
	// Registry receives the gRPC metrics (grpc_server_started_total,
	// grpc_server_handled_total, grpc_server_msg_received_total,
	// grpc_server_msg_sent_total, and grpc_req_panics_recovered_total). Metrics already
	// registered there by an earlier NewServer are reused.
	Registry prometheus.Registerer
	// HandlingTimeHistogram adds grpc_server_handling_seconds (etcd's
	// --metrics=extensive).
	HandlingTimeHistogram bool
	// StatsHandler, if set, sees every connection and call (cmd gives it
	// internal/metrics' gRPC figures: client bytes and requests, in flight, connections).
	StatsHandler stats.Handler

	// NewWatchStream opens the watches of one Watch stream (cmd wires the watch hub
	// here); nil: Watch answers codes.Unimplemented.
	NewWatchStream func() WatchStream
	// WatchProgressNotifyInterval is etcd's --watch-progress-notify-interval (0: 10m;
	// at least 100ms).
	WatchProgressNotifyInterval time.Duration
	// ElectionTimeout paces the leader checks of Watch streams that require a leader
	// (they end with ErrGRPCNoLeader after three checks in a row find none); 0: 1s.
	ElectionTimeout time.Duration

	// RequestRate and RequestBurst: the per-client request rate limit (limits.go);
	// RequestRate 0 is no limit.
	RequestRate  float64
	RequestBurst int
	// ServerOptions are added to the gRPC server's (e.g. the tracing stats handler).
	ServerOptions []grpc.ServerOption
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps = DefaultMaxTxnOps
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if o.KeepAliveMinTime == 0 {
		o.KeepAliveMinTime = DefaultKeepAliveMinTime
	}
	if o.KeepAliveInterval == 0 {
		o.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if o.KeepAliveTimeout == 0 {
		o.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	if o.WarningUnaryRequestDuration == 0 {
		o.WarningUnaryRequestDuration = DefaultWarningUnaryRequest
	}
	return o
}

// NewServer returns a gRPC server with the etcd services registered: KV, Maintenance
// and Cluster served by b; Watch served by opts.NewWatchStream's streams (Unimplemented
// without it); Lease and Auth answering codes.Unimplemented; and the
// standard gRPC health service reporting SERVING. The caller serves it (clientport.Serve,
// or Serve) and stops it (Stop or GracefulStop).
//
// Interceptors, outermost first: prometheus metrics, slow-request warning (unary),
// debug logging of every call (installed only when the logger is enabled at debug
// level), learner check (when b is a LearnerReporter), require-leader check (when b is
// a LeaderReporter), panic recovery. A panic in
// a handler is logged with its value and stack, counted in
// grpc_req_panics_recovered_total, and answered as codes.Internal (without the panic
// value); the server keeps running.
// streamWorkers is the number of goroutines kept to run calls (grpc.NumStreamWorkers).
const streamWorkers = 256

func NewServer(b Backend, opts Options) *grpc.Server {
	opts = opts.withDefaults()
	lg := opts.Logger

	var promOpts []grpcprom.ServerMetricsOption
	if opts.HandlingTimeHistogram {
		// etcd's buckets for --metrics=extensive (prometheus.DefBuckets).
		promOpts = append(promOpts, grpcprom.WithServerHandlingTimeHistogram())
	}
	metrics := register(opts.Registry, lg, grpcprom.NewServerMetrics(promOpts...))
	panics := register(opts.Registry, lg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grpc_req_panics_recovered_total",
		Help: "Total number of gRPC requests whose handler panicked (answered with codes.Internal).",
	}))
	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		panics.Inc()
		method, _ := grpc.Method(ctx)
		lg.Error("panic in gRPC handler, recovered",
			zap.String("method", method), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
		return status.Errorf(codes.Internal, "metastore: internal error in %s", method)
	})

	unary := []grpc.UnaryServerInterceptor{metrics.UnaryServerInterceptor(), slowRequestInterceptor(lg, opts.WarningUnaryRequestDuration)}
	stream := []grpc.StreamServerInterceptor{metrics.StreamServerInterceptor()}
	if lg.Core().Enabled(zapcore.DebugLevel) {
		logOpts := []logging.Option{
			logging.WithLogOnEvents(logging.FinishCall),
			logging.WithLevels(func(codes.Code) logging.Level { return logging.LevelDebug }),
		}
		unary = append(unary, logging.UnaryServerInterceptor(zapLogger(lg), logOpts...))
		stream = append(stream, logging.StreamServerInterceptor(zapLogger(lg), logOpts...))
	}
	if lr, ok := b.(LearnerReporter); ok { // before require-leader, as etcd's
		unary = append(unary, learnerUnary(lr))
		stream = append(stream, learnerStream(lr))
	}
	if lr, ok := b.(LeaderReporter); ok {
		unary = append(unary, requireLeaderUnary(lr))
		stream = append(stream, requireLeaderStream(lr))
	}
	if opts.RequestRate > 0 {
		rl := newRateLimiter(opts.RequestRate, opts.RequestBurst, opts.Registry, lg)
		unary = append(unary, rl.unary())
		stream = append(stream, rl.stream())
	}
	unary = append(unary, recovery.UnaryServerInterceptor(onPanic))
	stream = append(stream, recovery.StreamServerInterceptor(onPanic))
	ac, _ := b.(AuthChecker) // after recovery: the guard's checks run inside it (guard.go)
	authFailures := newAuthFailures(opts.Registry, &opts)
	unary = append(unary, authUnary(ac, authFailures))
	stream = append(stream, authStream(ac, authFailures))

	var extra []grpc.ServerOption
	if opts.StatsHandler != nil {
		extra = append(extra, grpc.StatsHandler(opts.StatsHandler))
	}
	extra = append(extra, keepaliveOptions(opts)...)
	extra = append(extra, opts.ServerOptions...)
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(int(opts.MaxRequestBytes + grpcOverheadBytes)),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		// Long-lived workers run the calls, so a call does not start on a fresh
		// goroutine whose stack grows (copied each time) to what a Pebble iterator
		// needs: that was a fifth of the CPU of linearizable gets with 1000 clients.
		// When every worker is busy gRPC starts a goroutine, as without them.
		grpc.NumStreamWorkers(streamWorkers),
	}, extra...)...)

	hdr := header{b: b}
	pb.RegisterKVServer(gs, &kvServer{b: b, hdr: hdr, maxTxnOps: int(opts.MaxTxnOps)})
	pb.RegisterMaintenanceServer(gs, &maintenanceServer{b: b, hdr: hdr, lg: lg})
	pb.RegisterClusterServer(gs, &clusterServer{b: b, hdr: hdr})
	if opts.NewWatchStream != nil {
		pb.RegisterWatchServer(gs, newWatchServer(b, opts))
	} else {
		pb.RegisterWatchServer(gs, pb.UnimplementedWatchServer{})
	}
	pb.RegisterLeaseServer(gs, newLeaseServer(b, hdr)) // Unimplemented unless b is a LeaseBackend
	pb.RegisterAuthServer(gs, newAuthServer(b, hdr))   // Unimplemented unless b is an AuthBackend
	hs := health.NewServer()                           // the "" service starts SERVING
	healthpb.RegisterHealthServer(gs, hs)

	metrics.InitializeMetrics(gs) // zero series for every method, as etcd exposes
	return gs
}

// register registers c with reg and returns it, or returns the collector of the same
// description already registered there. With a nil reg, c is returned unregistered.
func register[C prometheus.Collector](reg prometheus.Registerer, lg *zap.Logger, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		lg.Warn("grpcapi: cannot register metrics", zap.Error(err))
	}
	return c
}
