package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaderIndex returns the index of the member that is leader, as the members report it.
func (c *cluster) leaderIndex(t *testing.T, skip ...int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, m := range c.members {
			if contains(skip, i) {
				continue
			}
			cli := c.client(i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, m.clientURL)
			cancel()
			cli.Close()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return i
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader within 30s")
	return -1
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// waitValue polls member i with serializable reads until key has value.
func (c *cluster) waitValue(t *testing.T, i int, key, value string) {
	t.Helper()
	cli := c.client(i)
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g, err := cli.Get(ctx, key, clientv3.WithSerializable())
		cancel()
		if err == nil && len(g.Kvs) == 1 {
			last = string(g.Kvs[0].Value)
			if last == value {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("member %d: %s=%q, want %q", i, key, last, value)
}

// TestClusterReplication writes through every member and reads every write from every
// member, linearizably and serializably.
func TestClusterReplication(t *testing.T) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 3)
	for i := range c.members {
		cli := c.client(i)
		mustPut(t, cli, fmt.Sprintf("from/%d", i), fmt.Sprint(i))
	}
	for i := range c.members {
		cli := c.client(i)
		g := mustGet(t, cli, "from/", clientv3.WithPrefix())
		if keysOf(g.Kvs) != "from/0 from/1 from/2" || g.Header.Revision != 4 {
			t.Fatalf("member %d: %s at revision %d", i, keysOf(g.Kvs), g.Header.Revision)
		}
		c.waitValue(t, i, "from/2", "2")
	}
	// Every member reports the same cluster and a leader.
	cli := c.client()
	ml, err := cli.MemberList(ctxT(t))
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %+v %v", ml, err)
	}
	byName := map[string]string{}
	for _, m := range ml.Members {
		if len(m.ClientURLs) != 1 || len(m.PeerURLs) != 1 {
			t.Fatalf("member %s: client URLs %v, peer URLs %v", m.Name, m.ClientURLs, m.PeerURLs)
		}
		byName[m.Name] = m.ClientURLs[0]
	}
	for _, m := range c.members {
		if byName[m.name] != m.clientURL {
			t.Fatalf("member %s lists client URL %q, want %q", m.name, byName[m.name], m.clientURL)
		}
	}
}

// TestLeaderKill kills the leader with SIGKILL: a new leader takes over, writes go on,
// and the old leader catches up when it is restarted on its data dir.
func TestLeaderKill(t *testing.T) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 3)
	mustPut(t, c.client(), "k", "before")
	old := c.leaderIndex(t)
	c.kill(old)
	newLeader := c.leaderIndex(t, old)
	if newLeader == old {
		t.Fatal("killed member still leader")
	}
	var others []int
	for i := range c.members {
		if i != old {
			others = append(others, i)
		}
	}
	cli := c.client(others...)
	mustPut(t, cli, "k", "after")
	c.restart(old)
	c.waitValue(t, old, "k", "after")
	g := mustGet(t, c.client(old), "k")
	if string(g.Kvs[0].Value) != "after" {
		t.Fatalf("restarted member reads %q", g.Kvs[0].Value)
	}
}

// TestSnapshotCatchUp stops a follower while the others write past the snapshot count,
// so the log it needs is gone: it must catch up from a streamed snapshot.
func TestSnapshotCatchUp(t *testing.T) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 3, "--snapshot-count", "50", "--snapshot-catchup-entries", "10")
	leader := c.leaderIndex(t)
	follower := (leader + 1) % 3
	mustPut(t, c.client(), "s/first", "1")
	c.stop(follower)
	var alive []int
	for i := range c.members {
		if i != follower {
			alive = append(alive, i)
		}
	}
	cli := c.client(alive...)
	for i := 0; i < 300; i++ {
		mustPut(t, cli, fmt.Sprintf("s/%03d", i), fmt.Sprint(i))
	}
	c.restart(follower)
	c.waitValue(t, follower, "s/299", "299")
	g := mustGet(t, c.client(follower), "s/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	if g.Count != 301 {
		t.Fatalf("follower has %d keys, want 301", g.Count)
	}
	// Ours logs "installed snapshot", etcd "applied snapshot": either proves the log
	// was not simply replayed.
	if b, _ := os.ReadFile(c.members[follower].logPath); !strings.Contains(string(b), "installed snapshot") && !strings.Contains(string(b), "applied snapshot") {
		t.Fatalf("follower caught up without installing a snapshot; log:\n%s", c.logTail(follower))
	}
}

