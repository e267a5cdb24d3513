package robustness

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/metastore/metastore/tests/robustness/model"
)

// Violation kinds; a Report lists every violation found, each with one of these
// prefixes so a test can tell a linearizability failure from a watch failure.
const (
	KindLinearizability = "linearizability"
	KindWatch           = "watch"
	KindHistory         = "history" // KV history and watch history disagree
	KindSerializable    = "serializable-read"
	KindDurability      = "durability"
	KindConsistency     = "consistency" // members disagree
)

// Report is the outcome of validating one run.
type Report struct {
	Violations    []string
	Linearization porcupine.LinearizationInfo
	Checked       []porcupine.Operation // what porcupine checked
	Result        porcupine.CheckResult
	Stats         string
	perKind       map[string]int
}

// addf records a violation; only the first 20 of each kind are kept, so one
// broken mechanism does not hide the others.
func (r *Report) addf(kind, format string, args ...any) {
	if r.perKind == nil {
		r.perKind = map[string]int{}
	}
	r.perKind[kind]++
	if r.perKind[kind] <= 20 {
		r.Violations = append(r.Violations, kind+": "+fmt.Sprintf(format, args...))
	}
}

// HasKind reports whether a violation of the given kind was found.
func (r *Report) HasKind(kind string) bool {
	for _, v := range r.Violations {
		if len(v) > len(kind) && v[:len(kind)] == kind {
			return true
		}
	}
	return false
}

// replay checks the reference watch (ordered, unique, gap-free, atomic per
// revision, correct kv and prev_kv) and returns the state after every
// revision: states[rev-1] is the state at revision rev.
func replay(r *Report, ref *WatchRecord) []model.State {
	var states []model.State
	if ref.Compacted != 0 {
		r.addf(KindWatch, "reference watch from revision 1 was compacted at %d", ref.Compacted)
	}
	cur := model.Initial()
	for ri, resp := range ref.Responses {
		for i, ev := range resp.Events {
			if ev.Key < 0 {
				r.addf(KindWatch, "event for a key outside the key space at revision %d", ev.Rev)
				continue
			}
			switch {
			case ev.Rev == cur.Rev && i > 0 && resp.Events[i-1].Rev == ev.Rev:
				// another event of the same revision, in the same response
			case ev.Rev == cur.Rev:
				r.addf(KindWatch, "revision %d split across responses (response %d)", ev.Rev, ri)
			case ev.Rev == cur.Rev+1:
				states = append(states, cur)
				cur.Rev = ev.Rev
			case ev.Rev <= cur.Rev:
				r.addf(KindWatch, "event at revision %d after revision %d: out of order or duplicated", ev.Rev, cur.Rev)
				continue
			default:
				r.addf(KindWatch, "gap: revisions %d..%d missing from the reference watch", cur.Rev+1, ev.Rev-1)
				for cur.Rev+1 < ev.Rev {
					states = append(states, cur)
					cur.Rev++
				}
				states = append(states, cur)
				cur.Rev = ev.Rev
			}
			prev := cur.KVs[ev.Key]
			if prev.ModRev == cur.Rev {
				r.addf(KindWatch, "two events for key%02d at revision %d", ev.Key, ev.Rev)
			}
			switch {
			case ev.PrevKV == nil && prev.ModRev != 0:
				r.addf(KindWatch, "event key%02d@%d: prev_kv missing, want %+v", ev.Key, ev.Rev, prev)
			case ev.PrevKV != nil && *ev.PrevKV != prev:
				r.addf(KindWatch, "event key%02d@%d: prev_kv %+v, want %+v", ev.Key, ev.Rev, *ev.PrevKV, prev)
			}
			if ev.Delete {
				if prev.ModRev == 0 {
					r.addf(KindWatch, "delete event of absent key%02d at revision %d", ev.Key, ev.Rev)
				}
				cur.KVs[ev.Key] = model.KV{}
				continue
			}
			want := model.KV{Value: ev.KV.Value, ModRev: ev.Rev, CreateRev: prev.CreateRev, Version: prev.Version + 1, Lease: ev.KV.Lease}
			if prev.ModRev == 0 {
				want.CreateRev = ev.Rev
			}
			if ev.KV != want {
				r.addf(KindWatch, "event key%02d@%d: kv %+v, want %+v", ev.Key, ev.Rev, ev.KV, want)
			}
			cur.KVs[ev.Key] = ev.KV
		}
	}
	return append(states, cur)
}

