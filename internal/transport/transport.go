// Package transport carries raft messages between members over HTTP on the peer URLs.
// It owns the peer wire protocol (below), the per-peer send queues and streams, and the
// streaming of snapshots; it does not interpret messages beyond routing them, and it
// reads the state machine only through a snap.Source.
//
// Wire protocol (HTTP/1.1, keep-alive; over TLS for https:// peer URLs):
//
//	POST /raft/stream     body: { uvarint(len) raftpb.Message }... (open-ended) -> 200 at once
//	POST /raft/msgs       body: { uvarint(len) raftpb.Message }...   -> 204
//	POST /raft/snapshot   body: uvarint(len) MsgSnap, then the snap stream -> 204
//	GET  /raft/probe      -> 200 {"id":"…","cluster_id":"…"}
//	GET  /version         -> 200 {"etcdserver":"…","etcdcluster":"…"} (when configured)
//	GET  /members         -> 200 [member…] with X-Etcd-Cluster-ID, as etcd (members.go)
//	POST /members/promote/<id> -> a forwarded MemberPromote, as etcd (members.go)
//
// Every POST carries X-Metastore-Cluster-ID, -From and -To (hex). A receiver answers
// 412 Precondition Failed to a different cluster ID or a To that is not itself, and 410
// Gone to a From that was removed from the cluster (the sender then stops itself), and
// processes nothing.
//
// Sending never blocks the caller: each peer has a bounded queue drained by one
// goroutine into ONE long-lived stream (POST /raft/stream, chunked body): once the
// peer has answered 200, every message queued is written to the body as it comes,
// the frames queued at one moment in one flushed chunk, so there is no round trip per
// batch and messages to a peer keep their order. The receiver gives raft each message
// as it arrives; the stream's response carries nothing and ends when the stream does.
// A full queue drops the message and reports the peer unreachable to raft, which
// retransmits; so does a stream that fails (connection error, refusal, a peer that
// stops reading for RequestTimeout while messages wait): what it held and what is
// queued is dropped and the stream is redone with backoff (25ms doubling to 1s). POST
// /raft/msgs (one batch per request) is still served for senders that do not stream.
// Received proposals (MsgProp forwarded by a follower) go to raft through their own
// queue, since raft holds a proposal while it knows no leader.
//
// A MsgSnap is sent on its own goroutine: the state machine is pinned (snap.Source),
// the message's snapshot metadata is rewritten to the pinned state's applied index,
// term and ConfState, and the state is streamed after the message. The outcome is
// reported with ReportSnapshot. The receiver saves the stream durably (snap.Store)
// BEFORE giving raft the message, with the file's path in Snapshot.Data.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
)

// ErrClusterIDMismatch is the error of a peer from another cluster.
var ErrClusterIDMismatch = errors.New("transport: cluster ID mismatch")

// ErrNoRaft is answered to peers before SetRaft.
var ErrNoRaft = errors.New("transport: raft not started")

// Raft is the local raft node receiving messages and delivery reports.
type Raft interface {
	Process(ctx context.Context, m *raftpb.Message) error
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// SnapshotSource pins the state machine for sending (*snap.Source).
type SnapshotSource interface {
	Open() (*snap.Outgoing, error)
}

// SnapshotSink stores a received snapshot stream durably and returns its path
// (*snap.Store).
type SnapshotSink interface {
	Save(md *raftpb.SnapshotMetadata, r io.Reader) (string, error)
}

// Config configures a Transport.
type Config struct {
	ID        uint64
	ClusterID uint64
	Logger    *zap.Logger
	// Raft receives messages and reports. It may instead be given later with SetRaft
	// (the node needs the transport to start); until then received messages are
	// refused and reports dropped.
	Raft Raft
	// Snapshots is read to send MsgSnap. Nil: snap.NewSource(Engine) if Engine is set;
	// otherwise every snapshot send fails.
	Snapshots SnapshotSource
	Engine    storage.Engine
	// SnapshotSink stores received snapshots. Nil: a snap.Store in SnapDir if set;
	// otherwise snapshots are refused.
	SnapshotSink SnapshotSink
	SnapDir      string
	// MaxFrameBytes bounds a received message (MaxFrameFor); 0: DefaultMaxFrameBytes.
	MaxFrameBytes uint64
	// QueueSize is the per-peer queue length; default 4096 messages.
	QueueSize int
	// DialTimeout and RequestTimeout bound a message POST; defaults 1s and 5s.
	DialTimeout, RequestTimeout time.Duration
	// ServerVersion and ClusterVersion, when set, are served on GET /version.
	ServerVersion, ClusterVersion string
	// TLS, when set, is the client TLS configuration for https:// peer URLs (the peer
	// CA as roots, this member's peer certificate as client certificate). Nil: system
	// roots, no client certificate. http:// peer URLs never use it.
	TLS *tls.Config
	// Observer is told the bytes sent and received and the snapshot sends
	// (observer.go); nil: nobody.
	Observer Observer
}

// Transport sends to and receives from the peers of one member.
type Transport struct {
	cfg          Config
	lg           *zap.Logger
	streamClient *http.Client // message streams: no overall timeout
	snapClient   *http.Client // snapshot streams: no overall timeout

	raftp atomic.Pointer[raftBox]
	// membersp and removedOnce: the member list (members.go).
	membersp    atomic.Pointer[membershipBox]
	removedOnce atomic.Bool

	mu    sync.Mutex
	peers map[uint64]*peer
	wg    sync.WaitGroup // peer goroutines and snapshot senders
	stopc chan struct{}
}

// New returns a Transport with no peers.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Snapshots == nil && cfg.Engine != nil {
		cfg.Snapshots = snap.NewSource(cfg.Engine)
	}
	if cfg.SnapshotSink == nil && cfg.SnapDir != "" {
		if st, err := snap.NewStore(cfg.SnapDir); err != nil {
			cfg.Logger.Error("snap dir unusable: snapshots will be refused", zap.String("dir", cfg.SnapDir), zap.Error(err))
		} else {
			cfg.SnapshotSink = st
		}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	newRT := func() *http.Transport {
		return &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     cfg.TLS.Clone(), // nil stays nil
			TLSHandshakeTimeout: cfg.DialTimeout + cfg.RequestTimeout,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			WriteBufferSize:     64 << 10,
		}
	}
	t := &Transport{
		cfg:          cfg,
		lg:           cfg.Logger.With(zap.String("local-member-id", idString(cfg.ID))),
		streamClient: &http.Client{Transport: newRT()},
		snapClient:   &http.Client{Transport: newRT()},
		peers:        map[uint64]*peer{},
		stopc:        make(chan struct{}),
	}
	if cfg.Raft != nil {
		t.SetRaft(cfg.Raft)
	}
	return t
}

