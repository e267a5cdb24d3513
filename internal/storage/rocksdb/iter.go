//go:build rocksdb

package rocksdb

import (
	"bytes"
	"errors"

	"github.com/linxGnu/grocksdb"

	"github.com/metastore/metastore/internal/storage"
)

var errPrevInPrefixMode = errors.New("storage/rocksdb: Prev after SeekPrefixGE")

// iter is a storage.Iterator over one or two RocksDB iterators: a total-order one for
// First, Last, SeekGE, SeekLT and a prefix one (prefix_same_as_start, so that its seek
// consults the prefix filters) for SeekPrefixGE, each made on first use by open. The
// bounds are enforced here too, because a batch's iterator merges in the batch's own
// writes, which RocksDB does not bound; hidden (if set) drops keys a batch's range
// deletions cover.
type iter struct {
	open         func(ro *grocksdb.ReadOptions) *grocksdb.Iterator
	hidden       func(k []byte) bool
	lower, upper []byte // C memory (cBytes), lent to RocksDB as its bounds
	total, pfx   *grocksdb.Iterator
	ros          []*grocksdb.ReadOptions
	cur          *grocksdb.Iterator
	prefix       []byte // the prefix SeekPrefixGE is within; nil in total-order mode
	valid        bool
	off          int // when not valid: -1 off the start (Next goes to First), +1 off the end (Prev goes to Last)
	key          []byte
	val          []byte
	valLoaded    bool
	skip, seek   []byte // NextPrefix's scratch
	err          error
}

func newIter(o storage.IterOptions, open func(*grocksdb.ReadOptions) *grocksdb.Iterator, hidden func([]byte) bool) *iter {
	return &iter{open: open, hidden: hidden, lower: cBytes(o.LowerBound), upper: cBytes(o.UpperBound)}
}

func (it *iter) readOptions(prefix bool) *grocksdb.ReadOptions {
	ro := grocksdb.NewDefaultReadOptions()
	if prefix {
		ro.SetPrefixSameAsStart(true)
	} else {
		ro.SetTotalOrderSeek(true)
	}
	// An empty bound is not passed (RocksDB would read it as none): it is enforced here.
	if len(it.lower) > 0 {
		ro.SetIterateLowerBound(it.lower)
	}
	if len(it.upper) > 0 {
		ro.SetIterateUpperBound(it.upper)
	}
	it.ros = append(it.ros, ro)
	return ro
}

func (it *iter) totalOrder() *grocksdb.Iterator {
	if it.total == nil {
		it.total = it.open(it.readOptions(false))
	}
	it.prefix, it.cur = nil, it.total
	return it.total
}

// settle loads the position of cur, skipping hidden keys in the direction given, and
// checks the bounds and the prefix.
func (it *iter) settle(forward bool) bool {
	it.valLoaded, it.val = false, nil
	for {
		if !it.cur.Valid() {
			it.valid, it.key = false, nil
			it.setOff(forward)
			return false
		}
		it.key = it.cur.Key().Data()
		if it.hidden == nil || !it.hidden(it.key) {
			break
		}
		if forward {
			it.cur.Next()
		} else {
			it.cur.Prev()
		}
	}
	switch {
	case it.upper != nil && bytes.Compare(it.key, it.upper) >= 0,
		it.lower != nil && bytes.Compare(it.key, it.lower) < 0,
		it.prefix != nil && (!bytes.HasPrefix(it.key, it.prefix) || storage.Split(it.key) != len(it.prefix)):
		it.valid, it.key = false, nil
		it.setOff(forward)
	default:
		it.valid = true
	}
	return it.valid
}

// setOff records which end a move in the given direction ran off, as Pebble's
// iterators do: Next from before the start goes to the first key, Prev from past the
// end to the last.
func (it *iter) setOff(forward bool) {
	it.off = -1
	if forward {
		it.off = 1
	}
}

func (it *iter) First() bool {
	if it.lower != nil {
		return it.SeekGE(it.lower)
	}
	it.totalOrder().SeekToFirst()
	return it.settle(true)
}

func (it *iter) Last() bool {
	if it.upper != nil {
		return it.SeekLT(it.upper)
	}
	it.totalOrder().SeekToLast()
	return it.settle(false)
}

func (it *iter) SeekGE(key []byte) bool {
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	it.totalOrder().Seek(key)
	return it.settle(true)
}

func (it *iter) SeekLT(key []byte) bool {
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	c := it.totalOrder()
	c.SeekForPrev(key)
	if c.Valid() && bytes.Equal(c.Key().Data(), key) {
		c.Prev()
	}
	return it.settle(false)
}

func (it *iter) SeekPrefixGE(key []byte) bool {
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	if it.pfx == nil {
		it.pfx = it.open(it.readOptions(true))
	}
	it.cur = it.pfx
	it.prefix = append(it.prefix[:0], key[:storage.Split(key)]...)
	it.cur.Seek(key)
	return it.settle(true)
}

func (it *iter) Next() bool {
	if !it.valid {
		if it.off == -1 && it.prefix == nil {
			return it.First()
		}
		return false
	}
	it.cur.Next()
	return it.settle(true)
}

// NextPrefix moves to the first key whose prefix (storage.Split) differs from the
// current key's, as Pebble's: a few Next steps (a user key usually has few versions),
// then one seek past the prefix. mvcc's range reads use it to skip older versions.
func (it *iter) NextPrefix() bool {
	if !it.valid {
		return it.Next()
	}
	it.skip = append(it.skip[:0], it.key[:storage.Split(it.key)]...)
	for i := 0; i < 4; i++ {
		if !it.Next() || !bytes.HasPrefix(it.key, it.skip) || storage.Split(it.key) != len(it.skip) {
			return it.valid
		}
	}
	if it.prefix != nil { // within one prefix: nothing follows it
		it.valid, it.key = false, nil
		return false
	}
	it.seek = storage.PrefixSuccessor(it.seek[:0], it.skip)
	return it.SeekGE(it.seek)
}

func (it *iter) Prev() bool {
	if it.prefix != nil {
		it.err, it.valid = errPrevInPrefixMode, false
		return false
	}
	if !it.valid {
		if it.off == 1 {
			return it.Last()
		}
		return false
	}
	it.cur.Prev()
	return it.settle(false)
}

func (it *iter) Valid() bool { return it.valid }
func (it *iter) Key() []byte { return it.key }

func (it *iter) Value() []byte {
	if !it.valid {
		return nil
	}
	if !it.valLoaded {
		it.val, it.valLoaded = it.cur.Value().Data(), true
	}
	return it.val
}

func (it *iter) Error() error {
	if it.err != nil {
		return it.err
	}
	if it.cur != nil {
		return it.cur.Err()
	}
	return nil
}

func (it *iter) Close() error {
	err := it.Error()
	for _, c := range []*grocksdb.Iterator{it.total, it.pfx} {
		if c != nil {
			c.Close()
		}
	}
	for _, ro := range it.ros {
		ro.Destroy()
	}
	freeC(it.lower)
	freeC(it.upper)
	it.total, it.pfx, it.cur, it.ros, it.lower, it.upper = nil, nil, nil, nil, nil, nil
	return err
}
