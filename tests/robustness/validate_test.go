package robustness

import (
	"testing"
	"time"

	"github.com/metastore/metastore/tests/robustness/model"
)

// A small consistent run: two puts and a delete, read back, watched.
func goodRun() ([]Op, *WatchRecord, *WatchRecord) {
	kvA := model.KV{Value: "c0-1", ModRev: 2, CreateRev: 2, Version: 1}
	kvB := model.KV{Value: "c1-1", ModRev: 3, CreateRev: 2, Version: 2}
	ops := []Op{
		{Client: 0, Call: 0, Return: 10, Input: model.Input{Type: model.Put, Key: 1, Value: "c0-1"}, Output: model.Output{Rev: 2}},
		{Client: 1, Call: 11, Return: 20, Input: model.Input{Type: model.Put, Key: 1, Value: "c1-1"}, Output: model.Output{Rev: 3}},
		{Client: 0, Call: 21, Return: 30, Input: model.Input{Type: model.Get, Key: 1}, Output: model.Output{Rev: 3, KVs: []model.KeyKV{{Key: 1, KV: kvB}}}},
		{Client: 1, Call: 31, Return: 40, Input: model.Input{Type: model.Delete, Key: 1}, Output: model.Output{Rev: 4, Deleted: 1}},
		{Client: 0, Call: 41, Return: 50, Input: model.Input{Type: model.Get, Key: 1}, Serializable: true, Output: model.Output{Rev: 3, KVs: []model.KeyKV{{Key: 1, KV: kvB}}}},
		{Client: 0, Call: 51, Return: 60, Input: model.Input{Type: model.Range}, Output: model.Output{Rev: 4}},
	}
	pa, pb := kvA, kvB
	ref := &WatchRecord{ID: 0, StartRev: 1, Responses: []WatchResponse{
		{Time: 5, Events: []Event{{Rev: 2, Key: 1, KV: kvA}}},
		{Time: 15, Events: []Event{{Rev: 3, Key: 1, KV: kvB, PrevKV: &pa}}},
		{Time: 35, Events: []Event{{Rev: 4, Key: 1, Delete: true, PrevKV: &pb}}},
	}}
	w := &WatchRecord{ID: 1, StartRev: 3, Responses: []WatchResponse{
		{Time: 15, Events: []Event{{Rev: 3, Key: 1, KV: kvB, PrevKV: &pa}}},
		{Time: 35, Events: []Event{{Rev: 4, Key: 1, Delete: true, PrevKV: &pb}}},
	}}
	return ops, ref, w
}

func validate(ops []Op, ref, w *WatchRecord) *Report {
	return Validate(ops, []*WatchRecord{ref, w}, ref, 0, 10*time.Second)
}

func TestValidateAcceptsConsistentRun(t *testing.T) {
	ops, ref, w := goodRun()
	if r := validate(ops, ref, w); len(r.Violations) != 0 {
		t.Fatalf("consistent run reported: %v", r.Violations)
	}
}

func TestValidateCatchesWatchGap(t *testing.T) {
	ops, ref, w := goodRun()
	w.Responses = w.Responses[1:]
	w.StartRev = 3
	if r := validate(ops, ref, w); !r.HasKind(KindWatch) {
		t.Fatalf("a watch that skipped revision 3 must be reported, got %v", r.Violations)
	}
}

func TestValidateCatchesReferenceGap(t *testing.T) {
	ops, ref, w := goodRun()
	ref.Responses = append(ref.Responses[:1], ref.Responses[2:]...)
	if r := validate(ops, ref, w); !r.HasKind(KindWatch) {
		t.Fatalf("a gap in the reference watch must be reported, got %v", r.Violations)
	}
}

func TestValidateCatchesDuplicateEvent(t *testing.T) {
	ops, ref, w := goodRun()
	w.Responses = append(w.Responses, w.Responses[1])
	if r := validate(ops, ref, w); !r.HasKind(KindWatch) {
		t.Fatalf("a duplicated event must be reported, got %v", r.Violations)
	}
}

func TestValidateCatchesWrongPrevKV(t *testing.T) {
	ops, ref, w := goodRun()
	bad := model.KV{Value: "c9-9", ModRev: 2, CreateRev: 2, Version: 1}
	ref.Responses[1].Events[0].PrevKV = &bad
	if r := validate(ops, ref, w); !r.HasKind(KindWatch) {
		t.Fatalf("a wrong prev_kv must be reported, got %v", r.Violations)
	}
}

func TestValidateCatchesLostAcknowledgedWrite(t *testing.T) {
	ops, ref, w := goodRun()
	ops = append(ops, Op{Client: 2, Call: 61, Return: 70, Input: model.Input{Type: model.Put, Key: 2, Value: "c2-1"}, Output: model.Output{Rev: 5}})
	if r := validate(ops, ref, w); !r.HasKind(KindDurability) {
		t.Fatalf("an acknowledged put missing from the watch history must be reported, got %v", r.Violations)
	}
}

func TestValidateCatchesPhantomWrite(t *testing.T) {
	ops, ref, w := goodRun()
	ops = ops[1:] // nobody wrote c0-1
	if r := validate(ops, ref, w); !r.HasKind(KindHistory) {
		t.Fatalf("a watched value no client wrote must be reported, got %v", r.Violations)
	}
}

func TestValidateCatchesInconsistentSerializableRead(t *testing.T) {
	ops, ref, w := goodRun()
	ops[4].Output.Rev = 2 // claims revision 2 but returns the value written at 3
	if r := validate(ops, ref, w); !r.HasKind(KindSerializable) {
		t.Fatalf("a serializable read disagreeing with its revision must be reported, got %v", r.Violations)
	}
}

func TestValidateResolvesAmbiguousPutWithWatch(t *testing.T) {
	ops, ref, w := goodRun()
	ops[0].Output = model.Output{Unknown: true}
	ops[0].Return = 100
	r := validate(ops, ref, w)
	if len(r.Violations) != 0 {
		t.Fatalf("an ambiguous put seen by watch is applied: %v", r.Violations)
	}
	for _, op := range r.Checked {
		if op.Input.(model.Input).Value == "c0-1" && (op.Output.(model.Output).Unknown || op.Return > 10) {
			t.Fatalf("the watched put must be checked as applied at revision 2, bounded by the later acknowledged write: %+v", op)
		}
	}
}
