package mvcc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/testengine"
)

func openEngine(t testing.TB, dir string) storage.Engine {
	t.Helper()
	return testengine.Open(t, dir, 8<<20)
}

// newStore opens a store on a fresh Pebble engine; both close at the end of the test.
func newStore(t testing.TB) (*Store, storage.Engine) {
	t.Helper()
	eng := openEngine(t, t.TempDir())
	s, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = eng.Close()
	})
	return s, eng
}

// txn runs fn in one TxnWrite, commits it and publishes it.
func txn(t testing.TB, s *Store, fn func(w *TxnWrite)) {
	t.Helper()
	b := s.eng.NewBatch()
	defer b.Close()
	w := s.Write(b)
	fn(w)
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	s.Committed(w)
}

func put(t testing.TB, s *Store, k, v string, lease int64) {
	t.Helper()
	txn(t, s, func(w *TxnWrite) {
		if _, err := w.Put([]byte(k), []byte(v), lease, false); err != nil {
			t.Fatal(err)
		}
	})
}

func del(t testing.TB, s *Store, k, end string) []*mvccpb.KeyValue {
	t.Helper()
	var out []*mvccpb.KeyValue
	txn(t, s, func(w *TxnWrite) {
		var e []byte
		if end != "" {
			e = []byte(end)
		}
		var err error
		if out, err = w.DeleteRange([]byte(k), e); err != nil {
			t.Fatal(err)
		}
	})
	return out
}

func get(t testing.TB, s *Store, k string, rev int64) (*mvccpb.KeyValue, error) {
	t.Helper()
	r := s.Read()
	defer r.Close()
	res, err := r.Range([]byte(k), nil, RangeOptions{Rev: rev})
	if err != nil {
		return nil, err
	}
	if len(res.KVs) == 0 {
		return nil, nil
	}
	return res.KVs[0], nil
}

func kvString(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s=%s c%d m%d v%d l%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func expectKV(t *testing.T, s *Store, k string, rev int64, want string) {
	t.Helper()
	kv, err := get(t, s, k, rev)
	if err != nil {
		t.Fatalf("get %q at %d: %v", k, rev, err)
	}
	if got := kvString(kv); got != want {
		t.Fatalf("get %q at %d = %s, want %s", k, rev, got, want)
	}
}

func TestFreshStoreStartsAtRevisionOne(t *testing.T) {
	s, _ := newStore(t)
	if s.Rev() != 1 || s.CompactRev() != 0 {
		t.Fatalf("fresh store: rev %d compact %d, want 1 and 0", s.Rev(), s.CompactRev())
	}
	put(t, s, "a", "1", 0)
	if s.Rev() != 2 {
		t.Fatalf("rev after first put = %d, want 2", s.Rev())
	}
	expectKV(t, s, "a", 0, "a=1 c2 m2 v1 l0")
}

func TestVersionsCreateRevisionAndLease(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "a", "1", 0) // 2
	put(t, s, "a", "2", 7) // 3
	put(t, s, "b", "x", 0) // 4
	put(t, s, "a", "3", 0) // 5
	expectKV(t, s, "a", 0, "a=3 c2 m5 v3 l0")
	expectKV(t, s, "a", 4, "a=2 c2 m3 v2 l7")
	expectKV(t, s, "a", 2, "a=1 c2 m2 v1 l0")
	expectKV(t, s, "a", 1, "<nil>")
	if got := del(t, s, "a", ""); len(got) != 1 || kvString(got[0]) != "a=3 c2 m5 v3 l0" { // 6
		t.Fatalf("delete returned %v", got)
	}
	expectKV(t, s, "a", 0, "<nil>")
	expectKV(t, s, "a", 5, "a=3 c2 m5 v3 l0")
	put(t, s, "a", "new", 0) // 7: a new generation
	expectKV(t, s, "a", 0, "a=new c7 m7 v1 l0")
	if s.Rev() != 7 {
		t.Fatalf("rev = %d, want 7", s.Rev())
	}
}

