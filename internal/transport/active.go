package transport

import "time"

// ActiveSince is when this member last saw peer id come up (its stream accepted or
// its probe answered after a failure; or when the peer was added), or the zero time
// while it is failing or unknown: etcd's Transport.ActiveSince, which the strict
// reconfiguration check uses to count only peers connected for a while (etcd's
// HealthInterval). Our streams open when there is something to send and followers send
// nothing to each other, so a peer that never failed counts as up since it was added,
// and ReachablePeers' probes move it too.
func (t *Transport) ActiveSince(id uint64) time.Time {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return time.Time{}
	}
	return p.upSince
}

// markDown records a failed probe: the peer is failing until a stream or probe
// succeeds again.
func (p *peer) markDown() {
	p.mu.Lock()
	p.failing = true
	p.mu.Unlock()
}
