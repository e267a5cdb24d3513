package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Key layout. Every key written into an Engine starts with one prefix byte naming its
// owner. The prefixes are listed here and nowhere else.
//
//	'I' name                     this member's own identity (member ID)   (cmd wiring; never replicated)
//	'H', 'S', 'L'                the raft state of builds before raftlog's WAL: never
//	                             written now ('H' marks such a data dir)  (raftlog)
//	'M' name                     state-machine metadata (applied index…)  (apply, mvcc, membership)
//	'K' esc(userkey) 00 01 ^main(8) ^sub(8)
//	                             one version of a user key, newest first  (mvcc)
//	'R' main(8) sub(8)           revision log: which key changed at a revision (mvcc, watch)
//	'E' 'l' id(8)                a lease: uvarint(ttl) varint(remaining)   (lease)
//	'E' 'k' id(8) userkey        userkey is attached to lease id (empty)   (lease)
//	'A' 'u'|'r' name             a user / a role (authpb.User, authpb.Role) (auth)
//	'A' 'e', 'A' 'v'             auth enabled (1), auth revision (8)        (auth)
//
// esc(userkey) replaces every 0x00 byte with 0x00 0xFF and the key is closed by 0x00 0x01,
// so encoded keys sort exactly as user keys do and no user key's encoding is a prefix of
// another's. ^n is the bitwise complement of n, big endian: the versions of one key sort
// from the newest revision to the oldest, so "the newest version at or below revision R"
// is one SeekGE to VersionKey(key, R, MaxSub).
const (
	PrefixLocal         byte = 'I'
	PrefixRaftHardState byte = 'H'
	PrefixRaftSnapshot  byte = 'S'
	PrefixRaftLog       byte = 'L'
	PrefixMeta          byte = 'M'
	PrefixKey           byte = 'K'
	PrefixRevision      byte = 'R'
	PrefixLease         byte = 'E'
	PrefixAuth          byte = 'A'
)

// MaxSub is the largest sub-revision; VersionKey(k, main, MaxSub) sorts before every
// version of k at revision main.
const MaxSub = int64(^uint64(0) >> 1)

// StateMachinePrefixes are the prefixes whose keys make up the replicated state machine:
// what a Raft snapshot carries and what installing one replaces.
var StateMachinePrefixes = []byte{PrefixMeta, PrefixKey, PrefixRevision, PrefixLease, PrefixAuth}

// StateMachineSize estimates the bytes the replicated state machine takes in eng: what
// the backend quota (--quota-backend-bytes) limits. It leaves out the Raft log, which
// etcd keeps in its WAL outside the quota; unflushed writes are counted whole.
func StateMachineSize(eng Engine) uint64 {
	n := eng.UnflushedSize()
	for _, p := range StateMachinePrefixes {
		n += eng.TableSize([]byte{p}, []byte{p + 1})
	}
	return n
}

// RaftHardStateKey is where builds before raftlog's WAL kept the raft hard state; its
// presence marks such a data dir (CheckLayout).
var RaftHardStateKey = []byte{PrefixRaftHardState}

// ErrOldLayout is returned by CheckLayout for an engine whose raft log an older build
// kept inside it.
var ErrOldLayout = errors.New("storage: the engine holds a raft log of an older MetaStore build (kept in the engine, not in a WAL); start from an empty data dir")

// CheckLayout refuses an engine written by a build that kept the raft log in the
// engine (ErrOldLayout): this build would ignore that log and start from nothing.
func CheckLayout(r Reader) error {
	_, err := r.Get(RaftHardStateKey)
	switch {
	case err == nil:
		return ErrOldLayout
	case errors.Is(err, ErrNotFound):
		return nil
	default:
		return err
	}
}

