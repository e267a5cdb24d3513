package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/testengine"
)

type nopTransport struct{}

func (nopTransport) Send([]*raftpb.Message) {}

// testMember is a single-member server on real Pebble and a real WAL in dir.
type testMember struct {
	dir  string
	srv  *Server
	node *raftnode.Node
}

// startTestMember starts a bootstrapped single member whose WAL segments are
// walSegment bytes (0: the default), and waits until it leads. Cleanup stops the
// server and closes its storage.
func startTestMember(t *testing.T, walSegment int64) *testMember {
	t.Helper()
	dir := t.TempDir()
	lg := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	eng := testengine.Open(t, filepath.Join(dir, "db"), 0)
	store, err := mvcc.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	app, err := apply.New(eng, store, lg)
	if err != nil {
		t.Fatal(err)
	}
	rlog, err := raftlog.Open(eng, raftlog.Options{Dir: filepath.Join(dir, "wal"), SegmentSize: walSegment,
		SnapDir: filepath.Join(dir, "snap")})
	if err != nil {
		t.Fatal(err)
	}
	node, err := raftnode.Start(raftnode.Config{ID: 1, Peers: []raft.Peer{{ID: 1}}, Storage: rlog,
		AppliedState: testAppliedState(eng), Transport: nopTransport{}, Logger: lg, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Logger: lg, MemberID: 1, ClusterID: 1, Engine: eng, Store: store, Applier: app,
		Node: node, ElectionTimeout: 100 * time.Millisecond})
	t.Cleanup(func() {
		srv.Stop()
		_ = rlog.Close()
		_ = store.Close()
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &testMember{dir: dir, srv: srv, node: node}
}

// Stop may be called by several goroutines at once, and again later: none panics,
// each returns only once every loop has ended (so the caller may close the engine),
// and a server stopped by Stop reports no error.
func TestStopConcurrentCallers(t *testing.T) {
	m := startTestMember(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.srv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.srv.Stop()
			select {
			case <-m.srv.Done():
			default:
				t.Error("Stop returned before the server was done")
			}
			select {
			case <-m.node.Done():
			default:
				t.Error("Stop returned before the raft node stopped")
			}
		}()
	}
	wg.Wait()
	m.srv.Stop()
	if err := m.srv.Err(); err != nil {
		t.Errorf("Err after Stop: %v, want nil", err)
	}
	if _, err := m.srv.Put(context.Background(), &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}); err == nil {
		t.Error("Put succeeded on a stopped server")
	}
}

// When the raft node dies on a WAL error the server stops on its own and Err says
// why, so that the process can exit instead of serving as if nothing happened. The
// WAL directory is removed under the member; the next segment roll fails.
func TestRaftNodeFailureStopsServer(t *testing.T) {
	m := startTestMember(t, 16<<10)
	if err := os.RemoveAll(filepath.Join(m.dir, "wal")); err != nil {
		t.Fatal(err)
	}
	val := []byte(strings.Repeat("v", 4<<10))
	for i := 0; i < 64; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := m.srv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: val})
		cancel()
		if err != nil {
			break
		}
	}
	select {
	case <-m.srv.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("server still running after its raft node failed")
	}
	err := m.srv.Err()
	if !errors.Is(err, ErrRaftStopped) {
		t.Fatalf("Err() = %v, want ErrRaftStopped", err)
	}
	t.Logf("server stopped: %v", err)
	if l := m.srv.Leader(); l != raft.None {
		t.Errorf("stopped server reports leader %x", l)
	}
	m.srv.Stop() // Stop after a self-stop returns and keeps the cause
	if !errors.Is(m.srv.Err(), ErrRaftStopped) {
		t.Errorf("Err() after Stop = %v, want the original cause", m.srv.Err())
	}
}

// testAppliedState is raftnode's Config.AppliedState as cmd/metastore wires it.
func testAppliedState(eng storage.Engine) func() (*raftpb.SnapshotMetadata, error) {
	return func() (*raftpb.SnapshotMetadata, error) {
		es := eng.NewSnapshot()
		defer es.Close()
		md, err := snap.ReadMeta(es)
		if errors.Is(err, snap.ErrNoState) {
			return nil, nil
		}
		return md, err
	}
}

// When applying a committed entry fails for a reason that is not the request's (here
// the engine holds a version record it cannot decode, as after disk corruption), the
// server stops on its own with ErrApplyFailed: every member would fail on the same
// entry, and going on would serve a state that skipped it. Nothing of the entry is
// acknowledged.
func TestApplyFailureStopsServer(t *testing.T) {
	m := startTestMember(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.srv.Put(ctx, &pb.PutRequest{Key: []byte("ok"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	// A version of "bad" at revision 1 whose record is garbage.
	b := m.srv.cfg.Engine.NewBatch()
	if err := b.Set(storage.VersionKey([]byte("bad"), 1, 0), []byte{0xff, 0xfe, 0xfd}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// On disk, in a table, as corruption would be (the writer's cache of newest
	// versions looks only in the tables for a key it has not seen written, on an
	// engine that can: a storage.TableReader).
	if tr, ok := m.srv.cfg.Engine.(storage.TableReader); ok {
		flushed, err := tr.FlushAsync()
		if err != nil {
			t.Fatal(err)
		}
		<-flushed
	}
	_, err := m.srv.Put(ctx, &pb.PutRequest{Key: []byte("bad"), Value: []byte("w")})
	if err == nil {
		t.Fatal("a put over a corrupt version was acknowledged")
	}
	select {
	case <-m.srv.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("server still running after apply failed")
	}
	if err := m.srv.Err(); !errors.Is(err, ErrApplyFailed) {
		t.Fatalf("Err() = %v, want ErrApplyFailed", err)
	}
	t.Logf("server stopped: %v (the put got: %v)", m.srv.Err(), err)
	if l := m.srv.Leader(); l != raft.None {
		t.Errorf("stopped server reports leader %x", l)
	}
}
