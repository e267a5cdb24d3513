package grpcapi

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// WatchStream is one client stream's watches as the watch hub serves them (package
// watch's Stream; cmd wires it through Options.NewWatchStream). Responses for the
// stream's watchers arrive in order on Chan with only Header.Revision set in their
// header; a response with CompactRevision set ends its watcher; a progress response
// has no events (WatchId -1 for RequestProgressAll).
type WatchStream interface {
	// Watch creates a watcher from a normalised request (see watchServer.create) and
	// returns its ID; an error's text is etcd's cancel_reason.
	Watch(r *pb.WatchCreateRequest) (int64, error)
	// Cancel removes a watcher; an error if it does not exist.
	Cancel(id int64) error
	RequestProgress(id int64)
	RequestProgressAll()
	Chan() <-chan *pb.WatchResponse
	// Rev is the store's current revision.
	Rev() int64
	Close()
}

// Watch defaults, etcd's.
const (
	DefaultWatchProgressNotifyInterval = 10 * time.Minute
	minWatchProgressInterval           = 100 * time.Millisecond
	// ctrlStreamBufLen is the queue of control responses (created, canceled) per stream.
	ctrlStreamBufLen = 16
	// maxNoLeaderChecks: a stream that requires a leader ends after this many leader
	// checks in a row found none (etcd's maxNoLeaderCnt).
	maxNoLeaderChecks = 3
	// invalidWatchID is clientv3.InvalidWatchID.
	invalidWatchID = -1
)

// watchServer is the Watch service, etcd's v3rpc watchServer: one serverWatchStream
// per client stream.
type watchServer struct {
	pb.UnimplementedWatchServer
	b               Backend
	lg              *zap.Logger
	newStream       func() WatchStream
	maxRequestBytes uint
	progress        time.Duration
	leaderCheck     time.Duration
}

func newWatchServer(b Backend, opts Options) *watchServer {
	progress := opts.WatchProgressNotifyInterval
	if progress == 0 {
		progress = DefaultWatchProgressNotifyInterval
	}
	if progress < minWatchProgressInterval {
		opts.Logger.Warn("adjusting watch progress notify interval to minimum period",
			zap.Duration("min-watch-progress-notify-interval", minWatchProgressInterval))
		progress = minWatchProgressInterval
	}
	leaderCheck := opts.ElectionTimeout
	if leaderCheck == 0 {
		leaderCheck = time.Second
	}
	return &watchServer{b: b, lg: opts.Logger, newStream: opts.NewWatchStream,
		maxRequestBytes: opts.MaxRequestBytes + grpcOverheadBytes, progress: progress, leaderCheck: leaderCheck}
}

// serverWatchStream serves one client stream: recvLoop turns requests into calls on
// the WatchStream and queues control responses; sendLoop sends them and the hub's
// responses, holding back a watcher's events until its created response is sent.
type serverWatchStream struct {
	srv    *watchServer
	grpc   pb.Watch_WatchServer
	ws     WatchStream
	ctrl   chan *pb.WatchResponse
	closec chan struct{}

	mu       sync.Mutex
	progress map[int64]bool // watchers that asked for progress notifications: true if nothing was sent since the last tick
	fragment map[int64]bool
	// canceled are the IDs canceled by the client: the hub's responses of those watchers
	// still under way are dropped, until the ID is created again (set and cleared by
	// the receiving goroutine, in the order of the client's requests).
	canceled map[int64]bool
}

func (s *watchServer) Watch(stream pb.Watch_WatchServer) error {
	sws := &serverWatchStream{
		srv: s, grpc: stream, ws: s.newStream(),
		ctrl:     make(chan *pb.WatchResponse, ctrlStreamBufLen),
		closec:   make(chan struct{}),
		progress: make(map[int64]bool),
		fragment: make(map[int64]bool),
		canceled: make(map[int64]bool),
	}
	sendDone := make(chan struct{})
	go func() { defer close(sendDone); sws.sendLoop() }()
	errc := make(chan error, 1)
	go func() { errc <- sws.recvLoop() }()

	var noLeader <-chan struct{}
	if lr, ok := s.b.(LeaderReporter); ok && requiresLeader(stream.Context()) {
		noLeader = s.monitorLeader(lr, sws.closec)
	}
	var err error
	select {
	case err = <-errc:
		if err == nil {
			// The client closed its side: etcd keeps serving until the context ends.
			select {
			case <-stream.Context().Done():
				err = stream.Context().Err()
			case <-noLeader:
				err = rpctypes.ErrGRPCNoLeader
			case <-sendDone:
				err = rpctypes.ErrGRPCStopped
			}
		}
	case <-stream.Context().Done():
		err = stream.Context().Err()
	case <-noLeader:
		err = rpctypes.ErrGRPCNoLeader
	case <-sendDone:
		// The hub closed the stream (the member is stopping) or a send failed.
		err = rpctypes.ErrGRPCStopped
	}
	if errors.Is(err, context.Canceled) {
		err = rpctypes.ErrGRPCWatchCanceled
	}
	sws.ws.Close()
	close(sws.closec)
	<-sendDone
	return err
}

