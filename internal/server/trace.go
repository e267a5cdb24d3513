package server

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// Tracing (--enable-distributed-tracing) and the slow apply warning.
//
// With Config.Tracer set, a write's request span (the gRPC server span that cmd's
// otelgrpc stats handler starts from the incoming trace context) gets a child "propose"
// covering propose-and-wait, which has two children: "commit", from the hand-over to
// raft until the apply of the entry's batch began (replication, the quorum's fsyncs,
// the commit), and "apply", that batch's apply (shared by the proposals applied
// together). The answer is the request span's end. A linearizable read gets
// "linearizable_read" (the ReadIndex round and the wait for the applied index) and
// "range" (the local read). apply itself is untouched: the timestamps are taken around
// its call site, and the spans are made afterwards by the waiting request.

// DefaultWarningApplyDuration is etcd's --warning-apply-duration default.
const DefaultWarningApplyDuration = 100 * time.Millisecond

// tracedResult is what a proposal's wait receives when tracing: the result and when the
// apply of its batch began and ended.
type tracedResult struct {
	result         any
	applyStart, at time.Time
}

func (s *Server) tracer() trace.Tracer {
	if s.cfg.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return s.cfg.Tracer
}

// startSpan starts a child span of ctx's named name (a no-op span without a tracer).
func (s *Server) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if s.cfg.Tracer == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return s.cfg.Tracer.Start(ctx, name)
}

// endSpan records err on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// traced wraps an apply result for its waiter when tracing.
func (s *Server) traced(result any, applyStart, applyEnd time.Time) any {
	if s.cfg.Tracer == nil {
		return result
	}
	return tracedResult{result: result, applyStart: applyStart, at: applyEnd}
}

// untrace unwraps what a proposal's wait received, recording its "commit" and "apply"
// spans under ctx's span (the proposal handed to raft at proposed).
func (s *Server) untrace(ctx context.Context, x any, proposed time.Time) any {
	tr, ok := x.(tracedResult)
	if !ok {
		return x
	}
	t := s.tracer()
	_, commit := t.Start(ctx, "commit", trace.WithTimestamp(proposed))
	commit.End(trace.WithTimestamp(tr.applyStart))
	_, ap := t.Start(ctx, "apply", trace.WithTimestamp(tr.applyStart))
	ap.End(trace.WithTimestamp(tr.at))
	return tr.result
}

// warnSlowApply logs etcd's "apply request took too long" for a batch of entries
// whose apply took longer than --warning-apply-duration.
func (s *Server) warnSlowApply(ents []*raftpb.Entry, start, end time.Time) {
	limit := s.cfg.WarningApplyDuration
	if limit == 0 {
		limit = DefaultWarningApplyDuration
	}
	if took := end.Sub(start); took > limit {
		s.observer().SlowApply() // etcd_server_slow_apply_total, on the same limit as the warning
		s.lg.Warn("apply request took too long",
			zap.Duration("took", took), zap.Duration("expected-duration", limit), zap.String("prefix", ""),
			zap.String("request", fmt.Sprintf("%d entries, index %d to %d", len(ents), ents[0].GetIndex(), ents[len(ents)-1].GetIndex())),
			zap.String("response", ""))
	}
}
