package integration

import (
	"strings"
	"testing"

	epb "github.com/metastore/metastore/internal/lockelect/v3electionpb"
	lpb "github.com/metastore/metastore/internal/lockelect/v3lockpb"
)

// TestLockElectionServices drives etcd's v3lock and v3election gRPC services (what
// etcd's gRPC gateway and non-Go clients use), against ours and real etcd. Only the
// paths that need no Watch (no contention, no Observe) are exercised here.
func TestLockElectionServices(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx := ctxT(t)
		g, err := cli.Grant(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		lc := lpb.NewLockClient(cli.ActiveConnection())
		lr, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("L"), Lease: int64(g.ID)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(lr.Key), "L/") || lr.Header.Revision == 0 {
			t.Fatalf("Lock = %v", lr)
		}
		if kv, _ := cli.Get(ctx, string(lr.Key)); len(kv.Kvs) != 1 || kv.Kvs[0].Lease != int64(g.ID) {
			t.Fatalf("lock key %v", kv.Kvs)
		}
		if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: lr.Key}); err != nil {
			t.Fatal(err)
		}
		if kv, _ := cli.Get(ctx, string(lr.Key)); len(kv.Kvs) != 0 {
			t.Fatal("Unlock left the key")
		}
		// A lock on a lease that does not exist fails.
		if _, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("L"), Lease: 0x31337}); err == nil || !strings.Contains(err.Error(), "lease not found") {
			t.Fatalf("Lock with an unknown lease: %v", err)
		}

		ec := epb.NewElectionClient(cli.ActiveConnection())
		cr, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: []byte("E"), Lease: int64(g.ID), Value: []byte("v1")})
		if err != nil {
			t.Fatal(err)
		}
		if cr.Leader.Lease != int64(g.ID) || string(cr.Leader.Name) != "E" {
			t.Fatalf("Campaign = %v", cr)
		}
		if _, err := ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: cr.Leader, Value: []byte("v2")}); err != nil {
			t.Fatal(err)
		}
		l, err := ec.Leader(ctx, &epb.LeaderRequest{Name: []byte("E")})
		if err != nil || string(l.Kv.Value) != "v2" {
			t.Fatalf("Leader = %v, %v", l, err)
		}
		if _, err := ec.Proclaim(ctx, &epb.ProclaimRequest{}); err == nil || !strings.Contains(err.Error(), `"leader" field must be provided`) {
			t.Fatalf("Proclaim without a leader: %v", err)
		}
		if _, err := ec.Resign(ctx, &epb.ResignRequest{Leader: cr.Leader}); err != nil {
			t.Fatal(err)
		}
		if _, err := ec.Leader(ctx, &epb.LeaderRequest{Name: []byte("E")}); err == nil || !strings.Contains(err.Error(), "election: no leader") {
			t.Fatalf("Leader after Resign: %v", err)
		}
	})
}
