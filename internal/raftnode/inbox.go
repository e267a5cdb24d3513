package raftnode

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// proposal is one queued MsgProp's entries, from this member's server (ctx) or
// forwarded by a follower (deadline).
type proposal struct {
	ents     []*raftpb.Entry
	ctx      context.Context // nil for a forwarded proposal
	deadline time.Time       // zero for a local proposal
	done     func(error)     // nil: nobody listens
}

// expired says why p may no longer go to raft, nil if it may.
func (p *proposal) expired(now time.Time) error {
	if p.ctx != nil {
		return p.ctx.Err()
	}
	if !p.deadline.IsZero() && now.After(p.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (p *proposal) size() uint64 {
	var s uint64
	for _, e := range p.ents {
		s += uint64(len(e.GetData()))
	}
	return s
}

func (p *proposal) finish(err error) {
	if p.done != nil {
		p.done(err)
	}
}

// inbox is the work other goroutines queue for the loop. Adding never blocks; the
// loop is woken through wakec (capacity 1).
type inbox struct {
	mu     sync.Mutex
	props  []proposal
	spare  []proposal // the previous props, emptied, for reuse
	msgs   []*raftpb.Message
	calls  []func()
	closed bool
	wakec  chan struct{}
}

func (in *inbox) wake() {
	select {
	case in.wakec <- struct{}{}:
	default:
	}
}

func (in *inbox) addProposal(p proposal) bool {
	return in.add(func() { in.props = append(in.props, p) })
}

func (in *inbox) addMessage(m *raftpb.Message) bool {
	return in.add(func() { in.msgs = append(in.msgs, m) })
}

func (in *inbox) addCall(f func()) bool {
	return in.add(func() { in.calls = append(in.calls, f) })
}

// add runs push under the lock and wakes the loop; false once the inbox is closed.
func (in *inbox) add(push func()) bool {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return false
	}
	push()
	in.mu.Unlock()
	in.wake()
	return true
}

func (in *inbox) takeCalls() []func() {
	in.mu.Lock()
	defer in.mu.Unlock()
	calls := in.calls
	in.calls = nil
	return calls
}

func (in *inbox) takeMessages() []*raftpb.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	msgs := in.msgs
	in.msgs = nil
	return msgs
}

func (in *inbox) takeProposals() []proposal {
	in.mu.Lock()
	defer in.mu.Unlock()
	props := in.props
	in.props, in.spare = in.spare, nil
	return props
}

// recycle gives back a slice takeProposals returned, once the loop is done with it.
func (in *inbox) recycle(props []proposal) {
	clear(props)
	in.mu.Lock()
	if in.spare == nil {
		in.spare = props[:0]
	}
	in.mu.Unlock()
}

// expire finishes the proposals whose time is up; with a leader the loop takes them
// all anyway, so it only scans while there is none.
func (in *inbox) expire(hasLeader bool) {
	if hasLeader {
		return
	}
	now := time.Now()
	var dead []proposal
	in.mu.Lock()
	kept := in.props[:0]
	for _, p := range in.props {
		if p.expired(now) != nil {
			dead = append(dead, p)
		} else {
			kept = append(kept, p)
		}
	}
	clear(in.props[len(kept):])
	in.props = kept
	in.mu.Unlock()
	for _, p := range dead {
		p.finish(p.expired(now))
	}
}

// close refuses everything from now on and returns the proposals still queued.
func (in *inbox) close() []proposal {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	props := in.props
	in.props, in.msgs, in.calls = nil, nil, nil
	return props
}
