//go:build rocksdb

package rocksdb

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/linxGnu/grocksdb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

const (
	defaultCacheSize = 64 << 20
	// bloomBitsPerKey sizes the table filters (about 1% false positives), as Pebble's.
	bloomBitsPerKey = 10
)

// Engine is a storage.Engine backed by one RocksDB database.
type Engine struct {
	db          *grocksdb.DB
	opts        *grocksdb.Options
	cache       *grocksdb.Cache
	bbto        *grocksdb.BlockBasedTableOptions
	ro          *grocksdb.ReadOptions // point reads and iterators of the latest state
	woSync      *grocksdb.WriteOptions
	woAsync     *grocksdb.WriteOptions
	dir, walDir string
	lg          *zap.Logger
	closed      atomic.Bool
}

var _ storage.Engine = (*Engine)(nil)

// Open opens (creating if needed) the RocksDB database in dir.
func Open(dir string, o Options) (*Engine, error) {
	if o.FS != nil && o.FS != vfs.Default {
		return nil, ErrUnsupportedFS
	}
	lg := o.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	cacheSize := o.CacheSize
	if cacheSize <= 0 {
		cacheSize = defaultCacheSize
	}
	e := &Engine{dir: dir, walDir: o.WALDir, lg: lg.With(zap.String("engine", "rocksdb"))}
	if e.walDir == "" {
		e.walDir = dir
	}
	e.cache = grocksdb.NewLRUCache(uint64(cacheSize))
	e.bbto = grocksdb.NewDefaultBlockBasedTableOptions()
	e.bbto.SetBlockCache(e.cache)
	// Full (not block-based) filters over both the prefixes (for SeekPrefixGE) and the
	// whole keys (for Get).
	e.bbto.SetFilterPolicy(grocksdb.NewBloomFilterFull(bloomBitsPerKey))
	e.bbto.SetWholeKeyFiltering(true)
	e.bbto.SetCacheIndexAndFilterBlocks(true)
	e.bbto.SetPinL0FilterAndIndexBlocksInCache(true)

	opts := grocksdb.NewDefaultOptions()
	opts.SetCreateIfMissing(true)
	opts.SetBlockBasedTableFactory(e.bbto)
	setSplitTransform(opts)
	opts.SetMemTablePrefixBloomSizeRatio(0.1)
	opts.SetCompression(grocksdb.SnappyCompression)
	opts.SetLevelCompactionDynamicLevelBytes(true)
	opts.IncreaseParallelism(2)
	opts.SetMaxBackgroundJobs(2)
	if o.MemTableSize > 0 {
		opts.SetWriteBufferSize(o.MemTableSize)
	}
	if o.WALDir != "" {
		opts.SetWalDir(o.WALDir)
	}
	opts.SetInfoLogLevel(grocksdb.WarnInfoLogLevel)
	opts.SetKeepLogFileNum(4)
	opts.EnableStatistics()
	e.opts = opts

	db, err := grocksdb.OpenDb(opts, dir)
	if err != nil {
		e.free()
		return nil, fmt.Errorf("storage/rocksdb: open %s: %w", dir, err)
	}
	e.db = db
	e.ro = totalOrder(grocksdb.NewDefaultReadOptions())
	e.woSync, e.woAsync = grocksdb.NewDefaultWriteOptions(), grocksdb.NewDefaultWriteOptions()
	e.woSync.SetSync(true)
	e.lg.Info("opened rocksdb", zap.String("dir", dir), zap.String("wal-dir", e.walDir))
	return e, nil
}

// totalOrder makes ro ignore the prefix extractor: with one set, RocksDB's iterators
// otherwise seek by prefix and may miss keys of other prefixes.
func totalOrder(ro *grocksdb.ReadOptions) *grocksdb.ReadOptions {
	ro.SetTotalOrderSeek(true)
	return ro
}

func (e *Engine) free() {
	if e.opts != nil {
		e.opts.Destroy()
	}
	if e.bbto != nil {
		e.bbto.Destroy()
	}
	if e.cache != nil {
		e.cache.Destroy()
	}
}

// Name implements storage.Engine.
func (e *Engine) Name() string { return "rocksdb" }

// Get implements storage.Reader.
func (e *Engine) Get(key []byte) ([]byte, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return getPinned(e.db.GetPinned(e.ro, key))
}

// getPinned copies the value out of a pinned slice and releases it.
func getPinned(h *grocksdb.PinnableSliceHandle, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer h.Destroy()
	if !h.Exists() {
		return nil, storage.ErrNotFound
	}
	v := h.Data()
	out := make([]byte, len(v))
	copy(out, v)
	return out, nil
}

