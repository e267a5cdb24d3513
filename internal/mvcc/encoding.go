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
//	                                  bit 1: a put that made the key live (it had no
//	                                         live version just before: a new key or one
//	                                         deleted before), so the range's count grew
//	                                  bit 2: bit 1 is recorded (every put written since
//	                                         the flag exists; a delete always made a
//	                                         live key dead)
//	userkey                           the rest of the bytes
//
// Every version ever written has exactly one revision-log entry at the same revision,
// until compaction removes both. Bits 1 and 2 let a count of a range at one revision
// be brought to another by the log entries between them (see countDelta).
const (
	flagTombstone = 1 << 0
	flagCreated   = 1 << 1
	flagCounted   = 1 << 2

	revLogFlags = flagTombstone | flagCreated | flagCounted
)

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

// encodeRevLog is the revision-log entry of a put (created: the key had no live
// version before it) or of a delete (tombstone).
func encodeRevLog(key []byte, tombstone, created bool) []byte {
	out := make([]byte, 0, 1+len(key))
	switch {
	case tombstone:
		out = append(out, flagTombstone|flagCounted)
	case created:
		out = append(out, flagCreated|flagCounted)
	default:
		out = append(out, flagCounted)
	}
	return append(out, key...)
}

var errCorruptRevLog = errors.New("mvcc: corrupt revision-log entry")

func decodeRevLog(b []byte) (key []byte, tombstone bool, err error) {
	if len(b) == 0 || b[0]&^revLogFlags != 0 {
		return nil, false, errCorruptRevLog
	}
	return append([]byte(nil), b[1:]...), b[0]&flagTombstone != 0, nil
}

// revLogDelta is how much the change recorded in revision-log value b changed the
// number of live keys of its key (-1, 0 or +1), and the key (aliasing b). ok is false
// for a put written before flagCreated existed.
func revLogDelta(b []byte) (key []byte, delta int, ok bool, err error) {
	if len(b) == 0 || b[0]&^revLogFlags != 0 {
		return nil, 0, false, errCorruptRevLog
	}
	switch f := b[0]; {
	case f&flagTombstone != 0:
		return b[1:], -1, true, nil
	case f&flagCounted == 0:
		return b[1:], 0, false, nil
	case f&flagCreated != 0:
		return b[1:], 1, true, nil
	default:
		return b[1:], 0, true, nil
	}
}

func int64Value(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func parseInt64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("mvcc: corrupt meta value of %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
