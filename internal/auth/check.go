package auth

import (
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Info is who makes a request: the user and the auth revision its token was issued at
// (or the revision the server saw when it took a certificate's CN). The zero Info is
// no user.
type Info struct {
	Username string
	Revision uint64
}

// IsAdmin is etcd's IsAdminPermitted: nil when auth is disabled or user holds the
// root role.
func (st *State) IsAdmin(user string) error {
	if !st.enabled {
		return nil
	}
	if user == "" {
		return ErrUserEmpty
	}
	if st.users[user] == nil {
		return ErrUserNotFound
	}
	if !st.perms[user].root {
		return ErrPermissionDenied
	}
	return nil
}

// check is etcd's isOpPermitted: the user must be known at a revision not older than
// the store's, and hold the root role or a permission of kind typ over [key, rangeEnd).
func (st *State) check(ai Info, key, rangeEnd []byte, typ authpb.Permission_Type) error {
	if !st.enabled {
		return nil
	}
	if ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < st.revision {
		return ErrAuthOldRevision
	}
	p := st.perms[ai.Username]
	if p == nil {
		return ErrPermissionDenied
	}
	if p.root {
		return nil
	}
	m := p.read
	if typ == authpb.Permission_WRITE {
		m = p.write
	}
	if m.contains(permInterval(key, rangeEnd)) {
		return nil
	}
	return ErrPermissionDenied
}

// CanRead, CanWrite: read or write permission over [key, rangeEnd) (rangeEnd as in
// a RangeRequest: empty for one key, "\x00" for every key from key on).
func (st *State) CanRead(ai Info, key, rangeEnd []byte) error {
	return st.check(ai, key, rangeEnd, authpb.Permission_READ)
}

func (st *State) CanWrite(ai Info, key, rangeEnd []byte) error {
	return st.check(ai, key, rangeEnd, authpb.Permission_WRITE)
}

// Leases tells the checks the keys attached to a lease (nil: no such lease).
type Leases func(id int64) [][]byte

// CheckLeaseKeys is etcd's checkLeasePutsKeys: root, or write permission on every key
// attached to lease id.
func (st *State) CheckLeaseKeys(ai Info, id int64, keys Leases) error {
	if id == 0 || !st.enabled {
		return nil
	}
	if st.IsAdmin(ai.Username) == nil {
		return nil
	}
	for _, k := range keys(id) {
		if err := st.CanWrite(ai, k, nil); err != nil {
			return err
		}
	}
	return nil
}

// CheckPut is etcd's checkPutAuth.
func (st *State) CheckPut(ai Info, r *pb.PutRequest, keys Leases) error {
	if err := st.CanWrite(ai, r.Key, nil); err != nil {
		return err
	}
	if err := st.CheckLeaseKeys(ai, r.Lease, keys); err != nil {
		return err
	}
	if r.PrevKv {
		return st.CanRead(ai, r.Key, nil)
	}
	return nil
}

// CheckDelete is etcd's check of a DeleteRange: write, and read with prev_kv.
func (st *State) CheckDelete(ai Info, r *pb.DeleteRangeRequest) error {
	if err := st.CanWrite(ai, r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.PrevKv {
		return st.CanRead(ai, r.Key, r.RangeEnd)
	}
	return nil
}

// CheckTxn is etcd's checkTxnPermission: read on every compare, then every op of both
// branches, nested txns included.
func (st *State) CheckTxn(ai Info, r *pb.TxnRequest, keys Leases) error {
	if !st.enabled {
		return nil
	}
	for _, c := range r.Compare {
		if err := st.CanRead(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			var err error
			switch {
			case op.GetRequestRange() != nil:
				rr := op.GetRequestRange()
				err = st.CanRead(ai, rr.Key, rr.RangeEnd)
			case op.GetRequestPut() != nil:
				err = st.CheckPut(ai, op.GetRequestPut(), keys)
			case op.GetRequestDeleteRange() != nil:
				err = st.CheckDelete(ai, op.GetRequestDeleteRange())
			case op.GetRequestTxn() != nil:
				err = st.CheckTxn(ai, op.GetRequestTxn(), keys)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
