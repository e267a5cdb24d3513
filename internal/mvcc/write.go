package mvcc

import (
	"bytes"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

var errTxnEnded = errors.New("mvcc: write transaction already ended")

// Write starts the write transaction of one applied request. Its changes go into b
// (which the caller commits) and all get main revision Rev()+1 with increasing sub
// revisions; a TxnWrite that changes nothing does not advance the revision.
// Only one TxnWrite may be open at a time. Several TxnWrites may go into one batch, one
// after the other: each starts after the previous one's End, committed or not.
func (s *Store) Write(b storage.Batch) *TxnWrite {
	return &TxnWrite{s: s, b: b, begin: s.writeRev, compact: s.writeCompact}
}

// TxnWrite is an open write transaction.
type TxnWrite struct {
	s       *Store
	b       storage.Batch
	begin   int64 // the store's revision before this transaction
	compact int64
	sub     int64 // number of changes so far: the next sub revision
	ops     int   // ranges, puts and delete ranges so far (etcd's txn_total counts those > 1)
	keys    int64 // keys created minus keys deleted so far
	after   int64 // the store's live keys after End
	ended   bool
}

var _ ReadView = (*TxnWrite)(nil)

// Range reads at the transaction's state, its own writes included.
func (t *TxnWrite) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	t.ops++
	t.s.stats.ranges.Add(1)
	return rangeView(t.b, key, end, t.Rev(), t.compact, opts, nil, 0) // uncommitted: no memo
}

// Rev is the revision of the transaction: the store's revision before it if it has
// written nothing yet, else the new main revision.
func (t *TxnWrite) Rev() int64 {
	if t.sub > 0 {
		return t.begin + 1
	}
	return t.begin
}

// Put writes key=value with lease, returning the previous live version (nil if none);
// its Value is set only if prevValue is (the rest comes from memory when the writer
// remembers the key). The new version keeps the previous live version's
// create_revision and increments its version; after a delete (or for a new key)
// create_revision is this revision and version is 1.
func (t *TxnWrite) Put(key, value []byte, lease int64, prevValue bool) (prev *mvccpb.KeyValue, err error) {
	if t.ended {
		return nil, errTxnEnded
	}
	t.ops++
	t.s.stats.puts.Add(1)
	rev := t.begin + 1
	l, ok, complete := t.s.latest.get(key)
	switch {
	case ok && (!prevValue || l.tombstone):
		if !l.tombstone {
			prev = &mvccpb.KeyValue{Key: bytes.Clone(key), CreateRevision: l.create, ModRevision: l.mod, Version: l.ver, Lease: l.lease}
		}
	case !ok && complete:
		// Not written since the tables were flushed: only the tables can hold it.
		prev, err = getAt(t.s.latest.tr.NewTableIter, key, rev, !prevValue)
	default:
		prev, err = getAt(t.b.NewIter, key, rev, !prevValue)
	}
	if err != nil {
		return nil, err
	}
	create, ver := rev, int64(1)
	if prev == nil {
		t.keys++
	} else {
		create, ver = prev.CreateRevision, prev.Version+1
	}
	t.s.latest.set(key, latestVersion{create: create, mod: rev, ver: ver, lease: lease})
	if err := t.b.Set(storage.VersionKey(key, rev, t.sub), encodeVersion(create, ver, lease, value)); err != nil {
		return nil, err
	}
	if err := t.b.Set(storage.RevisionKey(rev, t.sub), encodeRevLog(key, false, prev == nil)); err != nil {
		return nil, err
	}
	t.sub++
	return prev, nil
}

// DeleteRange writes tombstones for every live key in [key, end) and returns the
// deleted versions. Deleting nothing writes nothing.
func (t *TxnWrite) DeleteRange(key, end []byte) (deleted []*mvccpb.KeyValue, err error) {
	if t.ended {
		return nil, errTxnEnded
	}
	t.ops++
	t.s.stats.deletes.Add(1)
	deleted, _, err = rangeAt(t.b, key, end, t.Rev(), RangeOptions{}, -1)
	if err != nil {
		return nil, err
	}
	rev := t.begin + 1
	for _, kv := range deleted {
		if err := t.b.Set(storage.VersionKey(kv.Key, rev, t.sub), encodeTombstone()); err != nil {
			return nil, err
		}
		if err := t.b.Set(storage.RevisionKey(rev, t.sub), encodeRevLog(kv.Key, true, false)); err != nil {
			return nil, err
		}
		t.s.latest.set(kv.Key, latestVersion{mod: rev, tombstone: true})
		t.sub++
	}
	t.keys -= int64(len(deleted))
	return deleted, nil
}

// End finishes the transaction. Nothing more goes into the batch: the revision is
// recorded by the transaction's revision-log entries (see lastRevision). After the
// caller has committed the batch it must call Store.Committed(t).
func (t *TxnWrite) End() error {
	if t.ended {
		return errTxnEnded
	}
	t.ended = true
	if t.ops > 1 {
		t.s.stats.txns.Add(1)
	}
	if t.sub > 0 {
		t.s.writeRev = t.begin + 1
	}
	if t.keys != 0 {
		t.s.writeKeys += t.keys
		if err := t.b.Set(storage.MetaKeyCount, int64Value(t.s.writeKeys)); err != nil {
			return err
		}
	}
	t.after = t.s.writeKeys
	return nil
}

// Committed publishes the transaction's revision to readers. Call it after the batch
// that holds the transaction has been committed.
func (s *Store) Committed(t *TxnWrite) {
	if t.sub == 0 || !t.ended {
		return
	}
	if rev := t.begin + 1; rev > s.rev.Load() {
		s.rev.Store(rev) // only the writer stores
	}
	s.keys.Store(t.after)
	s.latest.committed(t.begin + 1)
}
