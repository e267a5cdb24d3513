package apply

import (
	"context"
	"errors"
	"fmt"
	"github.com/metastore/metastore/internal/etcdbin"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
)

// etcdBinary is a real etcd v3.7.3, the reference the state machine must match.
var etcdBinary = etcdbin.Path("etcd")

// realEtcd is a single-member etcd on loopback in a temp dir.
type realEtcd struct {
	kv       pb.KVClient
	lease    pb.LeaseClient
	maint    pb.MaintenanceClient
	memberID uint64
}

func startEtcd(t *testing.T) *realEtcd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real etcd")
	}
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("no etcd binary: %v", err)
	}
	client, peer := freePort(t), freePort(t)
	cmd := exec.Command(etcdBinary,
		"--name", "ref", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ref="+peer, "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	conn := cli.ActiveConnection()
	e := &realEtcd{kv: pb.NewKVClient(conn), lease: pb.NewLeaseClient(conn), maint: pb.NewMaintenanceClient(conn)}
	// Wait until it answers: a status call, retried.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := e.maint.Status(ctx, &pb.StatusRequest{})
		cancel()
		if err == nil {
			e.memberID = st.Header.MemberId
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// send sends r to etcd. A validation error (InvalidArgument) comes back as invalid=true:
// such a request never reaches etcd's state machine.
func (e *realEtcd) send(r *pb.InternalRaftRequest) (resp proto.Message, err error, invalid bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case r.Put != nil:
		resp, err = e.kv.Put(ctx, r.Put)
	case r.DeleteRange != nil:
		resp, err = e.kv.DeleteRange(ctx, r.DeleteRange)
	case r.Txn != nil:
		resp, err = e.kv.Txn(ctx, r.Txn)
	case r.Range != nil:
		resp, err = e.kv.Range(ctx, r.Range)
	case r.Compaction != nil:
		resp, err = e.kv.Compact(ctx, r.Compaction)
	case r.Alarm != nil:
		resp, err = e.maint.Alarm(ctx, r.Alarm)
	default:
		panic(fmt.Sprintf("cannot send %v", r))
	}
	if status.Code(err) == codes.InvalidArgument {
		return nil, err, true
	}
	return resp, err, false
}

// grpcMessage is the message of the gRPC error etcd answers for our error.
func grpcMessage(err error) string {
	for _, m := range []struct {
		err error
		msg string
	}{
		{ErrKeyNotFound, "etcdserver: key not found"},
		{ErrLeaseNotFound, "etcdserver: requested lease not found"},
		{ErrNoSpace, "etcdserver: mvcc: database space exceeded"},
		{mvcc.ErrCompacted, "etcdserver: mvcc: required revision has been compacted"},
		{mvcc.ErrFutureRev, "etcdserver: mvcc: required revision is a future revision"},
	} {
		if errors.Is(err, m.err) {
			return m.msg
		}
	}
	return "unmapped: " + err.Error()
}

// normalize clears what only a server fills in: the top-level header's cluster and
// member IDs and raft term (and the alarm header's revision, filled at answer time).
func normalize(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	m = proto.Clone(m)
	type headered interface{ GetHeader() *pb.ResponseHeader }
	if h, ok := m.(headered); ok && h.GetHeader() != nil {
		hd := h.GetHeader()
		hd.ClusterId, hd.MemberId, hd.RaftTerm = 0, 0, 0
		if _, ok := m.(*pb.AlarmResponse); ok {
			hd.Revision = 0
		}
	}
	return m
}

// compareStep applies r to both etcd and h and fails if the answers differ. It reports
// whether etcd accepted the request as valid.
func compareStep(t *testing.T, e *realEtcd, h *harness, r *pb.InternalRaftRequest) bool {
	t.Helper()
	want, wantErr, invalid := e.send(proto.Clone(r).(*pb.InternalRaftRequest))
	if invalid {
		return false // grpcapi's business; the state machine never sees it
	}
	var got proto.Message
	var gotErr error
	if r.Range != nil && !r.Range.Serializable {
		got, gotErr = h.get(r.Range) // a read outside raft
	} else if r.Txn != nil && IsTxnReadOnly(r.Txn) && len(r.Txn.Compare)%2 == 0 {
		v := h.store.Read()
		got, gotErr = h.app.ReadTxn(v, r.Txn)
		v.Close()
	} else {
		res := h.applyAll(r)[0]
		got, gotErr = res.Resp, res.Err
	}
	switch {
	case wantErr != nil && gotErr == nil:
		t.Fatalf("request %v:\netcd error %v\nwe answered %v", r, wantErr, got)
	case wantErr == nil && gotErr != nil:
		t.Fatalf("request %v:\netcd answered %v\nwe failed %v", r, want, gotErr)
	case wantErr != nil:
		if msg := status.Convert(wantErr).Message(); msg != grpcMessage(gotErr) {
			t.Fatalf("request %v:\netcd error %q\nour error  %q", r, msg, grpcMessage(gotErr))
		}
	default:
		if w, g := normalize(want), normalize(got); !proto.Equal(w, g) {
			t.Fatalf("request %v:\netcd %v\nours %v", r, w, g)
		}
	}
	return true
}

// TestAgainstEtcd replays scripted and random requests against a real etcd and the
// state machine and requires identical answers (headers aside).
func TestAgainstEtcd(t *testing.T) {
	e := startEtcd(t)
	h := newHarness(t)
	step := func(r *pb.InternalRaftRequest) bool { t.Helper(); return compareStep(t, e, h, r) }
	putR := func(p *pb.PutRequest) *pb.InternalRaftRequest { return &pb.InternalRaftRequest{Put: p} }

	// The range fixture, then every range option combination over it.
	for _, kv := range [][2]string{{"a", "3"}, {"b", "1"}, {"c", "2"}, {"a", "0"}, {"d", "2"}, {"b", "9"}, {"b", "5"}, {"e", ""}} {
		step(putR(&pb.PutRequest{Key: []byte(kv[0]), Value: []byte(kv[1])}))
	}
	for _, rg := range [][2]string{{"a", "\x00"}, {"b", "d"}, {"c", ""}, {"d", "b"}, {"\x00", "\x00"}} {
		for tgt := range int32(5) {
			for ord := range int32(3) {
				for _, limit := range []int64{0, 1, 2, 4, 5, 6} {
					for _, flags := range []int{0, 1, 2, 3} {
						for _, filt := range [][4]int64{{}, {5, 0, 0, 0}, {0, 6, 0, 0}, {0, 0, 4, 0}, {0, 0, 0, 3}, {5, 8, 0, 6}} {
							for _, rev := range []int64{0, 4, 9} {
								step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{
									Key: []byte(rg[0]), RangeEnd: bytesOrNil(rg[1]),
									SortTarget: pb.RangeRequest_SortTarget(tgt), SortOrder: pb.RangeRequest_SortOrder(ord),
									Limit: limit, KeysOnly: flags&1 != 0, CountOnly: flags&2 != 0,
									MinModRevision: filt[0], MaxModRevision: filt[1], MinCreateRevision: filt[2], MaxCreateRevision: filt[3],
									Revision: rev,
								}})
							}
						}
					}
				}
			}
		}
	}
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 10}})

	// Puts, deletes and their errors.
	step(putR(&pb.PutRequest{Key: []byte("a"), Value: []byte("x"), PrevKv: true}))
	step(putR(&pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}))
	step(putR(&pb.PutRequest{Key: []byte("zz"), IgnoreLease: true}))
	step(putR(&pb.PutRequest{Key: []byte("a"), IgnoreValue: true, PrevKv: true}))
	step(putR(&pb.PutRequest{Key: []byte("a"), Value: []byte("y"), IgnoreLease: true}))
	step(putR(&pb.PutRequest{Key: []byte("a"), Value: []byte("y"), Lease: 12345}))
	step(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("nothing")}})
	step(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("d"), RangeEnd: []byte("b")}})
	step(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("d"), RangeEnd: []byte("\x00"), PrevKv: true}})

	// Transactions: compares on missing keys and ranges, nested, errors.
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{cmpVersion("missing", eq, 0), withRange(cmpMod("a", lt, 100), "c")},
		Success: []*pb.RequestOp{putOp("t1", "v"), getOp("t", "u"),
			txnOp(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("t1", eq, 0)}, Success: []*pb.RequestOp{putOp("t2", "v"), getOp("t", "u")}}),
			txnOp(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("missing", neq, "v")}, Failure: []*pb.RequestOp{delOp("a", "")}})},
	}})
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("t3", "v"),
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t4"), Lease: 5}}}}}})
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("t3", "v"),
		{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("t1"), Revision: 100}}}}}})
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{delOp("nothing", "")}}})

	// Negative revisions: a plain range reads the current revision; a range in a txn
	// compares it with the compacted revision (-1 before the first compaction).
	txnAt := func(rev int64) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: rev}}}}}}
	}
	step(txnAt(-1))
	step(txnAt(-5))
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: -5}})
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: -5, Serializable: true}})

	// Compaction and its errors.
	step(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: -1}})
	step(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 100}})
	step(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 6}})
	step(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 6}})
	step(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 5}})
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 5}})
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 6}})
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 5, Serializable: true}})
	step(txnAt(-1))
	step(txnAt(6))
	step(txnAt(5))
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("t5", "v"),
		{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("t1"), Revision: 5}}}}}})

	// NOSPACE: puts refused, deletes not.
	step(alarmReq(pb.AlarmRequest_ACTIVATE, e.memberID, pb.AlarmType_NOSPACE))
	step(alarmReq(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE))
	step(putR(&pb.PutRequest{Key: []byte("a"), Value: []byte("z")}))
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{putOp("a", "z")}}})
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{delOp("t1", ""), getOp("a", "")}}})
	step(alarmReq(pb.AlarmRequest_DEACTIVATE, e.memberID, pb.AlarmType_NOSPACE))
	step(alarmReq(pb.AlarmRequest_DEACTIVATE, e.memberID, pb.AlarmType_NOSPACE))
	step(putR(&pb.PutRequest{Key: []byte("a"), Value: []byte("z")}))

	// Random requests over a small key space.
	rng := rand.New(rand.NewPCG(7, 7))
	valid := 0
	for _, r := range randomRequests(rng, 600) {
		if r.Alarm != nil {
			continue // member IDs differ; covered above
		}
		if step(r) {
			valid++
		}
		if rng.IntN(3) == 0 {
			step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"),
				SortTarget: pb.RangeRequest_SortTarget(rng.IntN(5)), SortOrder: pb.RangeRequest_SortOrder(rng.IntN(3)),
				Limit: rng.Int64N(4), MinModRevision: rng.Int64N(h.store.Rev() + 1)}})
		}
	}
	if valid < 300 {
		t.Fatalf("only %d of the random requests were valid", valid)
	}
	t.Logf("%d valid random requests, revision %d", valid, h.store.Rev())
}

