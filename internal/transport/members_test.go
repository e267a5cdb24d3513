package transport

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// fakeMembers is a member list for the transport: who was removed, and whether this
// member was told it was removed.
type fakeMembers struct {
	mu      sync.Mutex
	removed map[uint64]bool
	told    chan struct{}
	once    sync.Once
}

func newFakeMembers(removed ...uint64) *fakeMembers {
	f := &fakeMembers{removed: map[uint64]bool{}, told: make(chan struct{})}
	for _, id := range removed {
		f.removed[id] = true
	}
	return f
}

func (f *fakeMembers) PeerMembers() (uint64, []byte, error) {
	return 0xc1, []byte(`[{"id":1,"name":"a","peerURLs":["http://a:2380"]}]`), nil
}

func (f *fakeMembers) IsRemoved(id uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removed[id]
}

func (f *fakeMembers) RemovedByPeer() { f.once.Do(func() { close(f.told) }) }

func (f *fakeMembers) ServePromote(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusTeapot)
}

// GET /members answers as etcd's peer handler: the cluster ID in X-Etcd-Cluster-ID
// (hex), the members as a JSON array.
func TestGetMembers(t *testing.T) {
	a := newNode(t, 1, 7, nil)
	resp, err := http.Get(a.srv.URL + pathMembers)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before SetMembership: %s", resp.Status)
	}
	a.tr.SetMembership(newFakeMembers())
	resp, err = http.Get(a.srv.URL + pathMembers)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ms []map[string]any
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Etcd-Cluster-ID") != "c1" || json.Unmarshal(body, &ms) != nil || len(ms) != 1 {
		t.Fatalf("GET /members: %s, cluster ID %q, body %s", resp.Status, resp.Header.Get("X-Etcd-Cluster-ID"), body)
	}
	if resp, err := http.Post(a.srv.URL+pathPromote+"5", "", nil); err != nil || resp.StatusCode != http.StatusTeapot {
		t.Fatalf("POST /members/promote/5 not handed to the member list: %v %v", resp, err)
	}
}

// A removed member's messages are refused with 410 Gone and processed by nobody; the
// removed member, told so by its peer, reports it once.
func TestRemovedMemberRefused(t *testing.T) {
	a, b := newNode(t, 1, 7, nil), newNode(t, 2, 7, nil)
	aMembers, bMembers := newFakeMembers(), newFakeMembers(1)
	a.tr.SetMembership(aMembers)
	b.tr.SetMembership(bMembers)
	a.tr.AddPeer(2, []string{b.srv.URL})
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	select {
	case <-aMembers.told:
	case <-time.After(10 * time.Second):
		t.Fatal("the removed member was not told it was removed")
	}
	b.raft.mu.Lock()
	n := len(b.raft.msgs)
	b.raft.mu.Unlock()
	if n != 0 {
		t.Fatalf("a removed member's messages were processed: %d", n)
	}
	select {
	case <-bMembers.told:
		t.Fatal("the member that refused was told it was removed")
	default:
	}
}

// ReachablePeers lists the peers that answer their probe, not those that are down.
func TestReachablePeers(t *testing.T) {
	a, b, c := newNode(t, 1, 7, nil), newNode(t, 2, 7, nil), newNode(t, 3, 7, nil)
	a.tr.AddPeer(2, []string{b.srv.URL})
	a.tr.AddPeer(3, []string{c.srv.URL})
	c.srv.Close()
	got := a.tr.ReachablePeers(t.Context(), 2*time.Second)
	if !got[2] || got[3] || len(got) != 1 {
		t.Fatalf("ReachablePeers = %v, want only 2", got)
	}
}
