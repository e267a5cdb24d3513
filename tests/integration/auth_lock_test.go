package integration

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	lpb "github.com/metastore/metastore/internal/lockelect/v3lockpb"
)

// TestAuthLockService: with auth enabled, the v3lock service acts as its caller (as
// etcd's, whose in-process client keeps the caller's context): a user with readwrite on
// the lock's prefix locks and unlocks; a user who may only read it is refused with
// permission denied.
func TestAuthLockService(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c, root := authCluster(t, b)
		ctx := ctxT(t)
		for name, typ := range map[string]clientv3.PermissionType{
			"locker": clientv3.PermissionType(clientv3.PermReadWrite), "reader": clientv3.PermissionType(clientv3.PermRead)} {
			must(t, func() error { _, err := root.UserAdd(ctx, name, "pw"); return err })
			must(t, func() error { _, err := root.RoleAdd(ctx, name); return err })
			must(t, func() error {
				_, err := root.RoleGrantPermission(ctx, name, "L/", clientv3.GetPrefixRangeEnd("L/"), typ)
				return err
			})
			must(t, func() error { _, err := root.UserGrantRole(ctx, name, name); return err })
		}
		locker, reader := c.userClient("locker", "pw"), c.userClient("reader", "pw")

		g, err := locker.Grant(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		lc := lpb.NewLockClient(locker.ActiveConnection())
		lr, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("L"), Lease: int64(g.ID)})
		if err != nil {
			t.Fatalf("Lock as locker: %v", err)
		}
		if !strings.HasPrefix(string(lr.Key), "L/") {
			t.Fatalf("Lock = %v", lr)
		}
		if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: lr.Key}); err != nil {
			t.Fatalf("Unlock as locker: %v", err)
		}

		rg, err := reader.Grant(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		_, err = lpb.NewLockClient(reader.ActiveConnection()).Lock(ctx, &lpb.LockRequest{Name: []byte("L"), Lease: int64(rg.ID)})
		if errDesc(err) != errDesc(rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("Lock as reader: %v, want permission denied", err)
		}
	})
}