// TestLeasesAgainstEtcd checks what the state machine does with the lease field of keys,
// against an etcd holding a real lease with the same ID.
func TestLeasesAgainstEtcd(t *testing.T) {
	e := startEtcd(t)
	h := newHarness(t)
	const id = 0x77
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: 3600}); err != nil {
		t.Fatal(err)
	}
	h.grant(id, 3600)
	step := func(r *pb.InternalRaftRequest) { t.Helper(); compareStep(t, e, h, r) }
	put := func(p *pb.PutRequest) { t.Helper(); step(&pb.InternalRaftRequest{Put: p}) }

	put(&pb.PutRequest{Key: []byte("l1"), Value: []byte("v"), Lease: id})
	put(&pb.PutRequest{Key: []byte("l2"), Value: []byte("w"), Lease: id, PrevKv: true})
	put(&pb.PutRequest{Key: []byte("l3"), Value: []byte("x")})
	put(&pb.PutRequest{Key: []byte("l4"), Value: []byte("x"), Lease: id + 1})
	for tgt := range int32(5) {
		for _, keysOnly := range []bool{false, true} {
			step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("l"), RangeEnd: []byte("m"),
				KeysOnly: keysOnly, SortTarget: pb.RangeRequest_SortTarget(tgt), SortOrder: pb.RangeRequest_DESCEND}})
		}
	}
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{cmpLease("l1", eq, id), withRange(cmpLease("l1", gt, 0), "l3")},
		Success: []*pb.RequestOp{getOp("l", "m")},
	}})
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpLease("l1", gt, 0), "l4")}}})
	put(&pb.PutRequest{Key: []byte("l1"), Value: []byte("new"), IgnoreLease: true, PrevKv: true})
	put(&pb.PutRequest{Key: []byte("l3"), IgnoreValue: true, Lease: id, PrevKv: true})
	step(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("l5"), Value: []byte("y"), Lease: id, PrevKv: true}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("l2"), IgnoreValue: true, PrevKv: true}}},
	}}})
	step(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("l"), RangeEnd: []byte("m")}})
	step(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("l"), RangeEnd: []byte("m"), PrevKv: true}})
}
