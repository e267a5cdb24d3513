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
//   - reads: the ranges are remembered; a key in one of them is visible only if the
//     batch itself wrote it since (the keys the batch wrote inside the range before
//     the DeleteRange get a point delete in the index, which only the index sees).
//     Reading a deleted range through the batch steps over the engine's keys in it one
//     by one; MetaStore's one user, snapshot install, writes after its range deletions
//     and reads nothing.
type batch struct {
	e      *Engine
	wi     *grocksdb.WriteBatchWI
	plain  *grocksdb.WriteBatch // nil until the first DeleteRange
	ranges [][2][]byte          // the range deletions, [start, end)
	n      uint32
}

func newBatch(e *Engine) *batch {
	return &batch{e: e, wi: grocksdb.NewWriteBatchWI(0, true)}
}

func (b *batch) Set(key, value []byte) error {
	b.wi.Put(key, value)
	if b.plain != nil {
		b.plain.Put(key, value)
	}
	b.n++
	return nil
}

func (b *batch) Delete(key []byte) error {
	b.wi.Delete(key)
	if b.plain != nil {
		b.plain.Delete(key)
	}
	b.n++
	return nil
}

// DeleteRange deletes [start, end): a range tombstone in the committed batch, and in
// the batch's reads the hiding described on batch.
func (b *batch) DeleteRange(start, end []byte) error {
	if bytes.Compare(start, end) >= 0 {
		b.n++
		return nil
	}
	if b.plain == nil {
		b.plain = grocksdb.WriteBatchFrom(b.wi.Data())
	}
	b.plain.DeleteRange(start, end)
	// Hide from the index the keys this batch wrote in the range so far.
	var own [][]byte
	it := b.wi.NewIterator()
	for it.Next() {
		r := it.Record()
		if k := r.Key; bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 {
			own = append(own, bytes.Clone(k))
		}
	}
	for _, k := range own {
		b.wi.Delete(k)
	}
	b.ranges = append(b.ranges, [2][]byte{bytes.Clone(start), bytes.Clone(end)})
	b.n++
	return nil
}

// inRange reports whether k is in one of the batch's range deletions.
func (b *batch) inRange(k []byte) bool {
	for _, r := range b.ranges {
		if bytes.Compare(k, r[0]) >= 0 && bytes.Compare(k, r[1]) < 0 {
			return true
		}
	}
	return false
}

// own reports whether the batch itself holds a live write of k (since any range
// deletion covering it).
func (b *batch) own(k []byte) bool {
	s, err := b.wi.Get(b.e.opts, k)
	if err != nil || s == nil {
		return false
	}
	defer s.Free()
	return s.Exists()
}

// hidden is the iterators' filter: a key from the engine in a deleted range.
func (b *batch) hidden(k []byte) bool { return b.inRange(k) && !b.own(k) }

func (b *batch) Get(key []byte) ([]byte, error) {
	if b.e.closed.Load() {
		return nil, storage.ErrClosed
	}
	if len(b.ranges) > 0 && b.inRange(key) {
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
	if len(b.ranges) > 0 {
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
