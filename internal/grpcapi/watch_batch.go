package grpcapi

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The fan-out of one revision to many watchers of a stream costs, per watcher, one
// gRPC message and the encoding of its events. Two things cut that cost when a stream
// is busy, without changing what a client sees of any one watcher:
//
//   - batching: the send loop takes every hub response already queued (at most
//     maxBatchResponses) and merges the event responses of one watcher into one, in
//     their order, as etcd's catch-up sends several revisions in one response. A
//     revision is never split (whole responses are merged), a merged response stays
//     under about maxMergedBytes of events, and nothing is merged across a response
//     that is not events (a progress, a compaction): a watcher's progress response
//     still follows all its earlier events, and a stream's progress (watch ID -1) all
//     the stream's earlier events.
//   - shared encoding: the hub gives every watcher of a revision the same event
//     pointers, so each event is marshalled once per batch (not once per watcher) and
//     its bytes are placed in each response as field 11 (events) through the
//     message's unknown fields, which proto.Marshal writes verbatim: the bytes on the
//     wire are those of a WatchResponse whose Events hold those events.
//
// A watcher that asked for fragment gets its merged response with Events set, split by
// sendFragments as before.

const (
	// maxBatchResponses bounds the hub responses taken from the stream at once.
	maxBatchResponses = 1024
	// maxMergedBytes bounds (about) the event bytes merged into one response.
	maxMergedBytes = 1 << 20
	// watchResponseEventsField is WatchResponse.events' field number.
	watchResponseEventsField = 11
)

// outResponse is one response to send: the hub's own (base, when it is not events or
// is sent as it came), or the merged events of one watcher.
type outResponse struct {
	base   *pb.WatchResponse
	id     int64
	rev    int64 // the header revision: the newest merged response's
	events []*mvccpb.Event
	owned  bool // events is this batch's own slice (may be appended to)
	size   int  // about the bytes of events
	open   bool // more events of this watcher may be merged in
}

// batch merges the hub responses rs (in stream order) as described above; the order
// of the returned responses keeps every watcher's order and every barrier.
func batch(rs []*pb.WatchResponse) []*outResponse {
	out := make([]*outResponse, 0, len(rs))
	open := make(map[int64]*outResponse)
	for _, hr := range rs {
		id := hr.WatchId
		if len(hr.Events) == 0 || hr.CompactRevision != 0 || id == invalidWatchID {
			// Not events: a barrier for its watcher, or for all (ID -1).
			if id == invalidWatchID {
				clear(open)
			} else {
				delete(open, id)
			}
			out = append(out, &outResponse{base: hr, id: id, rev: hr.GetHeader().GetRevision()})
			continue
		}
		size := eventsSize(hr.Events)
		if o := open[id]; o != nil && o.size+size <= maxMergedBytes {
			if !o.owned {
				o.events = append(make([]*mvccpb.Event, 0, len(o.events)+len(hr.Events)), o.events...)
				o.owned = true
			}
			o.events = append(o.events, hr.Events...)
			o.size += size
			o.rev = max(o.rev, hr.GetHeader().GetRevision())
			o.base = nil
			continue
		}
		o := &outResponse{base: hr, id: id, rev: hr.GetHeader().GetRevision(), events: hr.Events, size: size, open: true}
		open[id] = o
		out = append(out, o)
	}
	return out
}

// eventsSize is about the bytes of evs (what bounds a merge, not an exact size).
func eventsSize(evs []*mvccpb.Event) int {
	n := 0
	for _, ev := range evs {
		n += 16 + len(ev.Kv.Key) + len(ev.Kv.Value)
		if ev.PrevKv != nil {
			n += 16 + len(ev.PrevKv.Key) + len(ev.PrevKv.Value)
		}
	}
	return n
}

// eventEncoder marshals each event once and keeps its bytes, as a WatchResponse
// events field, for every response of the batch that carries it. It is used by one
// goroutine.
type eventEncoder struct {
	enc map[*mvccpb.Event][]byte
	buf []byte
}

func newEventEncoder() *eventEncoder {
	return &eventEncoder{enc: make(map[*mvccpb.Event][]byte)}
}

// reset forgets the events of the last batch.
func (e *eventEncoder) reset() { clear(e.enc) }

// field returns ev as an encoded events field (tag, length, Event).
func (e *eventEncoder) field(ev *mvccpb.Event) ([]byte, error) {
	if b, ok := e.enc[ev]; ok {
		return b, nil
	}
	var err error
	e.buf, err = proto.MarshalOptions{}.MarshalAppend(e.buf[:0], ev)
	if err != nil {
		return nil, err
	}
	b := protowire.AppendTag(make([]byte, 0, len(e.buf)+protowire.SizeVarint(uint64(len(e.buf)))+1), watchResponseEventsField, protowire.BytesType)
	b = protowire.AppendBytes(b, e.buf)
	e.enc[ev] = b
	return b, nil
}

// encoded returns a response to watcher id with header h and the events evs, their
// bytes copied from the encoder's cache into the message's unknown fields.
func (e *eventEncoder) encoded(h *pb.ResponseHeader, id int64, evs []*mvccpb.Event) (*pb.WatchResponse, error) {
	fields := make([][]byte, len(evs))
	n := 0
	for i, ev := range evs {
		b, err := e.field(ev)
		if err != nil {
			return nil, err
		}
		fields[i] = b
		n += len(b)
	}
	raw := make([]byte, 0, n)
	for _, b := range fields {
		raw = append(raw, b...)
	}
	wr := &pb.WatchResponse{Header: h, WatchId: id}
	wr.ProtoReflect().SetUnknown(raw)
	return wr, nil
}

// toClient is hub response hr as the client gets it: the full header, and
// compact_revision marking the watcher canceled.
func (sws *serverWatchStream) toClient(hr *pb.WatchResponse) *pb.WatchResponse {
	return &pb.WatchResponse{
		Header:          sws.header(hr.GetHeader().GetRevision()),
		WatchId:         hr.WatchId,
		Events:          hr.Events,
		CompactRevision: hr.CompactRevision,
		Canceled:        hr.CompactRevision != 0,
	}
}

// sendBatch sends the hub responses rs, of created watchers, batched; false if a send
// failed.
func (sws *serverWatchStream) sendBatch(rs []*pb.WatchResponse, enc *eventEncoder) bool {
	if len(rs) == 0 {
		return true
	}
	defer enc.reset()
	base := sws.srv.b.Header()
	header := func(rev int64) *pb.ResponseHeader {
		return &pb.ResponseHeader{ClusterId: base.GetClusterId(), MemberId: base.GetMemberId(), RaftTerm: base.GetRaftTerm(), Revision: rev}
	}
	for _, o := range batch(rs) {
		if len(o.events) == 0 {
			wr := o.base
			if !sws.sendEvents(&pb.WatchResponse{Header: header(o.rev), WatchId: wr.WatchId,
				CompactRevision: wr.CompactRevision, Canceled: wr.CompactRevision != 0}) {
				return false
			}
			continue
		}
		sws.mu.Lock()
		frag := sws.fragment[o.id]
		sws.mu.Unlock()
		if frag {
			if !sws.sendEvents(&pb.WatchResponse{Header: header(o.rev), WatchId: o.id, Events: o.events}) {
				return false
			}
			continue
		}
		wr, err := enc.encoded(header(o.rev), o.id, o.events)
		if err == nil {
			err = sws.grpc.Send(wr)
		}
		if err != nil {
			sws.srv.lg.Debug("failed to send watch response to gRPC stream", zap.Error(err))
			return false
		}
		sws.sentEvents(o.id)
	}
	return true
}
