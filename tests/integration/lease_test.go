package integration

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/status"
)

// sameStatus reports whether err is the gRPC status want (code and message).
func sameStatus(err, want error) bool {
	s, ok := status.FromError(err)
	w, _ := status.FromError(want)
	return ok && s.Code() == w.Code() && s.Message() == w.Message()
}

// waitGone polls until key is deleted and returns when that was seen.
func waitGone(t *testing.T, cli *clientv3.Client, key string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := cli.Get(ctx, key, clientv3.WithSerializable())
		cancel()
		if err == nil && len(resp.Kvs) == 0 {
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%q still there after %v", key, within)
	return time.Time{}
}

// TestLease drives the Lease API and leases on keys with clientv3, against ours and
// real etcd: the same answers and errors.
func TestLease(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx := ctxT(t)
		raw := pb.NewLeaseClient(cli.ActiveConnection())

		g, err := cli.Grant(ctx, 60)
		if err != nil || g.ID == 0 || g.TTL != 60 {
			t.Fatalf("Grant = %v, %v", g, err)
		}
		// Below the minimum: raised (2s with the default election timeout and heartbeat).
		if small, err := cli.Grant(ctx, 1); err != nil || small.TTL != 2 {
			t.Fatalf("Grant(1) = %v, %v; want TTL 2", small, err)
		}
		// A client-chosen ID, a duplicate, a TTL too large.
		if r, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x1234, TTL: 30}); err != nil || r.ID != 0x1234 {
			t.Fatalf("LeaseGrant(0x1234) = %v, %v", r, err)
		}
		if _, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x1234, TTL: 30}); !sameStatus(err, rpctypes.ErrGRPCLeaseExist) {
			t.Fatalf("duplicate grant: %v", err)
		}
		if _, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 9000000001}); !sameStatus(err, rpctypes.ErrGRPCLeaseTTLTooLarge) {
			t.Fatalf("grant too large: %v", err)
		}

		// Keys on the lease; a put with an unknown lease fails.
		p1, err := cli.Put(ctx, "la", "1", clientv3.WithLease(g.ID))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "lb", "2", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "lx", "2", clientv3.WithLease(0x999)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("put with unknown lease: %v", err)
		}
		// ignore_lease keeps it, prev_kv carries it, a txn compares on it.
		pr, err := cli.Put(ctx, "la", "3", clientv3.WithIgnoreLease(), clientv3.WithPrevKV())
		if err != nil || pr.PrevKv.Lease != int64(g.ID) {
			t.Fatalf("put ignore_lease = %v, %v", pr, err)
		}
		tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue("la"), "=", g.ID)).Then(clientv3.OpGet("la")).Commit()
		if err != nil || !tr.Succeeded || tr.Responses[0].GetResponseRange().Kvs[0].Lease != int64(g.ID) {
			t.Fatalf("txn on lease = %v, %v", tr, err)
		}

		ttl, err := cli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{string(ttl.Keys[0]), string(ttl.Keys[1])}
		slices.Sort(keys)
		if ttl.GrantedTTL != 60 || ttl.TTL < 50 || ttl.TTL > 60 || !slices.Equal(keys, []string{"la", "lb"}) {
			t.Fatalf("TimeToLive = %v", ttl)
		}
		if unknown, err := cli.TimeToLive(ctx, 0x777); err != nil || unknown.TTL != -1 {
			t.Fatalf("TimeToLive(unknown) = %v, %v; want TTL -1", unknown, err)
		}
		ls, err := cli.Leases(ctx)
		if err != nil || len(ls.Leases) != 3 {
			t.Fatalf("Leases = %v, %v", ls, err)
		}

		ka, err := cli.KeepAliveOnce(ctx, g.ID)
		if err != nil || ka.TTL != 60 {
			t.Fatalf("KeepAliveOnce = %v, %v", ka, err)
		}
		// An unknown lease answers TTL 0 on the stream, which clientv3 reports as not found.
		if _, err := cli.KeepAliveOnce(ctx, 0x777); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("KeepAliveOnce(unknown) = %v", err)
		}
		stream, err := raw.LeaseKeepAlive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: 0x777}); err != nil {
			t.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || r.TTL != 0 || r.ID != 0x777 {
			t.Fatalf("keep-alive of unknown lease = %v, %v", r, err)
		}
		_ = stream.CloseSend()

		// Revoke deletes both keys in one revision.
		rv, err := cli.Revoke(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rv.Header.Revision != p1.Header.Revision+3 {
			t.Fatalf("revoke at revision %d, want %d", rv.Header.Revision, p1.Header.Revision+3)
		}
		if got, _ := cli.Get(ctx, "l", clientv3.WithPrefix()); len(got.Kvs) != 0 {
			t.Fatalf("keys left after revoke: %v", got.Kvs)
		}
		if _, err := cli.Revoke(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("second revoke: %v", err)
		}

		// Expiry: a 2s lease's key goes after about 2s.
		short, err := cli.Grant(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := cli.Put(ctx, "short", "v", clientv3.WithLease(short.ID)); err != nil {
			t.Fatal(err)
		}
		gone := waitGone(t, cli, "short", 15*time.Second)
		if d := gone.Sub(start); d < time.Second {
			t.Fatalf("2s lease expired after %v", d)
		}
		if r, _ := cli.TimeToLive(ctx, short.ID); r.TTL != -1 {
			t.Fatalf("expired lease TimeToLive = %v", r)
		}
	})
}