// Meta keys written by the state machine. Apply writes MetaAppliedIndex, MetaAppliedTerm
// and MetaConfState in the same batch as the data of the entry it applied.
var (
	MetaAppliedIndex     = MetaKey("applied_index")     // uint64 BE
	MetaAppliedTerm      = MetaKey("applied_term")      // uint64 BE
	MetaConfState        = MetaKey("conf_state")        // raftpb.ConfState, protobuf
	MetaCompactScheduled = MetaKey("compact_scheduled") // int64 BE: logical compaction revision
	MetaCompactFinished  = MetaKey("compact_finished")  // int64 BE: physically finished
	MetaMembers          = MetaKey("members")           // membership, owned by membership/apply
	MetaAlarms           = MetaKey("alarms")            // active alarms, owned by apply
	MetaClusterVersion   = MetaKey("cluster_version")   // "major.minor.0" the cluster runs at, owned by apply
	MetaClusterID        = MetaKey("cluster_id")        // uint64 BE
	MetaConfRefused      = MetaKey("conf_refused")      // uint64 BE indexes of conf changes apply refused, ascending
	MetaSnapshotInstall  = MetaKey("snapshot_install")  // set while a snapshot is being installed
	MetaKeyCount         = MetaKey("key_count")         // int64 BE: live keys at the store's revision, owned by mvcc
)

// LocalMemberID holds this member's ID (uint64 BE). It is not part of the state machine:
// a snapshot from another member must not overwrite it.
var LocalMemberID = []byte{PrefixLocal, 'm', 'e', 'm', 'b', 'e', 'r', '_', 'i', 'd'}

// LocalBootstrapMembers holds the member list this member started from (membership's
// encoding): the one --initial-cluster gave, or, for a member that joined a running
// cluster, the one its peers' GET /members gave. cmd reads it for the transport's peers
// until the state machine has a list of its own (MetaMembers, written only by apply, from
// the conf changes in the log or a snapshot). Not part of the state machine.
var LocalBootstrapMembers = []byte{PrefixLocal, 'b', 'o', 'o', 't', 's', 't', 'r', 'a', 'p', '_', 'm', 'e', 'm', 'b', 'e', 'r', 's'}

// MetaKey returns the key of the state-machine metadata entry name.
func MetaKey(name string) []byte { return append([]byte{PrefixMeta}, name...) }

// RaftLogKey returns the key under which builds before raftlog's WAL kept the raft log
// entry at index (now only a key of another owner, in tests).
func RaftLogKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = PrefixRaftLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

var errBadKey = errors.New("storage: malformed key")

// PrefixEnd returns the first key after every key that starts with prefix.
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // prefix is all 0xFF: no upper bound
}

// KeyPrefix returns the prefix shared by every version of user key k:
// 'K' esc(k) 00 01. Versions of k sort within [KeyPrefix(k), PrefixEnd(KeyPrefix(k))),
// and KeyPrefix(a) < KeyPrefix(b) whenever a < b.
func KeyPrefix(k []byte) []byte {
	out := make([]byte, 0, len(k)+3+16)
	return appendKeyPrefix(out, k)
}

func appendKeyPrefix(out, k []byte) []byte {
	out = append(out, PrefixKey)
	for _, c := range k {
		if c == 0 {
			out = append(out, 0, 0xFF)
			continue
		}
		out = append(out, c)
	}
	return append(out, 0, 1)
}

// Split returns the length of k's engine prefix: the part that prefix (bloom) filters
// hash and that Iterator.SeekPrefixGE stays within. A version key's prefix is its
// KeyPrefix ('K' esc(userkey) 00 01), shared by every version of the user key; any other
// key, including a 'K' key cut before its 00 01, is its own prefix.
//
// Because esc codes are prefix-free, prefixes order keys exactly as bytewise comparison
// does, the property an engine's prefix extractor needs: a <= b implies
// prefix(a) <= prefix(b), and prefix(a) < prefix(b) implies a < b.
func Split(k []byte) int {
	n, _ := split(k)
	return n
}

// split is Split, also reporting whether k's prefix is a whole KeyPrefix.
func split(k []byte) (n int, keyPrefix bool) {
	if len(k) == 0 || k[0] != PrefixKey {
		return len(k), false
	}
	for i := 1; i+1 < len(k); i++ {
		if k[i] == 0 {
			if k[i+1] == 1 {
				return i + 2, true
			}
			i++ // 00 FF: an escaped zero byte
		}
	}
	return len(k), false
}

