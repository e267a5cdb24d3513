package grpcapi

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/server"
)

// LeaseBackend is optionally implemented by a Backend: with it the Lease service is
// served, without it the service answers codes.Unimplemented.
//
// LeaseRenew returns the lease's granted TTL as the leader knows it, and
// server.ErrLeaseNotFound for an unknown or expired lease. LeaseTimeToLive returns
// server.ErrLeaseNotFound for an unknown lease.
type LeaseBackend interface {
	LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error)
	LeaseRenew(ctx context.Context, id int64) (int64, error)
	LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error)
	LeaseLeases(ctx context.Context) (*pb.LeaseLeasesResponse, error)
}

// leaseServer is etcd's Lease service (server/etcdserver/api/v3rpc/lease.go).
type leaseServer struct {
	pb.UnimplementedLeaseServer
	b   LeaseBackend
	hdr header
}

func newLeaseServer(b Backend, hdr header) pb.LeaseServer {
	lb, ok := b.(LeaseBackend)
	if !ok {
		return pb.UnimplementedLeaseServer{}
	}
	return &leaseServer{b: lb, hdr: hdr}
}

func (s *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := s.b.LeaseGrant(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.b.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

// LeaseTimeToLive answers an unknown lease with TTL -1, as etcd.
func (s *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := s.b.LeaseTimeToLive(ctx, r)
	if errors.Is(err, server.ErrLeaseNotFound) {
		resp, err = &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := s.b.LeaseLeases(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers each request in order, as etcd: the header is taken before the
// renewal (so its revision is not after a revoke the renewal may race with), and an
// unknown or expired lease answers TTL 0. Any other error ends the stream.
func (s *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	errc := make(chan error, 1)
	go func() { errc <- s.keepAlive(stream) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *leaseServer) keepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := checkRenew(s.b, stream.Context(), req.ID); err != nil { // guard.go
			return toGRPCError(err)
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: s.hdr.fill(nil)}
		ttl, err := s.b.LeaseRenew(stream.Context(), req.ID)
		if errors.Is(err, server.ErrLeaseNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return toGRPCError(err)
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
