package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// rawWatchStep is one request on a raw Watch stream and the number of responses it
// must produce (read before the next step, so that the order is deterministic).
type rawWatchStep struct {
	name  string
	req   *pb.WatchRequest // nil: only act
	act   func(t *testing.T, cli *clientv3.Client)
	resps int
}

func createReq(c *pb.WatchCreateRequest) *pb.WatchRequest {
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
}

func cancelReq(id int64) *pb.WatchRequest {
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}
}

// TestWatchResponsesFieldByField drives one raw gRPC Watch stream through creation
// (past, compacted, negative, future and now start revisions, client ids, duplicate
// ids, empty ranges, all keys), cancellation, progress and a txn, on a fresh member of
// each binary, and checks that every response, field by field, is the same as real
// etcd's (cluster and member IDs and raft term aside).
func TestWatchResponsesFieldByField(t *testing.T) {
	steps := []rawWatchStep{
		{name: "history", act: func(t *testing.T, cli *clientv3.Client) {
			mustPut(t, cli, "a", "1") // 2
			mustPut(t, cli, "a", "2") // 3
			mustPut(t, cli, "b", "1") // 4
			mustPut(t, cli, "a", "3") // 5
			if _, err := cli.Compact(context.Background(), 3); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "below the compacted revision", req: createReq(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 2}), resps: 2},
		{name: "at the compacted revision with prev_kv", req: createReq(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 3, PrevKv: true}), resps: 2},
		{name: "client id", req: createReq(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}), resps: 1},
		{name: "duplicate id", req: createReq(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}), resps: 1},
		{name: "empty range", req: createReq(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}), resps: 1},
		{name: "negative start", req: createReq(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: -1}), resps: 1},
		{name: "all keys from history, NODELETE", req: createReq(&pb.WatchCreateRequest{RangeEnd: []byte{0}, StartRevision: 4,
			Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}}), resps: 2},
		{name: "future start", req: createReq(&pb.WatchCreateRequest{Key: []byte("f"), StartRevision: 7}), resps: 1},
		{name: "cancel", req: cancelReq(7), resps: 1},
		{name: "cancel unknown", req: cancelReq(99)},
		{name: "cancel the compacted watcher", req: cancelReq(0), resps: 1},
		{name: "txn", act: func(t *testing.T, cli *clientv3.Client) {
			_, err := cli.Txn(context.Background()).Then(clientv3.OpPut("f", "x"), clientv3.OpPut("g", "y"), clientv3.OpDelete("b")).Commit() // 6
			if err != nil {
				t.Fatal(err)
			}
		}, resps: 1}, // the all-keys watcher (NODELETE: both puts, one response)
		{name: "future revision reached", act: func(t *testing.T, cli *clientv3.Client) { mustPut(t, cli, "f", "z") }, resps: 2}, // 7: all keys and f
		{name: "progress", req: &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}, resps: 1},
	}
	got := map[string][]string{}
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, st := range steps {
			if st.act != nil {
				st.act(t, cli)
			}
			if st.req != nil {
				if err := stream.Send(st.req); err != nil {
					t.Fatalf("%s: send: %v", st.name, err)
				}
			}
			var rs []string
			for range st.resps {
				r, err := stream.Recv()
				if err != nil {
					t.Fatalf("%s: recv: %v", st.name, err)
				}
				rs = append(rs, normalise(r))
			}
			// Responses of different watchers in one step may come in either order.
			sort.Strings(rs)
			out = append(out, fmt.Sprintf("== %s\n%s", st.name, strings.Join(rs, "\n")))
		}
		got[b.name] = out
		for _, s := range out {
			t.Log(s)
		}
	})
	ours, etcd := got["metastore"], got["etcd"]
	if ours == nil || etcd == nil {
		return
	}
	for i := range ours {
		if ours[i] != etcd[i] {
			t.Errorf("step %d differs:\nmetastore:\n%s\netcd:\n%s", i, ours[i], etcd[i])
		}
	}
}

// normalise prints r without what differs between clusters.
func normalise(r *pb.WatchResponse) string {
	r = proto.Clone(r).(*pb.WatchResponse)
	if r.Header != nil {
		r.Header.ClusterId, r.Header.MemberId, r.Header.RaftTerm = 0, 0, 0
	}
	return strings.Join(strings.Fields(prototext.MarshalOptions{}.Format(r)), " ")
}
