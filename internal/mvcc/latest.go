package mvcc

import "github.com/metastore/metastore/internal/storage"

// latestCache remembers the newest version (create revision, version, lease) of the keys
// the writer wrote recently, as the writer sees them (uncommitted batches included): what
// a Put needs from the previous version. A hit needs no engine read at all.
//
// It is also complete for a window of time, when the engine is a storage.TableReader:
// the writer's keys are kept in generations of about genWrites writes; when one is full
// and its writes are committed, the cache asks the engine to flush (FlushAsync) and
// starts the next. Once a flush started at or after the last reset has finished, every
// key written since the oldest unfinished flush is in a generation, so a key that is not
// is not in any memory table either: its newest version, if any, is in the flushed
// tables, and a miss reads only those (TableReader.NewTableIter), skipping the memory
// tables' search, which is the bulk of a lookup for a key written for the first time.
// The compactor's deletions, which sit in the memory tables, never remove a newest
// version, so reading the tables without them finds the same newest version.
//
// Memory is bounded: generations whose flush has finished are dropped but the newest of
// them, kept as a plain (incomplete) cache; the unfinished ones are bounded by the
// engine's own limit on memory tables waiting for a flush.
//
// Only the writer (apply's goroutine) touches it. Reload resets it: after a snapshot
// install or a discarded batch its contents may be wrong, and writes made underneath it
// may sit in the memory tables. Compaction never removes a live key's newest version,
// and a compacted-away tombstone and a tombstone both mean "no previous version" to a
// Put, so the compactor need not tell it anything.
type latestCache struct {
	genWrites int                 // writes per generation; <= 0: no cache at all
	tr        storage.TableReader // nil: never complete

	cur     map[string]latestVersion
	writes  int                      // writes into cur
	curMax  int64                    // the highest revision written into cur
	pending []pendingGen             // generations whose flush has not finished, oldest first
	old     map[string]latestVersion // the newest generation known flushed
	armed   <-chan struct{}          // closed when the first flush after the last reset is done
	full    bool                     // complete: see above
}

type pendingGen struct {
	keys    map[string]latestVersion
	flushed <-chan struct{}
}

// latestVersion is the newest version of a key; tombstone means the key is deleted.
type latestVersion struct {
	create, mod, ver, lease int64
	tombstone               bool
}

// DefaultLatestCacheWrites is the default number of writes per generation: about 6 MiB
// of map per generation for keys of 50 bytes.
const DefaultLatestCacheWrites = 1 << 16

func newLatestCache(genWrites int, tr storage.TableReader) *latestCache {
	c := &latestCache{genWrites: genWrites, tr: tr}
	c.reset()
	return c
}

// reset forgets everything and starts a flush: the cache becomes complete again when
// that flush is done, as every write made before it is then in the tables.
func (c *latestCache) reset() {
	c.cur, c.writes, c.curMax = map[string]latestVersion{}, 0, 0
	c.pending, c.old, c.armed, c.full = nil, nil, nil, false
	if c.genWrites > 0 && c.tr != nil {
		if ch, err := c.tr.FlushAsync(); err == nil {
			c.armed = ch
		}
	}
}

// poll drops the generations whose flush has finished and notes completeness.
func (c *latestCache) poll() {
	for len(c.pending) > 0 && closed(c.pending[0].flushed) {
		c.old = c.pending[0].keys
		c.pending = c.pending[1:]
	}
	if c.armed != nil && closed(c.armed) {
		c.armed, c.full = nil, true
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// get returns the remembered newest version of key. complete reports, for a miss, that
// the key has no version in the engine's memory tables.
func (c *latestCache) get(key []byte) (v latestVersion, ok, complete bool) {
	if c.genWrites <= 0 {
		return latestVersion{}, false, false
	}
	c.poll()
	if v, ok := c.cur[string(key)]; ok {
		return v, true, c.full
	}
	for i := len(c.pending) - 1; i >= 0; i-- {
		if v, ok := c.pending[i].keys[string(key)]; ok {
			return v, true, c.full
		}
	}
	v, ok = c.old[string(key)]
	return v, ok, c.full
}

// set records a write of key, made at revision v.mod.
func (c *latestCache) set(key []byte, v latestVersion) {
	if c.genWrites <= 0 {
		return
	}
	c.cur[string(key)] = v
	c.writes++
	c.curMax = max(c.curMax, v.mod)
}

// committed tells the cache that every write at or below rev is in the engine. A full
// generation whose writes all are starts a flush and a new generation: a flush started
// earlier would miss writes still in an uncommitted batch. If the flush cannot start,
// the cache stops being complete until a reset.
func (c *latestCache) committed(rev int64) {
	if c.genWrites <= 0 || c.writes < c.genWrites || c.curMax > rev {
		return
	}
	var ch <-chan struct{}
	if c.tr != nil {
		var err error
		if ch, err = c.tr.FlushAsync(); err != nil {
			c.full, c.armed = false, nil
		}
	}
	if ch == nil { // no tables to rely on: a plain two-generation cache
		c.old = c.cur
	} else {
		c.pending = append(c.pending, pendingGen{keys: c.cur, flushed: ch})
	}
	c.cur, c.writes, c.curMax = make(map[string]latestVersion, len(c.cur)), 0, 0
}
