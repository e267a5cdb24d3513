package transport

import "time"

// Observer is told what the transport sends and receives, for etcd's
// etcd_network_* metrics (cmd wires internal/metrics' implementation). Every method
// runs on a sending or receiving path: it must be cheap and must not block.
type Observer interface {
	// PeerSent: bytes written on the message stream to the peer.
	PeerSent(to uint64, bytes int)
	// PeerReceived: the bytes of one message frame received from the peer.
	PeerReceived(from uint64, bytes int)
	// HeartbeatSendFailed: a heartbeat to the peer was dropped (its queue is full).
	HeartbeatSendFailed(to uint64)
	// SnapshotSent: a snapshot send to the peer ended, after took, with err (nil: it
	// was delivered).
	SnapshotSent(to uint64, took time.Duration, err error)
}

type nopObserver struct{}

func (nopObserver) PeerSent(uint64, int)                      {}
func (nopObserver) PeerReceived(uint64, int)                  {}
func (nopObserver) HeartbeatSendFailed(uint64)                {}
func (nopObserver) SnapshotSent(uint64, time.Duration, error) {}
