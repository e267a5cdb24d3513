package watch

import (
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
)

// catchUp gives one chunk of history to each of at most maxWatchersPerSync unsynced
// watchers, moves those that reached the hub's revision to the synced group, and
// cancels those that compaction overtook. It reports whether a watcher advanced and
// still has history to read (so another pass should follow at once). Called with h.mu
// held.
func (h *Hub) catchUp() bool {
	if len(h.unsynced) == 0 {
		return false
	}
	var v mvcc.ReadCloser
	defer func() {
		if v != nil {
			v.Close()
		}
	}()
	keep := make([]*watcher, 0, len(h.unsynced))
	more := false
	processed := 0
	for _, w := range h.unsynced {
		if w.done || w.synced {
			continue
		}
		if processed == maxWatchersPerSync {
			keep = append(keep, w)
			more = true
			continue
		}
		processed++
		if w.minRev > h.rev {
			h.moveToSynced(w)
			continue
		}
		if w.stream.full() {
			// Reading history it cannot take yet would be wasted: a stream that does
			// not read costs no store reads either.
			keep = append(keep, w)
			continue
		}
		if v == nil {
			v = h.store.Read()
		}
		advanced, err := h.catchUpOne(w, v)
		switch {
		case errors.Is(err, mvcc.ErrCompacted):
			if !h.cancelCompacted(w) {
				keep = append(keep, w)
			}
			continue
		case err != nil:
			h.lg.Warn("watch: reading history failed; retrying")
			keep = append(keep, w)
			continue
		}
		if w.minRev > h.rev {
			h.moveToSynced(w)
			continue
		}
		keep = append(keep, w)
		if advanced {
			more = true
		}
	}
	h.unsynced = keep
	return more
}

// catchUpOne sends w the next chunk of its history from v: the complete revisions
// from w.minRev up to the hub's revision, at most maxRevsPerChunk of them and about
// maxChunkBytes of events, in one response (as etcd, whose catch-up responses carry
// several revisions, headed by the current revision). It reports whether w advanced;
// it does not when w's stream is full. ErrCompacted if compaction removed w.minRev.
func (h *Hub) catchUpOne(w *watcher, v mvcc.ReadCloser) (bool, error) {
	if w.minRev < h.store.CompactRev() {
		return false, mvcc.ErrCompacted
	}
	to := min(h.rev, w.minRev+maxRevsPerChunk-1)
	var (
		out   []*mvccpb.Event
		size  int
		cur   int64
		upTo  = to
		start = w.minRev
	)
	err := v.Changes(start, to, func(ev *mvccpb.Event) error {
		if r := ev.Kv.ModRevision; r != cur {
			if size >= maxChunkBytes {
				upTo = cur
				return errStop
			}
			cur = r
		}
		if e, ok := w.want(ev); ok {
			out = append(out, e)
			size += proto.Size(e)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	if len(out) > 0 && !w.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: w.id, Events: out}) {
		return false, nil
	}
	w.minRev = upTo + 1
	return true, nil
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
