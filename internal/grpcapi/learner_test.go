package grpcapi

import (
	"net"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// learnerBackend is the fake backend on a member that is a learner.
type learnerBackend struct{ *fakeBackend }

func (learnerBackend) IsLearner() bool { return true }

// A learner answers Status and serializable ranges, and refuses everything else with
// etcd's "rpc not supported for learner", before the backend sees it.
func TestLearnerRefusesWhatEtcdRefuses(t *testing.T) {
	b := learnerBackend{newFakeBackend()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewServer(b, Options{})
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	kv, mt, cl := pb.NewKVClient(conn), pb.NewMaintenanceClient(conn), pb.NewClusterClient(conn)
	ctx := testCtx(t)

	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Serializable: true}); err != nil {
		t.Errorf("serializable range on a learner: %v", err)
	}
	if _, err := mt.Status(ctx, &pb.StatusRequest{}); err != nil {
		t.Errorf("status on a learner: %v", err)
	}
	refused := map[string]error{}
	_, refused["linearizable range"] = kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	_, refused["put"] = kv.Put(ctx, &pb.PutRequest{Key: []byte("a")})
	_, refused["member list"] = cl.MemberList(ctx, &pb.MemberListRequest{})
	for what, err := range refused {
		if status.Convert(err).Message() != status.Convert(rpctypes.ErrGRPCNotSupportedForLearner).Message() ||
			status.Code(err) != status.Code(rpctypes.ErrGRPCNotSupportedForLearner) {
			t.Errorf("%s on a learner: %v, want %v", what, err, rpctypes.ErrGRPCNotSupportedForLearner)
		}
	}
	if b.calls != 1 { // the serializable range only
		t.Errorf("the backend saw %d KV calls, want 1", b.calls)
	}
}
