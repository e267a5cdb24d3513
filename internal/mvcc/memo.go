package mvcc

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/metastore/metastore/internal/storage"
)

// countMemo remembers the counts of ranges that committed-state reads counted recently,
// so that the next range over the same keys need not count them again. etcd answers
// every Range, even with a limit, with the number of keys in the whole range; without
// an in-memory index that is a walk over every key, which a client paging through a
// prefix (Kubernetes lists) or reading the first page of a large range again and again
// (the bench's txn-mixed) pays on every request.
//
// An entry is (key, end, rev) -> the number of live keys of [key, end) at rev. The state
// at a committed revision never changes (compaction only makes revisions below the
// compacted one unreadable), so an entry stays true; a read at another revision r starts
// from the entry for the same range nearest to r and adds the revision log's changes
// between the two (countDelta), if there are few of them. A read that walked its range
// with a limit also records the counts of the ranges that start just after its last
// keys, where the next page of a paging client starts.
//
// Only views of committed state use it (a TxnWrite's batch holds revisions that may
// yet be discarded). Reload resets it: entries made before are not used after, and a
// view opened before cannot add one.
type countMemo struct {
	minCount   int // smaller counts are not remembered (memoMinCount; tests lower it)
	budgetBase int // see deltaBudget (memoBudgetBase; tests lower it)

	mu     sync.Mutex
	gen    uint64 // bumped by reset
	clock  uint64 // last use, for eviction
	n      int    // entries in ranges
	ranges map[string][]memoEntry

	// For tests: how counts were answered.
	deltas, counted atomic.Int64
}

type memoEntry struct {
	rev   int64
	count int
	used  uint64
}

const (
	// memoEntries bounds the memo: ranges times revisions.
	memoEntries = 256
	// memoPerRange is how many revisions of one range the memo keeps.
	memoPerRange = 4
	// memoMinCount: smaller ranges are cheap to count again and are not remembered.
	memoMinCount = 64
	// memoMaxBytes: ranges whose key and end are longer are not remembered.
	memoMaxBytes = 2048
	// memoBudgetBase is the revision-log entries a count from a remembered one may
	// always walk (see deltaBudget).
	memoBudgetBase = 64
)

func newCountMemo() *countMemo {
	return &countMemo{minCount: memoMinCount, budgetBase: memoBudgetBase, ranges: map[string][]memoEntry{}}
}

// memoKey names the range [key, end) unambiguously.
func memoKey(key, end []byte) string {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(key)+len(end)), uint64(len(key)))
	return string(append(append(b, key...), end...))
}

// generation is the memo's current generation, to be passed back to nearest and put.
func (m *countMemo) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// reset forgets every entry.
func (m *countMemo) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.ranges, m.n = map[string][]memoEntry{}, 0
}

// nearest returns the entry for [key, end) of generation gen whose revision is in
// [lo, hi] and nearest to rev.
func (m *countMemo) nearest(gen uint64, key, end []byte, rev, lo, hi int64) (memoEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return memoEntry{}, false
	}
	es := m.ranges[memoKey(key, end)]
	best := -1
	var bestDist int64
	for i, e := range es {
		if e.rev < lo || e.rev > hi {
			continue
		}
		dist := e.rev - rev
		if dist < 0 {
			dist = -dist
		}
		if best < 0 || dist < bestDist {
			best, bestDist = i, dist
		}
	}
	if best < 0 {
		return memoEntry{}, false
	}
	m.clock++
	es[best].used = m.clock
	return es[best], true
}

// put records that [key, end) holds count live keys at rev, if gen is still current.
// A range keeps its memoPerRange most recently used revisions; beyond memoEntries in
// all, the least recently used range is dropped.
func (m *countMemo) put(gen uint64, key, end []byte, rev int64, count int) {
	if count < m.minCount || len(key)+len(end) > memoMaxBytes {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return
	}
	m.clock++
	mk := memoKey(key, end)
	es := m.ranges[mk]
	oldest := -1
	for i := range es {
		if es[i].rev == rev {
			es[i].used = m.clock
			return
		}
		if oldest < 0 || es[i].used < es[oldest].used {
			oldest = i
		}
	}
	ne := memoEntry{rev: rev, count: count, used: m.clock}
	if len(es) >= memoPerRange {
		es[oldest] = ne
		return
	}
	for m.n >= memoEntries {
		m.evictLocked()
	}
	m.ranges[mk] = append(m.ranges[mk], ne) // this range itself may have been dropped
	m.n++
}

// evictLocked drops the range used least recently.
func (m *countMemo) evictLocked() {
	var victim string
	var used uint64
	found := false
	for k, es := range m.ranges {
		u := uint64(0)
		for _, e := range es {
			u = max(u, e.used)
		}
		if !found || u < used {
			victim, used, found = k, u, true
		}
	}
	m.n -= len(m.ranges[victim])
	delete(m.ranges, victim)
}

// countDelta returns how the number of live keys of [key, end) changed from revision
// from to revision to (either may be the larger), from the revision log in r, which
// must hold every entry between them (both at or above the compacted revision). ok is
// false if that takes more than budget entries, or one entry predates flagCreated.
func countDelta(r storage.Reader, key, end []byte, from, to int64, budget int) (delta int, ok bool, err error) {
	if from == to {
		return 0, true, nil
	}
	lo, hi := min(from, to), max(from, to)
	it, err := r.NewIter(storage.IterOptions{
		LowerBound: storage.RevisionKey(lo+1, 0), UpperBound: storage.RevisionKey(hi+1, 0)})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n > budget {
			return 0, false, nil
		}
		k, d, known, err := revLogDelta(it.Value())
		if err != nil {
			return 0, false, err
		}
		if !inKeyRange(k, key, end) {
			continue
		}
		if !known {
			return 0, false, nil
		}
		delta += d
	}
	if err := it.Error(); err != nil {
		return 0, false, err
	}
	if from > to {
		delta = -delta
	}
	return delta, true, nil
}

// inKeyRange reports whether user key k is in [key, end), end being set: "\x00" means
// every key >= key.
func inKeyRange(k, key, end []byte) bool {
	if bytes.Compare(k, key) < 0 {
		return false
	}
	return (len(end) == 1 && end[0] == 0) || bytes.Compare(k, end) < 0
}

// deltaBudget is how many revision-log entries a count from a remembered count may
// walk: while that is well below the number of keys to count, it is cheaper (a
// log entry costs about what a key does, and the log holds changes outside the range).
func (m *countMemo) deltaBudget(count int) int { return m.budgetBase + count/4 }
