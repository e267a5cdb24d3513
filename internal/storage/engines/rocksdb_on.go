//go:build rocksdb

package engines

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/rocksdb"
)

// rocksdbBuilt: this build has the rocksdb engine.
const rocksdbBuilt = true

func openRocksDB(dir string, opts Options) (storage.Engine, error) {
	return rocksdb.Open(dir, rocksdb.Options{Logger: opts.Logger, CacheSize: opts.CacheSize,
		MemTableSize: opts.MemTableSize, FS: opts.FS})
}

// Collector returns the prometheus.Collector of eng's own statistics (the
// metastore_engine_* metrics) when the engine exports them here (RocksDB), else nil.
func Collector(eng storage.Engine) prometheus.Collector {
	if e, ok := eng.(*rocksdb.Engine); ok {
		return rocksdb.NewCollector(e)
	}
	return nil
}
