package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage/testengine"
)

// etcd's decideClusterVersion: none yet -> the lowest member version, or 3.0 when one
// is unknown; afterwards only a raise within the major version, once every member is
// known.
func TestDecideClusterVersion(t *testing.T) {
	v := func(major, minor int) apply.Version { return apply.Version{Major: major, Minor: minor} }
	none := apply.Version{}
	for _, c := range []struct {
		applied, lowest, want apply.Version
		ok                    bool
	}{
		{none, none, apply.MinClusterVersion, true},
		{none, v(3, 6), v(3, 6), true},
		{v(3, 0), v(3, 7), v(3, 7), true},
		{v(3, 6), v(3, 7), v(3, 7), true},
		{v(3, 7), v(3, 7), none, false},
		{v(3, 7), v(3, 6), none, false}, // never lowered by an older member: it must not have joined
		{v(3, 5), none, none, false},    // a member is unknown: it may be older
		{v(3, 7), v(4, 0), none, false}, // not across a major version
	} {
		got, ok := decideClusterVersion(c.applied, c.lowest)
		if got != c.want || ok != c.ok {
			t.Fatalf("decideClusterVersion(%v, %v) = %v, %v; want %v, %v", c.applied, c.lowest, got, ok, c.want, c.ok)
		}
	}
}

// versionServer answers GET /version as a member's peer port does.
func versionServer(t *testing.T, serverVersion string) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"etcdserver":%q,"etcdcluster":"3.7.0"}`, serverVersion)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// testServer is a Server with just what membersMinimalVersion uses: an applier whose
// member list holds this member (ID 1) and the given peers.
func testServer(t *testing.T, peers ...[]string) *Server {
	eng := testengine.Open(t, t.TempDir(), 1<<20)
	t.Cleanup(func() { eng.Close() })
	store, err := mvcc.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	app, err := apply.New(eng, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	members := []*membership.Member{{ID: 1, PeerURLs: []string{"http://127.0.0.1:1"}}}
	for i, urls := range peers {
		members = append(members, &membership.Member{ID: uint64(i + 2), PeerURLs: urls})
	}
	blob, err := membership.Marshal(membership.NewClusterFromMembers(7, members))
	if err != nil {
		t.Fatal(err)
	}
	if err := app.ApplyConfChangeWithMembers(1, 1, &raftpb.ConfState{Voters: []uint64{1}}, blob); err != nil {
		t.Fatal(err)
	}
	return &Server{cfg: Config{MemberID: 1}, lg: zap.NewNop(), app: app}
}

func TestMembersMinimalVersion(t *testing.T) {
	ctx := context.Background()
	if got := testServer(t).membersMinimalVersion(ctx); got != apply.LocalVersion {
		t.Fatalf("single member: %v, want this build's %v", got, apply.LocalVersion)
	}
	old := versionServer(t, "3.5.2")
	same := versionServer(t, "3.7.3")
	if got := testServer(t, []string{same.URL}, []string{old.URL}).membersMinimalVersion(ctx); got != (apply.Version{Major: 3, Minor: 5}) {
		t.Fatalf("members at 3.7.3 and 3.5.2: %v, want 3.5", got)
	}
	// A peer URL that does not answer is skipped for the next one of the same member.
	if got := testServer(t, []string{"http://127.0.0.1:1", same.URL}).membersMinimalVersion(ctx); got != (apply.Version{Major: 3, Minor: 7}) {
		t.Fatalf("second peer URL answering: %v, want 3.7", got)
	}
	// One member that does not answer makes the lowest version unknown.
	if got := testServer(t, []string{same.URL}, []string{"http://127.0.0.1:1"}).membersMinimalVersion(ctx); !got.IsZero() {
		t.Fatalf("with an unreachable member: %v, want unknown", got)
	}
	bad := versionServer(t, "not a version")
	if got := testServer(t, []string{bad.URL}).membersMinimalVersion(ctx); !got.IsZero() {
		t.Fatalf("with a member answering garbage: %v, want unknown", got)
	}
}

// The server refuses, before proposing, what apply would refuse or cannot apply.
func TestCheckCapableBeforeProposing(t *testing.T) {
	s := testServer(t)
	if err := s.checkCapable(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a")}}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if err := s.checkCapable(&pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{}}); !errors.Is(err, apply.ErrUnsupported) {
		t.Fatalf("auth user get (served without a proposal): %v, want apply.ErrUnsupported", err)
	}
	// Before the cluster version is decided (3.0), a lease checkpoint (3.4) waits.
	if err := s.checkCapable(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{}}); !errors.Is(err, apply.ErrNotCapable) {
		t.Fatalf("lease checkpoint: %v, want apply.ErrNotCapable", err)
	}
	if s.ClusterVersion() != "" {
		t.Fatalf("cluster version %q before any was set", s.ClusterVersion())
	}
}
