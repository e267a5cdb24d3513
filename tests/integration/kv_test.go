package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// TestKV runs every KV option against one fresh member: ours, and real etcd when
// ETCD_BIN is set. Subtests run in order and share the member, so revisions are known.
func TestKV(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx := ctxT(t)

		t.Run("first write is revision 2 and headers are filled", func(t *testing.T) {
			resp, err := cli.Put(ctx, "a", "1")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Revision != 2 {
				t.Fatalf("revision %d, want 2", resp.Header.Revision)
			}
			if resp.Header.ClusterId == 0 || resp.Header.MemberId == 0 || resp.Header.RaftTerm == 0 {
				t.Fatalf("header not filled: %+v", resp.Header)
			}
		})

		t.Run("versions, create and mod revisions", func(t *testing.T) {
			mustPut(t, cli, "a", "2") // rev 3
			g := mustGet(t, cli, "a")
			kv := g.Kvs[0]
			if kv.CreateRevision != 2 || kv.ModRevision != 3 || kv.Version != 2 || string(kv.Value) != "2" {
				t.Fatalf("got %+v", kv)
			}
			if g.Header.Revision != 3 {
				t.Fatalf("header revision %d, want 3", g.Header.Revision)
			}
			if _, err := cli.Delete(ctx, "a"); err != nil { // rev 4
				t.Fatal(err)
			}
			mustPut(t, cli, "a", "3") // rev 5
			kv = mustGet(t, cli, "a").Kvs[0]
			if kv.CreateRevision != 5 || kv.ModRevision != 5 || kv.Version != 1 {
				t.Fatalf("after delete and put: %+v", kv)
			}
		})

		t.Run("history reads", func(t *testing.T) {
			cases := []struct {
				rev   int64
				value string // "" = absent
			}{{2, "1"}, {3, "2"}, {4, ""}, {5, "3"}}
			for _, tc := range cases {
				g, err := cli.Get(ctx, "a", clientv3.WithRev(tc.rev))
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				if len(g.Kvs) == 1 {
					got = string(g.Kvs[0].Value)
				}
				if got != tc.value || g.Header.Revision != 5 {
					t.Fatalf("rev %d: got %q (header %d), want %q (header 5)", tc.rev, got, g.Header.Revision, tc.value)
				}
			}
			if _, err := cli.Get(ctx, "a", clientv3.WithRev(6)); !errors.Is(err, rpctypes.ErrFutureRev) {
				t.Fatalf("future revision: %v", err)
			}
		})

		t.Run("range options", func(t *testing.T) {
			// rev 6..10: r/a=va r/b=vb r/c=vc r/d=vd r/e=ve; then r/b again (rev 11).
			for _, k := range []string{"a", "b", "c", "d", "e"} {
				mustPut(t, cli, "r/"+k, "v"+k)
			}
			mustPut(t, cli, "r/b", "zz")
			get := func(key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
				t.Helper()
				g, err := cli.Get(ctx, key, opts...)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			if g := get("r/", clientv3.WithPrefix()); keysOf(g.Kvs) != "r/a r/b r/c r/d r/e" || g.Count != 5 || g.More {
				t.Fatalf("prefix: %s count %d more %v", keysOf(g.Kvs), g.Count, g.More)
			}
			if g := get("r/b", clientv3.WithRange("r/d")); keysOf(g.Kvs) != "r/b r/c" {
				t.Fatalf("[r/b, r/d): %s", keysOf(g.Kvs))
			}
			if g := get("r/c", clientv3.WithFromKey()); keysOf(g.Kvs) != "r/c r/d r/e" {
				t.Fatalf("from key: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithLimit(2)); keysOf(g.Kvs) != "r/a r/b" || g.Count != 5 || !g.More {
				t.Fatalf("limit: %s count %d more %v", keysOf(g.Kvs), g.Count, g.More)
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithCountOnly()); len(g.Kvs) != 0 || g.Count != 5 {
				t.Fatalf("count only: %d kvs, count %d", len(g.Kvs), g.Count)
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithKeysOnly()); len(g.Kvs) != 5 || len(g.Kvs[0].Value) != 0 {
				t.Fatalf("keys only: %+v", g.Kvs)
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(2)); keysOf(g.Kvs) != "r/e r/d" || !g.More {
				t.Fatalf("descending: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend)); keysOf(g.Kvs) != "r/b r/e r/d r/c r/a" {
				t.Fatalf("by mod revision: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend)); g.Kvs[0].Version != 2 || string(g.Kvs[0].Key) != "r/b" {
				t.Fatalf("by version: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend)); keysOf(g.Kvs) != "r/a r/c r/d r/e r/b" {
				t.Fatalf("by value: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortNone)); keysOf(g.Kvs) != "r/a r/b r/c r/d r/e" {
				t.Fatalf("by create revision, no order: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithMinModRev(9)); keysOf(g.Kvs) != "r/b r/d r/e" {
				t.Fatalf("min mod revision: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(7)); keysOf(g.Kvs) != "r/a r/b" {
				t.Fatalf("max create revision: %s", keysOf(g.Kvs))
			}
			if g := get("r/", clientv3.WithPrefix(), clientv3.WithRev(8)); keysOf(g.Kvs) != "r/a r/b r/c" || string(g.Kvs[1].Value) != "vb" {
				t.Fatalf("prefix at rev 8: %s", keysOf(g.Kvs))
			}
			if g := get("r/b", clientv3.WithSerializable()); string(g.Kvs[0].Value) != "zz" {
				t.Fatalf("serializable: %+v", g.Kvs)
			}
			all := get("\x00", clientv3.WithFromKey())
			if all.Count != 6 {
				t.Fatalf("all keys: count %d (%s)", all.Count, keysOf(all.Kvs))
			}
		})

		t.Run("put options", func(t *testing.T) {
			p, err := cli.Put(ctx, "r/a", "new", clientv3.WithPrevKV())
			if err != nil || p.PrevKv == nil || string(p.PrevKv.Value) != "va" {
				t.Fatalf("prev kv: %+v %v", p, err)
			}
			if _, err := cli.Put(ctx, "r/a", "", clientv3.WithIgnoreValue()); err != nil {
				t.Fatal(err)
			}
			if v := string(mustGet(t, cli, "r/a").Kvs[0].Value); v != "new" {
				t.Fatalf("ignore_value changed the value to %q", v)
			}
			if _, err := cli.Put(ctx, "nope", "", clientv3.WithIgnoreValue()); !errors.Is(err, rpctypes.ErrKeyNotFound) {
				t.Fatalf("ignore_value on a missing key: %v", err)
			}
			if _, err := cli.Put(ctx, "r/a", "x", clientv3.WithIgnoreLease()); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(0x1234)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				t.Fatalf("unknown lease: %v", err)
			}
			if _, err := cli.Put(ctx, "", "v"); !errors.Is(err, rpctypes.ErrEmptyKey) {
				t.Fatalf("empty key: %v", err)
			}
		})

		t.Run("delete options", func(t *testing.T) {
			mustPut(t, cli, "d/1", "x")
			mustPut(t, cli, "d/2", "y")
			d, err := cli.Delete(ctx, "d/", clientv3.WithPrefix(), clientv3.WithPrevKV())
			if err != nil || d.Deleted != 2 || keysOf(d.PrevKvs) != "d/1 d/2" {
				t.Fatalf("delete: %+v %v", d, err)
			}
			before := mustGet(t, cli, "d/").Header.Revision
			d, err = cli.Delete(ctx, "d/", clientv3.WithPrefix())
			if err != nil || d.Deleted != 0 || d.Header.Revision != before {
				t.Fatalf("deleting nothing: %+v %v (revision must not move from %d)", d, err, before)
			}
		})
	})
}

// TestTxn checks compares, both branches, nested txns and the txn errors.
func TestTxn(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1, "--max-txn-ops", "4")
		cli := c.client()
		ctx := ctxT(t)
		mustPut(t, cli, "t/a", "1") // rev 2
		mustPut(t, cli, "t/b", "2") // rev 3

		cmps := []struct {
			name string
			cmp  clientv3.Cmp
			want bool
		}{
			{"value equal", clientv3.Compare(clientv3.Value("t/a"), "=", "1"), true},
			{"value greater", clientv3.Compare(clientv3.Value("t/a"), ">", "0"), true},
			{"value less", clientv3.Compare(clientv3.Value("t/a"), "<", "0"), false},
			{"value not equal", clientv3.Compare(clientv3.Value("t/a"), "!=", "1"), false},
			{"version", clientv3.Compare(clientv3.Version("t/a"), "=", 1), true},
			{"create revision", clientv3.Compare(clientv3.CreateRevision("t/b"), "=", 3), true},
			{"mod revision", clientv3.Compare(clientv3.ModRevision("t/b"), "<", 3), false},
			{"lease", clientv3.Compare(clientv3.LeaseValue("t/a"), "=", 0), true},
			{"missing key version is 0", clientv3.Compare(clientv3.Version("t/none"), "=", 0), true},
			{"missing key value", clientv3.Compare(clientv3.Value("t/none"), "=", ""), false},
			{"range all match", clientv3.Compare(clientv3.Version("t/"), ">", 0).WithPrefix(), true},
			{"range one fails", clientv3.Compare(clientv3.Value("t/"), "=", "1").WithPrefix(), false},
		}
		for _, tc := range cmps {
			t.Run(tc.name, func(t *testing.T) {
				r, err := cli.Txn(ctx).If(tc.cmp).Then(clientv3.OpGet("t/a")).Else(clientv3.OpGet("t/b")).Commit()
				if err != nil {
					t.Fatal(err)
				}
				if r.Succeeded != tc.want {
					t.Fatalf("succeeded=%v, want %v", r.Succeeded, tc.want)
				}
				if r.Header.Revision != 3 {
					t.Fatalf("read-only txn header revision %d, want 3", r.Header.Revision)
				}
			})
		}

		t.Run("writes share one revision and later ops see earlier ones", func(t *testing.T) {
			r, err := cli.Txn(ctx).If().Then(
				clientv3.OpPut("t/c", "3"),
				clientv3.OpPut("t/d", "4"),
				clientv3.OpGet("t/", clientv3.WithPrefix()),
			).Commit()
			if err != nil {
				t.Fatal(err)
			}
			if r.Header.Revision != 4 {
				t.Fatalf("revision %d, want 4", r.Header.Revision)
			}
			rr := r.Responses[2].GetResponseRange()
			if keysOf(rr.Kvs) != "t/a t/b t/c t/d" || rr.Kvs[2].ModRevision != 4 || rr.Kvs[3].ModRevision != 4 {
				t.Fatalf("range inside txn: %s %+v", keysOf(rr.Kvs), rr.Kvs)
			}
		})

		t.Run("nested txn", func(t *testing.T) {
			r, err := cli.Txn(ctx).Then(clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value("t/a"), "=", "1")},
				[]clientv3.Op{clientv3.OpPut("t/n", "yes")},
				[]clientv3.Op{clientv3.OpPut("t/n", "no")},
			)).Commit()
			if err != nil {
				t.Fatal(err)
			}
			inner := r.Responses[0].GetResponseTxn()
			if !inner.Succeeded || string(mustGet(t, cli, "t/n").Kvs[0].Value) != "yes" {
				t.Fatalf("nested txn: %+v", inner)
			}
		})

		t.Run("duplicate key", func(t *testing.T) {
			_, err := cli.Txn(ctx).Then(clientv3.OpPut("t/x", "1"), clientv3.OpPut("t/x", "2")).Commit()
			if !errors.Is(err, rpctypes.ErrDuplicateKey) {
				t.Fatalf("got %v", err)
			}
			_, err = cli.Txn(ctx).Then(clientv3.OpPut("t/x", "1"), clientv3.OpDelete("t/", clientv3.WithPrefix())).Commit()
			if !errors.Is(err, rpctypes.ErrDuplicateKey) {
				t.Fatalf("put and delete over it: %v", err)
			}
		})

		t.Run("too many ops", func(t *testing.T) {
			var ops []clientv3.Op
			for i := 0; i < 5; i++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("t/many%d", i), "v"))
			}
			if _, err := cli.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
				t.Fatalf("got %v", err)
			}
		})

		t.Run("a failing op leaves no partial write", func(t *testing.T) {
			before := mustGet(t, cli, "t/a").Header.Revision
			_, err := cli.Txn(ctx).Then(clientv3.OpPut("t/p1", "v"), clientv3.OpPut("t/p2", "v", clientv3.WithLease(0x77))).Commit()
			if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				t.Fatalf("got %v", err)
			}
			g := mustGet(t, cli, "t/p1")
			if len(g.Kvs) != 0 || g.Header.Revision != before {
				t.Fatalf("partial write: %+v at revision %d (was %d)", g.Kvs, g.Header.Revision, before)
			}
		})
	})
}

