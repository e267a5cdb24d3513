package apply

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/invariants"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/storage"
)

// ApplyEntries applies committed normal entries (raft's Ready.CommittedEntries minus
// the conf changes) in order and returns one Applied per entry, in the same order.
//
// Contract:
//  1. Every entry's writes, and storage.MetaAppliedIndex/MetaAppliedTerm set to the last
//     entry's index and term, go into ONE engine batch committed with sync=false: the
//     caller's next synced write to the same engine (the Raft log) makes it durable.
//     A compaction entry is the exception: the batch is committed BEFORE and AFTER it, so
//     the compaction runs in a batch of its own (each batch still carries the applied
//     index of its last entry, so a crash between them loses nothing).
//  2. AFTER the batch is committed, mvcc.Store.Committed is called for each write and
//     mvcc.Store.CompactionScheduled for each compaction, so readers and watchers see
//     the revisions only once they are in the engine.
//  3. Entries at or below AppliedIndex are skipped (their Result is nil). Entries with
//     empty data (a new leader's first entry) only advance the applied index.
//  4. A request that fails (Result.Err) changes nothing but the applied index: every
//     check comes before the first write, and builds with internal/invariants enabled
//     (tests, -race) panic if a failed request left anything in the batch. Request
//     errors are those that depend only on the request and the replicated state
//     (isRequestError): every member answers them alike and goes on.
//  5. A request whose type needs a cluster version above the applied one fails with
//     ErrNotCapable; a ClusterVersionSet is applied in the batch like any entry
//     (version.go).
//
// The error is not a request's error: it means the engine failed, the state is
// inconsistent, or the entry holds a request this build cannot apply
// (ErrUnknownRequest, ErrClusterVersionTooHigh), and the caller must stop applying
// (etcd panics in the same places).
// The uncommitted part of the batch is dropped, the in-memory state reloaded from the
// engine (AppliedIndex tells where applying stopped) and no results are returned.
func (a *Applier) ApplyEntries(ents []*raftpb.Entry) ([]Applied, error) {
	out, err := a.applyEntries(ents)
	if err != nil {
		if rerr := a.Reload(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return out, nil
}

func (a *Applier) applyEntries(ents []*raftpb.Entry) ([]Applied, error) {
	out := make([]Applied, 0, len(ents))
	p := a.newPending()
	defer func() { p.b.Close() }()
	for _, e := range ents {
		idx := e.GetIndex()
		if idx <= p.lastIndex(a) {
			out = append(out, Applied{Index: idx})
			continue
		}
		if e.GetType() != raftpb.EntryType_EntryNormal {
			return out, fmt.Errorf("apply: entry %d has type %v, want EntryNormal", idx, e.GetType())
		}
		ap := Applied{Index: idx}
		if len(e.Data) > 0 {
			var r pb.InternalRaftRequest
			if err := proto.Unmarshal(e.Data, &r); err != nil {
				a.lg.Warn("skipping malformed raft entry", zap.Uint64("index", idx), zap.Error(err))
				ap.Result = &Result{Err: fmt.Errorf("%w: %v", ErrMalformedEntry, err)}
			} else {
				ap.ID = requestID(&r)
				b, count := p.b, p.b.Count()
				var res *Result
				var err error
				if a.requestHook != nil {
					res, err = a.requestHook(&r, func() (*Result, error) { return a.applyRequest(p, &r) })
				} else {
					res, err = a.applyRequest(p, &r)
				}
				if err != nil {
					return out, fmt.Errorf("apply: entry %d: %w", idx, err)
				}
				if invariants.Enabled && res.Err != nil {
					checkUntouched(p, b, count, &r, res)
				}
				ap.Result = res
			}
		}
		p.index, p.term = idx, e.GetTerm()
		out = append(out, ap)
		if p.flushNow {
			if err := p.flush(a); err != nil {
				return out, err
			}
		}
	}
	if err := p.flush(a); err != nil {
		return out, err
	}
	return out, nil
}

// RequestHook runs the apply of one request: it must call apply once and return what
// apply returned. The server times requests with it (etcd's apply_duration_seconds), so
// the clock stays outside the state machine.
type RequestHook func(r *pb.InternalRaftRequest, apply func() (*Result, error)) (*Result, error)

// SetRequestHook installs h around every request ApplyEntries applies. Call it before
// the first apply.
func (a *Applier) SetRequestHook(h RequestHook) { a.requestHook = h }

func requestID(r *pb.InternalRaftRequest) uint64 {
	if r.ID != 0 {
		return r.ID
	}
	return r.GetHeader().GetID()
}

// pending is the batch being filled by ApplyEntries.
type pending struct {
	b           storage.Batch
	index, term uint64   // last entry put into b; 0 if none
	after       []func() // run after b is committed
	flushNow    bool     // commit b right after the current entry
}

func (a *Applier) newPending() *pending { return &pending{b: a.eng.NewBatch()} }

func (p *pending) lastIndex(a *Applier) uint64 {
	if p.index != 0 {
		return p.index
	}
	return a.AppliedIndex()
}

// flush commits the batch if it holds any entry and starts a new one.
func (p *pending) flush(a *Applier) error {
	if p.index == 0 {
		return nil
	}
	if err := a.commit(p.b, p.index, p.term, p.after); err != nil {
		return err
	}
	p.b.Close()
	p.b = a.eng.NewBatch()
	p.index, p.term, p.after, p.flushNow = 0, 0, nil, false
	return nil
}

// applyRequest applies one request into p. A request error is in the Result; the error
// is fatal (engine I/O, or a request this build cannot apply).
func (a *Applier) applyRequest(p *pending, r *pb.InternalRaftRequest) (*Result, error) {
	f := requestField(r)
	if err := checkVersion(f, a.clusterVersion); err != nil {
		return &Result{Err: err}, nil
	}
	if err := a.checkAuth(r); err != nil {
		return &Result{Err: err}, nil
	}
	switch {
	case r.Put != nil:
		if err := a.rejectWrites(true); err != nil {
			return &Result{Err: err}, nil
		}
		return a.write(p, func(t *mvcc.TxnWrite) (proto.Message, error) { return a.put(t, a.leaseWriter(p), r.Put) })
	case r.DeleteRange != nil:
		if a.alarms.has(pb.AlarmType_CORRUPT) {
			return &Result{Err: ErrCorrupt}, nil
		}
		return a.write(p, func(t *mvcc.TxnWrite) (proto.Message, error) { return execDelete(t, a.leaseWriter(p), r.DeleteRange) })
	case r.Txn != nil:
		if err := a.rejectWrites(txnHasPut(r.Txn)); err != nil {
			return &Result{Err: err}, nil
		}
		return a.write(p, func(t *mvcc.TxnWrite) (proto.Message, error) { return a.txn(t, a.leaseWriter(p), r.Txn) })
	case r.Range != nil:
		if a.alarms.has(pb.AlarmType_CORRUPT) {
			return &Result{Err: ErrCorrupt}, nil
		}
		// Reads through a TxnWrite so they see the earlier entries of this batch.
		return a.write(p, func(t *mvcc.TxnWrite) (proto.Message, error) { return Range(t, r.Range) })
	case r.Compaction != nil:
		return a.compact(p, r.Compaction)
	case r.Alarm != nil:
		return a.alarm(p.b, r.Alarm)
	case r.ClusterMemberAttrSet != nil:
		return a.setMemberAttributes(p.b, r.ClusterMemberAttrSet)
	case r.ClusterVersionSet != nil:
		return a.setClusterVersion(p.b, r.ClusterVersionSet)
	case r.LeaseGrant != nil:
		return a.leaseGrant(p, r.LeaseGrant)
	case r.LeaseRevoke != nil:
		return a.leaseRevoke(p, r.LeaseRevoke)
	case r.LeaseCheckpoint != nil:
		return a.leaseCheckpoint(p, r.LeaseCheckpoint)
	case auth.IsAuthRequest(r):
		return a.applyAuth(p, r)
	case r.Authenticate != nil:
		return a.applyAuthenticate(p, r.Authenticate)
	case r.DowngradeVersionTest != nil:
		// etcd ignores it: it exists for tests that inject it into a WAL.
		return &Result{}, nil
	default:
		// Auth, downgrades, a request field from a newer build, or none at all.
		return nil, fmt.Errorf("%w: %s", ErrUnknownRequest, describeRequest(f))
	}
}

// rejectWrites returns the error an active alarm answers a write with: ErrCorrupt under
// CORRUPT; ErrNoSpace under NOSPACE when the request may add data (puts).
func (a *Applier) rejectWrites(addsData bool) error {
	if a.alarms.has(pb.AlarmType_CORRUPT) {
		return ErrCorrupt
	}
	if addsData && a.alarms.has(pb.AlarmType_NOSPACE) {
		return ErrNoSpace
	}
	return nil
}

// requestErrors are the errors that depend only on the request and the replicated
// state: every member meets them at the same entry, so they are answered to the client
// and never stop the member. Any other error met while applying (engine I/O, a value
// that does not decode) is fatal.
var requestErrors = []error{
	ErrKeyNotFound, ErrLeaseNotFound, ErrLeaseExists, ErrLeaseTTLTooLarge, ErrNoSpace, ErrCorrupt, ErrNotCapable, ErrInvalidVersion,
	mvcc.ErrCompacted, mvcc.ErrFutureRev,
}

// isRequestError reports whether err is one of requestErrors.
func isRequestError(err error) bool {
	for _, re := range requestErrors {
		if errors.Is(err, re) {
			return true
		}
	}
	return false
}

// write runs fn in one mvcc write transaction in p's batch. An error of fn that is a
// request error (isRequestError) is the Result's; it must come before fn wrote anything
// (checked in ApplyEntries under invariants). Any other error is fatal.
func (a *Applier) write(p *pending, fn func(t *mvcc.TxnWrite) (proto.Message, error)) (*Result, error) {
	t := a.store.Write(p.b)
	resp, err := fn(t)
	if err != nil && !isRequestError(err) {
		return nil, err
	}
	if endErr := t.End(); endErr != nil {
		return nil, endErr
	}
	p.after = append(p.after, func() { a.store.Committed(t) })
	if err != nil {
		return &Result{Err: err}, nil
	}
	return &Result{Resp: resp}, nil
}

// afterFailedRequest, when set (by tests), runs on the batch after a request that
// answered a request error, before the invariant check.
var afterFailedRequest func(b storage.Batch)

// checkUntouched is the invariant of a failed request: it wrote nothing. b and count are
// the batch and its Count() before the request; the request may have flushed b and
// started a new batch (a compaction does), which must then be empty.
func checkUntouched(p *pending, b storage.Batch, count uint32, r *pb.InternalRaftRequest, res *Result) {
	if afterFailedRequest != nil {
		afterFailedRequest(p.b)
	}
	if (p.b == b && p.b.Count() != count) || (p.b != b && p.b.Count() != 0) {
		invariants.Violated(fmt.Sprintf("apply: %s failed with %v after writing into the batch",
			describeRequest(requestField(r)), res.Err))
	}
}

// compact schedules a logical compaction in a batch of its own (see ApplyEntries).
func (a *Applier) compact(p *pending, c *pb.CompactionRequest) (*Result, error) {
	if a.alarms.has(pb.AlarmType_CORRUPT) {
		return &Result{Err: ErrCorrupt}, nil
	}
	// The store's revision and compaction revision must include every earlier entry.
	if err := p.flush(a); err != nil {
		return nil, err
	}
	err := a.store.ScheduleCompaction(p.b, c.Revision)
	if isRequestError(err) {
		return &Result{Err: err}, nil
	}
	if err != nil {
		return nil, err
	}
	rev := c.Revision
	p.after = append(p.after, func() { a.store.CompactionScheduled(rev) })
	p.flushNow = true
	return &Result{
		Resp:       &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: a.store.Rev()}},
		Physical:   c.Physical,
		CompactRev: rev,
	}, nil
}
