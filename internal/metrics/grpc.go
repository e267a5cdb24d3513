package metrics

import (
	"context"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// streamingMethods are etcd's client-streaming gRPC methods, counted as "stream" in
// etcd_server_client_requests_total (the others as "unary").
var streamingMethods = map[string]bool{
	"/etcdserverpb.Watch/Watch":          true,
	"/etcdserverpb.Lease/LeaseKeepAlive": true,
	"/etcdserverpb.Maintenance/Snapshot": true,
	"/v3electionpb.Election/Observe":     true,
	"/grpc.health.v1.Health/Watch":       true,
}

// GRPC is a gRPC stats.Handler for etcd's client-side figures
// (etcd_network_client_grpc_{sent,received}_bytes_total, the message payloads as
// etcd's codec counts them; etcd_server_client_requests_total{type,client_api_version})
// and the original design's metastore_requests_in_flight and
// metastore_open_connections. Give it to grpc.StatsHandler.
type GRPC struct {
	sent, received prometheus.Counter
	requests       *prometheus.CounterVec
	inFlight       prometheus.Gauge
	conns          prometheus.Gauge
}

// NewGRPC registers the collectors of the gRPC stats handler on reg.
func NewGRPC(reg prometheus.Registerer) *GRPC {
	g := &GRPC{
		sent:     counter("etcd", "network", "client_grpc_sent_bytes_total", "The total number of bytes sent to grpc clients."),
		received: counter("etcd", "network", "client_grpc_received_bytes_total", "The total number of bytes received from grpc clients."),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "server", "client_requests_total",
			"The total number of client requests per client version.")), []string{"type", "client_api_version"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts(opts("metastore", "", "requests_in_flight", "gRPC calls being served now."))),
		conns:    prometheus.NewGauge(prometheus.GaugeOpts(opts("metastore", "", "open_connections", "Open client gRPC connections."))),
	}
	reg.MustRegister(g.sent, g.received, g.requests, g.inFlight, g.conns)
	return g
}

// TagRPC counts the request by its client's API version (metadata
// "client-api-version", "unknown" without it, as etcd).
func (g *GRPC) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	typ := "unary"
	if streamingMethods[info.FullMethodName] {
		typ = "stream"
	}
	ver := "unknown"
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vs := md.Get("client-api-version"); len(vs) > 0 && utf8.ValidString(vs[0]) {
			ver = vs[0]
		}
	}
	g.requests.WithLabelValues(typ, ver).Inc()
	return ctx
}

// HandleRPC counts payload bytes and calls in flight.
func (g *GRPC) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch s := s.(type) {
	case *stats.InPayload:
		g.received.Add(float64(s.Length))
	case *stats.OutPayload:
		g.sent.Add(float64(s.Length))
	case *stats.Begin:
		g.inFlight.Inc()
	case *stats.End:
		g.inFlight.Dec()
	}
}

// TagConn implements stats.Handler.
func (g *GRPC) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn counts open connections.
func (g *GRPC) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		g.conns.Inc()
	case *stats.ConnEnd:
		g.conns.Dec()
	}
}
