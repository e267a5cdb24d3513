//go:build rocksdb

package rocksdb

import (
	"bytes"

	"github.com/RaduBerinde/btreemap"
)

// rangeSet records a batch's range deletions as disjoint fragments, each marked with
// the sequence number (the batch's operation count) of the newest deletion covering
// it. Adding a deletion and looking a key up are O(log n) in the fragments (a deletion
// adds at most three and removes those it covers), so a batch holding many range
// deletions never rescans them, nor the batch.
type rangeSet struct {
	t *btreemap.BTreeMap[[]byte, fragment] // by start key
}

type fragment struct {
	end []byte
	seq uint32
}

func newRangeSet() *rangeSet {
	return &rangeSet{t: btreemap.New[[]byte, fragment](16, bytes.Compare)}
}

// add records the deletion of [start, end) at seq, newer than every deletion so far.
func (rs *rangeSet) add(start, end []byte, seq uint32) {
	start, end = bytes.Clone(start), bytes.Clone(end)
	// A fragment starting before start and reaching into it keeps its part before.
	var leftK []byte
	var left fragment
	rs.t.DescendFunc(btreemap.LT(start), btreemap.Min[[]byte](), func(k []byte, f fragment) bool {
		if bytes.Compare(f.end, start) > 0 {
			leftK, left = k, f
		}
		return false
	})
	if leftK != nil {
		rs.t.ReplaceOrInsert(leftK, fragment{end: start, seq: left.seq})
		if bytes.Compare(left.end, end) > 0 {
			rs.t.ReplaceOrInsert(end, fragment{end: left.end, seq: left.seq})
		}
	}
	// Fragments starting inside [start, end) go; the last keeps its part past end.
	var inside [][]byte
	var last fragment
	rs.t.AscendFunc(btreemap.GE(start), btreemap.LT(end), func(k []byte, f fragment) bool {
		inside, last = append(inside, k), f
		return true
	})
	for _, k := range inside {
		rs.t.Delete(k)
	}
	if len(inside) > 0 && bytes.Compare(last.end, end) > 0 {
		rs.t.ReplaceOrInsert(end, last)
	}
	rs.t.ReplaceOrInsert(start, fragment{end: end, seq: seq})
}

// seqAt is the sequence number of the newest deletion covering k, 0 if none does.
func (rs *rangeSet) seqAt(k []byte) uint32 {
	var seq uint32
	rs.t.DescendFunc(btreemap.LE(k), btreemap.Min[[]byte](), func(_ []byte, f fragment) bool {
		if bytes.Compare(k, f.end) < 0 {
			seq = f.seq
		}
		return false
	})
	return seq
}

// len is the number of fragments.
func (rs *rangeSet) len() int { return rs.t.Len() }
