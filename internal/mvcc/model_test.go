package mvcc

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
)

// model is the naive reference: every version of every key in a map, no compaction
// of data (compaction only moves the compacted revision).
type model struct {
	keys    map[string][]mversion // oldest first
	rev     int64
	compact int64
}

type mversion struct {
	main, sub   int64
	tomb        bool
	create, ver int64
	lease       int64
	value       string
}

func newModel() *model { return &model{keys: map[string][]mversion{}, rev: 1} }

func (m *model) clone() *model {
	c := &model{keys: make(map[string][]mversion, len(m.keys)), rev: m.rev, compact: m.compact}
	for k, vs := range m.keys {
		c.keys[k] = append([]mversion(nil), vs...)
	}
	return c
}

// at returns the newest version of k at or below rev, if any.
func (m *model) at(k string, rev int64) (mversion, bool) {
	vs := m.keys[k]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].main <= rev {
			return vs[i], true
		}
	}
	return mversion{}, false
}

func (v mversion) kv(k string, keysOnly bool) *mvccpb.KeyValue {
	kv := &mvccpb.KeyValue{Key: []byte(k), CreateRevision: v.create, ModRevision: v.main, Version: v.ver, Lease: v.lease}
	if !keysOnly {
		kv.Value = []byte(v.value)
	}
	return kv
}

func inRange(k, key, end string, endNil bool) bool {
	switch {
	case endNil:
		return k == key
	case end == "\x00":
		return k >= key
	default:
		return k >= key && k < end
	}
}

func (m *model) sortedKeys() []string {
	ks := make([]string, 0, len(m.keys))
	for k := range m.keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (m *model) rangeAt(key, end string, endNil bool, cur int64, opts RangeOptions) (RangeResult, error) {
	rev, err := checkRev(opts.Rev, cur, m.compact)
	if err != nil {
		return RangeResult{Rev: cur}, err
	}
	res := RangeResult{Rev: cur}
	for _, k := range m.sortedKeys() {
		if !inRange(k, key, end, endNil) {
			continue
		}
		v, ok := m.at(k, rev)
		if !ok || v.tomb {
			continue
		}
		res.Count++
		if !opts.CountOnly && (opts.Limit <= 0 || int64(len(res.KVs)) < opts.Limit) {
			res.KVs = append(res.KVs, v.kv(k, opts.KeysOnly))
		}
	}
	return res, nil
}

// mtxn is the model of one TxnWrite.
type mtxn struct {
	m   *model
	sub int64
}

func (t *mtxn) rev() int64 {
	if t.sub > 0 {
		return t.m.rev + 1
	}
	return t.m.rev
}

func (t *mtxn) put(k, val string, lease int64) *mvccpb.KeyValue {
	rev := t.m.rev + 1
	prev, ok := t.m.at(k, rev)
	nv := mversion{main: rev, sub: t.sub, create: rev, ver: 1, lease: lease, value: val}
	var out *mvccpb.KeyValue
	if ok && !prev.tomb {
		nv.create, nv.ver = prev.create, prev.ver+1
		out = prev.kv(k, false)
	}
	t.m.keys[k] = append(t.m.keys[k], nv)
	t.sub++
	return out
}

func (t *mtxn) del(key, end string, endNil bool) []*mvccpb.KeyValue {
	res, _ := t.m.rangeAt(key, end, endNil, t.rev(), RangeOptions{})
	for _, kv := range res.KVs {
		k := string(kv.Key)
		t.m.keys[k] = append(t.m.keys[k], mversion{main: t.m.rev + 1, sub: t.sub, tomb: true})
		t.sub++
	}
	return res.KVs
}

func (t *mtxn) end() {
	if t.sub > 0 {
		t.m.rev++
	}
}

// events lists the model's changes with main revision in [from, to].
func (m *model) events(from, to int64) []string {
	type ev struct {
		main, sub int64
		s         string
	}
	var evs []ev
	for k, vs := range m.keys {
		for i, v := range vs {
			if v.main < from || v.main > to {
				continue
			}
			e := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: v.kv(k, false)}
			if v.tomb {
				e = &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(k), ModRevision: v.main}}
			}
			if v.main == m.compact && i+1 < len(vs) && vs[i+1].main == v.main {
				continue // superseded in the compacted revision itself
			}
			if i > 0 && !vs[i-1].tomb && v.main > m.compact {
				e.PrevKv = vs[i-1].kv(k, false)
			}
			evs = append(evs, ev{v.main, v.sub, eventString(e)})
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].main != evs[j].main {
			return evs[i].main < evs[j].main
		}
		return evs[i].sub < evs[j].sub
	})
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.s
	}
	return out
}