// PrefixSuccessor appends to dst the smallest key after prefix p (Split(p) == len(p))
// that is itself a whole prefix: what an engine's comparer calls ImmediateSuccessor.
// For a KeyPrefix it replaces the closing 00 01 with 00 02; any other prefix gets a 0x00.
func PrefixSuccessor(dst, p []byte) []byte {
	if n, kp := split(p); kp && n == len(p) {
		return append(append(dst, p[:len(p)-1]...), 2)
	}
	return append(append(dst, p...), 0)
}

// VersionKey returns the key of the version of user key k written at revision (main, sub).
func VersionKey(k []byte, main, sub int64) []byte {
	out := make([]byte, 0, len(k)+3+16)
	out = appendKeyPrefix(out, k)
	out = binary.BigEndian.AppendUint64(out, ^uint64(main))
	return binary.BigEndian.AppendUint64(out, ^uint64(sub))
}

// ParseVersionKey splits a version key into its user key and revision.
func ParseVersionKey(ek []byte) (userKey []byte, main, sub int64, err error) {
	if len(ek) < 1+2+16 || ek[0] != PrefixKey {
		return nil, 0, 0, errBadKey
	}
	body, revs := ek[1:len(ek)-16], ek[len(ek)-16:]
	if body[len(body)-2] != 0 || body[len(body)-1] != 1 {
		return nil, 0, 0, errBadKey
	}
	body = body[:len(body)-2]
	userKey = make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == 0 {
			if i+1 >= len(body) || body[i+1] != 0xFF {
				return nil, 0, 0, errBadKey
			}
			i++
		}
		userKey = append(userKey, c)
	}
	main = int64(^binary.BigEndian.Uint64(revs[:8]))
	sub = int64(^binary.BigEndian.Uint64(revs[8:]))
	return userKey, main, sub, nil
}

// VersionKeyMain returns the main revision of a version key without decoding its user key.
func VersionKeyMain(ek []byte) (int64, error) {
	if len(ek) < 1+2+16 || ek[0] != PrefixKey {
		return 0, errBadKey
	}
	return int64(^binary.BigEndian.Uint64(ek[len(ek)-16:])), nil
}

// KeyRangeBounds returns engine bounds covering every version of every user key in
// [key, end) with etcd's conventions: end == nil means the single key `key`, and
// end == "\x00" means every key >= key.
func KeyRangeBounds(key, end []byte) (lower, upper []byte) {
	lower = KeyPrefix(key)
	switch {
	case len(end) == 0:
		upper = PrefixEnd(lower)
	case len(end) == 1 && end[0] == 0:
		upper = []byte{PrefixKey + 1}
	default:
		upper = KeyPrefix(end)
	}
	return lower, upper
}

// RevisionKey returns the revision-log key of revision (main, sub).
func RevisionKey(main, sub int64) []byte {
	k := make([]byte, 17)
	k[0] = PrefixRevision
	binary.BigEndian.PutUint64(k[1:], uint64(main))
	binary.BigEndian.PutUint64(k[9:], uint64(sub))
	return k
}

// ParseRevisionKey returns the revision of a revision-log key.
func ParseRevisionKey(k []byte) (main, sub int64, err error) {
	if len(k) != 17 || k[0] != PrefixRevision {
		return 0, 0, errBadKey
	}
	return int64(binary.BigEndian.Uint64(k[1:])), int64(binary.BigEndian.Uint64(k[9:])), nil
}

