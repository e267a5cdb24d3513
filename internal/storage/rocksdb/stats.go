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
		TotalTableBytes:        e.intProperty("rocksdb.total-sst-files-size"),
		WALBytes:               e.walSize(),
		WALBytesWritten:        t["rocksdb.wal.bytes"],
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

// Collector exports Stats as metastore_engine_* metrics under the names (and, like
// Pebble's, without labels) the Pebble engine's collector uses (internal/metrics), so one
// dashboard serves both engines; the figures only RocksDB has follow under their own
// names. Pebble's l0_sublevels and table_cache_hit_ratio have no RocksDB counterpart
// (docs/observability/metrics.md).
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
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, labels, nil)
	}
	return c
}

type collectorMetric struct {
	name, help string
	counter    bool
	value      func(Stats) float64
}

func ratio(hits, misses uint64) float64 {
	if hits+misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+misses)
}

// readAmp is Pebble's definition with each level-0 file as a sublevel (RocksDB's level
// 0 files all overlap): level-0 files plus the non-empty levels below.
func readAmp(s Stats) float64 {
	var n uint64
	for l, f := range s.FilesPerLevel {
		if l == 0 {
			n += f
		} else if f > 0 {
			n++
		}
	}
	return float64(n)
}

func u(v uint64) float64 { return float64(v) }

var collectorMetrics = []collectorMetric{
	// The names Pebble's collector exports.
	{"metastore_engine_compactions_total", "Compactions the engine has run.", true, func(s Stats) float64 { return u(s.Compactions) }},
	{"metastore_engine_compaction_bytes_total", "Bytes written by the engine's compactions.", true, func(s Stats) float64 { return u(s.CompactionWriteBytes) }},
	{"metastore_engine_compaction_debt_bytes", "Estimated bytes compactions must still rewrite.", false, func(s Stats) float64 { return u(s.PendingCompactionBytes) }},
	{"metastore_engine_compactions_in_progress", "Compactions running now.", false, func(s Stats) float64 { return u(s.CompactionsRunning) }},
	{"metastore_engine_flushes_total", "Memtable flushes the engine has run.", true, func(s Stats) float64 { return u(s.Flushes) }},
	{"metastore_engine_l0_files", "Tables in level 0.", false, func(s Stats) float64 {
		if len(s.FilesPerLevel) == 0 {
			return 0
		}
		return u(s.FilesPerLevel[0])
	}},
	{"metastore_engine_read_amplification", "Read amplification: level-0 files plus the non-empty levels below.", false, readAmp},
	{"metastore_engine_block_cache_hit_ratio", "Block cache hits / (hits + misses) since start.", false, func(s Stats) float64 { return ratio(s.BlockCacheHits, s.BlockCacheMisses) }},
	{"metastore_engine_block_cache_size_bytes", "Bytes in the block cache.", false, func(s Stats) float64 { return u(s.BlockCacheUsage) }},
	{"metastore_engine_memtable_size_bytes", "Bytes allocated by the memtables.", false, func(s Stats) float64 { return u(s.MemTableBytes) }},
	{"metastore_engine_memtables", "Memtables (mutable and queued for flush).", false, func(s Stats) float64 { return u(s.ImmutableMemTables + 1) }},
	{"metastore_engine_wal_size_bytes", "Live bytes of the engine's own write-ahead log.", false, func(s Stats) float64 { return u(s.WALBytes) }},
	{"metastore_engine_wal_bytes_written_total", "Bytes written to the engine's own write-ahead log.", true, func(s Stats) float64 { return u(s.WALBytesWritten) }},
	{"metastore_engine_disk_usage_bytes", "Bytes the engine occupies on disk (tables, WAL, obsolete tables).", false, func(s Stats) float64 { return u(s.TotalTableBytes + s.WALBytes) }},
	{"metastore_engine_tables_size_bytes", "Bytes of live tables, every level.", false, func(s Stats) float64 { return u(s.TableBytes) }},
	// RocksDB's own.
	{"metastore_engine_compaction_read_bytes_total", "Bytes compactions read.", true, func(s Stats) float64 { return u(s.CompactionReadBytes) }},
	{"metastore_engine_write_stalls_total", "Writes the engine delayed or stopped to let compaction catch up.", true, func(s Stats) float64 { return u(s.WriteStalls) }},
	{"metastore_engine_write_stall_seconds_total", "Time writers waited in write stalls.", true, func(s Stats) float64 { return u(s.WriteStallMicros) / 1e6 }},
	{"metastore_engine_write_stopped", "1 while writes are stopped.", false, func(s Stats) float64 { return u(s.WriteStopped) }},
	{"metastore_engine_block_cache_hits_total", "Block cache hits.", true, func(s Stats) float64 { return u(s.BlockCacheHits) }},
	{"metastore_engine_block_cache_misses_total", "Block cache misses.", true, func(s Stats) float64 { return u(s.BlockCacheMisses) }},
	{"metastore_engine_block_cache_capacity_bytes", "Capacity of the block cache.", false, func(s Stats) float64 { return u(s.BlockCacheCapacity) }},
	{"metastore_engine_bloom_filter_useful_total", "Point reads and prefix seeks a bloom filter answered without reading a table.", true, func(s Stats) float64 { return u(s.BloomUseful + s.BloomPrefixUseful) }},
	{"metastore_engine_background_errors_total", "Background errors (flush, compaction) the engine reported.", true, func(s Stats) float64 { return u(s.BackgroundErrs) }},
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
		t := prometheus.GaugeValue
		if m.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(d, t, m.value(s))
	}
}
