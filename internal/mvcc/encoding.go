package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Value encoding of one version, stored at storage.VersionKey(key, main, sub):
//
//	flags(1)                          bit 0: tombstone; other bits must be zero
//	                                  a tombstone is this byte alone
//	uvarint(create_revision)          live versions only
//	uvarint(version)
//	varint(lease)                     signed, as etcd's lease IDs are int64
//	value                             the rest of the bytes, possibly empty
//
// mod_revision is the main revision in the key; the user key is in the key too.
//
// Revision log, stored at storage.RevisionKey(main, sub):
//
//	flags(1)                          bit 0: the change was a delete (tombstone)
//	userkey                           the rest of the bytes
//
// Every version ever written has exactly one revision-log entry at the same revision,
// until compaction removes both.
const flagTombstone = 1

var errCorrupt = errors.New("mvcc: corrupt version")

// version is a decoded version value.
type version struct {
	tombstone bool
	create    int64
	ver       int64
	lease     int64
	value     []byte // aliases the encoded buffer
}

func encodeVersion(create, ver, lease int64, value []byte) []byte {
	out := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(value))
	out = append(out, 0)
	out = binary.AppendUvarint(out, uint64(create))
	out = binary.AppendUvarint(out, uint64(ver))
	out = binary.AppendVarint(out, lease)
	return append(out, value...)
}

func encodeTombstone() []byte { return []byte{flagTombstone} }

func decodeVersion(b []byte) (version, error) {
	if len(b) == 0 || b[0]&^flagTombstone != 0 {
		return version{}, errCorrupt
	}
	if b[0]&flagTombstone != 0 {
		if len(b) != 1 {
			return version{}, errCorrupt
		}
		return version{tombstone: true}, nil
	}
	b = b[1:]
	var v version
	var n int
	var u uint64
	if u, n = binary.Uvarint(b); n <= 0 {
		return version{}, errCorrupt
	}
	v.create, b = int64(u), b[n:]
	if u, n = binary.Uvarint(b); n <= 0 {
		return version{}, errCorrupt
	}
	v.ver, b = int64(u), b[n:]
	if v.lease, n = binary.Varint(b); n <= 0 {
		return version{}, errCorrupt
	}
	v.value = b[n:]
	return v, nil
}

// kv builds the KeyValue of a live version. The value is copied unless keysOnly.
func (v version) kv(key []byte, mod int64, keysOnly bool) *mvccpb.KeyValue {
	kv := &mvccpb.KeyValue{
		Key:            key,
		CreateRevision: v.create,
		ModRevision:    mod,
		Version:        v.ver,
		Lease:          v.lease,
	}
	if !keysOnly {
		kv.Value = append([]byte(nil), v.value...)
	}
	return kv
}

func encodeRevLog(key []byte, tombstone bool) []byte {
	out := make([]byte, 0, 1+len(key))
	if tombstone {
		out = append(out, flagTombstone)
	} else {
		out = append(out, 0)
	}
	return append(out, key...)
}

func decodeRevLog(b []byte) (key []byte, tombstone bool, err error) {
	if len(b) == 0 || b[0]&^flagTombstone != 0 {
		return nil, false, fmt.Errorf("mvcc: corrupt revision-log entry")
	}
	return append([]byte(nil), b[1:]...), b[0]&flagTombstone != 0, nil
}

func int64Value(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func parseInt64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("mvcc: corrupt meta value of %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
