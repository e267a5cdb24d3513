package transport

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// fakeRaft records what the transport hands to raft.
type fakeRaft struct {
	mu          sync.Mutex
	msgs        []*raftpb.Message
	unreachable map[uint64]int
	snapStatus  []raft.SnapshotStatus
	changed     chan struct{}
}

func newFakeRaft() *fakeRaft {
	return &fakeRaft{unreachable: map[uint64]int{}, changed: make(chan struct{}, 1)}
}

func (f *fakeRaft) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakeRaft) Process(_ context.Context, m *raftpb.Message) error {
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	f.mu.Unlock()
	f.notify()
	return nil
}

func (f *fakeRaft) ReportUnreachable(id uint64) {
	f.mu.Lock()
	f.unreachable[id]++
	f.mu.Unlock()
	f.notify()
}

func (f *fakeRaft) ReportSnapshot(_ uint64, st raft.SnapshotStatus) {
	f.mu.Lock()
	f.snapStatus = append(f.snapStatus, st)
	f.mu.Unlock()
	f.notify()
}

// waitUntil blocks until cond holds (checked on every report), failing after 10s.
func (f *fakeRaft) waitUntil(t *testing.T, what string, cond func(f *fakeRaft) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		ok := cond(f)
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type node struct {
	tr   *Transport
	raft *fakeRaft
	srv  *httptest.Server
}

func newNode(t *testing.T, id, cluster uint64, mod func(*Config)) *node {
	fr := newFakeRaft()
	cfg := Config{ID: id, ClusterID: cluster, Raft: fr, Logger: zaptest.NewLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	tr := New(cfg)
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(func() {
		tr.Stop()
		srv.Close()
	})
	return &node{tr: tr, raft: fr, srv: srv}
}

func msg(typ raftpb.MessageType, from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{Type: typ.Enum(), From: new(from), To: new(to), Term: new(uint64(1)), Index: new(index),
		Entries: []*raftpb.Entry{{Index: new(index), Term: new(uint64(1)), Data: []byte("payload")}}}
}

// Messages to a peer arrive complete and in the order they were sent.
func TestMessagesArriveInOrder(t *testing.T) {
	a, b := newNode(t, 1, 7, nil), newNode(t, 2, 7, nil)
	a.tr.AddPeer(2, []string{b.srv.URL})
	const n = 2000
	for i := uint64(1); i <= n; i += 100 {
		var batch []*raftpb.Message
		for j := i; j < i+100; j++ {
			batch = append(batch, msg(raftpb.MsgApp, 1, 2, j))
		}
		a.tr.Send(batch)
	}
	b.raft.waitUntil(t, "all messages", func(f *fakeRaft) bool { return len(f.msgs) == n })
	for i, m := range b.raft.msgs {
		if m.GetIndex() != uint64(i+1) || m.GetFrom() != 1 || string(m.GetEntries()[0].GetData()) != "payload" {
			t.Fatalf("message %d = %v", i, m)
		}
	}
	if len(a.raft.unreachable) != 0 {
		t.Fatalf("unexpected unreachable reports: %v", a.raft.unreachable)
	}
}

// A member of another cluster processes nothing, and the sender learns the peer is
// unreachable.
func TestClusterIDMismatchRejected(t *testing.T) {
	a, b := newNode(t, 1, 7, nil), newNode(t, 2, 8, nil)
	a.tr.AddPeer(2, []string{b.srv.URL})
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	a.raft.waitUntil(t, "unreachable report", func(f *fakeRaft) bool { return f.unreachable[2] > 0 })
	if len(b.raft.msgs) != 0 {
		t.Fatalf("other cluster processed %d messages", len(b.raft.msgs))
	}
	// A request for another member ID is refused the same way.
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+pathMsgs, nil)
	req.Header.Set(hdrClusterID, idString(8))
	req.Header.Set(hdrTo, idString(3))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("status %d for a wrong member ID", resp.StatusCode)
	}
}

// A peer that is down is reported unreachable; Send does not block.
func TestDownPeerReportedUnreachable(t *testing.T) {
	a, b := newNode(t, 1, 7, nil), newNode(t, 2, 7, nil)
	url := b.srv.URL
	b.srv.Close()
	a.tr.AddPeer(2, []string{url})
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	a.raft.waitUntil(t, "unreachable report", func(f *fakeRaft) bool { return f.unreachable[2] > 0 })
}

