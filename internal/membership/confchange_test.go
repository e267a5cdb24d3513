package membership

import (
	"testing"
)

// The body real etcd v3.7.3 answers GET /members on its peer port with (one started
// member and one learner just added), and the contexts it puts in its conf changes,
// decode as etcd meant them.
func TestEtcdPeerMembersAndContextsDecode(t *testing.T) {
	body := `[{"id":9754497976910166836,"peerURLs":["http://127.0.0.1:1"],"isLearner":true},` +
		`{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"e1","clientURLs":["http://127.0.0.1:23791"]}]`
	ms, err := UnmarshalMembers([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].ID != 0x875ef03a7bff3b34 || !ms[0].IsLearner || ms[0].IsStarted() ||
		ms[1].Name != "e1" || ms[1].ClientURLs[0] != "http://127.0.0.1:23791" || ms[1].IsLearner {
		t.Fatalf("decoded %+v %+v", ms[0], ms[1])
	}
	// Our encoding decodes back to the same members.
	cl := NewClusterFromMembers(0xd1cfaf999eb97a2a, ms)
	b, err := MarshalMembers(cl)
	if err != nil {
		t.Fatal(err)
	}
	again, err := UnmarshalMembers(b)
	if err != nil || len(again) != 2 || again[0].ID != ms[0].ID || !again[0].IsLearner || again[1].Name != "e1" {
		t.Fatalf("round trip: %s", b)
	}

	// etcd's ConfigChangeContext of an add and of a promotion (json.Marshal of it).
	add, err := DecodeAddContext([]byte(`{"id":12,"peerURLs":["http://a:2380"],"isLearner":true,"isPromote":false}`))
	if err != nil || add.ID != 12 || !add.IsLearner || add.IsPromote || add.PeerURLs[0] != "http://a:2380" {
		t.Fatalf("etcd's add context: %+v, %v", add, err)
	}
	promote, err := DecodeAddContext([]byte(`{"id":12,"peerURLs":null,"isPromote":true}`))
	if err != nil || promote.ID != 12 || !promote.IsPromote {
		t.Fatalf("etcd's promote context: %+v, %v", promote, err)
	}
	// Ours decodes the same way.
	b, _ = EncodeAddContext(&Member{ID: 12, PeerURLs: []string{"http://a:2380"}, IsLearner: true})
	if c, err := DecodeAddContext(b); err != nil || c.ID != 12 || !c.IsLearner || c.IsPromote {
		t.Fatalf("our add context %s: %+v, %v", b, c, err)
	}
	b, _ = EncodePromoteContext(12)
	if c, err := DecodeAddContext(b); err != nil || c.ID != 12 || !c.IsPromote {
		t.Fatalf("our promote context %s: %+v, %v", b, c, err)
	}
	b, _ = EncodeUpdateContext(12, []string{"http://b:2380"})
	if m, err := DecodeUpdateContext(b); err != nil || m.ID != 12 || m.PeerURLs[0] != "http://b:2380" {
		t.Fatalf("our update context %s: %+v, %v", b, m, err)
	}
}

// etcd's --strict-reconfig-check counts (RaftCluster.IsReadyTo*): started voters must
// remain a quorum.
func TestStrictReconfigCounts(t *testing.T) {
	mk := func(started, unstarted, learners int) *Cluster {
		c := &Cluster{}
		id := uint64(1)
		for i := 0; i < started; i++ {
			c.insert(&Member{ID: id, Name: "s", PeerURLs: []string{"http://s"}})
			id++
		}
		for i := 0; i < unstarted; i++ {
			c.insert(&Member{ID: id, PeerURLs: []string{"http://u"}})
			id++
		}
		for i := 0; i < learners; i++ {
			c.insert(&Member{ID: id, PeerURLs: []string{"http://l"}, IsLearner: true})
			id++
		}
		return c
	}
	for _, tc := range []struct {
		name                string
		c                   *Cluster
		add, remove1, promo bool // remove1: remove member 1 (started)
	}{
		{"1 started: a second may be added", mk(1, 0, 0), true, false, true},
		{"3 started", mk(3, 0, 0), true, true, true},
		{"2 started, 1 unstarted", mk(2, 1, 0), false, false, true},
		{"1 started, 1 unstarted", mk(1, 1, 0), false, false, true},
		{"3 started, 1 learner", mk(3, 0, 1), true, true, true},
	} {
		if got := tc.c.ReadyToAddVotingMember(); got != tc.add {
			t.Errorf("%s: ReadyToAddVotingMember = %v", tc.name, got)
		}
		if got := tc.c.ReadyToRemoveVotingMember(1); got != tc.remove1 {
			t.Errorf("%s: ReadyToRemoveVotingMember(1) = %v", tc.name, got)
		}
		if got := tc.c.ReadyToPromoteMember(99); got != tc.promo {
			t.Errorf("%s: ReadyToPromoteMember = %v", tc.name, got)
		}
	}
}
