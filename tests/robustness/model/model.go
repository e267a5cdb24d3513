// Package model is the sequential specification of etcd's KV API with
// revisions, in the form porcupine checks histories against.
//
// It owns: the model State, the recorded operation Input and Output, and the
// porcupine.Model built from them. It does no I/O and must not know about
// clients, processes or faults: the harness converts client responses into
// Input/Output values and hands them here.
//
// The key space is fixed and small (NumKeys keys, KeyName(i)), so a State is a
// comparable value (arrays, no maps or slices): porcupine's Equal is `==` and
// the hash is a few multiplications. Leases live in a small sorted array.
//
// Partitioning: the model is NOT partitioned by key. etcd's revision is global:
// every write bumps one counter shared by all keys, every response carries it
// in its header, and a range returns several keys at one revision. A per-key
// partition could only check each key's own values and mod_revisions, and
// would have to stop checking header revisions, range results and the order
// of writes to different keys — exactly the anomalies a stale or reordered
// read produces. We keep the whole-store model and instead keep histories
// small (bounded rate and duration, few clients) and remove most ambiguous
// writes before checking (see the validate code: every put writes a unique
// value, so the watch history tells whether a timed-out put was applied).
//
// Ambiguous operations (timeouts, connection loss) have Output.Unknown set and
// are stepped nondeterministically: applied or not. Serializable reads are not
// linearizable and are not checked here (the harness checks them against the
// state at their revision, replayed from the watch history).
package model

import (
	"fmt"
	"strings"

	"github.com/anishathalye/porcupine"
)

// NumKeys is the size of the key space the traffic uses.
const NumKeys = 10

// MaxLeases is how many leases can be live at once in the model. The traffic
// keeps fewer alive; a grant beyond this is reported as a model failure.
const MaxLeases = 12

// KeyPrefix is the prefix of every key the traffic touches.
const KeyPrefix = "/robustness/"

// ErrLeaseNotFound is the error text etcd returns for a put with, or a revoke
// of, a lease that does not exist. It is a definite error: nothing applied.
const ErrLeaseNotFound = "etcdserver: requested lease not found"

// KeyName is the key at index i of the key space.
func KeyName(i int) string { return fmt.Sprintf("%skey%02d", KeyPrefix, i) }

// KeyIndex is the inverse of KeyName; -1 for a key outside the key space.
func KeyIndex(key string) int {
	var i int
	if _, err := fmt.Sscanf(strings.TrimPrefix(key, KeyPrefix), "key%02d", &i); err != nil || i < 0 || i >= NumKeys || KeyName(i) != key {
		return -1
	}
	return i
}

// OpType is the kind of a client request.
type OpType uint8

const (
	// Get reads one key (linearizable).
	Get OpType = iota
	// Range reads every key under KeyPrefix (linearizable).
	Range
	// Put writes Value to Key, attached to Lease if non-zero.
	Put
	// Delete deletes Key.
	Delete
	// Txn is the Kubernetes update shape: if mod_revision(Key) == ExpectModRev
	// then put(Key, Value) else get(Key).
	Txn
	// LeaseGrant creates lease Lease (the ID the server chose).
	LeaseGrant
	// LeaseRevoke revokes lease Lease, deleting its keys in one revision.
	LeaseRevoke
)

var opNames = [...]string{"get", "range", "put", "delete", "txn", "lease-grant", "lease-revoke"}

func (t OpType) String() string {
	if int(t) < len(opNames) {
		return opNames[t]
	}
	return fmt.Sprintf("op(%d)", t)
}

// IsWrite reports whether the operation may change the state.
func (t OpType) IsWrite() bool { return t >= Put }

// Input is one request.
type Input struct {
	Type         OpType
	Key          int // key index; unused by Range and lease ops
	Value        string
	Lease        int64
	ExpectModRev int64
}

// KV is one key's state; ModRev == 0 means the key does not exist.
type KV struct {
	Value     string
	ModRev    int64
	CreateRev int64
	Version   int64
	Lease     int64
}

// KeyKV is a KV returned by a read, with its key index.
type KeyKV struct {
	Key int
	KV
}

