package server

import (
	"testing"
	"time"
)

// With a 1h period, a revision is sampled every 6 minutes; nothing is compacted during
// the first hour; then each 6-minute sample compacts to the revision of an hour before.
func TestPeriodicPlan(t *testing.T) {
	start := time.Unix(0, 0)
	p := newPeriodicPlan(time.Hour, start)
	if got := p.sampleInterval(); got != 6*time.Minute {
		t.Fatalf("sample interval %v", got)
	}
	now := start
	rev := int64(100)
	var compacted []int64
	for i := 1; i <= 15; i++ {
		now = now.Add(6 * time.Minute)
		rev += 10 // 10 writes every 6 minutes
		if r := p.sample(now, rev); r != 0 {
			compacted = append(compacted, r)
			p.succeeded(now, r)
		}
	}
	// First compaction at t=60m, to the revision sampled at t=6m (110): the window holds
	// 11 samples, the oldest of which is the one of an hour ago.
	if len(compacted) == 0 || compacted[0] != 110 {
		t.Fatalf("compactions %v, want the first at revision 110", compacted)
	}
	for i := 1; i < len(compacted); i++ {
		if compacted[i] != compacted[i-1]+10 {
			t.Fatalf("compactions %v: want one every sample, 10 revisions apart", compacted)
		}
	}
}

// A period longer than an hour samples every 6 minutes and compacts hourly after the
// first period, keeping the last `period` of revisions.
func TestPeriodicPlanLongPeriod(t *testing.T) {
	start := time.Unix(0, 0)
	p := newPeriodicPlan(2*time.Hour, start)
	if p.sampleInterval() != 6*time.Minute {
		t.Fatalf("sample interval %v", p.sampleInterval())
	}
	now, rev := start, int64(0)
	var at []time.Duration
	for i := 1; i <= 40; i++ {
		now = now.Add(6 * time.Minute)
		rev++
		if r := p.sample(now, rev); r != 0 {
			at = append(at, now.Sub(start))
			p.succeeded(now, r)
			if rev-r < 10 {
				t.Fatalf("compacted to %d at revision %d: less than the retention window kept", r, rev)
			}
		}
	}
	if len(at) < 2 || at[0] != 2*time.Hour || at[1] != 3*time.Hour {
		t.Fatalf("compactions at %v, want at 2h then hourly", at)
	}
}
