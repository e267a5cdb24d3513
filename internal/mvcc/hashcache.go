package mvcc

import (
	"context"
	"slices"
	"sync"

	"github.com/metastore/metastore/internal/storage"
)

// hashCacheSize is how many compaction hashes a store keeps (etcd's
// hashStorageMaxSize).
const hashCacheSize = 10

// compactHashes are the hashes a store computes at each compaction, as etcd's
// hashStorage: when a compaction at C is published over a previous one at P, the
// compactor hashes, before it deletes anything for C, the history at C as seen with P
// (HashKV's walk with compacted revision P, on an engine snapshot taken when C was
// published) and keeps the newest hashCacheSize of them. HashKV at a revision that has
// one answers it (CompactRev P, P = 0 if none), as etcd answers its stored hash, so a
// HashKV at C gives the same hash before and after the compaction at C; and the
// compaction hash check compares these across members.
//
// The cache is member-local and in memory: a restart or a Reload empties it.
type compactHashes struct {
	mu      sync.Mutex
	pending []pendingHash    // published compactions not hashed yet, oldest first
	done    []KeyValueHash   // sorted by Rev, at most hashCacheSize
	changed chan struct{}    // closed (and replaced) whenever pending shrinks
	busy    storage.Snapshot // pending[0]'s, while run hashes it (run closes it)
	gen     uint64           // bumped by reset: a hash begun before is dropped
}

type pendingHash struct {
	snap    storage.Snapshot
	compact int64 // the compaction before this one (0: none)
	rev     int64
}

// add queues the hash of the compaction at rev over the one at compact, on snap (which
// it owns from now on). Only the newest hashCacheSize pending ones are kept.
func (c *compactHashes) add(snap storage.Snapshot, compact, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, pendingHash{snap: snap, compact: compact, rev: rev})
	for len(c.pending) > hashCacheSize {
		_ = c.pending[1].snap.Close() // [0] may be being hashed
		c.pending = slices.Delete(c.pending, 1, 2)
	}
	c.broadcastLocked()
}

// run hashes every pending compaction (the compactor calls it before compacting).
func (c *compactHashes) run(ctx context.Context) {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			return
		}
		p, gen := c.pending[0], c.gen
		c.busy = p.snap
		c.mu.Unlock()
		h, err := hashVersions(ctx, p.snap, p.compact, p.rev)
		_ = p.snap.Close()
		c.mu.Lock()
		c.busy = nil
		if c.gen != gen {
			c.mu.Unlock()
			continue
		}
		c.pending = c.pending[1:]
		if err == nil { // else stopped, or an engine error the compaction itself reports
			c.storeLocked(KeyValueHash{Hash: h, CompactRev: p.compact, Rev: p.rev})
		}
		c.broadcastLocked()
		c.mu.Unlock()
	}
}

func (c *compactHashes) broadcastLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

func (c *compactHashes) storeLocked(h KeyValueHash) {
	c.done = slices.DeleteFunc(c.done, func(o KeyValueHash) bool { return o.Rev == h.Rev })
	c.done = append(c.done, h)
	slices.SortFunc(c.done, func(a, b KeyValueHash) int { return int(a.Rev - b.Rev) })
	if len(c.done) > hashCacheSize {
		c.done = c.done[len(c.done)-hashCacheSize:]
	}
}

// lookup returns the stored hash at rev, if any. While a compaction at rev waits to
// be hashed it waits for that (the compactor hashes before it deletes anything, so
// promptly), so that every member answers the stored hash at a compacted revision.
func (c *compactHashes) lookup(ctx context.Context, rev int64) (KeyValueHash, bool, error) {
	for {
		c.mu.Lock()
		for _, h := range c.done {
			if h.Rev == rev {
				c.mu.Unlock()
				return h, true, nil
			}
		}
		if !slices.ContainsFunc(c.pending, func(p pendingHash) bool { return p.rev == rev }) {
			c.mu.Unlock()
			return KeyValueHash{}, false, nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return KeyValueHash{}, false, ctx.Err()
		}
	}
}

// reset drops everything (Reload, Close).
func (c *compactHashes) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pending {
		if p.snap != c.busy {
			_ = p.snap.Close()
		}
	}
	c.pending, c.done = nil, nil
	c.gen++
	c.broadcastLocked()
}

// CompactionHashes returns the hashes computed at the latest compactions (at most 10,
// oldest first), for the compaction hash check.
func (s *Store) CompactionHashes() []KeyValueHash {
	s.hashes.mu.Lock()
	defer s.hashes.mu.Unlock()
	return slices.Clone(s.hashes.done)
}

// stopContext is a context that ends when the store closes (or cancel is called).
func (s *Store) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
