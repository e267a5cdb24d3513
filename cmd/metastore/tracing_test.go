package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	tracesdk "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	otlptrace "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/metastore/metastore/internal/config"
)

// collector is an OTLP/gRPC trace collector keeping every span it is sent.
type collector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*otlptrace.Span
	attrs []string // service.name and service.instance.id values seen
}

func (c *collector) Export(_ context.Context, r *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range r.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			c.attrs = append(c.attrs, a.GetKey()+"="+a.GetValue().GetStringValue())
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// tree renders the spans of one trace as "name<-parent name" pairs.
func (c *collector) tree(traceID []byte) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	byID := map[string]string{}
	for _, s := range c.spans {
		if string(s.GetTraceId()) == string(traceID) {
			byID[string(s.GetSpanId())] = s.GetName()
		}
	}
	out := map[string]string{}
	for _, s := range c.spans {
		if string(s.GetTraceId()) != string(traceID) {
			continue
		}
		parent, ok := byID[string(s.GetParentSpanId())]
		if !ok {
			parent = fmt.Sprintf("remote:%x", s.GetParentSpanId())
		}
		out[s.GetName()] = parent
	}
	return out
}

// A put and a linearizable get carrying a sampled W3C trace context (sampling rate 0:
// only the client's decision samples them) are traced under the client's span:
// gRPC server span → propose → commit, apply for the put; gRPC server span →
// linearizable_read, range for the get; exported over OTLP/gRPC with the service name
// and instance ID.
func TestTracingSpanTreeOfPutAndGet(t *testing.T) {
	col := &collector{}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(cl) }()
	defer gs.Stop()

	ports := make([]int, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cfg, _, err := config.Parse([]string{
		"--data-dir", t.TempDir(), "--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default=" + peer,
		"--enable-distributed-tracing", "--distributed-tracing-address", cl.Addr().String(),
		"--distributed-tracing-service-name", "ms-test", "--distributed-tracing-instance-id", "i-1",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := startMember(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			m.close(context.Background())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	putTrace := []byte("0123456789abcdef")
	getTrace := []byte("fedcba9876543210")
	traced := func(id []byte) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "traceparent", fmt.Sprintf("00-%x-00f067aa0ba902b7-01", id))
	}
	if _, err := cli.Put(traced(putTrace), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(traced(getTrace), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "untraced", "v"); err != nil { // not sampled: rate 0
		t.Fatal(err)
	}
	cli.Close()
	m.close(context.Background()) // flushes the batched spans
	closed = true

	remote := "remote:00f067aa0ba902b7"
	wantPut := map[string]string{"etcdserverpb.KV/Put": remote, "propose": "etcdserverpb.KV/Put", "commit": "propose", "apply": "propose"}
	if got := col.tree(putTrace); fmt.Sprint(got) != fmt.Sprint(wantPut) {
		t.Errorf("put trace = %v, want %v", got, wantPut)
	}
	wantGet := map[string]string{"etcdserverpb.KV/Range": remote, "linearizable_read": "etcdserverpb.KV/Range", "range": "etcdserverpb.KV/Range"}
	if got := col.tree(getTrace); fmt.Sprint(got) != fmt.Sprint(wantGet) {
		t.Errorf("get trace = %v, want %v", got, wantGet)
	}
	col.mu.Lock()
	sort.Strings(col.attrs)
	n, attrs := len(col.spans), fmt.Sprint(col.attrs)
	col.mu.Unlock()
	if n != len(wantPut)+len(wantGet) {
		t.Errorf("%d spans exported, want %d (the untraced put is not sampled)", n, len(wantPut)+len(wantGet))
	}
	if attrs != "[service.instance.id=i-1 service.name=ms-test]" {
		t.Errorf("resource attributes = %s", attrs)
	}
}

// The sampler is etcd's: parent based, then the rate per million.
func TestTracingSampler(t *testing.T) {
	for _, c := range []struct {
		rate int
		want int
	}{{0, 0}, {1000000, 10}} {
		exp := tracetest.NewInMemoryExporter()
		cfg := config.NewConfig()
		cfg.TracingSamplingPerMillion = c.rate
		tr := newTracingWith(cfg, tracesdk.WithSyncer(exp))
		for i := 0; i < 10; i++ {
			_, s := tr.tracer.Start(context.Background(), "root")
			s.End()
		}
		if got := len(exp.GetSpans()); got != c.want {
			t.Errorf("rate %d: %d of 10 root spans sampled, want %d", c.rate, got, c.want)
		}
		tr.close(context.Background())
	}
}
