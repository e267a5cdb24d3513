// Package mvcc owns multi-version keys on a storage.Engine: revisions as etcd's
// (main, sub), versions, tombstones, reads at any revision between the compacted one and
// the current one, the revision log that watch replays, and compaction. It keeps no
// in-memory index of keys: see storage/keys.go for the encoding.
//
// It must not know about Raft, gRPC or request protos other than mvccpb.KeyValue.
// Writes come only from the apply package, one TxnWrite at a time, into a storage.Batch
// that apply commits together with the applied index.
//
// THIS FILE IS THE AGREED API. Bodies marked "not implemented" are filled in by the
// package owner; signatures change only with the callers (apply, server) in the same commit.
package mvcc

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/storage"
)

// Errors, with etcd's messages.
var (
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
)

var errNotImplemented = errors.New("mvcc: not implemented")

// RangeOptions are the options mvcc itself implements. Sorting and the min/max
// revision filters are the caller's (apply's) job.
type RangeOptions struct {
	Limit     int64 // 0: no limit
	Rev       int64 // 0: the view's current revision
	CountOnly bool  // return Count only, no KVs
	KeysOnly  bool  // omit values
}

// RangeResult is what a Range returns.
type RangeResult struct {
	KVs   []*mvccpb.KeyValue // at most Limit, in key order
	Rev   int64              // the view's current revision (what etcd puts in the header)
	Count int                // number of live keys in the range at the read revision, ignoring Limit
}

// ReadView reads at a fixed state. Both a committed-state read (Store.Read) and a
// TxnWrite (which sees its own writes) implement it.
type ReadView interface {
	// Range returns live keys in [key, end) at opts.Rev (etcd conventions: end nil = one
	// key; end "\x00" = all keys >= key). ErrCompacted if opts.Rev < compacted revision,
	// ErrFutureRev if opts.Rev > the view's current revision.
	Range(key, end []byte, opts RangeOptions) (RangeResult, error)
	// Rev is the view's current revision.
	Rev() int64
}

// Store is the MVCC key space. Reads are safe from any goroutine, concurrently with
// the single writer.
type Store struct {
	eng storage.Engine
}

// Open loads the store's state (current and compacted revisions) from eng. A fresh
// engine starts at revision 1, so the first write is revision 2, as in etcd.
func Open(eng storage.Engine) (*Store, error) { return nil, errNotImplemented }

// Reload re-reads the store's state from the engine, after a Raft snapshot was installed
// underneath it.
func (s *Store) Reload() error { return errNotImplemented }

// Rev is the last committed revision.
func (s *Store) Rev() int64 { return 0 }

// CompactRev is the revision of the last scheduled (logical) compaction; reads below
// it fail with ErrCompacted.
func (s *Store) CompactRev() int64 { return 0 }

// Read returns a view of the committed state as of now. Close it when done.
func (s *Store) Read() ReadCloser { return nil }

// ReadCloser is a ReadView that holds resources until closed.
type ReadCloser interface {
	ReadView
	Close()
}

// Write starts the write transaction of one applied request. Its changes go into b
// (which the caller commits) and all get main revision Rev()+1 with increasing sub
// revisions; a TxnWrite that changes nothing does not advance the revision.
// Only one TxnWrite may be open at a time.
func (s *Store) Write(b storage.Batch) *TxnWrite { return &TxnWrite{} }

// TxnWrite is an open write transaction.
type TxnWrite struct{}

var _ ReadView = (*TxnWrite)(nil)

// Range reads at the transaction's state, its own writes included.
func (t *TxnWrite) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	return RangeResult{}, errNotImplemented
}

// Rev is the revision of the transaction: the store's revision before it if it has
// written nothing yet, else the new main revision.
func (t *TxnWrite) Rev() int64 { return 0 }

// Put writes key=value with lease, returning the previous live version (nil if none).
func (t *TxnWrite) Put(key, value []byte, lease int64) (prev *mvccpb.KeyValue, err error) {
	return nil, errNotImplemented
}

// DeleteRange writes tombstones for every live key in [key, end) and returns the
// deleted versions.
func (t *TxnWrite) DeleteRange(key, end []byte) (deleted []*mvccpb.KeyValue, err error) {
	return nil, errNotImplemented
}

// End finishes the transaction: it writes the revision bookkeeping into the batch.
// After the caller has committed the batch it must call Store.Committed(t).
func (t *TxnWrite) End() error { return errNotImplemented }

// Committed publishes the transaction's revision to readers. Call it after the batch
// that holds the transaction has been committed.
func (s *Store) Committed(t *TxnWrite) {}

// ScheduleCompaction records, in b, a logical compaction at rev: once b is committed,
// reads below rev fail with ErrCompacted. ErrCompacted if rev <= CompactRev(), ErrFutureRev
// if rev > Rev(). Call Store.Committed... no: the caller commits b, then calls
// CompactionScheduled(rev) to wake the background compactor.
func (s *Store) ScheduleCompaction(b storage.Batch, rev int64) error { return errNotImplemented }

// CompactionScheduled tells the background compactor that a compaction at rev was
// committed.
func (s *Store) CompactionScheduled(rev int64) {}

// WaitCompacted returns once every version that compaction at rev may drop has been
// deleted and the engine has reclaimed their space (etcd's physical=true).
func (s *Store) WaitCompacted(ctx context.Context, rev int64) error { return errNotImplemented }

// Close stops the background compactor.
func (s *Store) Close() error { return nil }
