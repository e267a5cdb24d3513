package lessor

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/lease"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// table is the replicated table as the lessor sees it.
type table map[int64]lease.Info

func (t table) List() []lease.Info {
	var out []lease.Info
	for _, in := range t {
		out = append(out, in)
	}
	return out
}
func (t table) Get(id int64) (lease.Info, bool) { in, ok := t[id]; return in, ok }

func setup(t *testing.T, src table) (*Lessor, *fakeClock) {
	t.Helper()
	c := &fakeClock{now: time.Unix(1000, 0)}
	return New(src, Config{Clock: c, CheckpointInterval: time.Second, MinAfterPromote: time.Second, RevokeRetry: 3 * time.Second}), c
}

func sorted(ids []int64) []int64 { slices.Sort(ids); return ids }

func TestExpiryOnlyOnThePrimary(t *testing.T) {
	l, c := setup(t, table{})
	l.Granted(1, 5) // not primary: ignored
	c.advance(time.Hour)
	if got := l.Expired(10); got != nil {
		t.Fatalf("a follower reports expired leases %v", got)
	}
	if _, _, err := l.Renew(1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Renew on a follower = %v", err)
	}
}

func TestExpireInBatches(t *testing.T) {
	l, c := setup(t, table{})
	l.Promote()
	for id := int64(1); id <= 2500; id++ {
		l.Granted(id, 10)
	}
	l.Granted(9999, 20)
	c.advance(10*time.Second - time.Millisecond)
	if got := l.Expired(1000); len(got) != 0 {
		t.Fatalf("%d expired early", len(got))
	}
	c.advance(time.Millisecond)
	var all []int64
	for batch := l.Expired(1000); len(batch) > 0; batch = l.Expired(1000) {
		if len(batch) > 1000 {
			t.Fatalf("batch of %d", len(batch))
		}
		all = append(all, batch...)
	}
	if len(all) != 2500 || slices.Contains(all, 9999) {
		t.Fatalf("expired %d leases (contains 9999: %v)", len(all), slices.Contains(all, 9999))
	}
	// A lease being revoked cannot be renewed, and is offered again after RevokeRetry
	// when its revoke did not come through.
	if _, _, err := l.Renew(1); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("Renew of an expired lease = %v", err)
	}
	for id := int64(2); id <= 2500; id++ {
		l.Revoked(id)
	}
	c.advance(3 * time.Second)
	if got := l.Expired(1000); !slices.Equal(got, []int64{1}) {
		t.Fatalf("retried %v, want [1]", got)
	}
}

func TestRenew(t *testing.T) {
	src := table{}
	l, c := setup(t, src)
	l.Promote()
	src[1] = lease.Info{ID: 1, TTL: 10}
	l.Granted(1, 10)
	c.advance(8 * time.Second)
	ttl, needCP, err := l.Renew(1)
	if err != nil || ttl != 10 || needCP {
		t.Fatalf("Renew = %d, %v, %v", ttl, needCP, err)
	}
	c.advance(9 * time.Second)
	if rem, _ := l.Remaining(1); rem != time.Second {
		t.Fatalf("remaining %v, want 1s", rem)
	}
	if got := l.Expired(10); len(got) != 0 {
		t.Fatalf("renewed lease expired: %v", got)
	}
	// Once a remaining TTL is checkpointed, a renewal must reset it through Raft.
	src[1] = lease.Info{ID: 1, TTL: 10, Remaining: 3}
	if _, needCP, _ = l.Renew(1); !needCP {
		t.Fatal("Renew of a checkpointed lease does not ask for a checkpoint")
	}
	if _, _, err := l.Renew(2); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("Renew of an unknown lease = %v", err)
	}
}

func TestCheckpoints(t *testing.T) {
	l, c := setup(t, table{})
	l.Promote()
	l.Granted(1, 10)  // checkpointed every 1s
	l.Granted(2, 100) // every 10s
	c.advance(999 * time.Millisecond)
	if got := l.DueCheckpoints(10); len(got) != 0 {
		t.Fatalf("early checkpoints %v", got)
	}
	c.advance(time.Millisecond)
	if got := l.DueCheckpoints(10); !slices.Equal(got, []Checkpoint{{ID: 1, Remaining: 9}}) {
		t.Fatalf("checkpoints at 1s = %v", got)
	}
	c.advance(500 * time.Millisecond)
	if got := l.DueCheckpoints(10); len(got) != 0 {
		t.Fatalf("checkpoints at 1.5s = %v", got)
	}
	c.advance(9 * time.Second) // t = 10.5s: lease 1 expired, lease 2 due
	if got := l.DueCheckpoints(10); !slices.Equal(got, []Checkpoint{{ID: 2, Remaining: 90}}) {
		t.Fatalf("checkpoints at 10.5s = %v", got)
	}
	// Rounded up: 89.5s left is checkpointed as 90.
}

