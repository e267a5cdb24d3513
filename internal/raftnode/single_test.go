package raftnode

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3"
)

// A single-member cluster elects itself, applies every proposal exactly once, and
// after a restart neither loses nor re-delivers anything, even across log snapshots
// and compactions.
func TestSingleMemberRestart(t *testing.T) {
	m := newMember(t, 1, t.TempDir())
	cfg := Config{Transport: nopTransport{}, SnapshotCount: 20, SnapshotCatchupEntries: 5}
	cfg.Peers = []raft.Peer{{ID: 1}}
	m.start(cfg)
	eventually(t, func() string { return "no leader" }, func() bool { return m.n.Leader() == 1 })
	if !m.n.IsLeader() || m.n.Term() == 0 {
		t.Fatalf("leader=%v term=%d", m.n.IsLeader(), m.n.Term())
	}
	for i := 1; i <= 50; i++ {
		propose(t, m.n, fmt.Sprintf("p%04d", i))
	}
	eventually(t, func() string { return m.data() }, func() bool { return m.data() == proposals(1, 50) })
	eventually(t, func() string { return "log not compacted after 50 entries with SnapshotCount 20" }, func() bool {
		first, _ := m.n.st.FirstIndex()
		return first > 1
	})
	m.stop()

	cfg.Peers = nil
	m.start(cfg)
	eventually(t, func() string { return "no leader after restart" }, func() bool { return m.n.Leader() == 1 })
	for i := 51; i <= 60; i++ {
		propose(t, m.n, fmt.Sprintf("p%04d", i))
	}
	eventually(t, func() string { return m.data() }, func() bool { return m.data() == proposals(1, 60) })
	m.stop()
	for idx, times := range m.delivered {
		if times != 1 {
			t.Errorf("entry %d delivered %d times", idx, times)
		}
	}
}
