package raftnode

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
)

// A member whose WAL cannot be written stops its loop with the error, and no longer
// reports a leader: require-leader checks and health must not keep passing on a
// member that has stopped following. Its WAL directory is removed under it, so the
// next segment roll fails, as on a disk gone away.
func TestWALErrorStopsNodeAndClearsLeader(t *testing.T) {
	m := newMember(t, 1, t.TempDir())
	m.walSegment = 16 << 10
	cfg := Config{Transport: nopTransport{}}
	cfg.Peers = []raft.Peer{{ID: 1}}
	m.start(cfg)
	eventually(t, func() string { return "no leader" }, func() bool { return m.n.Leader() == 1 })
	propose(t, m.n, "before")
	changed := m.n.LeaderChanged()

	if err := os.RemoveAll(filepath.Join(m.dir, "wal")); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 4<<10)
	// Each proposal either is taken or finds the node stopped; within a few
	// segments' worth of entries the roll into the removed directory fails.
	for i := 0; i < 64; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.n.Propose(ctx, []byte(big))
		cancel()
		if err != nil {
			break
		}
	}
	select {
	case <-m.n.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("node still running after its WAL directory was removed")
	}
	if err := m.n.Err(); err == nil {
		t.Fatal("Err() is nil after a WAL failure")
	} else {
		t.Logf("node stopped: %v", err)
	}
	if l := m.n.Leader(); l != raft.None {
		t.Errorf("stopped node reports leader %x", l)
	}
	if m.n.IsLeader() {
		t.Error("stopped node reports itself leader")
	}
	select {
	case <-changed:
	default:
		t.Error("LeaderChanged not signalled when the node stopped")
	}
	if err := m.n.Propose(context.Background(), []byte("after")); err != ErrStopped {
		t.Errorf("Propose on a stopped node: %v, want ErrStopped", err)
	}
	m.stop() // Stop after a fatal stop returns; the engine closes.
}
