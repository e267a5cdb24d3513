package integration

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// anyCompaction asks hashesAt for whatever compacted revision the first member answers,
// as long as all agree: a store never compacted answers 0 (etcd: -1), and etcd answers
// HashKV at a compaction revision from the hash it kept while compacting, with the
// previous compacted revision.
const anyCompaction = math.MinInt64

// hashesAt asks every member for HashKV at rev, waiting (up to 30 s) until each has
// applied rev and answers with compacted revision compact.
func (c *cluster) hashesAt(t *testing.T, cli *clientv3.Client, rev, compact int64) []*clientv3.HashKVResponse {
	t.Helper()
	var out []*clientv3.HashKVResponse
	for _, m := range c.members {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			h, err := cli.HashKV(ctx, m.clientURL, rev)
			cancel()
			if err == nil && compact == anyCompaction && len(out) == 0 {
				t.Logf("%s: HashKV(%d) answers compact_revision %d", m.name, rev, h.CompactRevision)
				compact = h.CompactRevision
			}
			if err == nil && h.CompactRevision == compact {
				if h.HashRevision != rev {
					t.Fatalf("%s: HashKV(%d) answers hash_revision %d", m.name, rev, h.HashRevision)
				}
				out = append(out, h)
				break
			}
			if err != nil && !errors.Is(err, rpctypes.ErrFutureRev) {
				t.Fatalf("%s: HashKV(%d): %v", m.name, rev, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: HashKV(%d) did not answer with compact revision %d: %v, %v", m.name, rev, compact, h, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out
}

func sameHash(t *testing.T, what string, hs []*clientv3.HashKVResponse) uint32 {
	t.Helper()
	for i, h := range hs[1:] {
		if h.Hash != hs[0].Hash {
			t.Errorf("%s: member %d hashes %08x, member 0 %08x", what, i+1, h.Hash, hs[0].Hash)
		}
	}
	return hs[0].Hash
}

// Every member answers the same HashKV at the same revision, before and after a
// compaction below it, and etcd's errors above the current and below the compacted
// revision.
func TestHashKVEqualOnAllMembers(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3)
		cli := c.client()
		ctx := ctxT(t)
		var mid int64
		for i := range 60 {
			k := fmt.Sprintf("key%02d", i%17)
			var err error
			if i%9 == 4 {
				_, err = cli.Delete(ctx, k)
			} else {
				_, err = cli.Put(ctx, k, fmt.Sprintf("value-%d", i))
			}
			if err != nil {
				t.Fatal(err)
			}
			if i == 30 {
				g, err := cli.Get(ctx, "x")
				if err != nil {
					t.Fatal(err)
				}
				mid = g.Header.Revision
			}
		}
		txn, err := cli.Txn(ctx).Then(clientv3.OpPut("t1", "a"), clientv3.OpPut("t2", "b"), clientv3.OpDelete("key01")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		rev := txn.Header.Revision

		at := sameHash(t, "at the last revision", c.hashesAt(t, cli, rev, anyCompaction))
		if got := sameHash(t, "at a middle revision", c.hashesAt(t, cli, mid, anyCompaction)); got == at {
			t.Errorf("the hash at %d equals the hash at %d", mid, rev)
		}
		h0, err := cli.HashKV(ctx, c.members[0].clientURL, 0)
		if err != nil || h0.HashRevision < rev {
			t.Fatalf("HashKV(0): %v, %v", h0, err)
		}

		if _, err := cli.Compact(ctx, mid, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		compacted := sameHash(t, "after a compaction below", c.hashesAt(t, cli, rev, mid))
		sameHash(t, "at the compacted revision", c.hashesAt(t, cli, mid, anyCompaction))

		ep := c.members[1].clientURL
		if _, err := cli.HashKV(ctx, ep, mid-1); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("HashKV below the compacted revision: %v, want %v", err, rpctypes.ErrCompacted)
		}
		if _, err := cli.HashKV(ctx, ep, rev+1000); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Errorf("HashKV above the current revision: %v, want %v", err, rpctypes.ErrFutureRev)
		}
		if _, err := cli.Defragment(ctx, ep); err != nil {
			t.Fatal(err)
		}
		if got := sameHash(t, "after defrag", c.hashesAt(t, cli, rev, mid)); got != compacted {
			t.Errorf("defrag changed the hash at %d: %08x, was %08x", rev, got, compacted)
		}
	})
}

// Hash (etcd's deprecated whole-store hash) is equal on members that applied the same
// writes, once each has finished compacting, and changes with a write.
func TestHashEqualOnAllMembers(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3)
		cli := c.client()
		ctx := ctxT(t)
		var rev int64
		for i := range 30 {
			r, err := cli.Put(ctx, fmt.Sprintf("h%02d", i%11), fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			rev = r.Header.Revision
		}
		if _, err := cli.Compact(ctx, rev-5, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		first := c.sameWholeHash(t)
		if _, err := cli.Put(ctx, "h00", "changed"); err != nil {
			t.Fatal(err)
		}
		if c.sameWholeHash(t) == first {
			t.Error("a write did not change Hash")
		}
	})
}

// sameWholeHash polls every member's Hash until all answer the same hash at the same
// header revision (members apply, and compact, at their own pace).
func (c *cluster) sameWholeHash(t *testing.T) uint32 {
	t.Helper()
	var clients []pb.MaintenanceClient
	for i := range c.members {
		clients = append(clients, pb.NewMaintenanceClient(c.client(i).ActiveConnection()))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []string
		for _, mc := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			h, err := mc.Hash(ctx, &pb.HashRequest{})
			cancel()
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			got = append(got, fmt.Sprintf("%08x@%d", h.Hash, h.Header.Revision))
		}
		if got[0] == got[1] && got[1] == got[2] {
			var h uint32
			fmt.Sscanf(got[0], "%08x", &h)
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("members' Hash never agreed: %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
