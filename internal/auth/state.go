// Package auth owns etcd's users, roles and permissions as replicated state: the
// users and roles (authpb messages under storage's 'A' keys), whether auth is enabled
// and the auth revision, and the permission checks on them (etcd v3.7.3's
// server/auth rules: root user and role, READ/WRITE/READWRITE on a key, a range or a
// prefix, "\x00" as an open end).
//
// It is written by apply alone, in the entry's batch, so it is as deterministic as
// apply: no clock, no randomness, no goroutines, no password hashing (the serving
// member hashes passwords with bcrypt before proposing). Tokens, passwords checks
// and the request path are server's; it must not know Raft or gRPC.
package auth

import (
	"encoding/binary"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// RootUser and RootRole are etcd's names: the root role may do anything, and auth can
// be enabled only once the root user holds it.
const (
	RootUser = "root"
	RootRole = "root"
)

// State is one version of the auth state. A State handed out by Load or Apply is never
// modified: Apply returns a new one, so readers may keep and share it.
type State struct {
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	perms    map[string]*userPerms
}

// Enabled reports whether auth is enabled.
func (st *State) Enabled() bool { return st.enabled }

// Revision is the auth revision: it grows by one at every change of the auth state.
func (st *State) Revision() uint64 { return st.revision }

// User returns user name (nil if none). The caller must not modify it.
func (st *State) User(name string) *authpb.User { return st.users[name] }

// Role returns role name (nil if none). The caller must not modify it.
func (st *State) Role(name string) *authpb.Role { return st.roles[name] }

// UserNames and RoleNames are sorted.
func (st *State) UserNames() []string { return sortedKeys(st.users) }
func (st *State) RoleNames() []string { return sortedKeys(st.roles) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// HasRole reports whether user holds role.
func (st *State) HasRole(user, role string) bool {
	u := st.users[user]
	if u == nil {
		return false
	}
	i := sort.SearchStrings(u.Roles, role)
	return i < len(u.Roles) && u.Roles[i] == role
}

// Load reads the auth state from r.
func Load(r storage.Reader) (*State, error) {
	// A store that never changed is at revision 1, as etcd's (NewAuthStore).
	st := &State{revision: 1, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
	if v, err := r.Get(storage.AuthEnabledKey); err == nil {
		st.enabled = len(v) == 1 && v[0] == 1
	} else if err != storage.ErrNotFound {
		return nil, fmt.Errorf("auth: reading enabled: %w", err)
	}
	if v, err := r.Get(storage.AuthRevisionKey); err == nil {
		if len(v) != 8 {
			return nil, fmt.Errorf("auth: auth revision of %d bytes", len(v))
		}
		st.revision = binary.BigEndian.Uint64(v)
	} else if err != storage.ErrNotFound {
		return nil, fmt.Errorf("auth: reading revision: %w", err)
	}
	lo, hi := storage.AuthUserBounds()
	if err := scan(r, lo, hi, func(v []byte) error {
		u := &authpb.User{}
		if err := proto.Unmarshal(v, u); err != nil {
			return err
		}
		st.users[string(u.Name)] = u
		return nil
	}); err != nil {
		return nil, fmt.Errorf("auth: reading users: %w", err)
	}
	lo, hi = storage.AuthRoleBounds()
	if err := scan(r, lo, hi, func(v []byte) error {
		ro := &authpb.Role{}
		if err := proto.Unmarshal(v, ro); err != nil {
			return err
		}
		st.roles[string(ro.Name)] = ro
		return nil
	}); err != nil {
		return nil, fmt.Errorf("auth: reading roles: %w", err)
	}
	st.refreshPerms()
	return st, nil
}

func scan(r storage.Reader, lo, hi []byte, fn func(v []byte) error) error {
	it, err := r.NewIter(storage.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

func (st *State) refreshPerms() {
	st.perms = make(map[string]*userPerms, len(st.users))
	for name, u := range st.users {
		st.perms[name] = st.computePerms(u)
	}
}

// clone copies st's maps (the messages in them are shared and replaced, never
// modified).
func (st *State) clone() *State {
	n := &State{enabled: st.enabled, revision: st.revision,
		users: make(map[string]*authpb.User, len(st.users)), roles: make(map[string]*authpb.Role, len(st.roles))}
	for k, v := range st.users {
		n.users[k] = v
	}
	for k, v := range st.roles {
		n.roles[k] = v
	}
	return n
}
