package grpcapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/internal/server"
)

// AuthBackend is implemented by a Backend that serves etcd's Auth service; without it
// the service answers Unimplemented.
type AuthBackend interface {
	AuthEnable(context.Context, *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error)
	AuthDisable(context.Context, *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error)
	AuthStatus(context.Context, *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error)
	Authenticate(context.Context, *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error)
	UserAdd(context.Context, *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error)
	UserGet(context.Context, *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error)
	UserList(context.Context, *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error)
	UserDelete(context.Context, *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error)
	UserChangePassword(context.Context, *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error)
	UserGrantRole(context.Context, *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error)
	UserRevokeRole(context.Context, *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error)
	RoleAdd(context.Context, *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error)
	RoleGet(context.Context, *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error)
	RoleList(context.Context, *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error)
	RoleDelete(context.Context, *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error)
	RoleGrantPermission(context.Context, *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error)
	RoleRevokePermission(context.Context, *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error)
}

func init() {
	errorMapping = append(errorMapping, []struct{ sentinel, grpc error }{
		{server.ErrAuthRootUserNotExist, rpctypes.ErrGRPCRootUserNotExist},
		{server.ErrAuthRootRoleNotExist, rpctypes.ErrGRPCRootRoleNotExist},
		{server.ErrAuthUserAlreadyExist, rpctypes.ErrGRPCUserAlreadyExist},
		{server.ErrAuthUserEmpty, rpctypes.ErrGRPCUserEmpty},
		{server.ErrAuthUserNotFound, rpctypes.ErrGRPCUserNotFound},
		{server.ErrAuthRoleAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist},
		{server.ErrAuthRoleNotFound, rpctypes.ErrGRPCRoleNotFound},
		{server.ErrAuthRoleEmpty, rpctypes.ErrGRPCRoleEmpty},
		{server.ErrAuthFailed, rpctypes.ErrGRPCAuthFailed},
		{server.ErrAuthPermissionNotGiven, rpctypes.ErrGRPCPermissionNotGiven},
		{server.ErrAuthPermissionDenied, rpctypes.ErrGRPCPermissionDenied},
		{server.ErrAuthRoleNotGranted, rpctypes.ErrGRPCRoleNotGranted},
		{server.ErrAuthPermissionNotGranted, rpctypes.ErrGRPCPermissionNotGranted},
		{server.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
		{server.ErrAuthInvalidToken, rpctypes.ErrGRPCInvalidAuthToken},
		{server.ErrAuthInvalidMgmt, rpctypes.ErrGRPCInvalidAuthMgmt},
		{server.ErrAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},
		// ErrAuthNoPasswordUser has no rpctypes error: etcd sends it as codes.Unknown.
	}...)
}

// authServer is etcd's Auth service over an AuthBackend.
type authServer struct {
	pb.UnimplementedAuthServer
	b   AuthBackend
	hdr header
}

func newAuthServer(b Backend, hdr header) pb.AuthServer {
	ab, ok := b.(AuthBackend)
	if !ok {
		return pb.UnimplementedAuthServer{}
	}
	return &authServer{b: ab, hdr: hdr}
}

// call runs one Auth RPC: the backend's answer with its header filled, or etcd's error.
func call[Req any, Resp interface{ GetHeader() *pb.ResponseHeader }](a *authServer, ctx context.Context, r Req,
	f func(context.Context, Req) (Resp, error), set func(Resp, *pb.ResponseHeader)) (Resp, error) {
	resp, err := f(ctx, r)
	if err != nil {
		var zero Resp
		return zero, toGRPCError(err)
	}
	h := resp.GetHeader()
	if h == nil {
		h = &pb.ResponseHeader{}
		set(resp, h)
	}
	a.hdr.fill(h)
	return resp, nil
}

func (a *authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return call(a, ctx, r, a.b.AuthEnable, func(x *pb.AuthEnableResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return call(a, ctx, r, a.b.AuthDisable, func(x *pb.AuthDisableResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return call(a, ctx, r, a.b.AuthStatus, func(x *pb.AuthStatusResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return call(a, ctx, r, a.b.Authenticate, func(x *pb.AuthenticateResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	return call(a, ctx, r, a.b.UserAdd, func(x *pb.AuthUserAddResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return call(a, ctx, r, a.b.UserGet, func(x *pb.AuthUserGetResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return call(a, ctx, r, a.b.UserList, func(x *pb.AuthUserListResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return call(a, ctx, r, a.b.UserDelete, func(x *pb.AuthUserDeleteResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	return call(a, ctx, r, a.b.UserChangePassword, func(x *pb.AuthUserChangePasswordResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return call(a, ctx, r, a.b.UserGrantRole, func(x *pb.AuthUserGrantRoleResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return call(a, ctx, r, a.b.UserRevokeRole, func(x *pb.AuthUserRevokeRoleResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return call(a, ctx, r, a.b.RoleAdd, func(x *pb.AuthRoleAddResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return call(a, ctx, r, a.b.RoleGet, func(x *pb.AuthRoleGetResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return call(a, ctx, r, a.b.RoleList, func(x *pb.AuthRoleListResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return call(a, ctx, r, a.b.RoleDelete, func(x *pb.AuthRoleDeleteResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return call(a, ctx, r, a.b.RoleGrantPermission, func(x *pb.AuthRoleGrantPermissionResponse, h *pb.ResponseHeader) { x.Header = h })
}
func (a *authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return call(a, ctx, r, a.b.RoleRevokePermission, func(x *pb.AuthRoleRevokePermissionResponse, h *pb.ResponseHeader) { x.Header = h })
}
