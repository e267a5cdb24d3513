package mvcc

// latestCache remembers, for recently written user keys, the newest version as the
// writer sees it (uncommitted batches included): what a Put needs from the previous
// version (create revision, version, lease) without a read from the engine, which would
// otherwise search every memtable and every table whose prefix filter matches.
//
// It is bounded, so memory does not grow with the number of keys: two generations of at
// most max/2 keys each. A lookup checks the current generation first; when it is full,
// the older one is dropped and the current one becomes the older. Every write goes into
// the current generation, so it always holds the newest state of the keys it has, and
// the older one only keys not written since the switch.
//
// Only the writer (apply's goroutine) touches it. Reload clears it: after a snapshot
// install or a discarded batch its contents may be wrong. Compaction never removes a
// live key's newest version, and a compacted-away tombstone and a tombstone both mean
// "no previous version" to a Put, so the compactor does not need to tell it anything.
type latestCache struct {
	max      int
	cur, old map[string]latestVersion
}

// latestVersion is the newest version of a key; tombstone means the key is deleted.
type latestVersion struct {
	create, mod, ver, lease int64
	tombstone               bool
}

// DefaultLatestCacheKeys is how many keys' newest versions the writer remembers unless
// Options say otherwise: about 15 MiB for keys of 50 bytes.
const DefaultLatestCacheKeys = 1 << 17

func newLatestCache(max int) *latestCache {
	c := &latestCache{max: max}
	c.reset()
	return c
}

func (c *latestCache) reset() {
	c.cur, c.old = make(map[string]latestVersion), nil
}

func (c *latestCache) get(key []byte) (latestVersion, bool) {
	if c.max <= 0 {
		return latestVersion{}, false
	}
	if v, ok := c.cur[string(key)]; ok {
		return v, true
	}
	if v, ok := c.old[string(key)]; ok {
		c.set(key, v) // keep it past the next switch
		return v, true
	}
	return latestVersion{}, false
}

func (c *latestCache) set(key []byte, v latestVersion) {
	if c.max <= 0 {
		return
	}
	if _, ok := c.cur[string(key)]; !ok && len(c.cur) >= (c.max+1)/2 {
		c.old, c.cur = c.cur, make(map[string]latestVersion, len(c.cur))
	}
	c.cur[string(key)] = v
}