// TestLeaseCluster: keep-alive and time-to-live through a follower answer the leader's
// TTL; a lease survives a leader SIGKILL with what remained (not reset to its TTL);
// a concurrency.Mutex held by a client that goes away passes to the next session once
// its lease expires.
func TestLeaseCluster(t *testing.T) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 3)
	leader := c.leaderIndex(t)
	follower := (leader + 1) % 3
	lcli, fcli := c.client(leader), c.client(follower)
	ctx := ctxT(t)

	g, err := lcli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	if _, err := lcli.Put(ctx, "held", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	if ka, err := fcli.KeepAliveOnce(ctx, g.ID); err != nil || ka.TTL != 10 {
		t.Fatalf("KeepAliveOnce through a follower = %v, %v", ka, err)
	}
	granted = time.Now()
	if r, err := fcli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys()); err != nil || r.GrantedTTL != 10 || r.TTL < 8 || len(r.Keys) != 1 {
		t.Fatalf("TimeToLive through a follower = %v, %v", r, err)
	}
	if _, err := fcli.KeepAliveOnce(ctx, 0x4242); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("KeepAliveOnce(unknown) through a follower = %v", err)
	}

	// Let 4s pass (checkpoints are taken every second), then kill the leader.
	for time.Since(granted) < 4*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	killed := time.Now()
	c.kill(leader)
	next := c.leaderIndex(t, leader)
	ncli := c.client(next)
	r, err := ncli.TimeToLive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// About 6s remained at the kill: the new leader gives no more than that plus the
	// checkpoint delay and the election timeout it adds (as etcd), never the whole 10s.
	if r.TTL > 8 || r.TTL < 1 {
		t.Fatalf("after the leader change TTL = %d, want ~6 (granted 10, 6 left at the kill)", r.TTL)
	}
	gone := waitGone(t, ncli, "held", 20*time.Second)
	left := granted.Add(10 * time.Second).Sub(killed)
	if d := gone.Sub(killed); d < left-time.Second || d > left+4*time.Second {
		t.Fatalf("key gone %v after the kill; %v remained", d, left)
	}

	// A mutex held by a session whose client goes away passes on once its lease expires.
	others := []int{0, 1, 2}
	others = slices.DeleteFunc(others, func(i int) bool { return i == leader })
	c1, c2 := c.client(others[0]), c.client(others[1])
	s1, err := concurrency.NewSession(c1, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := concurrency.NewSession(c2, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	m1, m2 := concurrency.NewMutex(s1, "/lock/"), concurrency.NewMutex(s2, "/lock/")
	if err := m1.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("TryLock while held = %v", err)
	}
	c1.Close() // the holder goes away without unlocking: its keep-alives stop
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := m2.TryLock(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, concurrency.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("TryLock after the holder left = %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := m2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseSurvivesFullRestart: every member killed at once and restarted; the lease
// goes on from its checkpoint (not its whole TTL) and its key expires with it.
func TestLeaseSurvivesFullRestart(t *testing.T) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 3)
	cli := c.client()
	ctx := ctxT(t)
	g, err := cli.Grant(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	if _, err := cli.Put(ctx, "kept", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	// Checkpoints every 2s (a tenth of 20s): let 7s pass.
	for time.Since(granted) < 7*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	killed := time.Now()
	for i := range c.members {
		c.kill(i)
	}
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	cli2 := c.client()
	r, err := cli2.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	left := granted.Add(20 * time.Second).Sub(killed)
	if r.GrantedTTL != 20 || r.TTL >= 20 || time.Duration(r.TTL)*time.Second > left+3*time.Second || len(r.Keys) != 1 {
		t.Fatalf("after a full restart: %v (%v remained at the kill)", r, left)
	}
	gone := waitGone(t, cli2, "kept", 30*time.Second)
	// At least what remained, counted from the kill; the downtime comes on top.
	if d := gone.Sub(killed); d < left-time.Second {
		t.Fatalf("key gone %v after the kill; %v remained", d, left)
	}
}
