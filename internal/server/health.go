package server

import "time"

// healthInterval is etcd's HealthInterval: the strict reconfiguration check counts a
// peer as active only once this member has seen it up for that long, so a change made
// right after a start or a reconnection is refused as etcd refuses it.
const healthInterval = 5 * time.Second

// activeSincer is implemented by a Peers that knows since when each peer is up
// (*transport.Transport: etcd's ActiveSince; zero while the peer is down).
type activeSincer interface {
	ActiveSince(id uint64) time.Time
}

// activeLongEnough tells whether peer id, which reach says answers now, has been up
// for healthInterval (etcd's isConnectedSince(now - HealthInterval)). Without an
// activeSincer, answering now is enough.
func (s *Server) activeLongEnough(reach map[uint64]bool, id uint64) bool {
	if !reach[id] {
		return false
	}
	as, ok := s.cfg.Peers.(activeSincer)
	if !ok {
		return true
	}
	since := as.ActiveSince(id)
	return !since.IsZero() && !since.After(time.Now().Add(-healthInterval))
}
