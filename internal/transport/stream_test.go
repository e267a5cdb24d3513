package transport

import (
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap/zaptest"
)

// serveOn serves tr's handler on addr ("127.0.0.1:0" for any port).
func serveOn(t *testing.T, tr *Transport, addr string) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(tr.Handler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv
}

// closeWithin fails the test if stopping tr and closing srv takes longer than d: a
// stopped member must end the streams peers keep open to it.
func closeWithin(t *testing.T, tr *Transport, srv *httptest.Server, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		tr.Stop()
		srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("stopping a member with an open incoming stream did not finish in %v", d)
	}
}

// A member that restarts on the same URL gets messages again: the sender notices the
// broken stream, reports the peer unreachable and opens a new one.
func TestStreamReconnectsAfterPeerRestart(t *testing.T) {
	a := newNode(t, 1, 7, nil)
	fr1 := newFakeRaft()
	tr1 := New(Config{ID: 2, ClusterID: 7, Raft: fr1, Logger: zaptest.NewLogger(t)})
	srv1 := serveOn(t, tr1, "127.0.0.1:0")
	addr := srv1.Listener.Addr().String()
	a.tr.AddPeer(2, []string{"http://" + addr})

	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	fr1.waitUntil(t, "first delivery", func(f *fakeRaft) bool { return len(f.msgs) == 1 })
	closeWithin(t, tr1, srv1, 5*time.Second)

	fr2 := newFakeRaft()
	tr2 := New(Config{ID: 2, ClusterID: 7, Raft: fr2, Logger: zaptest.NewLogger(t)})
	srv2 := serveOn(t, tr2, addr)
	t.Cleanup(func() { closeWithin(t, tr2, srv2, 5*time.Second) })

	stop := make(chan struct{})
	defer close(stop)
	go func() { // raft would keep sending heartbeats
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
			}
		}
	}()
	fr2.waitUntil(t, "delivery after restart", func(f *fakeRaft) bool { return len(f.msgs) > 0 })
	a.raft.waitUntil(t, "unreachable report for the broken stream", func(f *fakeRaft) bool { return f.unreachable[2] > 0 })
}
