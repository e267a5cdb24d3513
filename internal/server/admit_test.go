package server

import (
	"sync"
	"testing"
)

func TestAdmissionBoundsInflightBytes(t *testing.T) {
	a := admission{limit: 100}
	if !a.admit(60) || !a.admit(40) {
		t.Fatal("proposals within the bound refused")
	}
	if a.admit(1) {
		t.Fatal("a proposal past the bound admitted")
	}
	a.release(60)
	if !a.admit(50) {
		t.Fatal("room freed by an answered proposal not reused")
	}
	if a.admit(20) {
		t.Fatal("a proposal past the bound admitted after reuse")
	}
	a.release(40)
	a.release(50)
	if got := a.inflight.Load(); got != 0 {
		t.Fatalf("%d bytes in flight after every release", got)
	}
	// One proposal larger than the whole bound goes through alone, and only alone.
	if !a.admit(500) {
		t.Fatal("a lone proposal larger than the bound refused")
	}
	if a.admit(1) {
		t.Fatal("a proposal admitted beside one that fills the bound")
	}
	a.release(500)
}

func TestAdmissionUnboundedAndConcurrent(t *testing.T) {
	var none admission
	for range 1000 {
		if !none.admit(1 << 30) {
			t.Fatal("no bound, yet refused")
		}
	}
	a := admission{limit: 1000}
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int64(0)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if a.admit(10) {
					if n := a.inflight.Load(); n > 0 {
						mu.Lock()
						peak = max(peak, n)
						mu.Unlock()
					}
					a.release(10)
				}
			}
		}()
	}
	wg.Wait()
	if a.inflight.Load() != 0 {
		t.Fatalf("%d bytes in flight after every release", a.inflight.Load())
	}
	if peak > 1000+8*10 {
		t.Fatalf("in flight reached %d, bound 1000", peak)
	}
}
