package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/grpcapi"
	"github.com/metastore/metastore/internal/metrics"
	"github.com/metastore/metastore/internal/server"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// newEtcdMetrics registers etcd's metrics on reg, read from m's parts at scrape time
// (so it may run before they exist: nothing is scraped until the client port serves).
func newEtcdMetrics(reg prometheus.Registerer, m *member, selfID func() uint64, quota int64) *metrics.Etcd {
	return metrics.New(reg, metrics.Sources{
		MemberID:         selfID,
		ServerVersion:    server.Version,
		QuotaBytes:       quota,
		ClusterVersion:   func() string { return majorMinor(m.srv.ClusterVersion()) },
		Leader:           func() uint64 { return m.node.Leader() },
		IsLeader:         func() bool { return m.node.IsLeader() },
		IsLearner:        func() bool { return m.srv.IsLearner() },
		LeaderChanges:    func() uint64 { return m.node.LeaderChanges() },
		CommittedIndex:   func() uint64 { return m.node.CommittedIndex() },
		AppliedIndex:     func() uint64 { return m.node.AppliedIndex() },
		PendingProposals: func() int { return m.srv.PendingProposals() },
		DBSize:           func() uint64 { return m.eng.DiskSize() },
		DBSizeInUse:      func() uint64 { return storage.StateMachineSize(m.eng) },
		Revision:         func() int64 { return m.store.Rev() },
		CompactRev:       func() int64 { return m.store.CompactRev() },
		Keys:             func() int64 { return m.store.Keys() },
		Ops: func() (uint64, uint64, uint64, uint64) {
			c := m.store.OpCounts()
			return c.Ranges, c.Puts, c.Deletes, c.Txns
		},
	})
}

// registerEngineMetrics adds the engine's own figures (metastore_engine_*) when it is
// Pebble.
func registerEngineMetrics(reg prometheus.Registerer, eng storage.Engine) {
	if pe, ok := eng.(*pebble.Engine); ok {
		reg.MustRegister(metrics.NewPebbleCollector(pe.Metrics).WithWriteStalls(pe.WriteStalls))
	}
}

// serveMetricsURLs serves /metrics on every --listen-metrics-urls address (plain HTTP,
// as etcd without TLS there).
func (m *member) serveMetricsURLs(cfg *config.Config, reg *prometheus.Registry, lg *zap.Logger) error {
	for _, u := range cfg.ListenMetricsURLs {
		if u.Scheme != "http" {
			return errors.New("--listen-metrics-urls: only http:// is supported")
		}
		mux := http.NewServeMux()
		mux.Handle(grpcapi.PathMetrics, grpcapi.MetricsHandler(reg))
		hs := &http.Server{Addr: u.Host, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			return err
		}
		m.listeners = append(m.listeners, l)
		m.peerHTTP = append(m.peerHTTP, hs)
		m.wg.Add(1)
		go func() { defer m.wg.Done(); _ = hs.Serve(l) }()
		lg.Info("serving metrics", zap.String("address", u.String()))
	}
	return nil
}

// majorMinor is "3.7" of "3.7.0": etcd_cluster_version's label, as etcd's.
func majorMinor(v string) string {
	if i := strings.Index(v, "."); i >= 0 {
		if j := strings.Index(v[i+1:], "."); j >= 0 {
			return v[:i+1+j]
		}
	}
	return v
}

// probePeers probes the peers' round trip every 5 s (etcd probes each peer every few
// seconds) until the member closes.
func (m *member) probePeers() {
	defer m.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-m.stopc:
			return
		case <-tick.C:
			m.tr.ProbeRoundTrips(ctx, 5*time.Second)
		}
	}
}
