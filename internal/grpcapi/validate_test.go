package grpcapi

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

func put(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
}

func get(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func del(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func txn(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

func ops(o ...*pb.RequestOp) []*pb.RequestOp { return o }

func TestCheckRangeRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.RangeRequest
		want error
	}{
		{"ok", &pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_CREATE}, nil},
		{"empty key", &pb.RangeRequest{}, rpctypes.ErrGRPCEmptyKey},
		{"sort target out of range", &pb.RangeRequest{Key: []byte("a"), SortTarget: 100}, rpctypes.ErrGRPCInvalidSortOption},
		{"sort order out of range", &pb.RangeRequest{Key: []byte("a"), SortOrder: 200}, rpctypes.ErrGRPCInvalidSortOption},
		{"nil request", nil, rpctypes.ErrGRPCEmptyKey},
	} {
		if got := checkRangeRequest(tc.r); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheckPutRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.PutRequest
		want error
	}{
		{"ok", &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), Lease: 5}, nil},
		{"empty key", &pb.PutRequest{Value: []byte("v")}, rpctypes.ErrGRPCEmptyKey},
		{"ignore_value with value", &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}, rpctypes.ErrGRPCValueProvided},
		{"ignore_value without value", &pb.PutRequest{Key: []byte("a"), IgnoreValue: true}, nil},
		{"ignore_lease with lease", &pb.PutRequest{Key: []byte("a"), Lease: 5, IgnoreLease: true}, rpctypes.ErrGRPCLeaseProvided},
		{"ignore_lease without lease", &pb.PutRequest{Key: []byte("a"), IgnoreLease: true}, nil},
	} {
		if got := checkPutRequest(tc.r); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := checkDeleteRequest(&pb.DeleteRangeRequest{RangeEnd: []byte("z")}); got != rpctypes.ErrGRPCEmptyKey {
		t.Errorf("delete with empty key: got %v", got)
	}
}

func TestCheckTxnRequest(t *testing.T) {
	many := func(n int) []*pb.RequestOp {
		o := make([]*pb.RequestOp, n)
		for i := range o {
			o[i] = get("k")
		}
		return o
	}
	for _, tc := range []struct {
		name string
		r    *pb.TxnRequest
		max  int
		want error
	}{
		{"empty txn", &pb.TxnRequest{}, 3, nil},
		{"at the limit", &pb.TxnRequest{Success: many(3), Failure: many(3)}, 3, nil},
		{"success over the limit", &pb.TxnRequest{Success: many(4)}, 3, rpctypes.ErrGRPCTooManyOps},
		{"failure over the limit", &pb.TxnRequest{Failure: many(4)}, 3, rpctypes.ErrGRPCTooManyOps},
		{"compares over the limit", &pb.TxnRequest{Compare: make([]*pb.Compare, 4)}, 3, rpctypes.ErrGRPCTooManyOps},
		{"compare with empty key", &pb.TxnRequest{Compare: []*pb.Compare{{}}}, 3, rpctypes.ErrGRPCEmptyKey},
		{"put with empty key", &pb.TxnRequest{Success: ops(put(""))}, 3, rpctypes.ErrGRPCEmptyKey},
		{"empty op", &pb.TxnRequest{Failure: ops(&pb.RequestOp{})}, 3, rpctypes.ErrGRPCKeyNotFound},
		{"bad sort in a range op", &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestRange{
			RequestRange: &pb.RangeRequest{Key: []byte("a"), SortOrder: 9}}})}, 3, rpctypes.ErrGRPCInvalidSortOption},
		// A nested txn gets what its parent left: 3 - 2 = 1 op per branch.
		{"nested within the budget", &pb.TxnRequest{Success: ops(get("a"), txn(many(1), nil))}, 3, nil},
		{"nested over the budget", &pb.TxnRequest{Success: ops(get("a"), txn(many(2), nil))}, 3, rpctypes.ErrGRPCTooManyOps},
		{"error inside nested txn", &pb.TxnRequest{Success: ops(txn(nil, ops(del("", ""))))}, 3, rpctypes.ErrGRPCEmptyKey},
	} {
		if got := checkTxnRequest(tc.r, tc.max); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheckIntervals(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []*pb.RequestOp
		dup  bool
	}{
		{"distinct puts", ops(put("a"), put("b")), false},
		{"same key put twice", ops(put("a"), put("a")), true},
		{"reads never conflict", ops(get("a"), put("a"), get("a")), false},
		{"put and delete of the key", ops(put("a"), del("a", "")), true},
		{"put inside a deleted range", ops(del("a", "c"), put("b")), true},
		{"put at the range end is outside", ops(del("a", "c"), put("c")), false},
		{"put before the range", ops(del("b", "c"), put("a")), false},
		{"deletes may overlap each other", ops(del("a", "c"), del("b", "")), false},
		// etcd's interval tree sees a from-key delete (end "\x00") as an empty range.
		{"from-key delete does not conflict", ops(del("a", "\x00"), put("b")), false},
		{"put in a nested txn and outside", ops(put("a"), txn(ops(put("a")), nil)), true},
		{"same key in then and else of one txn", ops(txn(ops(put("a")), ops(put("a")))), false},
		{"same key in two nested txns", ops(txn(ops(put("a")), nil), txn(nil, ops(put("a")))), true},
		{"else put deleted at the outer level", ops(del("a", "b"), txn(nil, ops(put("a")))), true},
		{"nested delete against outer put", ops(put("b"), txn(ops(del("a", "c")), nil)), true},
		{"nested delete against a later nested put", ops(txn(ops(del("a", "c")), nil), txn(ops(put("b")), nil)), true},
		{"nested delete and put in the same branch", ops(txn(ops(del("a", ""), put("a")), nil)), true},
		{"deeply nested duplicate", ops(put("x"), txn(ops(txn(nil, ops(put("x")))), nil)), true},
	} {
		_, _, err := checkIntervals(tc.ops)
		if tc.dup && err != rpctypes.ErrGRPCDuplicateKey {
			t.Errorf("%s: got %v, want ErrGRPCDuplicateKey", tc.name, err)
		}
		if !tc.dup && err != nil {
			t.Errorf("%s: got %v, want nil", tc.name, err)
		}
	}
}

// FuzzCheckTxnRequest checks that validation never panics on a decoded request, the
// way etcd fuzzes its validation.
func FuzzCheckTxnRequest(f *testing.F) {
	f.Add([]byte{})
	seed, _ := proto.Marshal(&pb.TxnRequest{Success: ops(put("a"), txn(ops(del("a", "c")), ops(put("b"))))})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.TxnRequest
		if err := proto.Unmarshal(data, &r); err != nil {
			return
		}
		if checkTxnRequest(&r, 128) == nil {
			_, _, _ = checkIntervals(r.Success)
			_, _, _ = checkIntervals(r.Failure)
		}
	})
}
