package watch

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Stream is the watches of one client stream (etcd's mvcc.WatchStream). Every response
// for its watchers is queued, in order, on one channel of streamBufLen responses
// (Chan): events (WatchId, Events, Header.Revision), a compaction (CompactRevision
// set: the watcher is then done) and progress (no events; WatchId -1 for
// RequestProgressAll). The caller fills the rest of the header in a header of its own:
// responses, their headers and their events slices are shared by many watchers and
// must not be written.
//
// Its methods are safe for concurrent use; Close must be called when the client
// stream ends.
type Stream struct {
	h  *Hub
	ch chan *pb.WatchResponse

	// Guarded by h.mu.
	watchers        map[int64]*watcher
	nextID          int64
	closed          bool
	progressPending bool
	progressAt      int64 // the store's revision when progress was requested
	// maxSent is the highest revision of an event queued on the stream: a progress
	// response never reports less (a catch-up may run ahead of the hub's revision).
	maxSent int64
	// sizes are the event bytes of the responses queued on ch, oldest first, and
	// queuedBytes their sum (offer, reclaim).
	sizes       []int
	queuedBytes int
}

// NewStream opens a stream. On a closed hub the stream is closed already.
func (h *Hub) NewStream() *Stream {
	s := &Stream{h: h, ch: make(chan *pb.WatchResponse, streamBufLen), watchers: make(map[int64]*watcher)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.closed = true
		close(s.ch)
		return s
	}
	h.streams[s] = struct{}{}
	return s
}

// Chan is where the stream's responses arrive; it is closed by Close (or the hub's).
func (s *Stream) Chan() <-chan *pb.WatchResponse { return s.ch }

// full reports whether the stream's buffer has no room for a response: all its
// slots, or maxStreamBytes of events, are taken. Called with Hub.mu held.
func (s *Stream) full() bool {
	s.reclaim()
	return len(s.ch) == cap(s.ch) || s.queuedBytes >= maxStreamBytes
}

// busy reports whether the stream is behind (streamBusyLen responses queued, or the
// stream is full): its watchers then get their revisions batched by the catch-up.
// Called with Hub.mu held.
func (s *Stream) busy() bool {
	return s.full() || len(s.ch) >= streamBusyLen
}

// offer queues resp without blocking; false if the stream is full, or if resp's events
// would pass maxStreamBytes while other responses are queued (one response alone may
// pass it: a revision is never split). On a closed stream it drops resp and reports
// true. Every send to s.ch is made here, with Hub.mu held, so that the sizes queue
// mirrors the channel. Called with Hub.mu held.
func (s *Stream) offer(resp *pb.WatchResponse) bool {
	if s.closed {
		return true
	}
	s.reclaim()
	size := 0
	for _, ev := range resp.Events {
		size += eventSize(ev)
	}
	if len(s.sizes) > 0 && s.queuedBytes+size > maxStreamBytes {
		return false
	}
	select {
	case s.ch <- resp:
	default:
		return false
	}
	s.sizes = append(s.sizes, size)
	s.queuedBytes += size
	if n := len(resp.Events); n > 0 {
		s.maxSent = max(s.maxSent, resp.Events[n-1].Kv.ModRevision)
		s.h.eventsSent.Add(uint64(n))
	}
	return true
}

// reclaim forgets the sizes of the responses the consumer has taken: the channel is
// FIFO and only offer sends, so they are the oldest len(sizes) - len(ch).
func (s *Stream) reclaim() {
	taken := len(s.sizes) - len(s.ch)
	for _, n := range s.sizes[:taken] {
		s.queuedBytes -= n
	}
	s.sizes = s.sizes[taken:]
	if len(s.sizes) == 0 {
		s.sizes = nil // let the array go
	}
}

// Rev is the store's current revision (what etcd puts in a created response's header).
func (s *Stream) Rev() int64 { return s.h.store.Rev() }

// Watch creates a watcher as etcd's WatchStream.Watch: id 0 (clientv3.AutoWatchID)
// takes the lowest free ID counting from the last one assigned; another ID must be
// free on the stream (ErrDuplicateID). Key and RangeEnd are taken as etcd's mvcc
// takes them, the caller having normalised them: a nil RangeEnd watches Key alone, an
// empty non-nil one every key from Key; a RangeEnd not above Key is ErrEmptyRange.
// StartRevision 0 watches from the next revision; a revision at or below the current
// one replays history from it. The caller refuses negative revisions.
func (s *Stream) Watch(r *pb.WatchCreateRequest) (int64, error) {
	if len(r.RangeEnd) != 0 && bytes.Compare(r.Key, r.RangeEnd) != -1 {
		return -1, ErrEmptyRange
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return -1, ErrEmptyRange // as etcd's closed stream
	}
	id := r.WatchId
	if id == 0 {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		return -1, ErrDuplicateID
	}
	h.seq++
	w := &watcher{seq: h.seq, id: id, stream: s, key: r.Key, end: r.RangeEnd, startRev: r.StartRevision, prevKV: r.PrevKv}
	for _, f := range r.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	w.minRev = r.StartRevision
	if w.minRev <= 0 {
		// From now: after the revision the store has committed, which may be ahead of
		// the hub's (the hub reads it soon after).
		w.minRev = h.store.Rev() + 1
	}
	s.watchers[id] = w
	h.add(w)
	return id, nil
}

// Cancel removes the watcher id. ErrNotExist if there is none (or the stream is
// closed).
func (s *Stream) Cancel(id int64) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil || s.closed {
		return ErrNotExist
	}
	h.remove(w)
	delete(s.watchers, id)
	return nil
}

// RequestProgress queues, if the watcher id is synced, a progress response for it at
// the hub's revision; otherwise it does nothing (as etcd, for the periodic progress
// notification). Nor while the hub is below the revision the watcher starts after (a
// watch from now starts after the store's revision, which its created response
// carried): a progress revision never goes back.
func (s *Stream) RequestProgress(id int64) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil || s.closed || !h.isSynced(w) || h.rev < s.maxSent || h.rev < w.minRev-1 {
		return
	}
	w.trySend(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: id})
}

// RequestProgressAll queues a progress response (WatchId -1) at the hub's revision
// once every watcher of the stream is synced and the hub has read every revision the
// store had committed at this call: so the client has then received every event up
// to the response's revision. Requests made before the answer share it.
func (s *Stream) RequestProgressAll() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.progressPending = true
	s.progressAt = max(s.progressAt, h.store.Rev())
	if !s.maybeAnswerProgressLocked() {
		h.kick()
	}
}

// maybeAnswerProgressLocked answers a pending RequestProgressAll if it can.
func (s *Stream) maybeAnswerProgressLocked() bool {
	h := s.h
	if h.rev < s.progressAt || h.rev < s.maxSent {
		return false
	}
	for _, w := range s.watchers {
		if !w.done && !h.isSynced(w) {
			return false
		}
	}
	if !s.offer(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: -1}) {
		return false
	}
	s.progressPending = false
	s.progressAt = 0
	return true
}

// isSynced: w has every event up to the hub's revision, and asked for no revision
// after it (etcd's progressIfSync condition).
func (h *Hub) isSynced(w *watcher) bool {
	return w.synced && w.startRev <= h.rev
}

// Close cancels every watcher of the stream and closes its channel.
func (s *Stream) Close() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s.closeLocked()
}

func (s *Stream) closeLocked() {
	if s.closed {
		return
	}
	for _, w := range s.watchers {
		s.h.remove(w)
	}
	s.closed = true
	close(s.ch)
	delete(s.h.streams, s)
}
