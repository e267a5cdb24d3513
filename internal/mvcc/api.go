// Package mvcc owns multi-version keys on a storage.Engine: revisions as etcd's
// (main, sub), versions, tombstones, reads at any revision between the compacted one and
// the current one, the revision log that watch replays, and compaction. It keeps no
// in-memory index of keys: see storage/keys.go for the encoding.
//
// It must not know about Raft, gRPC or request protos other than mvccpb.KeyValue.
// Writes come only from the apply package, one TxnWrite at a time, into a storage.Batch
// that apply commits together with the applied index.
//
// THIS FILE IS THE AGREED API; signatures change only with the callers (apply, server)
// in the same commit. The encoding of versions and of the revision log is described in
// encoding.go.
//
// Concurrency. One goroutine (apply) writes: Write, TxnWrite, End, Committed,
// ScheduleCompaction, CompactionScheduled, Reload. Any goroutine may call Rev, CompactRev,
// Read and WaitCompacted. The revision readers see is published (atomically) only by
// Committed, after the batch is in the engine. Each Read view holds an engine snapshot,
// taken AFTER loading the published revision and BEFORE loading the compacted revision:
// so the snapshot holds every version at or below the view's revision, and the
// background compactor, which starts deleting only after the new compacted revision is
// published, cannot remove a version the view may still read.
//
// Compaction. ScheduleCompaction records the logical compaction in the caller's batch;
// CompactionScheduled (after commit) publishes it and wakes the compactor goroutine
// (started by Open, stopped by Close). The compactor walks the revision log up to the
// compaction revision in batches of compactBatchSize entries, deletes every version a
// read at or above the compaction revision can no longer see, then asks the engine to
// reclaim the space and records storage.MetaCompactFinished. Open and Reload resume an
// unfinished compaction.
//
// Counts. Every range answers the number of live keys in the whole range, limit or not
// (as etcd). Reads of committed state remember recent counts (memo.go) and bring them to
// another revision with the revision log, so that a range read again, or paged through,
// does not walk every key each time.
package mvcc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// Errors, with etcd's messages.
var (
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
)

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

	// gate makes a state replacement (Replace: a Raft snapshot install) atomic for
	// readers: every view is opened under gate.RLock, and Replace holds gate.Lock
	// while it rewrites the engine and reloads. Engine snapshots are point-in-time, so
	// a view opened before a Replace keeps seeing the old state after it.
	gate sync.RWMutex

	rev        atomic.Int64 // published: last committed revision
	compactRev atomic.Int64 // published: last scheduled compaction

	// Writer-only state: revisions including ended but not yet committed TxnWrites,
	// so that several TxnWrites can share one batch.
	writeRev     int64
	writeCompact int64
	writeKeys    int64 // live keys after the ended TxnWrites

	// keys is the number of live keys at the published revision (etcd's
	// etcd_debugging_mvcc_keys_total). The store has no key index to count, and
	// counting by a scan costs a walk of every key: so every TxnWrite counts the keys
	// it creates (a put with no live previous version) and deletes (each live key a
	// delete range removes), and End writes the new total into storage.MetaKeyCount
	// in the transaction's batch, so it is as durable as the data, travels in Raft
	// snapshots and is the same on every member. Only a state written without it (a
	// data dir of an older build, a restored etcd snapshot) is counted by a scan, once,
	// at Open or Reload. Compaction removes no live key and leaves it alone.
	keys atomic.Int64

	mu       sync.Mutex
	target   int64         // the compaction the compactor works towards
	finished int64         // the last physically finished compaction
	gen      uint64        // bumped by Reload: an older compaction run stops
	err      error         // the compactor's last failure, reported to waiters
	changed  chan struct{} // closed and replaced whenever finished or err changes
	closed   bool

	opts   Options
	stats  opStats      // stats.go
	latest *latestCache // writer-only
	memo   *countMemo   // counts of committed state, shared by reads
	hashes compactHashes

	wake chan struct{} // capacity 1
	stop chan struct{}
	done chan struct{}
}

// Options tune a Store.
type Options struct {
	// LatestCacheWrites is how many writes one generation of the writer's cache of newest
	// versions takes before the engine is asked to flush (see latestCache). 0:
	// DefaultLatestCacheWrites; negative: no cache.
	LatestCacheWrites int
	// OnCompactBatch, if set, is told each physical compaction batch: how long it took
	// (from its first read to its commit) and how many versions it deleted (etcd's
	// etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds and _keys_total).
	OnCompactBatch func(took time.Duration, versions int)
	// OnCompacted, if set, is told that a physical compaction finished, after took
	// (etcd's etcd_debugging_mvcc_db_compaction_total_duration_milliseconds and _last).
	OnCompacted func(took time.Duration)
}

// Open loads the store's state (current and compacted revisions) from eng. A fresh
// engine starts at revision 1, so the first write is revision 2, as in etcd.
func Open(eng storage.Engine) (*Store, error) { return OpenWithOptions(eng, Options{}) }

