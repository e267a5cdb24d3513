// Package storage owns the storage-engine interface and every key layout that MetaStore
// writes into an engine (see keys.go). It knows nothing about Raft, MVCC semantics or
// gRPC; engines (storage/pebble; storage/rocksdb with the rocksdb build tag) implement
// Engine, and storage/engines opens the one a data dir was made with.
//
// One Engine holds everything a member keeps: the Raft log and hard state (raftlog), and
// the state machine (mvcc, apply, membership). Sharing one engine, and so one write-ahead
// log, means a synced write makes every earlier unsynced write durable too: the state
// machine commits without fsync and relies on the next synced Raft append.
package storage

import "errors"

// ErrNotFound is returned by Reader.Get when the key does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrClosed is returned by operations on a closed engine.
var ErrClosed = errors.New("storage: closed")

// Reader reads a consistent view: the engine's latest state, a snapshot, or a batch
// together with its own uncommitted writes.
type Reader interface {
	// Get returns a copy of the value stored at key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// NewIter returns an iterator over [opts.LowerBound, opts.UpperBound).
	NewIter(opts IterOptions) (Iterator, error)
}

// IterOptions bounds an iterator. A nil bound is unbounded.
type IterOptions struct {
	LowerBound []byte
	UpperBound []byte
}

// Iterator walks keys in byte order. Key and Value are valid only until the next
// positioning call; copy them to keep them.
type Iterator interface {
	First() bool
	Last() bool
	SeekGE(key []byte) bool
	SeekLT(key []byte) bool
	// SeekPrefixGE is SeekGE limited to the keys whose prefix (Split) is key's: until
	// the next First, Last, SeekGE or SeekLT, Next stops at the end of that prefix.
	// Engines use it to skip data that prefix filters rule out; Prev is not allowed.
	SeekPrefixGE(key []byte) bool
	Next() bool
	Prev() bool
	Valid() bool
	Key() []byte
	Value() []byte
	Error() error
	Close() error
}

// Batch collects writes that commit atomically. Reads through a Batch see the
// batch's own writes on top of the engine's state when the batch was created.
type Batch interface {
	Reader
	Set(key, value []byte) error
	Delete(key []byte) error
	// DeleteRange deletes every key in [start, end).
	DeleteRange(start, end []byte) error
	// Commit applies the batch; sync=true returns only after the write is on stable storage.
	Commit(sync bool) error
	// Count is the number of operations in the batch.
	Count() uint32
	Close() error
}

// SizedDeleter is implemented by batches that can record, with a point deletion, the
// size of the value it deletes (Pebble's DeleteSized), so that the engine's own
// compactions know how much space the tombstone frees and reclaim it sooner.
type SizedDeleter interface {
	DeleteSized(key []byte, valueSize uint32) error
}

// Snapshot is a point-in-time read-only view. It must be closed.
type Snapshot interface {
	Reader
	Close() error
}

// TableReader is implemented by engines that keep recent writes in memory tables before
// flushing them into on-disk tables (LSM engines such as Pebble). A caller that
// remembers every key it has written since some flush can look any other key up in the
// flushed tables alone, skipping the memory tables' search.
type TableReader interface {
	// NewTableIter is NewIter over the flushed tables alone: writes not yet flushed are
	// invisible. Its seeks are expected to find nothing, so the engine consults every
	// prefix filter it has.
	NewTableIter(opts IterOptions) (Iterator, error)
	// FlushAsync starts flushing every write committed so far; the channel is closed
	// once all of them are in flushed tables.
	FlushAsync() (<-chan struct{}, error)
}

// Engine is an ordered, durable key-value store.
type Engine interface {
	Reader
	NewBatch() Batch
	NewSnapshot() Snapshot
	// Compact asks the engine to physically reclaim space for [start, end) now and
	// returns when that is done.
	Compact(start, end []byte) error
	// Sync makes every committed write durable.
	Sync() error
	// DiskSize is the bytes the engine occupies on disk; LiveSize estimates the bytes
	// of live data (what a rewrite would keep).
	DiskSize() uint64
	LiveSize() uint64
	// TableSize estimates the bytes the keys in [start, end) take in the engine's
	// flushed tables; UnflushedSize is the live write-ahead log, which holds the writes
	// not yet in tables (of every range).
	TableSize(start, end []byte) uint64
	UnflushedSize() uint64
	// Name names the engine ("pebble", "rocksdb") for logs and status.
	Name() string
	Close() error
}