// NewIter implements storage.Reader.
func (e *Engine) NewIter(opts storage.IterOptions) (storage.Iterator, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return newIter(opts, func(ro *grocksdb.ReadOptions) *grocksdb.Iterator { return e.db.NewIterator(ro) }, nil), nil
}

// NewBatch implements storage.Engine: a batch whose reads see its own writes.
func (e *Engine) NewBatch() storage.Batch { return newBatch(e) }

// NewSnapshot implements storage.Engine.
func (e *Engine) NewSnapshot() storage.Snapshot {
	s := &snapshot{e: e, s: e.db.NewSnapshot()}
	s.ro = totalOrder(grocksdb.NewDefaultReadOptions())
	s.ro.SetSnapshot(s.s)
	return s
}

// Compact flushes the memtables and compacts [start, end) (nil bounds: the whole key
// space) down to the last level, rewriting the bottom level too so that range
// tombstones and the keys they cover are dropped.
func (e *Engine) Compact(start, end []byte) error {
	if e.closed.Load() {
		return storage.ErrClosed
	}
	fo := grocksdb.NewDefaultFlushOptions()
	defer fo.Destroy()
	fo.SetWait(true)
	if err := e.db.Flush(fo); err != nil {
		return fmt.Errorf("storage/rocksdb: flush: %w", err)
	}
	co := grocksdb.NewCompactRangeOptions()
	defer co.Destroy()
	co.SetBottommostLevelCompaction(grocksdb.KForceOptimized)
	co.SetExclusiveManualCompaction(false)
	e.db.CompactRangeOpt(grocksdb.Range{Start: start, Limit: end}, co)
	return nil
}

// Sync makes every committed write durable by syncing the write-ahead log.
func (e *Engine) Sync() error {
	if e.closed.Load() {
		return storage.ErrClosed
	}
	return e.db.FlushWAL(true)
}

// DiskSize is the bytes of every file in the database's directories (tables, WAL,
// MANIFEST, LOG and obsolete files not yet deleted).
func (e *Engine) DiskSize() uint64 {
	if e.closed.Load() {
		return 0
	}
	n := dirSize(e.dir, "")
	if e.walDir != e.dir {
		n += dirSize(e.walDir, "")
	}
	return n
}

// LiveSize estimates the bytes of live data: RocksDB's estimate of the live data in
// its tables plus the live WAL (writes not yet flushed).
func (e *Engine) LiveSize() uint64 {
	if e.closed.Load() {
		return 0
	}
	return e.intProperty("rocksdb.estimate-live-data-size") + e.walSize()
}

// TableSize estimates the bytes [start, end) takes in tables.
func (e *Engine) TableSize(start, end []byte) uint64 {
	if e.closed.Load() {
		return 0
	}
	if end == nil {
		end = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	sizes, err := e.db.GetApproximateSizes([]grocksdb.Range{{Start: start, Limit: end}})
	if err != nil || len(sizes) == 0 {
		return 0
	}
	return sizes[0]
}

// UnflushedSize is the size of the live WAL files: writes not yet flushed to tables.
func (e *Engine) UnflushedSize() uint64 {
	if e.closed.Load() {
		return 0
	}
	return e.walSize()
}

func (e *Engine) walSize() uint64 { return dirSize(e.walDir, ".log") }

// dirSize sums the sizes of the files in dir whose names end in suffix.
func dirSize(dir, suffix string) uint64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n uint64
	for _, de := range ents {
		if de.IsDir() || !strings.HasSuffix(de.Name(), suffix) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, de.Name())); err == nil {
			n += uint64(fi.Size())
		}
	}
	return n
}

func (e *Engine) intProperty(name string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSpace(e.db.GetProperty(name)), 10, 64)
	return n
}

// Close closes the database. Every snapshot, iterator and batch must be closed first.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return storage.ErrClosed
	}
	err := e.db.FlushWAL(true)
	e.db.Close()
	e.ro.Destroy()
	e.woSync.Destroy()
	e.woAsync.Destroy()
	e.free()
	return err
}

type snapshot struct {
	e  *Engine
	s  *grocksdb.Snapshot
	ro *grocksdb.ReadOptions
}

func (s *snapshot) Get(key []byte) ([]byte, error) {
	if s.e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return getPinned(s.e.db.GetPinned(s.ro, key))
}

func (s *snapshot) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	if s.e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return newIter(o, func(ro *grocksdb.ReadOptions) *grocksdb.Iterator {
		ro.SetSnapshot(s.s)
		return s.e.db.NewIterator(ro)
	}, nil), nil
}

func (s *snapshot) Close() error {
	s.ro.Destroy()
	s.e.db.ReleaseSnapshot(s.s)
	return nil
}
