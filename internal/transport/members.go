package transport

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ErrMemberRemoved is what a peer's 410 Gone means: this member was removed from the
// cluster (etcd's rafthttp answers a removed member's messages so, with the same text).
var ErrMemberRemoved = errors.New("the member has been permanently removed from the cluster")

// pathMembers is etcd's GET /members on the peer port, which a member joining with
// --initial-cluster-state=existing reads the cluster from.
const pathMembers = "/members"

// pathPromote is etcd's POST /members/promote/<decimal ID> on the peer port.
const pathPromote = "/members/promote/"

// hdrEtcdClusterID is the header etcd's GET /members carries the cluster ID in.
const hdrEtcdClusterID = "X-Etcd-Cluster-ID"

// Membership is what the transport asks of the member list (server.Server implements
// it; cmd wires it with SetMembership).
type Membership interface {
	// PeerMembers answers GET /members: the cluster ID and the members as JSON
	// (membership.MarshalMembers).
	PeerMembers() (clusterID uint64, body []byte, err error)
	// IsRemoved tells whether id belonged to a member removed from the cluster: its
	// messages are refused with 410 Gone, so that it learns it was removed.
	IsRemoved(id uint64) bool
	// RemovedByPeer is called (once) when a peer answered 410 Gone: this member was
	// removed. It must not block.
	RemovedByPeer()
	// ServePromote serves POST /members/promote/<id>: a MemberPromote another member
	// forwards to this one, the leader (etcd's peer protocol).
	ServePromote(w http.ResponseWriter, r *http.Request)
}

type membershipBox struct{ m Membership }

// SetMembership sets (or replaces) the member list the transport serves and consults.
// Until it is called GET /members answers 503 and no peer is taken as removed.
func (t *Transport) SetMembership(m Membership) { t.membersp.Store(&membershipBox{m: m}) }

func (t *Transport) membership() Membership {
	if b := t.membersp.Load(); b != nil {
		return b.m
	}
	return nil
}

// handleMembers serves GET /members as etcd: the cluster ID in X-Etcd-Cluster-ID, the
// members as a JSON array.
func (t *Transport) handleMembers(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	ms := t.membership()
	if ms == nil {
		http.Error(w, "member list not available yet", http.StatusServiceUnavailable)
		return
	}
	id, body, err := ms.PeerMembers()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set(hdrEtcdClusterID, idString(id))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// handlePromote hands a forwarded promotion to the member list's server.
func (t *Transport) handlePromote(w http.ResponseWriter, r *http.Request) {
	ms := t.membership()
	if ms == nil {
		http.Error(w, "member list not available yet", http.StatusServiceUnavailable)
		return
	}
	ms.ServePromote(w, r)
}

// refuseRemoved answers 410 Gone, and returns true, when r comes from a removed member.
func (t *Transport) refuseRemoved(w http.ResponseWriter, r *http.Request) bool {
	ms := t.membership()
	if ms == nil {
		return false
	}
	from, err := strconv.ParseUint(r.Header.Get(hdrFrom), 16, 64)
	if err != nil || !ms.IsRemoved(from) {
		return false
	}
	t.lg.Warn("rejected peer request from a removed member", zap.String("remote-member-id", idString(from)))
	http.Error(w, "removed member", http.StatusGone)
	return true
}

// maybeRemoved tells the member list, once, that a peer says this member was removed.
func (t *Transport) maybeRemoved(err error) {
	if !errors.Is(err, ErrMemberRemoved) || !t.removedOnce.CompareAndSwap(false, true) {
		return
	}
	t.lg.Warn("a peer says this member was removed from the cluster", zap.Error(err))
	if ms := t.membership(); ms != nil {
		ms.RemovedByPeer()
	}
}

// ReachablePeers probes every peer at once (GET /raft/probe, within timeout) and
// returns the IDs of those that answered. The strict reconfiguration check counts them
// where etcd counts the peers its streams have been connected to for a while.
func (t *Transport) ReachablePeers(ctx context.Context, timeout time.Duration) map[uint64]bool {
	t.mu.Lock()
	peers := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	out := map[uint64]bool{}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.probe(ctx); err == nil {
				p.succeeded()
				mu.Lock()
				out[p.id] = true
				mu.Unlock()
			} else if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
				p.markDown()
			}
		}()
	}
	wg.Wait()
	return out
}
