package apply

import (
	"bytes"
	"errors"
	"io"
	"log"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/storage"
)

// confHarness is one member's state machine and a real raft RawNode (memory storage),
// which computes the ConfState each conf change yields, as raftnode's does.
type confHarness struct {
	*harness
	rn *raft.RawNode
}

func newConfHarness(t *testing.T, cl *membership.Cluster) *confHarness {
	t.Helper()
	h := newHarness(t)
	wb := h.eng.NewBatch() // as cmd does at bootstrap: the cluster ID, no member list
	if err := wb.Set(storage.MetaClusterID, storage.PutUint64(cl.ID)); err != nil {
		t.Fatal(err)
	}
	if err := wb.Commit(true); err != nil {
		t.Fatal(err)
	}
	wb.Close()
	rn, err := raft.NewRawNode(&raft.Config{ID: cl.Members[0].ID, ElectionTick: 10, HeartbeatTick: 1,
		Storage: raft.NewMemoryStorage(), MaxInflightMsgs: 16, MaxSizePerMsg: 1 << 20,
		Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return &confHarness{harness: h, rn: rn}
}

// apply applies cc as the next entry: prepare, raft, commit.
func (h *confHarness) apply(cc *raftpb.ConfChange) *ConfChange {
	h.t.Helper()
	h.index++
	data, err := proto.Marshal(cc)
	if err != nil {
		h.t.Fatal(err)
	}
	e := &raftpb.Entry{Index: proto.Uint64(h.index), Term: proto.Uint64(1), Type: raftpb.EntryType_EntryConfChange.Enum(), Data: data}
	c, err := h.app.PrepareConfChange(e)
	if err != nil {
		h.t.Fatalf("PrepareConfChange: %v", err)
	}
	cs := h.rn.ApplyConfChange(c.Raft)
	if err := h.app.CommitConfChange(c, cs); err != nil {
		h.t.Fatalf("CommitConfChange: %v", err)
	}
	return c
}

func (h *confHarness) members() *membership.Cluster {
	h.t.Helper()
	cl, err := h.app.Members()
	if err != nil {
		h.t.Fatal(err)
	}
	return cl
}

func addCC(t testing.TB, m *membership.Member) *raftpb.ConfChange {
	b, err := membership.EncodeAddContext(m)
	if err != nil {
		t.Fatal(err)
	}
	typ := raftpb.ConfChangeType_ConfChangeAddNode
	if m.IsLearner {
		typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
	}
	return &raftpb.ConfChange{Id: proto.Uint64(77), Type: typ.Enum(), NodeId: proto.Uint64(m.ID), Context: b}
}

func promoteCC(t testing.TB, id uint64) *raftpb.ConfChange {
	b, _ := membership.EncodePromoteContext(id)
	return &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id), Context: b}
}

func removeCC(id uint64) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}
}

func updateCC(t testing.TB, id uint64, urls ...string) *raftpb.ConfChange {
	b, _ := membership.EncodeUpdateContext(id, urls)
	return &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(id), Context: b}
}

