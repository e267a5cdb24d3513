package grpcapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// header fills response headers. ClusterId, MemberId and RaftTerm always come from
// Backend.Header(); Revision is kept when the backend set it (the revision the request
// read or wrote) and taken from Backend.Header() (the current store revision) when 0.
type header struct{ b Backend }

// fill fills h, allocating it when nil, and returns it.
func (hd header) fill(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	cur := hd.b.Header()
	h.ClusterId = cur.GetClusterId()
	h.MemberId = cur.GetMemberId()
	h.RaftTerm = cur.GetRaftTerm()
	if h.Revision == 0 {
		h.Revision = cur.GetRevision()
	}
	return h
}

// fillWithoutRevision fills a header that carries no revision in etcd (Cluster service).
func (hd header) fillWithoutRevision() *pb.ResponseHeader {
	cur := hd.b.Header()
	return &pb.ResponseHeader{ClusterId: cur.GetClusterId(), MemberId: cur.GetMemberId(), RaftTerm: cur.GetRaftTerm()}
}

// kvServer is the KV service: validate, call the backend once, map the error, fill
// the header.
type kvServer struct {
	pb.UnimplementedKVServer
	b         Backend
	hdr       header
	maxTxnOps int
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRangeRequest(r); err != nil {
		return nil, err
	}
	resp, err := s.b.Range(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

// RangeStream answers with a single chunk holding the whole Range response: a valid
// stream (the merge of all chunks is the Range response), without etcd's memory bound
// yet. Like etcd, it refuses custom sort orders and revision filters.
func (s *kvServer) RangeStream(r *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	if err := checkRangeStreamRequest(r); err != nil {
		return err
	}
	resp, err := s.b.Range(stream.Context(), r)
	if err != nil {
		return toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPutRequest(r); err != nil {
		return nil, err
	}
	resp, err := s.b.Put(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRequest(r); err != nil {
		return nil, err
	}
	resp, err := s.b.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxnRequest(r, s.maxTxnOps); err != nil {
		return nil, err
	}
	// The overlap check runs after checkTxnRequest bounded the op count.
	if _, _, err := checkIntervals(r.GetSuccess()); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.GetFailure()); err != nil {
		return nil, err
	}
	resp, err := s.b.Txn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}

// Compact is not validated here, as in etcd: a revision <= the compacted one or above
// the current one is the backend's ErrCompacted / ErrFutureRev.
func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.b.Compact(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.hdr.fill(resp.Header)
	return resp, nil
}
