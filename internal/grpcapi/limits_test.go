package grpcapi

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// With --client-request-rate, a client past its burst gets etcd's "too many requests"
// (which clientv3 does not retry) and the refusal is counted; without it nothing is
// limited.
func TestPerClientRateLimit(t *testing.T) {
	s := startServer(t, Options{RequestRate: 0.001, RequestBurst: 3})
	ctx := testCtx(t)
	for i := 0; i < 3; i++ {
		if _, err := s.cli.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("put %d within the burst: %v", i, err)
		}
	}
	_, err := s.cli.Get(ctx, "k")
	if !errors.Is(err, rpctypes.ErrTooManyRequests) {
		t.Fatalf("get past the burst: %v, want %v", err, rpctypes.ErrTooManyRequests)
	}
	w := s.cli.Watch(ctx, "k")
	if wr := <-w; !errors.Is(wr.Err(), rpctypes.ErrTooManyRequests) {
		t.Errorf("watch past the burst: %v, want %v", wr.Err(), rpctypes.ErrTooManyRequests)
	}
	if v := metricValue(t, s.reg, RateLimitedMetricName, nil); v < 1 {
		t.Errorf("%s = %v, want >= 1", RateLimitedMetricName, v)
	}

	free := startServer(t, Options{})
	for i := 0; i < 20; i++ {
		if _, err := free.cli.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("put %d without a limit: %v", i, err)
		}
	}
}

// etcd sets the keepalive enforcement only for a positive min time, and server pings
// only for a positive interval and timeout; a negative value here is etcd's 0.
func TestKeepaliveOptionsAsEtcd(t *testing.T) {
	for _, c := range []struct {
		min, interval, timeout time.Duration
		want                   int
	}{
		{time.Second, time.Hour, time.Second, 2},
		{-1, time.Hour, time.Second, 1},
		{time.Second, -1, time.Second, 1},
		{time.Second, time.Hour, -1, 1},
		{-1, -1, -1, 0},
	} {
		o := Options{KeepAliveMinTime: c.min, KeepAliveInterval: c.interval, KeepAliveTimeout: c.timeout}.withDefaults()
		if got := len(keepaliveOptions(o)); got != c.want {
			t.Errorf("%+v: %d options, want %d", c, got, c.want)
		}
	}
	if got := len(keepaliveOptions(Options{}.withDefaults())); got != 2 {
		t.Errorf("defaults: %d options, want 2", got)
	}
}
