package grpcapi

import (
	"context"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/server"
)

// defaultQuotaBytes is what etcd reports as dbSizeQuota when no quota is configured
// (etcd's storage.DefaultQuotaBytes, 2 GiB).
const defaultQuotaBytes = int64(2 * 1024 * 1024 * 1024)

// storageVersion is the storage version etcd v3.7 reports (Status, /version).
const storageVersion = "3.7.0"

// maintenanceServer is the Maintenance service.
//
//   - Status, Alarm, HashKV: the backend answers; the header is filled here. Status also
//     adds, as etcd's gRPC layer does, "etcdserver: no leader" to Errors when Leader is 0;
//     and when the backend leaves them empty: dbSizeQuota (etcd's default 2 GiB),
//     storageVersion ("3.7.0") and an empty DowngradeInfo.
//   - Defragment asks the backend to rewrite its storage (a full engine compaction, which
//     does not block reads or writes) when it implements Defragmenter; else it succeeds
//     and does nothing.
//   - Hash (deprecated in etcd): the backend answers if it is a Hasher, else
//     codes.Unimplemented.
//   - MoveLeader, Downgrade: the backend answers if it implements LeaderMover /
//     Downgrader, else codes.Unimplemented.
//   - Snapshot: maintenance_snapshot.go.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	b   Backend
	hdr header
	lg  *zap.Logger
}

func (s *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := s.b.Status(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	if resp.Leader == 0 && !slices.Contains(resp.Errors, server.ErrNoLeader.Error()) {
		resp.Errors = append([]string{server.ErrNoLeader.Error()}, resp.Errors...)
	}
	if resp.DbSizeQuota == 0 {
		resp.DbSizeQuota = defaultQuotaBytes
	}
	if resp.StorageVersion == "" {
		resp.StorageVersion = storageVersion
	}
	if resp.DowngradeInfo == nil {
		resp.DowngradeInfo = &pb.DowngradeInfo{}
	}
	return resp, nil
}

func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := s.b.Alarm(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	resp, err := s.b.HashKV(ctx, r.GetRevision())
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

// Hasher is implemented by a backend that answers etcd's deprecated whole-store Hash.
type Hasher interface {
	Hash(ctx context.Context) (*pb.HashResponse, error)
}

// Hash answers codes.Unimplemented unless the backend is a Hasher.
func (s *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	h, ok := s.b.(Hasher)
	if !ok {
		return s.UnimplementedMaintenanceServer.Hash(ctx, nil)
	}
	resp, err := h.Hash(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

// Defragmenter is implemented by a backend that can give space back on request.
type Defragmenter interface {
	Defragment(ctx context.Context) error
}

func (s *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if d, ok := s.b.(Defragmenter); ok {
		if err := d.Defragment(ctx); err != nil {
			return nil, toGRPCError(err)
		}
	}
	return &pb.DefragmentResponse{Header: s.hdr.fill(nil)}, nil
}

// LeaderMover is implemented by a backend that transfers leadership (etcd's
// MoveLeader: ErrNotLeader on a follower, ErrBadLeaderTransferee for a target that is
// not a voting member, ErrTimeoutLeaderTransfer).
type LeaderMover interface {
	MoveLeader(ctx context.Context, target uint64) error
}

func (s *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	lm, ok := s.b.(LeaderMover)
	if !ok {
		return s.UnimplementedMaintenanceServer.MoveLeader(ctx, r)
	}
	if err := lm.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MoveLeaderResponse{Header: s.hdr.fill(nil)}, nil
}

// Downgrader is implemented by a backend that answers Downgrade.
type Downgrader interface {
	Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error)
}

func (s *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	d, ok := s.b.(Downgrader)
	if !ok {
		return s.UnimplementedMaintenanceServer.Downgrade(ctx, r)
	}
	resp, err := d.Downgrade(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}
