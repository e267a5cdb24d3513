package integration

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// tamper changes, in member i's engine while it is stopped, the value of key's version
// at rev: a silent corruption of one member's data.
func (c *cluster) tamper(t *testing.T, i int, key string, rev int64) {
	t.Helper()
	eng, err := pebble.Open(filepath.Join(c.members[i].dataDir, "db"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vk := storage.VersionKey([]byte(key), rev, 0)
	v, err := eng.Get(vk)
	if err != nil {
		t.Fatalf("version of %q at %d: %v", key, rev, err)
	}
	v = append([]byte(nil), v...)
	v[len(v)-1] ^= 0xFF
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(vk, v); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptionDetected: a member whose data was changed behind Raft's back is found
// out as etcd finds it: with the InitialCorruptCheck gate it refuses to start ("found
// data inconsistency with peers"); without it, the leader's periodic check
// (--corrupt-check-time) raises the CORRUPT alarm, and the cluster then refuses writes
// with etcd's "etcdserver: corrupt cluster" while reads go on.
func TestCorruptionDetected(t *testing.T) {
	c := newCluster(t, ours(), 3, "--corrupt-check-time=1s")
	defer c.close()
	cli := c.client()
	ctx := ctxT(t)
	mustPut(t, cli, "a", "1")
	put := mustPut(t, cli, "tamper", "original")
	mustPut(t, cli, "b", "2")
	victim := (c.leaderIndex(t) + 1) % 3
	// Every member has applied everything before the victim stops.
	for i := range c.members {
		c.waitValue(t, i, "b", "2")
	}
	c.stop(victim)
	c.tamper(t, victim, "tamper", put.Header.Revision)

	// Initial check: the member refuses to start.
	m := c.members[victim]
	plain := m.args
	m.args = append(append([]string(nil), plain...), "--feature-gates=InitialCorruptCheck=true")
	c.start(victim)
	select {
	case <-m.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the tampered member started with the initial corruption check; log:\n%s", c.logTail(victim))
	}
	if log := c.logTail(victim); !strings.Contains(log, "found data inconsistency with peers") {
		t.Fatalf("the tampered member stopped without etcd's message; log:\n%s", log)
	}

	// Periodic check: the leader raises CORRUPT for it.
	m.args = plain
	c.restart(victim)
	vcli := c.client(victim)
	st, err := vcli.Status(ctx, m.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	var alarms *clientv3.AlarmResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		alarms, err = cli.AlarmList(ctx)
		if err == nil && len(alarms.Alarms) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alarm 30s after the tampered member restarted: %+v %v", alarms, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm != pb.AlarmType_CORRUPT {
			t.Errorf("alarm %v, want CORRUPT", a)
		}
		if a.MemberID != st.Header.MemberId && c.leaderIndex(t) != victim {
			t.Errorf("CORRUPT raised for %x, want the tampered member %x", a.MemberID, st.Header.MemberId)
		}
	}
	if _, err := cli.Put(ctx, "c", "3"); !errors.Is(err, rpctypes.ErrCorrupt) || rpctypes.ErrorDesc(err) != "etcdserver: corrupt cluster" {
		t.Fatalf("put under CORRUPT: %v, want etcdserver: corrupt cluster", err)
	}
	if g, err := cli.Get(ctx, "a"); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("read under CORRUPT: %+v %v", g, err)
	}
	// Status lists the alarm in its errors, as etcd ("memberID:<id> alarm:CORRUPT").
	st, err = cli.Status(ctx, c.members[(victim+1)%3].clientURL)
	if err != nil || !containsString(st.Errors, "alarm:CORRUPT") {
		t.Errorf("status errors under CORRUPT: %+v %v", st, err)
	}
}

func containsString(xs []string, sub string) bool {
	for _, x := range xs {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// waitAlarm waits until the cluster lists an alarm, and returns them.
func waitAlarm(t *testing.T, cli *clientv3.Client) []*pb.AlarmMember {
	t.Helper()
	ctx := ctxT(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		alarms, err := cli.AlarmList(ctx)
		if err == nil && len(alarms.Alarms) > 0 {
			return alarms.Alarms
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alarm within 30s: %+v %v", alarms, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCompactHashCheckDetects: with etcd's CompactHashCheck gate, the hashes members
// compute at a compaction are compared by the leader, and a member whose history was
// changed behind Raft's back gets the CORRUPT alarm.
func TestCompactHashCheckDetects(t *testing.T) {
	c := newCluster(t, ours(), 3, "--feature-gates=CompactHashCheck=true", "--compact-hash-check-time=500ms")
	defer c.close()
	cli := c.client()
	ctx := ctxT(t)
	put := mustPut(t, cli, "tamper", "original")
	mustPut(t, cli, "b", "2")
	victim := (c.leaderIndex(t) + 1) % 3
	for i := range c.members {
		c.waitValue(t, i, "b", "2")
	}
	c.stop(victim)
	c.tamper(t, victim, "tamper", put.Header.Revision)
	c.restart(victim)
	c.waitValue(t, victim, "b", "2")
	last := mustPut(t, cli, "c", "3")
	for i := range c.members {
		c.waitValue(t, i, "c", "3")
	}
	if _, err := cli.Compact(ctx, last.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	st, err := c.client(victim).Status(ctx, c.members[victim].clientURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range waitAlarm(t, cli) {
		if a.Alarm != pb.AlarmType_CORRUPT || (a.MemberID != st.Header.MemberId && c.leaderIndex(t) != victim) {
			t.Errorf("alarm %v, want CORRUPT for the tampered member %x", a, st.Header.MemberId)
		}
	}
	if _, err := cli.Put(ctx, "d", "4"); !errors.Is(err, rpctypes.ErrCorrupt) {
		t.Fatalf("put under CORRUPT: %v", err)
	}
}