func TestTxnSharesMainRevision(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "c", "0", 0) // 2
	var prev *mvccpb.KeyValue
	txn(t, s, func(w *TxnWrite) { // 3
		if w.Rev() != 2 {
			t.Fatalf("txn rev before writing = %d, want 2", w.Rev())
		}
		mustPut(t, w, "a", "1")
		if w.Rev() != 3 {
			t.Fatalf("txn rev after writing = %d, want 3", w.Rev())
		}
		mustPut(t, w, "b", "1")
		// The txn reads its own writes.
		res, err := w.Range([]byte("a"), []byte("z"), RangeOptions{})
		if err != nil || res.Count != 3 || res.Rev != 3 {
			t.Fatalf("range in txn: %v %d %d", err, res.Count, res.Rev)
		}
		var perr error
		prev, perr = w.Put([]byte("a"), []byte("2"), 0, true)
		if perr != nil {
			t.Fatal(perr)
		}
		if _, err := w.DeleteRange([]byte("c"), nil); err != nil {
			t.Fatal(err)
		}
	})
	if kvString(prev) != "a=1 c3 m3 v1 l0" {
		t.Fatalf("prev of second put in txn = %s", kvString(prev))
	}
	if s.Rev() != 3 {
		t.Fatalf("rev = %d, want 3", s.Rev())
	}
	expectKV(t, s, "a", 0, "a=2 c3 m3 v2 l0")
	expectKV(t, s, "b", 0, "b=1 c3 m3 v1 l0")
	expectKV(t, s, "c", 0, "<nil>")
	expectKV(t, s, "c", 2, "c=0 c2 m2 v1 l0")
	var subs []string
	if err := s.Changes(3, 3, func(ev *mvccpb.Event) error {
		subs = append(subs, fmt.Sprintf("%v %s", ev.Type, kvString(ev.Kv)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := "[PUT a=1 c3 m3 v1 l0 PUT b=1 c3 m3 v1 l0 PUT a=2 c3 m3 v2 l0 DELETE c= c0 m3 v0 l0]"
	if fmt.Sprint(subs) != want {
		t.Fatalf("changes at 3 = %v\nwant %s", subs, want)
	}
}

func mustPut(t testing.TB, w *TxnWrite, k, v string) {
	t.Helper()
	if _, err := w.Put([]byte(k), []byte(v), 0, false); err != nil {
		t.Fatal(err)
	}
}

func TestNoChangeKeepsRevision(t *testing.T) {
	s, eng := newStore(t)
	put(t, s, "a", "1", 0)
	if got := del(t, s, "zzz", ""); len(got) != 0 {
		t.Fatalf("deleted %v", got)
	}
	txn(t, s, func(w *TxnWrite) {
		if _, err := w.Range([]byte("a"), nil, RangeOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if s.Rev() != 2 {
		t.Fatalf("rev = %d, want 2", s.Rev())
	}
	// Reopen: the revision survives.
	s2, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Rev() != 2 {
		t.Fatalf("reopened rev = %d, want 2", s2.Rev())
	}
}

func TestRangeOptions(t *testing.T) {
	s, _ := newStore(t)
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, s, k, "v"+k, 0)
	}
	del(t, s, "b", "") // 6
	r := s.Read()
	defer r.Close()
	res, err := r.Range([]byte("a"), []byte("\x00"), RangeOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 3 || len(res.KVs) != 2 || string(res.KVs[1].Key) != "c" || res.Rev != 6 {
		t.Fatalf("limit 2: count %d kvs %v rev %d", res.Count, res.KVs, res.Rev)
	}
	res, _ = r.Range([]byte("a"), []byte("d"), RangeOptions{CountOnly: true, Rev: 5})
	if res.Count != 3 || res.KVs != nil {
		t.Fatalf("count only at 5: %d %v", res.Count, res.KVs)
	}
	res, _ = r.Range([]byte("a"), []byte("z"), RangeOptions{KeysOnly: true})
	if len(res.KVs) != 3 || res.KVs[0].Value != nil || res.KVs[0].Version != 1 {
		t.Fatalf("keys only: %v", res.KVs)
	}
	res, _ = r.Range([]byte("c"), []byte("a"), RangeOptions{})
	if res.Count != 0 {
		t.Fatalf("end < key: %v", res.KVs)
	}
	if _, err := r.Range([]byte("a"), nil, RangeOptions{Rev: 7}); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future rev: %v", err)
	}
}

func TestCompactedRevisions(t *testing.T) {
	s, _ := newStore(t)
	for i := 0; i < 5; i++ {
		put(t, s, "a", fmt.Sprint(i), 0) // 2..6
	}
	compact(t, s, 4)
	if _, err := get(t, s, "a", 3); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below compact rev: %v", err)
	}
	expectKV(t, s, "a", 4, "a=2 c2 m4 v3 l0") // reading AT the compacted revision is allowed
	expectKV(t, s, "a", 0, "a=4 c2 m6 v5 l0")
	b := s.eng.NewBatch()
	defer b.Close()
	if err := s.ScheduleCompaction(b, 4); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compact again at 4: %v", err)
	}
	if err := s.ScheduleCompaction(b, 7); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("compact at future 7: %v", err)
	}
	if err := s.Changes(3, 0, func(*mvccpb.Event) error { return nil }); !errors.Is(err, ErrCompacted) {
		t.Fatalf("changes below compact rev: %v", err)
	}
}

// compact schedules, commits and waits for a physical compaction at rev.
func compact(t testing.TB, s *Store, rev int64) {
	t.Helper()
	b := s.eng.NewBatch()
	defer b.Close()
	if err := s.ScheduleCompaction(b, rev); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	s.CompactionScheduled(rev)
	if err := s.WaitCompacted(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}
