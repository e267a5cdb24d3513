package apply

import (
	"errors"

	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage"
)

// setMemberAttributes records a member's name and client URLs, published by the member
// itself through Raft after it starts (etcd's ClusterMemberAttrSetRequest), in the
// member list kept under storage.MetaMembers. An unknown member is ignored, as etcd
// ignores attributes of a removed member.
func (a *Applier) setMemberAttributes(b storage.Batch, r *membershippb.ClusterMemberAttrSetRequest) (*Result, error) {
	raw, err := b.Get(storage.MetaMembers)
	if errors.Is(err, storage.ErrNotFound) {
		return &Result{}, nil
	}
	if err != nil {
		return nil, err
	}
	cl, err := membership.Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	attrs := r.GetMemberAttributes()
	if err := cl.SetAttributes(r.GetMember_ID(), attrs.GetName(), attrs.GetClientUrls()); err != nil {
		a.lg.Warn("ignoring attributes of an unknown member")
		return &Result{}, nil
	}
	out, err := membership.Marshal(cl)
	if err != nil {
		return nil, err
	}
	if err := b.Set(storage.MetaMembers, out); err != nil {
		return nil, err
	}
	return &Result{}, nil
}

// Members returns the member list as last committed: empty (with the cluster ID) until
// the first conf change that carries a member is applied.
func (a *Applier) Members() (*membership.Cluster, error) { return a.loadMembers() }
