package apply

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/mvcc"
)

const (
	eq  = pb.Compare_EQUAL
	neq = pb.Compare_NOT_EQUAL
	gt  = pb.Compare_GREATER
	lt  = pb.Compare_LESS
)

func TestTxnCompare(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // rev 2
	h.put("a", "5") // rev 3: a create 2, mod 3, version 2
	h.put("b", "3") // rev 4: b create 4, mod 4, version 1
	h.grant(9, 60)
	h.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c"), Value: []byte("7"), Lease: 9}}) // rev 5

	for _, tc := range []struct {
		name string
		cmp  *pb.Compare
		want bool
	}{
		{"value eq", cmpValue("a", eq, "5"), true},
		{"value eq wrong", cmpValue("a", eq, "1"), false},
		{"value neq", cmpValue("a", neq, "1"), true},
		{"value gt", cmpValue("a", gt, "4"), true},
		{"value gt longer", cmpValue("a", gt, "50"), false},
		{"value lt", cmpValue("a", lt, "6"), true},
		{"version eq", cmpVersion("a", eq, 2), true},
		{"version gt", cmpVersion("a", gt, 2), false},
		{"version lt", cmpVersion("a", lt, 3), true},
		{"create eq", cmpCreate("a", eq, 2), true},
		{"create neq", cmpCreate("a", neq, 2), false},
		{"mod eq", cmpMod("a", eq, 3), true},
		{"mod gt", cmpMod("a", gt, 2), true},
		{"lease eq", cmpLease("c", eq, 9), true},
		{"lease eq 0", cmpLease("a", eq, 0), true},
		{"lease gt", cmpLease("c", gt, 8), true},

		// A missing key has version, create, mod and lease 0, and fails every value compare.
		{"missing version eq 0", cmpVersion("x", eq, 0), true},
		{"missing create lt 1", cmpCreate("x", lt, 1), true},
		{"missing mod eq 0", cmpMod("x", eq, 0), true},
		{"missing lease eq 0", cmpLease("x", eq, 0), true},
		{"missing value eq empty", cmpValue("x", eq, ""), false},
		{"missing value neq", cmpValue("x", neq, "v"), false},

		// Over a range every key must satisfy the compare.
		{"range all version > 0", withRange(cmpVersion("a", gt, 0), "d"), true},
		{"range one fails", withRange(cmpVersion("a", eq, 1), "d"), false},
		{"range mod < 6", withRange(cmpMod("a", lt, 6), "\x00"), true},
		{"range value neq", withRange(cmpValue("a", neq, "1"), "c"), true},
		{"empty range version eq 0", withRange(cmpVersion("x", eq, 0), "z"), true},
		{"empty range value", withRange(cmpValue("x", neq, "v"), "z"), false},
		{"inverted range create eq 0", withRange(cmpCreate("c", eq, 0), "a"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.txn(&pb.TxnRequest{Compare: []*pb.Compare{tc.cmp}})
			if resp.Succeeded != tc.want {
				t.Fatalf("succeeded = %v, want %v", resp.Succeeded, tc.want)
			}
		})
	}

	// Several compares: all must hold.
	if h.txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", eq, "5"), cmpVersion("b", eq, 2)}}).Succeeded {
		t.Fatal("txn succeeded with one false compare")
	}
}

