package mvcc

import (
	"context"
	"encoding/binary"
	"hash/crc32"

	"github.com/metastore/metastore/internal/storage"
)

// KeyValueHash is the answer of HashKV: the hash of the key-value history a member keeps
// at a revision, and the two revisions that bound it.
type KeyValueHash struct {
	Hash       uint32 // CRC-32 (Castagnoli)
	CompactRev int64  // the compacted revision of the view that was hashed
	Rev        int64  // the revision hashed
}

// hashCheckEvery is how many versions HashKV reads between looks at its context.
const hashCheckEvery = 4096

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV hashes, on a snapshot of the committed state, the key-value history a read at
// or above the compacted revision C can still see up to revision rev (0: the current
// revision), in key order and, for each key, from the newest version to the oldest:
//
//   - every version (put or tombstone) with C < mod revision <= rev;
//   - the newest version at or below C, unless it is a tombstone.
//
// That is exactly what compaction at C keeps (compactKey), so the hash is the same
// before, during and after the physical compaction at C, and after a defrag; and since
// version keys and values are encoded the same on every member, members holding the
// same data at rev (with the same compacted revision) answer the same hash. As in etcd,
// a compaction at C' (C < C' < rev) changes the history kept, so the hash at rev
// changes with it; the answer's CompactRev tells the two apart.
//
// A revision a recent compaction was hashed at (compactHashes) answers that hash, as
// etcd answers its stored one.
//
// ErrFutureRev if rev > the current revision, ErrCompacted if rev < C. It streams the
// key space with one iterator (bounded memory) and never holds a lock the writer needs.
func (s *Store) HashKV(ctx context.Context, rev int64) (KeyValueHash, error) {
	if rev > 0 {
		if h, ok, err := s.hashes.lookup(ctx, rev); err != nil || ok {
			return h, err
		}
	}
	rc := s.Read()
	defer rc.Close()
	v := rc.(*view)
	rev, err := checkRev(rev, v.rev, v.compact)
	if err != nil {
		return KeyValueHash{}, err
	}
	h, err := hashVersions(ctx, v.snap, v.compact, rev)
	if err != nil {
		return KeyValueHash{}, err
	}
	return KeyValueHash{Hash: h, CompactRev: v.compact, Rev: rev}, nil
}

// hashVersions is HashKV's walk over r's version keys.
func hashVersions(ctx context.Context, r storage.Reader, compact, rev int64) (uint32, error) {
	it, err := r.NewIter(storage.IterOptions{
		LowerBound: []byte{storage.PrefixKey}, UpperBound: []byte{storage.PrefixKey + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	crc := crc32.New(castagnoli)
	crc.Write([]byte("metastore-hashkv-v1"))
	var lenBuf [binary.MaxVarintLen64]byte
	n := 0
	for ok := it.First(); ok; {
		if n++; n%hashCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		k := it.Key()
		if len(k) < 1+2+16 {
			return 0, errCorrupt
		}
		main := int64(^binary.BigEndian.Uint64(k[len(k)-16:]))
		if main > rev {
			ok = it.Next()
			continue
		}
		val := it.Value()
		older := main <= compact
		if !older || !isTombstone(val) {
			crc.Write(k)
			crc.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(val)))])
			crc.Write(val)
		}
		if !older {
			ok = it.Next()
			continue
		}
		// The newest version at or below the compacted revision was handled: skip the
		// key's older versions. A key encoding ends with 00 01 and an escaped zero byte
		// is 00 FF, so this target sorts after every version of this key and before
		// the next key.
		next := make([]byte, 0, len(k)+1)
		next = append(next, k[:len(k)-16]...)
		for range 16 {
			next = append(next, 0xFF)
		}
		ok = it.SeekGE(append(next, 0))
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	return crc.Sum32(), nil
}
