package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/server"
	"github.com/metastore/metastore/internal/storage"
)

// etcdStatus is the code and message etcd v3.7.3 sends for a server-side error
// (etcd's v3rpc/util.go table over the rpctypes values), written out so that a change
// in our mapping or in rpctypes shows up here.
type etcdStatus struct {
	code codes.Code
	msg  string
}

func TestToGRPCErrorMatchesEtcd(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want etcdStatus
	}{
		{server.ErrCompacted, etcdStatus{codes.OutOfRange, "etcdserver: mvcc: required revision has been compacted"}},
		{server.ErrFutureRev, etcdStatus{codes.OutOfRange, "etcdserver: mvcc: required revision is a future revision"}},
		{server.ErrNoSpace, etcdStatus{codes.ResourceExhausted, "etcdserver: mvcc: database space exceeded"}},
		{server.ErrLeaseNotFound, etcdStatus{codes.NotFound, "etcdserver: requested lease not found"}},
		{server.ErrLeaseExists, etcdStatus{codes.FailedPrecondition, "etcdserver: lease already exists"}},
		{server.ErrLeaseTTLTooLarge, etcdStatus{codes.OutOfRange, "etcdserver: too large lease TTL"}},
		{server.ErrTooManyOps, etcdStatus{codes.InvalidArgument, "etcdserver: too many operations in txn request"}},
		{server.ErrDuplicateKey, etcdStatus{codes.InvalidArgument, "etcdserver: duplicate key given in txn request"}},
		{server.ErrEmptyKey, etcdStatus{codes.InvalidArgument, "etcdserver: key is not provided"}},
		{server.ErrKeyNotFound, etcdStatus{codes.InvalidArgument, "etcdserver: key not found"}},
		{server.ErrRequestTooLarge, etcdStatus{codes.InvalidArgument, "etcdserver: request is too large"}},
		{server.ErrTooManyRequests, etcdStatus{codes.ResourceExhausted, "etcdserver: too many requests"}},
		{server.ErrNoLeader, etcdStatus{codes.Unavailable, "etcdserver: no leader"}},
		{server.ErrNotLeader, etcdStatus{codes.FailedPrecondition, "etcdserver: not leader"}},
		{server.ErrLeaderChanged, etcdStatus{codes.Unavailable, "etcdserver: leader changed"}},
		{server.ErrCanceled, etcdStatus{codes.Canceled, "etcdserver: request canceled"}},
		{server.ErrStopped, etcdStatus{codes.Unavailable, "etcdserver: server stopped"}},
		{server.ErrTimeout, etcdStatus{codes.Unavailable, "etcdserver: request timed out"}},
		{server.ErrTimeoutDueToLeaderFail, etcdStatus{codes.Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"}},
		{server.ErrTimeoutDueToConnectionLost, etcdStatus{codes.Unavailable, "etcdserver: request timed out, possibly due to connection lost"}},
		{server.ErrTimeoutWaitAppliedIndex, etcdStatus{codes.Unavailable, "etcdserver: request timed out, waiting for the applied index took too long"}},
		{server.ErrUnhealthy, etcdStatus{codes.Unavailable, "etcdserver: unhealthy cluster"}},
		{server.ErrCorrupt, etcdStatus{codes.DataLoss, "etcdserver: corrupt cluster"}},
		{server.ErrUnimplemented, etcdStatus{codes.Unimplemented, server.ErrUnimplemented.Error()}},
		// etcd hands context errors to grpc-go, which sends them as these statuses.
		{context.Canceled, etcdStatus{codes.Canceled, "context canceled"}},
		{context.DeadlineExceeded, etcdStatus{codes.DeadlineExceeded, "context deadline exceeded"}},
	} {
		for _, err := range []error{tc.err, fmt.Errorf("while applying entry 7: %w", tc.err)} {
			s, ok := status.FromError(toGRPCError(err))
			if !ok {
				t.Fatalf("%v: not a status error", err)
			}
			if s.Code() != tc.want.code {
				t.Errorf("%v: code %v, want %v", err, s.Code(), tc.want.code)
			}
			if err == tc.err && s.Message() != tc.want.msg {
				t.Errorf("%v: message %q, want %q", err, s.Message(), tc.want.msg)
			}
		}
	}
}

// Every mapped error must decode on the client into the rpctypes error of the same
// message: that is what clientv3 users compare against. Three statuses are not in the
// client's decoding table in etcd either, and reach users as plain status errors.
func TestMappedErrorsDecodeOnTheClient(t *testing.T) {
	notDecoded := map[error]bool{rpctypes.ErrGRPCCanceled: true, rpctypes.ErrGRPCTimeoutWaitAppliedIndex: true,
		rpctypes.ErrGRPCPermissionNotGiven: true} // missing from etcd's client table too
	for _, m := range errorMapping {
		if m.sentinel == server.ErrUnimplemented {
			continue // not an etcd error
		}
		got := rpctypes.Error(toGRPCError(m.sentinel))
		if _, isEtcd := got.(rpctypes.EtcdError); !isEtcd && !notDecoded[m.grpc] {
			t.Errorf("%v: client sees %T %v, want an rpctypes.EtcdError", m.sentinel, got, got)
		}
	}
	if got := rpctypes.Error(toGRPCError(server.ErrCompacted)); !errors.Is(got, rpctypes.ErrCompacted) {
		t.Errorf("compacted: client sees %v", got)
	}
}

// The whole chain a client relies on: an error of a layer below server, wrapped as
// those layers wrap it, goes through server's translation (what every Server method
// does before returning) and reaches the client with etcd's code and message.
func TestLowerLayerErrorsReachTheClientAsEtcdSends(t *testing.T) {
	for _, tc := range []struct {
		lower error
		want  error // the status etcd sends
	}{
		{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
		{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
		{mvcc.ErrClosed, rpctypes.ErrGRPCStopped},
		{apply.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
		{apply.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
		{apply.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
		{apply.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
		{apply.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
		{apply.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
		{apply.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
		{apply.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
		{apply.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
		{apply.ErrNotCapable, rpctypes.ErrGRPCNotCapable},
		{apply.ErrUnsupported, status.Error(codes.Unimplemented, server.ErrUnimplemented.Error())},
		{raftnode.ErrStopped, rpctypes.ErrGRPCStopped},
		{storage.ErrClosed, rpctypes.ErrGRPCStopped},
	} {
		want := status.Convert(tc.want)
		for _, err := range []error{tc.lower, fmt.Errorf("range at 3: %w", tc.lower)} {
			got := status.Convert(toGRPCError(server.TranslateError(err)))
			if got.Code() != want.Code() || got.Message() != want.Message() {
				t.Errorf("%v: client gets %v %q, want %v %q", err, got.Code(), got.Message(), want.Code(), want.Message())
			}
		}
		// Untranslated, a lower error is not recognised: the translation is what makes it.
		if got := status.Code(toGRPCError(tc.lower)); got != codes.Unknown {
			t.Errorf("%v without translation: %v, want Unknown", tc.lower, got)
		}
	}
}

func TestToGRPCErrorOthers(t *testing.T) {
	if toGRPCError(nil) != nil {
		t.Error("nil must map to nil")
	}
	s := status.Convert(toGRPCError(errors.New("disk on fire")))
	if s.Code() != codes.Unknown || s.Message() != "disk on fire" {
		t.Errorf("unknown error: %v", s)
	}
	unimpl := status.Error(codes.Unimplemented, "hashkv: not yet")
	if got := toGRPCError(unimpl); status.Code(got) != codes.Unimplemented || status.Convert(got).Message() != "hashkv: not yet" {
		t.Errorf("status error must pass through, got %v", got)
	}
}
