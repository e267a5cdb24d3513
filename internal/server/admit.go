package server

import "sync/atomic"

// DefaultMaxInflightBytes is the default of Config.MaxInflightBytes.
const DefaultMaxInflightBytes = 64 << 20

// admission bounds the bytes of the proposals this member's clients have in flight:
// encoded, handed to raft and not yet answered. Raft's inbox bounds the proposals not
// yet stepped into raft and the apply lag bounds the entries committed but not
// applied; this bounds the rest of the way (the unstable log, replication, the wait
// for apply), so that ten thousand writers of large values cost a bounded amount of
// memory and the writers past the bound get etcd's "too many requests" at once (a
// client retries it with backoff) instead of a growing heap.
//
// A proposal larger than the whole bound is still admitted when nothing else is in
// flight, so that every request --max-request-bytes allows can be served.
type admission struct {
	limit    int64 // <= 0: no bound
	inflight atomic.Int64
}

// admit reserves n bytes and reports whether the proposal may go on; a caller that
// got true calls release(n) when its proposal is answered or abandoned.
func (a *admission) admit(n int64) bool {
	if a.limit <= 0 {
		return true
	}
	after := a.inflight.Add(n)
	if after > a.limit && after != n {
		a.inflight.Add(-n)
		return false
	}
	return true
}

func (a *admission) release(n int64) {
	if a.limit > 0 {
		a.inflight.Add(-n)
	}
}
