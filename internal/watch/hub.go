// Package watch owns etcd's watch semantics over the MVCC revision log: the watchers
// of every stream, which revisions each has received, and the delivery of events to
// them in revision order, with no gap and no duplicate.
//
// Where events come from. The server tells the hub, after each applied batch, the
// store's revision (Notify: an atomic store and a non-blocking wake-up, so apply never
// waits for a watcher). The hub's one goroutine then reads the new revisions from the
// store through an ordinary committed-state view (mvcc Store.Read, ReadCloser.Changes
// over the `R` revision log) and hands each revision's events to the watchers.
//
// Groups. A synced watcher has received every matching event up to the hub's revision
// (watchers of one key are found by the key, range watchers in an interval tree): it
// gets new revisions as they are read, one response per revision, unless its stream
// is busy (streamBusyLen responses queued). A watcher that starts in the past, or whose
// stream was busy or full when a revision was for it, is unsynced: the hub catches it
// up from the revision log, one chunk (at most maxRevsPerChunk revisions and about
// maxChunkBytes of events, never splitting a revision) per pass, each chunk read once
// for all the watchers it starts in, and moves it back to synced when it has what the
// store had. A stream that does not read thus costs its buffer (streamBufLen responses)
// and a position per watcher, never a queue or a store read, and never delays another
// stream: sends are non-blocking. A watcher still catching up when compaction passes
// its next revision is canceled with compact_revision set, as etcd.
//
// It must not know about gRPC, Raft or the server: grpcapi drives a Stream, the server
// calls Notify (wired by cmd), and it reads the store only through mvcc's read views.
package watch

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/mvcc"
)

// Errors of Stream.Watch and Stream.Cancel, with etcd's messages (they reach clients
// as cancel_reason text).
var (
	ErrEmptyRange  = errors.New("mvcc: watcher range is empty")
	ErrDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	ErrNotExist    = errors.New("mvcc: watcher does not exist")
)

// Limits.
const (
	// streamBufLen is the number of responses a stream buffers (etcd's chanBufLen is
	// 128: more room keeps more watchers of a busy stream synced), and maxStreamBytes
	// about the most event bytes they hold (one response alone may pass it).
	streamBufLen   = 1024
	maxStreamBytes = 16 << 20
	// streamBusyLen: a stream with this many responses queued is behind. A synced
	// watcher of a busy stream is not sent a revision alone but moves to unsynced, and
	// unsynced watchers of a busy stream wait: once the stream has drained below it,
	// each is caught up with every revision it missed in one response (etcd batches
	// its slow watchers the same way). So the busier a stream, the more revisions per
	// response, and the fewer messages to send and to receive per event.
	streamBusyLen = 128
	// maxRevsPerChunk bounds the revisions one catch-up response covers (etcd's
	// watchBatchMaxRevs); maxChunkBytes bounds its events' size (a whole revision is
	// never split, so a chunk may pass it by one revision).
	maxRevsPerChunk = 1000
	maxChunkBytes   = 1 << 20
	// maxWatchersPerSync bounds the unsynced watchers caught up in one pass, so that
	// new revisions reach synced watchers between passes (etcd's maxWatchersPerSync).
	maxWatchersPerSync = 512
	// maxRevsPerPass bounds the new revisions read for synced watchers in one pass.
	maxRevsPerPass = 1000
	// resyncPeriod is how often the hub retries unsynced watchers whose streams were
	// full (etcd's watchResyncPeriod).
	resyncPeriod = 100 * time.Millisecond
)

// Hub serves the watchers of every stream of one member.
type Hub struct {
	store *mvcc.Store
	lg    *zap.Logger

	notified atomic.Int64
	wake     chan struct{} // capacity 1
	stop     chan struct{}
	done     chan struct{}

	eventsSent atomic.Uint64

	mu       sync.Mutex
	watchers int    // live watchers (not canceled, compacted or closed)
	seq      uint64 // of the last watcher created
	rev      int64  // every revision up to rev was delivered to the synced group
	synced   *group
	unsynced []*watcher // in the order they fell behind
	streams  map[*Stream]struct{}
	closed   bool
}

// New returns a hub over store, at the store's current revision, and starts its
// goroutine. Close stops it.
func New(store *mvcc.Store, lg *zap.Logger) *Hub {
	if lg == nil {
		lg = zap.NewNop()
	}
	h := &Hub{
		store:   store,
		lg:      lg,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		rev:     store.Rev(),
		synced:  newGroup(),
		streams: make(map[*Stream]struct{}),
	}
	h.notified.Store(h.rev)
	go h.run()
	return h
}

// Notify tells the hub that revision rev is committed and visible to store reads. It
// never blocks; calls may be coalesced.
func (h *Hub) Notify(rev int64) {
	for {
		cur := h.notified.Load()
		if rev <= cur || h.notified.CompareAndSwap(cur, rev) {
			break
		}
	}
	h.kick()
}

func (h *Hub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Close stops the hub and closes every stream's channel.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for s := range h.streams {
		s.closeLocked()
	}
	h.mu.Unlock()
	close(h.stop)
	<-h.done
}

// Rev is the revision up to which the synced watchers have their events.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

