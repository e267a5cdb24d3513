// Package raftnode runs one member's Raft: it owns a raft.RawNode, the goroutine that
// drives it (ticks, the inbox, the Ready loop) and the log cuts, and connects them to
// the durable log (raftlog), the peer transport (the Transport interface) and the
// state machine (the Apply channel; its position is read through
// Config.AppliedState). It does not apply entries, install snapshots or interpret
// entry data: that is the server's job. It must not write state-machine keys; the
// only writes it makes go through raftlog.
//
// # The Ready loop
//
// ONE goroutine (Node.run) owns a raft.RawNode and the loop; no other goroutine touches
// raft. The other goroutines hand it work through an inbox (proposals, peer messages,
// and calls such as ApplyConfChange or Status), which the loop drains all at once
// before it asks raft for a Ready: the proposals queued meanwhile go to raft as few
// MsgProps as fit in MaxSizePerMsg, so many client writes share one Ready, one fsync
// and one append to each follower. Proposals wait in the inbox while there is no
// leader, until their context ends. The inbox holds at most MaxQueuedProposals
// proposals and MaxQueuedProposalBytes of entries: a proposal beyond that is refused at
// once with ErrTooManyProposals, so a loop held up by a slow state machine pushes back
// on the clients instead of growing memory. For every raft.Ready the loop does, in
// this order:
//
//  1. PERSIST rd.Snapshot (metadata, with the received file's path), rd.Entries (a
//     new entry at index i discards every stored entry >= i) and rd.HardState in ONE
//     write to the raft log's WAL, synced when raft requires it
//     (raftlog.Storage.Append). Nothing of this Ready leaves the node BEFORE that
//     returns. A storage error stops the node
//     (Done is closed, Err says why): raft cannot continue on a log it failed to write.
//  2. HAND OVER rd.Snapshot and rd.CommittedEntries, in raft's order, on the Apply
//     channel: every entry is durable in this member's log BEFORE the server sees it.
//     The committed entries that an earlier Ready already made durable (and this one
//     does not replace) are handed over before step 1, so that applying them overlaps
//     the fsync, as etcd does (for a leader that is all of them); the rest, and a
//     snapshot, after it. The channel holds ApplyQueue Applies; when it is full the
//     loop BLOCKS until the server takes one (so new proposals queue in the inbox,
//     up to its bound), running only the queued calls meanwhile, so that the
//     server's own calls (ApplyConfChange) never deadlock with it.
//  3. SEND rd.Messages through the Transport, only AFTER step 1. The one exception
//     (Config.LeaderSendsBeforePersist, Raft thesis 10.2.1, as etcd does): a leader
//     whose Ready does not change the persisted term or vote sends BEFORE step 1, so
//     its disk write overlaps the followers'; raft counts the leader's own entries
//     only once they are persisted, so a quorum still means durable copies. A follower or
//     candidate whose Ready committed a configuration change first WAITS until the
//     server has reported (Applied) that entry applied, so it never counts votes or
//     acks under a stale configuration. MsgSnap is handed to the transport like any
//     message; the transport streams the state and calls ReportSnapshot.
//  4. ADVANCE raft.
//
// After Advance the loop looks for the next Ready at once (a single member commits what
// it has just persisted without waiting for anything). Between Readys it ticks raft
// every TickInterval and, when the server reports
// progress with Applied, takes a log snapshot every SnapshotCount applied entries:
// raftlog.CreateSnapshot at the state machine's applied index (read, with its
// ConfState, from the engine), then Compact, keeping SnapshotCatchupEntries entries for
// slow followers.
//
// # The server's obligations
//
//  0. Before Start, finish a snapshot install a crash interrupted
//     (snap.ResumeInstall), so that Config.AppliedState reads a whole state.
//  1. Read Apply() and apply each Apply fully, in order. If Snapshot is not empty,
//     first snap.Install(engine, SnapshotPath), which replaces the state machine.
//  2. For every entry of type EntryConfChange/EntryConfChangeV2, call ApplyConfChange
//     (with NodeId zeroed to refuse it) and write the returned ConfState to
//     storage.MetaConfState, in the same engine batch as the entry's effects and
//     MetaAppliedIndex/MetaAppliedTerm. If it fails (ErrStopped: the node stopped
//     before raft applied the change) write NOTHING for the entry.
//  3. After committing that batch (sync not needed) call Applied(last index applied).
//  4. Every entry is delivered exactly once across restarts: Start reads the applied
//     index from the engine and does not deliver entries at or below it again (it
//     re-applies their configuration changes to raft itself).
package raftnode

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
)

