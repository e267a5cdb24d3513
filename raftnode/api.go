package raftnode

import (
	"context"
	"errors"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Propose proposes data for the log. It returns when raft has accepted the proposal
// locally (not when it commits); the caller waits for the entry on Apply. It blocks
// while there is no leader, until ctx is done. A proposal may be lost without error.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	return mapErr(n.rn.Propose(ctx, data))
}

// ProposeConfChange proposes a membership change (*raftpb.ConfChange or
// *raftpb.ConfChangeV2). It is dropped if another change is pending.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	return mapErr(n.rn.ProposeConfChange(ctx, cc))
}

// ReadIndex asks for a linearizable read point; the answer arrives on ReadStates with
// the same rctx. It may be lost without error: retry after a timeout.
func (n *Node) ReadIndex(ctx context.Context, rctx []byte) error {
	return mapErr(n.rn.ReadIndex(ctx, rctx))
}

// ReadStates delivers answers to ReadIndex. Answers are dropped when nobody reads.
func (n *Node) ReadStates() <-chan raft.ReadState { return n.readStatec }

// Apply delivers committed work in log order, after it is durable in the log. It is
// closed when the node stops.
func (n *Node) Apply() <-chan Apply { return n.applyc }

// Applied reports that the state machine has committed (to the engine, in the batch
// that also holds MetaAppliedIndex) everything up to index. Call it after each Apply.
func (n *Node) Applied(index uint64) {
	for {
		cur := n.applied.Load()
		if index <= cur || n.applied.CompareAndSwap(cur, index) {
			break
		}
	}
	select {
	case n.appliedc <- struct{}{}:
	default:
	}
}

// ApplyConfChange applies a committed configuration change to raft and returns the
// resulting configuration, which the state machine must store (storage.MetaConfState).
// It returns nil if the node stopped meanwhile: do not commit the entry then.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return n.rn.ApplyConfChange(cc)
}

// Step hands a message from a peer to raft.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error {
	return mapErr(n.rn.Step(ctx, m))
}

// Process is Step under the name the transport calls.
func (n *Node) Process(ctx context.Context, m *raftpb.Message) error { return n.Step(ctx, m) }

// ReportUnreachable tells raft that the last message to id was not delivered.
func (n *Node) ReportUnreachable(id uint64) { n.rn.ReportUnreachable(id) }

// ReportSnapshot tells raft how sending a snapshot to id ended.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) { n.rn.ReportSnapshot(id, status) }

// TransferLeadership asks the leader to hand leadership to transferee.
func (n *Node) TransferLeadership(ctx context.Context, lead, transferee uint64) {
	n.rn.TransferLeadership(ctx, lead, transferee)
}

// Campaign makes this member campaign for leadership now.
func (n *Node) Campaign(ctx context.Context) error { return mapErr(n.rn.Campaign(ctx)) }

// Status is raft's status; zero after Stop.
func (n *Node) Status() raft.Status {
	select {
	case <-n.donec:
		return raft.Status{}
	default:
	}
	return n.rn.Status()
}

// AdvanceTicks ticks raft k times at once. etcd does this at start in a single-member
// cluster, so that its first election comes about one tick after start instead of
// a full election timeout later.
func (n *Node) AdvanceTicks(k int) {
	for i := 0; i < k; i++ {
		n.rn.Tick()
	}
}

// ID is this member's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Leader is the current leader's ID, raft.None (0) when unknown.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// IsLeader tells whether this member is the leader.
func (n *Node) IsLeader() bool { return n.isLeader.Load() }

// Term is the current term as last persisted.
func (n *Node) Term() uint64 { return n.term.Load() }

// CommittedIndex is the commit index as last persisted; cheaper than Status().
func (n *Node) CommittedIndex() uint64 { return n.committed.Load() }

// AppliedIndex is the highest index reported with Applied (or found applied at Start).
func (n *Node) AppliedIndex() uint64 { return n.applied.Load() }

// LeaderChanged returns a channel closed at the next leader change (including losing
// the leader). Call it again for the following change.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.leadMu.Lock()
	defer n.leadMu.Unlock()
	return n.leadc
}

// Done is closed when the node has stopped, by Stop or by a fatal storage error.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Err is the fatal error that stopped the node, nil after a plain Stop. Valid after
// Done is closed.
func (n *Node) Err() error {
	<-n.donec
	return n.err
}

// Stop stops the loop and raft and closes Apply. It is idempotent.
func (n *Node) Stop() {
	n.stopOnce.Do(func() { close(n.stopc) })
	<-n.donec
}

func mapErr(err error) error {
	if errors.Is(err, raft.ErrStopped) {
		return ErrStopped
	}
	return err
}
