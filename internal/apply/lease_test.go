package apply

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/lease"
)

func leaseKeys(t *testing.T, h *harness, id int64) []string {
	t.Helper()
	ks, ok := h.app.Leases().Keys(id)
	if !ok {
		t.Fatalf("lease %d not found", id)
	}
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestLeaseGrantErrors(t *testing.T) {
	h := newHarness(t)
	resp := h.do(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 30}}).(*pb.LeaseGrantResponse)
	if resp.ID != 5 || resp.TTL != 30 {
		t.Fatalf("grant = %v", resp)
	}
	errIs(t, h.doErr(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 10}}), ErrLeaseExists)
	errIs(t, h.doErr(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 6, TTL: lease.MaxTTL + 1}}), ErrLeaseTTLTooLarge)
	h.grant(7, lease.MaxTTL)
	errIs(t, h.doErr(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 8}}), ErrLeaseNotFound)
	if got, _ := h.app.Leases().Get(5); got.TTL != 30 {
		t.Fatalf("lease 5 = %+v after a duplicate grant", got)
	}
	// A grant does not advance the revision.
	if h.store.Rev() != 1 {
		t.Fatalf("revision %d after grants", h.store.Rev())
	}
}

// TestLeaseRevokeDeletesAttachedKeysInOneRevision: every key of the lease goes at one
// revision, keys of other leases and detached keys stay.
func TestLeaseRevokeDeletesAttachedKeysInOneRevision(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 60)
	h.grant(2, 60)
	for i := range 50 {
		h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%02d", i), Value: []byte("v"), Lease: 1}})
	}
	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("other"), Value: []byte("v"), Lease: 2}})
	// k00 moves to lease 2, k01 to no lease, k02 is deleted: all three leave lease 1.
	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k00"), Value: []byte("w"), Lease: 2}})
	h.put("k01", "plain")
	h.del("k02", "")
	if ks := leaseKeys(t, h, 1); len(ks) != 47 || ks[0] != "k03" {
		t.Fatalf("lease 1 keys = %v", ks)
	}
	if ks := leaseKeys(t, h, 2); !slices.Equal(ks, []string{"k00", "other"}) {
		t.Fatalf("lease 2 keys = %v", ks)
	}
	before := h.store.Rev()
	resp := h.do(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}}).(*pb.LeaseRevokeResponse)
	if resp.Header.Revision != before+1 || h.store.Rev() != before+1 {
		t.Fatalf("revoke at revision %d (store %d), want %d", resp.Header.Revision, h.store.Rev(), before+1)
	}
	left := h.mustGet(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if got := keysOf(left.Kvs); !slices.Equal(got, []string{"k00", "k01", "other"}) {
		t.Fatalf("keys after revoke = %v", got)
	}
	// Every delete is at the revoke's revision.
	var events int
	if err := h.store.Changes(before+1, before+1, func(ev *mvccpb.Event) error {
		if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != before+1 {
			t.Errorf("event %v", ev)
		}
		events++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if events != 47 {
		t.Fatalf("%d delete events at the revoke's revision, want 47", events)
	}
	if h.app.Leases().Exists(1) {
		t.Fatal("lease 1 still exists")
	}
	// Nothing of lease 1 remains in the engine, and the table survives a restart.
	h.reopen()
	if h.app.Leases().Exists(1) {
		t.Fatal("lease 1 back after a restart")
	}
	if ks := leaseKeys(t, h, 2); !slices.Equal(ks, []string{"k00", "other"}) {
		t.Fatalf("lease 2 keys after a restart = %v", ks)
	}
	for _, kv := range dump(t, h.eng) {
		if kv[0][0] == 'E' && bytes.Contains(kv[0], []byte{0, 0, 0, 0, 0, 0, 0, 1}) {
			t.Fatalf("engine still holds %q", kv[0])
		}
	}
}

func TestLeaseCheckpointSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.do(versionSet("3.7")) // checkpoints need 3.4
	h.grant(3, 100)
	h.grant(4, 10)
	h.do(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{
		{ID: 3, Remaining_TTL: 42}, {ID: 99, Remaining_TTL: 5}, // an unknown lease is skipped
	}}})
	h.reopen()
	if got, _ := h.app.Leases().Get(3); got != (lease.Info{ID: 3, TTL: 100, Remaining: 42}) {
		t.Fatalf("lease 3 = %+v", got)
	}
	if got, _ := h.app.Leases().Get(4); got != (lease.Info{ID: 4, TTL: 10}) {
		t.Fatalf("lease 4 = %+v", got)
	}
	if h.app.Leases().Exists(99) {
		t.Fatal("a checkpoint created lease 99")
	}
}

// TestLeaseDeterminism: two members applying the same entries, one in a single batch and
// one entry per batch, end byte-identical.
func TestLeaseDeterminism(t *testing.T) {
	reqs := []*pb.InternalRaftRequest{versionSet("3.7")}
	for i := int64(1); i <= 20; i++ {
		reqs = append(reqs, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: i, TTL: 10 + i}})
	}
	for i := range 100 {
		reqs = append(reqs, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%d", i%37), Value: []byte("v"), Lease: int64(i%21) + 0}})
	}
	reqs = append(reqs,
		&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 3, Remaining_TTL: 7}}}},
		&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 5}},
		&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k1"), RangeEnd: []byte("k2")}},
		&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 6}},
		&pb.InternalRaftRequest{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{cmpLease("k3", eq, 3)},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t"), Lease: 4}}}},
		}},
	)
	a, b := newHarness(t), newHarness(t)
	a.applyAll(reqs...)
	for _, r := range reqs {
		b.applyAll(r)
	}
	da, db := dump(t, a.eng), dump(t, b.eng)
	if len(da) != len(db) {
		t.Fatalf("%d keys vs %d", len(da), len(db))
	}
	for i := range da {
		if !bytes.Equal(da[i][0], db[i][0]) || !bytes.Equal(da[i][1], db[i][1]) {
			t.Fatalf("engines differ at %q", da[i][0])
		}
	}
	if !slices.Equal(leaseKeys(t, a, 4), leaseKeys(t, b, 4)) || len(leaseKeys(t, a, 4)) == 0 {
		t.Fatalf("lease 4 keys %v vs %v", leaseKeys(t, a, 4), leaseKeys(t, b, 4))
	}
}

// TestLeaseInTxn: a txn put with an unknown lease fails whole; prev_kv carries the lease.
func TestLeaseInTxn(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 60)
	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("1"), Lease: 1}})
	err := h.doErr(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		putOp("b", "2"),
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c"), Lease: 2}}},
	}}})
	errIs(t, err, ErrLeaseNotFound)
	if h.getKV("b") != nil {
		t.Fatal("failed txn wrote b")
	}
	resp := h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true}}).(*pb.PutResponse)
	if resp.PrevKv.GetLease() != 1 {
		t.Fatalf("prev_kv = %v, want lease 1", resp.PrevKv)
	}
	if ks := leaseKeys(t, h, 1); len(ks) != 0 {
		t.Fatalf("a still attached: %v", ks)
	}
}
