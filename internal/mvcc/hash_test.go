package mvcc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// op is one write of the workload the hash tests replay: a put, or a delete when del.
type op struct {
	key, val string
	del      bool
	lease    int64
}

func hashWorkload() []op {
	var ops []op
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i%13)
		switch {
		case i%7 == 3:
			ops = append(ops, op{key: k, del: true})
		default:
			ops = append(ops, op{key: k, val: fmt.Sprintf("v%d", i), lease: int64(i % 3)})
		}
	}
	// keys with zero bytes and a key that is a prefix of another
	ops = append(ops, op{key: "a\x00b", val: "z"}, op{key: "a", val: "p"}, op{key: "ab", val: "q"}, op{key: "a", del: true})
	return ops
}

func apply1(t *testing.T, w *TxnWrite, o op) {
	t.Helper()
	var err error
	if o.del {
		_, err = w.DeleteRange([]byte(o.key), nil)
	} else {
		_, err = w.Put([]byte(o.key), []byte(o.val), o.lease, false)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// writeBatched writes ops one TxnWrite each, per engine batches of per TxnWrites.
func writeBatched(t *testing.T, s *Store, ops []op, per int) {
	t.Helper()
	for len(ops) > 0 {
		n := min(per, len(ops))
		b := s.eng.NewBatch()
		var last *TxnWrite
		for _, o := range ops[:n] {
			w := s.Write(b)
			apply1(t, w, o)
			if err := w.End(); err != nil {
				t.Fatal(err)
			}
			last = w
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		s.Committed(last)
		b.Close()
		ops = ops[n:]
	}
}

func hashKV(t *testing.T, s *Store, rev int64) KeyValueHash {
	t.Helper()
	h, err := s.HashKV(context.Background(), rev)
	if err != nil {
		t.Fatalf("HashKV(%d): %v", rev, err)
	}
	return h
}

func TestHashKVSameDataDifferentBatchings(t *testing.T) {
	a, _ := newStore(t)
	b, _ := newStore(t)
	ops := hashWorkload()
	writeBatched(t, a, ops, 1)
	writeBatched(t, b, ops, 7)
	if a.Rev() != b.Rev() {
		t.Fatalf("revisions differ: %d and %d", a.Rev(), b.Rev())
	}
	seen := map[uint32]int64{}
	for rev := int64(1); rev <= a.Rev(); rev++ {
		ha, hb := hashKV(t, a, rev), hashKV(t, b, rev)
		if ha != hb {
			t.Errorf("hash at %d: %+v and %+v", rev, ha, hb)
		}
		if ha.Rev != rev || ha.CompactRev != 0 {
			t.Errorf("hash at %d answers %+v", rev, ha)
		}
		if prev, ok := seen[ha.Hash]; ok {
			t.Errorf("hash at %d equals the hash at %d: every revision changes the history", rev, prev)
		}
		seen[ha.Hash] = rev
	}
	if got := hashKV(t, a, 0); got != hashKV(t, a, a.Rev()) {
		t.Errorf("HashKV(0) = %+v, not the hash at the current revision", got)
	}

	// One differing value, or a delete more, changes the hash.
	c, _ := newStore(t)
	changed := append([]op(nil), ops...)
	changed[5].val += "x"
	writeBatched(t, c, changed, 3)
	if hashKV(t, c, 0) == hashKV(t, a, 0) {
		t.Error("a different value hashes the same")
	}
	d, _ := newStore(t)
	writeBatched(t, d, ops, 5)
	writeBatched(t, d, []op{{key: "k00", del: true}}, 1)
	if h := hashKV(t, d, 0); h.Hash == hashKV(t, a, 0).Hash {
		t.Error("a delete (tombstone) does not change the hash")
	}
}

func TestHashKVUnchangedByCompaction(t *testing.T) {
	s, eng := newStore(t)
	other, _ := newStore(t)
	ops := hashWorkload()
	writeBatched(t, s, ops, 1)
	writeBatched(t, other, ops, 4)
	cur := s.Rev()
	tomb := int64(0) // a delete's revision: compacting there leaves a tombstone at the compacted revision
	if err := s.Changes(21, 0, func(ev *mvccpb.Event) error {
		if ev.Type == mvccpb.DELETE && tomb == 0 {
			tomb = ev.Kv.ModRevision
		}
		return nil
	}); err != nil || tomb == 0 || tomb >= cur-3 {
		t.Fatalf("no delete in (20, %d): %d, %v", cur-3, tomb, err)
	}
	prev := int64(0)
	for _, c := range []int64{5, 12, 20, tomb, cur - 3, cur} {
		// The history that compaction at c keeps, hashed before anything is deleted;
		// at c itself, the hash the compaction stores: c's history over the previous
		// compaction, as etcd answers.
		want := map[int64]uint32{}
		wantCompact := map[int64]int64{}
		for rev := c; rev <= cur; rev++ {
			over := c
			if rev == c {
				over = prev
			}
			h, err := hashVersions(context.Background(), eng, over, rev)
			if err != nil {
				t.Fatal(err)
			}
			want[rev], wantCompact[rev] = h, over
		}
		compact(t, s, c) // logical and physical
		for rev := c; rev <= cur; rev++ {
			got := hashKV(t, s, rev)
			if got.Hash != want[rev] || got.CompactRev != wantCompact[rev] || got.Rev != rev {
				t.Errorf("compacted at %d: hash at %d = %+v, want %08x over %d before the physical compaction", c, rev, got, want[rev], wantCompact[rev])
			}
		}
		prev = c
		// A member that has not compacted physically yet, at the same compacted revision.
		b := other.eng.NewBatch()
		if err := other.ScheduleCompaction(b, c); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		other.CompactionScheduled(c)
		if got := hashKV(t, other, cur); got.Hash != want[cur] {
			t.Errorf("compacted at %d, hash at %d: other member %+v, want %08x", c, cur, got, want[cur])
		}
		if err := other.WaitCompacted(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		// A defrag (the engine compacts everything) changes nothing.
		if err := eng.Compact(nil, nil); err != nil {
			t.Fatal(err)
		}
		if got := hashKV(t, s, cur); got.Hash != want[cur] {
			t.Errorf("after defrag: %+v, want %08x", got, want[cur])
		}
	}
}

func TestHashKVRevisionErrors(t *testing.T) {
	s, _ := newStore(t)
	writeBatched(t, s, hashWorkload(), 3)
	ctx := context.Background()
	if _, err := s.HashKV(ctx, s.Rev()+1); !errors.Is(err, ErrFutureRev) {
		t.Errorf("HashKV above the current revision: %v, want ErrFutureRev", err)
	}
	compact(t, s, 10)
	if _, err := s.HashKV(ctx, 9); !errors.Is(err, ErrCompacted) {
		t.Errorf("HashKV below the compacted revision: %v, want ErrCompacted", err)
	}
	if h, err := s.HashKV(ctx, 10); err != nil || h.CompactRev != 0 || h.Rev != 10 {
		t.Errorf("HashKV at the compacted revision (the hash its compaction stored): %+v, %v", h, err)
	}
	if h, err := s.HashKV(ctx, 11); err != nil || h.CompactRev != 10 || h.Rev != 11 {
		t.Errorf("HashKV above the compacted revision: %+v, %v", h, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	big, _ := newStore(t)
	putKeys(t, big, 0, 2*hashCheckEvery)
	if _, err := big.HashKV(cctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("HashKV with a canceled context: %v", err)
	}
}

// HashKV reads a snapshot: writes go on while it runs, and the hash at a revision it
// answered during them is the one answered after them.
func TestHashKVConcurrentWithWrites(t *testing.T) {
	s, _ := newStore(t)
	for i := 0; i < 5; i++ {
		putKeys(t, s, i*2000, (i+1)*2000)
	}
	rev := s.Rev()
	done := make(chan KeyValueHash)
	go func() {
		h, err := s.HashKV(context.Background(), rev)
		if err != nil {
			t.Error(err)
		}
		done <- h
	}()
	var during KeyValueHash
	for i := 0; ; i++ {
		select {
		case during = <-done:
		default:
			put(t, s, fmt.Sprintf("k%04d", i%10000), "new", 0)
			continue
		}
		break
	}
	if after := hashKV(t, s, rev); after != during {
		t.Errorf("hash at %d during writes %+v, after %+v", rev, during, after)
	}
}