// checkWatch checks a traffic watch against the reference: it must deliver
// exactly the reference's events from its start revision to the last revision
// it received, each revision in one response.
//
// A missing prev_kv is accepted when the previous revision was compacted
// (compactedRev is the highest compaction requested): etcd reads prev_kv at
// revision-1 when it sends the event and silently omits it if that fails.
func checkWatch(r *Report, w, ref *WatchRecord, compactedRev int64) {
	var refEvents []Event
	for _, resp := range ref.Responses {
		for _, ev := range resp.Events {
			if ev.Rev >= w.StartRev {
				refEvents = append(refEvents, ev)
			}
		}
	}
	i := 0
	var lastRev int64
	for _, resp := range w.Responses {
		if len(resp.Events) > 0 && resp.Events[0].Rev == lastRev {
			r.addf(KindWatch, "watch %d: revision %d split across responses", w.ID, lastRev)
		}
		for _, ev := range resp.Events {
			if i >= len(refEvents) {
				r.addf(KindWatch, "watch %d: event key%02d@%d not in the reference history", w.ID, ev.Key, ev.Rev)
				return
			}
			want := refEvents[i]
			if ev.PrevKV == nil && want.PrevKV != nil && ev.Rev-1 <= compactedRev {
				want.PrevKV = nil
			}
			if !sameEvent(ev, want) {
				r.addf(KindWatch, "watch %d (from %d): event %d is key%02d@%d delete=%v, reference has key%02d@%d delete=%v (gap, duplicate or wrong order)",
					w.ID, w.StartRev, i, ev.Key, ev.Rev, ev.Delete, want.Key, want.Rev, want.Delete)
				return
			}
			lastRev = ev.Rev
			i++
		}
	}
	if i < len(refEvents) && refEvents[i].Rev == lastRev {
		r.addf(KindWatch, "watch %d: revision %d delivered partially", w.ID, lastRev)
	}
}

func sameEvent(a, b Event) bool {
	if a.Rev != b.Rev || a.Key != b.Key || a.Delete != b.Delete || a.KV != b.KV {
		return false
	}
	if (a.PrevKV == nil) != (b.PrevKV == nil) {
		return false
	}
	return a.PrevKV == nil || *a.PrevKV == *b.PrevKV
}

