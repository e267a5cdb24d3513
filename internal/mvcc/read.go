package mvcc

import (
	"bytes"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// checkRev resolves a requested revision against a view at cur whose compacted
// revision is compact, as etcd does: 0 (or below) means cur; above cur is ErrFutureRev;
// below compact is ErrCompacted. Reading AT the compacted revision is allowed.
func checkRev(rev, cur, compact int64) (int64, error) {
	if rev > cur {
		return 0, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	if rev < compact {
		return 0, ErrCompacted
	}
	return rev, nil
}

// rangeAt returns the live keys of [key, end) at revision rev, read from r, and how
// many there are. It stops materializing keys at opts.Limit (and at once for
// opts.CountOnly); the keys after that are only counted, without decoding their values.
// known >= 0 is that count, known beforehand: the walk then stops at the limit.
func rangeAt(r storage.Reader, key, end []byte, rev int64, opts RangeOptions, known int) (kvs []*mvccpb.KeyValue, count int, err error) {
	if len(end) == 0 {
		return pointAt(r.NewIter, key, rev, opts)
	}
	lower, upper := storage.KeyRangeBounds(key, end)
	if bytes.Compare(lower, upper) >= 0 {
		return nil, 0, nil // end <= key: an empty range, as in etcd
	}
	if opts.CountOnly && known >= 0 {
		return nil, known, nil
	}
	it, err := r.NewIter(storage.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	c := newCursor(it, rev)
	c.ok = it.SeekGE(lower)
	collect := !opts.CountOnly
	for c.visible() {
		if val := it.Value(); !isTombstone(val) {
			count++
			if collect {
				v, err := decodeVersion(val)
				if err != nil {
					return nil, 0, err
				}
				uk, main, _, err := storage.ParseVersionKey(it.Key())
				if err != nil {
					return nil, 0, err
				}
				kvs = append(kvs, v.kv(uk, main, opts.KeysOnly))
				collect = opts.Limit <= 0 || int64(len(kvs)) < opts.Limit
				if !collect && known >= 0 {
					return kvs, known, it.Error()
				}
			}
		}
		c.skipKey()
	}
	if c.err != nil {
		return nil, 0, c.err
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	return kvs, count, nil
}

// prefixNexter is implemented by engine iterators that can move to the first key whose
// prefix (storage.Split) differs from the current key's in one step (Pebble's
// NextPrefix, which skips the rest of a prefix's keys in a table block without
// comparing them). For a version key that prefix is its user key's KeyPrefix, so
// NextPrefix moves past every remaining version of the user key. The iterator's upper
// bound must be a whole prefix, as storage.KeyRangeBounds' are.
type prefixNexter interface {
	NextPrefix() bool
}

// cursor walks the user keys of one iterator's range at a read revision, in one
// forward pass: visible positions it on the newest version <= rev of the current user
// key (skipping keys with none), skipKey moves on to the next user key.
type cursor struct {
	it        storage.Iterator
	np        prefixNexter // it, when it has NextPrefix
	revSuffix [16]byte     // the ^main ^sub suffix of VersionKey(_, rev, MaxSub)
	target    []byte
	cur       []byte // the KeyPrefix of the user key visible found
	ok        bool   // it is positioned on a key
	err       error
}

func newCursor(it storage.Iterator, rev int64) *cursor {
	c := &cursor{it: it}
	c.np, _ = it.(prefixNexter)
	copy(c.revSuffix[:], storage.VersionKey(nil, rev, storage.MaxSub)[3:])
	return c
}

// visible positions the iterator, from where it is, on the newest version <= rev of the
// first user key that has one, and reports whether there is one. A version newer than
// rev is stepped over with a few Next calls first (a key usually has few versions, and
// Next is much cheaper than a seek), then with one SeekGE to VersionKey(k, rev, MaxSub).
func (c *cursor) visible() bool {
	for c.ok {
		k := c.it.Key()
		if len(k) < 1+2+16 {
			c.err, c.ok = errCorrupt, false
			return false
		}
		if bytes.Compare(k[len(k)-16:], c.revSuffix[:]) >= 0 {
			c.cur = append(c.cur[:0], k[:len(k)-16]...)
			return true
		}
		// Newer than rev: look for an older version of the same key.
		c.cur = append(c.cur[:0], k[:len(k)-16]...)
		found, next := false, false
		for i := 0; i < maxSequentialSkip; i++ {
			if c.ok = c.it.Next(); !c.ok {
				return false
			}
			k = c.it.Key()
			if !sameUserKey(k, c.cur) {
				next = true // the key has no version <= rev; k is the next user key
				break
			}
			if bytes.Compare(k[len(k)-16:], c.revSuffix[:]) >= 0 {
				found = true
				break
			}
		}
		if found {
			return true
		}
		if next {
			continue
		}
		c.target = append(append(c.target[:0], c.cur...), c.revSuffix[:]...)
		if c.ok = c.it.SeekGE(c.target); !c.ok {
			return false
		}
		if sameUserKey(c.it.Key(), c.cur) {
			return true
		}
		// The key has no version <= rev; the iterator is on the next user key.
	}
	return false
}

// skipKey moves past the older versions of the user key visible found.
func (c *cursor) skipKey() {
	if c.np != nil {
		c.ok = c.np.NextPrefix()
		return
	}
	c.ok = c.it.Next()
	for i := 0; c.ok && i < maxSequentialSkip && sameUserKey(c.it.Key(), c.cur); i++ {
		c.ok = c.it.Next()
	}
	if c.ok && sameUserKey(c.it.Key(), c.cur) {
		c.target = storage.PrefixEnd(c.cur)
		if c.target == nil {
			c.ok = false
			return
		}
		c.ok = c.it.SeekGE(c.target)
	}
}

// pointAt is rangeAt for the single key `key`: one SeekPrefixGE to the newest version at
// or below rev, which lets the engine skip every table whose prefix filter rules the
// key out (most of them, for a key written once or never). newIter opens the iterator:
// a Reader's NewIter, or a TableReader's NewTableIter.
func pointAt(newIter func(storage.IterOptions) (storage.Iterator, error), key []byte, rev int64, opts RangeOptions) (kvs []*mvccpb.KeyValue, count int, err error) {
	seek := storage.VersionKey(key, rev, storage.MaxSub)
	prefix := seek[:len(seek)-16]
	it, err := newIter(storage.IterOptions{LowerBound: prefix, UpperBound: storage.PrefixEnd(prefix)})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	if !it.SeekPrefixGE(seek) {
		return nil, 0, it.Error()
	}
	k, val := it.Key(), it.Value()
	if !sameUserKey(k, prefix) {
		return nil, 0, errCorrupt
	}
	if isTombstone(val) {
		return nil, 0, it.Error()
	}
	if opts.CountOnly {
		return nil, 1, it.Error()
	}
	v, err := decodeVersion(val)
	if err != nil {
		return nil, 0, err
	}
	main, err := storage.VersionKeyMain(k)
	if err != nil {
		return nil, 0, err
	}
	return []*mvccpb.KeyValue{v.kv(bytes.Clone(key), main, opts.KeysOnly)}, 1, it.Error()
}

// maxSequentialSkip is how many Next steps a range takes over older versions of a key
// before it seeks to the next key instead (as RocksDB's max_sequential_skip_in_iterations).
const maxSequentialSkip = 8

// sameUserKey reports whether version key k belongs to the user key whose KeyPrefix is
// prefix. No other user key's versions start with prefix (see storage.KeyPrefix).
func sameUserKey(k, prefix []byte) bool {
	return len(k) == len(prefix)+16 && bytes.HasPrefix(k, prefix)
}

// isTombstone reports whether v is a tombstone's record (exactly one flag byte); any
// other record is decoded as a live version, so that a corrupt one is reported as
// corrupt rather than read as a delete.
func isTombstone(v []byte) bool { return len(v) == 1 && v[0] == flagTombstone }

// getAt returns the newest version of key at or below rev if it is live, else nil;
// keysOnly leaves its value out.
func getAt(newIter func(storage.IterOptions) (storage.Iterator, error), key []byte, rev int64, keysOnly bool) (*mvccpb.KeyValue, error) {
	kvs, _, err := pointAt(newIter, key, rev, RangeOptions{KeysOnly: keysOnly})
	if err != nil || len(kvs) == 0 {
		return nil, err
	}
	return kvs[0], nil
}

// view is a read of committed state: an engine snapshot with the revision and the
// compacted revision that were current when it was taken, and the store's count memo
// with its generation at that time.
type view struct {
	snap    storage.Snapshot
	rev     int64
	compact int64
	memo    *countMemo
	gen     uint64
	stats   *opStats
}

func (v *view) Rev() int64 { return v.rev }

func (v *view) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	if v.snap == nil {
		return RangeResult{}, errViewClosed
	}
	if v.stats != nil {
		v.stats.ranges.Add(1)
	}
	return rangeView(v.snap, key, end, v.rev, v.compact, opts, v.memo, v.gen)
}

func (v *view) Close() {
	if v.snap != nil {
		_ = v.snap.Close()
		v.snap = nil
	}
}

// rangeView answers a ReadView's Range from r, a state whose revision is cur and whose
// compacted revision is compact. memo (nil: none) must be the count memo of committed
// state, of generation gen, with r holding committed state only.
func rangeView(r storage.Reader, key, end []byte, cur, compact int64, opts RangeOptions, memo *countMemo, gen uint64) (RangeResult, error) {
	rev, err := checkRev(opts.Rev, cur, compact)
	if err != nil {
		return RangeResult{Rev: cur}, err
	}
	if len(end) == 0 {
		memo = nil // one key: nothing to count
	}
	known := -1
	if memo != nil {
		if e, ok := memo.nearest(gen, key, end, rev, compact, cur); ok {
			d, ok, err := countDelta(r, key, end, e.rev, rev, memo.deltaBudget(e.count))
			if err != nil {
				return RangeResult{Rev: cur}, err
			}
			if ok {
				known = e.count + d
			}
		}
	}
	kvs, count, err := rangeAt(r, key, end, rev, opts, known)
	if err != nil {
		return RangeResult{Rev: cur}, err
	}
	if memo != nil {
		if known >= 0 {
			memo.deltas.Add(1)
		} else {
			memo.counted.Add(1)
		}
		memo.put(gen, key, end, rev, count)
		// A client paging through the range asks next for the keys after the last
		// one it got: one before the last here, if it asked for one more than it
		// returns (as apply does, to learn whether there are more).
		if opts.Limit > 0 && int64(len(kvs)) == opts.Limit {
			for i := max(0, len(kvs)-2); i < len(kvs); i++ {
				next := append(bytes.Clone(kvs[i].Key), 0)
				memo.put(gen, next, end, rev, count-(i+1))
			}
		}
	}
	return RangeResult{KVs: kvs, Rev: cur, Count: count}, nil
}

var errViewClosed = errors.New("mvcc: read view used after Close")