// ErrStopped is returned by the methods of a stopped Node.
var ErrStopped = errors.New("raftnode: stopped")

// ErrTooManyProposals answers a proposal made while the inbox already holds
// Config.MaxQueuedProposals proposals or MaxQueuedProposalBytes of entries: the loop
// is behind (the state machine is slow, or there is no leader). The server answers the
// client with etcd's "too many requests".
var ErrTooManyProposals = errors.New("raftnode: too many proposals queued")

// Transport sends raft messages to peers. Send must not block: it queues.
type Transport interface {
	Send(msgs []*raftpb.Message)
}

// Config configures Start. Zero values take the defaults noted.
type Config struct {
	ID uint64
	// Peers is non-empty only when bootstrapping a brand-new cluster. When the log is
	// not empty, or Peers is empty (a member joining an existing cluster), raft
	// restarts from Storage.
	Peers   []raft.Peer
	Storage *raftlog.Storage
	// AppliedState reads the state machine's raft position from one consistent view
	// of it: its applied index and term and its ConfState, as the state machine wrote
	// them with its data; nil and no error when it has applied nothing. Required;
	// cmd/metastore reads it with snap.ReadMeta from a snapshot of the store (taken
	// outside any snapshot install).
	AppliedState func() (*raftpb.SnapshotMetadata, error)
	// ConfChangeRefused tells whether the state machine refused the conf change at
	// index (it then gave raft the change with NodeId zeroed). At restart the loop
	// re-gives raft the conf changes the state machine applied after the log snapshot,
	// and must give a refused one refused too. Nil: none was ever refused.
	ConfChangeRefused func(index uint64) (bool, error)
	Transport         Transport
	Logger            *zap.Logger

	TickInterval           time.Duration // etcd --heartbeat-interval; default 100ms
	ElectionTicks          int           // election timeout / heartbeat interval; default 10
	HeartbeatTicks         int           // default 1
	SnapshotCount          uint64        // applied entries between log snapshots; default 10000
	SnapshotCatchupEntries uint64        // entries kept after compaction; default 5000
	MaxSizePerMsg          uint64        // default 1 MiB
	MaxInflightMsgs        int           // default 512
	// MaxUncommittedEntriesSize bounds the leader's uncommitted tail; default 1 GiB.
	MaxUncommittedEntriesSize uint64
	// ForwardTimeout bounds how long a proposal forwarded by a follower waits here for
	// a leader; default 5s (etcd's request timeout).
	ForwardTimeout time.Duration
	// LeaderSendsBeforePersist lets the leader send its messages while it persists
	// the same Ready (see the loop's rule 3).
	LeaderSendsBeforePersist bool
	// MaxQueuedProposals and MaxQueuedProposalBytes bound the proposals waiting in
	// the inbox (see ErrTooManyProposals); defaults 8192 and 64 MiB.
	MaxQueuedProposals     int
	MaxQueuedProposalBytes uint64
	// ApplyQueue is how many Applies may wait for the state machine before the loop
	// blocks; default 16 (each holds about MaxSizePerMsg of entries at most, raft's
	// MaxCommittedSizePerReady, or one larger entry).
	ApplyQueue int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 1
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 10000
	}
	if c.SnapshotCatchupEntries == 0 {
		c.SnapshotCatchupEntries = 5000
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs <= 0 {
		c.MaxInflightMsgs = 512
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = 5 * time.Second
	}
	if c.MaxUncommittedEntriesSize == 0 {
		c.MaxUncommittedEntriesSize = 1 << 30
	}
	if c.MaxQueuedProposals <= 0 {
		c.MaxQueuedProposals = 8192
	}
	if c.MaxQueuedProposalBytes == 0 {
		c.MaxQueuedProposalBytes = 64 << 20
	}
	if c.ApplyQueue <= 0 {
		c.ApplyQueue = 16
	}
}

