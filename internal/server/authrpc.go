package server

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/auth"
)

// The Auth service's methods. Changes go through Raft (apply checks the caller is
// root); reads of the auth state are served after a ReadIndex round from the applied
// state, with etcd's checks (root, or the user itself for UserGet, a holder of the
// role for RoleGet).

func proposeAuth[T proto.Message](s *Server, ctx context.Context, r *pb.InternalRaftRequest) (_ T, err error) {
	defer translate(&err)
	resp, err := s.proposeFor(ctx, r)
	if err != nil {
		var zero T
		return zero, err
	}
	return asResp[T](resp)
}

func (s *Server) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return proposeAuth[*pb.AuthEnableResponse](s, ctx, &pb.InternalRaftRequest{AuthEnable: r})
}

func (s *Server) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return proposeAuth[*pb.AuthDisableResponse](s, ctx, &pb.InternalRaftRequest{AuthDisable: r})
}

func (s *Server) AuthStatus(ctx context.Context, _ *pb.AuthStatusRequest) (_ *pb.AuthStatusResponse, err error) {
	defer translate(&err)
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	st := s.app.Auth()
	return &pb.AuthStatusResponse{Enabled: st.Enabled(), AuthRevision: st.Revision()}, nil
}

func (s *Server) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.hashPassword(r.Password, r.HashedPassword)
		if err != nil {
			return nil, err
		}
		r = &pb.AuthUserAddRequest{Name: r.Name, HashedPassword: h, Options: r.Options}
	}
	return proposeAuth[*pb.AuthUserAddResponse](s, ctx, &pb.InternalRaftRequest{AuthUserAdd: r})
}

func (s *Server) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	h, err := s.hashPassword(r.Password, r.HashedPassword)
	if err != nil {
		return nil, err
	}
	r = &pb.AuthUserChangePasswordRequest{Name: r.Name, HashedPassword: h}
	return proposeAuth[*pb.AuthUserChangePasswordResponse](s, ctx, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

func (s *Server) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return proposeAuth[*pb.AuthUserDeleteResponse](s, ctx, &pb.InternalRaftRequest{AuthUserDelete: r})
}

func (s *Server) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return proposeAuth[*pb.AuthUserGrantRoleResponse](s, ctx, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

func (s *Server) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return proposeAuth[*pb.AuthUserRevokeRoleResponse](s, ctx, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

func (s *Server) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return proposeAuth[*pb.AuthRoleAddResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

func (s *Server) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return proposeAuth[*pb.AuthRoleDeleteResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

func (s *Server) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return proposeAuth[*pb.AuthRoleGrantPermissionResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

func (s *Server) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return proposeAuth[*pb.AuthRoleRevokePermissionResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

// readAuth waits for a ReadIndex round and returns the auth state with the caller.
func (s *Server) readAuth(ctx context.Context) (*auth.State, auth.Info, error) {
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, auth.Info{}, err
	}
	ai, _, err := s.authInfo(ctx)
	return s.app.Auth(), ai, err
}

func (s *Server) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (_ *pb.AuthUserGetResponse, err error) {
	defer translate(&err)
	st, ai, err := s.readAuth(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.IsAdmin(ai.Username); err != nil && r.Name != ai.Username {
		return nil, err
	}
	u := st.User(r.Name)
	if u == nil {
		return nil, auth.ErrUserNotFound
	}
	return &pb.AuthUserGetResponse{Roles: append([]string(nil), u.Roles...)}, nil
}

func (s *Server) UserList(ctx context.Context, _ *pb.AuthUserListRequest) (_ *pb.AuthUserListResponse, err error) {
	defer translate(&err)
	st, ai, err := s.readAuth(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.IsAdmin(ai.Username); err != nil {
		return nil, err
	}
	return &pb.AuthUserListResponse{Users: st.UserNames()}, nil
}

// rootPerm is what RoleGet answers for the root role, as etcd.
var rootPerm = &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}

func (s *Server) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (_ *pb.AuthRoleGetResponse, err error) {
	defer translate(&err)
	st, ai, err := s.readAuth(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.IsAdmin(ai.Username); err != nil && !st.HasRole(ai.Username, r.Role) {
		return nil, err
	}
	ro := st.Role(r.Role)
	if ro == nil {
		return nil, auth.ErrRoleNotFound
	}
	if r.Role == auth.RootRole {
		return &pb.AuthRoleGetResponse{Perm: []*authpb.Permission{rootPerm}}, nil
	}
	return &pb.AuthRoleGetResponse{Perm: ro.KeyPermission}, nil
}

func (s *Server) RoleList(ctx context.Context, _ *pb.AuthRoleListRequest) (_ *pb.AuthRoleListResponse, err error) {
	defer translate(&err)
	st, ai, err := s.readAuth(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.IsAdmin(ai.Username); err != nil {
		return nil, err
	}
	return &pb.AuthRoleListResponse{Roles: st.RoleNames()}, nil
}

// Authenticate checks a password (at most a few bcrypt comparisons at once: the others
// wait, bounded by their context) and issues a token.
func (s *Server) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (_ *pb.AuthenticateResponse, err error) {
	defer translate(&err)
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	st := s.app.Auth()
	if !st.Enabled() {
		return nil, auth.ErrAuthNotEnabled
	}
	u := st.User(r.Name)
	if u == nil {
		return nil, auth.ErrAuthFailed
	}
	if u.Options != nil && u.Options.NoPassword {
		return nil, auth.ErrNoPasswordUser
	}
	a := s.authz()
	select {
	case a.bcryptSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cmp := bcrypt.CompareHashAndPassword(u.Password, []byte(r.Password))
	<-a.bcryptSem
	if cmp != nil {
		return nil, auth.ErrAuthFailed
	}
	tok, err := a.tokens.assign(r.Name, st.Revision(), u)
	if err != nil {
		return nil, fmt.Errorf("auth: issuing a token: %w", err)
	}
	// Through Raft, as etcd: every member learns a simple token (applyAuthenticate),
	// and the user must still exist when it is applied. The caller's own token, if
	// any, plays no part.
	req := &pb.InternalAuthenticateRequest{Name: r.Name}
	if a.tokens.simple() {
		req.SimpleToken = tok
	}
	if _, err := s.proposeFor(WithCredentials(ctx, Credentials{}), &pb.InternalRaftRequest{Authenticate: req}); err != nil {
		return nil, err
	}
	return &pb.AuthenticateResponse{Token: tok}, nil
}
