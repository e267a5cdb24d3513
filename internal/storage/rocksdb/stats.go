//go:build rocksdb

package rocksdb

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// numLevels is RocksDB's default number of levels.
const numLevels = 7

// Stats reads RocksDB's statistics (tickers and histogram counts, totals since Open) and
// properties (current values). It parses the statistics dump, so call it at scrape
// intervals, not per request.
func (e *Engine) Stats() Stats {
	if e.closed.Load() {
		return Stats{}
	}
	t := parseStatistics(e.opts.GetStatisticsString())
	s := Stats{
		Compactions:            t["rocksdb.compaction.times.micros"],
		CompactionReadBytes:    t["rocksdb.compact.read.bytes"],
		CompactionWriteBytes:   t["rocksdb.compact.write.bytes"],
		CompactionsRunning:     e.intProperty("rocksdb.num-running-compactions"),
		PendingCompactionBytes: e.intProperty("rocksdb.estimate-pending-compaction-bytes"),
		Flushes:                t["rocksdb.db.flush.micros"],
		WriteStalls:            t["rocksdb.db.write.stall"],
		WriteStallMicros:       t["rocksdb.stall.micros"],
		WriteStopped:           e.intProperty("rocksdb.is-write-stopped"),
		BlockCacheHits:         t["rocksdb.block.cache.hit"],
		BlockCacheMisses:       t["rocksdb.block.cache.miss"],
		BlockCacheUsage:        e.intProperty("rocksdb.block-cache-usage"),
		BlockCacheCapacity:     e.intProperty("rocksdb.block-cache-capacity"),
		MemTableBytes:          e.intProperty("rocksdb.size-all-mem-tables"),
		ImmutableMemTables:     e.intProperty("rocksdb.num-immutable-mem-table"),
		MemTableHits:           t["rocksdb.memtable.hit"],
		MemTableMisses:         t["rocksdb.memtable.miss"],
		BloomUseful:            t["rocksdb.bloom.filter.useful"],
		BloomPrefixUseful:      t["rocksdb.bloom.filter.prefix.useful"],
		TableBytes:             e.intProperty("rocksdb.live-sst-files-size"),
		WALBytes:               e.walSize(),
		BackgroundErrs:         e.intProperty("rocksdb.background-errors"),
	}
	for l := 0; l < numLevels; l++ {
		s.FilesPerLevel = append(s.FilesPerLevel, e.intProperty("rocksdb.num-files-at-level"+strconv.Itoa(l)))
	}
	return s
}

// parseStatistics reads RocksDB's statistics dump: "name COUNT : n" for a ticker, and
// "name P50 : … COUNT : n SUM : m" for a histogram, of which it keeps the count.
func parseStatistics(dump string) map[string]uint64 {
	out := make(map[string]uint64, 256)
	for _, line := range strings.Split(dump, "\n") {
		f := strings.Fields(line)
		for i := 1; i+2 < len(f); i++ {
			if f[i] == "COUNT" && f[i+1] == ":" {
				if n, err := strconv.ParseUint(f[i+2], 10, 64); err == nil {
					out[f[0]] = n
				}
				break
			}
		}
	}
	return out
}

// Collector exports Stats as metastore_engine_* metrics, labelled engine="rocksdb": the
// names the Pebble engine's metrics use, for the figures both engines have.
type Collector struct {
	e     *Engine
	descs map[string]*prometheus.Desc
}

// NewCollector returns a prometheus.Collector reading e's Stats at each scrape.
func NewCollector(e *Engine) *Collector {
	c := &Collector{e: e, descs: map[string]*prometheus.Desc{}}
	for _, m := range collectorMetrics {
		var labels []string
		if m.name == "metastore_engine_level_files" {
			labels = []string{"level"}
		}
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, labels, prometheus.Labels{"engine": "rocksdb"})
	}
	return c
}

type collectorMetric struct {
	name, help string
	counter    bool
	value      func(Stats) uint64
}

var collectorMetrics = []collectorMetric{
	{"metastore_engine_compactions_total", "Compactions the storage engine completed.", true, func(s Stats) uint64 { return s.Compactions }},
	{"metastore_engine_compaction_read_bytes_total", "Bytes compactions read.", true, func(s Stats) uint64 { return s.CompactionReadBytes }},
	{"metastore_engine_compaction_write_bytes_total", "Bytes compactions wrote.", true, func(s Stats) uint64 { return s.CompactionWriteBytes }},
	{"metastore_engine_compactions_running", "Compactions running now.", false, func(s Stats) uint64 { return s.CompactionsRunning }},
	{"metastore_engine_compaction_debt_bytes", "Estimated bytes compaction has to rewrite to catch up.", false, func(s Stats) uint64 { return s.PendingCompactionBytes }},
	{"metastore_engine_flushes_total", "Memtable flushes.", true, func(s Stats) uint64 { return s.Flushes }},
	{"metastore_engine_write_stalls_total", "Writes the engine delayed or stopped to let compaction catch up.", true, func(s Stats) uint64 { return s.WriteStalls }},
	{"metastore_engine_write_stall_seconds_total", "Time writers waited in write stalls.", true, func(s Stats) uint64 { return s.WriteStallMicros }},
	{"metastore_engine_write_stopped", "1 while writes are stopped.", false, func(s Stats) uint64 { return s.WriteStopped }},
	{"metastore_engine_block_cache_hits_total", "Block cache hits.", true, func(s Stats) uint64 { return s.BlockCacheHits }},
	{"metastore_engine_block_cache_misses_total", "Block cache misses.", true, func(s Stats) uint64 { return s.BlockCacheMisses }},
	{"metastore_engine_block_cache_bytes", "Bytes in the block cache.", false, func(s Stats) uint64 { return s.BlockCacheUsage }},
	{"metastore_engine_block_cache_capacity_bytes", "Capacity of the block cache.", false, func(s Stats) uint64 { return s.BlockCacheCapacity }},
	{"metastore_engine_memtable_bytes", "Bytes of every memtable (active, immutable and pinned).", false, func(s Stats) uint64 { return s.MemTableBytes }},
	{"metastore_engine_memtables_immutable", "Memtables waiting for a flush.", false, func(s Stats) uint64 { return s.ImmutableMemTables }},
	{"metastore_engine_bloom_filter_useful_total", "Point reads and prefix seeks a bloom filter answered without reading a table.", true, func(s Stats) uint64 { return s.BloomUseful + s.BloomPrefixUseful }},
	{"metastore_engine_table_bytes", "Bytes of the live tables.", false, func(s Stats) uint64 { return s.TableBytes }},
	{"metastore_engine_wal_bytes", "Bytes of the engine's live write-ahead log.", false, func(s Stats) uint64 { return s.WALBytes }},
	{"metastore_engine_background_errors_total", "Background errors (flush, compaction) the engine reported.", true, func(s Stats) uint64 { return s.BackgroundErrs }},
	{"metastore_engine_level_files", "Tables per LSM level.", false, nil},
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	for _, m := range collectorMetrics {
		d := c.descs[m.name]
		if m.value == nil {
			for l, n := range s.FilesPerLevel {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), strconv.Itoa(l))
			}
			continue
		}
		v := float64(m.value(s))
		if m.name == "metastore_engine_write_stall_seconds_total" {
			v /= 1e6
		}
		t := prometheus.GaugeValue
		if m.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(d, t, v)
	}
}