func eventString(e *mvccpb.Event) string {
	s := fmt.Sprintf("%v %q", e.Type, kvString(e.Kv))
	if e.PrevKv != nil {
		s += fmt.Sprintf(" prev %q", kvString(e.PrevKv))
	}
	return s
}

// expectedVersionKeys are the version keys a finished compaction at m.compact leaves.
func (m *model) expectedVersionKeys() []string {
	var out []string
	for k, vs := range m.keys {
		newest := -1
		for i, v := range vs {
			if v.main <= m.compact {
				newest = i
			}
		}
		for i, v := range vs {
			if i < newest || (i == newest && v.tomb) {
				continue
			}
			out = append(out, string(storage.VersionKey([]byte(k), v.main, v.sub)))
		}
	}
	sort.Strings(out)
	return out
}

var modelKeys = []string{"a", "a\x00", "a\x00b", "ab", "b", "b\xff", "c", "foo", "foo/bar", "z", "\x01"}

func randKey(rng *rand.Rand) string { return modelKeys[rng.Intn(len(modelKeys))] }

// randRange returns key, end and whether end is nil (a single key).
func randRange(rng *rand.Rand) (string, string, bool) {
	switch rng.Intn(4) {
	case 0:
		return randKey(rng), "", true
	case 1:
		return randKey(rng), "\x00", false
	default:
		return randKey(rng), randKey(rng), false
	}
}

func endBytes(end string, endNil bool) []byte {
	if endNil {
		return nil
	}
	return []byte(end)
}

func resultString(res RangeResult, err error) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "err=%v count=%d", err, res.Count)
	if err == nil {
		fmt.Fprintf(&b, " rev=%d", res.Rev)
	}
	for _, kv := range res.KVs {
		fmt.Fprintf(&b, " [%q]", kvString(kv))
	}
	return b.String()
}

var (
	modelSeeds = flag.Int("model.seeds", 6, "number of random seeds TestRandomizedAgainstModel runs")
	modelSteps = flag.Int("model.steps", 400, "operations per seed")
)

func TestRandomizedAgainstModel(t *testing.T) {
	seeds, steps := *modelSeeds, *modelSteps
	if testing.Short() {
		seeds, steps = 2, 200
	}
	// The writer's cache of newest versions: the default, none, and one so small that
	// it switches generations all the time; the count memo as configured (it never
	// remembers ranges of the model's few keys), remembering every count, and
	// remembering every count but allowed so few log entries that it often counts anew.
	type config struct {
		cache      int
		memo       string
		minCount   int
		budgetBase int
	}
	configs := []config{
		{0, "default", memoMinCount, memoBudgetBase},
		{0, "eager", 0, memoBudgetBase},
		{-1, "eager", 0, memoBudgetBase},
		{3, "tight", 0, 1},
	}
	for seed := 1; seed <= seeds; seed++ {
		for _, c := range configs {
			t.Run(fmt.Sprintf("seed%d/cache%d/memo-%s", seed, c.cache, c.memo), func(t *testing.T) {
				runModel(t, int64(seed), steps, Options{LatestCacheWrites: c.cache}, func(m *countMemo) {
					m.minCount, m.budgetBase = c.minCount, c.budgetBase
				})
			})
		}
	}
}

// randRangeOpts returns random read options for a read of a state at revision cur
// whose compacted revision is compact, straying outside [compact, cur] at times.
func randRangeOpts(rng *rand.Rand, cur, compact int64) RangeOptions {
	opts := RangeOptions{
		Rev:       compact - 2 + int64(rng.Intn(int(cur-compact)+4)),
		KeysOnly:  rng.Intn(4) == 0,
		CountOnly: rng.Intn(6) == 0,
	}
	if rng.Intn(2) == 0 {
		opts.Limit = int64(1 + rng.Intn(3))
	}
	if rng.Intn(5) == 0 {
		opts.Rev = 0
	}
	return opts
}

