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

// entryOverhead bounds what an entry adds to a MsgProp beyond its data (the entry's
// and its field's tags and lengths), so that size is an upper bound of the encoding.
const entryOverhead = 16

// size is an upper bound of p's entries' encoded size in a raft message.
func (p *proposal) size() uint64 {
	var s uint64
	for _, e := range p.ents {
		s += uint64(len(e.GetData())) + entryOverhead
	}
	return s
}

func (p *proposal) finish(err error) {
	if p.done != nil {
		p.done(err)
	}
}

// inbox is the work other goroutines queue for the loop. Adding never blocks; the
// loop is woken through wakec (capacity 1). The proposals queued are bounded (at most
// maxProps of them, maxBytes of entries in all): one that does not fit is refused at
// once with ErrTooManyProposals, so memory stays bounded while the loop is behind
// (it waits on the state machine, or there is no leader). Messages and calls are not
// bounded: raft and the transport bound them (in flight per peer, the peer queues).
type inbox struct {
	mu       sync.Mutex
	props    []proposal
	bytes    uint64 // the size of props
	maxProps int
	maxBytes uint64
	spare    []proposal // the previous props, emptied, for reuse
	msgs     []*raftpb.Message
	calls    []func()
	closed   bool
	wakec    chan struct{}
}

func (in *inbox) wake() {
	select {
	case in.wakec <- struct{}{}:
	default:
	}
}

// addProposal queues p; false once the inbox is closed. A proposal that does not fit
// (the count or byte bound would be passed) is not queued: it is answered at once,
// on the caller's goroutine, with ErrTooManyProposals (a forwarded one, which nobody
// listens to, is dropped as raft drops proposals). A single proposal larger than
// maxBytes fits an empty inbox.
func (in *inbox) addProposal(p proposal) bool {
	size := p.size()
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return false
	}
	if len(in.props) > 0 && (len(in.props) >= in.maxProps || in.bytes+size > in.maxBytes) {
		in.mu.Unlock()
		p.finish(ErrTooManyProposals)
		return true
	}
	in.props = append(in.props, p)
	in.bytes += size
	in.mu.Unlock()
	in.wake()
	return true
}

// queued is the number and size of the proposals queued.
func (in *inbox) queued() (int, uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.props), in.bytes
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
	in.bytes = 0
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
			in.bytes -= p.size()
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
	in.bytes = 0
	return props
}
