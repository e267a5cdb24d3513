// Package gateway is etcd's JSON API on the client port (--enable-grpc-gateway): the
// grpc-gateway v2 handlers that go.etcd.io/etcd/api/v3 generates (etcdserverpb/gw),
// and the v3lock and v3election paths etcd serves from its server module (our own
// handlers on the same runtime: lockelect.go), served under /v3/ with etcd's
// marshaler (proto field names, unpopulated fields left out, bytes in base64, unknown
// fields ignored), etcd's websocket proxy for streams
// (/v3/watch, /v3/lease/keepalive, /v3/election/observe; a plain POST streams newline-separated JSON) and the
// gateway's error bodies ({"error","code","message","details"}, code the gRPC code,
// HTTP status from it). The Authorization header reaches the gRPC services as the
// "authorization" metadata, as in etcd.
//
// It owns only this translation: every request becomes a gRPC call on the connection it
// is given (cmd dials this member's own gRPC server in process), so validation, errors
// and authentication are the gRPC services'. It must not import any package of ours
// but the generated messages of v3lock and v3election (lockelect/v3lockpb, v3electionpb).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	gw "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/tmc/grpc-websocket-proxy/wsproxy"
	etcdgw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
)

// PathPrefix is where the gateway is served (etcd's "/v3/"; "/v3beta/" is rewritten to
// it by the client port's access controller).
const PathPrefix = "/v3/"

// ErrNoConn is returned by New without a connection.
var ErrNoConn = errors.New("gateway: no gRPC connection")

// New returns the handler of PathPrefix, forwarding to conn: etcd's KV, Watch, Lease,
// Cluster, Maintenance and Auth services, and v3lock and v3election (lockelect.go: our
// own handlers, as etcd's are in its server module). ctx bounds the handlers'
// background work; conn is the caller's to close, after the handler stops serving.
func New(ctx context.Context, conn *grpc.ClientConn, lg *zap.Logger) (http.Handler, error) {
	if conn == nil {
		return nil, ErrNoConn
	}
	if lg == nil {
		lg = zap.NewNop()
	}
	mux := gw.NewServeMux(
		gw.WithMarshalerOption(gw.MIMEWildcard, &gw.HTTPBodyMarshaler{
			Marshaler: &gw.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
			},
		}),
	)
	for _, register := range []func(context.Context, *gw.ServeMux, *grpc.ClientConn) error{
		etcdgw.RegisterKVHandler,
		etcdgw.RegisterWatchHandler,
		etcdgw.RegisterLeaseHandler,
		etcdgw.RegisterClusterHandler,
		etcdgw.RegisterMaintenanceHandler,
		etcdgw.RegisterAuthHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if err := registerLockElection(mux, conn); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return wsproxy.WebsocketProxy(mux,
		// A websocket upgrade is a GET; the gateway's stream paths are POSTs.
		wsproxy.WithRequestMutator(func(_ *http.Request, out *http.Request) *http.Request {
			out.Method = http.MethodPost
			return out
		}),
		wsproxy.WithMaxRespBodyBufferSize(0x7fffffff),
		wsproxy.WithLogger(wsLogger{lg}),
	), nil
}

// InProcess serves gs on an in-memory listener and returns a connection to it, for New:
// no port, no TLS, whatever the client URLs are. gs must not be serving yet; the
// listener closes when gs stops. Receives are unbounded as on etcd's gateway
// connection; sends are bounded by gs's own receive limit.
func InProcess(gs *grpc.Server) (*grpc.ClientConn, error) {
	l := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(0x7fffffff)),
	)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	go func() { _ = gs.Serve(l) }() // ends when gs stops
	return conn, nil
}

// wsLogger is wsproxy's Logger on zap, as etcd's wsProxyZapLogger.
type wsLogger struct{ lg *zap.Logger }

func (w wsLogger) Warnln(i ...any)  { w.lg.Warn(fmt.Sprint(i...)) }
func (w wsLogger) Debugln(i ...any) { w.lg.Debug(fmt.Sprint(i...)) }
