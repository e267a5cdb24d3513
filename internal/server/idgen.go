package server

import (
	"sync/atomic"
	"time"
)

// idGenerator makes request IDs unique across members and restarts, as etcd's idutil:
// the top 16 bits are the low bits of the member ID; the low 48 bits start at the
// start time in milliseconds shifted left by 8 and count up by one per request.
type idGenerator struct {
	prefix uint64
	suffix atomic.Uint64
}

func newIDGenerator(memberID uint64, now time.Time) *idGenerator {
	g := &idGenerator{prefix: (memberID & 0xFFFF) << 48}
	g.suffix.Store((uint64(now.UnixMilli()) & (1<<40 - 1)) << 8)
	return g
}

func (g *idGenerator) next() uint64 {
	return g.prefix | (g.suffix.Add(1) & (1<<48 - 1))
}
