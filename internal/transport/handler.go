package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// frameSlack is what a message may hold beyond its entries' bytes as raft counts
// them: its own fields, and the field tag and length of each entry (a few bytes for
// each of the tens of thousands of small entries 1 MiB may hold).
const frameSlack = 1 << 20

// DefaultMaxFrameBytes is the frame bound when Config.MaxFrameBytes is 0:
// MaxFrameFor etcd's defaults (--max-request-bytes 1.5 MiB, MaxSizePerMsg 1 MiB).
const DefaultMaxFrameBytes = 3<<19 + frameSlack

// MaxFrameFor is the largest message frame a member sends when a proposal is at most
// maxRequestBytes and raft puts at most maxSizePerMsg of entries in a message: raft
// fills a MsgApp (and raftnode a MsgProp) up to maxSizePerMsg, or with one larger
// entry, so a message's entries are at most the larger of the two. A MsgSnap frame
// holds only metadata (the state follows it, outside the frame), a MsgHeartbeat or a
// vote nothing at all.
func MaxFrameFor(maxRequestBytes, maxSizePerMsg uint64) uint64 {
	return max(maxRequestBytes, maxSizePerMsg) + frameSlack
}

// ErrFrameTooLarge is a frame whose length prefix passes the bound; it is refused
// before anything is allocated for it.
var ErrFrameTooLarge = errors.New("transport: frame too large")

// Handler serves the peer protocol; mount it on the peer listener.
func (t *Transport) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(pathMsgs, t.handleMsgs)
	mux.HandleFunc(pathStream, t.handleStream)
	mux.HandleFunc(pathSnapshot, t.handleSnapshot)
	mux.HandleFunc(pathProbe, t.handleProbe)
	mux.HandleFunc(pathMembers, t.handleMembers)
	mux.HandleFunc(pathPromote, t.handlePromote)
	if t.cfg.ServerVersion != "" {
		mux.HandleFunc(pathVersion, t.handleVersion)
	}
	return mux
}

// checkPeer answers and returns false when r is not a POST for this member of this
// cluster.
func (t *Transport) checkPeer(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	if got, want := r.Header.Get(hdrClusterID), idString(t.cfg.ClusterID); got != want {
		t.lg.Warn("rejected peer request from another cluster", zap.String("from", r.Header.Get(hdrFrom)),
			zap.String("remote-cluster-id", got), zap.String("local-cluster-id", want))
		http.Error(w, fmt.Sprintf("cluster ID mismatch: local %s, remote %s", want, got), http.StatusPreconditionFailed)
		return false
	}
	if t.refuseRemoved(w, r) {
		return false
	}
	if got, want := r.Header.Get(hdrTo), idString(t.cfg.ID); got != want {
		http.Error(w, fmt.Sprintf("member ID mismatch: this is %s, request is for %s", want, got), http.StatusPreconditionFailed)
		return false
	}
	return true
}

// maxFrame is the bound on received frames.
func (t *Transport) maxFrame() uint64 {
	if t.cfg.MaxFrameBytes > 0 {
		return t.cfg.MaxFrameBytes
	}
	return DefaultMaxFrameBytes
}

// readFrame reads one length-prefixed frame of at most limit bytes.
func readFrame(r *bufio.Reader, limit uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err // io.EOF at a frame boundary: the end
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("transport: truncated frame: %w", err)
	}
	return b, nil
}