// OpenWithOptions is Open with options.
func OpenWithOptions(eng storage.Engine, opts Options) (*Store, error) {
	if opts.LatestCacheWrites == 0 {
		opts.LatestCacheWrites = DefaultLatestCacheWrites
	}
	tr, _ := eng.(storage.TableReader)
	s := &Store{
		eng:     eng,
		opts:    opts,
		latest:  newLatestCache(opts.LatestCacheWrites, tr),
		memo:    newCountMemo(),
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	go s.runCompactor()
	return s, nil
}

// Reload re-reads the store's state from the engine, after a Raft snapshot was installed
// underneath it, or after a batch holding ended TxnWrites was discarded. A compaction in
// progress stops at its next batch and the one recorded in the engine (if unfinished)
// starts over. A compaction batch that commits after the install is still correct: a
// version (key, main, sub) is the same on every member, and the installed state's
// compacted revision is at least the one being run, as both come from the same log.
func (s *Store) Reload() error {
	rev, err := storage.StoreRevision(s.eng)
	if err != nil {
		return err
	}
	scheduled, err := readMeta(s.eng, storage.MetaCompactScheduled, 0)
	if err != nil {
		return err
	}
	rev = max(rev, scheduled)
	finished, err := readMeta(s.eng, storage.MetaCompactFinished, 0)
	if err != nil {
		return err
	}
	keys, err := readMeta(s.eng, storage.MetaKeyCount, -1)
	if err != nil {
		return err
	}
	if keys < 0 {
		_, n, err := rangeAt(s.eng, []byte{0}, []byte{0}, rev, RangeOptions{CountOnly: true}, -1)
		if err != nil {
			return err
		}
		keys = int64(n)
	}
	s.writeRev, s.writeCompact, s.writeKeys = rev, scheduled, keys
	s.keys.Store(keys)
	s.latest.reset()
	s.memo.reset()
	s.hashes.reset()
	s.rev.Store(rev) // before compactRev: see Read
	s.compactRev.Store(scheduled)
	s.mu.Lock()
	s.target, s.finished, s.err = scheduled, finished, nil
	s.gen++
	s.broadcastLocked()
	s.mu.Unlock()
	s.kick()
	return nil
}

func readMeta(r storage.Reader, key []byte, def int64) (int64, error) {
	b, err := r.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	return parseInt64(b)
}

// Rev is the last committed revision.
func (s *Store) Rev() int64 { return s.rev.Load() }

// Keys is the number of live keys at Rev() (see Store.keys).
func (s *Store) Keys() int64 { return s.keys.Load() }

// CompactRev is the revision of the last scheduled (logical) compaction; reads below
// it fail with ErrCompacted.
func (s *Store) CompactRev() int64 { return s.compactRev.Load() }

// Read returns a view of the committed state as of now. Close it when done.
func (s *Store) Read() ReadCloser {
	s.gate.RLock()
	defer s.gate.RUnlock()
	for {
		gen := s.memo.generation() // before the snapshot: see countMemo
		rev := s.rev.Load()
		snap := s.eng.NewSnapshot()
		compact := s.compactRev.Load()
		if compact <= rev {
			return &view{snap: snap, rev: rev, compact: compact, memo: s.memo, gen: gen, stats: &s.stats}
		}
		// A compaction above rev was published after rev was loaded: the
		// revision it compacted at has been published too by now.
		_ = snap.Close()
	}
}

// NewSnapshot pins the engine's whole state at a moment when no Replace is running:
// the state before a replacement or after it, never one half written. Readers of the
// state machine outside mvcc (the outgoing Raft snapshot) take their snapshots here.
func (s *Store) NewSnapshot() storage.Snapshot {
	s.gate.RLock()
	defer s.gate.RUnlock()
	return s.eng.NewSnapshot()
}

// Replace runs install, which rewrites the engine's state machine underneath the store
// (a Raft snapshot install), with every reader shut out, then reloads the store's state
// from the engine. Views opened before keep the old state; views opened after see the
// new state and the new revisions. Replace is called by the single writer, never
// concurrently with a TxnWrite; install must not open views (Read, NewSnapshot).
func (s *Store) Replace(install func() error) error {
	s.gate.Lock()
	defer s.gate.Unlock()
	if err := install(); err != nil {
		return err
	}
	return s.Reload()
}

// ReadCloser is a ReadView of committed state that holds an engine snapshot until
// closed.
type ReadCloser interface {
	ReadView
	// Changes calls fn, in revision order, with every change whose main revision is in
	// [fromRev, toRev] (toRev <= 0: the view's revision), as watch sends them: a PUT with
	// the new KeyValue, or a DELETE whose Kv has only Key and ModRevision; PrevKv is the
	// version the change replaced, if it was live. ErrCompacted if fromRev < the view's
	// compacted revision, ErrFutureRev if toRev > the view's revision. An error from fn
	// stops the walk and is returned.
	Changes(fromRev, toRev int64, fn func(ev *mvccpb.Event) error) error
	// ChangesOf is Changes for the keys want accepts (nil: every key): the other
	// changes are skipped without reading their versions.
	ChangesOf(fromRev, toRev int64, want func(key []byte) bool, fn func(ev *mvccpb.Event) error) error
	Close()
}

// Changes runs ReadCloser.Changes on a fresh Read view.
func (s *Store) Changes(fromRev, toRev int64, fn func(ev *mvccpb.Event) error) error {
	v := s.Read()
	defer v.Close()
	return v.Changes(fromRev, toRev, fn)
}

// Close stops the background compactor. It does not close the engine.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.broadcastLocked()
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.hashes.reset()
	return nil
}
