package server

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/apply"
)

// Range serves a read: after a ReadIndex round unless it is serializable, then locally.
func (s *Server) Range(ctx context.Context, r *pb.RangeRequest) (_ *pb.RangeResponse, err error) {
	defer translate(&err)
	defer func(start time.Time) { s.requestObserver().Requested("Range", err == nil, time.Since(start)) }(time.Now())
	if !r.GetSerializable() {
		_, span := s.startSpan(ctx, "linearizable_read") // trace.go
		err := s.linearizableReadNotify(ctx)
		endSpan(span, err)
		if err != nil {
			return nil, err
		}
	}
	_, span := s.startSpan(ctx, "range")
	defer span.End()
	v := s.store.Read()
	defer v.Close()
	return apply.Range(v, r)
}

// Put proposes a put and waits for it to be applied.
func (s *Server) Put(ctx context.Context, r *pb.PutRequest) (_ *pb.PutResponse, err error) {
	defer translate(&err)
	if err := s.checkQuota(ctx, proto.Size(r)); err != nil {
		return nil, err
	}
	resp, err := s.proposeFor(ctx, &pb.InternalRaftRequest{Put: r})
	if err != nil {
		return nil, err
	}
	return asResp[*pb.PutResponse](resp)
}

// DeleteRange proposes a delete and waits for it to be applied.
func (s *Server) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (_ *pb.DeleteRangeResponse, err error) {
	defer translate(&err)
	resp, err := s.proposeFor(ctx, &pb.InternalRaftRequest{DeleteRange: r})
	if err != nil {
		return nil, err
	}
	return asResp[*pb.DeleteRangeResponse](resp)
}

// Txn serves a read-only transaction locally (after ReadIndex unless every read in it
// is serializable) and proposes any other.
func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (_ *pb.TxnResponse, err error) {
	defer translate(&err)
	if apply.IsTxnReadOnly(r) {
		defer func(start time.Time) { s.requestObserver().Requested("ReadonlyTxn", err == nil, time.Since(start)) }(time.Now())
		if !isTxnSerializable(r) {
			if err := s.linearizableReadNotify(ctx); err != nil {
				return nil, err
			}
		}
		v := s.store.Read()
		defer v.Close()
		return s.app.ReadTxn(v, r)
	}
	if err := s.checkQuota(ctx, proto.Size(r)); err != nil {
		return nil, err
	}
	resp, err := s.proposeFor(ctx, &pb.InternalRaftRequest{Txn: r})
	if err != nil {
		return nil, err
	}
	return asResp[*pb.TxnResponse](resp)
}

// Compact proposes a compaction; with physical set it also waits until this member
// has deleted the compacted versions.
func (s *Server) Compact(ctx context.Context, r *pb.CompactionRequest) (_ *pb.CompactionResponse, err error) {
	defer translate(&err)
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if r.GetPhysical() && res.CompactRev > 0 {
		if err := s.store.WaitCompacted(ctx, res.CompactRev); err != nil {
			return nil, err
		}
	}
	return asResp[*pb.CompactionResponse](res.Resp)
}

// proposeFor proposes r and returns the state machine's response or error.
func (s *Server) proposeFor(ctx context.Context, r *pb.InternalRaftRequest) (proto.Message, error) {
	res, err := s.propose(ctx, r)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp, nil
}

func asResp[T proto.Message](m proto.Message) (T, error) {
	t, ok := m.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("server: state machine answered %T, want %T", m, zero)
	}
	return t, nil
}

// isTxnSerializable reports whether every range in the txn (both branches, nested
// txns included) is serializable.
func isTxnSerializable(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			switch {
			case op.GetRequestRange() != nil:
				if !op.GetRequestRange().GetSerializable() {
					return false
				}
			case op.GetRequestTxn() != nil:
				if !isTxnSerializable(op.GetRequestTxn()) {
					return false
				}
			}
		}
	}
	return true
}
