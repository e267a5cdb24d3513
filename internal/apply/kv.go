package apply

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/mvcc"
)

// put applies a PutRequest: the checks, then the write.
func (a *Applier) put(t *mvcc.TxnWrite, lw leaseWriter, p *pb.PutRequest) (*pb.PutResponse, error) {
	if err := a.checkPut(t, p, nil); err != nil {
		return nil, err
	}
	return execPut(t, lw, p)
}

// checkPut returns the error the put would fail with, before anything is written:
// ErrLeaseNotFound for an unknown lease, ErrKeyNotFound for ignore_value or
// ignore_lease on a key that does not exist in v. earlier, if not nil, holds the writes
// a transaction makes before this put (see txnWrites).
func (a *Applier) checkPut(v mvcc.ReadView, p *pb.PutRequest, earlier *txnWrites) error {
	if p.Lease != 0 && !a.leases.Exists(p.Lease) {
		return ErrLeaseNotFound
	}
	if !p.IgnoreValue && !p.IgnoreLease {
		return nil
	}
	rr, err := v.Range(p.Key, nil, mvcc.RangeOptions{})
	if err != nil {
		return err
	}
	if len(rr.KVs) == 0 {
		return ErrKeyNotFound
	}
	if earlier != nil && earlier.deletes(p.Key) {
		// etcd checks against the state before the transaction and then crashes
		// applying the put; we refuse the transaction instead.
		return ErrKeyNotFound
	}
	return nil
}

// execPut writes p. checkPut has run, so it meets no request error but by a bug (which
// the invariant of ApplyEntries catches).
func execPut(t *mvcc.TxnWrite, lw leaseWriter, p *pb.PutRequest) (*pb.PutResponse, error) {
	val, lease := p.Value, p.Lease
	if p.IgnoreValue || p.IgnoreLease {
		rr, err := t.Range(p.Key, nil, mvcc.RangeOptions{})
		if err != nil {
			return nil, err
		}
		if len(rr.KVs) == 0 {
			return nil, ErrKeyNotFound
		}
		if p.IgnoreValue {
			val = rr.KVs[0].Value
		}
		if p.IgnoreLease {
			lease = rr.KVs[0].Lease
		}
	}
	prev, err := t.Put(p.Key, val, lease, p.PrevKv)
	if err != nil {
		return nil, err
	}
	if err := lw.moved(p.Key, prev, lease); err != nil {
		return nil, err
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: t.Rev()}}
	if p.PrevKv && prev != nil {
		resp.PrevKv = prev
	}
	return resp, nil
}

// execDelete applies a DeleteRangeRequest; it cannot fail but for the engine.
func execDelete(t *mvcc.TxnWrite, lw leaseWriter, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	if !isEmptyInterval(d.Key, d.RangeEnd) {
		deleted, err := t.DeleteRange(d.Key, d.RangeEnd)
		if err != nil {
			return nil, err
		}
		if err := lw.deleted(deleted); err != nil {
			return nil, err
		}
		resp.Deleted = int64(len(deleted))
		if d.PrevKv && len(deleted) > 0 {
			resp.PrevKvs = deleted
		}
	}
	resp.Header.Revision = t.Rev()
	return resp, nil
}

// checkRangeRev returns mvcc.ErrFutureRev or mvcc.ErrCompacted if the revision of r, a
// range inside a transaction, cannot be read from v. Like etcd it compares a negative
// revision with the compacted revision, which is -1 before the first compaction.
func (a *Applier) checkRangeRev(v mvcc.ReadView, r *pb.RangeRequest) error {
	first := a.store.CompactRev()
	if first == 0 {
		first = -1
	}
	switch rev := r.GetRevision(); {
	case rev == 0:
		return nil
	case rev > v.Rev():
		return mvcc.ErrFutureRev
	case rev < first:
		return mvcc.ErrCompacted
	}
	return nil
}

// txnHasPut mirrors etcd's quota cost: any put costs something, so a transaction that
// holds a put in either branch, at any depth, is refused under NOSPACE even when the
// branch taken would not write.
func txnHasPut(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			if op.GetRequestPut() != nil {
				return true
			}
			if t := op.GetRequestTxn(); t != nil && txnHasPut(t) {
				return true
			}
		}
	}
	return false
}