// TestCompact checks logical and physical compaction and the errors around it.
func TestCompact(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx := ctxT(t)
		for i := 0; i < 5; i++ {
			mustPut(t, cli, "c", fmt.Sprint(i)) // revs 2..6
		}
		if _, err := cli.Compact(ctx, 4); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Get(ctx, "c", clientv3.WithRev(3)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("read below the compacted revision: %v", err)
		}
		g, err := cli.Get(ctx, "c", clientv3.WithRev(4))
		if err != nil || string(g.Kvs[0].Value) != "2" {
			t.Fatalf("read at the compacted revision: %+v %v", g, err)
		}
		if _, err := cli.Compact(ctx, 4); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("compacting again: %v", err)
		}
		if _, err := cli.Compact(ctx, 100); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("compacting the future: %v", err)
		}
		if _, err := cli.Compact(ctx, 6, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		g, err = cli.Get(ctx, "c")
		if err != nil || string(g.Kvs[0].Value) != "4" || g.Kvs[0].Version != 5 || g.Kvs[0].CreateRevision != 2 {
			t.Fatalf("after physical compaction: %+v %v", g, err)
		}
	})
}

// TestBadInput checks that invalid requests get etcd's gRPC code and message.
func TestBadInput(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1, "--max-request-bytes", "1024")
		cli := c.client()
		ctx := ctxT(t)
		big := make([]byte, 2048)
		_, err := cli.Put(ctx, "big", string(big))
		if !errors.Is(err, rpctypes.ErrRequestTooLarge) || rpctypes.ErrorDesc(err) != "etcdserver: request is too large" {
			t.Fatalf("large request: %v", err)
		}
		var ee rpctypes.EtcdError
		if !errors.As(err, &ee) || ee.Code() != codes.InvalidArgument {
			t.Fatalf("large request: code of %v is not InvalidArgument", err)
		}
		if _, err := cli.Get(ctx, "big"); err != nil {
			t.Fatalf("server unusable after a large request: %v", err)
		}
	})
}

func mustPut(t *testing.T, cli *clientv3.Client, k, v string) *clientv3.PutResponse {
	t.Helper()
	r, err := cli.Put(ctxT(t), k, v)
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return r
}

func mustGet(t *testing.T, cli *clientv3.Client, k string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	t.Helper()
	r, err := cli.Get(ctxT(t), k, opts...)
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	return r
}

func keysOf(kvs []*mvccpb.KeyValue) string {
	s := ""
	for i, kv := range kvs {
		if i > 0 {
			s += " "
		}
		s += string(kv.Key)
	}
	return s
}

// TestAutoCompactionPeriodic: with a 2s periodic retention the leader compacts on its
// own, so old revisions become unreadable without anyone calling Compact.
func TestAutoCompactionPeriodic(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1, "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s")
		cli := c.client()
		mustPut(t, cli, "ac", "1") // rev 2
		deadline := time.Now().Add(20 * time.Second)
		for {
			mustPut(t, cli, "ac", "x")
			_, err := cli.Get(ctxT(t), "ac", clientv3.WithRev(2))
			if errors.Is(err, rpctypes.ErrCompacted) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("revision 2 still readable 20s later: no auto compaction")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