// Apply is one batch of work for the state machine, in log order.
type Apply struct {
	// Snapshot, when not empty (raft.IsEmptySnap), replaces the state machine and comes
	// before Entries. Its metadata is the position of the state in SnapshotPath.
	Snapshot     *raftpb.Snapshot
	SnapshotPath string
	// Entries are committed and durable in the log.
	Entries []*raftpb.Entry
}

// Node is a running raft member.
type Node struct {
	cfg Config
	rn  *raft.RawNode // only the loop goroutine touches it
	st  *raftlog.Storage
	lg  *zap.Logger

	in inbox
	// removed: this member was removed from the configuration; proposals then wait
	// (and expire) instead of going to raft. Loop-only.
	removed bool

	applyc     chan Apply
	readStatec chan raft.ReadState
	appliedc   chan struct{} // nudges the loop when applied moves
	applied    atomic.Uint64

	// skipUntil: committed entries at or below it are already in the state machine.
	skipUntil uint64
	initial   *Apply // handed over before anything else (restart mid-install)

	lead      atomic.Uint64
	term      atomic.Uint64
	committed atomic.Uint64
	isLeader  atomic.Bool
	// leaderChanges counts the changes to a new known leader (etcd's
	// etcd_server_leader_changes_seen_total).
	leaderChanges atomic.Uint64
	leadMu        sync.Mutex
	leadc         chan struct{}

	stopOnce sync.Once
	stopc    chan struct{}
	donec    chan struct{}
	err      error // set before donec is closed
}

// Start starts raft for cfg.ID, PreVote and CheckQuorum on. It reads the state
// machine's applied index from the engine (Config.AppliedState): the caller must have
// finished a snapshot install a crash interrupted BEFORE (snap.ResumeInstall).
func Start(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if cfg.ID == 0 || cfg.Storage == nil || cfg.Transport == nil || cfg.AppliedState == nil {
		return nil, errors.New("raftnode: Config needs ID, Storage, AppliedState and Transport")
	}
	md, err := cfg.AppliedState()
	if err != nil {
		return nil, fmt.Errorf("raftnode: reading the applied state: %w", err)
	}
	applied := md.GetIndex()
	n := &Node{
		cfg:        cfg,
		st:         cfg.Storage,
		lg:         cfg.Logger.With(zap.String("raft-id", fmt.Sprintf("%x", cfg.ID))),
		applyc:     make(chan Apply, cfg.ApplyQueue),
		readStatec: make(chan raft.ReadState, 64),
		appliedc:   make(chan struct{}, 1),
		leadc:      make(chan struct{}),
		stopc:      make(chan struct{}),
		donec:      make(chan struct{}),
		skipUntil:  applied,
	}
	n.applied.Store(applied)

	snapMeta, snapPath := cfg.Storage.SnapshotFile()
	if snapMeta.GetIndex() > applied {
		// Crashed after persisting a received snapshot, before installing it.
		if snapPath == "" {
			return nil, fmt.Errorf("raftnode: log snapshot at %d is ahead of the state machine (%d) and has no file",
				snapMeta.GetIndex(), applied)
		}
		n.initial = &Apply{Snapshot: &raftpb.Snapshot{Metadata: snapMeta}, SnapshotPath: snapPath}
		n.skipUntil = snapMeta.GetIndex()
	}
	hs := cfg.Storage.HardState()
	n.term.Store(hs.GetTerm())
	n.committed.Store(hs.GetCommit())

	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   cfg.Storage,
		Applied:                   snapMeta.GetIndex(),
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedEntriesSize,
		CheckQuorum:               true,
		PreVote:                   true,
		Logger:                    newRaftLogger(n.lg),
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("raftnode: %w", err)
	}
	n.rn = rn
	n.in.wakec = make(chan struct{}, 1)
	n.in.maxProps, n.in.maxBytes = cfg.MaxQueuedProposals, cfg.MaxQueuedProposalBytes
	last, _ := cfg.Storage.LastIndex()
	if last == 0 && raft.IsEmptyHardState(hs) && len(cfg.Peers) > 0 {
		n.lg.Info("starting a new raft member", zap.Int("peers", len(cfg.Peers)))
		if err := rn.Bootstrap(cfg.Peers); err != nil {
			return nil, fmt.Errorf("raftnode: bootstrap: %w", err)
		}
	} else {
		n.lg.Info("restarting raft member", zap.Uint64("term", hs.GetTerm()),
			zap.Uint64("commit", hs.GetCommit()), zap.Uint64("applied", applied),
			zap.Uint64("snapshot", snapMeta.GetIndex()), zap.Uint64("last", last))
	}
	go n.run()
	return n, nil
}

