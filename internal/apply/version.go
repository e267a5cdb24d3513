package apply

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/versionpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/metastore/metastore/internal/storage"
)

// Version gating, as etcd does it:
//
//   - The cluster version is the lowest server version among the members (major.minor),
//     decided by the leader (server/version.go) and carried through Raft as a
//     ClusterVersionSetRequest. Apply stores it under storage.MetaClusterVersion in the
//     batch of that entry, so every member holds the same cluster version at every
//     index, and a snapshot carries it.
//   - Each request type needs a minimal cluster version: the etcd_version_field
//     annotation of its field in InternalRaftRequest (raft_internal.proto), or its
//     message's etcd_version_msg, the same annotations etcd reads for its WAL's minimal
//     version (server/storage/wal/version.go). Apply answers a request the applied
//     cluster version does not allow yet with ErrNotCapable, a deterministic request
//     error: every member refuses it at the same index. The server refuses it before
//     proposing (CheckCapable).
//   - The membership requests (ClusterVersionSet, ClusterMemberAttrSet, DowngradeInfoSet,
//     DowngradeVersionTest) are not gated: etcd applies them before its version check,
//     and the cluster version could not rise otherwise.
//   - A member whose build runs below the cluster version stops, as etcd's
//     MustDetectDowngrade does: applying a ClusterVersionSet above LocalVersion is fatal,
//     and so is loading such a version at start.
//   - An entry holding a request this build does not implement (a request field from a
//     newer build, auth, or no request at all) is fatal: etcd panics there
//     ("not implemented apply"). Answering an error instead would let this member
//     diverge from the members that can apply it; the gate keeps a correctly versioned
//     cluster from ever proposing one.

// Version is a cluster version: major.minor, as etcd keeps it (the patch is dropped).
// The zero Version means "not decided yet".
type Version struct{ Major, Minor int }

var (
	// MinClusterVersion is the cluster version in force before the first
	// ClusterVersionSet is applied: etcd's version.MinClusterVersion.
	MinClusterVersion = Version{3, 0}
	// LocalVersion is the highest cluster version this build can run in: the etcd
	// version whose API it implements.
	LocalVersion = Version{3, 7}
)

// ParseVersion reads "3.7", "3.7.0" or "3.7.3" (the patch is ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("%w: %q", ErrInvalidVersion, s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("%w: %q", ErrInvalidVersion, s)
		}
		n[i] = v
	}
	if n[0] == 0 {
		return Version{}, fmt.Errorf("%w: %q", ErrInvalidVersion, s)
	}
	return Version{n[0], n[1]}, nil
}

// String is "major.minor.0", the form etcd proposes and reports.
func (v Version) String() string { return fmt.Sprintf("%d.%d.0", v.Major, v.Minor) }

// Less reports whether v is below o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	return v.Minor < o.Minor
}

// orNone is v's String, or "none" for the zero Version.
func (v Version) orNone() string {
	if v.IsZero() {
		return "none"
	}
	return v.String()
}

// IsZero reports whether v is the zero Version (no cluster version decided yet).
func (v Version) IsZero() bool { return v == Version{} }

// effective is the version that gates requests: MinClusterVersion while none was set.
func (v Version) effective() Version {
	if v.IsZero() {
		return MinClusterVersion
	}
	return v
}

// requestVersions maps each request field of InternalRaftRequest to the cluster version
// it needs, read from etcd's annotations once.
var requestVersions = func() map[protoreflect.FieldNumber]Version {
	md := (&pb.InternalRaftRequest{}).ProtoReflect().Descriptor()
	base := annotated(proto.GetExtension(md.Options(), versionpb.E_EtcdVersionMsg))
	out := map[protoreflect.FieldNumber]Version{}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.Name() == "header" {
			continue
		}
		v := base
		if fv := annotated(proto.GetExtension(fd.Options(), versionpb.E_EtcdVersionField)); v.Less(fv) {
			v = fv
		}
		if mv := annotated(proto.GetExtension(fd.Message().Options(), versionpb.E_EtcdVersionMsg)); v.Less(mv) {
			v = mv
		}
		out[fd.Number()] = v
	}
	return out
}()

// annotated parses an etcd_version_* option value; an absent one is etcd 3.0.
func annotated(x any) Version {
	s, _ := x.(string)
	if s == "" {
		return MinClusterVersion
	}
	v, err := ParseVersion(s)
	if err != nil {
		panic(fmt.Sprintf("apply: bad etcd version annotation %q: %v", s, err))
	}
	return v
}

// ungated are the membership requests, applied whatever the cluster version.
var ungated = map[protoreflect.FieldNumber]bool{
	fieldNumber("cluster_version_set"):     true,
	fieldNumber("cluster_member_attr_set"): true,
	fieldNumber("downgrade_info_set"):      true,
	fieldNumber("downgrade_version_test"):  true,
}

