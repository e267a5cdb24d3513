package raftnode

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// network gives every member a fixed loopback peer URL that survives its restarts:
// while a member is down its URL answers 503, like a dead process behind a live port.
type network struct {
	mu       sync.Mutex
	handlers map[uint64]http.Handler
	urls     map[uint64]string
	servers  []*httptest.Server
}

func newNetwork(t *testing.T, ids ...uint64) *network {
	nw := &network{handlers: map[uint64]http.Handler{}, urls: map[uint64]string{}}
	for _, id := range ids {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			nw.mu.Lock()
			h := nw.handlers[id]
			nw.mu.Unlock()
			if h == nil {
				http.Error(w, "member down", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		}))
		nw.urls[id] = srv.URL
		nw.servers = append(nw.servers, srv)
	}
	t.Cleanup(func() {
		for _, s := range nw.servers {
			s.Close()
		}
	})
	return nw
}

func (nw *network) serve(id uint64, h http.Handler) {
	nw.mu.Lock()
	nw.handlers[id] = h
	nw.mu.Unlock()
}

type cluster struct {
	t       *testing.T
	dir     string
	nw      *network
	cfg     Config
	members map[uint64]*member
	up      map[uint64]bool
}

// newCluster bootstraps a 3-member cluster over loopback HTTP on Pebble.
// A fourth member (ID 4) has a URL on the network but is not started: see join.
func newCluster(t *testing.T, cfg Config) *cluster {
	ids := []uint64{1, 2, 3}
	nw := newNetwork(t, 1, 2, 3, 4)
	c := &cluster{t: t, cfg: cfg, members: map[uint64]*member{}, up: map[uint64]bool{}, dir: t.TempDir()}
	var peers []raft.Peer
	for _, id := range ids {
		peers = append(peers, raft.Peer{ID: id})
	}
	for _, id := range ids {
		m := newMember(t, id, filepath.Join(c.dir, fmt.Sprint(id)))
		m.net = nw
		c.members[id] = m
		boot := cfg
		boot.Peers = peers
		m.start(boot)
		c.up[id] = true
	}
	c.nw = nw
	t.Cleanup(func() {
		for id, m := range c.members {
			if c.up[id] {
				m.stop()
			}
		}
	})
	return c
}

// join starts member id with an empty data dir and no bootstrap peers, as a member
// added to a running cluster starts.
func (c *cluster) join(id uint64) *member {
	m := newMember(c.t, id, filepath.Join(c.dir, fmt.Sprint(id)))
	m.net = c.nw
	c.members[id] = m
	m.start(c.cfg)
	c.up[id] = true
	return m
}

func (c *cluster) stop(id uint64) {
	c.members[id].stop()
	c.up[id] = false
}

func (c *cluster) restart(id uint64) {
	c.members[id].start(c.cfg)
	c.up[id] = true
}

// leader waits until the running members agree on one running leader.
func (c *cluster) leader() *member {
	c.t.Helper()
	var lead uint64
	eventually(c.t, func() string { return "no agreed leader" }, func() bool {
		lead = 0
		for id, m := range c.members {
			if !c.up[id] {
				continue
			}
			l := m.n.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				return false
			}
			lead = l
		}
		return c.up[lead]
	})
	return c.members[lead]
}

// converged waits until every running member's state machine holds want lines.
func (c *cluster) converged(want int) string {
	c.t.Helper()
	var data string
	eventually(c.t, func() string { return "members differ:\n" + c.describe() }, func() bool {
		data = ""
		for id, m := range c.members {
			if !c.up[id] {
				continue
			}
			d := m.data()
			if strings.Count(d, "\n") != want || (data != "" && d != data) {
				return false
			}
			data = d
		}
		return true
	})
	return data
}

func (c *cluster) describe() string {
	var b strings.Builder
	for id, m := range c.members {
		if c.up[id] {
			fmt.Fprintf(&b, "member %d: applied %d, %d proposals\n", id, m.appliedIndex(), strings.Count(m.data(), "\n"))
		}
	}
	return b.String()
}

// Proposals made through any member are applied, once and in the same order, by all;
// also when the leader sends while it persists.
func TestClusterReplicates(t *testing.T) {
	for _, parallel := range []bool{false, true} {
		t.Run(fmt.Sprintf("LeaderSendsBeforePersist=%v", parallel), func(t *testing.T) {
			c := newCluster(t, Config{LeaderSendsBeforePersist: parallel})
			c.leader()
			for i := 1; i <= 60; i++ {
				propose(t, c.members[uint64(i%3+1)].n, fmt.Sprintf("p%04d", i))
			}
			data := c.converged(60)
			lines := strings.Split(strings.TrimSpace(data), "\n")
			sort.Strings(lines)
			if strings.Join(lines, "\n")+"\n" != proposals(1, 60) {
				t.Fatalf("applied proposals:\n%s", data)
			}
			for id, m := range c.members {
				m.mu.Lock()
				for idx, times := range m.delivered {
					if times != 1 {
						t.Errorf("member %d: entry %d delivered %d times", id, idx, times)
					}
				}
				m.mu.Unlock()
			}
		})
	}
}

