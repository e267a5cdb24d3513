package grpcapi

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/metastore/metastore/internal/server"
)

// AuthChecker is implemented by a Backend that enforces etcd's auth. The guard
// interceptors attach every request's credentials (server.WithCredentials) and, before
// the handler runs, make the checks etcd makes outside its state machine: read
// permission of ranges and read-only txns (served without a proposal), root for
// maintenance, membership calls and Compact, any user for Status, MemberList, Alarm GET and the
// lease calls, read on every key of a LeaseTimeToLive with keys and of LeaseLeases. Writes are checked again where they are applied,
// with the auth revision the proposal carries.
type AuthChecker interface {
	CheckRange(ctx context.Context, key, rangeEnd []byte) error
	CheckTxn(ctx context.Context, r *pb.TxnRequest) error
	CheckAdmin(ctx context.Context) error
	RequireUser(ctx context.Context) error
	// CheckLeaseKeys: root, or read on every key of lease id (of every lease for 0).
	CheckLeaseKeys(ctx context.Context, id int64) error
	// AuthRevision is the applied auth revision, 0 while auth is disabled.
	AuthRevision() uint64
}

// credentialsOf reads a request's token (metadata "token", or "authorization" with an
// optional "Bearer " prefix, as etcd) and its verified client certificate's CN.
func credentialsOf(ctx context.Context) server.Credentials {
	var c server.Credentials
	// ValueFromIncomingContext copies one key's values, not the whole map: this runs
	// for every request.
	if ts := metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameGRPC); len(ts) > 0 {
		c.Token = ts[0]
	} else if ts := metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameSwagger); len(ts) > 0 {
		c.Token = strings.TrimPrefix(ts[0], "Bearer ")
	}
	c.Gateway = len(metadata.ValueFromIncomingContext(ctx, "grpcgateway-accept")) > 0
	if p, ok := peer.FromContext(ctx); ok && p.AuthInfo != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			for _, chain := range ti.State.VerifiedChains {
				if len(chain) > 0 {
					c.CommonName = chain[0].Subject.CommonName
					break
				}
			}
		}
	}
	return c
}

// checkUnary is the check of one unary request before its handler.
func checkUnary(ac AuthChecker, ctx context.Context, req any) error {
	switch r := req.(type) {
	case *pb.RangeRequest:
		return ac.CheckRange(ctx, r.Key, r.RangeEnd)
	case *pb.TxnRequest:
		return ac.CheckTxn(ctx, r)
	case *pb.CompactionRequest, *pb.DefragmentRequest, *pb.HashRequest, *pb.HashKVRequest, *pb.MoveLeaderRequest, *pb.DowngradeRequest,
		*pb.MemberAddRequest, *pb.MemberRemoveRequest, *pb.MemberUpdateRequest, *pb.MemberPromoteRequest:
		return ac.CheckAdmin(ctx)
	case *pb.AlarmRequest:
		if r.Action == pb.AlarmRequest_GET {
			return ac.RequireUser(ctx)
		}
		return ac.CheckAdmin(ctx)
	case *pb.StatusRequest, *pb.MemberListRequest:
		return ac.RequireUser(ctx)
	case *pb.LeaseGrantRequest, *pb.LeaseRevokeRequest:
		return ac.RequireUser(ctx) // LeaseRevoke's keys are checked at apply
	case *pb.LeaseTimeToLiveRequest:
		if err := ac.RequireUser(ctx); err != nil || !r.Keys {
			return err
		}
		return ac.CheckLeaseKeys(ctx, r.ID)
	case *pb.LeaseLeasesRequest:
		if err := ac.RequireUser(ctx); err != nil {
			return err
		}
		return ac.CheckLeaseKeys(ctx, 0)
	}
	return nil
}

func authUnary(ac AuthChecker, failures prometheus.Counter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx = server.WithCredentials(ctx, credentialsOf(ctx))
		var rev uint64
		if ac != nil {
			rev = ac.AuthRevision()
			if err := checkUnary(ac, ctx, req); err != nil {
				failures.Inc()
				return nil, toGRPCError(err)
			}
		}
		resp, err := handler(ctx, req)
		// A read served without a proposal, while the auth state changed since its
		// check, is refused as etcd's doSerialize refuses it: the client logs in again
		// and retries. (Writes are checked at apply instead.)
		if err == nil && rev != 0 && isLocalRead(req) && ac.AuthRevision() != rev {
			failures.Inc()
			return nil, toGRPCError(server.ErrAuthOldRevision)
		}
		if err != nil && isAuthError(err) {
			failures.Inc()
		}
		return resp, err
	}
}

// credStream is a ServerStream whose context carries the credentials.
type credStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s credStream) Context() context.Context { return s.ctx }

func authStream(ac AuthChecker, failures prometheus.Counter) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := server.WithCredentials(ss.Context(), credentialsOf(ss.Context()))
		if ac != nil && info.FullMethod == "/etcdserverpb.Maintenance/Snapshot" {
			if err := ac.CheckAdmin(ctx); err != nil {
				failures.Inc()
				return toGRPCError(err)
			}
		}
		return handler(srv, credStream{ServerStream: ss, ctx: ctx})
	}
}

// watchDenied answers a watch create request the caller may not read, as etcd:
// created and canceled with "permission denied"; nil when it may.
func (sws *serverWatchStream) watchDenied(creq *pb.WatchCreateRequest) *pb.WatchResponse {
	ac, ok := sws.srv.b.(AuthChecker)
	if !ok {
		return nil
	}
	if err := ac.CheckRange(sws.grpc.Context(), creq.Key, creq.RangeEnd); err != nil {
		return &pb.WatchResponse{Header: sws.header(sws.ws.Rev()), WatchId: invalidWatchID, Created: true, Canceled: true,
			CancelReason: rpctypes.ErrGRPCPermissionDenied.Error()}
	}
	return nil
}

// isAuthError reports whether a handler's gRPC error is one of auth's refusals.
func isAuthError(err error) bool {
	switch rpctypes.ErrorDesc(err) {
	case rpctypes.ErrGRPCPermissionDenied.Error(), rpctypes.ErrGRPCInvalidAuthToken.Error(),
		rpctypes.ErrGRPCAuthFailed.Error(), rpctypes.ErrGRPCUserEmpty.Error(), rpctypes.ErrGRPCAuthOldRevision.Error():
		return true
	}
	return false
}

func newAuthFailures(reg prometheus.Registerer, lgOwner *Options) prometheus.Counter {
	return register(reg, lgOwner.Logger, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metastore_auth_failures_total",
		Help: "Requests refused by auth: bad password or token, no user, permission denied, old auth revision.",
	}))
}

// RenewChecker is implemented by a Backend that checks keep-alives as etcd's
// checkLeaseRenew: a user, and root or write permission on every key of the lease.
type RenewChecker interface {
	CheckLeaseRenew(ctx context.Context, id int64) error
}

func checkRenew(b any, ctx context.Context, id int64) error {
	if rc, ok := b.(RenewChecker); ok {
		return rc.CheckLeaseRenew(ctx, id)
	}
	return nil
}

// isLocalRead reports whether req is served from the local state: a range, or a txn
// without a put or a delete.
func isLocalRead(req any) bool {
	switch r := req.(type) {
	case *pb.RangeRequest:
		return true
	case *pb.TxnRequest:
		return txnReadOnly(r)
	}
	return false
}

func txnReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil, op.GetRequestDeleteRange() != nil:
				return false
			case op.GetRequestTxn() != nil && !txnReadOnly(op.GetRequestTxn()):
				return false
			}
		}
	}
	return true
}
