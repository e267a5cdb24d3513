package raftnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
	"github.com/metastore/metastore/internal/transport"
)

// member is one raft member with a trivial state machine: every normal entry's data is
// stored at 'K' index(8), with MetaAppliedIndex/Term/ConfState in the same batch.
type member struct {
	t   *testing.T
	id  uint64
	dir string
	eng storage.Engine // open between start and stop
	n   *Node
	// net, when set, wires a real HTTP transport (cluster tests).
	net *network
	tr  *transport.Transport
	// walSegment, when set, is the WAL's segment size (small: frequent rolls).
	walSegment int64

	mu        sync.Mutex
	applied   uint64
	delivered map[uint64]int // index -> times an entry was handed over
	snaps     int            // snapshots installed
	batches   int            // Applies with entries
	applyDone chan struct{}
	// refuse, when set, is a node ID whose conf changes the state machine refuses
	// (gives raft with NodeId zeroed); refusedAt records their indexes.
	refuse    uint64
	refusedAt map[uint64]bool
}

func dataKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{storage.PrefixKey}, index)
}

func newMember(t *testing.T, id uint64, dir string) *member {
	return &member{t: t, id: id, dir: dir, delivered: map[uint64]int{}, refusedAt: map[uint64]bool{}}
}

func (m *member) logger() *zap.Logger {
	return zaptest.NewLogger(m.t, zaptest.Level(zap.WarnLevel)).With(zap.Uint64("member", m.id))
}