func TestTxnBranchesAndResponses(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // rev 2

	resp := h.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("a", eq, "1")},
		Success: []*pb.RequestOp{putOp("b", "2"), getOp("b", ""), putOp("a", "3"), delOp("a", ""), getOp("a", "\x00")},
		Failure: []*pb.RequestOp{putOp("never", "x")},
	})
	// Every write of the transaction has revision 3; reads see the earlier writes.
	b := &mvccpb.KeyValue{Key: []byte("b"), Value: []byte("2"), CreateRevision: 3, ModRevision: 3, Version: 1}
	mustEqualProto(t, resp, &pb.TxnResponse{
		Header:    &pb.ResponseHeader{Revision: 3},
		Succeeded: true,
		Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 3}}}},
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 3}, Kvs: []*mvccpb.KeyValue{b}, Count: 1}}},
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 3}}}},
			{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 3}, Deleted: 1}}},
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 3}, Kvs: []*mvccpb.KeyValue{b}, Count: 1}}},
		},
	})
	if h.getKV("never") != nil || h.getKV("a") != nil {
		t.Fatal("wrong branch or delete not applied")
	}
	if rev := h.store.Rev(); rev != 3 {
		t.Fatalf("store revision = %d, want 3: one revision per transaction", rev)
	}

	// A failing compare runs the failure branch.
	resp = h.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("b", eq, "nope")},
		Success: []*pb.RequestOp{putOp("never", "x")},
		Failure: []*pb.RequestOp{getOp("b", "")},
	})
	if resp.Succeeded || len(resp.Responses) != 1 || resp.Responses[0].GetResponseRange().Count != 1 || resp.Header.Revision != 3 {
		t.Fatalf("failure branch: %v", resp)
	}

	// A read-only or empty txn does not advance the revision.
	if resp := h.txn(&pb.TxnRequest{}); !resp.Succeeded || resp.Header.Revision != 3 {
		t.Fatalf("empty txn: %v", resp)
	}
	// A txn whose deletes match nothing does not either.
	if resp := h.txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("zz", "")}}); resp.Header.Revision != 3 {
		t.Fatalf("no-op delete txn: %v", resp)
	}
}

