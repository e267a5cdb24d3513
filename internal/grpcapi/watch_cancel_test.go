package grpcapi

import (
	"errors"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// scriptedWatchStream is a WatchStream whose hub responses the test sends itself, on an
// unbuffered channel: a send returns once the stream's send loop has taken it.
type scriptedWatchStream struct {
	mu   sync.Mutex
	live map[int64]bool
	ch   chan *pb.WatchResponse
}

func (s *scriptedWatchStream) Watch(r *pb.WatchCreateRequest) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[r.WatchId] {
		return -1, errors.New("duplicate")
	}
	s.live[r.WatchId] = true
	return r.WatchId, nil
}

func (s *scriptedWatchStream) Cancel(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live[id] {
		return errors.New("no such watcher")
	}
	delete(s.live, id)
	return nil
}

func (s *scriptedWatchStream) RequestProgress(int64)          {}
func (s *scriptedWatchStream) RequestProgressAll()            {}
func (s *scriptedWatchStream) Chan() <-chan *pb.WatchResponse { return s.ch }
func (s *scriptedWatchStream) Rev() int64                     { return 1 }
func (s *scriptedWatchStream) Close()                         {}

func event(key string, rev int64) []*mvccpb.Event {
	return []*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}}
}

// A response of a watcher the client canceled, still under way in the hub when the
// cancel arrives, is dropped: it must not wait in pending and then reach a later
// watcher created with the same ID.
func TestCanceledWatcherResponsesAreDropped(t *testing.T) {
	ws := &scriptedWatchStream{live: map[int64]bool{}, ch: make(chan *pb.WatchResponse)}
	s := startServer(t, Options{NewWatchStream: func() WatchStream { return ws }})
	ctx := testCtx(t)
	stream, err := pb.NewWatchClient(s.cli.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recv := func(what string) *pb.WatchResponse {
		t.Helper()
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return r
	}
	create := func(id int64) {
		t.Helper()
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
			CreateRequest: &pb.WatchCreateRequest{Key: []byte("k"), WatchId: id}}}); err != nil {
			t.Fatal(err)
		}
		if r := recv("created"); !r.Created || r.WatchId != id {
			t.Fatalf("created response %v", r)
		}
	}
	create(7)
	ws.ch <- &pb.WatchResponse{WatchId: 7, Header: &pb.ResponseHeader{Revision: 2}, Events: event("k", 2)}
	if r := recv("first event"); r.WatchId != 7 || len(r.Events) != 1 || r.Events[0].Kv.ModRevision != 2 {
		t.Fatalf("first event %v", r)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{
		CancelRequest: &pb.WatchCancelRequest{WatchId: 7}}}); err != nil {
		t.Fatal(err)
	}
	if r := recv("canceled"); !r.Canceled || r.WatchId != 7 {
		t.Fatalf("canceled response %v", r)
	}
	// The old watcher's response, taken by the send loop after the cancel.
	ws.ch <- &pb.WatchResponse{WatchId: 7, Header: &pb.ResponseHeader{Revision: 3}, Events: event("k", 3)}
	create(7)
	ws.ch <- &pb.WatchResponse{WatchId: 7, Header: &pb.ResponseHeader{Revision: 4}, Events: event("k", 4)}
	done := make(chan *pb.WatchResponse, 1)
	go func() {
		r, err := stream.Recv()
		if err == nil {
			done <- r
		}
	}()
	select {
	case r := <-done:
		if len(r.Events) != 1 || r.Events[0].Kv.ModRevision != 4 {
			t.Fatalf("the new watcher 7 got %v; want only its own event at revision 4 (revision 3 was the canceled watcher's)", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event for the new watcher")
	}
}
