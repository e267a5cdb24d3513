package robustness

import (
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/tests/robustness/model"
)

// Op is one recorded client request: times are nanoseconds since the run
// started. A failed read or a write that failed ambiguously has Output.Unknown
// set; a failed read and a lease grant with unknown ID are not checked.
type Op struct {
	Client       int
	Call, Return int64
	Input        model.Input
	Output       model.Output
	Serializable bool   // a serializable read: not linearizable, checked by revision
	Error        string // the client's error, if any (a failed read has Output.Unknown set)
}

// Event is one watch event as received.
type Event struct {
	Rev    int64
	Key    int
	Delete bool
	KV     model.KV
	PrevKV *model.KV // nil when the server sent none
}

// WatchResponse is one non-empty watch response.
type WatchResponse struct {
	Time   int64
	Events []Event
}

// WatchRecord is everything one watch stream delivered.
type WatchRecord struct {
	ID        int
	StartRev  int64
	Responses []WatchResponse
	Compacted int64  // compact revision if the watch ended because of compaction
	Err       string // other terminal error
}

// LastRev is the revision of the last event received, or StartRev-1.
func (w *WatchRecord) LastRev() int64 {
	for i := len(w.Responses) - 1; i >= 0; i-- {
		if n := len(w.Responses[i].Events); n > 0 {
			return w.Responses[i].Events[n-1].Rev
		}
	}
	return w.StartRev - 1
}

// History collects the operations and watches of one run; safe for concurrent use.
type History struct {
	start   time.Time
	mu      sync.Mutex
	ops     []Op
	watches []*WatchRecord
}

// NewHistory starts the run's clock.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the run's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// AddWatch records w; the caller must not change it after the run ends.
func (h *History) AddWatch(w *WatchRecord) {
	h.mu.Lock()
	h.watches = append(h.watches, w)
	h.mu.Unlock()
}

// Snapshot returns the recorded operations and watches.
func (h *History) Snapshot() ([]Op, []*WatchRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...), append([]*WatchRecord(nil), h.watches...)
}

func toKV(kv *mvccpb.KeyValue) model.KV {
	return model.KV{Value: string(kv.Value), ModRev: kv.ModRevision, CreateRev: kv.CreateRevision, Version: kv.Version, Lease: kv.Lease}
}

func toKVs(kvs []*mvccpb.KeyValue) []model.KeyKV {
	var out []model.KeyKV
	for _, kv := range kvs {
		out = append(out, model.KeyKV{Key: model.KeyIndex(string(kv.Key)), KV: toKV(kv)})
	}
	return out
}

func toEvent(ev *mvccpb.Event) Event {
	e := Event{Rev: ev.Kv.ModRevision, Key: model.KeyIndex(string(ev.Kv.Key)), Delete: ev.Type == mvccpb.DELETE}
	if !e.Delete {
		e.KV = toKV(ev.Kv)
	}
	if ev.PrevKv != nil {
		p := toKV(ev.PrevKv)
		e.PrevKV = &p
	}
	return e
}
