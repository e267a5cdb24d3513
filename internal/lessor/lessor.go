// Package lessor owns the leader's view of lease expiry: when each lease expires,
// which leases have expired and must be revoked, and which remaining TTLs are due to be
// checkpointed through Raft. It holds this in memory only, on the leader only, with an
// injected clock.
//
// It decides nothing by itself: the server asks it (Expired, DueCheckpoints) and
// proposes the LeaseRevoke and LeaseCheckpoint requests, which apply writes into the
// replicated table (internal/lease). It must not write the engine or propose.
//
// What a new leader continues from (Promote): each lease's last checkpointed remaining
// TTL, or its whole TTL when none was checkpointed since the grant or the last
// renewal. A new leader gives a lease at least what remained and at most that plus the
// time since its last checkpoint (or renewal) and the election time.
//
// When a lease is checkpointed (renewalDelay): a lease not renewed since its grant,
// or since its last checkpoint, every max(CheckpointInterval, TTL/10). A lease renewed
// by a client at a steady period p (clientv3 renews every TTL/3) is first checkpointed
// max(CheckpointInterval, TTL/10, min(2p, TTL/2)) after its last renewal: a client that
// keeps renewing never has a checkpoint outstanding, so its renewals never wait for a
// Raft round to reset one; a client that stopped has its lease checkpointed once it
// missed its period, then every TTL/10 as above. So a lease costs Raft traffic only in
// the last TTL/2 of its life or while nobody renews it: at most about 10 checkpoints
// per TTL, and the server bounds the total per second on top.
package lessor

import (
	"container/heap"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/metastore/metastore/internal/lease"
)

// Errors, with etcd's messages.
var (
	ErrNotPrimary    = errors.New("not a primary lessor")
	ErrLeaseNotFound = lease.ErrLeaseNotFound
)

// Clock tells the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Source is the replicated table a new leader reads the leases from.
type Source interface {
	List() []lease.Info
	Get(id int64) (lease.Info, bool)
}

// Config of a Lessor. Zero fields take the defaults.
type Config struct {
	Clock Clock
	// CheckpointInterval is the least time between two checkpoints of one lease
	// (default 1s); a lease is checkpointed at most every max(CheckpointInterval, TTL/10).
	CheckpointInterval time.Duration
	// MinAfterPromote is what a leader change adds to every lease's remaining TTL, as
	// etcd extends every lease by the election timeout then: time for clients to reach
	// the new leader. Default 1s.
	MinAfterPromote time.Duration
	// RevokeRetry is how long an expired lease whose revoke was proposed waits before
	// it is offered again (the proposal may have been lost). Default 3s.
	RevokeRetry time.Duration
}

// event is a grant (or a revoke) that happened while Promote built the schedule.
type event struct {
	id, ttl int64
	revoked bool
}

// Checkpoint is a remaining TTL to replicate, in seconds.
type Checkpoint struct{ ID, Remaining int64 }

type item struct {
	id, ttl  int64
	expiry   time.Time
	nextCP   time.Time
	renewed  time.Time     // last grant, renewal or promotion
	period   time.Duration // the last gap between two of those
	revoking bool
	expIdx   int
	cpIdx    int
}

// Lessor is safe for concurrent use.
type Lessor struct {
	cfg Config
	src Source

	mu        sync.Mutex
	primary   bool
	promoting bool    // Promote is building the schedule
	during    []event // grants and revokes while promoting, replayed after
	leases    map[int64]*item
	exp       byExpiry
	cp        byCheckpoint
}

// New returns a Lessor that is not primary.
func New(src Source, cfg Config) *Lessor {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Second
	}
	if cfg.MinAfterPromote <= 0 {
		cfg.MinAfterPromote = time.Second
	}
	if cfg.RevokeRetry <= 0 {
		cfg.RevokeRetry = 3 * time.Second
	}
	return &Lessor{cfg: cfg, src: src, leases: map[int64]*item{}}
}

func seconds(n int64) time.Duration {
	if n > math.MaxInt64/int64(time.Second) {
		return time.Duration(math.MaxInt64 / 2)
	}
	return time.Duration(n) * time.Second
}

