//go:build rocksdb

package rocksdb

import (
	"bytes"

	"github.com/linxGnu/grocksdb"

	"github.com/metastore/metastore/internal/storage"
)

// batch is a storage.Batch on a WriteBatchWithIndex (overwrite mode: its index holds the
// newest write of each key), whose reads merge its writes over the engine's current
// state, as Pebble's indexed batches.
//
// RocksDB 7.8's WriteBatchWithIndex drops DeleteRange (it answers NotSupported, which
// the C API discards), so range deletions are handled here:
//   - commit: from the first DeleteRange on, every write also goes to a plain WriteBatch
//     (started as a copy of what the indexed batch held), which does keep range
//     tombstones, in order; Commit writes that one. Later writes to a deleted range
//     therefore win over the tombstone, as in Pebble.
//   - reads: every operation has a sequence number (the operation count after it); the
//     ranges are kept in a rangeSet with the number of the newest deletion covering
//     each part, and, from the first range deletion on, the number of each key's last
//     write in the batch. A key in a deleted range is visible only if the batch wrote
//     it after the newest deletion covering it (its value then comes from the index).
//     Writes before the first range deletion need no number: every deletion is newer.
//     Each DeleteRange and each lookup is O(log n): nothing rescans the batch. Reading
//     a deleted range through the batch still steps over the engine's keys in it one by
//     one; MetaStore's users (snapshot install, mvcc compaction) read nothing through
//     such a batch.
type batch struct {
	e       *Engine
	wi      *grocksdb.WriteBatchWI
	plain   *grocksdb.WriteBatch // nil until the first DeleteRange
	ranges  *rangeSet            // nil until the first DeleteRange
	written map[string]uint32    // from the first DeleteRange: key -> seq of its last write
	n       uint32
}

func newBatch(e *Engine) *batch {
	return &batch{e: e, wi: grocksdb.NewWriteBatchWI(0, true)}
}

func (b *batch) Set(key, value []byte) error {
	b.wi.Put(key, value)
	b.n++
	if b.plain != nil {
		b.plain.Put(key, value)
		b.written[string(key)] = b.n
	}
	return nil
}

func (b *batch) Delete(key []byte) error {
	b.wi.Delete(key)
	b.n++
	if b.plain != nil {
		b.plain.Delete(key)
		b.written[string(key)] = b.n
	}
	return nil
}

// DeleteRange deletes [start, end): a range tombstone in the committed batch, and in
// the batch's reads the hiding described on batch.
func (b *batch) DeleteRange(start, end []byte) error {
	b.n++
	if bytes.Compare(start, end) >= 0 {
		return nil
	}
	if b.plain == nil {
		b.plain = grocksdb.WriteBatchFrom(b.wi.Data())
		b.ranges, b.written = newRangeSet(), make(map[string]uint32)
	}
	b.plain.DeleteRange(start, end)
	b.ranges.add(start, end, b.n)
	return nil
}

// covered is the sequence number of the newest range deletion covering k (0: none).
func (b *batch) covered(k []byte) uint32 {
	if b.ranges == nil {
		return 0
	}
	return b.ranges.seqAt(k)
}

// hidden is the iterators' filter: a key in a deleted range that the batch did not
// write since.
func (b *batch) hidden(k []byte) bool {
	seq := b.covered(k)
	return seq > 0 && b.written[string(k)] < seq
}

func (b *batch) Get(key []byte) ([]byte, error) {
	if b.e.closed.Load() {
		return nil, storage.ErrClosed
	}
	if seq := b.covered(key); seq > 0 {
		if b.written[string(key)] < seq {
			return nil, storage.ErrNotFound
		}
		s, err := b.wi.Get(b.e.opts, key)
		if err != nil {
			return nil, err
		}
		defer s.Free()
		if !s.Exists() {
			return nil, storage.ErrNotFound
		}
		return bytes.Clone(s.Data()), nil
	}
	s, err := b.wi.GetFromDB(b.e.db, b.e.ro, key)
	if err != nil {
		return nil, err
	}
	defer s.Free()
	if !s.Exists() {
		return nil, storage.ErrNotFound
	}
	return append([]byte{}, s.Data()...), nil
}

func (b *batch) NewIter(o storage.IterOptions) (storage.Iterator, error) {
	if b.e.closed.Load() {
		return nil, storage.ErrClosed
	}
	var hidden func([]byte) bool
	if b.ranges != nil {
		hidden = b.hidden
	}
	return newIter(o, func(ro *grocksdb.ReadOptions) *grocksdb.Iterator {
		return b.wi.NewIteratorWithBase(b.e.db, b.e.db.NewIterator(ro))
	}, hidden), nil
}

// Commit writes the batch; sync=true returns once RocksDB synced its WAL.
func (b *batch) Commit(sync bool) error {
	if b.e.closed.Load() {
		return storage.ErrClosed
	}
	wo := b.e.woAsync
	if sync {
		wo = b.e.woSync
	}
	if b.plain != nil {
		return b.e.db.Write(wo, b.plain)
	}
	return b.e.db.WriteWI(wo, b.wi)
}

func (b *batch) Count() uint32 { return b.n }

func (b *batch) Close() error {
	if b.wi != nil {
		b.wi.Destroy()
		b.wi = nil
	}
	if b.plain != nil {
		b.plain.Destroy()
		b.plain = nil
	}
	return nil
}
