// Package pebble implements storage.Engine on CockroachDB's Pebble. It owns only the
// mapping of the Engine interface onto Pebble's API and Pebble's options; it knows
// nothing about key layouts (storage/keys.go) or what the keys mean.
package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// Options configure Open.
type Options struct {
	// WALDir holds Pebble's own write-ahead log. Empty: inside the data dir. (etcd's --wal-dir
	// holds the Raft log, which raftlog keeps in a WAL of its own.)
	WALDir string
	// Logger receives Pebble's log lines. Nil: a no-op logger.
	Logger *zap.Logger
	// CacheSize is the block cache size in bytes. 0: 64 MiB.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. 0: Pebble's default.
	MemTableSize uint64
	// FS is the file system. Nil: the operating system's. Tests pass vfs.NewMem() or
	// an error-injecting one.
	FS vfs.FS
	// OnCommit, if set, is called with the duration of every batch commit (etcd's
	// etcd_disk_backend_commit_duration_seconds). It must be cheap: it runs on the
	// apply path.
	OnCommit func(time.Duration)
}

const defaultCacheSize = 64 << 20

// comparer orders keys bytewise, as Pebble's default, and splits them with
// storage.Split so that bloom filters are built over (and SeekPrefixGE stays within)
// the versions of one user key. Separator and Successor keep keys whole, so every key
// Pebble compares or splits is one we wrote or sought. Its name is recorded in the
// database: a data dir written with another comparer does not open.
var comparer = &pebble.Comparer{
	Compare:              bytes.Compare,
	Equal:                bytes.Equal,
	AbbreviatedKey:       pebble.DefaultComparer.AbbreviatedKey,
	FormatKey:            pebble.DefaultComparer.FormatKey,
	Separator:            func(dst, a, _ []byte) []byte { return append(dst, a...) },
	Successor:            func(dst, a []byte) []byte { return append(dst, a...) },
	ImmediateSuccessor:   storage.PrefixSuccessor,
	Split:                storage.Split,
	ComparePointSuffixes: bytes.Compare,
	CompareRangeSuffixes: bytes.Compare,
	Name:                 "metastore.bytewise.split.v1",
}

// bloomBitsPerKey sizes the per-table bloom filters (about 1% false positives): a
// point read then touches only the tables that may hold the key.
const bloomBitsPerKey = 10

// Engine is a storage.Engine backed by one Pebble database.
type Engine struct {
	db       *pebble.DB
	closed   atomic.Bool
	onCommit func(time.Duration)
	stalls   *stalls
}

// stalls counts Pebble's write stalls (writes held back while flushes or level-0
// compactions catch up), from its event listener: Pebble's Metrics has no such figure.
type stalls struct {
	mu    sync.Mutex
	n     uint64
	total time.Duration
	began time.Time // of the stall under way; zero if none
	lg    *zap.Logger
}

// begin and end are Pebble's WriteStallBegin and WriteStallEnd. Pebble calls them
// holding its own lock: they must not call into the database.
func (s *stalls) begin(info pebble.WriteStallBeginInfo) {
	s.mu.Lock()
	s.n++
	s.began = time.Now()
	s.mu.Unlock()
	s.lg.Warn("engine write stall began", zap.String("reason", info.Reason))
}

func (s *stalls) end() {
	s.mu.Lock()
	took := time.Since(s.began)
	s.total += took
	s.began = time.Time{}
	s.mu.Unlock()
	s.lg.Info("engine write stall ended", zap.Duration("took", took))
}

// WriteStalls returns how many write stalls began since Open and how long writers
// waited in them, the one under way included.
func (e *Engine) WriteStalls() (n uint64, total time.Duration) {
	e.stalls.mu.Lock()
	defer e.stalls.mu.Unlock()
	total = e.stalls.total
	if !e.stalls.began.IsZero() {
		total += time.Since(e.stalls.began)
	}
	return e.stalls.n, total
}

var _ storage.Engine = (*Engine)(nil)

// Open opens (creating if needed) the Pebble database in dir.
func Open(dir string, opts Options) (*Engine, error) { return open(dir, opts, nil) }