func (n *Node) run() {
	defer n.shutdown()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	if n.initial != nil {
		select {
		case n.applyc <- *n.initial:
		case <-n.stopc:
			return
		}
	}
	for {
		// Timers and the server's progress are looked at on every turn, so that a loop
		// kept busy by Readys still ticks.
		select {
		case <-n.stopc:
			return
		case <-ticker.C:
			n.rn.Tick()
			n.in.expire(n.hasLeader())
		case <-n.appliedc:
			n.maybeSnapshot()
		default:
		}
		n.drainInbox()
		if n.rn.HasReady() {
			rd := n.rn.Ready()
			if err := n.handleReady(rd); err != nil {
				if !errors.Is(err, ErrStopped) {
					n.lg.Error("raft ready loop stopped", zap.Error(err))
					n.err = err
				}
				return
			}
			n.rn.Advance(rd)
			continue
		}
		select {
		case <-ticker.C:
			n.rn.Tick()
			n.in.expire(n.hasLeader())
		case <-n.in.wakec:
		case <-n.appliedc:
			n.maybeSnapshot()
		case <-n.stopc:
			return
		}
	}
}

// hasLeader tells whether raft knows a leader and may take proposals.
func (n *Node) hasLeader() bool {
	return !n.removed && n.rn.BasicStatus().Lead != raft.None
}

// drainInbox hands everything queued by other goroutines to raft: calls, then peer
// messages, then (when there is a leader) the proposals, as few MsgProps as fit in
// MaxSizePerMsg each.
func (n *Node) drainInbox() {
	n.runCalls()
	for _, m := range n.in.takeMessages() {
		// As raft.Node: a local message from the network, or a response from a
		// member not in the configuration, is ignored.
		_ = n.rn.Step(m)
	}
	if !n.hasLeader() {
		return
	}
	props := n.in.takeProposals()
	if len(props) == 0 {
		return
	}
	now := time.Now()
	self := n.cfg.ID
	for rest := props; len(rest) > 0; {
		var (
			ents []*raftpb.Entry
			size uint64
		)
		i := 0
		for ; i < len(rest); i++ {
			p := &rest[i]
			if err := p.expired(now); err != nil {
				p.finish(err)
				p.ents = nil // answered: not part of the message
				continue
			}
			if len(ents) > 0 && size+p.size() > n.cfg.MaxSizePerMsg {
				break
			}
			ents = append(ents, p.ents...)
			size += p.size()
		}
		batch := rest[:i]
		rest = rest[i:]
		if len(ents) == 0 {
			continue
		}
		err := n.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: &self, Entries: ents})
		for k := range batch {
			if batch[k].ents != nil {
				batch[k].finish(err)
			}
		}
	}
	n.in.recycle(props)
}

