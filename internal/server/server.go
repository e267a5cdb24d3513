// Package server turns client requests into Raft proposals and waits for them to be
// applied, serves linearizable reads through ReadIndex and serializable reads locally,
// and runs the apply loop that feeds committed entries to the state machine (apply).
//
// It owns the request path between grpcapi and the state machine. It does not own the
// Ready loop (raftnode), the state machine's semantics (apply, mvcc) or the wire
// protocols (grpcapi, transport).
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/lessor"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
)

// Version is the etcd API version MetaStore implements and reports.
const (
	Version        = "3.7.3"
	ClusterVersion = "3.7.0"
)

// maxGapBetweenApplyAndCommit is how far apply may lag commit before new proposals are
// refused with ErrTooManyRequests, as etcd.
const maxGapBetweenApplyAndCommit = 5000

// Config wires a Server to the parts cmd/metastore built.
type Config struct {
	Logger    *zap.Logger
	MemberID  uint64
	ClusterID uint64
	Engine    storage.Engine
	Store     *mvcc.Store
	Applier   *apply.Applier
	Node      *raftnode.Node
	// MaxRequestBytes bounds a proposal's encoded size (etcd --max-request-bytes).
	MaxRequestBytes uint
	// QuotaBackendBytes raises the NOSPACE alarm once the engine is larger (0: no quota).
	QuotaBackendBytes int64
	// ElectionTimeout and TickInterval give the request timeout: 5s + 2 election timeouts.
	ElectionTimeout time.Duration
	// HeartbeatInterval with ElectionTimeout gives the minimum lease TTL, as etcd's
	// (lease.go); 0 is 100ms.
	HeartbeatInterval time.Duration
	IsLearner         bool
	// Peers is the transport, whose peers follow the applied conf changes (nil: none).
	Peers Peers
	// StrictReconfigCheck refuses a membership change that would lose quorum
	// (etcd's --strict-reconfig-check, default true).
	StrictReconfigCheck bool
	// AutoCompactionMode is "periodic" or "revision"; with AutoCompactionPeriod or
	// AutoCompactionRevisions zero there is no auto compaction.
	AutoCompactionMode      string
	AutoCompactionPeriod    time.Duration
	AutoCompactionRevisions int64
	// PeerClient asks the other members for their version (GET <peer URL>/version) when
	// this member leads and decides the cluster version (version.go); nil is
	// http.DefaultClient, which reaches only plain-HTTP peers.
	PeerClient *http.Client
	// MaxInflightBytes bounds the encoded bytes of this member's proposals in flight
	// (admit.go); 0: DefaultMaxInflightBytes, < 0: no bound.
	MaxInflightBytes int64
	// OnApply, if set, is called by the apply loop with the store's revision after
	// every applied hand-over (entries or a snapshot install). It must not block: the
	// watch hub's Notify.
	OnApply func(rev int64)
	// Tracer, if set, records the spans of requests (trace.go); WarningApplyDuration
	// is etcd's --warning-apply-duration (0: 100ms).
	Tracer               trace.Tracer
	WarningApplyDuration time.Duration
	// Auth configures tokens and password hashing (auth.go).
	Auth AuthConfig
	// Observer is told failed proposals and slow applies (observer.go); nil: nobody.
	Observer Observer
}

// Server serves the etcd API on top of a raftnode and the state machine.
type Server struct {
	cfg   Config
	lg    *zap.Logger
	node  *raftnode.Node
	store *mvcc.Store
	app   *apply.Applier

	ids      *idGenerator
	lessor   *lessor.Lessor // the leader's lease expiry (lease.go)
	cpReset  cpResetter     // checkpoint resets of renewed leases (lease.go)
	leaseFwd leaseForwarder // forwarded renewals and the leader's peer URLs (leasefwd.go)
	waits    *waitRegistry
	admit    admission
	applied  *indexWaiter

	readMu       sync.RWMutex
	readNotifier *notifier
	readWaitc    chan struct{}

	leaderElectedMu sync.RWMutex
	leaderElected   time.Time

	nospaceOnce sync.Mutex
	size        atomic.Int64  // cached state-machine size, see quotaSize
	sizeAt      atomic.Int64  // unix nanoseconds of the cached size
	defragSem   chan struct{} // one Defragment at a time (defrag.go)
	stopping    chan struct{}
	done        chan struct{}
	wg          sync.WaitGroup

	// stopOnce guards the start of stopping (stop.go); stopErr, set before stopping
	// is closed, is why the server stopped on its own (Err).
	stopOnce sync.Once
	stopErr  error

	// learner is whether this member is a learner (members.go keeps it current).
	learner atomic.Bool
	// confMu lets one membership change at a time be proposed from this member.
	confMu sync.Mutex

	authOnce sync.Once // builds authSrv (auth.go)
	authSrv  *authServer
}

