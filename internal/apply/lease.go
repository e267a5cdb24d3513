package apply

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

// Leases in the state machine, as etcd's lessor does them inside apply:
//
//   - LeaseGrant records the lease with the TTL of the request. The server chose the ID
//     (when the client gave 0) and raised the TTL to the minimum before proposing, so
//     applying it needs neither a clock nor this member's configuration. An ID in use
//     answers ErrLeaseExists, a TTL above lease.MaxTTL ErrLeaseTTLTooLarge.
//   - LeaseRevoke deletes every key attached to the lease, sorted, in ONE mvcc
//     revision, and the lease with its attachments, in the entry's batch.
//   - LeaseCheckpoint records remaining TTLs (what a new leader continues from); an
//     unknown lease in it is skipped, as etcd does.
//   - A put with a lease attaches its key; a put that moves a key to another lease (or
//     to none) detaches it from the old one; a delete detaches what it deletes. The
//     attachments are written in the same batch as the key's version.
//
// Expiry is not decided here: the leader proposes a LeaseRevoke for each expired lease.

// leaseWriter keeps the lease attachments in step with the key writes of one batch.
type leaseWriter struct {
	b storage.Batch
	t *lease.Table
}

func (a *Applier) leaseWriter(p *pending) leaseWriter { return leaseWriter{b: p.b, t: a.leases} }

// moved records that key, whose previous live version was prev (nil: none), now has
// lease id.
func (lw leaseWriter) moved(key []byte, prev *mvccpb.KeyValue, id int64) error {
	var old int64
	if prev != nil {
		old = prev.Lease
	}
	if old == id {
		return nil
	}
	if old != lease.NoLease {
		if err := lw.t.Detach(lw.b, old, key); err != nil {
			return err
		}
	}
	if id != lease.NoLease {
		return lw.t.Attach(lw.b, id, key)
	}
	return nil
}

// deleted detaches the deleted keys from their leases.
func (lw leaseWriter) deleted(kvs []*mvccpb.KeyValue) error {
	for _, kv := range kvs {
		if kv.Lease != lease.NoLease {
			if err := lw.t.Detach(lw.b, kv.Lease, kv.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaseGrant applies a LeaseGrantRequest. Under NOSPACE it is refused, as etcd's quota
// refuses it.
func (a *Applier) leaseGrant(p *pending, r *pb.LeaseGrantRequest) (*Result, error) {
	if err := a.rejectWrites(true); err != nil {
		return &Result{Err: err}, nil
	}
	if err := a.leases.CheckGrant(r.ID, r.TTL); err != nil {
		return &Result{Err: err}, nil
	}
	if err := a.leases.Grant(p.b, r.ID, r.TTL); err != nil {
		return nil, err
	}
	return &Result{Resp: &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: r.TTL}}, nil
}

// leaseRevoke applies a LeaseRevokeRequest: the lease's keys are deleted in one
// revision of one mvcc write transaction.
func (a *Applier) leaseRevoke(p *pending, r *pb.LeaseRevokeRequest) (*Result, error) {
	if err := a.rejectWrites(false); err != nil {
		return &Result{Err: err}, nil
	}
	if !a.leases.Exists(r.ID) {
		return &Result{Err: ErrLeaseNotFound}, nil
	}
	return a.write(p, func(t *mvcc.TxnWrite) (proto.Message, error) {
		keys, err := a.leases.Revoke(p.b, r.ID)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			// The lease is gone: detaching (in DeleteRange's leaseWriter) is moot.
			if _, err := t.DeleteRange(k, nil); err != nil {
				return nil, err
			}
		}
		return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: t.Rev()}}, nil
	})
}

// leaseCheckpoint applies a LeaseCheckpointRequest.
func (a *Applier) leaseCheckpoint(p *pending, r *pb.LeaseCheckpointRequest) (*Result, error) {
	for _, c := range r.GetCheckpoints() {
		if err := a.leases.Checkpoint(p.b, c.GetID(), c.GetRemaining_TTL()); err != nil {
			return nil, err
		}
	}
	return &Result{Resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{}}}, nil
}
