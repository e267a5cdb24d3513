package mvcc

import (
	"bytes"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// Changes implements ReadCloser.Changes by walking the revision log.
func (v *view) Changes(fromRev, toRev int64, fn func(ev *mvccpb.Event) error) error {
	return v.ChangesOf(fromRev, toRev, nil, fn)
}

func (v *view) ChangesOf(fromRev, toRev int64, want func(key []byte) bool, fn func(ev *mvccpb.Event) error) error {
	if v.snap == nil {
		return errViewClosed
	}
	if toRev <= 0 {
		toRev = v.rev
	}
	if toRev > v.rev {
		return ErrFutureRev
	}
	if fromRev < v.compact {
		return ErrCompacted
	}
	if fromRev > toRev {
		return nil
	}
	logIt, err := v.snap.NewIter(storage.IterOptions{
		LowerBound: storage.RevisionKey(fromRev, 0), UpperBound: storage.RevisionKey(toRev+1, 0)})
	if err != nil {
		return err
	}
	defer logIt.Close()
	keyIt, err := v.snap.NewIter(storage.IterOptions{
		LowerBound: []byte{storage.PrefixKey}, UpperBound: []byte{storage.PrefixKey + 1}})
	if err != nil {
		return err
	}
	defer keyIt.Close()

	// Compaction at v.compact keeps only the last change of a key in that revision
	// (etcd's API never changes a key twice in one revision): report only that one,
	// whether or not the physical compaction has run yet.
	var lastSub map[string]int64
	if fromRev == v.compact {
		if lastSub, err = lastChanges(v.snap, fromRev); err != nil {
			return err
		}
	}
	for ok := logIt.First(); ok; ok = logIt.Next() {
		main, sub, err := storage.ParseRevisionKey(logIt.Key())
		if err != nil {
			return err
		}
		key, tombstone, err := decodeRevLog(logIt.Value())
		if err != nil {
			return err
		}
		if want != nil && !want(key) {
			continue
		}
		vk := storage.VersionKey(key, main, sub)
		prefix := vk[:len(vk)-16]
		if main == v.compact && lastSub[string(key)] != sub {
			continue
		}
		ev := &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: key, ModRevision: main}}
		// Position at the change's version (compaction may have dropped a tombstone
		// at the compacted revision) or the next older one.
		found := keyIt.SeekGE(vk)
		if found && bytes.Equal(keyIt.Key(), vk) {
			if !tombstone {
				ver, err := decodeVersion(keyIt.Value())
				if err != nil {
					return err
				}
				ev = &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: ver.kv(key, main, false)}
			}
			found = keyIt.Next()
		} else if !tombstone {
			return errCorrupt // a put at or above the compacted revision is kept
		}
		// PrevKv is the version before this change, as etcd reads it at main-1: so
		// never for a change at the compacted revision.
		if found && main > v.compact && sameKey(keyIt.Key(), prefix) {
			if val := keyIt.Value(); !isTombstone(val) {
				ver, err := decodeVersion(val)
				if err != nil {
					return err
				}
				_, prevMain, _, err := storage.ParseVersionKey(keyIt.Key())
				if err != nil {
					return err
				}
				ev.PrevKv = ver.kv(key, prevMain, false)
			}
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := logIt.Error(); err != nil {
		return err
	}
	return keyIt.Error()
}

// sameKey reports whether the version key k belongs to the user key whose
// storage.KeyPrefix is prefix.
func sameKey(k, prefix []byte) bool {
	return len(k) == len(prefix)+16 && bytes.HasPrefix(k, prefix)
}

// lastChanges maps each key changed in revision main to the sub revision of its last
// change in it.
func lastChanges(r storage.Reader, main int64) (map[string]int64, error) {
	it, err := r.NewIter(storage.IterOptions{
		LowerBound: storage.RevisionKey(main, 0), UpperBound: storage.RevisionKey(main+1, 0)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	last := make(map[string]int64)
	for ok := it.First(); ok; ok = it.Next() {
		_, sub, err := storage.ParseRevisionKey(it.Key())
		if err != nil {
			return nil, err
		}
		key, _, err := decodeRevLog(it.Value())
		if err != nil {
			return nil, err
		}
		last[string(key)] = sub
	}
	return last, it.Error()
}
