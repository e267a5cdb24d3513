package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// IsAuthRequest reports whether r is one of the auth changes Apply applies.
func IsAuthRequest(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthUserAdd != nil || r.AuthUserDelete != nil ||
		r.AuthUserChangePassword != nil || r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleDelete != nil || r.AuthRoleGrantPermission != nil ||
		r.AuthRoleRevokePermission != nil
}

// Apply applies the auth change r (IsAuthRequest) on st into b, as etcd's auth store:
// the caller (root, unless auth is disabled) is checked first with the user in r's
// header. It returns the new state and the response; on an error (a request error:
// RequestErrors) b is untouched and st stays current. A storage error is returned as
// is: the caller stops.
func Apply(st *State, b storage.Batch, r *pb.InternalRaftRequest) (*State, proto.Message, error) {
	if err := st.IsAdmin(r.GetHeader().GetUsername()); err != nil {
		return nil, nil, err
	}
	n := st.clone()
	var resp proto.Message
	var err error
	switch {
	case r.AuthEnable != nil:
		if st.enabled {
			return st, &pb.AuthEnableResponse{}, nil // etcd ignores it, without a new revision
		}
		u := st.users[RootUser]
		if u == nil {
			return nil, nil, ErrRootUserNotExist
		}
		if !st.HasRole(RootUser, RootRole) {
			return nil, nil, ErrRootRoleNotExist
		}
		n.enabled, resp = true, &pb.AuthEnableResponse{}
		if err := b.Set(storage.AuthEnabledKey, []byte{1}); err != nil {
			return nil, nil, err
		}
		// etcd keeps the revision on enable; every other change bumps it.
		return n.finish(b, resp, false)
	case r.AuthDisable != nil:
		if !st.enabled {
			return st, &pb.AuthDisableResponse{}, nil
		}
		n.enabled, resp = false, &pb.AuthDisableResponse{}
		if err := b.Set(storage.AuthEnabledKey, []byte{0}); err != nil {
			return nil, nil, err
		}
	case r.AuthUserAdd != nil:
		resp, err = n.userAdd(r.AuthUserAdd)
	case r.AuthUserDelete != nil:
		resp, err = n.userDelete(r.AuthUserDelete)
	case r.AuthUserChangePassword != nil:
		resp, err = n.userChangePassword(r.AuthUserChangePassword)
	case r.AuthUserGrantRole != nil:
		resp, err = n.userGrantRole(r.AuthUserGrantRole)
	case r.AuthUserRevokeRole != nil:
		resp, err = n.userRevokeRole(r.AuthUserRevokeRole)
	case r.AuthRoleAdd != nil:
		resp, err = n.roleAdd(r.AuthRoleAdd)
	case r.AuthRoleDelete != nil:
		resp, err = n.roleDelete(r.AuthRoleDelete)
	case r.AuthRoleGrantPermission != nil:
		resp, err = n.roleGrantPermission(r.AuthRoleGrantPermission)
	case r.AuthRoleRevokePermission != nil:
		resp, err = n.roleRevokePermission(r.AuthRoleRevokePermission)
	default:
		return nil, nil, ErrInvalidAuthMgmt
	}
	if err != nil {
		return nil, nil, err
	}
	// Write every user and role that differs from st (few: auth state is small).
	changed := false
	for name, u := range n.users {
		if st.users[name] != u {
			changed = true
			if err := putMsg(b, storage.AuthUserKey(name), u); err != nil {
				return nil, nil, err
			}
		}
	}
	for name := range st.users {
		if n.users[name] == nil {
			changed = true
			if err := b.Delete(storage.AuthUserKey(name)); err != nil {
				return nil, nil, err
			}
		}
	}
	for name, ro := range n.roles {
		if st.roles[name] != ro {
			changed = true
			if err := putMsg(b, storage.AuthRoleKey(name), ro); err != nil {
				return nil, nil, err
			}
		}
	}
	for name := range st.roles {
		if n.roles[name] == nil {
			changed = true
			if err := b.Delete(storage.AuthRoleKey(name)); err != nil {
				return nil, nil, err
			}
		}
	}
	if !changed && r.AuthDisable == nil {
		return st, resp, nil
	}
	return n.finish(b, resp, true)
}