// When the leader stops, the other two elect a new leader in a higher term and keep
// committing; the old leader catches up when it returns.
func TestLeaderStopElectsNewLeader(t *testing.T) {
	c := newCluster(t, Config{})
	old := c.leader()
	oldTerm := old.n.Term()
	propose(t, old.n, "before")
	c.converged(1)

	c.stop(old.id)
	nl := c.leader()
	if nl.id == old.id || nl.n.Term() <= oldTerm {
		t.Fatalf("new leader %d at term %d, old leader %d at term %d", nl.id, nl.n.Term(), old.id, oldTerm)
	}
	propose(t, nl.n, "after")
	c.converged(2)

	c.restart(old.id)
	data := c.converged(2)
	if data != "before\nafter\n" {
		t.Fatalf("data = %q", data)
	}
}

// A member that was down while the others took log snapshots and compacted past its
// position catches up from a streamed snapshot of the leader's state machine.
func TestLaggingMemberCatchesUpBySnapshot(t *testing.T) {
	c := newCluster(t, Config{SnapshotCount: 20, SnapshotCatchupEntries: 5})
	lead := c.leader()
	var lagger *member
	for id, m := range c.members {
		if id != lead.id {
			lagger = m
			break
		}
	}
	propose(t, lead.n, "p0001")
	c.converged(1)
	c.stop(lagger.id)

	for i := 2; i <= 100; i++ {
		propose(t, lead.n, fmt.Sprintf("p%04d", i))
	}
	c.converged(99 + 1)
	first, _ := lead.n.st.FirstIndex()
	if first <= lagger.appliedIndex()+1 {
		t.Fatalf("leader log starts at %d: not compacted past the lagging member's %d", first, lagger.appliedIndex())
	}

	c.restart(lagger.id)
	c.converged(100)
	// The state above may become visible just before the apply loop counts the install.
	eventually(t, func() string { return fmt.Sprintf("member %d caught up without a snapshot", lagger.id) }, func() bool {
		lagger.mu.Lock()
		defer lagger.mu.Unlock()
		return lagger.snaps > 0
	})
	// And it keeps replicating normally afterwards.
	propose(t, c.leader().n, "p0101")
	if data := c.converged(101); data != proposals(1, 101) {
		t.Fatalf("data after catch-up:\n%s", data)
	}
}

// ReadIndex on a follower answers with a read point at or after every write that
// completed before the request.
func TestReadIndexOnFollower(t *testing.T) {
	c := newCluster(t, Config{})
	lead := c.leader()
	for i := 1; i <= 10; i++ {
		propose(t, lead.n, fmt.Sprintf("p%04d", i))
	}
	c.converged(10)
	written := lead.appliedIndex()
	var follower *member
	for id, m := range c.members {
		if id != lead.id {
			follower = m
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := follower.n.ReadIndex(ctx, []byte("read-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case rs := <-follower.n.ReadStates():
		if string(rs.RequestCtx) != "read-1" || rs.Index < written {
			t.Fatalf("read state %q at %d, want read-1 at >= %d", rs.RequestCtx, rs.Index, written)
		}
	case <-ctx.Done():
		t.Fatal("no read state")
	}
}

// A member added by a configuration change joins with an empty data dir, catches up
// (by snapshot, the log being compacted) and counts in the quorum.
func TestAddMemberCatchesUp(t *testing.T) {
	c := newCluster(t, Config{SnapshotCount: 20, SnapshotCatchupEntries: 5})
	lead := c.leader()
	for i := 1; i <= 50; i++ {
		propose(t, lead.n, fmt.Sprintf("p%04d", i))
	}
	c.converged(50)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(4))}
	if err := lead.n.ProposeConfChange(ctx, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string { return "member 4 not in the configuration" }, func() bool {
		return len(lead.n.Status().Config.Voters.IDs()) == 4
	})
	joined := c.join(4)
	c.converged(50)
	eventually(t, func() string { return "member 4 caught up without a snapshot" }, func() bool {
		joined.mu.Lock()
		defer joined.mu.Unlock()
		return joined.snaps > 0
	})
	// With 4 voters, 3 are a quorum: stop one original member and keep committing.
	for id := range c.members {
		if id != lead.id && id != 4 {
			c.stop(id)
			break
		}
	}
	propose(t, c.leader().n, "p0051")
	if data := c.converged(51); data != proposals(1, 51) {
		t.Fatalf("data:\n%s", data)
	}
}