// Output is one response. The zero value of a field that the request kind does
// not return is ignored. Rev is the response header revision (0: not checked).
type Output struct {
	Unknown   bool   // ambiguous: may or may not have been applied
	Err       string // definite error (nothing applied)
	Rev       int64
	KVs       []KeyKV // get, range, and the else branch of txn
	Succeeded bool    // txn
	Deleted   int64   // delete
}

// State is the store: its revision, every key, and the live leases (sorted,
// zero-padded).
type State struct {
	Rev    int64
	KVs    [NumKeys]KV
	Leases [MaxLeases]int64
}

// Initial is the state of a new cluster: revision 1, no keys.
func Initial() State { return State{Rev: 1} }

func (s State) hasLease(id int64) bool {
	for _, l := range s.Leases {
		if l == id {
			return true
		}
	}
	return false
}

func (s State) read(key int) []KeyKV {
	if s.KVs[key].ModRev == 0 {
		return nil
	}
	return []KeyKV{{Key: key, KV: s.KVs[key]}}
}

// Read returns what a range over the whole key space returns in state s.
func (s State) Read() []KeyKV {
	var out []KeyKV
	for i := range s.KVs {
		out = append(out, s.read(i)...)
	}
	return out
}

func (s *State) put(key int, value string, lease int64) {
	s.Rev++
	kv := s.KVs[key]
	if kv.ModRev == 0 {
		kv = KV{CreateRev: s.Rev}
	}
	kv.Value, kv.ModRev, kv.Lease = value, s.Rev, lease
	kv.Version++
	s.KVs[key] = kv
}

// Apply is the sequential specification: the state after in, and the output
// the server must return. It does not modify s.
func Apply(s State, in Input) (State, Output) {
	switch in.Type {
	case Get:
		return s, Output{Rev: s.Rev, KVs: s.read(in.Key)}
	case Range:
		return s, Output{Rev: s.Rev, KVs: s.Read()}
	case Put:
		if in.Lease != 0 && !s.hasLease(in.Lease) {
			return s, Output{Err: ErrLeaseNotFound}
		}
		s.put(in.Key, in.Value, in.Lease)
		return s, Output{Rev: s.Rev}
	case Delete:
		if s.KVs[in.Key].ModRev == 0 {
			return s, Output{Rev: s.Rev}
		}
		s.Rev++
		s.KVs[in.Key] = KV{}
		return s, Output{Rev: s.Rev, Deleted: 1}
	case Txn:
		if s.KVs[in.Key].ModRev != in.ExpectModRev {
			return s, Output{Rev: s.Rev, KVs: s.read(in.Key)}
		}
		s.put(in.Key, in.Value, 0)
		return s, Output{Rev: s.Rev, Succeeded: true}
	case LeaseGrant:
		if s.hasLease(in.Lease) {
			return s, Output{Err: "model: lease granted twice"}
		}
		if s.Leases[MaxLeases-1] != 0 {
			return s, Output{Err: "model: too many leases"}
		}
		s.Leases[MaxLeases-1] = in.Lease
		for i := MaxLeases - 1; i > 0 && (s.Leases[i-1] == 0 || s.Leases[i-1] > s.Leases[i]); i-- {
			s.Leases[i-1], s.Leases[i] = s.Leases[i], s.Leases[i-1]
		}
		return s, Output{}
	case LeaseRevoke:
		if !s.hasLease(in.Lease) {
			return s, Output{Err: ErrLeaseNotFound}
		}
		var leases [MaxLeases]int64
		j := 0
		for _, l := range s.Leases {
			if l != 0 && l != in.Lease {
				leases[j] = l
				j++
			}
		}
		s.Leases = leases
		deleted := false
		for i := range s.KVs {
			if s.KVs[i].ModRev != 0 && s.KVs[i].Lease == in.Lease {
				if !deleted {
					s.Rev++
					deleted = true
				}
				s.KVs[i] = KV{}
			}
		}
		return s, Output{}
	}
	return s, Output{Err: "model: unknown operation"}
}

