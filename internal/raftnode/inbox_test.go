package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Without a leader a proposal waits until its context ends and then fails with the
// context's error; stopping the node fails the ones still waiting with ErrStopped; a
// stopped node answers calls without blocking.
func TestProposalsWithoutLeader(t *testing.T) {
	m := newMember(t, 1, t.TempDir())
	cfg := Config{Transport: nopTransport{}}
	cfg.Peers = []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}} // the others never answer: no quorum
	m.start(cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := m.n.Propose(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Propose without a leader: %v, want DeadlineExceeded", err)
	}

	expired := make(chan error, 1)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	m.n.ProposeAsync(ctx2, []byte("y"), func(err error) { expired <- err })
	select {
	case err := <-expired:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("queued proposal ended with %v, want DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a queued proposal whose context ended was never answered")
	}

	stopped := make(chan error, 1)
	m.n.ProposeAsync(context.Background(), []byte("z"), func(err error) { stopped <- err })
	m.stop()
	if err := <-stopped; !errors.Is(err, ErrStopped) {
		t.Fatalf("proposal queued at Stop ended with %v, want ErrStopped", err)
	}
	if err := m.n.Propose(context.Background(), []byte("w")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose after Stop: %v", err)
	}
	// A stopped node has no configuration to give: an error, never an empty ConfState
	// that the state machine would record.
	if cs, err := m.n.ApplyConfChange(&raftpb.ConfChange{}); cs != nil || !errors.Is(err, ErrStopped) {
		t.Fatalf("ApplyConfChange after Stop = %v, %v; want nil, ErrStopped", cs, err)
	}
	if st := m.n.Status(); st.ID != 0 {
		t.Fatalf("Status after Stop: %+v", st)
	}
	if m.appliedIndex() != 3 { // the three bootstrap conf changes, nothing else
		t.Fatalf("applied %d entries", m.appliedIndex())
	}
}

// A proposal made while the cluster has no leader goes to raft once one is elected.
func TestQueuedProposalCommitsOnceALeaderIsElected(t *testing.T) {
	c := newCluster(t, Config{})
	lead := c.leader()
	for id := range c.members {
		if id != lead.id {
			c.stop(id)
		}
	}
	eventually(t, func() string { return "the lone member keeps its leader" }, func() bool { return lead.n.Leader() == 0 })
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lead.n.ProposeAsync(ctx, []byte("late"), func(err error) { done <- err })
	for id := range c.members {
		if id != lead.id {
			c.restart(id)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("queued proposal: %v", err)
	}
	eventually(t, func() string { return lead.data() }, func() bool { return lead.data() == "late\n" })
}

// Many goroutines proposing at once: every proposal is applied exactly once, and the
// proposals share Readys (fewer Applies than proposals).
func TestConcurrentProposals(t *testing.T) {
	m := newMember(t, 1, t.TempDir())
	cfg := Config{Transport: nopTransport{}, SnapshotCount: 100, SnapshotCatchupEntries: 10}
	cfg.Peers = []raft.Peer{{ID: 1}}
	m.start(cfg)
	defer m.stop()
	eventually(t, func() string { return "no leader" }, func() bool { return m.n.IsLeader() })
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				propose(t, m.n, fmt.Sprintf("w%02d-%02d", w, i))
			}
		}()
	}
	wg.Wait()
	eventually(t, func() string { return fmt.Sprint(m.appliedIndex()) }, func() bool { return m.appliedIndex() >= 1+writers*each })
	m.mu.Lock()
	defer m.mu.Unlock()
	for idx, times := range m.delivered {
		if times != 1 {
			t.Errorf("entry %d delivered %d times", idx, times)
		}
	}
	if m.batches >= writers*each {
		t.Errorf("%d proposals took %d Applies: none were batched", writers*each, m.batches)
	}
}