// monitorLeader closes the returned channel once maxNoLeaderChecks checks in a row,
// one per election timeout, found no leader.
func (s *watchServer) monitorLeader(lr LeaderReporter, stop <-chan struct{}) <-chan struct{} {
	lost := make(chan struct{})
	go func() {
		t := time.NewTicker(s.leaderCheck)
		defer t.Stop()
		n := 0
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if lr.Leader() == 0 {
					n++
				} else {
					n = 0
				}
				if n >= maxNoLeaderChecks {
					close(lost)
					return
				}
			}
		}
	}()
	return lost
}

func (sws *serverWatchStream) header(rev int64) *pb.ResponseHeader {
	h := sws.srv.b.Header()
	return &pb.ResponseHeader{ClusterId: h.GetClusterId(), MemberId: h.GetMemberId(), RaftTerm: h.GetRaftTerm(), Revision: rev}
}

func (sws *serverWatchStream) queue(wr *pb.WatchResponse) bool {
	select {
	case sws.ctrl <- wr:
		return true
	case <-sws.closec:
		return false
	}
}

// recvLoop reads requests until the client closes its side (nil) or the stream fails.
func (sws *serverWatchStream) recvLoop() error {
	for {
		req, err := sws.grpc.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch uv := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if uv.CreateRequest != nil && !sws.create(uv.CreateRequest) {
				return nil
			}
		case *pb.WatchRequest_CancelRequest:
			if uv.CancelRequest == nil {
				continue
			}
			id := uv.CancelRequest.WatchId
			if sws.ws.Cancel(id) == nil {
				sws.mu.Lock()
				if len(sws.canceled) >= maxCanceledIDs {
					// Long past: what their watchers had queued is long sent or dropped.
					clear(sws.canceled)
				}
				sws.canceled[id] = true
				sws.mu.Unlock()
				if !sws.queue(&pb.WatchResponse{Header: sws.header(sws.ws.Rev()), WatchId: id, Canceled: true}) {
					return nil
				}
				sws.mu.Lock()
				delete(sws.progress, id)
				delete(sws.fragment, id)
				sws.mu.Unlock()
			}
		case *pb.WatchRequest_ProgressRequest:
			if uv.ProgressRequest != nil {
				sws.ws.RequestProgressAll()
			}
		default:
			sws.srv.lg.Info("invalid watch request type received in gRPC stream")
		}
	}
}

// create handles a create request as etcd: a negative start revision is answered
// created+canceled with ErrCompacted's text; an empty key means "\x00"; a range_end of
// "\x00" means every key from key. It returns false when the stream is closing.
func (sws *serverWatchStream) create(creq *pb.WatchCreateRequest) bool {
	if wr := sws.watchDenied(creq); wr != nil { // guard.go
		return sws.queue(wr)
	}
	if len(creq.Key) == 0 {
		creq.Key = []byte{0}
	}
	if creq.StartRevision < 0 {
		return sws.queue(&pb.WatchResponse{Header: sws.header(sws.ws.Rev()), WatchId: invalidWatchID,
			Created: true, Canceled: true, CancelReason: rpctypes.ErrCompacted.Error()})
	}
	switch {
	case len(creq.RangeEnd) == 0:
		creq.RangeEnd = nil
	case len(creq.RangeEnd) == 1 && creq.RangeEnd[0] == 0:
		creq.RangeEnd = []byte{}
	}
	if creq.WatchId != 0 { // clientv3.AutoWatchID is 0
		sws.mu.Lock()
		delete(sws.canceled, creq.WatchId) // the new watcher's responses must pass
		sws.mu.Unlock()
	}
	id, err := sws.ws.Watch(creq)
	if err == nil {
		sws.mu.Lock()
		delete(sws.canceled, id)
		if creq.ProgressNotify {
			sws.progress[id] = true
		}
		if creq.Fragment {
			sws.fragment[id] = true
		}
		sws.mu.Unlock()
	} else {
		id = invalidWatchID
	}
	wr := &pb.WatchResponse{Header: sws.header(sws.ws.Rev()), WatchId: id, Created: true, Canceled: err != nil}
	if err != nil {
		wr.CancelReason = err.Error()
	}
	return sws.queue(wr)
}

