package raftnode

import (
	"context"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Propose proposes data for the log and waits until raft has taken the proposal (not
// until it commits: the caller waits for the entry on Apply). While there is no leader
// the proposal waits, until ctx is done. A proposal may still be lost without error.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	return n.proposeWait(ctx, &raftpb.Entry{Data: data})
}

// proposeWait queues e and waits for raft's answer, ctx's end or the node's stop.
func (n *Node) proposeWait(ctx context.Context, e *raftpb.Entry) error {
	errc := make(chan error, 1)
	n.queue(proposal{ents: []*raftpb.Entry{e}, ctx: ctx, done: func(err error) { errc <- err }})
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrStopped
	}
}

// queue hands p to the loop, or answers it with ErrStopped.
func (n *Node) queue(p proposal) {
	if !n.in.addProposal(p) {
		p.finish(ErrStopped)
	}
}

// ProposeAsync queues data for the log and returns at once. The loop gives it to raft
// with the other proposals queued meanwhile, as soon as there is a leader; done, if
// not nil, is then called on the loop goroutine (it must not block) with raft's
// answer: nil, or raft.ErrProposalDropped. If ctx ends first, done gets ctx's error;
// if the node stops, ErrStopped; if the inbox is full, ErrTooManyProposals at once.
func (n *Node) ProposeAsync(ctx context.Context, data []byte, done func(error)) {
	n.queue(proposal{ents: []*raftpb.Entry{{Data: data}}, ctx: ctx, done: done})
}

// ProposeConfChange proposes a membership change (*raftpb.ConfChange or
// *raftpb.ConfChangeV2). It is dropped if another change is pending.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	typ, data, err := raftpb.MarshalConfChange(cc)
	if err != nil {
		return err
	}
	return n.proposeWait(ctx, &raftpb.Entry{Type: typ.Enum(), Data: data})
}

// ReadIndex asks for a linearizable read point; the answer arrives on ReadStates with
// the same rctx. It may be lost without error: retry after a timeout.
func (n *Node) ReadIndex(_ context.Context, rctx []byte) error {
	if !n.in.addCall(func() { n.rn.ReadIndex(rctx) }) {
		return ErrStopped
	}
	return nil
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
// It fails with ErrStopped if the node stopped before raft applied the change: the
// caller must then not record the entry (there is no configuration to record, and an
// empty one would drop every member). It never returns a nil ConfState with a nil error.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) (*raftpb.ConfState, error) {
	var cs *raftpb.ConfState
	if !n.call(func() { cs = n.applyConfChange(cc) }) || cs == nil {
		return nil, ErrStopped
	}
	return cs, nil
}

// Step hands a message from a peer to raft. It does not wait for raft to take it. A
// forwarded proposal (MsgProp) waits in the inbox for a leader for at most
// ForwardTimeout; other messages are stepped on the loop's next turn.
func (n *Node) Step(_ context.Context, m *raftpb.Message) error {
	var ok bool
	if m.GetType() == raftpb.MsgProp {
		ok = n.in.addProposal(proposal{ents: m.GetEntries(), deadline: time.Now().Add(n.cfg.ForwardTimeout)})
	} else {
		ok = n.in.addMessage(m)
	}
	if !ok {
		return ErrStopped
	}
	return nil
}

// Process is Step under the name the transport calls.
func (n *Node) Process(ctx context.Context, m *raftpb.Message) error { return n.Step(ctx, m) }

// ReportUnreachable tells raft that the last message to id was not delivered.
func (n *Node) ReportUnreachable(id uint64) { n.in.addCall(func() { n.rn.ReportUnreachable(id) }) }

// ReportSnapshot tells raft how sending a snapshot to id ended.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n.in.addCall(func() { n.rn.ReportSnapshot(id, status) })
}

// TransferLeadership asks the leader to hand leadership to transferee. Only the
// leader acts on it (lead is unused: the loop asks its own raft).
func (n *Node) TransferLeadership(_ context.Context, _, transferee uint64) {
	n.in.addCall(func() { n.rn.TransferLeader(transferee) })
}

// Campaign makes this member campaign for leadership now.
func (n *Node) Campaign(context.Context) error {
	var err error
	if !n.call(func() { err = n.rn.Campaign() }) {
		return ErrStopped
	}
	return err
}

// Status is raft's status; zero after Stop.
func (n *Node) Status() raft.Status {
	var st raft.Status
	n.call(func() { st = n.rn.Status() })
	return st
}

// AdvanceTicks ticks raft k times at once. etcd does this at start (a single member at
// once, several once their peers answer), so that the first election comes a tick or
// two after start instead of a full election timeout later.
func (n *Node) AdvanceTicks(k int) {
	n.call(func() {
		for i := 0; i < k; i++ {
			n.rn.Tick()
		}
	})
}

// ID is this member's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Leader is the current leader's ID, raft.None (0) when unknown.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// IsLeader tells whether this member is the leader.
func (n *Node) IsLeader() bool { return n.isLeader.Load() }

// LeaderChanges is how many times this member has seen a new leader (etcd's
// etcd_server_leader_changes_seen_total).
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

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