// The request fields ApplyEntries applies. Any other is fatal there.
var (
	fieldRange                = fieldNumber("range")
	fieldPut                  = fieldNumber("put")
	fieldDeleteRange          = fieldNumber("delete_range")
	fieldTxn                  = fieldNumber("txn")
	fieldCompaction           = fieldNumber("compaction")
	fieldAlarm                = fieldNumber("alarm")
	fieldClusterVersionSet    = fieldNumber("cluster_version_set")
	fieldClusterMemberAttrSet = fieldNumber("cluster_member_attr_set")
	fieldDowngradeVersionTest = fieldNumber("downgrade_version_test")
	fieldLeaseGrant           = fieldNumber("lease_grant")
	fieldLeaseRevoke          = fieldNumber("lease_revoke")
	fieldLeaseCheckpoint      = fieldNumber("lease_checkpoint")

	implemented = map[protoreflect.FieldNumber]bool{
		fieldRange: true, fieldPut: true, fieldDeleteRange: true, fieldTxn: true,
		fieldCompaction: true, fieldAlarm: true, fieldClusterVersionSet: true,
		fieldClusterMemberAttrSet: true, fieldDowngradeVersionTest: true,
		fieldLeaseGrant: true, fieldLeaseRevoke: true, fieldLeaseCheckpoint: true,
	}
)

func fieldNumber(name protoreflect.Name) protoreflect.FieldNumber {
	fd := (&pb.InternalRaftRequest{}).ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic("apply: InternalRaftRequest has no field " + string(name))
	}
	return fd.Number()
}

// requestField returns the number of the request field set in r (0 if none: no request,
// or only a field this build's protos do not know). The implemented kinds are found
// without reflection, in the order applyRequest tests them.
func requestField(r *pb.InternalRaftRequest) protoreflect.FieldNumber {
	switch {
	case r.Put != nil:
		return fieldPut
	case r.DeleteRange != nil:
		return fieldDeleteRange
	case r.Txn != nil:
		return fieldTxn
	case r.Range != nil:
		return fieldRange
	case r.Compaction != nil:
		return fieldCompaction
	case r.Alarm != nil:
		return fieldAlarm
	case r.ClusterMemberAttrSet != nil:
		return fieldClusterMemberAttrSet
	case r.ClusterVersionSet != nil:
		return fieldClusterVersionSet
	case r.LeaseGrant != nil:
		return fieldLeaseGrant
	case r.LeaseRevoke != nil:
		return fieldLeaseRevoke
	case r.LeaseCheckpoint != nil:
		return fieldLeaseCheckpoint
	}
	var n protoreflect.FieldNumber
	r.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if _, ok := requestVersions[fd.Number()]; ok {
			n = fd.Number()
			return false
		}
		return true
	})
	return n
}

// RequiredVersion is the cluster version r's request type needs, and false when r holds
// no request this build's protos know.
func RequiredVersion(r *pb.InternalRaftRequest) (Version, bool) {
	v, ok := requestVersions[requestField(r)]
	return v, ok
}

// CheckCapable tells the server whether it may propose r while the cluster runs at cv
// (the zero Version: not decided yet): ErrUnsupported for a request this build does
// not apply, ErrNotCapable for one cv does not allow yet. Apply makes the same check.
func CheckCapable(r *pb.InternalRaftRequest, cv Version) error {
	f := requestField(r)
	if !implemented[f] {
		return ErrUnsupported
	}
	return checkVersion(f, cv)
}

func checkVersion(f protoreflect.FieldNumber, cv Version) error {
	if ungated[f] {
		return nil
	}
	need := requestVersions[f]
	if cv.effective().Less(need) {
		return fmt.Errorf("%w: the request needs cluster version %s, the cluster runs at %s", ErrNotCapable, need, cv.effective())
	}
	return nil
}

// ClusterVersion is the cluster version as of the last committed batch; the zero
// Version until the first ClusterVersionSet is applied. Safe from any goroutine.
func (a *Applier) ClusterVersion() Version {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.publishedVersion
}

// setClusterVersion applies a ClusterVersionSetRequest into b. A version that does not
// parse is a request error; one above LocalVersion is fatal (see the top of this file).
// Lowering the version is allowed, as etcd's downgrade does.
func (a *Applier) setClusterVersion(b storage.Batch, r *membershippb.ClusterVersionSetRequest) (*Result, error) {
	v, err := ParseVersion(r.GetVer())
	if err != nil {
		return &Result{Err: err}, nil
	}
	if LocalVersion.Less(v) {
		return nil, fmt.Errorf("%w: cluster version %s, this build runs at most %s", ErrClusterVersionTooHigh, v, LocalVersion)
	}
	if err := b.Set(storage.MetaClusterVersion, []byte(v.String())); err != nil {
		return nil, err
	}
	if v != a.clusterVersion {
		a.lg.Info("cluster version set", zap.String("from", a.clusterVersion.orNone()), zap.Stringer("to", v))
	}
	a.clusterVersion = v
	return &Result{}, nil
}

// loadClusterVersion reads the stored cluster version (zero if none) and refuses one this
// build cannot run in.
func loadClusterVersion(r storage.Reader) (Version, error) {
	raw, err := r.Get(storage.MetaClusterVersion)
	if errors.Is(err, storage.ErrNotFound) {
		return Version{}, nil
	}
	if err != nil {
		return Version{}, fmt.Errorf("apply: reading cluster version: %w", err)
	}
	v, err := ParseVersion(string(raw))
	if err != nil {
		return Version{}, fmt.Errorf("apply: stored cluster version: %w", err)
	}
	if LocalVersion.Less(v) {
		return Version{}, fmt.Errorf("%w: stored cluster version %s, this build runs at most %s", ErrClusterVersionTooHigh, v, LocalVersion)
	}
	return v, nil
}

// describeRequest names a request field for errors and logs, without its contents.
func describeRequest(f protoreflect.FieldNumber) string {
	fd := (&pb.InternalRaftRequest{}).ProtoReflect().Descriptor().Fields().ByNumber(f)
	if fd == nil {
		return "an entry with no request this build knows"
	}
	return string(fd.Name())
}