type raftBox struct{ r Raft }

// SetRaft sets (or replaces) the raft node messages are delivered to.
func (t *Transport) SetRaft(r Raft) { t.raftp.Store(&raftBox{r: r}) }

func (t *Transport) raft() Raft {
	if b := t.raftp.Load(); b != nil {
		return b.r
	}
	return noRaft{}
}

type noRaft struct{}

func (noRaft) Process(context.Context, *raftpb.Message) error { return ErrNoRaft }
func (noRaft) ReportUnreachable(uint64)                       {}
func (noRaft) ReportSnapshot(uint64, raft.SnapshotStatus)     {}

// AddPeer starts sending to id at urls (peer URLs such as http://host:2380). Adding a
// known peer replaces its URLs.
func (t *Transport) AddPeer(id uint64, urls []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		p.setURLs(urls)
		return
	}
	select {
	case <-t.stopc:
		return
	default:
	}
	p := newPeer(t, id, urls)
	t.peers[id] = p
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		p.run()
	}()
}

// RemovePeer stops sending to id; queued messages are dropped.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p, ok := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if ok {
		p.stop()
	}
}

// PeerURLs returns the URLs of a peer, nil if unknown.
func (t *Transport) PeerURLs(id uint64) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		return p.getURLs()
	}
	return nil
}

// Send queues msgs for their peers and returns at once. It marshals the messages
// before returning, so raft may reuse them afterwards.
func (t *Transport) Send(msgs []*raftpb.Message) {
	var reported map[uint64]bool // one unreachable report per peer and call
	for _, m := range msgs {
		to := m.GetTo()
		if to == 0 || to == t.cfg.ID {
			continue
		}
		t.mu.Lock()
		p := t.peers[to]
		t.mu.Unlock()
		if p == nil {
			t.lg.Debug("dropping message to unknown peer", zap.String("to", idString(to)), zap.Stringer("type", m.GetType()))
			continue
		}
		if m.GetType() == raftpb.MsgSnap {
			t.startSnapshot(p, proto.Clone(m).(*raftpb.Message))
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.lg.Error("cannot marshal raft message", zap.Error(err))
			continue
		}
		ok := p.enqueue(b)
		if !ok {
			t.cfg.Observer.PeerSendFailed(to, 1)
		}
		if !ok && m.GetType() == raftpb.MsgHeartbeat {
			t.cfg.Observer.HeartbeatSendFailed(to)
		}
		if !ok && !reported[to] {
			if reported == nil {
				reported = map[uint64]bool{}
			}
			reported[to] = true
			t.raft().ReportUnreachable(to)
		}
	}
}

// Stop stops every peer and waits for the senders to finish.
func (t *Transport) Stop() {
	t.mu.Lock()
	select {
	case <-t.stopc:
		t.mu.Unlock()
		return
	default:
	}
	close(t.stopc)
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	t.wg.Wait()
	t.streamClient.CloseIdleConnections()
	t.snapClient.CloseIdleConnections()
}
