// Package testengine opens the storage engine tests run on: Pebble, or the engine named
// by METASTORE_TEST_ENGINE ("pebble", "rocksdb"; rocksdb needs `-tags rocksdb`). It owns
// only that switch, for the tests of the packages above storage (mvcc, apply, server),
// so that one suite runs on either engine:
//
//	METASTORE_TEST_ENGINE=rocksdb go test -race -tags rocksdb ./internal/mvcc/...
package testengine

import (
	"os"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/engines"
)

// EnvVar names the engine tests run on.
const EnvVar = "METASTORE_TEST_ENGINE"

// Name is the engine tests run on: $METASTORE_TEST_ENGINE, or Pebble.
func Name() string {
	if n := os.Getenv(EnvVar); n != "" {
		return n
	}
	return engines.Pebble
}

// Open opens (creating if needed) the test engine in dir with a block cache of
// cacheSize bytes (0: the engine's default), failing tb if it cannot: a rocksdb asked
// for in a build without the tag fails with the message naming the tag.
func Open(tb testing.TB, dir string, cacheSize int64) storage.Engine {
	tb.Helper()
	e, err := engines.Open(dir, engines.Options{Engine: Name(), CacheSize: cacheSize})
	if err != nil {
		tb.Fatalf("open the %s test engine: %v", Name(), err)
	}
	return e
}