func (h *Hub) run() {
	defer close(h.done)
	t := time.NewTimer(resyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
		case <-t.C:
		}
		more := h.pass()
		if more {
			h.kick()
		}
		t.Reset(resyncPeriod)
	}
}

// pass does one round of work: new revisions for the synced group, one chunk for each
// of a bounded number of unsynced watchers, pending progress requests. It reports
// whether more work is ready at once.
func (h *Hub) pass() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	more := h.deliverNew()
	if h.catchUp() {
		more = true
	}
	h.answerProgress()
	return more
}

// errStop ends a revision-log walk early.
var errStop = errors.New("watch: stop walk")

// deliverNew reads the revisions after h.rev that were notified (at most
// maxRevsPerPass) and hands them to the synced group, one revision at a time.
func (h *Hub) deliverNew() bool {
	target := h.notified.Load()
	if target <= h.rev {
		return false
	}
	if h.synced.size() == 0 {
		// Nobody to deliver to: skip the read (a member without watchers pays
		// nothing for the hub). A watcher created later starts after the store's
		// revision or catches up from the log.
		h.rev = max(h.rev, min(target, h.store.Rev()))
		return false
	}
	v := h.store.Read()
	defer v.Close()
	to := min(target, v.Rev(), h.rev+maxRevsPerPass)
	if to <= h.rev {
		return false
	}
	var (
		cur int64
		evs []*mvccpb.Event
	)
	// Only the keys some synced watcher watches are read: the others cost the walk
	// of the revision log alone (a member with many idle watchers writes as fast).
	err := v.ChangesOf(h.rev+1, to, h.synced.mayWant, func(ev *mvccpb.Event) error {
		if r := ev.Kv.ModRevision; r != cur {
			h.notifySynced(cur, evs)
			cur, evs = r, nil
		}
		evs = append(evs, ev)
		return nil
	})
	if errors.Is(err, mvcc.ErrCompacted) {
		// The hub itself fell behind a compaction (a snapshot install, or a very long
		// stall): every synced watcher catches up, or is canceled, from where it is.
		h.synced.each(func(w *watcher) {
			w.minRev = max(w.minRev, h.rev+1)
			h.moveToUnsynced(w)
		})
		h.rev = to
		return true
	}
	if err != nil {
		h.lg.Warn("watch: reading new revisions failed; retrying", zap.Error(err))
		return false
	}
	h.notifySynced(cur, evs)
	h.rev = to
	// More is ready when the pass stopped at its bound, not when the store has not
	// yet published what was notified (a later Notify wakes the hub then).
	return to < min(target, v.Rev())
}

// notifySynced hands the events of revision rev to the synced watchers they match. A
// watcher whose stream is full moves to unsynced, to be caught up from rev.
func (h *Hub) notifySynced(rev int64, evs []*mvccpb.Event) {
	if len(evs) == 0 {
		return
	}
	shared := newEvents(evs)
	shared.header = &pb.ResponseHeader{Revision: rev}
	h.synced.matching(evs, func(w *watcher) {
		if w.minRev > rev {
			return
		}
		out := w.filter(shared)
		if len(out) == 0 {
			w.minRev = rev + 1
			return
		}
		if w.stream.busy() {
			w.minRev = rev
			h.moveToUnsynced(w)
			return
		}
		if !w.trySend(&pb.WatchResponse{Header: shared.header, WatchId: w.id, Events: out}) {
			w.minRev = rev
			h.moveToUnsynced(w)
			return
		}
		w.minRev = rev + 1
	})
}

func (h *Hub) moveToUnsynced(w *watcher) {
	if w.synced {
		h.synced.delete(w)
		w.synced = false
	}
	h.unsynced = append(h.unsynced, w)
}

func (h *Hub) moveToSynced(w *watcher) {
	w.synced = true
	h.synced.add(w)
}

// add registers a new watcher: synced if it starts after the store's revision, else
// unsynced, to be caught up from the store (up to what the store has then, as etcd's
// first response holds). Called with h.mu held.
func (h *Hub) add(w *watcher) {
	h.watchers++
	if w.minRev > max(h.rev, h.store.Rev()) {
		h.moveToSynced(w)
		return
	}
	h.unsynced = append(h.unsynced, w)
	h.kick()
}

// remove forgets w, in whichever group it is. Called with h.mu held.
func (h *Hub) remove(w *watcher) {
	if !w.done {
		h.watchers--
	}
	w.done = true
	if w.synced {
		h.synced.delete(w)
		w.synced = false
	}
	// An unsynced watcher is dropped from the list by the next catchUp.
}

// Metrics are the hub's figures, pulled (etcd's etcd_debugging_mvcc_watch_stream_total,
// _watcher_total, _slow_watcher_total and _events_total).
type Metrics struct {
	Streams      int
	Watchers     int
	SlowWatchers int    // watchers in the unsynced group
	EventsSent   uint64 // events queued on streams since start
}

// Metrics returns the hub's current figures.
func (h *Hub) Metrics() Metrics {
	h.mu.Lock()
	defer h.mu.Unlock()
	slow := 0
	for _, w := range h.unsynced {
		if !w.done && !w.synced {
			slow++
		}
	}
	return Metrics{Streams: len(h.streams), Watchers: h.watchers, SlowWatchers: slow, EventsSent: h.eventsSent.Load()}
}