func threeMembers(t testing.TB) *membership.Cluster {
	cl, err := membership.NewCluster("tok", map[string][]string{
		"a": {"http://10.0.0.1:2380"}, "b": {"http://10.0.0.2:2380"}, "c": {"http://10.0.0.3:2380"}})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// The life of a member as an operator drives it, and each refusal etcd makes: every
// change is written with the conf state and the applied index, and a refused change
// writes nothing but the applied index and leaves raft's configuration unchanged.
func TestConfChangeMemberLifecycle(t *testing.T) {
	cl := threeMembers(t)
	h := newConfHarness(t, cl)
	// raft's bootstrap entries carry the members of --initial-cluster: applying them
	// builds the list (the state machine holds none before).
	if got := h.members(); len(got.Members) != 0 || got.ID != cl.ID {
		t.Fatalf("before bootstrap: %+v", got)
	}
	for _, m := range cl.Members {
		if c := h.apply(addCC(t, m)); c.Err != nil || c.Kind != ConfChangeAdd {
			t.Fatalf("bootstrap add of %x: %+v", m.ID, c)
		}
	}
	want, _ := membership.Marshal(cl)
	if got, _ := h.eng.Get(storage.MetaMembers); !bytes.Equal(got, want) {
		t.Fatalf("after bootstrap the list is %s, want the initial cluster %s", got, want)
	}
	// The same add again, as etcd: the ID exists.
	if c := h.apply(addCC(t, cl.Members[0])); !errors.Is(c.Err, membership.ErrIDExists) {
		t.Fatalf("second add of a member: %v, want ErrIDExists", c.Err)
	}

	d := &membership.Member{ID: 0xd, PeerURLs: []string{"http://10.0.0.4:2380"}, IsLearner: true}
	c := h.apply(addCC(t, d))
	if c.Err != nil || c.Kind != ConfChangeAdd || c.ID != 77 || !c.Member.IsLearner {
		t.Fatalf("add learner: %+v", c)
	}
	h.reopen() // durable, with the conf state, in one batch
	cs, _ := h.app.ConfState()
	if !slices.Contains(cs.GetLearners(), 0xd) || h.app.AppliedIndex() != h.index {
		t.Fatalf("after add: conf state %v, applied %d want %d", cs, h.app.AppliedIndex(), h.index)
	}
	if m := h.members().Member(0xd); m == nil || !m.IsLearner || m.IsStarted() {
		t.Fatalf("member list after add: %+v", m)
	}

	refusals := []struct {
		name string
		cc   *raftpb.ConfChange
		want error
	}{
		{"second learner beyond --max-learners", addCC(t, &membership.Member{ID: 0xe, PeerURLs: []string{"http://10.0.0.5:2380"}, IsLearner: true}), membership.ErrTooManyLearners},
		{"peer URL in use", addCC(t, &membership.Member{ID: 0xf, PeerURLs: []string{"http://10.0.0.4:2380"}}), membership.ErrPeerURLexists},
		{"existing ID, other URLs", addCC(t, &membership.Member{ID: 0xd, PeerURLs: []string{"http://10.0.0.9:2380"}}), membership.ErrIDExists},
		{"promote a voter", promoteCC(t, cl.Members[0].ID), membership.ErrMemberNotLearner},
		{"promote unknown", promoteCC(t, 0x99), membership.ErrIDNotFound},
		{"remove unknown", removeCC(0x99), membership.ErrIDNotFound},
		{"update to a URL in use", updateCC(t, 0xd, "http://10.0.0.1:2380"), membership.ErrPeerURLexists},
		{"context of another member", &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(0x42), Context: mustAddContext(t, d)}, ErrMalformedEntry},
	}
	for _, r := range refusals {
		before, _ := h.eng.Get(storage.MetaMembers)
		csBefore, _ := h.app.ConfState()
		c := h.apply(r.cc)
		if !errors.Is(c.Err, r.want) {
			t.Errorf("%s: Err = %v, want %v", r.name, c.Err, r.want)
		}
		if v1, _ := c.Raft.AsV1(); v1.GetNodeId() != raft.None {
			got := v1.GetNodeId()
			t.Errorf("%s: raft is given node %x, want none", r.name, got)
		}
		after, _ := h.eng.Get(storage.MetaMembers)
		csAfter, _ := h.app.ConfState()
		if !bytes.Equal(before, after) || !proto.Equal(csBefore, csAfter) || h.app.AppliedIndex() != h.index {
			t.Errorf("%s: a refused change changed the member list or conf state (applied %d, index %d)", r.name, h.app.AppliedIndex(), h.index)
		}
		// Recorded, so that a restart gives raft the change refused again.
		if refused, err := h.app.ConfChangeRefused(h.index); !refused || err != nil {
			t.Errorf("%s: ConfChangeRefused(%d) = %v, %v", r.name, h.index, refused, err)
		}
	}

	if c := h.apply(promoteCC(t, 0xd)); c.Err != nil || c.Kind != ConfChangePromote || c.Member.IsLearner {
		t.Fatalf("promote: %+v", c)
	}
	if refused, err := h.app.ConfChangeRefused(h.index); refused || err != nil {
		t.Errorf("an applied change is recorded as refused: %v, %v", refused, err)
	}
	if cs, _ := h.app.ConfState(); !slices.Contains(cs.GetVoters(), 0xd) || len(cs.GetLearners()) != 0 {
		t.Fatalf("after promote: %v", cs)
	}
	if c := h.apply(updateCC(t, 0xd, "http://10.0.0.40:2380")); c.Err != nil || c.Member.PeerURLs[0] != "http://10.0.0.40:2380" {
		t.Fatalf("update: %+v", c)
	}
	if c := h.apply(removeCC(0xd)); c.Err != nil || c.Kind != ConfChangeRemove {
		t.Fatalf("remove: %+v", c)
	}
	got := h.members()
	if got.Member(0xd) != nil || !got.IsRemoved(0xd) {
		t.Fatalf("after remove: %+v", got)
	}
	if cs, _ := h.app.ConfState(); slices.Contains(cs.GetVoters(), 0xd) {
		t.Fatalf("after remove: %v", cs)
	}
	// A removed ID never comes back, whatever the change.
	for _, cc := range []*raftpb.ConfChange{addCC(t, d), removeCC(0xd), promoteCC(t, 0xd), updateCC(t, 0xd, "http://10.0.0.7:2380")} {
		if c := h.apply(cc); !errors.Is(c.Err, membership.ErrIDRemoved) {
			t.Errorf("%v on a removed ID: %v, want ErrIDRemoved", cc.GetType(), c.Err)
		}
	}
}

