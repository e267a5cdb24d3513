package transport

import (
	"context"
	"sync"
	"time"
)

// Observer is told what the transport sends and receives, for etcd's
// etcd_network_* metrics (cmd wires internal/metrics' implementation). Every method
// runs on a sending or receiving path: it must be cheap and must not block.
type Observer interface {
	// PeerSent: bytes written on the message stream to the peer.
	PeerSent(to uint64, bytes int)
	// PeerSendFailed: sends to the peer failed: msgs is 1 for a message dropped from a
	// full queue, and 1 for a failed stream (the message it was opened for, or the one
	// being written) plus the queued messages dropped with it (etcd's
	// peer_sent_failures_total, which the etcd-mixin's etcdMembersDown alert reads).
	PeerSendFailed(to uint64, msgs int)
	// PeerReceived: the bytes of one message frame received from the peer.
	PeerReceived(from uint64, bytes int)
	// HeartbeatSendFailed: a heartbeat to the peer was dropped (its queue is full).
	HeartbeatSendFailed(to uint64)
	// SnapshotSent: a snapshot send to the peer ended, after took, with err (nil: it
	// was delivered).
	SnapshotSent(to uint64, took time.Duration, err error)
	// PeerRoundTrip: a probe of the peer (ProbeRoundTrips) was answered after took.
	PeerRoundTrip(to uint64, took time.Duration)
}

type nopObserver struct{}

func (nopObserver) PeerSent(uint64, int)                      {}
func (nopObserver) PeerSendFailed(uint64, int)                {}
func (nopObserver) PeerReceived(uint64, int)                  {}
func (nopObserver) HeartbeatSendFailed(uint64)                {}
func (nopObserver) SnapshotSent(uint64, time.Duration, error) {}
func (nopObserver) PeerRoundTrip(uint64, time.Duration)       {}

// ProbeRoundTrips probes every peer once, each within timeout, all at once, and tells
// the Observer the round trip of each that answered (etcd's
// etcd_network_peer_round_trip_time_seconds, which etcd's prober feeds the same way).
func (t *Transport) ProbeRoundTrips(ctx context.Context, timeout time.Duration) {
	t.mu.Lock()
	peers := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			if p.probe(pctx) == nil {
				t.cfg.Observer.PeerRoundTrip(p.id, time.Since(start))
			}
		}()
	}
	wg.Wait()
}