// call runs f on the loop goroutine and waits for it; false if the node stopped first.
func (n *Node) call(f func()) bool {
	done := make(chan struct{})
	if !n.in.addCall(func() { f(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-n.donec:
		// The loop may have run f just before stopping.
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// runCalls runs the queued calls (not messages or proposals): first in every drain, and
// on its own while the loop waits on the server inside a Ready, so that the server's
// own calls (ApplyConfChange) never deadlock with it.
func (n *Node) runCalls() {
	for _, f := range n.in.takeCalls() {
		f()
	}
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.setLeader(rd.SoftState.Lead, rd.SoftState.RaftState == raft.StateLeader)
	}
	for _, rs := range rd.ReadStates {
		select {
		case n.readStatec <- rs:
		default:
			n.lg.Warn("read state dropped: ReadStates() is not being read")
		}
	}

	// 0. A leader whose term and vote are already durable may send first (rule 3).
	sent := false
	if n.isLeader.Load() && len(rd.Messages) > 0 && n.cfg.LeaderSendsBeforePersist && !n.hardStateChanges(rd.HardState) {
		n.cfg.Transport.Send(rd.Messages)
		sent = true
	}

	// 1. Committed entries that this member's log already holds durably (appended by an
	// earlier Ready and not replaced by this one) go to the state machine first, so that
	// applying them overlaps this Ready's fsync, as etcd does; the others after it.
	var early, late Apply
	durable, _ := n.st.LastIndex()
	if len(rd.Entries) > 0 {
		durable = min(durable, rd.Entries[0].GetIndex()-1)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		durable = 0 // the snapshot is installed first, and it is not on disk yet
		late.Snapshot = rd.Snapshot
		late.SnapshotPath = string(rd.Snapshot.GetData())
	}
	var confIndex uint64
	for _, e := range rd.CommittedEntries {
		isConf := e.GetType() == raftpb.EntryConfChange || e.GetType() == raftpb.EntryConfChangeV2
		if e.GetIndex() <= n.skipUntil {
			if isConf {
				if err := n.reapplyConfChange(e); err != nil {
					return err
				}
			}
			continue
		}
		if e.GetIndex() <= durable && len(late.Entries) == 0 {
			early.Entries = append(early.Entries, e)
		} else {
			late.Entries = append(late.Entries, e)
		}
		if isConf {
			confIndex = e.GetIndex()
		}
	}
	if err := n.handOver(early); err != nil {
		return err
	}

	// 2. Persist.
	if err := n.st.Append(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return fmt.Errorf("raftnode: persisting ready: %w", err)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		n.term.Store(rd.HardState.GetTerm())
		n.committed.Store(rd.HardState.GetCommit())
	}
	if late.Snapshot != nil {
		n.lg.Info("received snapshot persisted", zap.Uint64("index", rd.Snapshot.GetMetadata().GetIndex()),
			zap.String("path", late.SnapshotPath))
	}
	if err := n.handOver(late); err != nil {
		return err
	}

	// 3. Send.
	if confIndex > 0 && !n.isLeader.Load() {
		for n.applied.Load() < confIndex {
			select {
			case <-n.appliedc:
			case <-n.in.wakec:
				n.runCalls()
			case <-n.stopc:
				return ErrStopped
			}
		}
	}
	if len(rd.Messages) > 0 && !sent {
		n.cfg.Transport.Send(rd.Messages)
	}

	// 4. Advance: the caller's.
	return nil
}

// handOver passes ap to the state machine, if it holds anything.
func (n *Node) handOver(ap Apply) error {
	if ap.Snapshot == nil && len(ap.Entries) == 0 {
		return nil
	}
	for {
		select {
		case n.applyc <- ap:
			return nil
		case <-n.in.wakec:
			n.runCalls()
		case <-n.stopc:
			return ErrStopped
		}
	}
}

// hardStateChanges tells whether hs changes the persisted term or vote (a commit
// index alone needs no durability before sending).
func (n *Node) hardStateChanges(hs *raftpb.HardState) bool {
	if raft.IsEmptyHardState(hs) {
		return false
	}
	cur := n.st.HardState()
	return hs.GetTerm() != cur.GetTerm() || hs.GetVote() != cur.GetVote()
}

// reapplyConfChange gives raft a configuration change the state machine applied
// before this restart, as it gave it then: refused (NodeId zeroed) if it was.
func (n *Node) reapplyConfChange(e *raftpb.Entry) error {
	var cc raftpb.ConfChangeI
	if e.GetType() == raftpb.EntryConfChange {
		c := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return fmt.Errorf("raftnode: conf change at %d: %w", e.GetIndex(), err)
		}
		if n.cfg.ConfChangeRefused != nil {
			refused, err := n.cfg.ConfChangeRefused(e.GetIndex())
			if err != nil {
				return fmt.Errorf("raftnode: conf change at %d: %w", e.GetIndex(), err)
			}
			if refused {
				c.NodeId = proto.Uint64(raft.None)
			}
		}
		cc = c
	} else {
		c := &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return fmt.Errorf("raftnode: conf change at %d: %w", e.GetIndex(), err)
		}
		cc = c
	}
	n.applyConfChange(cc)
	return nil
}

// applyConfChange applies cc to raft. As raft.Node does, a member that the change
// removes stops taking proposals (they wait in the inbox and expire).
func (n *Node) applyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	cfg := n.rn.Status().Config
	_, wasLearner := cfg.Learners[n.cfg.ID]
	_, wasVoter := cfg.Voters.IDs()[n.cfg.ID]
	cs := n.rn.ApplyConfChange(cc)
	if (wasVoter || wasLearner) && !slices.Contains(cs.GetVoters(), n.cfg.ID) && !slices.Contains(cs.GetVotersOutgoing(), n.cfg.ID) &&
		!slices.Contains(cs.GetLearners(), n.cfg.ID) {
		n.removed = true
	}
	return cs
}

