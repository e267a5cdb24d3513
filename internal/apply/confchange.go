package apply

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage"
)

// ConfChangeKind says what a conf change does to the member list.
type ConfChangeKind int

// Kinds of ConfChange.
const (
	// ConfChangeRaftOnly changes raft's configuration alone: a change refused (Err
	// set), a ConfChangeV2 (never proposed by MetaStore) or an add without Context
	// (raft's bootstrap entries of builds that did not put the member in it).
	ConfChangeRaftOnly ConfChangeKind = iota
	ConfChangeAdd
	ConfChangeRemove
	ConfChangeUpdate
	ConfChangePromote
)

// ConfChange is a committed conf-change entry checked against the member list
// (PrepareConfChange), to be given to raft and then recorded (CommitConfChange).
type ConfChange struct {
	Index, Term uint64
	// ID is the proposal's request ID (raftpb.ConfChange.Id), 0 if none.
	ID uint64
	// Raft is what to hand raft's ApplyConfChange: the entry's change, or, when Err is
	// set, the same change with NodeId raft.None, which clears raft's pending change and
	// changes nothing (as etcd does with a change that fails validation).
	Raft raftpb.ConfChangeI
	Kind ConfChangeKind
	// Member is the member as the list holds it after an add, update or promotion; for
	// a removal only its ID is set. Nil for ConfChangeRaftOnly.
	Member *membership.Member
	// Err is the request's error (membership.ErrIDRemoved, ErrIDExists,
	// ErrPeerURLexists, ErrIDNotFound, ErrMemberNotLearner, ErrTooManyLearners, or
	// ErrMalformedEntry): the member list stays as it was.
	Err error

	members []byte // the list to store after the change; nil: unchanged
}

// SetMaxLearners sets the most learners an add may leave in the list (etcd's
// --max-learners, checked when a learner add is applied). Call it before the first
// apply; the default is membership.DefaultMaxLearners.
func (a *Applier) SetMaxLearners(n int) { a.maxLearners = n }

// PrepareConfChange decodes the conf-change entry e and checks it against the member
// list as etcd's ValidateConfigurationChange does. It writes nothing: hand c.Raft to
// raft, then record the outcome with CommitConfChange. Apply goroutine only. Its error
// is fatal (the member list cannot be read); a change refused is c.Err.
func (a *Applier) PrepareConfChange(e *raftpb.Entry) (*ConfChange, error) {
	c := &ConfChange{Index: e.GetIndex(), Term: e.GetTerm()}
	if e.GetType() == raftpb.EntryType_EntryConfChangeV2 {
		var v2 raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &v2); err != nil {
			return nil, fmt.Errorf("apply: decoding conf change at %d: %w", c.Index, err)
		}
		c.Raft = &v2
		return c, nil
	}
	cc := &raftpb.ConfChange{}
	if err := proto.Unmarshal(e.GetData(), cc); err != nil {
		return nil, fmt.Errorf("apply: decoding conf change at %d: %w", c.Index, err)
	}
	c.ID, c.Raft = cc.GetId(), cc
	cl, err := a.loadMembers()
	if err != nil {
		return nil, err
	}
	if err := a.checkConfChange(c, cc, cl); err != nil {
		c.Err, c.Kind, c.Member, c.members = err, ConfChangeRaftOnly, nil, nil
		refused := proto.Clone(cc).(*raftpb.ConfChange)
		refused.NodeId = proto.Uint64(raft.None)
		c.Raft = refused
	}
	return c, nil
}

