package apply

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/mvcc"
)

// A transaction runs in three steps, as in etcd:
//
//  1. plan: evaluate the compares of the transaction and of every nested transaction on
//     the branch taken, all against the state BEFORE the transaction (a nested
//     transaction's compares do not see the writes of the ops before it);
//  2. check: find the error any op on the chosen path would fail with (future or
//     compacted range revision, unknown lease, ignore_value on a missing key), still
//     before anything is written, so a failing transaction writes nothing;
//  3. execute: run the ops in order; each sees the writes of the ops before it, and all
//     writes share one main revision with increasing sub-revisions.

// txnPlan is the branch a transaction takes.
type txnPlan struct {
	succeeded bool
	ops       []*pb.RequestOp
	nested    []*txnPlan // nested[i] is the plan of ops[i] when it is a transaction
}

func planTxn(v mvcc.ReadView, r *pb.TxnRequest) (*txnPlan, error) {
	ok, err := compareAll(v, r.GetCompare())
	if err != nil {
		return nil, err
	}
	p := &txnPlan{succeeded: ok, ops: r.GetSuccess()}
	if !ok {
		p.ops = r.GetFailure()
	}
	p.nested = make([]*txnPlan, len(p.ops))
	for i, op := range p.ops {
		tv, ok := op.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		// A nil nested request plans as an empty transaction.
		if p.nested[i], err = planTxn(v, tv.RequestTxn); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// compareAll reports whether every compare holds in v.
func compareAll(v mvcc.ReadView, cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		ok, err := compare(v, c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// compare evaluates one compare. Over a range, every live key in it must satisfy the
// compare. A missing key (or an empty range) has version, create, mod revision and
// lease 0, and fails every VALUE compare: gRPC cannot tell a missing value from "".
func compare(v mvcc.ReadView, c *pb.Compare) (bool, error) {
	var kvs []*mvccpb.KeyValue
	if !isEmptyInterval(c.GetKey(), c.GetRangeEnd()) {
		rr, err := v.Range(c.GetKey(), c.GetRangeEnd(), mvcc.RangeOptions{})
		if err != nil {
			return false, err
		}
		kvs = rr.KVs
	}
	if len(kvs) == 0 {
		if c.GetTarget() == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range kvs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.GetTarget() {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmpInt64(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt64(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt64(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt64(kv.Lease, c.GetLease())
	}
	switch c.GetResult() {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// txnWrites lists, in order, the keys a transaction writes before the op being checked,
// so a put with ignore_value after a delete of its key in the same transaction is caught
// before anything is written.
type txnWrites struct{ ops []txnWrite }

type txnWrite struct {
	key, end []byte
	isPut    bool
}

// deletes reports whether the last earlier write covering k deleted it.
func (w *txnWrites) deletes(k []byte) bool {
	for i := len(w.ops) - 1; i >= 0; i-- {
		op := w.ops[i]
		if op.isPut && bytes.Equal(op.key, k) {
			return false
		}
		if !op.isPut && inInterval(k, op.key, op.end) {
			return true
		}
	}
	return false
}

// checkTxn returns the first error an op on the plan's path would fail with.
func (a *Applier) checkTxn(v mvcc.ReadView, p *txnPlan, w *txnWrites) error {
	for i, op := range p.ops {
		switch tv := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			if err := a.checkRangeRev(v, tv.RequestRange); err != nil {
				return err
			}
		case *pb.RequestOp_RequestPut:
			put := tv.RequestPut
			if put == nil {
				put = &pb.PutRequest{}
			}
			if err := a.checkPut(v, put, w); err != nil {
				return err
			}
			w.ops = append(w.ops, txnWrite{key: put.Key, isPut: true})
		case *pb.RequestOp_RequestDeleteRange:
			d := tv.RequestDeleteRange
			if d != nil && !isEmptyInterval(d.Key, d.RangeEnd) {
				w.ops = append(w.ops, txnWrite{key: d.Key, end: d.RangeEnd})
			}
		case *pb.RequestOp_RequestTxn:
			if err := a.checkTxn(v, p.nested[i], w); err != nil {
				return err
			}
		}
	}
	return nil
}

// execTxn runs the ops of the plan's path in t. checkTxn has run, so it meets no request
// error but by a bug (which the invariant of ApplyEntries catches).
// A nested transaction's response has an empty header, as in etcd.
func execTxn(t *mvcc.TxnWrite, lw leaseWriter, p *txnPlan) (*pb.TxnResponse, error) {
	resp := &pb.TxnResponse{
		Header:    &pb.ResponseHeader{},
		Succeeded: p.succeeded,
		Responses: make([]*pb.ResponseOp, len(p.ops)),
	}
	for i, op := range p.ops {
		ro := &pb.ResponseOp{}
		switch tv := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			r, err := Range(t, orEmpty(tv.RequestRange))
			if err != nil {
				return nil, err
			}
			ro.Response = &pb.ResponseOp_ResponseRange{ResponseRange: r}
		case *pb.RequestOp_RequestPut:
			put := tv.RequestPut
			if put == nil {
				put = &pb.PutRequest{}
			}
			r, err := execPut(t, lw, put)
			if err != nil {
				return nil, err
			}
			ro.Response = &pb.ResponseOp_ResponsePut{ResponsePut: r}
		case *pb.RequestOp_RequestDeleteRange:
			d := tv.RequestDeleteRange
			if d == nil {
				d = &pb.DeleteRangeRequest{}
			}
			r, err := execDelete(t, lw, d)
			if err != nil {
				return nil, err
			}
			ro.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: r}
		case *pb.RequestOp_RequestTxn:
			r, err := execTxn(t, lw, p.nested[i])
			if err != nil {
				return nil, err
			}
			ro.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: r}
		}
		resp.Responses[i] = ro
	}
	return resp, nil
}

func orEmpty(r *pb.RangeRequest) *pb.RangeRequest {
	if r == nil {
		return &pb.RangeRequest{}
	}
	return r
}

// txn applies a TxnRequest in the write transaction t.
func (a *Applier) txn(t *mvcc.TxnWrite, lw leaseWriter, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	p, err := planTxn(t, r)
	if err != nil {
		return nil, err
	}
	if err := a.checkTxn(t, p, &txnWrites{}); err != nil {
		return nil, err
	}
	resp, err := execTxn(t, lw, p)
	if err != nil {
		return nil, err
	}
	resp.Header.Revision = t.Rev()
	return resp, nil
}

// ReadTxn answers a transaction that writes in neither branch (IsTxnReadOnly) from v,
// outside Raft. Header.Revision is v's revision.
func (a *Applier) ReadTxn(v mvcc.ReadView, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !IsTxnReadOnly(r) {
		return nil, ErrUnsupported
	}
	p, err := planTxn(v, r)
	if err != nil {
		return nil, err
	}
	if err := a.checkTxn(v, p, &txnWrites{}); err != nil {
		return nil, err
	}
	resp := &pb.TxnResponse{
		Header:    &pb.ResponseHeader{Revision: v.Rev()},
		Succeeded: p.succeeded,
		Responses: make([]*pb.ResponseOp, len(p.ops)),
	}
	for i, op := range p.ops {
		rr, err := Range(v, orEmpty(op.GetRequestRange()))
		if err != nil {
			return nil, err
		}
		resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}}
	}
	return resp, nil
}

// IsTxnReadOnly reports whether every op in both branches is a Range (a nested
// transaction counts as a write, as in etcd), so the transaction can be answered by
// ReadTxn without going through Raft.
func IsTxnReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}