// maybeSnapshot takes a log snapshot and compacts when SnapshotCount entries were
// applied since the last one.
func (n *Node) maybeSnapshot() {
	md, _ := n.st.SnapshotFile()
	if n.applied.Load() < md.GetIndex()+n.cfg.SnapshotCount {
		return
	}
	sm, err := n.cfg.AppliedState()
	if err != nil || sm == nil {
		n.lg.Warn("cannot snapshot: state machine position unreadable", zap.Error(err))
		return
	}
	index := sm.GetIndex()
	if index <= md.GetIndex() {
		return
	}
	if err := n.st.CreateSnapshot(index, sm.GetConfState()); err != nil {
		n.lg.Warn("creating log snapshot failed", zap.Uint64("index", index), zap.Error(err))
		return
	}
	if index <= n.cfg.SnapshotCatchupEntries {
		return
	}
	compact := index - n.cfg.SnapshotCatchupEntries
	if first, _ := n.st.FirstIndex(); compact < first {
		return
	}
	if err := n.st.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
		n.lg.Warn("compacting the log failed", zap.Uint64("index", compact), zap.Error(err))
		return
	}
	n.lg.Info("log snapshot taken", zap.Uint64("snapshot-index", index), zap.Uint64("compacted-to", compact))
}

func (n *Node) setLeader(lead uint64, isLeader bool) {
	n.isLeader.Store(isLeader)
	if n.lead.Swap(lead) == lead {
		return
	}
	if lead != raft.None {
		n.leaderChanges.Add(1)
	}
	n.leadMu.Lock()
	close(n.leadc)
	n.leadc = make(chan struct{})
	n.leadMu.Unlock()
}

// shutdown runs when the loop ends, by Stop or by a fatal error. A stopped node knows
// no leader: Leader and IsLeader must not keep vouching for a leader this member no
// longer follows (require-leader checks and health read them), and LeaderChanged
// waiters are woken.
func (n *Node) shutdown() {
	for _, p := range n.in.close() {
		p.finish(ErrStopped)
	}
	n.setLeader(raft.None, false)
	close(n.applyc)
	close(n.donec)
}