// When a peer's queue is full, Send drops and reports instead of blocking.
func TestFullQueueDrops(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer stuck.Close()
	defer close(release)
	a := newNode(t, 1, 7, func(c *Config) { c.QueueSize = 2 })
	a.tr.AddPeer(2, []string{stuck.URL})
	for i := 0; i < 10; i++ {
		a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	}
	a.raft.waitUntil(t, "unreachable report", func(f *fakeRaft) bool { return f.unreachable[2] > 0 })
}

func engineWithState(t *testing.T, applied uint64, keys int) storage.Engine {
	eng, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	b := eng.NewBatch()
	cs, _ := proto.Marshal(&raftpb.ConfState{Voters: []uint64{1, 2}})
	b.Set(storage.MetaAppliedIndex, storage.PutUint64(applied))
	b.Set(storage.MetaAppliedTerm, storage.PutUint64(3))
	b.Set(storage.MetaConfState, cs)
	for i := 0; i < keys; i++ {
		b.Set(storage.VersionKey(fmt.Appendf(nil, "k%06d", i), int64(i+1), 0), []byte("value"))
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return eng
}

// A MsgSnap carries the sender's state machine: the receiver's raft gets the message
// only after the stream is saved, with the metadata of exactly the streamed state.
func TestSnapshotStreamed(t *testing.T) {
	leaderEng := engineWithState(t, 42, 20000)
	store, err := snap.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := newNode(t, 1, 7, func(c *Config) { c.Snapshots = snap.NewSource(leaderEng) })
	b := newNode(t, 2, 7, func(c *Config) { c.SnapshotSink = store })
	a.tr.AddPeer(2, []string{b.srv.URL})

	m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(3)),
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(40)), Term: new(uint64(3))}}}
	a.tr.Send([]*raftpb.Message{m})
	a.raft.waitUntil(t, "snapshot report", func(f *fakeRaft) bool { return len(f.snapStatus) > 0 })
	if a.raft.snapStatus[0] != raft.SnapshotFinish {
		t.Fatalf("snapshot status %v", a.raft.snapStatus)
	}
	if len(b.raft.msgs) != 1 {
		t.Fatalf("receiver got %d messages", len(b.raft.msgs))
	}
	got := b.raft.msgs[0]
	md := got.GetSnapshot().GetMetadata()
	if md.GetIndex() != 42 || md.GetTerm() != 3 || len(md.GetConfState().GetVoters()) != 2 {
		t.Fatalf("received metadata %v, want the state machine's 42/3", md)
	}
	follower := engineWithState(t, 1, 0)
	if err := snap.Install(follower, string(got.GetSnapshot().GetData())); err != nil {
		t.Fatal(err)
	}
	if fmd, _ := snap.ReadMeta(follower); fmd.GetIndex() != 42 {
		t.Fatalf("installed state at %v", fmd)
	}
	if _, err := follower.Get(storage.VersionKey([]byte("k019999"), 20000, 0)); err != nil {
		t.Fatalf("last key missing after install: %v", err)
	}
}

// A snapshot that cannot be produced or stored is reported as failed.
func TestSnapshotFailureReported(t *testing.T) {
	behind := engineWithState(t, 10, 1) // raft asks for 40: the state machine is behind
	store, _ := snap.NewStore(t.TempDir())
	a := newNode(t, 1, 7, func(c *Config) { c.Snapshots = snap.NewSource(behind) })
	b := newNode(t, 2, 7, func(c *Config) { c.SnapshotSink = store })
	a.tr.AddPeer(2, []string{b.srv.URL})
	m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)),
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(40)), Term: new(uint64(3))}}}
	a.tr.Send([]*raftpb.Message{m})
	a.raft.waitUntil(t, "snapshot report", func(f *fakeRaft) bool { return len(f.snapStatus) > 0 })
	if a.raft.snapStatus[0] != raft.SnapshotFailure || len(b.raft.msgs) != 0 {
		t.Fatalf("status %v, receiver got %d messages", a.raft.snapStatus, len(b.raft.msgs))
	}
}

// Until SetRaft connects the node, a member refuses messages (the sender sees it
// unreachable); afterwards they are delivered.
func TestSetRaftLater(t *testing.T) {
	a := newNode(t, 1, 7, nil)
	fr := newFakeRaft()
	tr := New(Config{ID: 2, ClusterID: 7, Logger: zaptest.NewLogger(t)})
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(func() {
		tr.Stop()
		srv.Close()
	})
	a.tr.AddPeer(2, []string{srv.URL})
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	a.raft.waitUntil(t, "unreachable report", func(f *fakeRaft) bool { return f.unreachable[2] > 0 })

	tr.SetRaft(fr)
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	fr.waitUntil(t, "delivery after SetRaft", func(f *fakeRaft) bool { return len(f.msgs) == 1 })
}
