package main

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	tracesdk "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/config"
)

// tracing is etcd's --enable-distributed-tracing: spans exported over OTLP/gRPC
// (insecure) to --distributed-tracing-address, with the service name and instance ID as
// resource attributes, sampled at --distributed-tracing-sampling-rate per million
// unless the incoming trace context says it is sampled (parent based), as etcd.
type tracing struct {
	provider *tracesdk.TracerProvider
	// serverOption is the otelgrpc stats handler: a server span per call, continuing
	// the W3C trace context (and baggage) the client sent.
	serverOption grpc.ServerOption
	tracer       trace.Tracer
}

// newTracing builds the tracing cfg asks for; nil when it is disabled. The exporter
// connects lazily, so an unreachable collector does not stop the member.
func newTracing(ctx context.Context, cfg *config.Config, lg *zap.Logger) (*tracing, error) {
	if !cfg.EnableDistributedTracing {
		return nil, nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(cfg.TracingAddress))
	if err != nil {
		return nil, err
	}
	lg.Debug("distributed tracing enabled", zap.String("address", cfg.TracingAddress),
		zap.String("service-name", cfg.TracingServiceName), zap.String("service-instance-id", cfg.TracingInstanceID),
		zap.Int("sampling-rate", cfg.TracingSamplingPerMillion))
	return newTracingWith(cfg, tracesdk.WithBatcher(exp)), nil
}

// newTracingWith is newTracing's provider with the span processor given (tests give
// an in-memory exporter).
func newTracingWith(cfg *config.Config, processor tracesdk.TracerProviderOption) *tracing {
	res := resource.NewSchemaless(semconv.ServiceNameKey.String(cfg.TracingServiceName))
	if cfg.TracingInstanceID != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceInstanceIDKey.String(cfg.TracingInstanceID)))
	}
	sampler := tracesdk.NeverSample()
	if r := cfg.TracingSamplingPerMillion; r > 0 {
		sampler = tracesdk.TraceIDRatioBased(float64(r) / 1e6)
	}
	tp := tracesdk.NewTracerProvider(processor, tracesdk.WithResource(res), tracesdk.WithSampler(tracesdk.ParentBased(sampler)))
	return &tracing{
		provider: tp,
		serverOption: grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tp),
			otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		)),
		tracer: tp.Tracer("github.com/metastore/metastore/internal/server"),
	}
}

// close flushes the spans still buffered and stops the exporter.
func (t *tracing) close(ctx context.Context) {
	if t != nil {
		_ = t.provider.Shutdown(ctx)
	}
}

// serverTracer is the tracer server records its spans with (nil without tracing).
func (t *tracing) serverTracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// grpcOptions are the gRPC server options tracing adds.
func (t *tracing) grpcOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{t.serverOption}
}