// TestPromoteContinuesFromCheckpoint: a new leader gives each lease its checkpointed
// remaining TTL (never the whole TTL again), the whole TTL when none was checkpointed,
// each plus MinAfterPromote (etcd's extension by the election timeout).
func TestPromoteContinuesFromCheckpoint(t *testing.T) {
	src := table{
		1: {ID: 1, TTL: 10, Remaining: 6},
		2: {ID: 2, TTL: 30},
		3: {ID: 3, TTL: 10, Remaining: 0},
		4: {ID: 4, TTL: 60, Remaining: 1},
	}
	l, c := setup(t, src)
	l.Promote()
	if l.Len() != 4 {
		t.Fatalf("tracks %d leases", l.Len())
	}
	for id, want := range map[int64]time.Duration{1: 7 * time.Second, 2: 31 * time.Second, 3: 11 * time.Second, 4: 2 * time.Second} {
		if got, err := l.Remaining(id); err != nil || got != want {
			t.Errorf("lease %d: remaining %v, %v; want %v", id, got, err, want)
		}
	}
	c.advance(2 * time.Second)
	if got := sorted(l.Expired(10)); !slices.Equal(got, []int64{4}) {
		t.Fatalf("expired after 2s: %v", got)
	}
	l.Revoked(4)
	c.advance(5 * time.Second)
	if got := sorted(l.Expired(10)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("expired after 7s: %v", got)
	}
	l.Demote()
	if l.Len() != 0 || l.Expired(10) != nil {
		t.Fatal("a demoted lessor still tracks leases")
	}
}

// hookSource runs during before listing: grants and revokes applied while Promote
// builds its schedule.
type hookSource struct {
	table
	during func()
}

func (h hookSource) List() []lease.Info { out := h.table.List(); h.during(); return out }

func TestPromoteKeepsGrantsAndRevokesMeanwhile(t *testing.T) {
	c := &fakeClock{now: time.Unix(1000, 0)}
	var l *Lessor
	src := hookSource{table: table{1: {ID: 1, TTL: 10}, 2: {ID: 2, TTL: 10}}}
	src.during = func() { l.Granted(3, 5); l.Revoked(1) }
	l = New(src, Config{Clock: c})
	l.Promote()
	if l.Len() != 2 {
		t.Fatalf("tracks %d leases, want 2 (2 and 3)", l.Len())
	}
	if _, err := l.Remaining(1); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("revoked lease 1 still tracked: %v", err)
	}
	if rem, err := l.Remaining(3); err != nil || rem != 5*time.Second {
		t.Fatalf("lease 3 granted while promoting: %v, %v", rem, err)
	}
}

type listSource []lease.Info

func (s listSource) List() []lease.Info              { return s }
func (s listSource) Get(id int64) (lease.Info, bool) { return lease.Info{}, false }

// BenchmarkPromote1M: a new leader taking over the expiry of 1,000,000 leases.
func BenchmarkPromote1M(b *testing.B) {
	src := make(listSource, 1_000_000)
	for i := range src {
		src[i] = lease.Info{ID: int64(i + 1), TTL: 60, Remaining: int64(i % 60)}
	}
	for b.Loop() {
		l := New(src, Config{})
		l.Promote()
	}
}

// TestResetStopsAPromotionUnderWay: a snapshot install replacing the table while
// Promote lists the old one must not leave the old schedule in place.
func TestResetStopsAPromotionUnderWay(t *testing.T) {
	c := &fakeClock{now: time.Unix(1000, 0)}
	var l *Lessor
	src := hookSource{table: table{1: {ID: 1, TTL: 10}}, during: func() {
		if l.Reset() {
			t.Error("Reset during a promotion reported a primary lessor")
		}
	}}
	l = New(src, Config{Clock: c})
	l.Promote()
	if l.Primary() || l.Len() != 0 {
		t.Fatalf("a promotion reset under way made the lessor primary (%d leases)", l.Len())
	}
	l2 := New(table{1: {ID: 1, TTL: 10}}, Config{Clock: c})
	l2.Promote()
	if !l2.Reset() || l2.Primary() {
		t.Fatal("Reset of a primary lessor")
	}
}

// TestSteadyRenewalsNeedNoCheckpoint: a lease its client renews every TTL/3 (as
// clientv3 does) is, after its first period, never due for a checkpoint, so no renewal
// waits for a Raft round;
// once the client stops, the lease is checkpointed after twice its period, then every
// tenth of its TTL.
func TestSteadyRenewalsNeedNoCheckpoint(t *testing.T) {
	l, c := setup(t, table{})
	l.Promote()
	l.Granted(1, 60) // first checkpoint due after 6s unless renewed
	if _, _, err := l.Renew(1); err != nil {
		t.Fatal(err)
	}
	// Its first period is not known yet: checkpointed every 6s meanwhile.
	c.advance(20 * time.Second)
	if got := l.DueCheckpoints(10); len(got) != 1 {
		t.Fatalf("checkpoints in the first period = %v", got)
	}
	if _, _, err := l.Renew(1); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		c.advance(20 * time.Second)
		if got := l.DueCheckpoints(10); len(got) != 0 {
			t.Fatalf("a steadily renewed lease is due for checkpoints %v", got)
		}
		if _, _, err := l.Renew(1); err != nil {
			t.Fatal(err)
		}
	}
	// The client stops: checkpointed 30s (min(2*20s, 60s/2)) after its last renewal.
	c.advance(29 * time.Second)
	if got := l.DueCheckpoints(10); len(got) != 0 {
		t.Fatalf("checkpointed before the missed renewal: %v", got)
	}
	c.advance(time.Second)
	if got := l.DueCheckpoints(10); !slices.Equal(got, []Checkpoint{{ID: 1, Remaining: 30}}) {
		t.Fatalf("checkpoints 30s after the last renewal = %v", got)
	}
	c.advance(6 * time.Second)
	if got := l.DueCheckpoints(10); !slices.Equal(got, []Checkpoint{{ID: 1, Remaining: 24}}) {
		t.Fatalf("checkpoints 36s after the last renewal = %v", got)
	}
}
