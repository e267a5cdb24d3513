package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func setVersion(t *testing.T, s *Server, v string) {
	t.Helper()
	if _, err := s.proposeFor(context.Background(), &pb.InternalRaftRequest{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: v}}); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseGrantRules(t *testing.T) {
	s := startTestMember(t, 0).srv
	ctx := context.Background()
	// 100ms election timeout and heartbeat: the minimum TTL is ceil(1 * 100ms) = 1s.
	g, err := s.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 0})
	if err != nil || g.ID <= 0 || g.TTL != 1 {
		t.Fatalf("grant = %v, %v", g, err)
	}
	if _, err := s.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: g.ID, TTL: 10}); !errors.Is(err, ErrLeaseExists) {
		t.Fatalf("duplicate = %v", err)
	}
	if _, err := s.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 9000000001}); !errors.Is(err, ErrLeaseTTLTooLarge) {
		t.Fatalf("too large = %v", err)
	}
	if _, err := s.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 12345}); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("revoke unknown = %v", err)
	}
	if _, err := s.LeaseRenew(ctx, 12345); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("renew unknown = %v", err)
	}
	if _, err := s.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: 12345}); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("time-to-live unknown = %v", err)
	}
}

// TestExpiredLeasesRevokedInBursts: more expired leases than one burst (2048) are all
// revoked, with their keys.
func TestExpiredLeasesRevokedInBursts(t *testing.T) {
	s := startTestMember(t, 0).srv
	ctx := context.Background()
	const n = 3000
	for i := range n {
		g, err := s.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: int64(i + 1), TTL: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "k%05d", i), Value: []byte("v"), Lease: g.ID}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	waitFor(t, 30*time.Second, "every lease revoked", func() bool { return s.app.Leases().Len() == 0 })
	t.Logf("%d leases revoked %v after the last grant", n, time.Since(start))
	r, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), CountOnly: true})
	if err != nil || r.Count != 0 {
		t.Fatalf("keys left: %v, %v", r, err)
	}
}

// TestCheckpointAndRenew: the leader checkpoints remaining TTLs through Raft, and a
// renewal resets the checkpoint to the whole TTL before it is answered.
func TestCheckpointAndRenew(t *testing.T) {
	s := startTestMember(t, 0).srv
	ctx := context.Background()
	setVersion(t, s, "3.7")
	// A 20s lease is checkpointed every 2s (a tenth of its TTL).
	g, err := s.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 20})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a checkpoint", func() bool {
		in, _ := s.app.Leases().Get(g.ID)
		return in.Remaining > 0 && in.Remaining < 20
	})
	ttl, err := s.LeaseRenew(ctx, g.ID)
	if err != nil || ttl != 20 {
		t.Fatalf("renew = %d, %v", ttl, err)
	}
	// The reset is applied before the answer (a later checkpoint may follow it).
	if in, _ := s.app.Leases().Get(g.ID); in.Remaining != 0 && in.Remaining < 18 {
		t.Fatalf("after the renewal the table holds %+v", in)
	}
	tl, err := s.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: g.ID})
	if err != nil || tl.GrantedTTL != 20 || tl.TTL < 15 {
		t.Fatalf("time-to-live = %v, %v", tl, err)
	}
}