func TestTxnSubRevisions(t *testing.T) {
	h := newHarness(t)
	h.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("b", "1"), putOp("a", "2")}})
	// Two puts of one key in one transaction: the last wins, version counts both.
	mustEqualProto(t, h.getKV("a"), &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("2"), CreateRevision: 2, ModRevision: 2, Version: 2})
	mustEqualProto(t, h.getKV("b"), &mvccpb.KeyValue{Key: []byte("b"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1})
	// The change log has three events at revision 2, in order.
	var evs []string
	if err := h.store.Changes(2, 2, func(ev *mvccpb.Event) error {
		evs = append(evs, ev.Type.String()+" "+string(ev.Kv.Key)+"="+string(ev.Kv.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := len(evs); got != 3 || evs[0] != "PUT a=1" || evs[1] != "PUT b=1" || evs[2] != "PUT a=2" {
		t.Fatalf("events at revision 2 = %q", evs)
	}
}

func TestNestedTxn(t *testing.T) {
	h := newHarness(t)
	h.put("k", "0") // rev 2

	resp := h.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("k", eq, "0")},
		Success: []*pb.RequestOp{
			putOp("k", "1"),
			// Nested compares see the state BEFORE the outer transaction: k is still "0".
			txnOp(&pb.TxnRequest{
				Compare: []*pb.Compare{cmpValue("k", eq, "0")},
				Success: []*pb.RequestOp{putOp("inner", "yes"), getOp("k", "")},
				Failure: []*pb.RequestOp{putOp("inner", "no")},
			}),
			txnOp(&pb.TxnRequest{
				Compare: []*pb.Compare{cmpValue("k", eq, "1")},
				Success: []*pb.RequestOp{putOp("second", "yes")},
				Failure: []*pb.RequestOp{putOp("second", "no")},
			}),
		},
	})
	if !resp.Succeeded || resp.Header.Revision != 3 || len(resp.Responses) != 3 {
		t.Fatalf("outer: %v", resp)
	}
	inner := resp.Responses[1].GetResponseTxn()
	if !inner.Succeeded || len(inner.Responses) != 2 {
		t.Fatalf("inner: %v", inner)
	}
	// etcd leaves a nested transaction's header empty.
	if inner.Header == nil || inner.Header.Revision != 0 {
		t.Fatalf("inner header = %v, want empty", inner.Header)
	}
	// The nested range sees the outer put made before it.
	if got := inner.Responses[1].GetResponseRange().Kvs[0]; string(got.Value) != "1" || got.ModRevision != 3 {
		t.Fatalf("inner range = %v", got)
	}
	if second := resp.Responses[2].GetResponseTxn(); second.Succeeded {
		t.Fatal("second nested compare saw the outer put")
	}
	if v := string(h.getKV("inner").Value); v != "yes" {
		t.Fatalf("inner = %q", v)
	}
	if v := string(h.getKV("second").Value); v != "no" {
		t.Fatalf("second = %q", v)
	}
	if rev := h.store.Rev(); rev != 3 {
		t.Fatalf("revision = %d, want 3", rev)
	}
}

func TestTxnFailingOpWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.put("x", "0") // rev 2
	for _, tc := range []struct {
		name string
		req  *pb.TxnRequest
		want error
	}{
		{"unknown lease after a put", &pb.TxnRequest{Success: []*pb.RequestOp{
			putOp("a", "1"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Lease: 42}}},
		}}, ErrLeaseNotFound},
		{"ignore_value on a missing key", &pb.TxnRequest{Success: []*pb.RequestOp{
			delOp("x", ""),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}},
		}}, ErrKeyNotFound},
		// etcd checks ignore_value against the state before the transaction: a key put
		// earlier in the same transaction does not count.
		{"ignore_value on a key put in the txn", &pb.TxnRequest{Success: []*pb.RequestOp{
			putOp("new", "1"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("new"), IgnoreValue: true}}},
		}}, ErrKeyNotFound},
		// etcd crashes on this one; we refuse it.
		{"ignore_value after deleting the key", &pb.TxnRequest{Success: []*pb.RequestOp{
			delOp("a", "z"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("x"), IgnoreValue: true}}},
		}}, ErrKeyNotFound},
		{"future revision range after a put", &pb.TxnRequest{Success: []*pb.RequestOp{
			putOp("a", "1"),
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 3}}},
		}}, mvcc.ErrFutureRev},
		{"error in a nested txn", &pb.TxnRequest{Success: []*pb.RequestOp{
			putOp("a", "1"),
			txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{putOp("b", "1")}, Success: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Lease: 1}}},
			}}),
		}}, ErrLeaseNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errIs(t, h.doErr(&pb.InternalRaftRequest{Txn: tc.req}), tc.want)
			if rev := h.store.Rev(); rev != 2 {
				t.Fatalf("revision moved to %d", rev)
			}
			if n := h.mustGet(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}).Count; n != 1 {
				t.Fatalf("%d keys, want 1", n)
			}
		})
	}
	// A failing op on the branch NOT taken does not matter.
	resp := h.txn(&pb.TxnRequest{
		Success: []*pb.RequestOp{putOp("ok", "1")},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Lease: 42}}}},
	})
	if !resp.Succeeded || resp.Header.Revision != 3 {
		t.Fatalf("%v", resp)
	}
}

func TestReadTxn(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.put("b", "2")
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("a", eq, "1")},
		Success: []*pb.RequestOp{getOp("a", "c"), {Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 2}}}},
		Failure: []*pb.RequestOp{getOp("b", "")},
	}
	if !IsTxnReadOnly(req) {
		t.Fatal("IsTxnReadOnly = false")
	}
	v := h.store.Read()
	defer v.Close()
	resp, err := h.app.ReadTxn(v, req)
	if err != nil {
		t.Fatal(err)
	}
	// The same transaction through raft gives the same answer.
	mustEqualProto(t, resp, h.txn(req))
	if !resp.Succeeded || resp.Header.Revision != 3 || resp.Responses[0].GetResponseRange().Count != 2 ||
		resp.Responses[1].GetResponseRange().Count != 1 {
		t.Fatalf("%v", resp)
	}

	_, err = h.app.ReadTxn(v, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 4}}}}})
	errIs(t, err, mvcc.ErrFutureRev)

	for _, r := range []*pb.TxnRequest{
		{Success: []*pb.RequestOp{putOp("a", "1")}},
		{Failure: []*pb.RequestOp{delOp("a", "")}},
		{Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{})}},
	} {
		if IsTxnReadOnly(r) {
			t.Fatalf("IsTxnReadOnly(%v) = true", r)
		}
	}
}