// open is Open; tune, if set, adjusts Pebble's options last (tests).
func open(dir string, opts Options, tune func(*pebble.Options)) (*Engine, error) {
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = defaultCacheSize
	}
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref()
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	po := &pebble.Options{
		Cache:              cache,
		WALDir:             opts.WALDir,
		Logger:             zapLogger{logger.Sugar().With(zap.String("engine", "pebble"))},
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       opts.MemTableSize,
		FS:                 opts.FS,
		Comparer:           comparer,
	}
	// Level 0's options are inherited by every other level.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	st := &stalls{lg: logger.With(zap.String("engine", "pebble"))}
	po.EventListener = &pebble.EventListener{WriteStallBegin: st.begin, WriteStallEnd: st.end}
	if tune != nil {
		tune(po)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage/pebble: open %s: %w", dir, err)
	}
	return &Engine{db: db, onCommit: opts.OnCommit, stalls: st}, nil
}

// Metrics returns Pebble's own figures (compactions, levels, caches, memtables, WAL),
// read when asked: the metrics collector calls it at scrape time (write stalls: WriteStalls).
func (e *Engine) Metrics() *pebble.Metrics { return e.db.Metrics() }

// Name implements storage.Engine.
func (e *Engine) Name() string { return "pebble" }

// Get implements storage.Reader.
func (e *Engine) Get(key []byte) ([]byte, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return get(e.db.Get(key))
}

// NewIter implements storage.Reader.
func (e *Engine) NewIter(opts storage.IterOptions) (storage.Iterator, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return newIter(e.db.NewIter(iterOptions(opts)))
}

var _ storage.TableReader = (*Engine)(nil)

// NewTableIter implements storage.TableReader: an iterator that skips the memtables
// (OnlyReadGuaranteedDurable) and reads the bloom filters of L6 too (UseL6Filters),
// which Pebble otherwise skips on the assumption that a seek there finds its key.
func (e *Engine) NewTableIter(opts storage.IterOptions) (storage.Iterator, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	o := iterOptions(opts)
	o.OnlyReadGuaranteedDurable, o.UseL6Filters = true, true
	return newIter(e.db.NewIter(o))
}

// FlushAsync implements storage.TableReader: it rotates the memtable now and returns
// the channel Pebble closes when that memtable (and so every older one) is flushed.
func (e *Engine) FlushAsync() (<-chan struct{}, error) {
	if e.closed.Load() {
		return nil, storage.ErrClosed
	}
	return e.db.AsyncFlush()
}

// NewBatch returns an indexed batch: reads through it see its own writes.
func (e *Engine) NewBatch() storage.Batch {
	return &batch{b: e.db.NewIndexedBatch(), onCommit: e.onCommit}
}

// NewSnapshot implements storage.Engine.
func (e *Engine) NewSnapshot() storage.Snapshot {
	return &snapshot{s: e.db.NewSnapshot()}
}