func (l *Lessor) cpDelay(ttl int64) time.Duration {
	return max(l.cfg.CheckpointInterval, seconds(ttl)/10)
}

// Promote makes the Lessor primary: every lease of the table expires after its
// checkpointed remaining TTL (its whole TTL if none) plus MinAfterPromote from now.
// The schedule is built without holding the lock (a million leases take most of a
// second), so grants and revokes applied meanwhile are not held up: they are recorded
// and replayed on top of it.
func (l *Lessor) Promote() {
	l.mu.Lock()
	if l.primary || l.promoting {
		l.mu.Unlock()
		return
	}
	l.promoting, l.during = true, nil
	l.mu.Unlock()

	now := l.cfg.Clock.Now()
	list := l.src.List()
	leases := make(map[int64]*item, len(list))
	exp := make(byExpiry, 0, len(list))
	cp := make(byCheckpoint, 0, len(list))
	for _, in := range list {
		rem := in.Remaining
		if rem <= 0 {
			rem = in.TTL
		}
		it := &item{id: in.ID, ttl: in.TTL, expiry: now.Add(seconds(rem) + l.cfg.MinAfterPromote), renewed: now}
		it.nextCP = now.Add(l.cpDelay(in.TTL))
		leases[in.ID] = it
		it.expIdx, it.cpIdx = len(exp), len(cp)
		exp = append(exp, it)
		cp = append(cp, it)
	}
	heap.Init(&exp)
	heap.Init(&cp)

	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.promoting {
		return // demoted meanwhile
	}
	l.leases, l.exp, l.cp = leases, exp, cp
	l.promoting, l.primary = false, true
	for _, ev := range l.during {
		if ev.revoked {
			l.remove(ev.id)
		} else {
			l.remove(ev.id)
			l.add(l.newItem(ev.id, ev.ttl))
		}
	}
	l.during = nil
}

func (l *Lessor) newItem(id, ttl int64) *item {
	now := l.cfg.Clock.Now()
	return &item{id: id, ttl: ttl, expiry: now.Add(seconds(ttl)), nextCP: now.Add(l.cpDelay(ttl)), renewed: now}
}

// renewalDelay is how long after a renewal lease it is first checkpointed: past the
// renewal its client is expected to send next (twice its last period, at most half
// the TTL), and never sooner than cpDelay.
func (l *Lessor) renewalDelay(it *item) time.Duration {
	return max(l.cpDelay(it.ttl), min(2*it.period, seconds(it.ttl)/2))
}

// Demote drops every expiry: another member leads.
func (l *Lessor) Demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.primary, l.promoting, l.during = false, false, nil
	l.leases = map[int64]*item{}
	l.exp, l.cp = nil, nil
}

// Reset demotes the Lessor, also while a Promote is under way (which then ends without
// making it primary: the table it listed is stale), and reports whether it was primary.
// The lease table calls for it when a snapshot install replaced the table.
func (l *Lessor) Reset() (wasPrimary bool) {
	l.mu.Lock()
	wasPrimary = l.primary
	l.mu.Unlock()
	l.Demote()
	return wasPrimary
}

// Primary reports whether the Lessor is primary.
func (l *Lessor) Primary() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.primary
}

// Granted is lease.Listener's: a granted lease expires its TTL from now.
func (l *Lessor) Granted(id, ttl int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.promoting {
		l.during = append(l.during, event{id: id, ttl: ttl})
	}
	if !l.primary {
		return
	}
	l.remove(id)
	l.add(l.newItem(id, ttl))
}

// Revoked is lease.Listener's.
func (l *Lessor) Revoked(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.promoting {
		l.during = append(l.during, event{id: id, revoked: true})
	}
	l.remove(id)
}

func (l *Lessor) add(it *item) {
	l.leases[it.id] = it
	heap.Push(&l.exp, it)
	heap.Push(&l.cp, it)
}

func (l *Lessor) remove(id int64) {
	it := l.leases[id]
	if it == nil {
		return
	}
	delete(l.leases, id)
	heap.Remove(&l.exp, it.expIdx)
	heap.Remove(&l.cp, it.cpIdx)
}

