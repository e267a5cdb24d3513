package grpcapi

import (
	"context"
	"fmt"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/server"
)

const (
	testClusterID = 0xc1
	testMemberID  = 0xa1
	testTerm      = 7
)

// fakeBackend is a minimal in-memory Backend: single-key reads and writes, txns that
// always take the success branch and only execute puts. It is enough to observe what
// the gRPC layer adds: validation, error mapping, headers.
type fakeBackend struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	kvs       map[string]*mvccpb.KeyValue
	calls     int   // KV calls that reached the backend
	err       error // when set, every KV method fails with it
	leader    uint64
	alarms    []*pb.AlarmMember
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{rev: 1, kvs: map[string]*mvccpb.KeyValue{}, leader: testMemberID}
}

func (b *fakeBackend) enter() error {
	b.mu.Lock()
	b.calls++
	return b.err
}

func (b *fakeBackend) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	err := b.enter()
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: b.rev}}
	if kv, ok := b.kvs[string(r.Key)]; ok {
		resp.Kvs, resp.Count = []*mvccpb.KeyValue{kv}, 1
	}
	return resp, nil
}

func (b *fakeBackend) putLocked(r *pb.PutRequest) {
	if string(r.Key) == "panic" {
		panic("fake backend told to panic")
	}
	b.rev++
	b.kvs[string(r.Key)] = &mvccpb.KeyValue{Key: r.Key, Value: r.Value, ModRevision: b.rev, CreateRevision: b.rev, Version: 1}
}

func (b *fakeBackend) Put(_ context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	err := b.enter()
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	b.putLocked(r)
	return &pb.PutResponse{Header: &pb.ResponseHeader{Revision: b.rev}}, nil
}

func (b *fakeBackend) DeleteRange(_ context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	err := b.enter()
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteRangeResponse{}
	if _, ok := b.kvs[string(r.Key)]; ok {
		b.rev++
		delete(b.kvs, string(r.Key))
		resp.Deleted = 1
	}
	resp.Header = &pb.ResponseHeader{Revision: b.rev}
	return resp, nil
}

func (b *fakeBackend) Txn(_ context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	err := b.enter()
	defer b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp := &pb.TxnResponse{Succeeded: true}
	for _, op := range r.Success {
		if p := op.GetRequestPut(); p != nil {
			b.putLocked(p)
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{}}})
		}
	}
	resp.Header = &pb.ResponseHeader{Revision: b.rev}
	return resp, nil
}

// Compact answers with an empty header, leaving the revision to the gRPC layer.
func (b *fakeBackend) Compact(_ context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	err := b.enter()
	defer b.mu.Unlock()
	switch {
	case err != nil:
		return nil, err
	case r.Revision <= b.compacted:
		return nil, fmt.Errorf("compact %d: %w", r.Revision, server.ErrCompacted)
	case r.Revision > b.rev:
		return nil, fmt.Errorf("compact %d: %w", r.Revision, server.ErrFutureRev)
	}
	b.compacted = r.Revision
	return &pb.CompactionResponse{}, nil
}

func (b *fakeBackend) MemberList(context.Context, bool) ([]*pb.Member, error) {
	return []*pb.Member{{ID: testMemberID, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}}, nil
}

func (b *fakeBackend) Status(context.Context) (*pb.StatusResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &pb.StatusResponse{Version: "3.7.3", Leader: b.leader, RaftTerm: testTerm, DbSize: 4096}
	for _, a := range b.alarms {
		st.Errors = append(st.Errors, a.String())
	}
	return st, nil
}

func (b *fakeBackend) Alarm(_ context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.Action != pb.AlarmRequest_DEACTIVATE {
		return &pb.AlarmResponse{Alarms: b.alarms}, nil
	}
	// As etcd: DEACTIVATE answers the alarms it removed.
	var kept, removed []*pb.AlarmMember
	for _, a := range b.alarms {
		if a.MemberID == r.MemberID && a.Alarm == r.Alarm {
			removed = append(removed, a)
		} else {
			kept = append(kept, a)
		}
	}
	b.alarms = kept
	return &pb.AlarmResponse{Alarms: removed}, nil
}

// Leader makes the fake a LeaderReporter.
func (b *fakeBackend) Leader() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leader
}

// Alarms makes the fake an AlarmLister.
func (b *fakeBackend) Alarms() []*pb.AlarmMember {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.alarms
}

// plainBackend hides the optional interfaces of the Backend it wraps.
type plainBackend struct{ Backend }

func (b *fakeBackend) HashKV(context.Context, int64) (*pb.HashKVResponse, error) {
	return nil, status.Error(codes.Unimplemented, "hashkv: not implemented")
}

func (b *fakeBackend) Header() *pb.ResponseHeader {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &pb.ResponseHeader{ClusterId: testClusterID, MemberId: testMemberID, RaftTerm: testTerm, Revision: b.rev}
}

func (b *fakeBackend) set(f func(b *fakeBackend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

func (b *fakeBackend) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}