// TestDurabilityUnderKill writes from several clients while members are killed with
// SIGKILL and restarted; every acknowledged write must be there at the end.
func TestDurabilityUnderKill(t *testing.T) {
	durabilityUnderKill(t)
}

// TestDurabilityUnderKillWithLogCuts is TestDurabilityUnderKill with the log cut every
// 100 entries, so killed members restart from WALs whose older segments compaction
// deleted, and laggards catch up from snapshots. (The sync of the state machine that
// precedes each cut protects against power loss, which SIGKILL cannot show: the
// kernel keeps what a killed process wrote.)
func TestDurabilityUnderKillWithLogCuts(t *testing.T) {
	durabilityUnderKill(t, "--snapshot-count", "100", "--snapshot-catchup-entries", "10")
}

func durabilityUnderKill(t *testing.T, flags ...string) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 3, flags...)
	cli := c.client()
	var acked sync.Map
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("dur/%d/%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err := cli.Put(ctx, k, k)
				cancel()
				if err == nil {
					acked.Store(k, true)
					n.Add(1)
				}
			}
		}(w)
	}
	for round := 0; round < 3; round++ {
		time.Sleep(700 * time.Millisecond)
		victim := c.leaderIndex(t)
		if round == 1 {
			victim = (victim + 1) % 3
		}
		c.kill(victim)
		time.Sleep(500 * time.Millisecond)
		c.restart(victim)
	}
	// Then every member at once.
	for i := range c.members {
		c.kill(i)
	}
	close(stop)
	wg.Wait()
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	if n.Load() == 0 {
		t.Fatal("no write was acknowledged")
	}
	cli2 := c.client()
	g := mustGet(t, cli2, "dur/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	have := map[string]bool{}
	for _, kv := range g.Kvs {
		have[string(kv.Key)] = true
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if !have[k.(string)] {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged write %s lost", k)
			}
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, n.Load())
	}
	t.Logf("%d acknowledged writes, all present", n.Load())
}

// TestElectionTickAdvance: with etcd's default --initial-election-tick-advance, every
// member of a cluster, started and later restarted all at once, fast-forwards its
// election clock once its peers answer (etcd's log line), and the restarted cluster
// serves what it held; with the flag false none does.
func TestElectionTickAdvance(t *testing.T) {
	const line = `"msg":"initialized peer connections; fast-forwarding election ticks"`
	count := func(c *cluster, i int) int {
		b, _ := os.ReadFile(c.members[i].logPath)
		return strings.Count(string(b), line)
	}
	c := newCluster(t, binary{"metastore", metastoreBin}, 3)
	mustPut(t, c.client(), "k", "v")
	for i := range c.members {
		c.kill(i)
	}
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	if g := mustGet(t, c.client(), "k"); len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v" {
		t.Fatalf("after the restart: %v", g.Kvs)
	}
	for i := range c.members {
		if n := count(c, i); n != 2 {
			t.Errorf("member %d fast-forwarded %d times over a start and a restart, want 2; log:\n%s", i, n, c.logTail(i))
		}
	}

	off := newCluster(t, binary{"metastore", metastoreBin}, 3, "--initial-election-tick-advance=false")
	mustPut(t, off.client(), "k", "v")
	for i := range off.members {
		if n := count(off, i); n != 0 {
			t.Errorf("member %d fast-forwarded with --initial-election-tick-advance=false", i)
		}
	}
}
