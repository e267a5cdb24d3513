package watch

import (
	"cmp"
	"errors"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/mvcc"
)

// catchUp gives one chunk of history to each of at most maxWatchersPerSync unsynced
// watchers whose streams have room, moves those that reached the hub's revision to the
// synced group, and cancels those that compaction overtook. Watchers are served in
// order of their next revision, and each chunk of the revision log is read once for
// every watcher it starts in (as etcd's syncWatchers reads once for its batch). It
// reports whether a watcher advanced and still has history to read (so another pass
// should follow at once). Called with h.mu held.
func (h *Hub) catchUp() bool {
	if len(h.unsynced) == 0 {
		return false
	}
	v := h.store.Read()
	defer v.Close()
	vrev := v.Rev() // at least the hub's revision
	keep := make([]*watcher, 0, len(h.unsynced))
	var ready []*watcher
	more := false
	for _, w := range h.unsynced {
		switch {
		case w.done || w.synced:
		case w.minRev > vrev:
			h.moveToSynced(w)
		case len(ready) == maxWatchersPerSync:
			keep = append(keep, w)
			more = true
		case w.stream.busy():
			// Reading history it cannot take yet would be wasted (a stream that does
			// not read costs no store reads either), and waiting until the stream
			// has drained batches more revisions into its next response.
			keep = append(keep, w)
		default:
			ready = append(ready, w)
		}
	}
	if len(ready) == 0 {
		h.unsynced = keep
		return more
	}
	slices.SortStableFunc(ready, func(a, b *watcher) int { return cmp.Compare(a.minRev, b.minRev) })
	compact := h.store.CompactRev()
	for i := 0; i < len(ready); {
		if w := ready[i]; w.minRev < compact {
			if !h.cancelCompacted(w) {
				keep = append(keep, w)
			}
			i++
			continue
		}
		evs, hi, err := h.readChunk(v, ready[i].minRev)
		if errors.Is(err, mvcc.ErrCompacted) {
			compact = max(h.store.CompactRev(), ready[i].minRev+1) // the view's compaction is no later
			continue
		}
		if err != nil {
			h.lg.Warn("watch: reading history failed; retrying", zap.Error(err))
			keep = append(keep, ready[i:]...)
			break
		}
		shared := newEvents(evs)
		for ; i < len(ready) && ready[i].minRev <= hi; i++ {
			w := ready[i]
			if out := w.filter(shared); len(out) > 0 &&
				!w.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: vrev}, WatchId: w.id, Events: out}) {
				keep = append(keep, w)
				continue
			}
			w.minRev = hi + 1
			if w.minRev > vrev {
				h.moveToSynced(w)
				continue
			}
			keep = append(keep, w)
			more = true
		}
	}
	h.unsynced = keep
	return more
}

// readChunk reads the events of the complete revisions from lo up to the view's
// revision, at most maxRevsPerChunk of them and about maxChunkBytes (a revision is
// never split, so a chunk may pass it by one revision). It returns them with the last
// revision read.
//
// The view's revision may be above the hub's (the hub has not read the latest
// revisions yet): a watcher caught up past the hub's revision joins the synced group
// with its minRev above it, and the synced delivery skips what it already has. So a
// catch-up response holds what the store had when it was read, as etcd's does.
func (h *Hub) readChunk(v mvcc.ReadCloser, lo int64) ([]*mvccpb.Event, int64, error) {
	hi := min(v.Rev(), lo+maxRevsPerChunk-1)
	var (
		evs  []*mvccpb.Event
		size int
		cur  int64
	)
	err := v.Changes(lo, hi, func(ev *mvccpb.Event) error {
		if r := ev.Kv.ModRevision; r != cur {
			if size >= maxChunkBytes {
				hi = cur
				return errStop
			}
			cur = r
		}
		evs = append(evs, ev)
		size += eventSize(ev)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, 0, err
	}
	return evs, hi, nil
}

// eventSize is about what ev costs in memory and on the wire.
func eventSize(ev *mvccpb.Event) int {
	n := 64 + len(ev.Kv.Key) + len(ev.Kv.Value)
	if ev.PrevKv != nil {
		n += 64 + len(ev.PrevKv.Key) + len(ev.PrevKv.Value)
	}
	return n
}

// cancelCompacted tells w that compaction passed its next revision, as etcd: a
// response with compact_revision set (the stream layer marks it canceled), after
// which the watcher receives nothing more. It stays known to its stream, so that its
// ID stays taken until the client cancels it. False if the stream is full (it is
// retried on the next pass).
func (h *Hub) cancelCompacted(w *watcher) bool {
	resp := &pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: w.id, CompactRevision: h.store.CompactRev()}
	if !w.trySend(resp) {
		return false
	}
	h.remove(w)
	return true
}

// answerProgress answers the pending progress requests of streams whose watchers are
// all synced. Called with h.mu held.
func (h *Hub) answerProgress() {
	for s := range h.streams {
		if s.progressPending {
			s.maybeAnswerProgressLocked()
		}
	}
}
