package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/storage"
)

// hashIgnored are the state-machine keys that record this member's own progress rather
// than replicated state (etcd's Hash likewise skips its consistent index and term).
var hashIgnored = [][]byte{
	storage.MetaAppliedIndex,
	storage.MetaAppliedTerm,
	storage.MetaCompactFinished,
	storage.MetaSnapshotInstall,
	storage.MetaKeyCount, // derived from the keys (mvcc), and absent in a state written by an older build
}

// hashCheckEvery is how many engine keys Hash reads between looks at its context.
const hashCheckEvery = 4096

// Hash is etcd's deprecated whole-store hash: a CRC-32 (Castagnoli) over every engine
// key and value of the state-machine prefixes (storage.StateMachinePrefixes) but the
// member-local progress keys (hashIgnored), read from one engine snapshot. Members that
// applied the same entries and whose background compactions have finished answer the
// same hash; a member still compacting physically answers another (as etcd, whose
// Hash is meant for tests only: use HashKV to compare members). The answer's header
// revision is the store's at the snapshot, or slightly below it.
func (s *Server) Hash(ctx context.Context) (_ *pb.HashResponse, err error) {
	defer translate(&err)
	defer func(start time.Time) { s.hashObserver().Hashed(time.Since(start)) }(time.Now())
	rev := s.store.Rev()
	snap := s.store.NewSnapshot()
	defer snap.Close()
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var lenBuf [binary.MaxVarintLen64]byte
	n := 0
	for _, p := range storage.StateMachinePrefixes {
		it, err := snap.NewIter(storage.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if n++; n%hashCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					it.Close()
					return nil, err
				}
			}
			k := it.Key()
			if ignoredForHash(k) {
				continue
			}
			v := it.Value()
			crc.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(k)))])
			crc.Write(k)
			crc.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(v)))])
			crc.Write(v)
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return nil, err
		}
	}
	h := s.Header()
	h.Revision = rev
	return &pb.HashResponse{Header: h, Hash: crc.Sum32()}, nil
}

func ignoredForHash(k []byte) bool {
	for _, ig := range hashIgnored {
		if bytes.Equal(k, ig) {
			return true
		}
	}
	return false
}
