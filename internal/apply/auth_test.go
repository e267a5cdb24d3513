package apply

import (
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/auth"
)

func asRoot(r *pb.InternalRaftRequest) *pb.InternalRaftRequest {
	r.Header = &pb.RequestHeader{Username: auth.RootUser, AuthRevision: ^uint64(0)}
	return r
}

// authHarness: root, and user u with readwrite on [a, c), auth enabled.
func authHarness(t *testing.T) *harness {
	h := newHarness(t)
	nopw := &authpb.UserAddOptions{NoPassword: true}
	for _, r := range []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", Options: nopw}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "u", Options: nopw}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "rw"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "rw",
			Perm: &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte("a"), RangeEnd: []byte("c")}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "u", Role: "rw"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		h.do(asRoot(r))
	}
	return h
}

func asUser(r *pb.InternalRaftRequest, user string, rev uint64) *pb.InternalRaftRequest {
	r.Header = &pb.RequestHeader{Username: user, AuthRevision: rev}
	return r
}

// TestApplyRefusesOldAuthRevision: a write checked by the server before a permission
// was revoked, applied after the revocation, fails with ErrAuthOldRevision and
// changes nothing; the same write at the new revision is denied.
func TestApplyRefusesOldAuthRevision(t *testing.T) {
	h := authHarness(t)
	rev := h.app.Auth().Revision()
	h.do(asUser(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a1"), Value: []byte("v")}}, "u", rev))
	res := h.applyAll(
		asRoot(&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "u", Role: "rw"}}),
		asUser(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a1"), Value: []byte("late")}}, "u", rev),
	)
	if res[0].Err != nil || !errors.Is(res[1].Err, auth.ErrAuthOldRevision) {
		t.Fatalf("revoke then a put checked before it: %v, %v; want nil, ErrAuthOldRevision", res[0].Err, res[1].Err)
	}
	if kv := h.getKV("a1"); string(kv.Value) != "v" {
		t.Fatalf("a1 = %q after the refused put", kv.Value)
	}
	if err := h.doErr(asUser(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a1")}}, "u", h.app.Auth().Revision())); !errors.Is(err, auth.ErrPermissionDenied) {
		t.Fatalf("put at the new revision: %v, want ErrPermissionDenied", err)
	}
}

// TestApplyChecksEveryKVRequest: puts, deletes, txns (compares too) and lease revokes
// are checked at apply with the proposal's user; auth changes want root.
func TestApplyChecksEveryKVRequest(t *testing.T) {
	h := authHarness(t)
	rev := h.app.Auth().Revision()
	h.grant(7, 100)
	h.do(asRoot(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("z"), Value: []byte("v"), Lease: 7}}))
	for name, tc := range map[string]struct {
		r    *pb.InternalRaftRequest
		want error
	}{
		"put inside":   {&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b")}}, nil},
		"put outside":  {&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c")}}, auth.ErrPermissionDenied},
		"put on lease": {&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b"), Lease: 7}}, auth.ErrPermissionDenied},
		"delete range": {&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("d")}}, auth.ErrPermissionDenied},
		"txn compare outside": {&pb.InternalRaftRequest{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("z"), Target: pb.Compare_VERSION, Result: pb.Compare_GREATER}},
			Success: []*pb.RequestOp{putOp("a", "1")}}}, auth.ErrPermissionDenied},
		"txn nested": {&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("y", "1")}}}}}}}, auth.ErrPermissionDenied},
		"lease revoke": {&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}}, auth.ErrPermissionDenied},
		"role add":     {&pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "x"}}, auth.ErrPermissionDenied},
		"compaction":   {&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 1}}, auth.ErrPermissionDenied},
		"no user":      {asUser(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b")}}, "", 0), auth.ErrUserEmpty},
	} {
		r := tc.r
		if r.Header == nil {
			r = asUser(r, "u", rev)
		}
		if err := h.doErr(r); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
