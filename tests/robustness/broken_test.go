package robustness

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// staleReadKV is a deliberately broken KV server: it forwards every request to
// one member but turns linearizable ranges into serializable ones, so a
// lagging member's stale data is served as if it were linearizable. This is
// the bug class "read index skipped" that the checker must catch.
type staleReadKV struct {
	pb.UnimplementedKVServer
	kv pb.KVClient
}

func (s *staleReadKV) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	r.Serializable = true
	return s.kv.Range(ctx, r)
}

func (s *staleReadKV) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	return s.kv.Put(ctx, r)
}

func (s *staleReadKV) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return s.kv.DeleteRange(ctx, r)
}

func (s *staleReadKV) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	return s.kv.Txn(ctx, r)
}

func (s *staleReadKV) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	return s.kv.Compact(ctx, r)
}

// startStaleReadProxy serves staleReadKV in front of member m and returns its URL.
func startStaleReadProxy(m *Member) (url string, stop func(), err error) {
	conn, err := grpc.NewClient(strings.TrimPrefix(m.ClientURL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		return "", nil, err
	}
	srv := grpc.NewServer()
	pb.RegisterKVServer(srv, &staleReadKV{kv: pb.NewKVClient(conn)})
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Stop(); conn.Close() }, nil
}

// TestCheckerCatchesStaleReads proves the checker can fail: half the clients
// only read, from a follower through staleReadKV, while that follower is cut
// off from its peers; the others keep writing through the rest of the
// cluster. The run must be reported as not linearizable, with the
// visualisation written.
func TestCheckerCatchesStaleReads(t *testing.T) {
	rc := runConfig(t)
	var victim *Member
	blackholeVictim := Fault{Name: "blackhole-stale-member", MinMembers: 3, Inject: func(ctx context.Context, c *Cluster) error {
		t.Logf("blackholing m%d; peer connections: %v", victim.Index, c.Net.Connections())
		c.Net.Set(victim.Index, NetFault{Blackhole: true})
		err := sleep(ctx, 3*time.Second)
		c.Net.Heal(victim.Index)
		return err
	}}
	sc := Scenario{
		Name: "broken-stale-reads", Size: 3, Fault: &blackholeVictim, Duration: 8 * time.Second,
		Traffic: TrafficConfig{Clients: 6, Rate: 150, Compact: true},
		Setup: func(ctx context.Context, c *Cluster, tc *TrafficConfig) (func(), error) {
			f, err := c.Follower(ctx)
			if err != nil {
				return nil, err
			}
			victim = f
			url, stop, err := startStaleReadProxy(f)
			if err != nil {
				return nil, err
			}
			var healthy []string
			for _, m := range c.Members {
				if m != f {
					healthy = append(healthy, m.ClientURL)
				}
			}
			// The stale member's clients only read: a write through the
			// isolated member would block a client for the whole timeout.
			tc.ReadOnly = func(i int) bool { return i%2 == 0 }
			tc.Endpoints = func(i int) []string {
				if i%2 == 0 {
					return []string{url}
				}
				return healthy
			}
			return stop, nil
		},
	}
	r, err := Run(context.Background(), rc, sc)
	if err == nil {
		t.Fatalf("the checker passed a history with stale reads served as linearizable: %s", r.Stats)
	}
	if !errors.Is(err, ErrViolation) || r == nil {
		t.Fatalf("the run failed for another reason than a violation: %v", err)
	}
	t.Logf("caught, as it must be: %v", err)
	for _, v := range r.Violations {
		t.Logf("  %s", v)
	}
	if !r.HasKind(KindLinearizability) {
		t.Fatalf("stale reads must be reported as a linearizability violation, got: %v", r.Violations)
	}
	dir := err.Error()[strings.LastIndex(err.Error(), " ")+1:]
	for _, f := range []string{"linearization.html", "history.json", "m0.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("artifact %s missing: %v", f, err)
		}
	}
	if !t.Failed() {
		os.RemoveAll(dir)
	}
}

// TestCheckerCatchesLostWrites proves the checker fails when acknowledged
// writes are lost: the only member of a cluster is killed, its data directory
// wiped and a new cluster started in its place (a server that acknowledged
// writes it never made durable looks the same to clients).
func TestCheckerCatchesLostWrites(t *testing.T) {
	rc := runConfig(t)
	rc.Keep = false
	wipe := Fault{Name: "wipe-data", MinMembers: 1, Inject: func(ctx context.Context, c *Cluster) error {
		m := c.Members[0]
		if err := c.Kill(m); err != nil {
			return err
		}
		if err := os.RemoveAll(m.DataDir); err != nil {
			return err
		}
		if err := c.start(m, "new", c.initialCluster()); err != nil {
			return err
		}
		return c.WaitReady(ctx, m)
	}}
	sc := Scenario{Name: "broken-lost-writes", Size: 1, Fault: &wipe, Duration: 6 * time.Second, Traffic: traffic()}
	r, err := Run(context.Background(), rc, sc)
	if err == nil {
		t.Fatalf("the checker passed a history whose acknowledged writes were lost: %s", r.Stats)
	}
	if !errors.Is(err, ErrViolation) || r == nil {
		t.Fatalf("the run failed for another reason than a violation: %v", err)
	}
	t.Logf("caught, as it must be: %v", err)
	if !r.HasKind(KindLinearizability) {
		t.Fatalf("lost writes must make the KV history non-linearizable, got: %v", r.Violations)
	}
	os.RemoveAll(err.Error()[strings.LastIndex(err.Error(), " ")+1:])
}
