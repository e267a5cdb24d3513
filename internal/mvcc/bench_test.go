package mvcc

import (
	"fmt"
	"testing"

	"github.com/metastore/metastore/internal/storage/pebble"
)

func fill(b *testing.B, s *Store, n int) {
	b.Helper()
	val := make([]byte, 128)
	for i := 0; i < n; i += 1000 {
		txn(b, s, func(w *TxnWrite) {
			for k := i; k < i+1000 && k < n; k++ {
				if _, err := w.Put([]byte(fmt.Sprintf("key%06d", k)), val, 0, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut is one Put per TxnWrite and batch, committed without sync, over 10k keys.
func BenchmarkPut(b *testing.B) {
	s, _ := newStore(b)
	val := make([]byte, 128)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		put(b, s, fmt.Sprintf("key%06d", i%10000), string(val), 0)
	}
}

func BenchmarkPointGet(b *testing.B) {
	s, _ := newStore(b)
	fill(b, s, 10000)
	r := s.Read()
	defer r.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.Range([]byte(fmt.Sprintf("key%06d", i%10000)), nil, RangeOptions{})
		if err != nil || len(res.KVs) != 1 {
			b.Fatal(err, len(res.KVs))
		}
	}
}

// BenchmarkRange10k reads all 10k keys (each with 3 versions) in one Range.
func BenchmarkRange10k(b *testing.B) {
	s, _ := newStore(b)
	for round := 0; round < 3; round++ {
		fill(b, s, 10000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := s.Read()
		res, err := r.Range([]byte("key"), []byte("kez"), RangeOptions{})
		r.Close()
		if err != nil || res.Count != 10000 {
			b.Fatal(err, res.Count)
		}
	}
}

// countStore is a store of n keys, each written `versions` times, with every write
// flushed into tables: the state a long-running member reads from. The block cache holds
// all of it (64 MiB, as a member's default), so the figures are CPU, not disk reads.
// memo false turns the count memo off: every count walks its range.
func countStore(b *testing.B, n, versions int, memo bool) *Store {
	b.Helper()
	eng, err := pebble.Open(b.TempDir(), pebble.Options{CacheSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(eng)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.Close()
		_ = eng.Close()
	})
	setMemo(s, memo)
	for round := 0; round < versions; round++ {
		fill(b, s, n)
	}
	ch, err := eng.FlushAsync()
	if err != nil {
		b.Fatal(err)
	}
	<-ch
	return s
}

func benchRange(b *testing.B, s *Store, key, end string, opts RangeOptions, wantCount, wantKVs int) RangeResult {
	r := s.Read()
	res, err := r.Range([]byte(key), []byte(end), opts)
	r.Close()
	if err != nil || res.Count != wantCount || len(res.KVs) != wantKVs {
		b.Fatal(err, res.Count, len(res.KVs))
	}
	return res
}

// BenchmarkCountOnly100k counts 100k keys of 3 versions each (count_only), walking them.
func BenchmarkCountOnly100k(b *testing.B) {
	s := countStore(b, 100000, 3, false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRange(b, s, "key", "kez", RangeOptions{CountOnly: true}, 100000, 0)
	}
}

// BenchmarkLimitCount100k reads the first 101 of 100k keys and counts them all, as a
// Range with limit 100 does (the bench's txn-mixed read, a Kubernetes list page),
// walking them.
func BenchmarkLimitCount100k(b *testing.B) {
	s := countStore(b, 100000, 3, false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRange(b, s, "key", "kez", RangeOptions{Limit: 101}, 100000, 101)
	}
}

// BenchmarkLimitCountOldRev100k is BenchmarkLimitCount100k at the revision before the
// last round of writes: the newest version of every key is skipped.
func BenchmarkLimitCountOldRev100k(b *testing.B) {
	s := countStore(b, 100000, 3, false)
	rev := s.Rev() - 100
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRange(b, s, "key", "kez", RangeOptions{Limit: 101, Rev: rev}, 100000, 101)
	}
}

// BenchmarkPutThenLimitCount100k is the bench's txn-mixed on one member without the
// network: a put of one existing key, then a read of the first 101 keys of all 100k
// with their count, at the new revision.
func BenchmarkPutThenLimitCount100k(b *testing.B) {
	s := countStore(b, 100000, 3, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		put(b, s, fmt.Sprintf("key%06d", (i*7919)%100000), "v", 0)
		benchRange(b, s, "key", "kez", RangeOptions{Limit: 101}, 100000, 101)
	}
}

// BenchmarkList20k lists 20k keys in pages of 500 at one revision, as Kubernetes does:
// each page asks for 501 keys from after the last one listed, and for the count.
func BenchmarkList20k(b *testing.B) {
	const n, page = 20000, 500
	s := countStore(b, n, 3, true)
	rev := s.Rev()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		put(b, s, fmt.Sprintf("key%06d", (i*7919)%n), "v", 0) // the list is at an older revision
		key := "key"
		for left := n; left > 0; left -= page {
			res := benchRange(b, s, key, "kez", RangeOptions{Limit: page + 1, Rev: rev}, left, min(page+1, left))
			key = string(res.KVs[min(page, len(res.KVs))-1].Key) + "\x00"
		}
	}
}
