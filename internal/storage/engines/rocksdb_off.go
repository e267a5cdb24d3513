//go:build !rocksdb

package engines

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/internal/storage"
)

// rocksdbBuilt: this build has no rocksdb engine (no cgo needed).
const rocksdbBuilt = false

func openRocksDB(string, Options) (storage.Engine, error) {
	panic("unreachable: Open refuses rocksdb in builds without the tag")
}

// Collector returns the prometheus.Collector of eng's own statistics (the
// metastore_engine_* metrics) when the engine exports them here (RocksDB), else nil.
func Collector(storage.Engine) prometheus.Collector { return nil }