// Compact runs a manual compaction of [start, end); nil bounds mean the whole key space.
func (e *Engine) Compact(start, end []byte) error {
	if e.closed.Load() {
		return storage.ErrClosed
	}
	if start == nil {
		start = []byte{0}
	}
	if end == nil {
		end = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	// Pebble's Compact first flushes the memtables that overlap [start, end).
	if err := e.db.Compact(context.Background(), start, end, false); err != nil {
		return fmt.Errorf("storage/pebble: compact: %w", err)
	}
	return nil
}

// Sync makes every committed write durable by syncing the write-ahead log.
func (e *Engine) Sync() error {
	if e.closed.Load() {
		return storage.ErrClosed
	}
	return e.db.LogData(nil, pebble.Sync)
}

// DiskSize is Pebble's total disk space usage, WAL and obsolete files included.
func (e *Engine) DiskSize() uint64 {
	if e.closed.Load() {
		return 0
	}
	return e.db.Metrics().DiskSpaceUsage()
}

// LiveSize estimates the bytes of live data: the sstables overlapping the key space
// plus the live bytes of the WAL (not yet flushed), leaving out obsolete, zombie and
// recycled files.
func (e *Engine) LiveSize() uint64 {
	if e.closed.Load() {
		return 0
	}
	m := e.db.Metrics()
	n, err := e.db.EstimateDiskUsage([]byte{0}, []byte{0xff, 0xff, 0xff, 0xff})
	if err != nil {
		n = m.Table.Local.LiveSize + m.BlobFiles.Local.LiveSize
	}
	return n + m.WAL.Size
}

// TableSize estimates the bytes [start, end) takes in sstables.
func (e *Engine) TableSize(start, end []byte) uint64 {
	if e.closed.Load() {
		return 0
	}
	n, err := e.db.EstimateDiskUsage(start, end)
	if err != nil {
		return 0
	}
	return n
}

// UnflushedSize is the size of the live WAL: writes not yet flushed to sstables.
func (e *Engine) UnflushedSize() uint64 {
	if e.closed.Load() {
		return 0
	}
	return e.db.Metrics().WAL.Size
}

// Close closes the database. Every snapshot and iterator must be closed first.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return storage.ErrClosed
	}
	return e.db.Close()
}

func iterOptions(o storage.IterOptions) *pebble.IterOptions {
	return &pebble.IterOptions{LowerBound: o.LowerBound, UpperBound: o.UpperBound}
}

func get(v []byte, closer io.Closer, err error) ([]byte, error) {
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, closer.Close()
}

type batch struct {
	b        *pebble.Batch
	onCommit func(time.Duration)
}

func (b *batch) Get(key []byte) ([]byte, error) { return get(b.b.Get(key)) }
func (b *batch) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	return newIter(b.b.NewIter(iterOptions(o)))
}
func (b *batch) Set(key, value []byte) error         { return b.b.Set(key, value, nil) }
func (b *batch) Delete(key []byte) error             { return b.b.Delete(key, nil) }
func (b *batch) DeleteRange(start, end []byte) error { return b.b.DeleteRange(start, end, nil) }

// DeleteSized implements storage.SizedDeleter with Pebble's DeleteSized: the size lets
// Pebble's compaction picker count the space the tombstone frees.
func (b *batch) DeleteSized(key []byte, valueSize uint32) error {
	return b.b.DeleteSized(key, valueSize, nil)
}
func (b *batch) Count() uint32 { return b.b.Count() }
func (b *batch) Close() error  { return b.b.Close() }

// Commit applies the batch; sync=true waits for the WAL fsync (pebble.Sync).
func (b *batch) Commit(sync bool) error {
	o := pebble.NoSync
	if sync {
		o = pebble.Sync
	}
	if b.onCommit == nil {
		return b.b.Commit(o)
	}
	start := time.Now()
	err := b.b.Commit(o)
	b.onCommit(time.Since(start))
	return err
}

type snapshot struct{ s *pebble.Snapshot }

func (s *snapshot) Get(key []byte) ([]byte, error) { return get(s.s.Get(key)) }
func (s *snapshot) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	return newIter(s.s.NewIter(iterOptions(o)))
}
func (s *snapshot) Close() error { return s.s.Close() }

// iter adapts *pebble.Iterator: Value reports a value-fetch failure through Error.
type iter struct{ *pebble.Iterator }

func newIter(it *pebble.Iterator, err error) (storage.Iterator, error) {
	if err != nil {
		return nil, err
	}
	return iter{it}, nil
}

func (i iter) Value() []byte {
	v, _ := i.ValueAndErr()
	return v
}

// zapLogger adapts zap to pebble.Logger. Fatalf logs at fatal level and exits the
// process: Pebble expects Fatalf not to return.
type zapLogger struct{ l *zap.SugaredLogger }

func (z zapLogger) Infof(format string, args ...any)  { z.l.Infof(format, args...) }
func (z zapLogger) Errorf(format string, args ...any) { z.l.Errorf(format, args...) }
func (z zapLogger) Fatalf(format string, args ...any) { z.l.Fatalf(format, args...) }