// start opens the engine and starts the transport (in a cluster), raft (cfg.Peers
// non-nil only for bootstrap) and the apply loop.
func (m *member) start(cfg Config) {
	eng, err := pebble.Open(filepath.Join(m.dir, "db"), pebble.Options{})
	if err != nil {
		m.t.Fatal(err)
	}
	m.eng = eng
	st, err := raftlog.Open(m.eng, raftlog.Options{Dir: filepath.Join(m.dir, "wal"), SegmentSize: m.walSegment})
	if err != nil {
		m.t.Fatal(err)
	}
	snapDir := filepath.Join(m.dir, "snap")
	if err := snap.ResumeInstall(m.eng, snapDir); err != nil {
		m.t.Fatal(err)
	}
	cfg.ID = m.id
	cfg.Storage = st
	cfg.AppliedState = appliedStateOf(m.eng)
	if cfg.ConfChangeRefused == nil {
		cfg.ConfChangeRefused = func(index uint64) (bool, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.refusedAt[index], nil
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = m.logger()
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 10 * time.Millisecond
	}
	if m.net != nil {
		// The transport exists before the node; SetRaft connects them once it starts.
		m.tr = transport.New(transport.Config{ID: m.id, ClusterID: 0xc1, Logger: cfg.Logger,
			Engine: m.eng, SnapDir: snapDir})
		for id, url := range m.net.urls {
			if id != m.id {
				m.tr.AddPeer(id, []string{url})
			}
		}
		cfg.Transport = m.tr
	}
	n, err := Start(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	if m.net != nil {
		m.tr.SetRaft(n)
		m.net.serve(m.id, m.tr.Handler())
	}
	m.mu.Lock()
	m.n = n
	m.applied = n.applied.Load()
	m.applyDone = make(chan struct{})
	m.mu.Unlock()
	go m.applyLoop(n, m.applyDone)
}

func (m *member) applyLoop(n *Node, done chan struct{}) {
	defer close(done)
	for ap := range n.Apply() {
		if !raft.IsEmptySnap(ap.Snapshot) {
			if err := snap.Install(m.eng, ap.SnapshotPath); err != nil {
				m.t.Errorf("member %d: install: %v", m.id, err)
				return
			}
			md, err := snap.ReadMeta(m.eng)
			if err != nil || md.GetIndex() != ap.Snapshot.GetMetadata().GetIndex() {
				m.t.Errorf("member %d: installed state at %v, snapshot says %d (%v)", m.id, md, ap.Snapshot.GetMetadata().GetIndex(), err)
				return
			}
			m.mu.Lock()
			m.applied = md.GetIndex()
			m.snaps++
			m.mu.Unlock()
			n.Applied(md.GetIndex())
		}
		if len(ap.Entries) == 0 {
			continue
		}
		m.mu.Lock()
		m.batches++
		m.mu.Unlock()
		b := m.eng.NewBatch()
		for _, e := range ap.Entries {
			// Every delivered entry is already durable in this member's log.
			if last, _ := n.st.LastIndex(); e.GetIndex() > last {
				m.t.Errorf("member %d: entry %d delivered before it is in the log (last %d)", m.id, e.GetIndex(), last)
			} else if term, err := n.st.Term(e.GetIndex()); err == nil && term != e.GetTerm() {
				m.t.Errorf("member %d: entry %d delivered with term %d, the log has %d", m.id, e.GetIndex(), e.GetTerm(), term)
			}
			m.mu.Lock()
			m.delivered[e.GetIndex()]++
			if e.GetIndex() != m.applied+1 {
				m.t.Errorf("member %d: entry %d delivered after %d", m.id, e.GetIndex(), m.applied)
			}
			m.applied = e.GetIndex()
			m.mu.Unlock()
			switch e.GetType() {
			case raftpb.EntryNormal:
				if len(e.GetData()) > 0 {
					b.Set(dataKey(e.GetIndex()), e.GetData())
				}
			case raftpb.EntryConfChange:
				cc := &raftpb.ConfChange{}
				if err := proto.Unmarshal(e.GetData(), cc); err != nil {
					m.t.Error(err)
				}
				if m.refuse != 0 && cc.GetNodeId() == m.refuse {
					cc.NodeId = proto.Uint64(0)
					m.mu.Lock()
					m.refusedAt[e.GetIndex()] = true
					m.mu.Unlock()
				}
				st, err := n.ApplyConfChange(cc)
				if err != nil {
					b.Close()
					return // stopped: record nothing
				}
				cs, _ := proto.Marshal(st)
				b.Set(storage.MetaConfState, cs)
			}
			b.Set(storage.MetaAppliedIndex, storage.PutUint64(e.GetIndex()))
			b.Set(storage.MetaAppliedTerm, storage.PutUint64(e.GetTerm()))
		}
		if err := b.Commit(false); err != nil {
			m.t.Errorf("member %d: %v", m.id, err)
		}
		b.Close()
		n.Applied(ap.Entries[len(ap.Entries)-1].GetIndex())
	}
}

// stop stops everything start started and closes the engine: a process restart.
func (m *member) stop() {
	if m.net != nil {
		m.net.serve(m.id, nil)
		m.tr.Stop()
	}
	m.n.Stop()
	<-m.applyDone
	if err := m.n.st.Close(); err != nil {
		m.t.Error(err)
	}
	if err := m.eng.Close(); err != nil {
		m.t.Error(err)
	}
}

func (m *member) appliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

// data returns the state machine's proposals, in index order.
func (m *member) data() string {
	it, _ := m.eng.NewIter(storage.IterOptions{LowerBound: []byte{storage.PrefixKey}, UpperBound: []byte{storage.PrefixKey + 1}})
	defer it.Close()
	var buf bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		buf.Write(it.Value())
		buf.WriteByte('\n')
	}
	return buf.String()
}

// eventually waits up to 20s for cond, failing the test with what().
func eventually(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// propose proposes data through n, retrying while there is no leader.
func propose(t *testing.T, n *Node, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Propose(ctx, []byte(data)); err != nil {
		t.Fatalf("propose %q: %v", data, err)
	}
}

// appliedStateOf is Config.AppliedState as cmd/metastore wires it, over eng.
func appliedStateOf(eng storage.Engine) func() (*raftpb.SnapshotMetadata, error) {
	return func() (*raftpb.SnapshotMetadata, error) {
		es := eng.NewSnapshot()
		defer es.Close()
		md, err := snap.ReadMeta(es)
		if errors.Is(err, snap.ErrNoState) {
			return nil, nil
		}
		return md, err
	}
}

type nopTransport struct{}

func (nopTransport) Send([]*raftpb.Message) {}

func proposals(from, to int) string {
	var buf bytes.Buffer
	for i := from; i <= to; i++ {
		fmt.Fprintf(&buf, "p%04d\n", i)
	}
	return buf.String()
}
