// Package rocksdb implements storage.Engine on RocksDB (through github.com/linxGnu/grocksdb,
// cgo, against the system's librocksdb: Debian's librocksdb-dev 7.8.3). It owns only the
// mapping of the Engine interface onto RocksDB's API, RocksDB's options and its
// statistics; it knows nothing about key layouts (storage/keys.go) or what the keys mean.
//
// Everything that needs cgo is behind the `rocksdb` build tag, so the default build needs
// no C toolchain: without the tag this package holds only its options and statistics
// types, and storage/engines refuses a RocksDB data dir with a message naming the build
// that opens it.
//
// How it maps the contract, where RocksDB differs from Pebble:
//
//   - Prefix filters: RocksDB's prefix extractor is a SliceTransform. It is written in C in
//     this package (split.go, the same cut as storage.Split) rather than as a Go callback,
//     because grocksdb's Go transforms copy every result into C memory that RocksDB never
//     frees, and each call would cross from C into Go. Tables keep a bloom filter over
//     those prefixes (and the whole keys); memtables one over the prefixes.
//   - Iterators seek in total order; SeekPrefixGE uses a second RocksDB iterator opened
//     with prefix_same_as_start, so its seek consults the prefix filters, as Pebble's does.
//   - Batches are WriteBatchWithIndex, so reads see the batch's writes. RocksDB 7.8's
//     WriteBatchWithIndex silently drops DeleteRange (NotSupported), so a batch's range
//     deletions are kept by this package: the batch gets a plain WriteBatch mirror (with
//     the real range tombstone) once it has one, and its reads hide the base keys in the
//     deleted ranges (batch.go).
//   - There is no read that skips the memtables (ReadTier kPersistedTier skips them only
//     when the WAL is off), so the engine is not a storage.TableReader: mvcc's latest
//     cache then simply never takes its memtable-skipping shortcut.
//   - File I/O: RocksDB does its own, through its Env (the OS); it cannot use a Go vfs.FS.
//     Options.FS must be nil or vfs.Default; storage/engines creates the data dir and
//     writes the engine marker through the vfs it is given, RocksDB's files (tables, WAL,
//     MANIFEST, LOG) go through RocksDB's default Env. So the crash and error-injection
//     tests built on Pebble's MemFS and errorfs (raftlog's) do not cover this engine.
package rocksdb

import (
	"errors"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// Options configure Open.
type Options struct {
	// WALDir holds RocksDB's own write-ahead log. Empty: inside the data dir.
	WALDir string
	// Logger receives the open and close lines. RocksDB's own log goes to the LOG file in
	// the data dir (warnings and above). Nil: a no-op logger.
	Logger *zap.Logger
	// CacheSize is the block cache size in bytes. 0: 64 MiB.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. 0: 64 MiB (RocksDB's default).
	MemTableSize uint64
	// FS must be nil or vfs.Default: RocksDB does its own file I/O (ErrUnsupportedFS).
	FS vfs.FS
}

// ErrUnsupportedFS is returned by Open when Options.FS is not the operating system's.
var ErrUnsupportedFS = errors.New("storage/rocksdb: RocksDB does its own file I/O (through its Env, the OS); it cannot run on a Go vfs.FS other than vfs.Default")

// Stats is a point-in-time reading of RocksDB's statistics and properties, in the units
// the metastore_* engine metrics use (counters are totals since Open).
type Stats struct {
	// Compactions completed, and the bytes they read and wrote.
	Compactions, CompactionReadBytes, CompactionWriteBytes uint64
	// CompactionsRunning and PendingCompactionBytes (what compaction is behind by).
	CompactionsRunning, PendingCompactionBytes uint64
	// Flushes of memtables to level 0.
	Flushes uint64
	// WriteStalls counts the writes that were delayed or stopped; WriteStallMicros the
	// time writers spent waiting; WriteStopped is 1 while writes are stopped.
	WriteStalls, WriteStallMicros, WriteStopped uint64
	// Block cache: hits, misses, bytes used and capacity.
	BlockCacheHits, BlockCacheMisses, BlockCacheUsage, BlockCacheCapacity uint64
	// Memtables: bytes of every memtable (active, immutable, pinned), and how many are
	// immutable (waiting for a flush); hits and misses of point reads.
	MemTableBytes, ImmutableMemTables, MemTableHits, MemTableMisses uint64
	// Bloom filters: point reads a filter ruled out, and prefix seeks it ruled out.
	BloomUseful, BloomPrefixUseful uint64
	// Tables: live SST bytes, bytes of every SST still on disk (live and obsolete
	// versions'), and files per level (index = level).
	TableBytes, TotalTableBytes uint64
	FilesPerLevel               []uint64
	// WALBytes is the live write-ahead log's size; WALBytesWritten the bytes written to
	// it since Open.
	WALBytes, WALBytesWritten uint64
	BackgroundErrs            uint64
}