// New starts the apply loop and the linearizable-read loop. The raftnode must already
// be started.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{
		defragSem:    make(chan struct{}, 1),
		cfg:          cfg,
		lg:           cfg.Logger,
		node:         cfg.Node,
		store:        cfg.Store,
		app:          cfg.Applier,
		ids:          newIDGenerator(cfg.MemberID, time.Now()),
		waits:        newWaitRegistry(),
		applied:      newIndexWaiter(cfg.Applier.AppliedIndex()),
		readNotifier: newNotifier(),
		readWaitc:    make(chan struct{}, 1),
		stopping:     make(chan struct{}),
		done:         make(chan struct{}),
	}
	switch {
	case cfg.MaxInflightBytes == 0:
		s.admit.limit = DefaultMaxInflightBytes
	case cfg.MaxInflightBytes > 0:
		s.admit.limit = cfg.MaxInflightBytes
	}
	s.learner.Store(cfg.IsLearner)
	s.installTokenListener() // auth.go
	s.installApplyTiming()   // observer.go
	s.wg.Add(6)
	go s.watchNode()
	go s.monitorVersion()
	go s.applyLoop()
	go s.linearizableReadLoop()
	go s.watchLeader()
	go s.runAutoCompaction(cfg.AutoCompactionMode, cfg.AutoCompactionPeriod, cfg.AutoCompactionRevisions)
	s.startLessor()
	return s
}

// watchLeader records when a leader was last elected, to tell a timeout caused by a
// leader failure from a plain one.
func (s *Server) watchLeader() {
	defer s.wg.Done()
	for {
		changed := s.node.LeaderChanged()
		select {
		case <-changed:
			if s.node.Leader() != raft.None {
				s.leaderElectedMu.Lock()
				s.leaderElected = time.Now()
				s.leaderElectedMu.Unlock()
			}
		case <-s.stopping:
			return
		}
	}
}

// reqTimeout is etcd's request timeout: 5s for queueing and disk, plus two election
// timeouts for a possible leader election.
func (s *Server) reqTimeout() time.Duration { return 5*time.Second + 2*s.cfg.ElectionTimeout }

// applyLoop applies what raft committed, in order, and wakes the waiters.
func (s *Server) applyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stopping:
			return
		case ap, ok := <-s.node.Apply():
			if !ok {
				return
			}
			if err := s.applyAll(ap); err != nil {
				if isStoppedNode(err) {
					return // watchNode stops the server and says why
				}
				// The state machine cannot go on from a failed apply: its state
				// would diverge from the log. Stop serving; a restart replays.
				s.lg.Error("apply failed; stopping the server", zap.Error(err))
				s.stop(fmt.Errorf("%w: %w", ErrApplyFailed, err))
				return
			}
		}
	}
}

func (s *Server) applyAll(ap raftnode.Apply) error {
	if ap.Snapshot != nil && !raft.IsEmptySnap(ap.Snapshot) {
		if err := s.installSnapshot(ap); err != nil {
			return err
		}
	}
	ents := ap.Entries
	for len(ents) > 0 {
		// Apply a run of normal entries in one batch; conf changes one at a time.
		n := 0
		for n < len(ents) && ents[n].GetType() == raftpb.EntryType_EntryNormal {
			n++
		}
		if n > 0 {
			if err := s.applyNormal(ents[:n]); err != nil {
				return err
			}
			ents = ents[n:]
			continue
		}
		if err := s.applyConfChange(ents[0]); err != nil {
			return err
		}
		ents = ents[1:]
	}
	// raftnode needs Applied after every Apply, even one whose entries were all
	// skipped as already applied: a follower may be waiting on a conf change.
	last := s.app.AppliedIndex()
	if n := len(ap.Entries); n > 0 && ap.Entries[n-1].GetIndex() < last {
		last = ap.Entries[n-1].GetIndex()
	}
	if s.cfg.OnApply != nil {
		s.cfg.OnApply(s.store.Rev())
	}
	s.node.Applied(last)
	s.applied.trigger(last)
	return nil
}

