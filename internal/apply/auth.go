package apply

import (
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/metastore/metastore/internal/auth"
)

// The auth state machine (internal/auth) is applied here: the auth changes, and the
// permission checks of every key-value and lease request with the user and auth
// revision its proposal carries in the header (etcd's authApplierV3). A request
// checked by the server against an auth state that changed before the entry is
// applied fails with auth.ErrAuthOldRevision, so a revoked permission never lets it
// through.

func init() {
	for _, name := range []protoreflect.Name{
		"auth_enable", "auth_disable", "auth_user_add", "auth_user_delete", "auth_user_change_password",
		"auth_user_grant_role", "auth_user_revoke_role", "auth_role_add", "auth_role_delete",
		"auth_role_grant_permission", "auth_role_revoke_permission", "authenticate",
	} {
		implemented[fieldNumber(name)] = true
	}
	requestErrors = append(requestErrors, auth.RequestErrors...)
}

// authState is the Applier's auth state: work includes the batch not committed yet
// (apply goroutine only), published the last committed one.
type authState struct {
	work      *auth.State
	published atomic.Pointer[auth.State]
	onToken   func(user, token string) // SetTokenListener
}

// SetTokenListener installs fn, called on the apply goroutine after the batch of an
// applied Authenticate is committed, with the user and the simple token it carries
// (etcd registers simple tokens on every member through Raft, so that a client may
// use its token on any member). fn must not block. Call it before applying starts.
func (a *Applier) SetTokenListener(fn func(user, token string)) { a.auth.onToken = fn }

// applyAuthenticate is etcd's Authenticate at apply: the password was checked by the
// proposing member; here the user must still exist and have a password.
func (a *Applier) applyAuthenticate(p *pending, r *pb.InternalAuthenticateRequest) (*Result, error) {
	st := a.auth.work
	if !st.Enabled() {
		return &Result{Err: auth.ErrAuthNotEnabled}, nil
	}
	u := st.User(r.Name)
	if u == nil || (u.Options != nil && u.Options.NoPassword) {
		return &Result{Err: auth.ErrAuthFailed}, nil
	}
	if r.SimpleToken != "" && a.auth.onToken != nil {
		name, tok, fn := r.Name, r.SimpleToken, a.auth.onToken
		p.after = append(p.after, func() { fn(name, tok) })
	}
	return &Result{Resp: &pb.AuthenticateResponse{Token: r.SimpleToken}}, nil
}

// Auth returns the auth state as of the last committed batch. Safe from any goroutine;
// the State is never modified.
func (a *Applier) Auth() *auth.State { return a.auth.published.Load() }

func (a *Applier) loadAuth() error {
	st, err := auth.Load(a.eng)
	if err != nil {
		return err
	}
	a.auth.work = st
	a.auth.published.Store(st)
	return nil
}

func (a *Applier) leaseKeys(id int64) [][]byte {
	ks, _ := a.leases.Keys(id)
	return ks
}

// checkAuth is the permission check of r at apply; nil when r may proceed.
func (a *Applier) checkAuth(r *pb.InternalRaftRequest) error {
	st := a.auth.work
	if st == nil || !st.Enabled() {
		return nil
	}
	ai := auth.Info{Username: r.GetHeader().GetUsername(), Revision: r.GetHeader().GetAuthRevision()}
	switch {
	case r.Put != nil:
		return st.CheckPut(ai, r.Put, a.leaseKeys)
	case r.DeleteRange != nil:
		return st.CheckDelete(ai, r.DeleteRange)
	case r.Txn != nil:
		return st.CheckTxn(ai, r.Txn, a.leaseKeys)
	case r.Range != nil:
		return st.CanRead(ai, r.Range.Key, r.Range.RangeEnd)
	case r.LeaseRevoke != nil:
		return st.CheckLeaseKeys(ai, r.LeaseRevoke.ID, a.leaseKeys)
	case r.Compaction != nil:
		return st.IsAdmin(ai.Username) // etcd checks it before proposing only
	}
	return nil
}

// applyAuth applies an auth change into p's batch; the new state is published once
// the batch is committed.
func (a *Applier) applyAuth(p *pending, r *pb.InternalRaftRequest) (*Result, error) {
	st, resp, err := auth.Apply(a.auth.work, p.b, r)
	if err != nil {
		if isRequestError(err) {
			return &Result{Err: err}, nil
		}
		return nil, err
	}
	a.auth.work = st
	p.after = append(p.after, func() { a.auth.published.Store(st) })
	return &Result{Resp: resp}, nil
}
