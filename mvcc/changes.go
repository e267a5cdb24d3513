package mvcc

import (
	"bytes"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/storage"
)

// Changes implements ReadCloser.Changes by walking the revision log.
func (v *view) Changes(fromRev, toRev int64, fn func(ev *mvccpb.Event) error) error {
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

	for ok := logIt.First(); ok; ok = logIt.Next() {
		main, sub, err := storage.ParseRevisionKey(logIt.Key())
		if err != nil {
			return err
		}
		key, tombstone, err := decodeRevLog(logIt.Value())
		if err != nil {
			return err
		}
		ev := &mvccpb.Event{Type: mvccpb.Event_PUT}
		vk := storage.VersionKey(key, main, sub)
		// Position at the change's version (it may be gone: compaction drops a
		// tombstone at the compacted revision) or the next older one.
		found := keyIt.SeekGE(vk)
		if found && bytes.Equal(keyIt.Key(), vk) {
			if !tombstone {
				ver, err := decodeVersion(keyIt.Value())
				if err != nil {
					return err
				}
				ev.Kv = ver.kv(key, main, false)
			}
			found = keyIt.Next()
		}
		if tombstone {
			ev.Type = mvccpb.Event_DELETE
			ev.Kv = &mvccpb.KeyValue{Key: key, ModRevision: main}
		} else if ev.Kv == nil {
			return errCorrupt // a put at or above the compacted revision is never dropped
		}
		if found && len(keyIt.Key()) == len(vk) && bytes.HasPrefix(keyIt.Key(), vk[:len(vk)-16]) {
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
