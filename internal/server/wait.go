package server

import (
	"sync"
)

// waitRegistry hands the result of an applied proposal to the goroutine that proposed
// it, keyed by the request ID that travels in the entry.
type waitRegistry struct {
	mu sync.Mutex
	m  map[uint64]chan any
}

func newWaitRegistry() *waitRegistry { return &waitRegistry{m: make(map[uint64]chan any)} }

// register returns the channel on which the result for id will arrive (buffered: the
// apply loop never blocks on a waiter that gave up).
func (w *waitRegistry) register(id uint64) <-chan any {
	ch := make(chan any, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

// trigger delivers x to the waiter of id, if any, and forgets it.
func (w *waitRegistry) trigger(id uint64, x any) {
	w.mu.Lock()
	ch, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		ch <- x
	}
}

// indexWaiter lets goroutines wait until the applied index reaches a value.
type indexWaiter struct {
	mu      sync.Mutex
	applied uint64
	waiters map[uint64][]chan struct{}
}

func newIndexWaiter(applied uint64) *indexWaiter {
	return &indexWaiter{applied: applied, waiters: make(map[uint64][]chan struct{})}
}

// wait returns a channel closed once the applied index is >= index.
func (w *indexWaiter) wait(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if index <= w.applied {
		close(ch)
		return ch
	}
	w.waiters[index] = append(w.waiters[index], ch)
	return ch
}

// trigger records that everything up to index is applied and wakes its waiters.
func (w *indexWaiter) trigger(index uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if index <= w.applied {
		return
	}
	w.applied = index
	for i, chs := range w.waiters {
		if i <= index {
			for _, ch := range chs {
				close(ch)
			}
			delete(w.waiters, i)
		}
	}
}

func (w *indexWaiter) appliedIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}