func (s *Server) installSnapshot(ap raftnode.Apply) error {
	idx := ap.Snapshot.GetMetadata().GetIndex()
	if idx <= s.app.AppliedIndex() {
		return nil
	}
	s.lg.Info("installing snapshot", zap.Uint64("index", idx), zap.String("path", ap.SnapshotPath))
	// Inside Replace no reader opens a view, so every read (and every outgoing
	// snapshot) sees the state before the install or the state after it, never one
	// half written. Applier.Reload reloads the store too.
	err := s.store.Replace(func() error {
		if err := snap.Install(s.cfg.Engine, ap.SnapshotPath); err != nil {
			return fmt.Errorf("install snapshot at %d: %w", idx, err)
		}
		return s.app.Reload()
	})
	if err != nil {
		return err
	}
	s.leasesReloaded()
	s.lg.Info("installed snapshot", zap.Uint64("index", idx), zap.Int64("revision", s.store.Rev()))
	s.syncPeers()
	return nil
}

func (s *Server) applyNormal(ents []*raftpb.Entry) error {
	last := ents[len(ents)-1].GetIndex()
	if last <= s.app.AppliedIndex() {
		return nil
	}
	applyStart := time.Now()
	results, err := s.app.ApplyEntries(ents)
	applyEnd := time.Now()
	if err != nil {
		return err
	}
	s.warnSlowApply(ents, applyStart, applyEnd) // trace.go
	for _, r := range results {
		if r.ID != 0 {
			s.waits.trigger(r.ID, s.traced(r.Result, applyStart, applyEnd))
		}
	}
	return nil
}

// propose sends r through raft and waits until it is applied on this member.
func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (res *apply.Result, err error) {
	began := time.Now()
	defer func() {
		if err != nil {
			s.observer().ProposalFailed()
		}
		s.requestObserver().Requested(requestType(r), err == nil, time.Since(began))
	}()
	if ci, ai := s.node.CommittedIndex(), s.applied.appliedIndex(); ci > ai+maxGapBetweenApplyAndCommit {
		return nil, ErrTooManyRequests
	}
	if err := s.checkCapable(r); err != nil {
		return nil, err
	}
	id := s.ids.next()
	r.Header = &pb.RequestHeader{ID: id}
	if err := s.fillAuthHeader(ctx, r.Header); err != nil {
		return nil, err
	}
	data, err := proto.Marshal(r)
	if err != nil {
		return nil, err
	}
	if s.cfg.MaxRequestBytes > 0 && uint(len(data)) > s.cfg.MaxRequestBytes {
		return nil, ErrRequestTooLarge
	}
	if !s.admit.admit(int64(len(data))) {
		return nil, ErrTooManyRequests
	}
	defer s.admit.release(int64(len(data)))
	ch := s.waits.register(id)
	start := time.Now()
	ctx, span := s.startSpan(ctx, "propose") // trace.go
	defer span.End()
	cctx, cancel := context.WithTimeout(ctx, s.reqTimeout())
	defer cancel()
	// The raft loop takes the proposal with the others queued meanwhile; only a refusal
	// comes back here, through the same wait as the result (a full inbox refuses it at
	// once, inside ProposeAsync).
	s.node.ProposeAsync(cctx, data, func(err error) {
		if err != nil {
			s.waits.trigger(id, proposeError{err})
		}
	})
	select {
	case x := <-ch:
		switch v := s.untrace(ctx, x, start).(type) {
		case *apply.Result:
			if v != nil {
				return v, nil
			}
		case proposeError:
			if errors.Is(v.err, raft.ErrProposalDropped) {
				return nil, ErrNoLeader
			}
			if errors.Is(v.err, raftnode.ErrTooManyProposals) {
				// The raft loop's inbox is full: push back as etcd does when
				// apply lags, rather than queue without bound.
				return nil, ErrTooManyRequests
			}
			return nil, s.parseProposeCtxErr(v.err, start)
		}
		return nil, ErrStopped
	case <-cctx.Done():
		s.waits.trigger(id, nil)
		return nil, s.parseProposeCtxErr(cctx.Err(), start)
	case <-s.stopping:
		return nil, ErrStopped
	}
}

// proposeError is what the wait of a proposal that raft never took receives.
type proposeError struct{ err error }

func (s *Server) parseProposeCtxErr(err error, start time.Time) error {
	switch {
	case errors.Is(err, context.Canceled):
		return ErrCanceled
	case errors.Is(err, context.DeadlineExceeded):
		s.leaderElectedMu.RLock()
		elected := s.leaderElected
		s.leaderElectedMu.RUnlock()
		prevLeaderLost := elected.Add(-2 * s.cfg.ElectionTimeout)
		if start.After(prevLeaderLost) && start.Before(elected) {
			return ErrTimeoutDueToLeaderFail
		}
		return ErrTimeout
	case errors.Is(err, raftnode.ErrStopped):
		return ErrStopped
	default:
		return err
	}
}