func (n *State) finish(b storage.Batch, resp proto.Message, bump bool) (*State, proto.Message, error) {
	if bump {
		n.revision++
		if err := b.Set(storage.AuthRevisionKey, binary.BigEndian.AppendUint64(nil, n.revision)); err != nil {
			return nil, nil, err
		}
	}
	n.refreshPerms()
	return n, resp, nil
}

func putMsg(b storage.Batch, key []byte, m proto.Message) error {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return b.Set(key, v)
}

func (n *State) userAdd(r *pb.AuthUserAddRequest) (proto.Message, error) {
	if r.Name == "" {
		return nil, ErrUserEmpty
	}
	if n.users[r.Name] != nil {
		return nil, ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	u := &authpb.User{Name: []byte(r.Name), Options: opts}
	if !opts.NoPassword {
		pw, err := hashedPassword(r.Password, r.HashedPassword)
		if err != nil {
			return nil, err
		}
		u.Password = pw
	}
	n.users[r.Name] = u
	return &pb.AuthUserAddResponse{}, nil
}

// hashedPassword is the bcrypt hash a request carries (base64, as etcd proposes it).
// A plain password alone cannot be applied here (hashing is random): the proposing
// server hashes it first, so such a request is refused.
func hashedPassword(password, hashed string) ([]byte, error) {
	if hashed == "" && password != "" {
		return nil, ErrNoPasswordUser
	}
	pw, err := base64.StdEncoding.DecodeString(hashed)
	if err != nil {
		return nil, ErrNoPasswordUser
	}
	return pw, nil
}

func (n *State) userDelete(r *pb.AuthUserDeleteRequest) (proto.Message, error) {
	if n.enabled && r.Name == RootUser {
		return nil, ErrInvalidAuthMgmt
	}
	if n.users[r.Name] == nil {
		return nil, ErrUserNotFound
	}
	delete(n.users, r.Name)
	return &pb.AuthUserDeleteResponse{}, nil
}

func (n *State) userChangePassword(r *pb.AuthUserChangePasswordRequest) (proto.Message, error) {
	u := n.users[r.Name]
	if u == nil {
		return nil, ErrUserNotFound
	}
	nu := &authpb.User{Name: u.Name, Roles: u.Roles, Options: u.Options}
	if u.Options == nil || !u.Options.NoPassword {
		pw, err := hashedPassword(r.Password, r.HashedPassword)
		if err != nil {
			return nil, err
		}
		nu.Password = pw
	}
	n.users[r.Name] = nu
	return &pb.AuthUserChangePasswordResponse{}, nil
}

func (n *State) userGrantRole(r *pb.AuthUserGrantRoleRequest) (proto.Message, error) {
	u := n.users[r.User]
	if u == nil {
		return nil, ErrUserNotFound
	}
	if r.Role != RootRole && n.roles[r.Role] == nil {
		return nil, ErrRoleNotFound
	}
	i := sort.SearchStrings(u.Roles, r.Role)
	if i < len(u.Roles) && u.Roles[i] == r.Role {
		return &pb.AuthUserGrantRoleResponse{}, nil // as etcd: OK, nothing written, same revision
	}
	roles := append(append(append([]string{}, u.Roles[:i]...), r.Role), u.Roles[i:]...)
	n.users[r.User] = &authpb.User{Name: u.Name, Password: u.Password, Options: u.Options, Roles: roles}
	return &pb.AuthUserGrantRoleResponse{}, nil
}

func (n *State) userRevokeRole(r *pb.AuthUserRevokeRoleRequest) (proto.Message, error) {
	if n.enabled && r.Name == RootUser && r.Role == RootRole {
		return nil, ErrInvalidAuthMgmt
	}
	u := n.users[r.Name]
	if u == nil {
		return nil, ErrUserNotFound
	}
	var roles []string
	for _, ro := range u.Roles {
		if ro != r.Role {
			roles = append(roles, ro)
		}
	}
	if len(roles) == len(u.Roles) {
		return nil, ErrRoleNotGranted
	}
	n.users[r.Name] = &authpb.User{Name: u.Name, Password: u.Password, Options: u.Options, Roles: roles}
	return &pb.AuthUserRevokeRoleResponse{}, nil
}

func (n *State) roleAdd(r *pb.AuthRoleAddRequest) (proto.Message, error) {
	if r.Name == "" {
		return nil, ErrRoleEmpty
	}
	if n.roles[r.Name] != nil {
		return nil, ErrRoleAlreadyExist
	}
	n.roles[r.Name] = &authpb.Role{Name: []byte(r.Name)}
	return &pb.AuthRoleAddResponse{}, nil
}

func (n *State) roleDelete(r *pb.AuthRoleDeleteRequest) (proto.Message, error) {
	if n.enabled && r.Role == RootRole {
		return nil, ErrInvalidAuthMgmt
	}
	if n.roles[r.Role] == nil {
		return nil, ErrRoleNotFound
	}
	delete(n.roles, r.Role)
	for name, u := range n.users {
		var roles []string
		for _, ro := range u.Roles {
			if ro != r.Role {
				roles = append(roles, ro)
			}
		}
		if len(roles) != len(u.Roles) {
			n.users[name] = &authpb.User{Name: u.Name, Password: u.Password, Options: u.Options, Roles: roles}
		}
	}
	return &pb.AuthRoleDeleteResponse{}, nil
}

func (n *State) roleGrantPermission(r *pb.AuthRoleGrantPermissionRequest) (proto.Message, error) {
	if r.Perm == nil {
		return nil, ErrPermissionNotGiven
	}
	if !ValidPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return nil, ErrInvalidAuthMgmt
	}
	ro := n.roles[r.Name]
	if ro == nil {
		return nil, ErrRoleNotFound
	}
	perms := make([]*authpb.Permission, 0, len(ro.KeyPermission)+1)
	replaced := false
	for _, p := range ro.KeyPermission {
		if bytes.Equal(p.Key, r.Perm.Key) && bytes.Equal(p.RangeEnd, r.Perm.RangeEnd) {
			p = &authpb.Permission{Key: p.Key, RangeEnd: p.RangeEnd, PermType: r.Perm.PermType}
			replaced = true
		}
		perms = append(perms, p)
	}
	if !replaced {
		perms = append(perms, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
		sort.SliceStable(perms, func(i, j int) bool { return bytes.Compare(perms[i].Key, perms[j].Key) < 0 })
	}
	n.roles[r.Name] = &authpb.Role{Name: ro.Name, KeyPermission: perms}
	return &pb.AuthRoleGrantPermissionResponse{}, nil
}

func (n *State) roleRevokePermission(r *pb.AuthRoleRevokePermissionRequest) (proto.Message, error) {
	ro := n.roles[r.Role]
	if ro == nil {
		return nil, ErrRoleNotFound
	}
	var perms []*authpb.Permission
	for _, p := range ro.KeyPermission {
		if !bytes.Equal(p.Key, r.Key) || !bytes.Equal(p.RangeEnd, r.RangeEnd) {
			perms = append(perms, p)
		}
	}
	if len(perms) == len(ro.KeyPermission) {
		return nil, ErrPermissionNotGranted
	}
	n.roles[r.Role] = &authpb.Role{Name: ro.Name, KeyPermission: perms}
	return &pb.AuthRoleRevokePermissionResponse{}, nil
}
