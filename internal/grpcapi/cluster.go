package grpcapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MemberChanger is optionally implemented by a Backend: the Cluster service's changes.
// Each returns the member list after the change; MemberAdd also the member added (its
// ID derived as etcd derives it). Without it they answer codes.Unimplemented.
type MemberChanger interface {
	MemberAdd(ctx context.Context, peerURLs []string, isLearner bool) (*pb.Member, []*pb.Member, error)
	MemberRemove(ctx context.Context, id uint64) ([]*pb.Member, error)
	MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]*pb.Member, error)
	MemberPromote(ctx context.Context, id uint64) ([]*pb.Member, error)
}

// clusterServer is the Cluster service, as etcd's v3rpc ClusterServer: MemberList from
// Backend; MemberAdd, MemberRemove, MemberUpdate and MemberPromote from MemberChanger.
// Every response carries the header without a revision, as etcd's.
type clusterServer struct {
	pb.UnimplementedClusterServer
	b   Backend
	hdr header
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	members, err := s.b.MemberList(ctx, r.GetLinearizable())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberListResponse{Header: s.hdr.fillWithoutRevision(), Members: members}, nil
}

func (s *clusterServer) changer() (MemberChanger, error) {
	mc, ok := s.b.(MemberChanger)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "metastore: membership changes are not implemented by this backend")
	}
	return mc, nil
}

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	mc, err := s.changer()
	if err != nil {
		return nil, err
	}
	m, members, err := mc.MemberAdd(ctx, r.GetPeerURLs(), r.GetIsLearner())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberAddResponse{Header: s.hdr.fillWithoutRevision(), Member: m, Members: members}, nil
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	mc, err := s.changer()
	if err != nil {
		return nil, err
	}
	members, err := mc.MemberRemove(ctx, r.GetID())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberRemoveResponse{Header: s.hdr.fillWithoutRevision(), Members: members}, nil
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	mc, err := s.changer()
	if err != nil {
		return nil, err
	}
	members, err := mc.MemberUpdate(ctx, r.GetID(), r.GetPeerURLs())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberUpdateResponse{Header: s.hdr.fillWithoutRevision(), Members: members}, nil
}

func (s *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	mc, err := s.changer()
	if err != nil {
		return nil, err
	}
	members, err := mc.MemberPromote(ctx, r.GetID())
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberPromoteResponse{Header: s.hdr.fillWithoutRevision(), Members: members}, nil
}
