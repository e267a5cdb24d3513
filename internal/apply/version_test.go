package apply

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/testengine"
)

func versionSet(v string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: v}}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]Version{"3.0": {3, 0}, "3.5.0": {3, 5}, "3.7.3": {3, 7}, "4.12": {4, 12}} {
		got, err := ParseVersion(s)
		if err != nil || got != want {
			t.Fatalf("ParseVersion(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "3", "3.x", "three", "3.7.0.1", "0.4", "-3.1", "3..1"} {
		if _, err := ParseVersion(s); !errors.Is(err, ErrInvalidVersion) {
			t.Fatalf("ParseVersion(%q) error %v, want ErrInvalidVersion", s, err)
		}
	}
	if (Version{3, 7}).String() != "3.7.0" || !(Version{3, 4}).Less(Version{3, 10}) || (Version{4, 0}).Less(Version{3, 9}) {
		t.Fatal("Version String or Less is wrong")
	}
}

// TestRequiredVersionsFollowEtcdAnnotations: the table comes from raft_internal.proto's
// etcd_version_field / etcd_version_msg options.
func TestRequiredVersionsFollowEtcdAnnotations(t *testing.T) {
	for _, c := range []struct {
		r    *pb.InternalRaftRequest
		want Version
	}{
		{&pb.InternalRaftRequest{Put: &pb.PutRequest{}}, Version{3, 0}},
		{&pb.InternalRaftRequest{Txn: &pb.TxnRequest{}}, Version{3, 0}},
		{&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{}}, Version{3, 0}},
		{&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{}}, Version{3, 0}},
		{&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{}}, Version{3, 4}},
		{&pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}, Version{3, 5}},
		{versionSet("3.5"), Version{3, 5}},
		{&pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{}}, Version{3, 5}},
		{&pb.InternalRaftRequest{DowngradeInfoSet: &membershippb.DowngradeInfoSetRequest{}}, Version{3, 5}},
		{&pb.InternalRaftRequest{DowngradeVersionTest: &pb.DowngradeVersionTestRequest{}}, Version{3, 6}},
	} {
		got, ok := RequiredVersion(c.r)
		if !ok || got != c.want {
			t.Fatalf("RequiredVersion(%v) = %v, %v; want %v", c.r, got, ok, c.want)
		}
	}
	if _, ok := RequiredVersion(&pb.InternalRaftRequest{ID: 1}); ok {
		t.Fatal("a request with no request field has a required version")
	}
}

// TestClusterVersionIsReplicatedState: a ClusterVersionSet is applied in the batch,
// survives a restart, travels in the engine's M keys (and so in snapshots), and is
// visible only once committed.
func TestClusterVersionIsReplicatedState(t *testing.T) {
	h := newHarness(t)
	if !h.app.ClusterVersion().IsZero() {
		t.Fatalf("fresh cluster version %v, want none", h.app.ClusterVersion())
	}
	res := h.applyAll(putReq("a", "1"), versionSet("3.5.0"), putReq("b", "2"))
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := h.app.ClusterVersion(); got != (Version{3, 5}) {
		t.Fatalf("cluster version %v, want 3.5", got)
	}
	if v, err := h.eng.Get(storage.MetaClusterVersion); err != nil || string(v) != "3.5.0" {
		t.Fatalf("stored cluster version %q, %v", v, err)
	}
	h.do(versionSet("3.7")) // an upgrade
	h.reopen()
	if got := h.app.ClusterVersion(); got != (Version{3, 7}) {
		t.Fatalf("cluster version after restart %v, want 3.7", got)
	}
	h.do(versionSet("3.6.0")) // etcd's downgrade lowers it by one minor
	if got := h.app.ClusterVersion(); got != (Version{3, 6}) {
		t.Fatalf("cluster version after a downgrade %v, want 3.6", got)
	}
}

