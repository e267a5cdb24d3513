// Package apply owns the replicated state machine: it turns committed Raft entries
// (marshaled etcdserverpb.InternalRaftRequest) into MVCC writes with etcd v3.7.3's
// semantics for Put, DeleteRange, Txn, Range, Compaction, Alarm and the lease requests
// (LeaseGrant, LeaseRevoke, LeaseCheckpoint, into internal/lease's table: lease.go); it records the
// member attributes a member publishes (ClusterMemberAttrSet) and the cluster version
// (ClusterVersionSet, gating request types by version: version.go), and applies
// configuration changes to the member list (PrepareConfChange, CommitConfChange:
// confchange.go). It owns the meta keys
// storage.MetaAppliedIndex, MetaAppliedTerm, MetaConfState, MetaAlarms and
// MetaClusterVersion, and writes MetaMembers with the encoding membership owns.
//
// Like go.etcd.io/raft's RawNode it does no I/O of its own beyond the engine batch it is
// handed: no clock, no goroutines, no network, no randomness. The engine's contents after
// ApplyEntries are a pure function of the contents before and the entries, so every
// member that applies the same log holds byte-identical state.
//
// The error contract (entries.go): a request that fails answers a request error and
// writes nothing (checked under internal/invariants); an ApplyEntries error means the
// engine failed or the entry cannot be applied by this build, and the caller stops.
//
// It must not touch the Raft log (raftlog's WAL), decide membership (membership owns
// the member list's encoding and rules), take part in deciding the cluster version
// (server proposes it), or answer gRPC (grpcapi validates requests BEFORE they are
// proposed: empty keys, too many ops, duplicate keys; server checks the quota).
package apply

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

// Result is the outcome of one applied request, for the waiter of its proposal.
type Result struct {
	// Resp is *pb.PutResponse, *pb.DeleteRangeResponse, *pb.TxnResponse,
	// *pb.RangeResponse, *pb.CompactionResponse or *pb.AlarmResponse; nil when Err != nil.
	Resp proto.Message
	// Err is the request's error (ErrNoSpace, ErrKeyNotFound, mvcc.ErrCompacted, …). A
	// request with an error changed nothing.
	Err error
	// Physical and CompactRev are set for a successful compaction: when Physical, the
	// server waits for mvcc.Store.WaitCompacted(CompactRev) before answering.
	Physical   bool
	CompactRev int64
}

// Applied pairs a Result with the request it answers.
type Applied struct {
	Index uint64 // raft index of the entry
	// ID is the request ID (InternalRaftRequest.ID, or Header.ID when that is 0); 0 for
	// entries without a request.
	ID uint64
	// Result is nil for entries that carry no request (the empty entry a new leader
	// appends) and for entries at or below the applied index, which are skipped.
	Result *Result
}

// Applier is the state machine. ApplyEntries, ApplyConfChange and Reload must be called
// from one goroutine (the apply loop); AppliedIndex, Alarms and ClusterVersion are safe
// from any goroutine.
type Applier struct {
	eng    storage.Engine
	store  *mvcc.Store
	lg     *zap.Logger
	leases *lease.Table

	// Owned by the apply goroutine.
	appliedTerm    uint64
	alarms         alarmSet // includes alarms written into the batch not yet committed
	clusterVersion Version  // likewise
	maxLearners    int      // SetMaxLearners; 0: membership.DefaultMaxLearners
	requestHook    RequestHook
	auth           authState // users, roles, permissions (auth.go)

	appliedIndex atomic.Uint64
	mu           sync.Mutex
	published    []*pb.AlarmMember // alarms as of the last committed batch
	// publishedVersion is the cluster version as of the last committed batch.
	publishedVersion Version
}

// New returns an Applier over eng and store and loads the applied index and term, the
// active alarms and the cluster version from eng. store must already be open on eng. It
// fails with ErrClusterVersionTooHigh if eng holds a cluster version above LocalVersion.
func New(eng storage.Engine, store *mvcc.Store, lg *zap.Logger) (*Applier, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	a := &Applier{eng: eng, store: store, lg: lg, leases: &lease.Table{}}
	if err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

// Leases is the replicated lease table this Applier writes (loaded from the engine by
// New and by Reload). Its readers are safe from any goroutine; the server installs its
// expiry tracker with SetListener before the apply loop starts.
func (a *Applier) Leases() *lease.Table { return a.leases }

// AppliedIndex is the index of the last entry whose effects are committed to the engine.
func (a *Applier) AppliedIndex() uint64 { return a.appliedIndex.Load() }

// AppliedTerm is the term of the entry at AppliedIndex. Apply goroutine only.
func (a *Applier) AppliedTerm() uint64 { return a.appliedTerm }

// Alarms returns the active alarms as of the last committed batch, sorted by alarm type
// then member ID. The caller may keep and modify the returned slice.
func (a *Applier) Alarms() []*pb.AlarmMember {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*pb.AlarmMember, len(a.published))
	for i, m := range a.published {
		out[i] = &pb.AlarmMember{MemberID: m.MemberID, Alarm: m.Alarm}
	}
	return out
}