func runModel(t *testing.T, seed int64, steps int, opts Options, tune func(*countMemo)) {
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	eng := openEngine(t, dir)
	s, err := OpenWithOptions(eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	tune(s.memo)
	var memoDeltas int64 // counts the memo answered, over every store opened
	defer func() {
		_ = s.Close()
		_ = eng.Close()
	}()
	m := newModel()
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d after %d ops (last: %v): %s", seed, len(log), log[max(0, len(log)-5):], fmt.Sprintf(format, args...))
	}

	// oneTxn runs random operations in w and the model, comparing their answers.
	oneTxn := func(w *TxnWrite) {
		mt := &mtxn{m: m}
		for n := 1 + rng.Intn(4); n > 0; n-- {
			switch op := rng.Intn(10); {
			case op < 6:
				k, v, lease := randKey(rng), fmt.Sprint(rng.Intn(1000)), int64(rng.Intn(3))
				log = append(log, fmt.Sprintf("put %q", k))
				prevValue := rng.Intn(2) == 0
				prev, err := w.Put([]byte(k), []byte(v), lease, prevValue)
				if err != nil {
					fail("put: %v", err)
				}
				want := mt.put(k, v, lease)
				if want != nil && !prevValue {
					want.Value = nil // not asked for
				}
				if kvString(prev) != kvString(want) {
					fail("put %q prev = %s, want %s", k, kvString(prev), kvString(want))
				}
			case op < 8:
				k, e, endNil := randRange(rng)
				log = append(log, fmt.Sprintf("del %q %q", k, e))
				got, err := w.DeleteRange([]byte(k), endBytes(e, endNil))
				if err != nil {
					fail("delete: %v", err)
				}
				want := mt.del(k, e, endNil)
				if fmt.Sprint(resultString(RangeResult{KVs: got}, nil)) != resultString(RangeResult{KVs: want}, nil) {
					fail("delete %q %q = %v, want %v", k, e, got, want)
				}
			default:
				k, e, endNil := randRange(rng)
				opts := randRangeOpts(rng, mt.rev(), m.compact)
				got, err := w.Range([]byte(k), endBytes(e, endNil), opts)
				wres, werr := m.rangeAt(k, e, endNil, mt.rev(), opts)
				if a, b := resultString(got, err), resultString(wres, werr); a != b {
					fail("txn range %q %q %+v:\n got %s\nwant %s", k, e, opts, a, b)
				}
			}
			if w.Rev() != mt.rev() {
				fail("txn rev %d, want %d", w.Rev(), mt.rev())
			}
		}
		if err := w.End(); err != nil {
			fail("end: %v", err)
		}
		mt.end()
	}

	for step := 0; step < steps; step++ {
		switch op := rng.Intn(100); {
		case op < 40: // one txn in its own batch
			b := eng.NewBatch()
			w := s.Write(b)
			oneTxn(w)
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			s.Committed(w)
		case op < 45: // txns whose batch is discarded, then Reload (as apply on a fatal error)
			saved := m.clone()
			b := eng.NewBatch()
			for n := 1 + rng.Intn(3); n > 0; n-- {
				oneTxn(s.Write(b))
			}
			b.Close()
			m = saved
			log = append(log, "discard")
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
		case op < 50: // several txns sharing one batch, as apply does
			b := eng.NewBatch()
			var ws []*TxnWrite
			for n := 1 + rng.Intn(3); n > 0; n-- {
				w := s.Write(b)
				oneTxn(w)
				ws = append(ws, w)
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			for _, w := range ws {
				s.Committed(w)
			}
		case op < 80: // a read at a random revision, and maybe the pages after it
			k, e, endNil := randRange(rng)
			if rng.Intn(2) == 0 { // a range read again and again, as clients do
				hot := [][2]string{{"\x00", "\x00"}, {"a", "c"}, {"b", "\x00"}}[rng.Intn(3)]
				k, e, endNil = hot[0], hot[1], false
			}
			opts := randRangeOpts(rng, m.rev, m.compact)
			r := s.Read()
			got, err := r.Range([]byte(k), endBytes(e, endNil), opts)
			wres, werr := m.rangeAt(k, e, endNil, m.rev, opts)
			if a, b := resultString(got, err), resultString(wres, werr); a != b {
				fail("range %q %q %+v:\n got %s\nwant %s", k, e, opts, a, b)
			}
			// Page on as a client does, at the revision of the first page, from after
			// its last key or (as apply, which asks for one more) the one before.
			if opts.Rev == 0 {
				opts.Rev = got.Rev
			}
			for page := 0; err == nil && !endNil && opts.Limit > 0 && !opts.CountOnly &&
				int64(len(got.KVs)) == opts.Limit && rng.Intn(3) > 0; page++ {
				last := got.KVs[len(got.KVs)-1]
				if len(got.KVs) > 1 && rng.Intn(2) == 0 {
					last = got.KVs[len(got.KVs)-2]
				}
				k = string(last.Key) + "\x00"
				got, err = r.Range([]byte(k), endBytes(e, endNil), opts)
				wres, werr = m.rangeAt(k, e, endNil, m.rev, opts)
				if a, b := resultString(got, err), resultString(wres, werr); a != b {
					fail("page %d: range %q %q %+v:\n got %s\nwant %s", page+1, k, e, opts, a, b)
				}
			}
			r.Close()
		case op < 87: // changes
			from := m.compact - 1 + int64(rng.Intn(int(m.rev-m.compact)+2))
			to := from + int64(rng.Intn(5))
			var got []string
			err := s.Changes(from, to, func(ev *mvccpb.Event) error {
				got = append(got, eventString(ev))
				return nil
			})
			var want []string
			var werr error
			if to <= 0 {
				to = m.rev // Changes' convention: the view's revision
			}
			switch {
			case to > m.rev:
				werr = ErrFutureRev
			case from < m.compact:
				werr = ErrCompacted
			default:
				want = m.events(from, to)
			}
			if !errors.Is(err, werr) || fmt.Sprint(got) != fmt.Sprint(want) {
				fail("changes [%d,%d]: %v %v\nwant %v %v", from, to, err, got, werr, want)
			}
		case op < 95: // compaction, waited for or not
			if m.rev <= m.compact {
				continue
			}
			rev := m.compact + 1 + int64(rng.Intn(int(m.rev-m.compact)))
			log = append(log, fmt.Sprintf("compact %d", rev))
			b := eng.NewBatch()
			if err := s.ScheduleCompaction(b, rev); err != nil {
				fail("compact %d: %v", rev, err)
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			s.CompactionScheduled(rev)
			m.compact = rev
			if rng.Intn(2) == 0 {
				if err := s.WaitCompacted(context.Background(), rev); err != nil {
					t.Fatal(err)
				}
				checkPhysical(t, eng, m)
			}
		default: // reopen engine and store
			log = append(log, "reopen")
			memoDeltas += s.memo.deltas.Load()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			eng = openEngine(t, dir)
			if s, err = OpenWithOptions(eng, opts); err != nil {
				t.Fatal(err)
			}
			tune(s.memo)
			if s.Rev() != m.rev || s.CompactRev() != m.compact {
				fail("reopened at rev %d compact %d, want %d %d", s.Rev(), s.CompactRev(), m.rev, m.compact)
			}
		}
		if s.Rev() != m.rev {
			fail("rev %d, want %d", s.Rev(), m.rev)
		}
	}
	if m.rev > m.compact {
		compact(t, s, m.rev)
		m.compact = m.rev
		checkPhysical(t, eng, m)
	}
	if memoDeltas += s.memo.deltas.Load(); s.memo.minCount == 0 && memoDeltas == 0 {
		t.Errorf("the count memo answered no count")
	}
	t.Logf("counts from the memo: %d", memoDeltas)
}

// checkPhysical compares the engine's version keys with what a finished compaction at
// m.compact leaves, and checks that no revision-log entry below it is left.
func checkPhysical(t *testing.T, eng storage.Engine, m *model) {
	t.Helper()
	var got []string
	it, err := eng.NewIter(storage.IterOptions{LowerBound: []byte{storage.PrefixKey}, UpperBound: []byte{storage.PrefixKey + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Key()))
	}
	it.Close()
	if want := m.expectedVersionKeys(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after compaction at %d: %d version keys, want %d", m.compact, len(got), len(want))
	}
	it, err = eng.NewIter(storage.IterOptions{LowerBound: []byte{storage.PrefixRevision}, UpperBound: storage.RevisionKey(m.compact, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if it.First() {
		main, sub, _ := storage.ParseRevisionKey(it.Key())
		t.Fatalf("revision log entry %d.%d left after compaction at %d", main, sub, m.compact)
	}
}