// Matches reports whether the observed output agrees with the expected one.
func Matches(in Input, expected, observed Output) bool {
	if expected.Err != "" || observed.Err != "" {
		return expected.Err == observed.Err
	}
	if in.Type == LeaseGrant || in.Type == LeaseRevoke {
		return true
	}
	if observed.Rev != 0 && observed.Rev != expected.Rev {
		return false
	}
	if expected.Succeeded != observed.Succeeded || expected.Deleted != observed.Deleted {
		return false
	}
	if len(expected.KVs) != len(observed.KVs) {
		return false
	}
	for i := range expected.KVs {
		if expected.KVs[i] != observed.KVs[i] {
			return false
		}
	}
	return true
}

// Step returns the possible next states after the operation, none if the
// observed output is impossible in s.
func Step(s State, in Input, out Output) []State {
	next, expected := Apply(s, in)
	if out.Unknown {
		if next == s {
			return []State{s}
		}
		return []State{s, next}
	}
	if !Matches(in, expected, out) {
		return nil
	}
	return []State{next}
}

func hash(s State) uint64 {
	h := uint64(s.Rev) * 0x9E3779B97F4A7C15
	for i, kv := range s.KVs {
		h ^= uint64(kv.ModRev)*0xBF58476D1CE4E5B9 + uint64(i)
		h = h<<7 | h>>57
	}
	for _, l := range s.Leases {
		h ^= uint64(l) * 0x94D049BB133111EB
	}
	return h
}

// Porcupine is the porcupine model: nondeterministic, whole store, not partitioned.
var Porcupine = (&porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{Initial()} },
	Step: func(state, input, output interface{}) []interface{} {
		var out []interface{}
		for _, s := range Step(state.(State), input.(Input), output.(Output)) {
			out = append(out, s)
		}
		return out
	},
	Equal:             func(a, b interface{}) bool { return a.(State) == b.(State) },
	Hash:              func(s interface{}) uint64 { return hash(s.(State)) },
	DescribeOperation: func(in, out interface{}) string { return Describe(in.(Input), out.(Output)) },
	DescribeState:     func(s interface{}) string { return DescribeState(s.(State)) },
}).ToModel()

// Describe renders an operation for the visualisation and failure messages.
func Describe(in Input, out Output) string {
	var b strings.Builder
	switch in.Type {
	case Get:
		fmt.Fprintf(&b, "get(key%02d)", in.Key)
	case Range:
		b.WriteString("range(prefix)")
	case Put:
		fmt.Fprintf(&b, "put(key%02d, %s", in.Key, in.Value)
		if in.Lease != 0 {
			fmt.Fprintf(&b, ", lease=%x", in.Lease)
		}
		b.WriteString(")")
	case Delete:
		fmt.Fprintf(&b, "delete(key%02d)", in.Key)
	case Txn:
		fmt.Fprintf(&b, "txn(if mod(key%02d)==%d then put %s)", in.Key, in.ExpectModRev, in.Value)
	case LeaseGrant:
		fmt.Fprintf(&b, "lease-grant(%x)", in.Lease)
	case LeaseRevoke:
		fmt.Fprintf(&b, "lease-revoke(%x)", in.Lease)
	}
	b.WriteString(" -> ")
	switch {
	case out.Unknown:
		b.WriteString("unknown")
	case out.Err != "":
		b.WriteString("err: " + out.Err)
	default:
		fmt.Fprintf(&b, "rev=%d", out.Rev)
		if in.Type == Txn {
			fmt.Fprintf(&b, " ok=%v", out.Succeeded)
		}
		if in.Type == Delete {
			fmt.Fprintf(&b, " deleted=%d", out.Deleted)
		}
		for _, kv := range out.KVs {
			fmt.Fprintf(&b, " key%02d=%s@%d", kv.Key, kv.Value, kv.ModRev)
		}
	}
	return b.String()
}

// DescribeState renders a state for the visualisation.
func DescribeState(s State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d", s.Rev)
	for i, kv := range s.KVs {
		if kv.ModRev != 0 {
			fmt.Fprintf(&b, " key%02d=%s@%d", i, kv.Value, kv.ModRev)
		}
	}
	for _, l := range s.Leases {
		if l != 0 {
			fmt.Fprintf(&b, " lease=%x", l)
		}
	}
	return b.String()
}