// Reload re-reads the state after a Raft snapshot replaced the state-machine keys
// underneath: it calls Store.Reload and reloads the applied index, term, alarms and
// cluster version.
func (a *Applier) Reload() error {
	if err := a.store.Reload(); err != nil {
		return err
	}
	return a.load()
}

func (a *Applier) load() error {
	idx, err := readUint64(a.eng, storage.MetaAppliedIndex)
	if err != nil {
		return fmt.Errorf("apply: reading applied index: %w", err)
	}
	term, err := readUint64(a.eng, storage.MetaAppliedTerm)
	if err != nil {
		return fmt.Errorf("apply: reading applied term: %w", err)
	}
	alarms, err := loadAlarms(a.eng)
	if err != nil {
		return err
	}
	cv, err := loadClusterVersion(a.eng)
	if err != nil {
		return err
	}
	if err := a.leases.Reload(a.eng); err != nil {
		return err
	}
	if err := a.loadAuth(); err != nil {
		return err
	}
	a.appliedTerm = term
	a.alarms = alarms
	a.clusterVersion = cv
	a.appliedIndex.Store(idx)
	a.publish()
	return nil
}

// ConfState returns the configuration stored by the last ApplyConfChange (or a
// snapshot), nil if none was ever stored.
func (a *Applier) ConfState() (*raftpb.ConfState, error) {
	v, err := a.eng.Get(storage.MetaConfState)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cs := &raftpb.ConfState{}
	if err := proto.Unmarshal(v, cs); err != nil {
		return nil, fmt.Errorf("apply: decoding conf state: %w", err)
	}
	return cs, nil
}

// ApplyConfChange records the configuration cs that applying the conf-change entry at
// (index, term) produced, and the applied index and term, in one batch. An index at or
// below AppliedIndex is ignored.
func (a *Applier) ApplyConfChange(index, term uint64, cs *raftpb.ConfState) error {
	return a.ApplyConfChangeWithMembers(index, term, cs, nil)
}

// ApplyConfChangeWithMembers is ApplyConfChange that also stores members, when not nil,
// verbatim under storage.MetaMembers in the same batch (the membership package owns its
// encoding).
func (a *Applier) ApplyConfChangeWithMembers(index, term uint64, cs *raftpb.ConfState, members []byte) error {
	return a.applyConfChange(index, term, cs, members, false)
}

// applyConfChange writes the conf state, the member list (when not nil), the index of a
// refused change (when refused) and the applied index in one batch.
func (a *Applier) applyConfChange(index, term uint64, cs *raftpb.ConfState, members []byte, refused bool) error {
	if index <= a.AppliedIndex() {
		return nil
	}
	b := a.eng.NewBatch()
	defer b.Close()
	if refused {
		if err := recordRefused(b, index); err != nil {
			return err
		}
	}
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(cs)
	if err != nil {
		return fmt.Errorf("apply: encoding conf state: %w", err)
	}
	if err := b.Set(storage.MetaConfState, v); err != nil {
		return err
	}
	if members != nil {
		if err := b.Set(storage.MetaMembers, members); err != nil {
			return err
		}
	}
	return a.commit(b, index, term, nil)
}

// commit writes the applied index and term into b, commits it without sync, then runs
// the post-commit notifications and publishes the new state.
func (a *Applier) commit(b storage.Batch, index, term uint64, after []func()) error {
	if err := b.Set(storage.MetaAppliedIndex, storage.PutUint64(index)); err != nil {
		return err
	}
	if err := b.Set(storage.MetaAppliedTerm, storage.PutUint64(term)); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("apply: committing batch: %w", err)
	}
	for _, f := range after {
		f()
	}
	a.appliedTerm = term
	a.appliedIndex.Store(index)
	a.publish()
	return nil
}

// publish makes the alarms and cluster version of the apply goroutine visible to
// Alarms and ClusterVersion; call it only once they are committed.
func (a *Applier) publish() {
	list := a.alarms.list(pb.AlarmType_NONE)
	a.mu.Lock()
	a.published = list
	a.publishedVersion = a.clusterVersion
	a.mu.Unlock()
}

func readUint64(r storage.Reader, key []byte) (uint64, error) {
	v, err := r.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return storage.Uint64(v)
}
