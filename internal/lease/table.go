// Package lease owns the replicated lease table: every lease's ID, granted TTL and last
// checkpointed remaining TTL, and the keys attached to it, kept in the engine under the
// 'E' keys of storage/keys.go and mirrored in memory.
//
// The table is written only by the state machine (apply), in the engine batch of the
// entry being applied, so every member holds the same leases at the same applied index.
// Like apply it has no clock: when a lease expires is the leader's business
// (internal/lessor), which learns of grants and revokes through a Listener and
// turns expiries into LeaseRevoke proposals. The table must not decide expiry, touch
// the key-value versions (apply deletes a revoked lease's keys through mvcc), or know
// Raft or gRPC.
package lease

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/metastore/metastore/internal/storage"
)

// MaxTTL is the largest TTL a lease may be granted with, in seconds (etcd's
// lease.MaxLeaseTTL).
const MaxTTL = 9000000000

// NoLease is the lease ID of a key attached to no lease.
const NoLease = int64(0)

// Errors with etcd's messages (server/lease/lessor.go).
var (
	ErrLeaseNotFound    = errors.New("lease not found")
	ErrLeaseExists      = errors.New("lease already exists")
	ErrLeaseTTLTooLarge = errors.New("too large lease TTL")
)

// Info is one lease as the table holds it. Remaining is the remaining TTL of the last
// checkpoint, in seconds; 0 means none since the grant (or the last renewal): the lease
// has its whole TTL.
type Info struct {
	ID, TTL, Remaining int64
}

// Listener learns of the table's changes, on the apply goroutine, as they are written
// into the batch (the batch commits right after; if it fails the member stops). It
// must not block nor call back into the table.
type Listener interface {
	Granted(id, ttl int64)
	Revoked(id int64)
}

type entry struct {
	ttl, remaining int64
	keys           map[string]struct{} // nil until a key is attached: most leases have few or none
}

// attach records key as attached (the caller holds the table's lock or owns e alone).
func (e *entry) attach(key string) {
	if e.keys == nil {
		e.keys = map[string]struct{}{}
	}
	e.keys[key] = struct{}{}
}

// Table is the lease table. Mutations (Grant, Revoke, Checkpoint, Attach, Detach,
// Reload) must come from one goroutine, the apply loop; the readers (Exists, Get, Keys,
// List) are safe from any goroutine.
type Table struct {
	mu       sync.RWMutex
	leases   map[int64]*entry
	listener Listener
}

// Open loads the table from r.
func Open(r storage.Reader) (*Table, error) {
	t := &Table{}
	if err := t.Reload(r); err != nil {
		return nil, err
	}
	return t, nil
}

// SetListener installs l (nil: none). Call it before the apply loop runs.
func (t *Table) SetListener(l Listener) {
	t.mu.Lock()
	t.listener = l
	t.mu.Unlock()
}

// Reload re-reads the whole table from r (after a snapshot install or a failed apply).
func (t *Table) Reload(r storage.Reader) error {
	leases := map[int64]*entry{}
	lo, hi := storage.LeaseRecordBounds()
	err := scan(r, lo, hi, func(k, v []byte) error {
		id, err := storage.ParseLeaseKey(k)
		if err != nil {
			return err
		}
		e, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("lease %x: %w", id, err)
		}
		leases[id] = e
		return nil
	})
	if err != nil {
		return fmt.Errorf("lease: loading leases: %w", err)
	}
	lo, hi = storage.LeaseAttachBounds()
	err = scan(r, lo, hi, func(k, _ []byte) error {
		id, key, err := storage.ParseLeaseAttachKey(k)
		if err != nil {
			return err
		}
		e := leases[id]
		if e == nil {
			return fmt.Errorf("key %q attached to missing lease %x", key, id)
		}
		e.attach(string(key))
		return nil
	})
	if err != nil {
		return fmt.Errorf("lease: loading attachments: %w", err)
	}
	t.mu.Lock()
	t.leases = leases
	t.mu.Unlock()
	return nil
}

func scan(r storage.Reader, lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(storage.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return err
	}
	return it.Close()
}

func encodeRecord(ttl, remaining int64) []byte {
	b := binary.AppendUvarint(nil, uint64(ttl))
	return binary.AppendVarint(b, remaining)
}

func decodeRecord(v []byte) (*entry, error) {
	ttl, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, errors.New("bad lease record")
	}
	rem, m := binary.Varint(v[n:])
	if m <= 0 || n+m != len(v) {
		return nil, errors.New("bad lease record")
	}
	return &entry{ttl: int64(ttl), remaining: rem}, nil
}

// CheckGrant returns the error Grant would fail with, writing nothing.
func (t *Table) CheckGrant(id, ttl int64) error {
	if id == NoLease {
		return ErrLeaseNotFound
	}
	if ttl > MaxTTL {
		return ErrLeaseTTLTooLarge
	}
	if t.Exists(id) {
		return ErrLeaseExists
	}
	return nil
}