// checkConfChange applies cc to cl (a copy) and fills c; a returned error refuses it.
func (a *Applier) checkConfChange(c *ConfChange, cc *raftpb.ConfChange, cl *membership.Cluster) error {
	id := cc.GetNodeId()
	if cl.IsRemoved(id) {
		return membership.ErrIDRemoved
	}
	switch cc.GetType() {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		if len(cc.GetContext()) == 0 {
			return nil // raft only: a bootstrap entry of an older build
		}
		ctx, err := membership.DecodeAddContext(cc.GetContext())
		if err != nil || ctx.ID != id {
			return fmt.Errorf("%w: conf change for %x with context %q", ErrMalformedEntry, id, cc.GetContext())
		}
		if ctx.IsPromote {
			if err := cl.PromoteMember(id); err != nil {
				return err
			}
			c.Kind = ConfChangePromote
		} else {
			if err := cl.AddMember(ctx.Member.Clone(), a.maxLearnersOrDefault()); err != nil {
				return err
			}
			c.Kind = ConfChangeAdd
		}
		c.Member = cl.Member(id).Clone()
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		if err := cl.RemoveMember(id); err != nil {
			return err
		}
		c.Kind, c.Member = ConfChangeRemove, &membership.Member{ID: id}
	case raftpb.ConfChangeType_ConfChangeUpdateNode:
		m, err := membership.DecodeUpdateContext(cc.GetContext())
		if err != nil || m.ID != id {
			return fmt.Errorf("%w: conf change for %x with context %q", ErrMalformedEntry, id, cc.GetContext())
		}
		if err := cl.UpdatePeerURLs(id, m.PeerURLs); err != nil {
			return err
		}
		c.Kind, c.Member = ConfChangeUpdate, cl.Member(id).Clone()
	default:
		return fmt.Errorf("%w: conf change type %v", ErrMalformedEntry, cc.GetType())
	}
	b, err := membership.Marshal(cl)
	if err != nil {
		return err
	}
	c.members = b
	return nil
}

func (a *Applier) maxLearnersOrDefault() int {
	if a.maxLearners <= 0 {
		return membership.DefaultMaxLearners
	}
	return a.maxLearners
}

// loadMembers reads the member list; an engine without one yields an empty list with
// the stored cluster ID (0 if none).
func (a *Applier) loadMembers() (*membership.Cluster, error) {
	raw, err := a.eng.Get(storage.MetaMembers)
	if errors.Is(err, storage.ErrNotFound) {
		id, err := readUint64(a.eng, storage.MetaClusterID)
		if err != nil {
			return nil, err
		}
		return &membership.Cluster{ID: id}, nil
	}
	if err != nil {
		return nil, err
	}
	return membership.Unmarshal(raw)
}

// CommitConfChange records what applying c to raft produced: the configuration cs,
// the member list after the change (when it changed) and the applied index and term,
// in ONE batch. An entry at or below AppliedIndex is ignored. cs must not be nil: a
// raft node that stopped before it applied the change has no configuration to record
// (raftnode.ApplyConfChange fails then), and an empty one would lose every member.
func (a *Applier) CommitConfChange(c *ConfChange, cs *raftpb.ConfState) error {
	if cs == nil {
		return fmt.Errorf("apply: conf change at %d: no configuration to record", c.Index)
	}
	return a.applyConfChange(c.Index, c.Term, cs, c.members, c.Err != nil)
}

// recordRefused appends index to storage.MetaConfRefused. A restarting member re-gives
// raft the conf changes between its log snapshot and its applied index itself; it must
// give a refused one as refused (raftnode.Config.ConfChangeRefused), or its raft would
// count a member the others never added. Refusals are operator errors, so the list
// stays short.
func recordRefused(b storage.Batch, index uint64) error {
	v, err := b.Get(storage.MetaConfRefused)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	v = append(append([]byte(nil), v...), storage.PutUint64(index)...)
	return b.Set(storage.MetaConfRefused, v)
}

// ConfChangeRefused tells whether the conf change at index was refused when applied,
// as last committed. Safe from any goroutine.
func (a *Applier) ConfChangeRefused(index uint64) (bool, error) {
	v, err := a.eng.Get(storage.MetaConfRefused)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for len(v) >= 8 {
		x, err := storage.Uint64(v[:8])
		if err != nil {
			return false, err
		}
		if x == index {
			return true, nil
		}
		v = v[8:]
	}
	return false, nil
}
