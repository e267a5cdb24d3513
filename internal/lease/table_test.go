package lease

import (
	"errors"
	"slices"
	"testing"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/pebble"
)

type events struct{ granted, revoked []int64 }

func (e *events) Granted(id, _ int64) { e.granted = append(e.granted, id) }
func (e *events) Revoked(id int64)    { e.revoked = append(e.revoked, id) }

func commit(t *testing.T, eng storage.Engine, fn func(b storage.Batch)) {
	t.Helper()
	b := eng.NewBatch()
	defer b.Close()
	fn(b)
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
}

func TestTableOnEngine(t *testing.T) {
	dir := t.TempDir()
	eng, err := pebble.Open(dir, pebble.Options{CacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { eng.Close() }()
	tb, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	tb.SetListener(ev)
	commit(t, eng, func(b storage.Batch) {
		for _, id := range []int64{3, 1, 2} {
			if err := tb.Grant(b, id, 10*id); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.Grant(b, 1, 5); !errors.Is(err, ErrLeaseExists) {
			t.Fatalf("duplicate grant: %v", err)
		}
		if err := tb.Grant(b, 4, MaxTTL+1); !errors.Is(err, ErrLeaseTTLTooLarge) {
			t.Fatalf("large grant: %v", err)
		}
		for _, k := range []string{"b", "a", "c"} {
			if err := tb.Attach(b, 1, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.Attach(b, 2, []byte("z")); err != nil {
			t.Fatal(err)
		}
		if err := tb.Detach(b, 1, []byte("c")); err != nil {
			t.Fatal(err)
		}
		if err := tb.Checkpoint(b, 3, 7); err != nil {
			t.Fatal(err)
		}
	})
	var revoked [][]byte
	commit(t, eng, func(b storage.Batch) {
		if revoked, err = tb.Revoke(b, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.Revoke(b, 9); !errors.Is(err, ErrLeaseNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
	})
	if len(revoked) != 2 || string(revoked[0]) != "a" || string(revoked[1]) != "b" {
		t.Fatalf("revoked keys %q", revoked)
	}
	if !slices.Equal(ev.granted, []int64{3, 1, 2}) || !slices.Equal(ev.revoked, []int64{1}) {
		t.Fatalf("events %+v", ev)
	}
	// What a restart loads is what the table held.
	want := tb.List()
	eng.Close()
	if eng, err = pebble.Open(dir, pebble.Options{CacheSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	tb2, err := Open(eng)
	if err != nil {
		t.Fatal(err)
	}
	if got := tb2.List(); !slices.Equal(got, want) || len(got) != 2 || got[1] != (Info{ID: 3, TTL: 30, Remaining: 7}) {
		t.Fatalf("reloaded %v, want %v", got, want)
	}
	if ks, _ := tb2.Keys(2); len(ks) != 1 || string(ks[0]) != "z" {
		t.Fatalf("lease 2 keys %q", ks)
	}
}