func (t *Transport) handleMsgs(w http.ResponseWriter, r *http.Request) {
	if !t.checkPeer(w, r) {
		return
	}
	br := bufio.NewReaderSize(r.Body, 64<<10)
	for {
		err := t.receive(r.Context(), br)
		if errors.Is(err, io.EOF) {
			break
		}
		var re *raftError
		if errors.As(err, &re) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleStream serves a message stream: it accepts it at once (200, flushed), then
// gives raft each message as it arrives, until the sender ends the body, the
// connection breaks, a message is bad or raft refuses one, or the transport stops.
// It writes nothing after the 200: the response ends when the stream does.
func (t *Transport) handleStream(w http.ResponseWriter, r *http.Request) {
	// A refusal closes the connection and reads nothing more: the sender writes the
	// body as long as the stream lives, so the server must not wait for its end.
	rc := http.NewResponseController(w)
	w.Header().Set("Connection", "close")
	if !t.checkPeer(w, r) {
		_ = rc.SetReadDeadline(time.Now())
		return
	}
	if _, ok := t.raft().(noRaft); ok {
		http.Error(w, ErrNoRaft.Error(), http.StatusServiceUnavailable)
		_ = rc.SetReadDeadline(time.Now())
		return
	}
	w.Header().Del("Connection")
	_ = rc.EnableFullDuplex() // HTTP/1: read the body while answering; HTTP/2 always does
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	// Stopping the transport ends the stream: an expired read deadline fails the
	// pending body read. The same is done on every exit but the sender's clean end,
	// so the server does not wait on the rest of a live stream after we return.
	stopped := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-t.stopc:
			_ = rc.SetReadDeadline(time.Now())
		case <-stopped:
		}
	}()
	defer func() {
		close(stopped)
		<-watchDone
	}()
	br := bufio.NewReaderSize(r.Body, 64<<10)
	for {
		err := t.receive(r.Context(), br)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			_ = rc.SetReadDeadline(time.Now())
			select {
			case <-t.stopc:
			default:
				t.lg.Debug("message stream ended", zap.String("from", r.Header.Get(hdrFrom)), zap.Error(err))
			}
			return
		}
	}
}

// raftError is raft refusing a message.
type raftError struct{ err error }

func (e *raftError) Error() string { return "raft: " + e.err.Error() }
func (e *raftError) Unwrap() error { return e.err }

// receive reads one message from br and hands it to raft, which queues it without
// waiting (a forwarded proposal waits there for a leader). io.EOF means the body ended
// at a frame boundary.
func (t *Transport) receive(ctx context.Context, br *bufio.Reader) error {
	b, err := readFrame(br, t.maxFrame())
	if err != nil {
		return err
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("bad raft message: %w", err)
	}
	t.cfg.Observer.PeerReceived(m.GetFrom(), len(b))
	switch m.GetType() {
	case raftpb.MsgSnap:
		return errors.New("MsgSnap must be sent to " + pathSnapshot)
	}
	if err := t.raft().Process(ctx, m); err != nil {
		return &raftError{err: err}
	}
	return nil
}

func (t *Transport) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if !t.checkPeer(w, r) {
		return
	}
	if t.cfg.SnapshotSink == nil {
		http.Error(w, "this member does not accept snapshots", http.StatusServiceUnavailable)
		return
	}
	br := bufio.NewReaderSize(r.Body, 256<<10)
	b, err := readFrame(br, t.maxFrame())
	if err != nil {
		http.Error(w, "reading snapshot message: "+err.Error(), http.StatusBadRequest)
		return
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil || m.GetType() != raftpb.MsgSnap || m.GetSnapshot().GetMetadata() == nil {
		http.Error(w, "not a snapshot message", http.StatusBadRequest)
		return
	}
	md := m.GetSnapshot().GetMetadata()
	path, err := t.cfg.SnapshotSink.Save(md, br)
	if err != nil {
		t.lg.Warn("receiving snapshot failed", zap.String("from", idString(m.GetFrom())), zap.Error(err))
		http.Error(w, "saving snapshot: "+err.Error(), http.StatusBadRequest)
		return
	}
	t.lg.Info("received snapshot", zap.String("from", idString(m.GetFrom())),
		zap.Uint64("index", md.GetIndex()), zap.Uint64("term", md.GetTerm()), zap.String("path", path))
	m.Snapshot.Data = []byte(path)
	if err := t.raft().Process(r.Context(), m); err != nil {
		http.Error(w, "raft: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (t *Transport) handleProbe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"id": idString(t.cfg.ID), "cluster_id": idString(t.cfg.ClusterID)})
}

func (t *Transport) handleVersion(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"etcdserver": t.cfg.ServerVersion, "etcdcluster": t.cfg.ClusterVersion})
}