// TestRequestTypeGatedByClusterVersion: a request type whose minimal version is above
// the applied cluster version fails with ErrNotCapable on every member alike, changes
// nothing, and is applied once the cluster version allows it. The server's check before
// proposing (CheckCapable) agrees.
func TestRequestTypeGatedByClusterVersion(t *testing.T) {
	// Pretend puts came with 3.6, the way a future request type would.
	saved := requestVersions[fieldPut]
	requestVersions[fieldPut] = Version{3, 6}
	defer func() { requestVersions[fieldPut] = saved }()

	h := newHarness(t)
	put := putReq("a", "1")
	if err := CheckCapable(put, h.app.ClusterVersion()); !errors.Is(err, ErrNotCapable) {
		t.Fatalf("CheckCapable before any cluster version: %v, want ErrNotCapable", err)
	}
	errIs(t, h.doErr(put), ErrNotCapable)
	h.do(versionSet("3.5"))
	errIs(t, h.doErr(putReq("a", "1")), ErrNotCapable)
	if h.store.Rev() != 1 || h.getKV("a") != nil {
		t.Fatalf("a refused put wrote: rev %d", h.store.Rev())
	}
	// In one batch: the version rises, and the put right after it is allowed.
	res := h.applyAll(versionSet("3.6"), putReq("a", "1"))
	if res[1].Err != nil {
		t.Fatalf("put after cluster version 3.6: %v", res[1].Err)
	}
	if err := CheckCapable(putReq("a", "1"), h.app.ClusterVersion()); err != nil {
		t.Fatalf("CheckCapable at 3.6: %v", err)
	}

	// The membership requests are never gated; requests this build does not apply are
	// refused before proposing.
	if err := CheckCapable(versionSet("3.7"), Version{}); err != nil {
		t.Fatalf("CheckCapable(ClusterVersionSet) = %v", err)
	}
	// Leases are built: a checkpoint needs 3.4, as etcd annotates it.
	if err := CheckCapable(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{}}, Version{}); err != nil {
		t.Fatalf("CheckCapable(LeaseGrant) = %v", err)
	}
	if err := CheckCapable(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{}}, Version{3, 3}); !errors.Is(err, ErrNotCapable) {
		t.Fatalf("CheckCapable(LeaseCheckpoint) at 3.3 = %v, want ErrNotCapable", err)
	}
	if err := CheckCapable(&pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{}}, Version{}); err != nil {
		t.Fatalf("CheckCapable(ClusterMemberAttrSet) = %v", err)
	}
	for _, r := range []*pb.InternalRaftRequest{
		{AuthUserGet: &pb.AuthUserGetRequest{}}, // served from the applied state, never proposed
		{DowngradeInfoSet: &membershippb.DowngradeInfoSetRequest{}}, {ID: 1},
	} {
		if err := CheckCapable(r, Version{3, 7}); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("CheckCapable(%v) = %v, want ErrUnsupported", r, err)
		}
	}
}

// TestUnknownRequestStopsTheMember: an entry this build cannot apply is fatal, as etcd
// panics on it, every time it is applied: nothing of its batch is committed, and the
// applied index stays before it.
func TestUnknownRequestStopsTheMember(t *testing.T) {
	futureField := protowire.AppendTag(nil, 5000, protowire.BytesType)
	futureField = protowire.AppendBytes(futureField, []byte("x"))
	for name, data := range map[string][]byte{
		"no request":                   mustMarshal(t, &pb.InternalRaftRequest{ID: 5}),
		"auth user get (not built)":    mustMarshal(t, &pb.InternalRaftRequest{ID: 5, AuthUserGet: &pb.AuthUserGetRequest{}}),
		"downgrade info (not built)":   mustMarshal(t, &pb.InternalRaftRequest{ID: 5, DowngradeInfoSet: &membershippb.DowngradeInfoSetRequest{}}),
		"a field from a newer build":   append(mustMarshal(t, &pb.InternalRaftRequest{ID: 5}), futureField...),
		"cluster version above ours":   mustMarshal(t, &pb.InternalRaftRequest{ID: 5, ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "3.8.0"}}),
		"cluster version of a new era": mustMarshal(t, &pb.InternalRaftRequest{ID: 5, ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "4.0.0"}}),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.put("a", "1")
			put := h.entry(putReq("b", "2"))
			bad := &raftpb.Entry{Index: proto.Uint64(h.index + 1), Term: proto.Uint64(1), Data: data}
			for range 2 { // a restart replays the same entries and stops again
				out, err := h.app.ApplyEntries([]*raftpb.Entry{put, bad})
				if !errors.Is(err, ErrUnknownRequest) && !errors.Is(err, ErrClusterVersionTooHigh) {
					t.Fatalf("ApplyEntries = %v, %v; want a fatal error", out, err)
				}
				if h.app.AppliedIndex() != 1 || h.store.Rev() != 2 || h.getKV("b") != nil {
					t.Fatalf("after the fatal entry: applied %d rev %d", h.app.AppliedIndex(), h.store.Rev())
				}
				h.reopen()
			}
		})
	}
}

// TestStoredClusterVersionAboveOursRefusesToStart: as etcd's MustDetectDowngrade, a
// build older than the cluster version it finds does not start.
func TestStoredClusterVersionAboveOursRefusesToStart(t *testing.T) {
	h := newHarness(t)
	b := h.eng.NewBatch()
	if err := b.Set(storage.MetaClusterVersion, []byte("3.9.0")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	h.close()
	eng := testengine.Open(t, h.dir, 1<<20)
	defer eng.Close()
	store, err := mvcc.Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := New(eng, store, nil); !errors.Is(err, ErrClusterVersionTooHigh) {
		t.Fatalf("New with cluster version 3.9 stored: %v, want ErrClusterVersionTooHigh", err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
