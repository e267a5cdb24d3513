package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/internal/watch"
)

// registerWatchMetrics exposes the hub's figures under etcd's metric names.
func registerWatchMetrics(reg prometheus.Registerer, hub *watch.Hub) {
	gauge := func(name, help string, f func(m watch.Metrics) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "etcd_debugging", Subsystem: "mvcc", Name: name, Help: help},
			func() float64 { return f(hub.Metrics()) })
	}
	reg.MustRegister(
		gauge("watch_stream_total", "Total number of watch streams.", func(m watch.Metrics) float64 { return float64(m.Streams) }),
		gauge("watcher_total", "Total number of watchers.", func(m watch.Metrics) float64 { return float64(m.Watchers) }),
		gauge("slow_watcher_total", "Total number of unsynced slow watchers.", func(m watch.Metrics) float64 { return float64(m.SlowWatchers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "events_total",
			Help: "Total number of events sent by this member."}, func() float64 { return float64(hub.Metrics().EventsSent) }),
	)
}