// StoreRevision is the store revision of the state r holds: the main revision of the
// last revision-log entry, as every revision writes at least one and compaction removes
// only those below the compacted revision; 1 (a fresh store) when there is none. A
// scheduled compaction above it raises it: `snapshot restore --bump-revision N
// --mark-compacted` moves the store to revision+N by scheduling a compaction there, as
// etcdutl does, without writing a revision-log entry that names no key.
func StoreRevision(r Reader) (int64, error) {
	it, err := r.NewIter(IterOptions{LowerBound: []byte{PrefixRevision}, UpperBound: []byte{PrefixRevision + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	rev := int64(1)
	if it.Last() {
		main, _, err := ParseRevisionKey(it.Key())
		if err != nil {
			return 0, err
		}
		rev = max(rev, main)
	} else if err := it.Error(); err != nil {
		return 0, err
	}
	switch b, err := r.Get(MetaCompactScheduled); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return 0, err
	default:
		c, err := Uint64(b)
		if err != nil {
			return 0, err
		}
		rev = max(rev, int64(c))
	}
	return rev, nil
}

// PutUint64 and Uint64 encode the fixed-width integers kept in meta keys.
func PutUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Uint64 decodes a value written by PutUint64.
func Uint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, errBadKey
	}
	return binary.BigEndian.Uint64(b), nil
}

// Lease keys. A lease ID is an int64 stored as its uint64 bit pattern, big endian; a
// lease's attachments sort together under LeaseAttachPrefix(id), so revoking a lease
// reads its keys without scanning the key space.
const (
	leaseRecord byte = 'l'
	leaseAttach byte = 'k'
)

// LeaseKey returns the key of lease id's record.
func LeaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{PrefixLease, leaseRecord}, uint64(id))
}

// LeaseRecordBounds are the bounds of every lease record.
func LeaseRecordBounds() (lower, upper []byte) {
	return []byte{PrefixLease, leaseRecord}, []byte{PrefixLease, leaseRecord + 1}
}

// ParseLeaseKey returns the ID of a lease record key.
func ParseLeaseKey(k []byte) (int64, error) {
	if len(k) != 10 || k[0] != PrefixLease || k[1] != leaseRecord {
		return 0, errBadKey
	}
	return int64(binary.BigEndian.Uint64(k[2:])), nil
}

// LeaseAttachPrefix is the prefix of every attachment of lease id.
func LeaseAttachPrefix(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{PrefixLease, leaseAttach}, uint64(id))
}

// LeaseAttachKey returns the key recording that user key k is attached to lease id.
func LeaseAttachKey(id int64, k []byte) []byte {
	return append(LeaseAttachPrefix(id), k...)
}

// LeaseAttachBounds are the bounds of every attachment of every lease.
func LeaseAttachBounds() (lower, upper []byte) {
	return []byte{PrefixLease, leaseAttach}, []byte{PrefixLease, leaseAttach + 1}
}

// ParseLeaseAttachKey splits an attachment key into its lease ID and user key (which
// aliases k).
func ParseLeaseAttachKey(k []byte) (id int64, userKey []byte, err error) {
	if len(k) < 10 || k[0] != PrefixLease || k[1] != leaseAttach {
		return 0, nil, errBadKey
	}
	return int64(binary.BigEndian.Uint64(k[2:10])), k[10:], nil
}

// Auth keys (package auth): the users and roles as marshaled authpb messages, whether
// auth is enabled and the auth revision.
const (
	authUser     byte = 'u'
	authRole     byte = 'r'
	authEnabled  byte = 'e'
	authRevision byte = 'v'
)

// AuthUserKey is the key of user name's record (authpb.User).
func AuthUserKey(name string) []byte { return append([]byte{PrefixAuth, authUser}, name...) }

// AuthRoleKey is the key of role name's record (authpb.Role).
func AuthRoleKey(name string) []byte { return append([]byte{PrefixAuth, authRole}, name...) }

// AuthUserBounds and AuthRoleBounds bound every user and every role record.
func AuthUserBounds() (lower, upper []byte) {
	return []byte{PrefixAuth, authUser}, []byte{PrefixAuth, authUser + 1}
}

func AuthRoleBounds() (lower, upper []byte) {
	return []byte{PrefixAuth, authRole}, []byte{PrefixAuth, authRole + 1}
}

// AuthEnabledKey holds 1 while auth is enabled; AuthRevisionKey the auth revision
// (8 bytes big endian).
var (
	AuthEnabledKey  = []byte{PrefixAuth, authEnabled}
	AuthRevisionKey = []byte{PrefixAuth, authRevision}
)