// Validate checks one run's history. ref is the reference watch, which must
// have caught up with the final linearizable read; without it (a server
// without watch) only linearizability is checked and every ambiguous write
// stays ambiguous.
func Validate(ops []Op, watches []*WatchRecord, ref *WatchRecord, compactedRev int64, timeout time.Duration) *Report {
	r := &Report{}
	haveRef := ref != nil
	var states []model.State
	if haveRef {
		states = replay(r, ref)
	}
	lastRev := int64(len(states))
	stateAt := func(rev int64) (model.State, bool) {
		if !haveRef || rev < 1 || rev > lastRev {
			return model.State{}, false
		}
		return states[rev-1], true
	}
	for _, w := range watches {
		if haveRef && w != ref {
			checkWatch(r, w, ref, compactedRev)
		}
	}

	// Where each put event's value was written, and when it was first seen.
	type seenAt struct {
		rev, time int64
		key       int
		lease     int64
	}
	values := map[string]seenAt{}
	deletes := map[[2]int64]bool{} // (key, rev) of delete events
	for _, w := range watches {
		for _, resp := range w.Responses {
			for _, ev := range resp.Events {
				if ev.Delete {
					deletes[[2]int64{int64(ev.Key), ev.Rev}] = true
					continue
				}
				s, ok := values[ev.KV.Value]
				if ok && (s.rev != ev.Rev || s.key != ev.Key) {
					r.addf(KindHistory, "value %s written twice: key%02d@%d and key%02d@%d", ev.KV.Value, s.key, s.rev, ev.Key, ev.Rev)
				}
				if !ok || resp.Time < s.time {
					values[ev.KV.Value] = seenAt{rev: ev.Rev, time: resp.Time, key: ev.Key, lease: ev.KV.Lease}
				}
			}
		}
	}

	// Earliest return time of an operation that saw a revision >= rev: a
	// write applied at rev happened before that.
	type retRev struct{ ret, rev int64 }
	var acks []retRev
	for _, op := range ops {
		if !op.Output.Unknown && op.Output.Err == "" && op.Output.Rev > 0 {
			acks = append(acks, retRev{op.Return, op.Output.Rev})
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].ret < acks[j].ret })
	var maxRev int64
	for i := range acks {
		maxRev = max(maxRev, acks[i].rev)
		acks[i].rev = maxRev
	}
	visibleBy := func(rev int64) int64 {
		i := sort.Search(len(acks), func(i int) bool { return acks[i].rev >= rev })
		if i == len(acks) {
			return math.MaxInt64
		}
		return acks[i].ret
	}

	issued := map[string]bool{}
	var checked []porcupine.Operation
	resolved, dropped, ambiguous := 0, 0, 0
	for _, op := range ops {
		in, out := op.Input, op.Output
		if out.Unknown && (!in.Type.IsWrite() || in.Type == model.LeaseGrant) {
			continue // a failed read, or a grant whose lease ID is unknown
		}
		if in.Type == model.Put || in.Type == model.Txn {
			issued[in.Value] = true
		}
		if haveRef && !in.Type.IsWrite() && out.Rev > lastRev {
			r.addf(KindDurability, "client %d read at revision %d, beyond the last revision %d of the watch history", op.Client, out.Rev, lastRev)
		}
		if !in.Type.IsWrite() {
			if s, ok := stateAt(out.Rev); ok {
				if _, want := model.Apply(s, in); !model.Matches(in, want, out) {
					kind := KindHistory
					if op.Serializable {
						kind = KindSerializable
					}
					r.addf(kind, "client %d: %s, but the watch history at that revision gives %s",
						op.Client, model.Describe(in, out), model.Describe(in, want))
				}
			}
			if op.Serializable {
				continue
			}
		}
		ret := op.Return
		switch {
		case out.Err != "":
		case !haveRef && out.Unknown:
			ambiguous++
			ret = math.MaxInt64
		case !haveRef:
		case (in.Type == model.Put || in.Type == model.Txn) && !out.Unknown:
			s, ok := values[in.Value]
			applied := in.Type == model.Put || out.Succeeded
			switch {
			case applied && !ok:
				r.addf(KindDurability, "acknowledged write lost: %s is not in the watch history", model.Describe(in, out))
			case applied && (s.rev != out.Rev || s.key != in.Key || s.lease != in.Lease):
				r.addf(KindHistory, "%s, but the watch history has it on key%02d at revision %d lease %x", model.Describe(in, out), s.key, s.rev, s.lease)
			case !applied && ok:
				r.addf(KindHistory, "%s failed, but the watch history has it at revision %d", model.Describe(in, out), s.rev)
			}
		case in.Type == model.Put || in.Type == model.Txn:
			s, ok := values[in.Value]
			if !ok {
				dropped++
				continue // never applied: as if never sent
			}
			resolved++
			out = model.Output{Rev: s.rev, Succeeded: in.Type == model.Txn}
			ret = max(op.Call, min(s.time, visibleBy(s.rev)))
		case in.Type == model.Delete && !out.Unknown && out.Deleted == 1:
			if !deletes[[2]int64{int64(in.Key), out.Rev}] {
				r.addf(KindDurability, "acknowledged delete lost: %s is not in the watch history", model.Describe(in, out))
			}
		case out.Unknown:
			ambiguous++
			ret = math.MaxInt64
		}
		checked = append(checked, porcupine.Operation{ClientId: op.Client, Call: op.Call, Return: ret, Input: in, Output: out})
	}
	for v, s := range values {
		if !issued[v] {
			r.addf(KindHistory, "phantom write: value %s at key%02d@%d was never written by a client", v, s.key, s.rev)
		}
	}
	r.Checked = checked
	start := time.Now()
	r.Result, r.Linearization = porcupine.CheckOperationsVerbose(model.Porcupine, checked, timeout)
	switch r.Result {
	case porcupine.Illegal:
		r.addf(KindLinearizability, "the KV history is not linearizable (%d operations)", len(checked))
	case porcupine.Unknown:
		r.addf(KindLinearizability, "porcupine timed out after %v on %d operations: inconclusive", timeout, len(checked))
	}
	r.Stats = fmt.Sprintf("%d ops recorded, %d checked by porcupine in %v (%d ambiguous writes resolved by watch, %d dropped as not applied, %d left ambiguous), %d revisions, %d watches",
		len(ops), len(checked), time.Since(start).Round(time.Millisecond), resolved, dropped, ambiguous, lastRev, len(watches))
	return r
}
