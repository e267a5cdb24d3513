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

// rangeAt returns the live keys of [key, end) at revision rev, read from r.
//
// It makes one forward pass: for each user key it positions at the newest version
// <= rev with one SeekGE to VersionKey(k, rev, MaxSub), and after that key jumps to
// the next user key with one SeekGE to PrefixEnd(KeyPrefix(k)).
func rangeAt(r storage.Reader, key, end []byte, rev int64, opts RangeOptions) (kvs []*mvccpb.KeyValue, count int, err error) {
	if len(end) == 0 {
		return pointAt(r.NewIter, key, rev, opts)
	}
	lower, upper := storage.KeyRangeBounds(key, end)
	if bytes.Compare(lower, upper) >= 0 {
		return nil, 0, nil // end <= key: an empty range, as in etcd
	}
	it, err := r.NewIter(storage.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()

	var revSuffix [16]byte // the ^main ^sub suffix of VersionKey(_, rev, MaxSub)
	copy(revSuffix[:], storage.VersionKey(nil, rev, storage.MaxSub)[3:])

	ok := it.SeekGE(lower)
	var target, cur []byte
	for ok {
		k := it.Key()
		if len(k) < 1+2+16 {
			return nil, 0, errCorrupt
		}
		prefix := k[:len(k)-16]
		if bytes.Compare(k[len(k)-16:], revSuffix[:]) < 0 {
			// This version is newer than rev: jump to the newest one <= rev.
			target = append(append(target[:0], prefix...), revSuffix[:]...)
			if ok = it.SeekGE(target); !ok {
				break
			}
			k = it.Key()
			if !bytes.HasPrefix(k, target[:len(prefix)]) || len(k) != len(target) {
				continue // the key has no version <= rev; k is the next user key
			}
			prefix = k[:len(k)-16]
		}
		if val := it.Value(); !isTombstone(val) {
			count++
			if !opts.CountOnly && (opts.Limit <= 0 || int64(len(kvs)) < opts.Limit) {
				v, err := decodeVersion(val)
				if err != nil {
					return nil, 0, err
				}
				uk, main, _, err := storage.ParseVersionKey(k)
				if err != nil {
					return nil, 0, err
				}
				kvs = append(kvs, v.kv(uk, main, opts.KeysOnly))
			}
		}
		// Move past the older versions of this key: a few Next steps first (a key
		// usually has few versions and Next is much cheaper than a seek), then a seek.
		cur = append(cur[:0], prefix...)
		ok = it.Next()
		for i := 0; ok && i < maxSequentialSkip && sameUserKey(it.Key(), cur); i++ {
			ok = it.Next()
		}
		if ok && sameUserKey(it.Key(), cur) {
			target = storage.PrefixEnd(cur)
			if target == nil {
				break
			}
			ok = it.SeekGE(target)
		}
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	return kvs, count, nil
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

func isTombstone(v []byte) bool { return len(v) > 0 && v[0]&flagTombstone != 0 }

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
// compacted revision that were current when it was taken.
type view struct {
	snap    storage.Snapshot
	rev     int64
	compact int64
}

func (v *view) Rev() int64 { return v.rev }

func (v *view) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	if v.snap == nil {
		return RangeResult{}, errViewClosed
	}
	return rangeView(v.snap, key, end, v.rev, v.compact, opts)
}

func (v *view) Close() {
	if v.snap != nil {
		_ = v.snap.Close()
		v.snap = nil
	}
}

func rangeView(r storage.Reader, key, end []byte, cur, compact int64, opts RangeOptions) (RangeResult, error) {
	rev, err := checkRev(opts.Rev, cur, compact)
	if err != nil {
		return RangeResult{Rev: cur}, err
	}
	kvs, count, err := rangeAt(r, key, end, rev, opts)
	if err != nil {
		return RangeResult{Rev: cur}, err
	}
	return RangeResult{KVs: kvs, Rev: cur, Count: count}, nil
}

var errViewClosed = errors.New("mvcc: read view used after Close")