// Renew restarts lease id's TTL and returns it. needCheckpoint says that the table
// holds a checkpointed remaining TTL for it, which the caller must reset to the whole
// TTL (a LeaseCheckpoint with remaining 0) before answering, so that a new leader does
// not give the renewed lease less. ErrNotPrimary on a follower; ErrLeaseNotFound for an
// unknown lease or one that expired (its revoke is under way).
func (l *Lessor) Renew(id int64) (ttl int64, needCheckpoint bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return -1, false, ErrNotPrimary
	}
	it := l.leases[id]
	now := l.cfg.Clock.Now()
	if it == nil || it.revoking || !now.Before(it.expiry) {
		return -1, false, ErrLeaseNotFound
	}
	it.expiry = now.Add(seconds(it.ttl))
	heap.Fix(&l.exp, it.expIdx)
	it.period, it.renewed = now.Sub(it.renewed), now
	it.nextCP = now.Add(l.renewalDelay(it))
	heap.Fix(&l.cp, it.cpIdx)
	if in, ok := l.src.Get(id); ok && in.Remaining > 0 {
		needCheckpoint = true
	}
	return it.ttl, needCheckpoint, nil
}

// Remaining returns how long lease id has left (ErrNotPrimary, ErrLeaseNotFound).
func (l *Lessor) Remaining(id int64) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return 0, ErrNotPrimary
	}
	it := l.leases[id]
	if it == nil {
		return 0, ErrLeaseNotFound
	}
	return max(it.expiry.Sub(l.cfg.Clock.Now()), 0), nil
}

// Expired returns up to limit leases whose time is up, soonest first, and marks them
// as being revoked: they are not returned again before RevokeRetry has passed (when the
// revoke is applied, Revoked forgets them).
func (l *Lessor) Expired(limit int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return nil
	}
	now := l.cfg.Clock.Now()
	var out []int64
	for len(out) < limit && len(l.exp) > 0 && !now.Before(l.exp[0].expiry) {
		it := l.exp[0]
		out = append(out, it.id)
		it.revoking = true
		it.expiry = now.Add(l.cfg.RevokeRetry)
		heap.Fix(&l.exp, 0)
	}
	return out
}

// DueCheckpoints returns up to limit remaining TTLs to checkpoint (rounded up to the
// second, so a new leader never gives less), and schedules each lease's next one.
func (l *Lessor) DueCheckpoints(limit int) []Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return nil
	}
	now := l.cfg.Clock.Now()
	var out []Checkpoint
	for len(out) < limit && len(l.cp) > 0 && !now.Before(l.cp[0].nextCP) {
		it := l.cp[0]
		it.nextCP = now.Add(l.cpDelay(it.ttl))
		heap.Fix(&l.cp, 0)
		if it.revoking {
			continue
		}
		rem := it.expiry.Sub(now)
		if rem <= 0 {
			continue // Expired will offer it
		}
		out = append(out, Checkpoint{ID: it.id, Remaining: int64(math.Ceil(rem.Seconds()))})
	}
	return out
}

// Len is the number of leases tracked (0 unless primary).
func (l *Lessor) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.leases)
}

type byExpiry []*item

func (h byExpiry) Len() int           { return len(h) }
func (h byExpiry) Less(i, j int) bool { return h[i].expiry.Before(h[j].expiry) }
func (h byExpiry) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].expIdx, h[j].expIdx = i, j
}
func (h *byExpiry) Push(x any) { it := x.(*item); it.expIdx = len(*h); *h = append(*h, it) }
func (h *byExpiry) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

type byCheckpoint []*item

func (h byCheckpoint) Len() int           { return len(h) }
func (h byCheckpoint) Less(i, j int) bool { return h[i].nextCP.Before(h[j].nextCP) }
func (h byCheckpoint) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].cpIdx, h[j].cpIdx = i, j
}
func (h *byCheckpoint) Push(x any) { it := x.(*item); it.cpIdx = len(*h); *h = append(*h, it) }
func (h *byCheckpoint) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
