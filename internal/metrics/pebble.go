package metrics

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// PebbleCollector exposes Pebble's own figures under metastore_engine_*, read from
// db.Metrics() at scrape time (nothing on the write or read path).
type PebbleCollector struct {
	metrics func() *pebble.Metrics
	descs   []pebbleDesc

	stalls                func() (uint64, time.Duration) // nil: not exposed
	stallsDesc, stallSecs *prometheus.Desc
}

// WithWriteStalls adds metastore_engine_write_stalls_total and
// _write_stall_seconds_total (the names the RocksDB engine's collector uses), read from
// stalls (storage/pebble's Engine.WriteStalls: Pebble's Metrics has no such figure).
func (c *PebbleCollector) WithWriteStalls(stalls func() (uint64, time.Duration)) *PebbleCollector {
	c.stalls = stalls
	c.stallsDesc = prometheus.NewDesc("metastore_engine_write_stalls_total",
		"Writes the engine delayed or stopped to let compaction catch up.", nil, nil)
	c.stallSecs = prometheus.NewDesc("metastore_engine_write_stall_seconds_total",
		"Time writers waited in write stalls.", nil, nil)
	return c
}

type pebbleDesc struct {
	d   *prometheus.Desc
	typ prometheus.ValueType
	f   func(m *pebble.Metrics) float64
}

// NewPebbleCollector returns the collector of the engine whose Metrics is given
// (storage/pebble's Engine.Metrics).
func NewPebbleCollector(metrics func() *pebble.Metrics) *PebbleCollector {
	c := &PebbleCollector{metrics: metrics}
	add := func(name, help string, typ prometheus.ValueType, f func(m *pebble.Metrics) float64) {
		c.descs = append(c.descs, pebbleDesc{prometheus.NewDesc("metastore_engine_"+name, help, nil, nil), typ, f})
	}
	ratio := func(hits, misses int64) float64 {
		if hits+misses == 0 {
			return 0
		}
		return float64(hits) / float64(hits+misses)
	}
	add("compactions_total", "Compactions the engine has run.", prometheus.CounterValue,
		func(m *pebble.Metrics) float64 { return float64(m.Compact.Count) })
	add("compaction_bytes_total", "Bytes written by the engine's compactions.", prometheus.CounterValue,
		func(m *pebble.Metrics) float64 { return float64(m.Total().TableBytesCompacted) })
	add("compaction_debt_bytes", "Estimated bytes compactions must still rewrite.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.Compact.EstimatedDebt) })
	add("compactions_in_progress", "Compactions running now.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.Compact.NumInProgress) })
	add("flushes_total", "Memtable flushes the engine has run.", prometheus.CounterValue,
		func(m *pebble.Metrics) float64 { return float64(m.Flush.Count) })
	add("l0_files", "Tables in level 0.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.Levels[0].TablesCount) })
	add("l0_sublevels", "Sublevels of level 0.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.Levels[0].Sublevels) })
	add("read_amplification", "Read amplification: level-0 sublevels plus the non-empty levels below.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.ReadAmp()) })
	add("block_cache_hit_ratio", "Block cache hits / (hits + misses) since start.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return ratio(m.BlockCache.Hits, m.BlockCache.Misses) })
	add("block_cache_size_bytes", "Bytes in the block cache.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Size) })
	add("table_cache_hit_ratio", "Table (file) cache hits / (hits + misses) since start.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return ratio(m.FileCache.Hits, m.FileCache.Misses) })
	add("memtable_size_bytes", "Bytes allocated by the memtables.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.MemTable.Size) })
	add("memtables", "Memtables (mutable and queued for flush).", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.MemTable.Count) })
	add("wal_size_bytes", "Live bytes of the engine's own write-ahead log.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.WAL.Size) })
	add("wal_bytes_written_total", "Bytes written to the engine's own write-ahead log.", prometheus.CounterValue,
		func(m *pebble.Metrics) float64 { return float64(m.WAL.BytesWritten) })
	add("disk_usage_bytes", "Bytes the engine occupies on disk (tables, WAL, blobs, obsolete files).", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.DiskSpaceUsage()) })
	add("tables_size_bytes", "Bytes of live tables, every level.", prometheus.GaugeValue,
		func(m *pebble.Metrics) float64 { return float64(m.Total().TablesSize) })
	return c
}

// Describe implements prometheus.Collector.
func (c *PebbleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.d
	}
	if c.stalls != nil {
		ch <- c.stallsDesc
		ch <- c.stallSecs
	}
}

// Collect implements prometheus.Collector: one db.Metrics() per scrape.
func (c *PebbleCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.metrics()
	if m == nil {
		return
	}
	for _, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d.d, d.typ, d.f(m))
	}
	if c.stalls != nil {
		n, total := c.stalls()
		ch <- prometheus.MustNewConstMetric(c.stallsDesc, prometheus.CounterValue, float64(n))
		ch <- prometheus.MustNewConstMetric(c.stallSecs, prometheus.CounterValue, total.Seconds())
	}
}