// Grant records lease id with ttl (seconds) into b. The caller raised ttl to the
// minimum TTL before proposing it: the table takes it as it is.
func (t *Table) Grant(b storage.Batch, id, ttl int64) error {
	if err := t.CheckGrant(id, ttl); err != nil {
		return err
	}
	if err := b.Set(storage.LeaseKey(id), encodeRecord(ttl, 0)); err != nil {
		return err
	}
	t.mu.Lock()
	t.leases[id] = &entry{ttl: ttl}
	l := t.listener
	t.mu.Unlock()
	if l != nil {
		l.Granted(id, ttl)
	}
	return nil
}

// Revoke removes lease id and its attachments from b and returns the keys that were
// attached, sorted: the caller deletes them (in one revision). ErrLeaseNotFound for an
// unknown lease, before anything is written.
func (t *Table) Revoke(b storage.Batch, id int64) ([][]byte, error) {
	keys, ok := t.Keys(id)
	if !ok {
		return nil, ErrLeaseNotFound
	}
	if err := b.Delete(storage.LeaseKey(id)); err != nil {
		return nil, err
	}
	// Point deletes, not a range deletion: every later read through an indexed batch
	// fragments all the range deletions the batch holds, which made a burst of revokes
	// quadratic.
	for _, k := range keys {
		if err := b.Delete(storage.LeaseAttachKey(id, k)); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	delete(t.leases, id)
	l := t.listener
	t.mu.Unlock()
	if l != nil {
		l.Revoked(id)
	}
	return keys, nil
}

// Checkpoint records remaining (seconds; 0: the whole TTL) as lease id's remaining TTL.
// An unknown lease is ignored, as etcd does (it may have been revoked meanwhile).
func (t *Table) Checkpoint(b storage.Batch, id, remaining int64) error {
	t.mu.RLock()
	e := t.leases[id]
	t.mu.RUnlock()
	if e == nil {
		return nil
	}
	if remaining < 0 {
		remaining = 0
	}
	if err := b.Set(storage.LeaseKey(id), encodeRecord(e.ttl, remaining)); err != nil {
		return err
	}
	t.mu.Lock()
	e.remaining = remaining
	t.mu.Unlock()
	return nil
}

// Attach records that key is attached to lease id, which must exist (the caller
// checked with Exists).
func (t *Table) Attach(b storage.Batch, id int64, key []byte) error {
	t.mu.RLock()
	e := t.leases[id]
	t.mu.RUnlock()
	if e == nil {
		return fmt.Errorf("lease: attaching %q to missing lease %x", key, id)
	}
	if err := b.Set(storage.LeaseAttachKey(id, key), nil); err != nil {
		return err
	}
	t.mu.Lock()
	e.attach(string(key))
	t.mu.Unlock()
	return nil
}

// Detach removes key's attachment to lease id; a missing lease or attachment is
// ignored (the lease may have been revoked).
func (t *Table) Detach(b storage.Batch, id int64, key []byte) error {
	t.mu.RLock()
	e := t.leases[id]
	_, attached := e.keysHas(key)
	t.mu.RUnlock()
	if !attached {
		return nil
	}
	if err := b.Delete(storage.LeaseAttachKey(id, key)); err != nil {
		return err
	}
	t.mu.Lock()
	delete(e.keys, string(key))
	t.mu.Unlock()
	return nil
}

func (e *entry) keysHas(k []byte) (struct{}, bool) {
	if e == nil {
		return struct{}{}, false
	}
	v, ok := e.keys[string(k)]
	return v, ok
}

// Exists reports whether lease id is in the table.
func (t *Table) Exists(id int64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.leases[id] != nil
}

// Get returns lease id.
func (t *Table) Get(id int64) (Info, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.leases[id]
	if e == nil {
		return Info{}, false
	}
	return Info{ID: id, TTL: e.ttl, Remaining: e.remaining}, true
}

// Keys returns the keys attached to lease id, sorted, and whether the lease exists.
func (t *Table) Keys(id int64) ([][]byte, bool) {
	t.mu.RLock()
	e := t.leases[id]
	if e == nil {
		t.mu.RUnlock()
		return nil, false
	}
	keys := make([]string, 0, len(e.keys))
	for k := range e.keys {
		keys = append(keys, k)
	}
	t.mu.RUnlock()
	sort.Strings(keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out, true
}

// List returns every lease, sorted by ID.
func (t *Table) List() []Info {
	t.mu.RLock()
	out := make([]Info, 0, len(t.leases))
	for id, e := range t.leases {
		out = append(out, Info{ID: id, TTL: e.ttl, Remaining: e.remaining})
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Info) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Len is the number of leases.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.leases)
}
