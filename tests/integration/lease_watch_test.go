package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	epb "github.com/metastore/metastore/internal/lockelect/v3electionpb"
	lpb "github.com/metastore/metastore/internal/lockelect/v3lockpb"
)

// requireWatch skips the test when the server does not serve Watch yet: waiting for a
// held lock or an election, and seeing a revoke's deletes, are watches.
func requireWatch(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
	if err == nil {
		// A Send to a stream the server ended says io.EOF; Recv has the status.
		_ = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("probe")}}})
		_, err = ws.Recv()
	}
	if status.Code(err) == codes.Unimplemented {
		t.Skip("the server does not serve Watch yet")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestLeaseWithWatch: a watcher sees every key of a revoked lease deleted at one
// revision; a held lock and a campaign pass on (through clientv3/concurrency and through
// the v3lock and v3election services) when the holder goes away or resigns.
func TestLeaseWithWatch(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		requireWatch(t, cli)
		ctx := ctxT(t)

		g, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"w/a", "w/b", "w/c"} {
			if _, err := cli.Put(ctx, k, "v", clientv3.WithLease(g.ID)); err != nil {
				t.Fatal(err)
			}
		}
		wch := cli.Watch(ctx, "w/", clientv3.WithPrefix())
		rv, err := cli.Revoke(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		var dels int
		for dels < 3 {
			wr := <-wch
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != rv.Header.Revision {
					t.Fatalf("event %v, want a delete at %d", ev, rv.Header.Revision)
				}
				dels++
			}
		}

		// A mutex whose holder's client goes away passes on once its lease expires.
		c1, c2 := c.client(), c.client()
		s1, err := concurrency.NewSession(c1, concurrency.WithTTL(2))
		if err != nil {
			t.Fatal(err)
		}
		s2, err := concurrency.NewSession(c2, concurrency.WithTTL(2))
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		m1, m2 := concurrency.NewMutex(s1, "/mx/"), concurrency.NewMutex(s2, "/mx/")
		if err := m1.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { got <- m2.Lock(ctx) }()
		select {
		case err := <-got:
			t.Fatalf("second Lock returned %v while the first holds it", err)
		case <-time.After(500 * time.Millisecond):
		}
		c1.Close()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the lock did not pass on after its holder's lease expired")
		}

		// An election: the second candidate waits; it leads once the first resigns.
		e1, e2 := concurrency.NewElection(s2, "/el/"), concurrency.NewElection(mustSession(t, cli), "/el/")
		if err := e1.Campaign(ctx, "one"); err != nil {
			t.Fatal(err)
		}
		obs := e1.Observe(ctx)
		if v := <-obs; string(v.Kvs[0].Value) != "one" {
			t.Fatalf("observed %q", v.Kvs[0].Value)
		}
		won := make(chan error, 1)
		go func() { won <- e2.Campaign(ctx, "two") }()
		if err := e1.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-won; err != nil {
			t.Fatal(err)
		}
		if v := <-obs; string(v.Kvs[0].Value) != "two" {
			t.Fatalf("observed %q after the resignation", v.Kvs[0].Value)
		}

		// The v3lock service waits for a held lock too.
		lc := lpb.NewLockClient(cli.ActiveConnection())
		l1, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("svc"), Lease: int64(s2.Lease())})
		if err != nil {
			t.Fatal(err)
		}
		got2 := make(chan *lpb.LockResponse, 1)
		go func() {
			r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("svc"), Lease: int64(mustSession(t, cli).Lease())})
			if err != nil {
				t.Error(err)
			}
			got2 <- r
		}()
		if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: l1.Key}); err != nil {
			t.Fatal(err)
		}
		if r := <-got2; r == nil || string(r.Key) == string(l1.Key) {
			t.Fatalf("second Lock = %v", r)
		}
		// Observe through the v3election service streams the leader.
		oc, err := epb.NewElectionClient(cli.ActiveConnection()).Observe(ctx, &epb.LeaderRequest{Name: []byte("/el/")})
		if err != nil {
			t.Fatal(err)
		}
		if lr, err := oc.Recv(); err != nil || string(lr.Kv.Value) != "two" {
			t.Fatalf("Observe = %v, %v", lr, err)
		}
	})
}

func mustSession(t *testing.T, cli *clientv3.Client) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, context.Canceled) {
			t.Log(err)
		}
	})
	return s
}