func mustAddContext(t testing.TB, m *membership.Member) []byte {
	b, err := membership.EncodeAddContext(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Two members applying the same conf changes hold byte-identical member lists and
// conf states: apply is a function of the entries.
func TestConfChangeDeterministic(t *testing.T) {
	cl := threeMembers(t)
	h1, h2 := newConfHarness(t, cl), newConfHarness(t, cl)
	e := &membership.Member{ID: 0xe, PeerURLs: []string{"http://10.0.0.5:2380", "http://10.0.0.6:2380"}}
	ccs := []*raftpb.ConfChange{addCC(t, cl.Members[0]), addCC(t, cl.Members[1]), addCC(t, cl.Members[2]),
		addCC(t, e), updateCC(t, 0xe, "http://10.0.0.8:2380"), removeCC(cl.Members[1].ID), removeCC(0x5)}
	for _, cc := range ccs {
		h1.apply(cc)
		h2.apply(cc)
	}
	for _, k := range [][]byte{storage.MetaMembers, storage.MetaConfState, storage.MetaAppliedIndex} {
		a, _ := h1.eng.Get(k)
		b, _ := h2.eng.Get(k)
		if !bytes.Equal(a, b) || len(a) == 0 {
			t.Errorf("%s differs: %q vs %q", k, a, b)
		}
	}
}

// A raft node that stopped gives no configuration: nothing may be recorded, least of
// all an empty ConfState, which would drop every member after a restart.
func TestCommitConfChangeWithoutConfState(t *testing.T) {
	cl := threeMembers(t)
	h := newConfHarness(t, cl)
	h.apply(addCC(t, cl.Members[0]))
	want, _ := h.app.ConfState()
	c := &ConfChange{Index: h.index + 1, Term: 1}
	if err := h.app.CommitConfChange(c, nil); err == nil {
		t.Fatal("CommitConfChange with no conf state succeeded")
	}
	if got, _ := h.app.ConfState(); !proto.Equal(got, want) || h.app.AppliedIndex() != h.index {
		t.Fatalf("conf state %v applied %d after a refused commit; want %v at %d", got, h.app.AppliedIndex(), want, h.index)
	}
}