// sendLoop sends control responses and the hub's responses until the stream closes.
// A watcher's responses wait until its created response is sent (etcd's pending); those
// of a canceled watcher still in the hub's channel are dropped (until its ID is created
// again), so that they neither pile up in pending nor reach a later watcher.
func (sws *serverWatchStream) sendLoop() {
	created := make(map[int64]bool)
	pending := make(map[int64][]*pb.WatchResponse)
	ticker := time.NewTicker(sws.srv.progress + jitter(sws.srv.progress))
	defer ticker.Stop()
	var drain []*pb.WatchResponse
	enc := newEventEncoder()
	for {
		select {
		case hr, ok := <-sws.ws.Chan():
			if !ok {
				return
			}
			// Take what else is queued, to send it batched (watch_batch.go).
			rs := append(drain[:0], hr)
			closed := false
		take:
			for len(rs) < maxBatchResponses {
				select {
				case hr, ok := <-sws.ws.Chan():
					if !ok {
						closed = true
						break take
					}
					rs = append(rs, hr)
				default:
					break take
				}
			}
			ready := rs[:0]
			for _, hr := range rs {
				id := hr.WatchId
				if id != invalidWatchID && sws.isCanceled(id) {
					continue
				}
				if id != invalidWatchID && !created[id] {
					pending[id] = append(pending[id], sws.toClient(hr))
					continue
				}
				ready = append(ready, hr)
			}
			if !sws.sendBatch(ready, enc) {
				return
			}
			clear(rs)
			drain = rs[:0]
			if closed {
				return
			}
		case c, ok := <-sws.ctrl:
			if !ok {
				return
			}
			if err := sws.grpc.Send(c); err != nil {
				sws.srv.lg.Debug("failed to send watch control response to gRPC stream", zap.Error(err))
				return
			}
			if c.Canceled && c.WatchId != invalidWatchID {
				delete(created, c.WatchId)
				delete(pending, c.WatchId)
				continue
			}
			if c.Created {
				created[c.WatchId] = true
				for _, wr := range pending[c.WatchId] {
					if !sws.sendEvents(wr) {
						return
					}
				}
				delete(pending, c.WatchId)
			}
		case <-ticker.C:
			sws.mu.Lock()
			for id, quiet := range sws.progress {
				if quiet {
					sws.ws.RequestProgress(id)
				}
				sws.progress[id] = true
			}
			sws.mu.Unlock()
		case <-sws.closec:
			return
		}
	}
}

// maxCanceledIDs bounds the canceled IDs a stream remembers (a stream lives as long as
// its client, and Kubernetes cancels watches all day long).
const maxCanceledIDs = 4096

func (sws *serverWatchStream) isCanceled(id int64) bool {
	sws.mu.Lock()
	defer sws.mu.Unlock()
	return sws.canceled[id]
}

// sendEvents sends one hub response, split into fragments when its watcher asked for
// them, and marks its watcher as not quiet for progress notifications.
func (sws *serverWatchStream) sendEvents(wr *pb.WatchResponse) bool {
	sws.mu.Lock()
	frag := sws.fragment[wr.WatchId]
	sws.mu.Unlock()
	var err error
	if frag {
		err = sendFragments(wr, sws.srv.maxRequestBytes, sws.grpc.Send)
	} else {
		err = sws.grpc.Send(wr)
	}
	if err != nil {
		sws.srv.lg.Debug("failed to send watch response to gRPC stream", zap.Error(err))
		return false
	}
	if len(wr.Events) > 0 {
		sws.sentEvents(wr.WatchId)
	}
	return true
}

// sentEvents marks watcher id as not quiet for progress notifications.
func (sws *serverWatchStream) sentEvents(id int64) {
	sws.mu.Lock()
	if _, ok := sws.progress[id]; ok {
		sws.progress[id] = false
	}
	sws.mu.Unlock()
}

// sendFragments splits wr, when it is at least maxBytes and has two events or more,
// into responses of events that stay under maxBytes (each holding one event at least),
// all but the last marked Fragment, as etcd.
func sendFragments(wr *pb.WatchResponse, maxBytes uint, send func(*pb.WatchResponse) error) error {
	if uint(proto.Size(wr)) < maxBytes || len(wr.Events) < 2 {
		return send(wr)
	}
	idx := 0
	for {
		cur := &pb.WatchResponse{Header: wr.Header, WatchId: wr.WatchId, Created: wr.Created, Canceled: wr.Canceled,
			CompactRevision: wr.CompactRevision, CancelReason: wr.CancelReason, Fragment: true, Events: make([]*mvccpb.Event, 0)}
		for _, ev := range wr.Events[idx:] {
			cur.Events = append(cur.Events, ev)
			if len(cur.Events) > 1 && uint(proto.Size(cur)) >= maxBytes {
				cur.Events = cur.Events[:len(cur.Events)-1]
				break
			}
			idx++
		}
		if idx == len(wr.Events) {
			cur.Fragment = false
		}
		if err := send(cur); err != nil {
			return err
		}
		if !cur.Fragment {
			return nil
		}
	}
}

// jitter is up to a tenth of d, as etcd spreads progress notifications.
func jitter(d time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(d)/10 + 1)) }
